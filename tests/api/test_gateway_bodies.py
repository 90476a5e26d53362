"""Gateway mode (issue 15): large bodies stream through the gateway in bounded memory, on both
backends.

- A 100 MB download (Content-Length) reaches the client byte for byte (SHA-256); while the client
  stops reading, apikeyd stops reading the upstream (back-pressure: the upstream stalls long
  before the end) and apikeyd's anonymous memory (RssAnon) stays under a fixed bound above its
  idle value, during the transfer and after it.
- A 100 MB upload (Content-Length) reaches the upstream byte for byte, with its Content-Length,
  and apikeyd's RssAnon stays under the same bound (the body is spooled to a file, not held).
- Chunked bodies both ways (20 MB): the upstream gets a Content-Length, the client the bytes.
- --max-body-bytes: a larger body is 413 payload_too_large and reaches no upstream.

The bound is on memory, never on time. Under the ASan build (make test's second pass) the
allocator's quarantine would keep freed buffers resident: it is kept small for these servers.
"""

import hashlib
import http.client
import os
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest

from conftest import ServerFactory
from upstream import RssSampler, Upstream, assert_gw_error, gw_request, pattern_chunks, pattern_sha256, rss_anon_kib

LONG = True  # 100 MB each way: scheduled first (conftest.pytest_collection_modifyitems)

SIZE = 100 * 1000 * 1000  # "a 100 MB upload and download" (under the default --max-body-bytes, 100 MiB)
CHUNKED_SIZE = 20 * 1000 * 1000
MEMORY_BOUND_KIB = 64 * 1024  # RssAnon may grow at most this much above idle
PAUSE_AFTER = 8 * 1024 * 1024  # the client reads this much, then stops reading for a while
STALL_POLLS = 20  # the upstream counts as stalled when its byte count stays put this many polls
POLL = 0.025
SOCKET_BUFFER = 256 * 1024  # the test's own sockets: small fixed buffers, so that the kernel holds little
READ = 1 << 20


def asan_build(binary):
    p = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return "libasan" in p.stdout


@pytest.fixture(scope="module")
def env(backend, apikeyd_bin, tmp_path_factory):
    up = Upstream(name="bodies")
    server_env = {}
    if asan_build(apikeyd_bin):
        small = ":quarantine_size_mb=8:thread_local_quarantine_size_kb=256"
        server_env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + small
    factory = ServerFactory(backend, tmp_path_factory.mktemp("gateway-bodies"))
    try:
        # The whole request, body included, must arrive within --header-timeout (contract): room for
        # 100 MB under the ASan build on a loaded machine.
        server = factory("--route", f"/big={up.url}", "--auth-failures", "0", "--header-timeout", "60", env=server_env)
        yield SimpleNamespace(server=server, up=up, key=server.account.key, env=server_env)
    finally:
        factory.close_all()
        up.close()


def connection(env):
    """A connection to the gateway with small socket buffers (set before connecting)."""
    conn = http.client.HTTPConnection("127.0.0.1", env.server.port, timeout=60)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", env.server.port))
    conn.sock = sock
    return conn


def idle_rss(env):
    """RssAnon once the server has served a few MB each way (its buffers and pools warmed up)."""
    key = [("Authorization", f"Bearer {env.key}")]
    for _ in range(2):
        assert gw_request(env.server.port, "GET", "/big/warm?up=big&size=4000000", key).status == 200
        assert gw_request(env.server.port, "POST", "/big/warm", key, body=b"w" * 4000000).status == 200
    time.sleep(0.2)
    return rss_anon_kib(env.server.proc.pid)


def assert_bounded(what, idle, *values):
    for v in values:
        assert v - idle < MEMORY_BOUND_KIB, (
            f"{what}: RssAnon {v // 1024} MiB, {(v - idle) // 1024} MiB above idle ({idle // 1024} MiB); "
            f"bound {MEMORY_BOUND_KIB // 1024} MiB"
        )


def test_100mb_download_streams_with_back_pressure_in_bounded_memory(env):
    pid = env.server.proc.pid
    idle = idle_rss(env)
    sent_before = env.up.body_bytes_sent
    conn = connection(env)
    try:
        conn.putrequest("GET", f"/big/download?up=big&size={SIZE}", skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {env.key}")
        conn.endheaders()
        with RssSampler(pid) as sampler:
            r = conn.getresponse()
            assert r.status == 200
            assert r.getheader("Content-Length") == str(SIZE)
            h = hashlib.sha256()
            got = 0
            while got < PAUSE_AFTER:
                chunk = r.read(READ)
                assert chunk, "the download ended early"
                h.update(chunk)
                got += len(chunk)
            # The client is behind: wait until the upstream cannot send any more (or has sent it all).
            last, still = -1, 0
            while still < STALL_POLLS:
                sent = env.up.body_bytes_sent - sent_before
                if sent >= SIZE:
                    break
                still = still + 1 if sent == last else 0
                last = sent
                time.sleep(POLL)
            stalled_at = env.up.body_bytes_sent - sent_before
            paused = rss_anon_kib(pid)
            while True:
                chunk = r.read(READ)
                if not chunk:
                    break
                h.update(chunk)
                got += len(chunk)
        after = rss_anon_kib(pid)
    finally:
        conn.close()
    print(f"download: idle {idle} KiB, paused {paused} KiB, peak {sampler.peak} KiB, after {after} KiB; "
          f"upstream stalled at {stalled_at} bytes")  # fmt: skip
    assert got == SIZE
    assert h.hexdigest() == pattern_sha256(SIZE)
    assert stalled_at < SIZE, "apikeyd read the whole upstream body while its client was not reading"
    assert_bounded("download, client paused", idle, paused)
    assert_bounded("download, peak", idle, sampler.peak)
    assert_bounded("download, after", idle, after)


def test_100mb_upload_streams_in_bounded_memory(env):
    pid = env.server.proc.pid
    idle = idle_rss(env)
    before = env.up.count()
    conn = connection(env)
    try:
        conn.putrequest("POST", "/big/upload", skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {env.key}")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(SIZE))
        conn.endheaders()
        with RssSampler(pid) as sampler:
            for chunk in pattern_chunks(SIZE):
                conn.send(chunk)
            r = conn.getresponse()
            body = r.read()
        after = rss_anon_kib(pid)
    finally:
        conn.close()
    print(f"upload: idle {idle} KiB, peak {sampler.peak} KiB, after {after} KiB")
    assert r.status == 200, body[:300]
    seen = env.up.since(before)
    assert len(seen) == 1, seen
    seen = seen[0]
    assert seen.complete and seen.body_len == SIZE
    assert seen.body_sha256 == pattern_sha256(SIZE)
    assert seen.header_all("Content-Length") == [str(SIZE)] and seen.header_all("Transfer-Encoding") == []
    assert_bounded("upload, peak", idle, sampler.peak)
    assert_bounded("upload, after", idle, after)


def test_chunked_bodies_both_ways(env):
    key = [("Authorization", f"Bearer {env.key}")]
    # Download, chunked by the upstream.
    conn = connection(env)
    try:
        conn.putrequest("GET", f"/big/dl?up=big&size={CHUNKED_SIZE}&chunked=1", skip_accept_encoding=True)
        conn.putheader(*key[0])
        conn.endheaders()
        r = conn.getresponse()
        assert r.status == 200
        h = hashlib.sha256()
        got = 0
        while True:
            chunk = r.read(READ)
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
        assert got == CHUNKED_SIZE and h.hexdigest() == pattern_sha256(CHUNKED_SIZE)
    finally:
        conn.close()
    # Upload, chunked by the client: the upstream gets a Content-Length.
    before = env.up.count()
    conn = connection(env)
    try:
        conn.putrequest("POST", "/big/ul", skip_accept_encoding=True)
        conn.putheader(*key[0])
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for chunk in pattern_chunks(CHUNKED_SIZE, 256 * 1024):
            conn.send(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        r.read()
        assert r.status == 200
    finally:
        conn.close()
    seen = env.up.since(before)
    assert len(seen) == 1 and seen[0].body_len == CHUNKED_SIZE and seen[0].body_sha256 == pattern_sha256(CHUNKED_SIZE)
    assert seen[0].header_all("Content-Length") == [str(CHUNKED_SIZE)] and seen[0].header_all("Transfer-Encoding") == []


def test_body_over_max_body_bytes_is_413_and_reaches_no_upstream(server_factory):
    up = Upstream(name="limited")
    try:
        server = server_factory("--route", f"/api={up.url}", "--max-body-bytes", "1024")
        key = [("Authorization", f"Bearer {server.account.key}")]
        r = gw_request(server.port, "POST", "/api/fits", key, body=b"x" * 1024)
        assert r.status == 200 and r.json()["body_len"] == 1024
        assert_gw_error(gw_request(server.port, "POST", "/api/over", key, body=b"x" * 1025), 413, "payload_too_large")
        chunked = b"401\r\n" + b"x" * 1025 + b"\r\n0\r\n\r\n"
        r = gw_request(server.port, "POST", "/api/over-chunked", key + [("Transfer-Encoding", "chunked")], body=chunked)
        assert_gw_error(r, 413, "payload_too_large")
        # A huge Content-Length is refused from its head, before any body.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"POST /api/huge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + server.account.key.encode()
                      + b"\r\nContent-Length: 10000000000\r\n\r\n")  # fmt: skip
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(65536)
                assert chunk, f"closed without an answer: {head!r}"
                head += chunk
            assert head.startswith(b"HTTP/1.1 413"), head[:200]
        assert [s.target for s in up.snapshot()] == ["/fits"]
        # The management API's own limits are its own.
        assert server.client.get().status_code == 200
    finally:
        up.close()
