"""HTTP/2 is off (issue 8, section 2): apikeyd speaks HTTP/1.1 only, in cleartext and over TLS.

apikeyd sits behind gateways that speak HTTP/1.1 to it. h2o 2.2 would otherwise accept
`Upgrade: h2c` and the HTTP/2 connection preface ("prior knowledge") on the cleartext port; under
HTTP/2 the Authorization value lives in the HPACK dynamic table, which h2o keeps for the whole
connection. The tests:

* `curl --http2` (an h2c upgrade offer) gets HTTP/1.1 answers, and several requests with the same
  Authorization on one connection all succeed (a client that indexed the header got 401 on every
  request after the first, before the fix);
* the HTTP/2 preface on a raw socket, and `curl --http2-prior-knowledge`, get no HTTP/2 SETTINGS
  frame, and the server goes on serving;
* over TLS no ALPN protocol is selected: `curl --http2` and a Python client that offers
  `h2` both end up on HTTP/1.1.

The cleartext tests run on both backends (through the `server` fixture); TLS is the transport, so
that test runs on SQLite only, as in test_tls.py.
"""

import re
import socket
import ssl
import subprocess

import pytest

from conftest import COLLECTION, HTTP_TIMEOUT, sqlite_only
from test_tls import pki, start_tls  # noqa: F401  (pki is a fixture)

CURL_TIMEOUT = 15
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS_EMPTY = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type SETTINGS, no flags, stream 0


def curl_lines(argv):
    """Runs curl with `-w` printing one line per transfer; returns those lines."""
    p = subprocess.run(
        ["curl", "-sS", "--max-time", str(CURL_TIMEOUT), *argv],
        capture_output=True,
        text=True,
        timeout=CURL_TIMEOUT + 5,
        stdin=subprocess.DEVNULL,
    )
    return p.returncode, p.stdout.split(), p.stderr


def transfers(server, key, count, *flags):
    """`count` GETs of the collection with one curl (so on one connection when it can be kept),
    each reported as "http_version:status:new_connections"."""
    url = server.base_url + COLLECTION
    argv = [*flags, "-H", f"Authorization: Bearer {key}", "-w", "%{http_version}:%{http_code}:%{num_connects}\\n"]
    for _ in range(count):
        argv += ["-o", "/dev/null", url]
    return curl_lines(argv)


def test_h2c_upgrade_offer_gets_http1_and_every_request_succeeds(server):
    rc, lines, err = transfers(server, server.account.key, 5, "--http2")
    assert rc == 0, err
    assert len(lines) == 5, lines
    for i, line in enumerate(lines):
        version, status, connects = line.split(":")
        assert version == "1.1", f"request {i}: answered over HTTP/{version}"
        assert status == "200", f"request {i}: status {status}"
        assert connects == ("1" if i == 0 else "0"), f"request {i}: the connection was not kept: {lines}"


def read_some(sock, limit=65536):
    """What the server sends before it closes or goes quiet for a while."""
    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(limit)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def frame(ftype, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big") + payload


def hpack_request(path, authorization, indexed):
    """A GET's header block: Authorization added to the HPACK dynamic table (literal with incremental
    indexing, static name 23) or, with `indexed`, sent as a reference to that entry (index 62)."""
    block = b"\x82\x86" + b"\x04" + bytes([len(path)]) + path.encode() + b"\x01\x09localhost"
    if indexed:
        return block + b"\xbe"
    return block + b"\x57" + bytes([len(authorization)]) + authorization.encode()


def read_frames(sock, want_headers):
    """Frames (type, stream, payload) until `want_headers` HEADERS frames came, EOF or a quiet second."""
    data, frames = b"", []
    while sum(1 for f in frames if f[0] == 0x1) < want_headers:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
        while len(data) >= 9 and len(data) >= 9 + int.from_bytes(data[:3], "big"):
            n = int.from_bytes(data[:3], "big")
            frames.append((data[3], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, data[9 : 9 + n]))
            data = data[9 + n :]
    return frames, data


def status_of(block):
    if block[:1] == b"\x88":
        return 200
    m = re.search(rb"[1-5][0-9][0-9]", block)
    return int(m.group(0)) if m else None


def test_http2_preface_gets_no_settings_frame_and_server_keeps_serving(server):
    auth = f"Bearer {server.account.key}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=2.0) as s:
        # Two requests with the same Authorization, the second through the HPACK dynamic table.
        s.sendall(
            PREFACE
            + SETTINGS_EMPTY
            + frame(0x1, 0x5, 1, hpack_request(COLLECTION, auth, False))
            + frame(0x1, 0x5, 3, hpack_request(COLLECTION, auth, True))
        )
        frames, rest = read_frames(s, 2)
    assert rest == b"" or rest.startswith(b"HTTP/1.1 "), rest[:200]
    statuses = [status_of(p) for t, _, p in frames if t == 0x1]
    # Had HTTP/2 been served, each request would have to succeed (the HPACK entry intact).
    assert all(st == 200 for st in statuses), f"HTTP/2 answers per stream: {statuses}"
    # An HTTP/2 server answers the preface with its own SETTINGS frame first (type 0x4, stream 0).
    assert not any(t == 0x4 for t, _, _ in frames), f"HTTP/2 SETTINGS answered: {frames[:3]!r}"

    rc, lines, err = transfers(server, server.account.key, 1, "--http2-prior-knowledge")
    assert not (rc == 0 and lines and lines[0].startswith("2")), f"HTTP/2 with prior knowledge was served: {lines}"

    rc, lines, err = transfers(server, server.account.key, 2)
    assert rc == 0 and [line.split(":")[:2] for line in lines] == [["1.1", "200"]] * 2, (lines, err)


@sqlite_only  # TLS is the transport: the storage backend plays no part
def test_tls_negotiates_http1_only(server_factory, pki):  # noqa: F811
    server = start_tls(server_factory(start=False), pki["cert"], pki["key"])
    url = f"https://localhost:{server.port}{COLLECTION}"
    argv = ["--http2", "--cacert", str(pki["cert"]), "--resolve", f"localhost:{server.port}:127.0.0.1",
            "-H", f"Authorization: Bearer {server.account.key}", "-w", "%{http_version}:%{http_code}\\n",
            "-o", "/dev/null", url, "-o", "/dev/null", url]  # fmt: skip
    rc, lines, err = curl_lines(argv)
    assert rc == 0, err
    assert lines == ["1.1:200", "1.1:200"], lines

    ctx = ssl.create_default_context(cafile=str(pki["cert"]))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() in (None, "http/1.1")
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert read_some(s).startswith(b"HTTP/1.1 200 ")
