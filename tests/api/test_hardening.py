"""Hardening (issue 5): bad input on raw sockets, resource limits, and no key at rest or in logs.

* Raw sockets: a request with `Content-Length` and `Transfer-Encoding`, two `Content-Length`s,
  a 100 KB header, a request line of garbage: each is answered 400 or 431 (or the connection is
  closed), the connection is closed, nothing hidden behind it is executed, and the server goes on
  serving.
* Timeouts (`--header-timeout`, `--idle-timeout`): 500 connections that send half a request and
  stall do not keep other clients from being served and are closed within the timeout; so is an
  idle keep-alive connection.
* `--max-connections`: past it, a new connection is closed at once (not queued); closing
  connections frees their slots.
* `--auth-failures` (per client address a minute, default 100) and `--client-ip-header`: past
  the limit an unknown or malformed key gets 429 `too_many_failed_attempts` with `Retry-After`,
  while a valid key from the same address still works.
* No full key (nor its secret part) in the database files, the secret file or the logs.

These are properties of the HTTP layer, so most tests run on SQLite only (`sqlite_only`): the
backend plays no part in them. The key grep runs on every backend.

Timeouts are checked with bounds that leave generous slack (`SLACK`); requests from "other
clients" use a short client timeout (`PROMPT`) that is still far above what a local request
takes.
"""

import copy
import os
import re
import resource
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from conftest import (
    BIN,
    COLLECTION,
    HTTP_TIMEOUT,
    SPEC,
    Client,
    assert_error,
    forge_key,
    free_port,
    json_bytes,
    run_cli,
    snapshot,
    strict_json,
    wait_until,
)

LONG = True  # mostly waiting: scheduled first (conftest.pytest_collection_modifyitems)

try:
    from conftest import sqlite_only
except ImportError:  # a conftest without the backend matrix helpers
    sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

VERIFY = "/v1/auth/verify"
RAW_TIMEOUT = 10.0  # a raw exchange: the server answers or closes within this
PROMPT = 2.0  # client timeout for a request that must be served while others stall
SLACK = 5.0  # added to a server timeout before a connection counts as not closed
RETRY_AFTER_RE = re.compile(r"^[1-9][0-9]*$")

# --------------------------------------------------------------------------- helpers


class RawResponse:
    """Enough of a `requests.Response` for `SPEC.check`, from bytes read off a socket."""

    def __init__(self, status, headers, content):
        self.status_code = status
        self.headers = CaseInsensitiveDict(headers)
        self.content = content
        self.text = content.decode("utf-8", "replace")
        self.body = None


def raise_nofile(need):
    """Raises this process's soft RLIMIT_NOFILE to at least `need` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == resource.RLIM_INFINITY or soft >= need, f"RLIMIT_NOFILE is {soft}, need {need}"


def connect(server, timeout=RAW_TIMEOUT):
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def read_until_closed(sock, timeout=RAW_TIMEOUT, what="the server to close the connection"):
    """Reads until EOF (or a reset) and returns the bytes; fails if neither comes in time."""
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"timed out after {timeout} s waiting for {what}; read so far: {b''.join(chunks)[:300]!r}")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return b"".join(chunks)
        except socket.timeout:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def raw_exchange(server, data, timeout=RAW_TIMEOUT):
    """Sends `data` on a fresh connection and reads until the server closes it."""
    with connect(server, timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed before it read everything: what it sent before is still readable
        return read_until_closed(s, timeout, "the server to answer and close the connection")


def parse_response(raw):
    """(RawResponse, the bytes after it) for the first response in `raw`; uses Content-Length."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response header block: {raw[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3})( |$)", lines[0])
    assert m, f"not an HTTP/1.x status line: {lines[0]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"duplicate header {name} in {head!r}"
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    assert len(rest) >= length, f"response body shorter than its Content-Length: {raw[:300]!r}"
    return RawResponse(int(m.group(1)), headers, rest[:length]), rest[length:]


def http_request(method, path, headers=(), body=b"", host="apikeyd"):
    """The bytes of one HTTP/1.1 request; `headers` is a list of (name, value), sent as given."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def component_response(code):
    """The document's components/responses entry for the JSON error `code`, if it has one."""
    for resp in SPEC.doc["components"].get("responses", {}).values():
        schema = ((resp.get("content") or {}).get("application/json") or {}).get("schema", {})
        for part in schema.get("allOf", []):
            if part.get("properties", {}).get("error", {}).get("properties", {}).get("code", {}).get("const") == code:
                return resp
    return None


def error_schema(code):
    """The document's Error schema with `code` pinned, whether or not its enum lists the code yet
    (the hardening codes `bad_request`, `headers_too_large` and `too_many_failed_attempts`)."""
    schema = copy.deepcopy(SPEC.schema("Error"))
    code_schema = schema["properties"]["error"]["properties"]["code"]
    code_schema.pop("enum", None)
    code_schema["const"] = code
    return schema


ERROR_SCHEMAS = {}


def documented(method, path, status, code):
    """Whether docs/openapi.yaml documents `status` with the error `code` for this operation."""
    _, _, op = SPEC.operation(method, path)
    if op is None or str(status) not in op["responses"]:
        return False
    content = SPEC.resolve(op["responses"][str(status)]).get("content") or {}
    schema = (content.get("application/json") or {}).get("schema")
    sample = {"error": {"code": code, "message": "m"}}
    return schema is not None and not list(SPEC.validator(schema).iter_errors(sample))


def check_json_error(method, path, response, status, code):
    """`response` is `status` with a JSON error `code`, validated against docs/openapi.yaml as far
    as it documents it: by the OpenAPI wrapper when it knows the code and lists the status for
    the operation; else against its components/responses entry for the code (headers and body);
    else against its Error schema with the code pinned. Returns the body."""
    where = f"{method} {path} {status} ({code})"
    assert response.status_code == status, (
        f"{method} {path}: expected {status} {code}, got {response.status_code}: {response.content[:300]!r}"
    )
    if documented(method, path, status, code):
        body = SPEC.check(method, path, response)
    else:
        ctype = response.headers.get("Content-Type", "")
        assert ctype.split(";")[0].strip().lower() == "application/json", f"{where}: Content-Type {ctype!r}"
        body = strict_json(response.content.decode("utf-8"))
        resp = component_response(code)
        if resp is not None:
            for name, header in (resp.get("headers") or {}).items():
                header = SPEC.resolve(header)
                value = response.headers.get(name)
                assert value is not None or not header.get("required"), f"{where}: missing header {name}"
                if value is not None and "schema" in header:
                    SPEC._raise(SPEC.validator(header["schema"]), value, f"{where} header {name}")
            schema = resp["content"]["application/json"]["schema"]
        else:
            schema = ERROR_SCHEMAS.setdefault(code, error_schema(code))
        SPEC._raise(SPEC.validator(schema), body, where)
    assert body["error"]["code"] == code, body
    response.body = body
    return body


def assert_throttled(method, path, response):
    """429 `too_many_failed_attempts` with `Retry-After`: a whole number of seconds, 1 to 60."""
    check_json_error(method, path, response, 429, "too_many_failed_attempts")
    after = response.headers.get("Retry-After")
    assert after is not None, f"{method} {path}: 429 without Retry-After"
    assert RETRY_AFTER_RE.match(after) and 1 <= int(after) <= 60, f"Retry-After: {after!r}"
    for name in ("X-Account-Id", "X-Key-Id", "X-Key-Type", "X-Key-Prefix"):
        assert name not in response.headers, f"a 429 must not carry {name}"
    return int(after)


class Attempts:
    """Authenticated requests that may be throttled, on one keep-alive session. Every response
    is validated: a 429 by `assert_throttled`'s rules, anything else by the OpenAPI wrapper."""

    def __init__(self, server):
        self.server = server
        self.session = requests.Session()
        server.clients.add(self)  # closed by Server.stop like a Client

    def request(self, key, method="GET", path=COLLECTION, headers=None, json=None):
        hdrs = {}
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        data = None
        if json is not None:
            data = json_bytes(json)
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        r = self.session.request(method, self.server.base_url + path, headers=hdrs, data=data, timeout=HTTP_TIMEOUT)
        if r.status_code == 429:
            assert_throttled(method, path, r)
        else:
            r.body = SPEC.check(method, path, r)
        return r

    def invalid(self, n, **kw):
        """`n` requests with unknown keys (valid format and checksum); asserts each is 401."""
        for i in range(n):
            r = self.request(forge_key(), **kw)
            assert_error(r, 401, "invalid_api_key")

    def throttled(self, key=None, **kw):
        r = self.request(forge_key() if key is None else key, **kw)
        assert r.status_code == 429, f"expected 429, got {r.status_code}: {r.text}"
        return r


def near_miss(key):
    """`key` with its last character changed: a wrong checksum, one character off a real key."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def still_open(sock):
    """Whether the server has neither closed `sock` nor sent anything on it (nothing to read)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)


def wait_all_closed(socks, deadline):
    """Waits until the server has closed every socket in `socks` (EOF or reset, after any bytes
    it sends first), or `deadline` (monotonic) passes. Returns {sock: monotonic close time}."""
    closed = {}
    poller = select.poll()
    by_fd = {}
    for s in socks:
        s.setblocking(False)
        poller.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
        by_fd[s.fileno()] = s
    while len(closed) < len(socks):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ in poller.poll(min(left, 0.5) * 1000):
            s = by_fd[fd]
            try:
                while True:
                    data = s.recv(65536)
                    if not data:
                        raise ConnectionResetError  # EOF
            except BlockingIOError:
                continue  # read what it sent; not closed yet
            except OSError:
                closed[s] = time.monotonic()
                poller.unregister(fd)
    return closed


# --------------------------------------------------------------------------- bad input on raw sockets

CREATE_BODY = b'{"name": "smuggled", "key_type": "production"}'


def cl_te(key, te_first=False):
    """A create whose body is a chunked terminator followed by a second, smuggled create: a
    server that reads it as chunked runs the smuggled request, one that trusts Content-Length
    runs the first; a correct one runs neither."""
    smuggled = http_request(
        "POST",
        COLLECTION,
        [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"), ("Content-Length", len(CREATE_BODY))],
        CREATE_BODY,
    )
    body = b"0\r\n\r\n" + smuggled
    framing = [("Content-Length", len(body)), ("Transfer-Encoding", "chunked")]
    if te_first:
        framing.reverse()
    return http_request(
        "POST", COLLECTION, [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"), *framing], body
    )


def two_content_lengths(key, first, second):
    return http_request(
        "POST",
        COLLECTION,
        [
            ("Authorization", f"Bearer {key}"),
            ("Content-Type", "application/json"),
            ("Content-Length", first),
            ("Content-Length", second),
        ],
        CREATE_BODY,
    )


def big_header(key, sizes):
    """A valid create carrying extra headers of `sizes` bytes each."""
    extra = [(f"X-Padding-{i}", "a" * n) for i, n in enumerate(sizes)]
    return http_request(
        "POST",
        COLLECTION,
        [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json"), ("Content-Length", len(CREATE_BODY)), *extra],
        CREATE_BODY,
    )


BAD_REQUESTS = {
    # name: (request bytes from the primary key, JSON error apikeyd must answer if it answers JSON)
    "cl-te": (lambda key: cl_te(key), "bad_request"),
    "te-cl": (lambda key: cl_te(key, te_first=True), "bad_request"),
    "cl-te-lowercase": (lambda key: cl_te(key).replace(b"Transfer-Encoding", b"transfer-encoding"), "bad_request"),
    "two-content-lengths": (lambda key: two_content_lengths(key, len(CREATE_BODY), 0), "bad_request"),
    "two-content-lengths-reversed": (lambda key: two_content_lengths(key, 0, len(CREATE_BODY)), "bad_request"),
    "two-content-lengths-larger": (lambda key: two_content_lengths(key, len(CREATE_BODY), len(CREATE_BODY) + 5), "bad_request"),
    "header-100KB": (lambda key: big_header(key, [100 * 1024]), "headers_too_large"),
    "headers-40x1KB": (lambda key: big_header(key, [1024] * 40), "headers_too_large"),  # the total counts
    "request-line-garbage": (lambda key: b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 garbage \xff\xfe\r\n\r\n", None),
    "request-line-words": (lambda key: b"HELLO THERE GENERAL KENOBI\r\n\r\n", None),
    "request-line-nul": (lambda key: b"GET /v1/account/api-keys/\x00 HTTP/1.1\r\nHost: apikeyd\r\n\r\n", None),
}


def assert_refused_and_closed(raw, code):
    """`raw` (everything the server sent before closing) is one 400 or 431 response, or nothing.
    A JSON answer (apikeyd's own, h2o's is plain text) must carry the error `code` for the case."""
    if raw == b"":
        return None
    response, rest = parse_response(raw)
    assert response.status_code in (400, 431), f"expected 400 or 431 (or a closed connection), got {raw[:400]!r}"
    assert rest == b"", f"a second response followed the refusal (a smuggled request ran?): {rest[:300]!r}"
    if response.headers.get("content-type", "").startswith("application/json"):
        # apikeyd's own refusal (h2o's is text/plain): the right JSON error for the case.
        assert code is not None, f"unexpected JSON answer to a garbage request line: {raw[:300]!r}"
        status = 431 if code == "headers_too_large" else 400
        check_json_error("POST", COLLECTION, response, status, code)
    return response


@sqlite_only  # HTTP framing: the storage backend plays no part
@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_request_is_refused_and_server_keeps_serving(shared_server, name):
    server = shared_server
    build, code = BAD_REQUESTS[name]
    before = snapshot(server.client)
    raw = raw_exchange(server, build(server.account.key))
    assert_refused_and_closed(raw, code)
    assert server.proc.poll() is None, "the server died"
    # It keeps serving, on a new connection, and the bad request changed nothing.
    assert Client(server).get("/healthz").status_code == 200
    assert snapshot(Client(server, server.account.key)) == before


@sqlite_only  # HTTP framing: the storage backend plays no part
def test_bad_request_after_a_good_one_on_a_keep_alive_connection(shared_server):
    """The framing check holds for the second request of a connection too, whether it is
    pipelined behind the first or sent after its answer."""
    server = shared_server
    key = server.account.key
    before = snapshot(server.client)
    good = http_request("GET", COLLECTION, [("Authorization", f"Bearer {key}")])
    for bad in (cl_te(key), two_content_lengths(key, len(CREATE_BODY), 0)):
        for pipelined in (True, False):
            with connect(server) as s:
                if pipelined:
                    s.sendall(good + bad)
                else:
                    s.sendall(good)
                    s.settimeout(RAW_TIMEOUT)
                    first = b""
                    while b'"api_keys"' not in first or not first.endswith(b"]}"):
                        chunk = s.recv(65536)
                        assert chunk, f"closed after the good request: {first[:300]!r}"
                        first += chunk
                    s.sendall(bad)
                raw = read_until_closed(s)
            if pipelined:
                first_response, raw = parse_response(raw)
                assert first_response.status_code == 200
            assert_refused_and_closed(raw, "bad_request")
    assert snapshot(server.client) == before


# --------------------------------------------------------------------------- timeouts

HALF_REQUESTS = [
    b"",  # connected, nothing sent
    b"GET /healthz HT",  # half a request line
    b"GET /v1/account/api-keys/ HTTP/1.1\r\nHost: apikeyd\r\nAuthoriz",  # half the headers
    b"POST /v1/account/api-keys/ HTTP/1.1\r\nHost: apikeyd\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"name": ',  # all the headers, part of the body
    b"POST /v1/account/api-keys/ HTTP/1.1\r\nHost: apikeyd\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{",  # chunked
]


def keep_alive_connection(server):
    """A connection that has had one complete request answered and is now idle."""
    s = connect(server)
    s.sendall(http_request("GET", "/healthz"))
    raw = b""
    while not raw.endswith(b'{"status":"ok"}'):
        chunk = s.recv(4096)
        assert chunk, f"closed before the answer: {raw!r}"
        raw += chunk
    response, rest = parse_response(raw)
    assert response.status_code == 200 and rest == b""
    return s


@sqlite_only  # connection handling: the storage backend plays no part
def test_500_stalled_connections_do_not_block_others_and_are_closed(server_factory):
    header_timeout, idle_timeout = 2, 3
    n = 500
    raise_nofile(n + 200)
    server = server_factory("--header-timeout", header_timeout, "--idle-timeout", idle_timeout)
    key = server.account.key
    stalled, opened = [], {}
    try:
        idle = keep_alive_connection(server)
        opened[idle] = time.monotonic()
        for i in range(n):
            s = connect(server)
            opened[s] = time.monotonic()
            if HALF_REQUESTS[i % len(HALF_REQUESTS)]:
                s.sendall(HALF_REQUESTS[i % len(HALF_REQUESTS)])
            stalled.append(s)
        # Other clients are served, promptly, on fresh connections, while the 500 are open.
        for i in range(5):
            r = requests.get(server.base_url + COLLECTION, headers={"Authorization": f"Bearer {key}"}, timeout=PROMPT)
            assert r.status_code == 200
            SPEC.check("GET", COLLECTION, r)
            r = requests.get(server.base_url + "/healthz", timeout=PROMPT)
            assert r.status_code == 200
        created = Client(server, key).create("while stalled", "sandbox")
        served_at = time.monotonic()
        states = [still_open(s) for s in stalled]
        assert states.count(True) == n, (
            f"{states.count(True)} of {n} stalled connections were still open when the other clients had been "
            f"served ({served_at - opened[stalled[0]]:.1f} s after the first was opened): the others were not "
            "served while they stalled"
        )
        # The server closes every stalled connection, and the idle one, within the timeout.
        limit = min(header_timeout, idle_timeout)
        deadline = max(opened.values()) + limit + SLACK
        closed = wait_all_closed(stalled + [idle], deadline)
        assert idle in closed, f"the idle keep-alive connection was not closed within {limit} + {SLACK} s"
        assert len(closed) == n + 1, (
            f"{n + 1 - len(closed)} of {n} stalled connections still open {limit} + {SLACK} s after they were opened"
        )
        late = max(closed[s] - opened[s] for s in closed)
        assert late <= limit + SLACK, late
        # Still serving, and the half-sent creates created nothing.
        names = [k["name"] for k in server.client.list()]
        assert sorted(names) == ["Production Key", "while stalled"] and created["name"] == "while stalled"
        assert server.proc.poll() is None
    finally:
        for s in opened:
            s.close()


@sqlite_only  # connection handling: the storage backend plays no part
def test_idle_timeout_alone_bounds_idle_and_half_requests(server_factory):
    """--idle-timeout 2 with the default header timeout (10 s): an idle keep-alive connection is
    closed within 2 s (+ slack), and so is a half request (h2o 2.2 uses one timer, the shorter)."""
    idle_timeout = 2
    server = server_factory("--idle-timeout", idle_timeout)
    socks = []
    try:
        socks.append(keep_alive_connection(server))
        for half in HALF_REQUESTS[1:3]:
            s = connect(server)
            s.sendall(half)
            socks.append(s)
        start = time.monotonic()
        closed = wait_all_closed(socks, start + idle_timeout + SLACK)
        assert socks[0] in closed, f"an idle keep-alive connection was still open after {idle_timeout} + {SLACK} s"
        assert len(closed) == len(socks), f"a half request was still open after {idle_timeout} + {SLACK} s"
        assert Client(server).get("/healthz").status_code == 200
    finally:
        for s in socks:
            s.close()


@sqlite_only  # connection handling: the storage backend plays no part
def test_default_header_timeout_is_at_most_10_s(server_factory):
    """Without flags, a connection that stalls in its headers is closed within 10 s (+ slack)."""
    server = server_factory()
    with connect(server) as s:
        s.sendall(HALF_REQUESTS[2])
        start = time.monotonic()
        closed = wait_all_closed([s], start + 10 + SLACK)
        assert s in closed, f"a stalled request was still open {10 + SLACK} s later with the default timeouts"


# --------------------------------------------------------------------------- connection cap


def served_connection(server, attempts=50):
    """A new connection on which GET /healthz was answered (so the server holds it), kept open.
    Retries briefly while the server may still be counting connections that were just closed."""
    for _ in range(attempts):
        s = connect(server)
        try:
            s.sendall(http_request("GET", "/healthz"))
            raw = b""
            while not raw.endswith(b'{"status":"ok"}'):
                chunk = s.recv(4096)
                if not chunk:
                    raise ConnectionResetError
                raw += chunk
            return s
        except (ConnectionResetError, BrokenPipeError):
            s.close()
            time.sleep(0.05)
    pytest.fail(f"no connection was served in {attempts} attempts")


def assert_refused_at_once(server):
    """A new connection is closed by the server without an answer, promptly: not queued."""
    with connect(server) as s:
        try:
            s.sendall(http_request("GET", "/healthz"))
        except (BrokenPipeError, ConnectionResetError):
            return
        raw = read_until_closed(s, PROMPT, "a connection past --max-connections to be closed (it was queued?)")
    assert raw == b"", f"a connection past --max-connections was served: {raw[:200]!r}"


@sqlite_only  # connection handling: the storage backend plays no part
def test_max_connections_refuses_new_ones_at_once(server_factory):
    cap = 20
    server = server_factory("--max-connections", cap)
    held = []
    try:
        held = [served_connection(server) for _ in range(cap)]
        assert_refused_at_once(server)
        with pytest.raises(requests.ConnectionError):
            requests.get(server.base_url + "/healthz", timeout=PROMPT)
        # The held connections still work.
        for s in held[:3]:
            s.sendall(http_request("GET", "/healthz"))
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        # Closing some frees their slots: new connections are served again, up to the cap.
        for s in held[:5]:
            s.close()
        del held[:5]

        def fresh_request_served():
            try:
                return requests.get(server.base_url + "/healthz", timeout=PROMPT).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(fresh_request_served, 5.0, what="a new connection to be served after 5 were closed")
        held += [served_connection(server) for _ in range(5)]
        assert_refused_at_once(server)
    finally:
        for s in held:
            s.close()
    # The slots are freed as the server sees the closes: until then a new connection is still refused (reset).
    wait_until(fresh_request_served, 5.0, what="service after every held connection closed")
    assert server.client.list()


@sqlite_only  # connection handling: the storage backend plays no part
def test_connections_closed_by_the_timeout_free_their_slots(server_factory):
    cap, header_timeout = 20, 2
    server = server_factory("--max-connections", cap, "--header-timeout", header_timeout)
    stalled = []
    try:
        for i in range(cap):
            s = served_connection(server)  # held; idle from now on, closed by the server's timer
            s.sendall(HALF_REQUESTS[2])
            stalled.append(s)
        assert_refused_at_once(server)
        closed = wait_all_closed(stalled, time.monotonic() + header_timeout + SLACK)
        assert len(closed) == cap, "the stalled connections were not closed within the timeout"
        held = []
        try:
            for _ in range(cap):
                held.append(served_connection(server))
            assert_refused_at_once(server)
        finally:
            for s in held:
                s.close()
    finally:
        for s in stalled:
            s.close()


# --------------------------------------------------------------------------- failed-auth throttling


@sqlite_only  # per-process throttling in the HTTP layer: the storage backend plays no part
def test_throttle_after_failures_while_valid_keys_work(server_factory):
    limit = 5
    server = server_factory("--auth-failures", limit)
    client = server.client
    inactive = client.create("inactive", "sandbox")
    client.update(inactive["id"], is_active=False)
    deleted = client.create("deleted", "sandbox")
    client.remove(deleted["id"])
    sandbox = client.create("sandbox", "sandbox")
    a = Attempts(server)

    # Missing and deactivated keys are not guesses: they do not count.
    for _ in range(3 * limit):
        assert_error(a.request(None), 401, "missing_api_key")
        assert_error(a.request("", headers={"Authorization": "Bearer "}), 401, "missing_api_key")
        assert_error(a.request(inactive["api_key"]), 401, "key_inactive")
        assert_error(a.request(inactive["api_key"], path=VERIFY), 401, "key_inactive")
    # Unknown keys, malformed keys and deleted keys do: `limit` of them are answered 401...
    for key in [forge_key(), "garbage", deleted["api_key"], forge_key(kind="sand"), near_miss(client.key)][:limit]:
        assert_error(a.request(key), 401, "invalid_api_key")
    # ... and then 429, on every authenticated route.
    waits = [
        assert_throttled("GET", COLLECTION, a.throttled()),
        assert_throttled("GET", COLLECTION, a.throttled("garbage")),
        assert_throttled("GET", COLLECTION, a.throttled(deleted["api_key"])),
        assert_throttled("GET", VERIFY, a.throttled(path=VERIFY)),
        assert_throttled("POST", VERIFY + "/orders", a.throttled(method="POST", path=VERIFY + "/orders")),
        assert_throttled("POST", COLLECTION, a.throttled(method="POST", json={"name": "x", "key_type": "sandbox"})),
        assert_throttled("PATCH", f"{COLLECTION}1/", a.throttled(method="PATCH", path=f"{COLLECTION}1/", json={"name": "x"})),
        assert_throttled("DELETE", f"{COLLECTION}{sandbox['id']}/", a.throttled(method="DELETE", path=f"{COLLECTION}{sandbox['id']}/")),
    ]
    assert waits == sorted(waits, reverse=True), f"Retry-After went up within one window: {waits}"
    # A valid key from the same address still works, on the same connection and on new ones.
    for key in (client.key, sandbox["api_key"]):
        assert a.request(key).status_code == 200
        assert a.request(key, path=VERIFY).status_code == 204
        assert Client(server, key).get().status_code == 200
    created = Client(server, client.key).create("after 429", "sandbox")
    assert a.request(client.key, method="DELETE", path=f"{COLLECTION}{created['id']}/").status_code == 204
    # Missing and deactivated keys are still answered as such, not 429.
    assert_error(a.request(None), 401, "missing_api_key")
    assert_error(a.request(inactive["api_key"], path=VERIFY), 401, "key_inactive")
    # The throttled requests changed nothing.
    assert {k["name"] for k in client.list()} == {"Production Key", "inactive", "sandbox"}


@sqlite_only  # per-process throttling in the HTTP layer: the storage backend plays no part
def test_default_limit_is_100_failures(server_factory):
    server = server_factory()
    a = Attempts(server)
    a.invalid(100)
    a.throttled()
    assert a.request(server.account.key).status_code == 200


@sqlite_only  # per-process throttling in the HTTP layer: the storage backend plays no part
def test_auth_failures_0_turns_throttling_off(server_factory):
    server = server_factory("--auth-failures", 0)
    a = Attempts(server)
    a.invalid(150)
    a.invalid(20, path=VERIFY)


# Whatever the case of the flag's value: HTTP header names are case-insensitive.
@sqlite_only  # per-process throttling in the HTTP layer: the storage backend plays no part
@pytest.mark.parametrize("flag", ["X-Real-IP", "x-real-ip"])
def test_client_ip_header_throttles_each_address_apart(server_factory, flag):
    limit = 3
    server = server_factory("--auth-failures", limit, "--client-ip-header", flag)
    a = Attempts(server)
    first = {"X-Real-IP": "203.0.113.7"}
    second = {"X-Real-IP": "198.51.100.23"}
    a.invalid(limit, headers=first)
    a.throttled(headers=first)
    # Another address behind the same gateway (the same peer) has its own count ...
    a.invalid(limit, headers=second)
    a.throttled(headers=second)
    a.throttled(headers=first)
    # ... and so has a request without the header (the peer's address).
    a.invalid(limit)
    a.throttled()
    # A valid key from a throttled address works.
    assert a.request(server.account.key, headers=first).status_code == 200
    assert a.request(server.account.key, path=VERIFY, headers=second).status_code == 204


@sqlite_only  # per-process throttling in the HTTP layer: the storage backend plays no part
def test_client_ip_header_ignored_without_the_flag(server_factory):
    limit = 3
    server = server_factory("--auth-failures", limit)
    a = Attempts(server)
    for i in range(limit):
        assert_error(a.request(forge_key(), headers={"X-Real-IP": f"203.0.113.{i + 1}"}), 401, "invalid_api_key")
    # Every value is the same client (127.0.0.1): a client cannot pick a fresh address.
    a.throttled(headers={"X-Real-IP": "203.0.113.200"})
    a.throttled(headers={"X-Forwarded-For": "198.51.100.1"})
    a.throttled()


# The rule (README "Behind a gateway"): the header's hops and the peer form one chain; walking it
# from the right, hops in --trusted-proxies (default 127.0.0.0/8,::1/128) are skipped and the first
# untrusted one is the client; the header is asked only of a trusted peer; a hop that does not
# parse makes the client the peer. These tests' peer is 127.0.0.1, trusted by default.
@sqlite_only  # per-process throttling in the HTTP layer: the storage backend plays no part
def test_client_ip_header_right_most_untrusted_hop_of_a_chain(server_factory):
    limit = 3
    server = server_factory("--auth-failures", limit, "--client-ip-header", "X-Forwarded-For",
                            "--trusted-proxies", "127.0.0.0/8,::1/128,10.0.0.0/8")
    a = Attempts(server)
    # A client that writes its own X-Forwarded-For gets it prepended to by the proxies: whatever
    # it puts on the left, it is still the hop the last untrusted proxy saw (203.0.113.7).
    for forged in ("198.51.100.1", "10.9.9.9, 192.0.2.44", "1.1.1.1, 203.0.113.250"):
        assert_error(a.request(forge_key(), headers={"X-Forwarded-For": f"{forged}, 203.0.113.7, 10.0.0.2"}), 401,
                     "invalid_api_key")
    a.throttled(headers={"X-Forwarded-For": "203.0.113.7"})
    a.throttled(headers={"X-Forwarded-For": "203.0.113.7, 10.1.2.3, 127.0.0.1"})
    # IPv4 compares as a 128-bit value: the IPv4-mapped form is the same client.
    a.throttled(headers={"X-Forwarded-For": "::ffff:203.0.113.7"})
    # Another client behind the same proxies has its own count.
    a.invalid(limit, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.8, 10.0.0.2"})
    a.throttled(headers={"X-Forwarded-For": "203.0.113.8"})
    # Two IPv6 clients that share their first 16 characters are two clients (not cut to 16 bytes).
    a.invalid(limit, headers={"X-Forwarded-For": "2001:db8:aaaa:bbbb::1"})
    a.throttled(headers={"X-Forwarded-For": "2001:db8:aaaa:bbbb::1"})
    a.invalid(limit, headers={"X-Forwarded-For": "2001:db8:aaaa:bbbb::2"})
    # A valid key from a throttled client still works (a shared NAT must not lock customers out).
    assert a.request(server.account.key, headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 200


@sqlite_only  # per-process throttling in the HTTP layer: the storage backend plays no part
def test_client_ip_header_unparsable_hops_count_as_the_peer(server_factory):
    limit = 3
    server = server_factory("--auth-failures", limit, "--client-ip-header", "X-Forwarded-For")
    a = Attempts(server)
    # A guesser who sends a fresh garbage value each time is one client: the peer.
    junk = ["unknown", "garbage-1", "203.0.113.7:4711", "203.0.113.7, junk", "[2001:db8::1]", "", "203.0.113.7,"]
    for value in junk[:limit]:
        assert_error(a.request(forge_key(), headers={"X-Forwarded-For": value}), 401, "invalid_api_key")
    for value in junk[limit:]:
        a.throttled(headers={"X-Forwarded-For": value})
    a.throttled()
    # ... and a well-formed client behind the proxy is not.
    a.invalid(limit, headers={"X-Forwarded-For": "203.0.113.9"})


@sqlite_only  # per-process throttling in the HTTP layer: the storage backend plays no part
def test_client_ip_header_ignored_from_an_untrusted_peer(server_factory):
    limit = 3
    server = server_factory("--auth-failures", limit, "--client-ip-header", "X-Forwarded-For",
                            "--trusted-proxies", "10.0.0.0/8")
    a = Attempts(server)
    # The peer (127.0.0.1) is no trusted proxy: its header is not believed, whatever it says.
    for i in range(limit):
        assert_error(a.request(forge_key(), headers={"X-Forwarded-For": f"203.0.113.{i + 1}"}), 401, "invalid_api_key")
    a.throttled(headers={"X-Forwarded-For": "203.0.113.200"})
    a.throttled()


@pytest.mark.parametrize(
    "args",
    [
        ["--client-ip-header", "X-Forwarded-For", "--trusted-proxies", "10.0.0.0/33"],
        ["--client-ip-header", "X-Forwarded-For", "--trusted-proxies", "proxy.example"],
        ["--client-ip-header", "X-Forwarded-For", "--trusted-proxies", "10.0.0.0/8,"],
        ["--client-ip-header", "X-Forwarded-For", "--trusted-proxies", ""],
        # issue 12: --trusted-proxies alone is valid (it implies X-Forwarded-For), and its value is checked alike
        ["--trusted-proxies", "10.0.0.0/33"],
    ],
    ids=["prefix", "name", "trailing comma", "empty", "without --client-ip-header"],
)
def test_bad_trusted_proxies_refused_at_start(args, tmp_path):
    p = run_cli("serve", "--db", str(tmp_path / "x.db"), "--listen", f"127.0.0.1:{free_port()}", *args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "--trusted-proxies" in lines[0], p.stderr
    assert p.stdout == ""


# --------------------------------------------------------------------------- one instance per address


@sqlite_only  # the listening socket: the storage backend plays no part
def test_second_instance_on_the_same_address_fails_to_start(server_factory):
    first = server_factory()
    p = run_cli("serve", "--db", first.db, "--listen", f"127.0.0.1:{first.port}", *first.common_args())
    assert p.returncode == 1, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0] == (f"apikeyd: cannot listen on 127.0.0.1:{first.port}: address already in use "
                        "(another apikeyd? --reuse-port shares it)"), p.stderr
    # Asking for sharing on one side only is not enough: both must.
    p = run_cli("serve", "--db", first.db, "--listen", f"127.0.0.1:{first.port}", "--reuse-port", *first.common_args())
    assert p.returncode == 1 and "address already in use" in p.stderr, (p.returncode, p.stderr)
    # The first instance never stopped serving.
    assert first.client.get().status_code == 200


@sqlite_only  # the listening socket: the storage backend plays no part
def test_reuse_port_on_both_lets_two_instances_share_it(server_factory, tmp_path, apikeyd_bin):
    first = server_factory("--reuse-port", "--threads", 2)
    log = tmp_path / "second.log"
    with open(log, "wb") as err:
        second = subprocess.Popen([str(BIN), "serve", "--db", first.db, "--listen", f"127.0.0.1:{first.port}",
                                   "--reuse-port", "--threads", "2", *first.common_args()],
                                  stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: b"listening on" in log.read_bytes() or second.poll() is not None, 10, what="the second instance")
        assert second.poll() is None, log.read_text()
        for _ in range(20):  # connections land on either instance; both answer
            assert Client(first, first.account.key).get().status_code == 200
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(10) == 0, log.read_text()


# --------------------------------------------------------------------------- no key at rest or in logs


def forms(secret):
    """The byte strings that must not appear anywhere for a secret: the whole of it, the part
    after the 12 characters shown as key_prefix, and the whole in hex."""
    b = secret.encode()
    return {"full key": b, "secret part": b[12:], "hex": b.hex().encode()}


def test_no_key_in_database_secret_file_or_logs(server_factory):
    """Every key that was created or presented (valid, deactivated, deleted, unknown, throttled)
    is absent from the database files, the secret file and the server's stdout and stderr, both
    while it runs and after SIGTERM."""
    server = server_factory("--auth-failures", 3, accounts=("acme", "globex"))
    secret_file = server.secret_file if server.secret_file is not None else server.db + ".secret"
    presented = [a.key for a in server.accounts]
    client = server.client
    created = []
    for i, t in enumerate(["production", "sandbox", "production", "sandbox"]):
        c = client.create(f"k{i}", t)
        created.append(c)
        presented.append(c["api_key"])
    for key in presented:
        c = Client(server, key)
        c.get()
        c.get(f"{COLLECTION}?api_key={key}")
        assert c.get(VERIFY).status_code == 204
        assert c.request("POST", f"{VERIFY}/orders?key={key}").status_code == 204
    Client(server, created[0]["api_key"]).update(created[1]["id"], name="renamed")
    # Deactivated and deleted keys, used: failed attempts with real keys.
    for c in created[:2]:
        client.update(c["id"], is_active=False)
        assert_error(Client(server, c["api_key"]).get(), 401, "key_inactive")
        assert_error(Client(server, c["api_key"]).get(VERIFY), 401, "key_inactive")
    client.remove(created[2]["id"])
    a = Attempts(server)
    assert_error(a.request(created[2]["api_key"]), 401, "invalid_api_key")
    # Near misses of real keys and unknown keys, until they are throttled.
    for key in [near_miss(client.key), forge_key(), forge_key(kind="sand")]:
        presented.append(key)
        r = a.request(key, path=VERIFY)
        assert r.status_code in (401, 429)
    assert a.throttled(created[2]["api_key"]).status_code == 429
    assert a.request(created[3]["api_key"]).status_code == 200

    def scan(when):
        files = [*server.data_files(), Path(secret_file), server.log_path, server.stdout_path]
        assert server.data_files(), "no database files found"
        assert os.path.exists(secret_file), f"no secret file at {secret_file}"
        for path in files:
            data = path.read_bytes() if path.exists() else b""
            for key in presented:
                for what, needle in forms(key).items():
                    assert needle not in data, f"{when}: the {what} of {key[:12]}... is in {path}"

    scan("while running")
    server.stop()
    scan("after SIGTERM")
    if server.backend.name == "sqlite":
        # The database (and whatever of the WAL and shm files remain) was grepped after shutdown.
        assert os.path.exists(server.db)

