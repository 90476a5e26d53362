"""A small, real HTTP/1.x upstream for the gateway tests (issue 15), Python stdlib only.

`Upstream()` listens on 127.0.0.1 (a free port, `.port`), serves each connection on a thread of
its own (keep-alive, HTTP/1.0 and 1.1, Content-Length and chunked request bodies) and records
every request it receives, as it receives it, in `.requests` (a list of `Seen`): method, raw
request target, version, every header line in order (repeats kept), the body's length and
SHA-256 (a body is hashed as it streams in, never held: only its first 64 KiB are kept), and
the connection it came on. Bytes that do not parse as a request are recorded too (`bad`).

What it answers depends on the `up` query parameter of the request (the query string reaches
the upstream unchanged through a route), else on the instance's `mode`:

- `echo` (default): 200, `application/json`, the request as the upstream saw it (`Seen.echo`).
- `big&size=N[&chunked=1]`: N bytes of `pattern_bytes` (deterministic, see `pattern_sha256`),
  generated on the fly, with Content-Length (or chunked); progress in `.body_bytes_sent`.
- `status&code=N`: that status with a small body (none for 204/304 and HEAD).
- `headers`: 201 with headers a proxy must pass (X-Custom, two Set-Cookie) and hop-by-hop ones
  it must not (Connection naming X-Hop-Resp, X-Hop-Resp, Keep-Alive, Proxy-Connection).
- `hang[&after=S]`: reads the request, then answers nothing (until the peer closes) or, with
  `after`, an echo after S seconds.
- `close`: reads the request, then closes (FIN) without a byte. `reset`: the same with a RST.
- `garbage`: reads the request, answers bytes that are not HTTP, closes.
- `cut&size=N`: a head with Content-Length N, half the body, then a RST.
- `overflow`: a 5-byte answer followed, on the same connection, by a complete second
  response (`SMUGGLED_RESPONSE`) that nothing asked for.

Run this file to self-test it: `/usr/bin/python3 tests/api/upstream.py`.
"""

import hashlib
import json
import socket
import struct
import threading
import time
from urllib.parse import parse_qs, urlsplit

HEAD_LIMIT = 64 * 1024  # a request head larger than this is recorded as bad
BODY_KEEP = 64 * 1024  # the first bytes of a body kept in the record
BLOCK = 1 << 20  # the generated body's period and write size
SMUGGLED_BODY = b"SMUGGLED"
SMUGGLED_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\n" + SMUGGLED_BODY
GARBAGE = b"SSH-2.0-OpenSSH_9.2 not an HTTP answer\r\n\x00\x01\x02\xff\xfe garbage\r\n\r\n"

# `up=raw&v=NAME`: answers these bytes, then closes.
RAW_RESPONSES = {
    "status-101": b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    "http2-line": b"HTTP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "bad-status": b"HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello",
    "status-600": b"HTTP/1.1 600 Beyond\r\nContent-Length: 5\r\n\r\nhello",
    "bad-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello",
    "two-content-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "bad-header-line": b"HTTP/1.1 200 OK\r\nthis is not a header\r\nContent-Length: 5\r\n\r\nhello",
    "head-only-eof": b"HTTP/1.1 200 OK\r\nContent-Len",
}

_PATTERN = None


def pattern_block():
    """One period (1 MiB) of the generated body: SHA-256 counter blocks, not compressible."""
    global _PATTERN
    if _PATTERN is None:
        out = bytearray()
        i = 0
        while len(out) < BLOCK:
            out += hashlib.sha256(b"apikeyd-gateway-test" + struct.pack(">Q", i)).digest()
            i += 1
        _PATTERN = bytes(out[:BLOCK])
    return _PATTERN


def pattern_chunks(size, chunk=BLOCK):
    """The first `size` bytes of the generated body, as memoryviews of at most `chunk` bytes."""
    block = memoryview(pattern_block())
    assert chunk <= BLOCK and BLOCK % chunk == 0
    sent = 0
    while sent < size:
        off = sent % BLOCK
        n = min(chunk, size - sent, BLOCK - off)
        yield block[off : off + n]
        sent += n


def pattern_bytes(size):
    return b"".join(pattern_chunks(size))


_HASHES = {}


def pattern_sha256(size):
    """The SHA-256 (hex) of the first `size` bytes of the generated body (cached)."""
    if size not in _HASHES:
        h = hashlib.sha256()
        for c in pattern_chunks(size):
            h.update(c)
        _HASHES[size] = h.hexdigest()
    return _HASHES[size]


class Seen:
    """One request as the upstream received it."""

    def __init__(self, conn_id, peer):
        self.conn = conn_id
        self.peer = peer
        self.method = None
        self.target = None
        self.version = None
        self.headers = []  # [(name, value)] as received, in order
        self.raw_head = b""
        self.body_len = 0
        self.body_sha256 = None
        self.body_head = b""  # the first BODY_KEEP bytes
        self.chunked = False
        self.complete = False  # the whole body arrived
        self.bad = None  # why the bytes were not a request (then raw_head holds them)
        self.at = time.monotonic()

    @property
    def path(self):
        return (self.target or "").split("?", 1)[0]

    @property
    def query(self):
        t = self.target or ""
        return t.split("?", 1)[1] if "?" in t else None

    def header_all(self, name):
        """Every value of header `name` (any case), in order."""
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header(self, name):
        """The one value of header `name`, or None; fails if it came more than once."""
        values = self.header_all(name)
        assert len(values) <= 1, f"header {name} came {len(values)} times: {values}"
        return values[0] if values else None

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    def echo(self):
        return {
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [[k, v] for k, v in self.headers],
            "body_len": self.body_len,
            "body_sha256": self.body_sha256,
            "conn": self.conn,
        }

    def __repr__(self):
        if self.bad:
            return f"<Seen bad={self.bad!r} raw={self.raw_head[:200]!r}>"
        return f"<Seen {self.method} {self.target} conn={self.conn} body={self.body_len}>"


class BadRequest(Exception):
    pass


class _Conn:
    """A connection's socket with a read buffer."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def fill(self):
        if self.eof:
            return False
        try:
            data = self.sock.recv(256 * 1024)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_head(self):
        """The head's bytes (through the blank line), or None at a clean EOF before any byte."""
        while True:
            # Tolerate blank lines between requests (RFC 9112 2.2).
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[: i + 4])
                del self.buf[: i + 4]
                return head
            if len(self.buf) > HEAD_LIMIT:
                raise BadRequest("head too large")
            if not self.fill():
                if self.buf:
                    raise BadRequest("EOF inside a head")
                return None

    def read_exact_into(self, n, sink):
        while n > 0:
            if not self.buf and not self.fill():
                raise BadRequest("EOF inside a body")
            take = min(n, len(self.buf))
            sink(bytes(self.buf[:take]))
            del self.buf[:take]
            n -= take

    def read_line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            if len(self.buf) > HEAD_LIMIT:
                raise BadRequest("line too long")
            if not self.fill():
                raise BadRequest("EOF inside a chunked body")


class Upstream:
    """The test upstream: `Upstream(mode="echo")`, `.port`, `.url`, `.requests`, `.close()`."""

    def __init__(self, mode="echo", name="upstream", host="127.0.0.1"):
        self.mode = mode
        self.name = name
        self.lock = threading.Condition()
        self.requests = []  # every Seen, in the order their heads arrived
        self.connections = 0  # accepted so far
        self.open = {}  # conn id -> socket, while open
        self.idle = set()  # conn ids waiting for their next request
        self.body_bytes_sent = 0  # bytes of generated bodies written so far (all requests)
        self.closed = False
        self.host = host
        self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ the test's side

    @property
    def authority(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self):
        return f"http://{self.authority}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def snapshot(self):
        with self.lock:
            return list(self.requests)

    def count(self):
        with self.lock:
            return len(self.requests)

    def since(self, n):
        """The requests received after the first `n`."""
        with self.lock:
            return list(self.requests[n:])

    def matching(self, marker):
        """The requests whose target or raw bytes hold `marker` (str)."""
        m = marker.encode("latin-1")
        with self.lock:
            return [s for s in self.requests if m in (s.target or "").encode("latin-1") or m in s.raw_head]

    def wait(self, predicate, timeout=10.0, what="the upstream"):
        """Waits until predicate(self) is truthy (re-evaluated on every change); returns it."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self.lock.wait(min(left, 0.05))

    def open_count(self):
        with self.lock:
            return len(self.open)

    def close_idle(self):
        """Closes (FIN) every connection waiting for its next request, as an upstream whose own
        keep-alive timeout ran out; returns how many."""
        with self.lock:
            socks = [self.open[c] for c in self.idle if c in self.open]
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(socks)

    def close(self):
        with self.lock:
            self.closed = True
            socks = list(self.open.values())
            self.lock.notify_all()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)

    # ------------------------------------------------------------------ serving

    def _accept_loop(self):
        while True:
            try:
                sock, peer = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.closed:
                    sock.close()
                    return
                self.connections += 1
                cid = self.connections
                self.open[cid] = sock
                self.lock.notify_all()
            threading.Thread(target=self._serve, args=(sock, cid, peer), name=f"{self.name}-{cid}", daemon=True).start()

    def _record(self, seen):
        with self.lock:
            self.requests.append(seen)
            self.lock.notify_all()

    def _changed(self):
        with self.lock:
            self.lock.notify_all()

    def _serve(self, sock, cid, peer):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock)
        try:
            while True:
                with self.lock:
                    self.idle.add(cid)
                try:
                    head = conn.read_head()
                except BadRequest as e:
                    seen = Seen(cid, peer)
                    seen.bad, seen.raw_head = str(e), bytes(conn.buf)
                    self._record(seen)
                    return
                finally:
                    with self.lock:
                        self.idle.discard(cid)
                if head is None:
                    return
                seen = Seen(cid, peer)
                seen.raw_head = head
                try:
                    self._parse_head(seen, head)
                    self._record(seen)
                    self._read_body(conn, seen)
                except BadRequest as e:
                    seen.bad = str(e)
                    if seen not in self.requests:
                        self._record(seen)
                    self._changed()
                    self._send(sock, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                self._changed()
                if not self._answer(conn, seen):
                    return
        except OSError:
            return
        finally:
            with self.lock:
                self.open.pop(cid, None)
                self.idle.discard(cid)
                self.lock.notify_all()
            try:
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _parse_head(seen, head):
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise BadRequest(f"bad request line {lines[0][:200]!r}")
        seen.method, seen.target, seen.version = (p.decode("latin-1") for p in parts)
        for line in lines[1:]:
            if not line or line[:1] in (b" ", b"\t"):
                raise BadRequest(f"bad header line {line[:200]!r}")
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise BadRequest(f"bad header line {line[:200]!r}")
            seen.headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))

    def _read_body(self, conn, seen):
        te = [v.lower() for v in seen.header_all("Transfer-Encoding")]
        cl = seen.header_all("Content-Length")
        h = hashlib.sha256()

        def sink(data):
            if len(seen.body_head) < BODY_KEEP:
                seen.body_head += data[: BODY_KEEP - len(seen.body_head)]
            seen.body_len += len(data)
            h.update(data)

        if te:
            if cl:
                raise BadRequest("both Transfer-Encoding and Content-Length")
            if te != ["chunked"]:
                raise BadRequest(f"Transfer-Encoding {te}")
            seen.chunked = True
            while True:
                size_line = conn.read_line().split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise BadRequest(f"bad chunk size {size_line[:50]!r}") from None
                if size == 0:
                    while conn.read_line():  # trailers
                        pass
                    break
                conn.read_exact_into(size, sink)
                if conn.read_line() != b"":
                    raise BadRequest("chunk without its CRLF")
        elif cl:
            if len(cl) > 1 or not cl[0].isdigit():
                raise BadRequest(f"Content-Length {cl}")
            conn.read_exact_into(int(cl[0]), sink)
        seen.body_sha256 = h.hexdigest()
        seen.complete = True

    @staticmethod
    def _send(sock, data):
        try:
            sock.sendall(data)
            return True
        except OSError:
            return False

    def _keep_alive(self, seen):
        tokens = ",".join(seen.header_all("Connection")).lower().replace(" ", "").split(",")
        if seen.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def _answer(self, conn, seen):
        """Answers `seen`; True to keep the connection for another request."""
        sock = conn.sock
        q = parse_qs(urlsplit(seen.target or "").query)

        def arg(name, default=None):
            return q[name][0] if name in q else default

        mode = arg("up", self.mode)
        keep = self._keep_alive(seen)
        conn_hdr = b"" if keep else b"Connection: close\r\n"
        head_only = seen.method == "HEAD"

        def simple(status, reason, body, ctype=b"application/json", extra=b""):
            head = (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (status, reason, ctype, len(body))
                    + extra + conn_hdr + b"\r\n")  # fmt: skip
            return self._send(sock, head + (b"" if head_only else body)) and keep

        if mode == "echo":
            return simple(200, b"OK", json.dumps(seen.echo()).encode())
        if mode == "status":
            code = int(arg("code", "200"))
            if code in (204, 304):
                return self._send(sock, b"HTTP/1.1 %d X\r\n" % code + conn_hdr + b"\r\n") and keep
            return simple(code, b"Whatever", b'{"upstream_status":%d}' % code)
        if mode == "headers":
            extra = (b"X-Custom: kept\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nConnection: X-Hop-Resp\r\n"
                     b"X-Hop-Resp: must-go\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
                     b"X-Request-Id: upstream-rid\r\nServer: upstream/1.0\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
                     b'RateLimit-Policy: "upstream";q=9;w=9\r\nRateLimit: "upstream";r=9;t=9\r\n')  # fmt: skip
            return simple(201, b"Created", b'{"created":true}', extra=extra)
        if mode == "big":
            return self._big(sock, int(arg("size", "0")), arg("chunked") == "1", keep, head_only)
        if mode == "hang":
            after = arg("after")
            if after is None:
                self._wait_peer_close(conn)
                return False
            if self._wait_peer_close(conn, float(after)):
                return False
            return simple(200, b"OK", json.dumps(seen.echo()).encode())
        if mode == "close":
            return False
        if mode == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if mode == "garbage":
            self._send(sock, GARBAGE)
            return False
        if mode == "cut":
            size = int(arg("size", "1000000"))
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % size
            self._send(sock, head + pattern_bytes(size // 2))
            time.sleep(0.05)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if mode == "raw":
            self._send(sock, RAW_RESPONSES[arg("v")])
            return False
        if mode == "overflow":
            first = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfirst"
            self._send(sock, first + SMUGGLED_RESPONSE)
            return keep
        return simple(500, b"Internal Server Error", b'{"upstream":"unknown mode"}')

    def _wait_peer_close(self, conn, timeout=None):
        """Waits, reading and discarding, until the peer closes (True) or `timeout` passes
        (False) or the upstream is closed (True)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        sock = conn.sock
        while True:
            with self.lock:
                if self.closed:
                    return True
            left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if left <= 0:
                return False
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return True
            finally:
                sock.settimeout(None)
            if not data:
                return True

    def _big(self, sock, size, chunked, keep, head_only):
        framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % size
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" + framing
                + (b"" if keep else b"Connection: close\r\n") + b"\r\n")  # fmt: skip
        if not self._send(sock, head):
            return False
        if head_only:
            return keep
        for c in pattern_chunks(size, 256 * 1024):
            data = (b"%x\r\n" % len(c) + bytes(c) + b"\r\n") if chunked else c
            if not self._send(sock, data):
                return False
            with self.lock:
                self.body_bytes_sent += len(c)
        if chunked and not self._send(sock, b"0\r\n\r\n"):
            return False
        return keep


def dead_port():
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------- the client's side
#
# Requests to the gateway are made with http.client, not `requests`: the request target is sent
# byte for byte (no dot-segment removal, no re-quoting), headers exactly as listed (repeats
# included, no Accept-Encoding or User-Agent added), and the response's headers keep repeats.


class GwResponse:
    """A response read off the gateway: `status`, `headers` [(name, value)], `content`."""

    def __init__(self, status, reason, headers, content):
        self.status = self.status_code = status
        self.reason = reason
        self.headers_list = headers
        self.headers = _Headers(headers)
        self.content = content

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers_list if k.lower() == name]

    def __repr__(self):
        return f"<GwResponse {self.status} {self.content[:300]!r}>"


class _Headers(dict):
    """Case-insensitive view of the response's headers (repeats joined with ", ")."""

    def __init__(self, pairs):
        super().__init__()
        for k, v in pairs:
            k = k.lower()
            super().__setitem__(k, v if k not in self else self[k] + ", " + v)

    def __getitem__(self, k):
        return super().__getitem__(k.lower())

    def __contains__(self, k):
        return super().__contains__(k.lower())

    def get(self, k, default=None):
        return super().get(k.lower(), default)


def gw_request(port, method, target, headers=(), body=None, timeout=15.0, conn=None, host="apikeyd"):
    """One request to 127.0.0.1:`port` with `target` sent as is; `headers` a list of (name, value)
    (or a dict). A `body` (bytes) gets its Content-Length unless `headers` frame it. Returns a
    GwResponse; with `conn` (an http.client.HTTPConnection) the request goes on that connection."""
    import http.client

    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
        if not any(k.lower() == "host" for k, _ in pairs):
            c.putheader("Host", host)
        for k, v in pairs:
            c.putheader(k, v)
        framed = any(k.lower() in ("content-length", "transfer-encoding") for k, _ in pairs)
        if body is not None and not framed:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        content = r.read()
        return GwResponse(r.status, r.reason, [(k, v) for k, v in r.getheaders()], content)
    finally:
        if conn is None:
            c.close()


_ERROR_SCHEMAS = {}


def check_gateway_response(r):
    """Validates an answer of apikeyd's own on a gateway route against the response that
    docs/openapi.yaml's components/pathItems/GatewayRoute documents for its status: the status
    is documented, required headers are there, headers and body match their schemas."""
    from conftest import SPEC, strict_json

    op = SPEC.doc["components"]["pathItems"]["GatewayRoute"]["get"]
    where = f"gateway route {r.status}"
    assert str(r.status) in op["responses"], f"{where}: status not documented for a gateway route"
    resp = SPEC.resolve(op["responses"][str(r.status)])
    SPEC.check_headers(resp, r.headers, where)
    content = (resp.get("content") or {}).get("application/json")
    if content is not None:
        SPEC._raise(SPEC.validator(content["schema"]), strict_json(r.content.decode("utf-8")), where)


def assert_gw_error(r, status, code, gateway=True):
    """`r` (a GwResponse) is `status` with the API's JSON error `code`, in the shape of
    docs/openapi.yaml's Error schema (with the code pinned) and, for a gateway route's answer
    (`gateway`), as components/pathItems/GatewayRoute documents that status; returns the body."""
    import copy

    from conftest import SPEC, strict_json

    assert r.status == status, f"expected {status} {code}, got {r.status}: {r.content[:300]!r}"
    ctype = r.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", f"{status} {code}: Content-Type {ctype!r}"
    body = strict_json(r.content.decode("utf-8"))
    schema = _ERROR_SCHEMAS.get(code)
    if schema is None:
        schema = _ERROR_SCHEMAS[code] = copy.deepcopy(SPEC.schema("Error"))
        schema["properties"]["error"]["properties"]["code"].pop("enum", None)
        schema["properties"]["error"]["properties"]["code"]["const"] = code
    SPEC._raise(SPEC.validator(schema), body, f"{status} {code}")
    if gateway:
        check_gateway_response(r)
    if status == 401:
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers_list
    return body


def rss_anon_kib(pid):
    """RssAnon of process `pid` in KiB (anonymous resident memory: heap, stacks, anonymous mmaps;
    not the page cache of files it maps)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError(f"no RssAnon in /proc/{pid}/status")


class RssSampler:
    """Samples RssAnon of `pid` on a thread every `interval` s until stopped; `.peak` in KiB."""

    def __init__(self, pid, interval=0.01):
        self.pid = pid
        self.interval = interval
        self.samples = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self):
        while not self.stopping.is_set():
            try:
                self.samples.append(rss_anon_kib(self.pid))
            except (OSError, AssertionError):
                return
            self.stopping.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(5)

    @property
    def peak(self):
        return max(self.samples) if self.samples else 0


def parse_metrics(text):
    """Prometheus text exposition -> {(name, frozenset of (label, value)): value}."""
    import re

    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if not m:
            continue
        labels = frozenset(label_re.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(parsed, name, **labels):
    """The value of `name` with exactly `labels`, or 0 when the series is absent."""
    return parsed.get((name, frozenset(labels.items())), 0.0)


# ---------------------------------------------------------------------- self-test


def _selftest():
    import http.client

    def request(up, method, target, headers=(), body=None, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", up.port, timeout=10)
        c.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", "up")
        for k, v in headers:
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        return r, data, c

    with Upstream() as up:
        # Echo, keep-alive, headers in order with repeats, raw target.
        r, data, c = request(up, "GET", "/a%2Fb/c?x=1&y=%20", [("X-A", "1"), ("X-A", "2")])
        assert r.status == 200, r.status
        echo = json.loads(data)
        assert echo["target"] == "/a%2Fb/c?x=1&y=%20" and ["X-A", "1"] in echo["headers"] and ["X-A", "2"] in echo["headers"]
        r, data, _ = request(up, "POST", "/upload", body=b"hello", conn=c)
        echo = json.loads(data)
        assert echo["body_len"] == 5 and echo["body_sha256"] == hashlib.sha256(b"hello").hexdigest()
        assert up.connections == 1 and len(up.requests) == 2 and up.requests[1].header_all("x-a") == []
        c.close()
        # Chunked upload, streamed.
        s = socket.create_connection(("127.0.0.1", up.port))
        s.sendall(b"POST /c HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
        resp = b""
        while b"}" not in resp:
            resp += s.recv(65536)
        assert json.loads(resp.split(b"\r\n\r\n", 1)[1])["body_sha256"] == hashlib.sha256(b"abcde").hexdigest()
        # Two requests pipelined: both recorded, in order.
        s.sendall(b"GET /p1 HTTP/1.1\r\nHost: up\r\n\r\nGET /p2 HTTP/1.1\r\nHost: up\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
        s.close()
        assert [x.target for x in up.requests[-2:]] == ["/p1", "/p2"]
        # Big body, Content-Length and chunked, hashed on both ends.
        for chunked in ("0", "1"):
            size = 3 * BLOCK + 12345
            r, data, c = request(up, "GET", f"/big?up=big&size={size}&chunked={chunked}")
            assert len(data) == size and hashlib.sha256(data).hexdigest() == pattern_sha256(size)
            c.close()
        # Status, headers.
        r, data, c = request(up, "GET", "/s?up=status&code=418")
        assert r.status == 418
        c.close()
        r, data, c = request(up, "GET", "/h?up=headers")
        assert r.status == 201 and r.msg.get_all("Set-Cookie") == ["a=1", "b=2"] and r.getheader("X-Hop-Resp")
        c.close()
        # Garbage, close, reset: no HTTP answer.
        for mode in ("garbage", "close", "reset"):
            try:
                request(up, "GET", f"/x?up={mode}")
            except (http.client.HTTPException, ConnectionError):
                pass
            else:
                raise AssertionError(f"{mode}: got an HTTP answer")
        # Hang: nothing within 0.5 s; hang&after: the answer comes.
        c = http.client.HTTPConnection("127.0.0.1", up.port, timeout=0.5)
        try:
            request(up, "GET", "/x?up=hang", conn=c)
        except socket.timeout:
            pass
        else:
            raise AssertionError("hang answered")
        c.close()
        r, data, c = request(up, "GET", "/x?up=hang&after=0.2")
        assert r.status == 200
        c.close()
        # cut: the body is short.
        try:
            request(up, "GET", "/x?up=cut&size=100000")
        except (http.client.IncompleteRead, ConnectionError):
            pass
        else:
            raise AssertionError("cut gave a whole body")
        # overflow: the smuggled response sits behind the first.
        s = socket.create_connection(("127.0.0.1", up.port), timeout=10)
        s.sendall(b"GET /x?up=overflow HTTP/1.1\r\nHost: up\r\n\r\n")
        got = b""
        while not got.endswith(SMUGGLED_BODY):
            got += s.recv(65536)
        assert b"\r\n\r\nfirstHTTP/1.1 200 OK" in got
        s.close()
        # close_idle: an idle kept-alive connection is closed by the upstream.
        r, data, c = request(up, "GET", "/idle")
        up.wait(lambda u: u.idle, what="the idle connection")
        assert up.close_idle() == 1
        up.wait(lambda u: not u.idle, what="the idle connection to close")
        c.close()
        # Bad bytes are recorded as such.
        s = socket.create_connection(("127.0.0.1", up.port))
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        while s.recv(65536):
            pass
        s.close()
        assert up.requests[-1].bad
    with Upstream(mode="status") as up2:
        r, data, c = request(up2, "GET", "/?code=404")
        assert r.status == 404
        c.close()
    assert dead_port() > 0
    print("upstream self-test: ok")


if __name__ == "__main__":
    _selftest()
