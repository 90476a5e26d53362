"""HTTPS (issue 5): `--tls-cert` and `--tls-key` serve TLS (1.2 and newer) through h2o's OpenSSL.

Every test makes its certificate with `openssl req` (self-signed, CN and subjectAltName
`localhost` and `127.0.0.1`, one day) and checks it from two clients: curl `--cacert` and
Python's ssl module (directly, and through requests). The server is started here rather than by
`Server.start`, whose readiness probe speaks plain HTTP; it is the same process with the same
files, and the factory stops it (SIGTERM, exit status 0) at teardown.

TLS is the transport: the storage backend plays no part, so the tests with a server run on SQLite
only; the flag tests start no server at all.
"""

import os
import select
import socket
import ssl
import subprocess
import time
import warnings

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from conftest import BIN, COLLECTION, HTTP_TIMEOUT, SPEC, START_TIMEOUT, free_port, run_cli

try:
    from conftest import sqlite_only
except ImportError:  # a conftest without the backend matrix helpers
    sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

VERIFY = "/v1/auth/verify"
OPENSSL_TIMEOUT = 60.0
CURL_TIMEOUT = 15.0
SLACK = 5.0  # added to a server timeout before a connection counts as not closed


# --------------------------------------------------------------------------- certificates


def openssl_req(directory):
    """A self-signed certificate and its key, made with `openssl req` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    p = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "1",
         "-keyout", str(key), "-out", str(cert)],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=OPENSSL_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"openssl req failed: {p.stderr}"
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """{"cert", "key"}: the server's pair; {"other_cert", "other_key"}: another, unrelated pair."""
    root = tmp_path_factory.mktemp("tls")
    cert, key = openssl_req(root / "server")
    other_cert, other_key = openssl_req(root / "other")
    return {"cert": cert, "key": key, "other_cert": other_cert, "other_key": other_key, "root": root}


# --------------------------------------------------------------------------- the server over TLS


def start_tls(server, cert, key, extra=()):
    """Starts `apikeyd serve` on `server`'s data with --tls-cert/--tls-key; waits until
    GET https://127.0.0.1:PORT/healthz answers 200 to a client that trusts `cert`."""
    assert server.proc is None
    for attempt in range(3):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("APIKEYD_DB", "APIKEYD_LISTEN", "APIKEYD_VERIFY_TOKEN")}
        env.update(getattr(server, "env", {}))
        argv = [str(BIN), "serve", "--db", server.db, "--listen", f"127.0.0.1:{port}", *server.common_args(),
                "--tls-cert", str(cert), "--tls-key", str(key), *map(str, extra)]  # fmt: skip
        with open(server.log_path, "ab") as err, open(server.stdout_path, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                r = requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(cert), timeout=1)
                if r.status_code == 200:
                    SPEC.check("GET", "/healthz", r)
                    server.proc, server.port = proc, port
                    return server
            except requests.RequestException:
                pass
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            pytest.fail(f"apikeyd did not answer over HTTPS within {START_TIMEOUT} s; stderr:\n{server.log_text()[-2000:]}")
        # Exited: maybe the port was taken in between; try another.
    pytest.fail(f"apikeyd serve --tls-cert did not start; stderr:\n{server.log_text()[-2000:]}")


@pytest.fixture
def tls_server(server_factory, pki):
    return start_tls(server_factory(start=False), pki["cert"], pki["key"])


class RawResponse:
    """Enough of a `requests.Response` for `SPEC.check`."""

    def __init__(self, status, headers, content):
        self.status_code = status
        self.headers = CaseInsensitiveDict(headers)
        self.content = content
        self.text = content.decode("utf-8", "replace")


def curl(server, pki, method, path, key=None, json_body=None, cacert=True, extra=()):
    """curl over HTTPS to https://localhost:PORT (resolved to 127.0.0.1 only). Returns
    (exit status, RawResponse or None, stderr)."""
    out_dir = pki["root"] / f"curl-{time.monotonic_ns()}"
    out_dir.mkdir()
    argv = ["curl", "-sS", "--max-time", str(int(CURL_TIMEOUT)), "--resolve", f"localhost:{server.port}:127.0.0.1",
            "-X", method, "-D", str(out_dir / "headers"), "-o", str(out_dir / "body")]  # fmt: skip
    if cacert:
        argv += ["--cacert", str(pki["cert"])]
    if key is not None:
        argv += ["-H", f"Authorization: Bearer {key}"]
    if json_body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary", json_body]
    argv += [*extra, f"https://localhost:{server.port}{path}"]
    env = {k: v for k, v in os.environ.items() if k not in ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")}
    p = subprocess.run(argv, capture_output=True, text=True, timeout=CURL_TIMEOUT + 5, env=env, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        return p.returncode, None, p.stderr
    lines = (out_dir / "headers").read_bytes().decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
    return 0, RawResponse(status, headers, (out_dir / "body").read_bytes()), p.stderr


def https(server, pki):
    """A requests session to https://127.0.0.1:PORT that trusts the test's certificate."""
    session = requests.Session()
    base = f"https://127.0.0.1:{server.port}"

    def call(method, path, key=None, **kw):
        headers = kw.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        # verify= on each request: a session's own is overridden by REQUESTS_CA_BUNDLE if set.
        r = session.request(method, base + path, headers=headers, timeout=HTTP_TIMEOUT, verify=str(pki["cert"]), **kw)
        r.body = SPEC.check(method, path, r)
        return r

    call.session = session
    return call


def tls_context(pki, version=None):
    ctx = ssl.create_default_context(cafile=str(pki["cert"]))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def tls_get(server, ctx, path="/healthz", host="127.0.0.1", headers=""):
    """One request over a TLS socket made with `ctx`; returns (negotiated version, raw answer)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return s.version(), data


def wait_closed(socks, deadline):
    """Waits until the server has closed each of `socks` ({name: socket or SSLSocket}: EOF, a
    reset, or a TLS error), or `deadline` (monotonic) passes; returns {name: close time}."""
    closed = {}
    poller = select.poll()
    names = {}
    for what, s in socks.items():
        s.setblocking(False)
        poller.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
        names[s.fileno()] = what
    while len(closed) < len(socks) and time.monotonic() < deadline:
        for fd, _ in poller.poll(max(0.0, min(deadline - time.monotonic(), 0.5)) * 1000):
            what = names[fd]
            try:
                while socks[what].recv(4096):
                    pass
            except (BlockingIOError, ssl.SSLWantReadError):
                continue  # not closed yet
            except (OSError, ssl.SSLError):
                pass
            closed[what] = time.monotonic()
            poller.unregister(fd)
    return closed


# --------------------------------------------------------------------------- tests


@sqlite_only  # TLS is the transport: the storage backend plays no part
def test_curl_cacert_list_create_verify(tls_server, pki):
    server = tls_server
    key = server.account.key
    rc, r, err = curl(server, pki, "GET", COLLECTION, key)
    assert rc == 0, err
    assert r.status_code == 200
    assert [k["id"] for k in SPEC.check("GET", COLLECTION, r)["api_keys"]] == [server.account.primary_id]

    rc, r, err = curl(server, pki, "POST", COLLECTION, key, json_body='{"name": "over TLS", "key_type": "sandbox"}')
    assert rc == 0, err
    assert r.status_code == 201
    created = SPEC.check("POST", COLLECTION, r)

    rc, r, err = curl(server, pki, "GET", VERIFY, created["api_key"])
    assert rc == 0, err
    assert r.status_code == 204
    SPEC.check("GET", VERIFY, r)
    assert r.headers["X-Key-Id"] == str(created["id"]) and r.headers["X-Key-Type"] == "sandbox"

    rc, r, err = curl(server, pki, "GET", VERIFY, "ml_prod_" + "A" * 38)
    assert rc == 0, err
    assert r.status_code == 401
    SPEC.check("GET", VERIFY, r)

    # TLS 1.2 exactly works too.
    rc, r, err = curl(server, pki, "GET", "/healthz", extra=["--tlsv1.2", "--tls-max", "1.2"])
    assert rc == 0 and r.status_code == 200, err


@sqlite_only  # TLS is the transport: the storage backend plays no part
def test_python_ssl_list_create_verify(tls_server, pki):
    server = tls_server
    call = https(server, pki)
    key = server.account.key
    try:
        assert [k["id"] for k in call("GET", COLLECTION, key).body["api_keys"]] == [server.account.primary_id]
        r = call("POST", COLLECTION, key, json={"name": "over TLS", "key_type": "production"})
        assert r.status_code == 201
        created = r.body
        r = call("GET", VERIFY + "/orders/1", created["api_key"])
        assert r.status_code == 204 and r.headers["X-Key-Id"] == str(created["id"])
        r = call("PATCH", f"{COLLECTION}{created['id']}/", key, json={"is_active": False})
        assert r.status_code == 200 and r.body["is_active"] is False
        r = call("GET", VERIFY, created["api_key"])
        assert r.status_code == 401 and r.body["error"]["code"] == "key_inactive"
        assert call("DELETE", f"{COLLECTION}{created['id']}/", key).status_code == 204
        assert [k["id"] for k in call("GET", COLLECTION, key).body["api_keys"]] == [server.account.primary_id]
    finally:
        call.session.close()
    # The ssl module directly: TLS 1.2 or newer by default, and TLS 1.2 exactly.
    version, raw = tls_get(server, tls_context(pki), COLLECTION, headers=f"Authorization: Bearer {key}\r\n")
    assert version in ("TLSv1.2", "TLSv1.3") and raw.startswith(b"HTTP/1.1 200 "), raw[:200]
    version, raw = tls_get(server, tls_context(pki, ssl.TLSVersion.TLSv1_2), host="localhost")
    assert version == "TLSv1.2" and raw.startswith(b"HTTP/1.1 200 "), raw[:200]


@sqlite_only  # TLS is the transport: the storage backend plays no part
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_older_than_1_2_is_refused(tls_server, pki, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki["cert"]))
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that the client itself offers the old version
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        v = getattr(ssl.TLSVersion, version)
        ctx.minimum_version = ctx.maximum_version = v
    with pytest.raises((ssl.SSLError, ConnectionError)) as e:
        tls_get(tls_server, ctx)
    assert "NO_PROTOCOLS_AVAILABLE" not in str(e.value), f"the client could not offer {version}: {e.value}"
    assert https(tls_server, pki)("GET", "/healthz").status_code == 200


@sqlite_only  # TLS is the transport: the storage backend plays no part
def test_plain_http_to_the_tls_port_fails(tls_server, pki):
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_server.port}/healthz", timeout=HTTP_TIMEOUT)
    key = tls_server.account.key
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(f"GET {COLLECTION} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/1." not in data and b"api_keys" not in data, f"plain HTTP was answered: {data[:200]!r}"
    assert https(tls_server, pki)("GET", "/healthz").status_code == 200


@sqlite_only  # TLS is the transport: the storage backend plays no part
def test_client_that_does_not_trust_the_certificate_fails(tls_server, pki):
    server = tls_server
    key = server.account.key
    # curl with the system's CAs only, or trusting another certificate: exit 60 (not verified).
    rc, r, err = curl(server, pki, "GET", COLLECTION, key, cacert=False)
    assert rc == 60 and r is None, (rc, err)
    rc, r, err = curl(server, pki, "GET", COLLECTION, key, cacert=False, extra=["--cacert", str(pki["other_cert"])])
    assert rc == 60 and r is None, (rc, err)
    # Python: the default context (system CAs), another certificate, a name the certificate lacks.
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_get(server, ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_get(server, ssl.create_default_context(cafile=str(pki["other_cert"])))
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_get(server, tls_context(pki), host="apikeyd.example")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{server.port}{COLLECTION}", headers={"Authorization": f"Bearer {key}"},
                     timeout=HTTP_TIMEOUT, verify=True)  # fmt: skip
    # The failed handshakes did not hurt the server.
    assert https(server, pki)("GET", COLLECTION, key).status_code == 200


@sqlite_only  # TLS is the transport: the storage backend plays no part
def test_framing_refused_over_tls_too(tls_server, pki):
    """A request with Content-Length and Transfer-Encoding is refused over TLS as over HTTP."""
    server = tls_server
    key = server.account.key
    smuggled_body = b'{"name": "smuggled", "key_type": "sandbox"}'
    smuggled = (
        f"POST {COLLECTION} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(smuggled_body)}\r\n\r\n"
    ).encode() + smuggled_body
    body = b"0\r\n\r\n" + smuggled
    request = (
        f"POST {COLLECTION} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as raw:
        with tls_context(pki).wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(request)
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, ssl.SSLEOFError):
                pass
    assert data == b"" or data.startswith(b"HTTP/1.1 400 "), data[:300]
    assert data.count(b"HTTP/1.1 ") <= 1, f"a smuggled request was answered: {data[:600]!r}"
    call = https(server, pki)
    assert [k["name"] for k in call("GET", COLLECTION, key).body["api_keys"]] == ["Production Key"]


@sqlite_only  # TLS is the transport: the storage backend plays no part
def test_stalled_tls_connections_are_closed_within_the_header_timeout(server_factory, pki):
    """--header-timeout bounds a TLS client too: one that connects and sends nothing, one that
    stops in the middle of its ClientHello, and one that stalls after the handshake, half-way
    through its request headers."""
    header_timeout = 2
    server = start_tls(server_factory(start=False), pki["cert"], pki["key"], ["--header-timeout", header_timeout])
    socks, opened = {}, time.monotonic()
    try:
        socks["no ClientHello"] = socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT)
        socks["half a ClientHello"] = socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT)
        socks["half a ClientHello"].sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        tls = tls_context(pki).wrap_socket(
            socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT), server_hostname="localhost"
        )
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthoriz")
        socks["half a request after the handshake"] = tls
        # Other TLS clients are served meanwhile.
        assert https(server, pki)("GET", "/healthz").status_code == 200
        closed = wait_closed(socks, opened + header_timeout + SLACK)
        closed = {what: round(t - opened, 1) for what, t in closed.items()}
        still = [what for what in socks if what not in closed]
        assert not still, (
            f"still open {header_timeout} + {SLACK} s after connecting with --header-timeout {header_timeout}: "
            f"{', '.join(still)} (closed: {closed})"
        )
    finally:
        for s in socks.values():
            s.close()


# --------------------------------------------------------------------------- flags


def test_tls_cert_and_key_go_together(tmp_path, pki):
    db = tmp_path / "apikeyd.db"
    for flags in (["--tls-cert", pki["cert"]], ["--tls-key", pki["key"]]):
        p = run_cli("serve", "--db", db, "--listen", f"127.0.0.1:{free_port()}", *flags)
        assert p.returncode == 2, (flags, p.returncode, p.stderr)
        assert "--tls-cert" in p.stderr and "--tls-key" in p.stderr, p.stderr


@pytest.mark.parametrize(
    "cert,key,names",
    [
        ("cert", "other_key", "key"),  # a key that does not match the certificate
        ("cert", "cert", "key"),  # a certificate where the key should be
        ("cert", "garbage", "key"),  # not PEM
        ("cert", "missing", "key"),  # no such file
        ("missing", "key", "cert"),  # no such certificate
        ("key", "key", "cert"),  # a key where the certificate should be
    ],
)
def test_bad_tls_files_give_one_clear_line_and_exit_1(tmp_path, pki, cert, key, names):
    (tmp_path / "garbage.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    paths = dict(pki, garbage=tmp_path / "garbage.pem", missing=tmp_path / "missing.pem")
    port = free_port()
    p = run_cli("serve", "--db", tmp_path / "apikeyd.db", "--listen", f"127.0.0.1:{port}",
                "--tls-cert", paths[cert], "--tls-key", paths[key])  # fmt: skip
    assert p.returncode == 1, (p.returncode, p.stderr)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{p.stderr}"
    bad = paths[key] if names == "key" else paths[cert]
    assert "TLS" in lines[0] and str(bad) in lines[0], lines[0]
    assert "BEGIN" not in p.stderr and "listening" not in p.stderr
    # Nothing was left listening.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
