"""Gateway mode (issue 15: docs/design/issue-15.md, docs/contract.md "Gateway mode"), black-box,
on both backends: what the upstream receives and what the client gets back on an accepted request.

A real upstream (tests/api/upstream.py) records every request it receives, byte for byte.

- Identity: X-Account-Id, X-Key-Id, X-Key-Type, X-Key-Prefix (and X-Key-Scopes, X-Key-Expires-At
  for restricted / soon-expiring keys) arrive with the values /v1/auth/verify answers for the same
  key; X-Request-Id is the request's own id (the one the client gets back and the access log
  shows); X-Forwarded-For is the client's with the peer appended; X-Forwarded-Proto is http.
- Nothing the client sends can pass for them: its X-Account-Id, X-Key-*, X-Request-Id and
  X-Forwarded-Proto are replaced or removed; Authorization is removed unless the route keeps it;
  hop-by-hop headers never reach the upstream (nor the client, from the upstream).
- `;public` routes need no key and carry no identity.
- Paths: the prefix is replaced by the upstream URL's path, the raw path and the query are kept;
  the longest prefix wins; a prefix matches whole segments only; dot segments and encoded
  `.`, `/`, `\\` are 400 invalid_path; an Upgrade is 400 upgrade_not_supported; none of these
  reaches the upstream.
- The management API, verify, /healthz and the dashboard work next to routes.
- The access log has one line per gateway request (path without query, key prefix, status, the
  request id) and never a key.

Every test shares one server and two upstreams per backend (module scope) and makes its own keys.
"""

import re
import uuid
from types import SimpleNamespace

import pytest

from conftest import (
    LOG_TIMEOUT,
    Client,
    ServerFactory,
    forge_key,
    wait_until,
)
from lifecycle import DAY, now, rfc3339
from upstream import Upstream, assert_gw_error, gw_request

VERIFY = "/v1/auth/verify"
IDENTITY = ("X-Account-Id", "X-Key-Id", "X-Key-Type", "X-Key-Prefix")
GENERATED_RID = re.compile(r"^[0-9a-f]{32}$")
HOP_BY_HOP = ("connection", "keep-alive", "te", "transfer-encoding", "upgrade", "proxy-connection", "proxy-authorization")


@pytest.fixture(scope="module")
def gw(backend, apikeyd_bin, tmp_path_factory):
    a, b = Upstream(name="a"), Upstream(name="b")
    routes = [
        f"/api={a.url}",
        f"/api/admin={b.url}",
        f"/base={a.url}/inner",
        f"/pub={a.url}/public;public",
        f"/keep={a.url};keep-authorization",
        f"/v2={a.url}/v2",
        f"/slash={a.url}/inner/",  # a trailing / of the upstream path is ignored
    ]
    factory = ServerFactory(backend, tmp_path_factory.mktemp("gateway"))
    args = ["--max-keys", "1000", "--auth-failures", "0"]
    for r in routes:
        args += ["--route", r]
    try:
        server = factory(*args)
        yield SimpleNamespace(server=server, a=a, b=b, acme=server.account)
    finally:
        factory.close_all()
        a.close()
        b.close()


def send(gw, target, key=None, method="GET", headers=(), body=None, **kw):
    """A request to the gateway with `key` (None: no Authorization)."""
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    if key is not None:
        hdrs.insert(0, ("Authorization", f"Bearer {key}"))
    return gw_request(gw.server.port, method, target, hdrs, body, **kw)


def marker():
    return "t-" + uuid.uuid4().hex[:12]


def one(up, mark):
    """The one request the upstream received whose target holds `mark`."""
    seen = up.matching(mark)
    assert len(seen) == 1, f"the upstream received {len(seen)} requests with {mark}: {seen}"
    return seen[0]


def make(client, name="Key", key_type="production", **fields):
    r = client.post(json={"name": name, "key_type": key_type, **fields})
    assert r.status_code == 201, r.text
    return r.body


def verify_headers(gw, key):
    r = Client(gw.server, key).request("GET", VERIFY)
    assert r.status_code == 204, r.text
    return r.headers


def assert_nothing_reached(gw, count_a, count_b, what):
    assert gw.a.count() == count_a and gw.b.count() == count_b, (
        f"{what}: the upstream received {gw.a.since(count_a) + gw.b.since(count_b)}"
    )


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("key_type", ["production", "sandbox"])
def test_identity_headers_arrive_as_verify_gives_them(gw, key_type):
    k = make(gw.acme.client, f"identity {key_type}", key_type)
    m = marker()
    r = send(gw, f"/api/{m}/users?x=1", k["api_key"])
    assert r.status == 200, r
    seen = one(gw.a, m)
    assert seen.target == f"/{m}/users?x=1"
    expected = verify_headers(gw, k["api_key"])
    for name in IDENTITY:
        assert seen.header(name) == expected[name], (name, seen.headers)
    assert seen.header("X-Account-Id") == str(gw.acme.id)
    assert seen.header("X-Key-Id") == str(k["id"])
    assert seen.header("X-Key-Type") == key_type
    assert seen.header("X-Key-Prefix") == k["key_prefix"]
    # An unrestricted key that never expires: neither of the optional ones.
    assert seen.header("X-Key-Scopes") is None and seen.header("X-Key-Expires-At") is None
    # The request's id, the one the client got back; the forwarding headers; the upstream's Host.
    assert seen.header("X-Request-Id") == r.headers["X-Request-Id"]
    assert GENERATED_RID.match(r.headers["X-Request-Id"])
    assert seen.header("X-Forwarded-For") == "127.0.0.1"
    assert seen.header("X-Forwarded-Proto") == "http"
    assert seen.header("Host") == f"127.0.0.1:{gw.a.port}"
    assert seen.header("Authorization") is None
    assert k["api_key"] not in seen.raw_head.decode("latin-1")
    # The client gets the upstream's answer, with the request id, and no identity header.
    assert r.json()["target"] == seen.target
    for name in IDENTITY:
        assert name not in r.headers


def test_restricted_and_expiring_key_headers_as_verify_gives_them(gw):
    k = make(gw.acme.client, "restricted", scopes=["posts:read", "billing:*"], expires_at=rfc3339(now() + 3 * DAY))
    m = marker()
    r = send(gw, f"/api/{m}", k["api_key"])
    assert r.status == 200, r
    seen = one(gw.a, m)
    expected = verify_headers(gw, k["api_key"])
    assert seen.header("X-Key-Scopes") == expected["X-Key-Scopes"] == "billing:* posts:read"
    assert seen.header("X-Key-Expires-At") == expected["X-Key-Expires-At"] == k["expires_at"]
    for name in IDENTITY:
        assert seen.header(name) == expected[name]


SPOOFED = [
    ("X-Account-Id", "999999"),
    ("X-Key-Id", "999999"),
    ("x-key-id", "999998"),
    ("X-Key-Type", "sandbox"),
    ("X-Key-Prefix", "ml_prod_evil"),
    ("X-Key-Scopes", "admin:*"),
    ("X-Key-Expires-At", "2099-01-01T00:00:00Z"),
    ("X-Key-Whatever", "anything"),
    ("X-KEY-ROLE", "admin"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Proto", "wss"),
]


def assert_no_spoofed_value(seen):
    """Only apikeyd's own X-Key-* names, each once; nothing the client sent in them."""
    names = seen.header_names()
    keys = [n for n in names if n.startswith("x-key-")]
    assert len(keys) == len(set(keys)), f"an X-Key-* header came twice: {seen.headers}"
    assert set(keys) <= {"x-key-id", "x-key-type", "x-key-prefix", "x-key-scopes", "x-key-expires-at"}, seen.headers
    values = [v for _, v in seen.headers]
    for _, v in SPOOFED:
        if v not in ("sandbox",):  # a real key type could be a real value
            assert v not in values, f"the client's {v!r} reached the upstream: {seen.headers}"
    assert seen.header_all("X-Forwarded-Proto") == ["http"]


def test_client_identity_headers_are_replaced(gw):
    k = make(gw.acme.client, "victim of spoofing")
    m = marker()
    r = send(gw, f"/api/{m}", k["api_key"], headers=SPOOFED + [("X-Request-Id", "client-rid-0042")])
    assert r.status == 200, r
    seen = one(gw.a, m)
    assert_no_spoofed_value(seen)
    assert seen.header_all("X-Account-Id") == [str(gw.acme.id)]
    assert seen.header_all("X-Key-Id") == [str(k["id"])]
    assert seen.header_all("X-Key-Type") == ["production"]
    assert seen.header_all("X-Key-Prefix") == [k["key_prefix"]]
    # A sane id of the client's is the request's id (contract, "Request ids"), and only it.
    assert r.headers["X-Request-Id"] == "client-rid-0042"
    assert seen.header_all("X-Request-Id") == ["client-rid-0042"]


@pytest.mark.parametrize("rids", [["a/b"], ["<script>"], ["req-1", "req-2"]], ids=["slash", "brackets", "twice"])
def test_client_request_id_that_is_not_taken_never_reaches_the_upstream(gw, rids):
    m = marker()
    r = send(gw, f"/api/{m}", gw.acme.key, headers=[("X-Request-Id", v) for v in rids])
    assert r.status == 200, r
    rid = r.headers["X-Request-Id"]
    assert GENERATED_RID.match(rid), rid
    assert one(gw.a, m).header_all("X-Request-Id") == [rid]


def test_public_route_needs_no_key_and_carries_no_identity(gw):
    for key in (None, gw.acme.key):
        m = marker()
        r = send(gw, f"/pub/{m}?q=1", key, headers=SPOOFED)
        assert r.status == 200, r
        seen = one(gw.a, m)
        assert seen.target == f"/public/{m}?q=1"
        for name in IDENTITY + ("X-Key-Scopes", "X-Key-Expires-At"):
            assert seen.header_all(name) == [], (name, seen.headers)
        assert not [n for n in seen.header_names() if n.startswith("x-key-")], seen.headers
        assert seen.header("Authorization") is None
        assert seen.header_all("X-Request-Id") == [r.headers["X-Request-Id"]]
        assert seen.header("X-Forwarded-For") == "127.0.0.1"
        assert seen.header_all("X-Forwarded-Proto") == ["http"]


def test_x_forwarded_for_gets_the_peer_appended(gw):
    m = marker()
    assert send(gw, f"/api/{m}", gw.acme.key, headers=[("X-Forwarded-For", "198.51.100.7")]).status == 200
    assert one(gw.a, m).header("X-Forwarded-For") in ("198.51.100.7, 127.0.0.1", "198.51.100.7,127.0.0.1")
    # Two headers from the client: every hop kept, in order, the peer last.
    m = marker()
    hdrs = [("X-Forwarded-For", "192.0.2.1, 192.0.2.2"), ("X-Forwarded-For", "192.0.2.3")]
    assert send(gw, f"/api/{m}", gw.acme.key, headers=hdrs).status == 200
    hops = [h.strip() for v in one(gw.a, m).header_all("X-Forwarded-For") for h in v.split(",")]
    assert hops == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "127.0.0.1"]


def test_authorization_removed_unless_the_route_keeps_it(gw):
    m = marker()
    assert send(gw, f"/api/{m}", gw.acme.key).status == 200
    assert one(gw.a, m).header_all("Authorization") == []
    m = marker()
    r = send(gw, f"/keep/{m}", gw.acme.key)
    assert r.status == 200, r
    seen = one(gw.a, m)
    assert seen.target == f"/{m}"
    assert seen.header_all("Authorization") == [f"Bearer {gw.acme.key}"]
    assert seen.header("X-Key-Id") == str(gw.acme.primary_id)


def test_hop_by_hop_request_headers_never_reach_the_upstream(gw):
    m = marker()
    hdrs = [
        ("Connection", "keep-alive, X-Hop-Req"),
        ("X-Hop-Req", "must-go"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Proxy-Connection", "keep-alive"),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
        ("X-End-To-End", "kept"),
        ("X-Multi", "one"),
        ("X-Multi", "two"),
        ("User-Agent", "gateway-test/1"),
    ]
    r = send(gw, f"/api/{m}", gw.acme.key, headers=hdrs)
    assert r.status == 200, r
    seen = one(gw.a, m)
    names = seen.header_names()
    for name in ("x-hop-req", "expect") + tuple(h for h in HOP_BY_HOP if h != "connection"):
        assert name not in names, f"{name} reached the upstream: {seen.headers}"
    for v in seen.header_all("Connection"):  # apikeyd's own to its upstream, if any
        assert "x-hop-req" not in v.lower()
    assert "dXNlcjpwYXNz" not in seen.raw_head.decode("latin-1")
    assert seen.header("X-End-To-End") == "kept"
    assert ", ".join(seen.header_all("X-Multi")) in ("one, two", "one,two")
    assert seen.header("User-Agent") == "gateway-test/1"


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "PROPFIND", "PURGE"])
def test_any_method_reaches_the_upstream(gw, method):
    """A gateway route never answers 405: every method is the upstream's business."""
    m = marker()
    r = send(gw, f"/api/{m}", gw.acme.key, method=method)
    assert r.status == 200, r
    assert one(gw.a, m).method == method


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_method_and_body_reach_the_upstream_with_content_length(gw, method):
    m = marker()
    body = b'{"hello": "' + b"x" * 5000 + b'"}'
    r = send(gw, f"/api/{m}", gw.acme.key, method=method, headers=[("Content-Type", "application/json")], body=body)
    assert r.status == 200, r
    seen = one(gw.a, m)
    assert seen.method == method
    assert seen.complete and seen.body_len == len(body) and seen.body_head == body
    assert seen.header_all("Content-Length") == [str(len(body))]
    assert seen.header_all("Transfer-Encoding") == []
    assert seen.header("Content-Type") == "application/json"


def test_expect_100_continue_is_answered_by_apikeyd(gw):
    """The client waits for `100 Continue` before it sends the body; the upstream gets the body
    and no Expect header."""
    import socket

    m = marker()
    body = b"z" * 3000
    with socket.create_connection(("127.0.0.1", gw.server.port), timeout=15) as sock:
        sock.sendall((f"POST /api/{m} HTTP/1.1\r\nHost: apikeyd\r\nAuthorization: Bearer {gw.acme.key}\r\n"
                      f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode())  # fmt: skip
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(65536)
            assert chunk, f"closed before 100 Continue: {interim!r}"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100"), interim[:200]
        sock.sendall(body)
        final = interim.split(b"\r\n\r\n", 1)[1]
        while not final.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, f"closed before the answer: {final!r}"
            final += chunk
    assert final.startswith(b"HTTP/1.1 200"), final[:300]
    seen = one(gw.a, m)
    assert seen.body_len == len(body) and seen.header_all("Expect") == []


def test_chunked_request_body_reaches_the_upstream_with_content_length(gw):
    m = marker()
    body = b"abc" * 10000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:7], body[7:20000], body[20000:])) + b"0\r\n\r\n"
    r = send(gw, f"/api/{m}", gw.acme.key, method="POST", headers=[("Transfer-Encoding", "chunked")], body=chunked)
    assert r.status == 200, r
    seen = one(gw.a, m)
    assert seen.body_len == len(body) and seen.body_head == body[: len(seen.body_head)]
    assert seen.header_all("Content-Length") == [str(len(body))]
    assert seen.header_all("Transfer-Encoding") == []


# --------------------------------------------------------------------------- the answer


def test_upstream_status_and_body_reach_the_client(gw):
    for code in (404, 500, 502, 503):
        r = send(gw, f"/api/{marker()}?up=status&code={code}", gw.acme.key)
        assert r.status == code, r
        assert r.json() == {"upstream_status": code}  # the upstream's own body, not an API error
        assert GENERATED_RID.match(r.headers["X-Request-Id"])
    r = send(gw, f"/api/{marker()}?up=status&code=204", gw.acme.key)
    assert r.status == 204 and r.content == b""
    # HEAD: the head only.
    m = marker()
    r = send(gw, f"/api/{m}", gw.acme.key, method="HEAD")
    assert r.status == 200 and r.content == b""
    assert one(gw.a, m).method == "HEAD"


def test_upstream_response_headers_reach_the_client(gw):
    r = send(gw, f"/api/{marker()}?up=headers", gw.acme.key)
    assert r.status == 201 and r.json() == {"created": True}
    assert r.headers["X-Custom"] == "kept"
    assert r.header_all("Set-Cookie") == ["a=1", "b=2"]
    # apikeyd's own X-Request-Id, Date and Server replace the upstream's.
    assert len(r.header_all("X-Request-Id")) == 1 and GENERATED_RID.match(r.headers["X-Request-Id"]), r.headers_list
    assert "2001" not in r.headers.get("Date", "") and len(r.header_all("Date")) <= 1, r.headers_list
    assert "upstream/1.0" not in r.header_all("Server"), r.headers_list
    # A key without limits: the upstream's own RateLimit fields pass, once each.
    assert r.header_all("RateLimit-Policy") == ['"upstream";q=9;w=9'] and r.header_all("RateLimit") == ['"upstream";r=9;t=9']


def test_hop_by_hop_response_headers_never_reach_the_client(gw):
    """The upstream answers `Connection: X-Hop-Resp`, `X-Hop-Resp`, `Keep-Alive`,
    `Proxy-Connection`: none of them reaches the client (contract: removed from the upstream's
    headers, `Connection` and the headers it names among them)."""
    r = send(gw, f"/api/{marker()}?up=headers", gw.acme.key)
    assert r.status == 201
    for name in ("X-Hop-Resp", "Proxy-Connection", "Keep-Alive"):
        assert name not in r.headers, f"hop-by-hop {name} reached the client: {r.headers_list}"
    for v in r.header_all("Connection"):  # apikeyd's own, to its client
        assert "x-hop-resp" not in v.lower(), r.headers_list


def test_head_then_get_on_one_upstream_connection_stay_in_step(gw):
    """Responses without a body (HEAD, 204, 304) must not shift the pooled connection's framing:
    every answer is the one to its own request."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", gw.server.port, timeout=15)
    try:
        for _ in range(6):
            m = marker()
            for method, target in (("HEAD", f"/api/{m}/h"), ("GET", f"/api/{m}/g?up=status&code=304"),
                                   ("GET", f"/api/{m}/n?up=status&code=204"), ("GET", f"/api/{m}/e")):  # fmt: skip
                r = send(gw, target, gw.acme.key, method=method, conn=conn)
                if target.endswith("/e"):
                    assert r.status == 200 and r.json()["target"] == f"/{m}/e", r
                else:
                    assert r.status in (200, 204, 304) and r.content == b"", r
    finally:
        conn.close()


# --------------------------------------------------------------------------- paths

REWRITES = [
    # (client target, upstream "a" or "b", target the upstream receives)
    ("/api/{m}/users?x=1", "a", "/{m}/users?x=1"),
    ("/api/{m}/a/b/c/", "a", "/{m}/a/b/c/"),
    ("/api/{m}/a%20b/caf%C3%A9?q=%2F%2e%5c&r=../x&s", "a", "/{m}/a%20b/caf%C3%A9?q=%2F%2e%5c&r=../x&s"),
    ("/api/{m}/x;v=1/y:z@w!$&'()*+,=", "a", "/{m}/x;v=1/y:z@w!$&'()*+,="),
    ("/api?m={m}", "a", "/?m={m}"),
    ("/api/?m={m}", "a", "/?m={m}"),
    ("/base/{m}/users?x=1", "a", "/inner/{m}/users?x=1"),
    ("/base?m={m}", "a", "/inner?m={m}"),
    ("/base/?m={m}", "a", "/inner/?m={m}"),
    ("/base", "a", "/inner"),
    ("/api", "a", "/"),
    ("/api/admin", "b", "/"),
    ("/v2/{m}/keys", "a", "/v2/{m}/keys"),
    ("/api/admin/{m}/x?y=2", "b", "/{m}/x?y=2"),  # the longer prefix wins
    ("/api/admin?m={m}", "b", "/?m={m}"),
    ("/api/administrator/{m}", "a", "/administrator/{m}"),  # not under /api/admin
    ("/api/admins?m={m}", "a", "/admins?m={m}"),
    ("/slash/{m}/x", "a", "/inner/{m}/x"),
    ("/slash", "a", "/inner"),
    ("/slash?m={m}", "a", "/inner?m={m}"),
]


@pytest.mark.parametrize("client_target,which,expected", REWRITES, ids=[c for c, _, _ in REWRITES])
def test_prefix_is_replaced_by_the_upstream_path(gw, client_target, which, expected):
    m = marker()
    before = (gw.a.count(), gw.b.count())
    r = send(gw, client_target.format(m=m), gw.acme.key, headers=[("X-Test-Marker", m)])
    assert r.status == 200, r
    up, other = (gw.a, gw.b) if which == "a" else (gw.b, gw.a)
    seen = one(up, m)
    assert seen.target == expected.format(m=m)
    assert other.count() == before[1 if which == "a" else 0], "the other upstream received it too"


@pytest.mark.parametrize("target", ["/apis", "/apis/x", "/ap", "/api2/x", "/api-x", "/basement", "/pubs", "/v2x/y", "/v3/x"])
def test_prefix_matches_whole_segments_only(gw, target):
    before = (gw.a.count(), gw.b.count())
    r = send(gw, target + f"?m={marker()}", gw.acme.key)
    assert_gw_error(r, 404, "not_found", gateway=False)  # not a route's: apikeyd's own 404
    assert_nothing_reached(gw, *before, target)


INVALID_PATHS = [
    # Each of these, decoded and normalised, is still under a route: a gateway request, refused.
    "/api/./x",
    "/api/x/.",
    "/api/x/..",
    "/api/x/../y",
    "/api/.",
    "/api/%2e/x",
    "/api/a/%2E%2E/x",
    "/api/a/.%2e/x",
    "/api/x/%2e%2E",
    "/api/a%2fb",
    "/api/a%2Fb",
    "/api/a%5cb",
    "/api/a%5Cb",
    "/api/a\\b",
    "/api/admin/%2e%2e/x",
    "/base/x/y/../../z",
    "/pub/a/%2e%2e/x",  # a public route too
]


@pytest.mark.parametrize("target", INVALID_PATHS)
def test_path_hiding_structure_is_400_invalid_path(gw, target):
    before = (gw.a.count(), gw.b.count())
    r = send(gw, target + f"?m={marker()}", gw.acme.key)
    assert_gw_error(r, 400, "invalid_path")
    assert_nothing_reached(gw, *before, target)


ESCAPING = ["/api/..", "/api/%2E%2E/x", "/api/.%2e/x", "/base/x/../../y", "/pub/%2e%2e/x", "/api/../v1/account/api-keys/",
            "/v1/../api/x", "/../api/x", "/x/../api/x", "/api/%2e%2e/%2e%2e/v1/account/api-keys/",
            "/%61pi/x/../y"]  # fmt: skip


@pytest.mark.parametrize("target", ESCAPING)
def test_dot_segments_around_a_prefix_never_reach_the_upstream(gw, target):
    """Paths that dot segments move out of a route (or into one): whatever apikeyd answers (it
    routes on the normalised path: 404, or the API's own answer), the upstream never sees them."""
    before = (gw.a.count(), gw.b.count())
    r = send(gw, target, gw.acme.key)
    assert r.status != 500, r
    assert_nothing_reached(gw, *before, target)


UPGRADES = {
    "websocket": [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                  ("Sec-WebSocket-Version", "13")],
    "h2c": [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")],
    "websocket-keep-alive": [("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket")],
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(UPGRADES))
@pytest.mark.parametrize("route", ["/api", "/pub"])
def test_upgrade_is_400_upgrade_not_supported(gw, kind, route):
    before = (gw.a.count(), gw.b.count())
    r = send(gw, f"{route}/ws?m={marker()}", gw.acme.key, headers=UPGRADES[kind])
    assert_gw_error(r, 400, "upgrade_not_supported")
    assert_nothing_reached(gw, *before, kind)


def test_path_and_upgrade_are_checked_before_the_key(gw):
    before = (gw.a.count(), gw.b.count())
    for key in (None, forge_key()):
        assert_gw_error(send(gw, "/api/a%2fb", key), 400, "invalid_path")
        assert_gw_error(send(gw, "/api/x", key, headers=UPGRADES["websocket"]), 400, "upgrade_not_supported")
    assert_nothing_reached(gw, *before, "refused requests")


def test_upgrade_header_without_the_connection_option_never_reaches_the_upstream(gw):
    """`Upgrade` without `Connection: upgrade` asks for no upgrade (RFC 9110 7.8): refused like
    an upgrade, or passed on without the hop-by-hop header."""
    m = marker()
    r = send(gw, f"/api/{m}", gw.acme.key, headers=[("Upgrade", "websocket")])
    if r.status == 400:
        assert_gw_error(r, 400, "upgrade_not_supported")
        assert not gw.a.matching(m)
    else:
        assert r.status == 200, r
        assert one(gw.a, m).header_all("Upgrade") == []


# --------------------------------------------------------------------------- next to the API


def test_management_api_verify_healthz_and_dashboard_work_next_to_routes(gw):
    before = (gw.a.count(), gw.b.count())
    client = gw.acme.client
    k = make(client, "next to routes", "sandbox")
    assert any(x["id"] == k["id"] for x in client.list())
    assert client.update(k["id"], name="renamed")["name"] == "renamed"
    assert Client(gw.server, k["api_key"]).request("GET", VERIFY).status_code == 204
    assert Client(gw.server).get("/healthz").status_code == 200
    assert Client(gw.server).get("/dashboard/").status_code == 200
    assert Client(gw.server).get("/v1/nothing-here").status_code == 404
    client.remove(k["id"])
    assert_nothing_reached(gw, *before, "the management API")


# --------------------------------------------------------------------------- the access log


def log_line(server, rid):
    def find():
        lines = [line for line in server.log_text().splitlines() if line.endswith(f" rid={rid}")]
        return lines or None

    lines = wait_until(find, LOG_TIMEOUT, what=f"the access-log line with rid={rid}")
    assert len(lines) == 1, lines
    return lines[0]


def test_access_log_has_one_line_per_gateway_request_and_no_key(gw):
    k = make(gw.acme.client, "logged")
    key = k["api_key"]
    cases = [
        # (target, key, expected status, expected key prefix in the log)
        (f"/api/{marker()}/ok?token={key}", key, 200, k["key_prefix"]),
        (f"/api/{marker()}/nokey?token={key}", None, 401, "-"),
        (f"/api/{marker()}/forged", forge_key(), 401, "-"),
        (f"/api/{marker()}/near?x={key}", key[:-1] + ("A" if key[-1] != "A" else "B"), 401, "-"),
        (f"/pub/{marker()}/public?k={key}", None, 200, "-"),
        (f"/api/{marker()}/%2e%2e/x", key, 400, None),
        (f"/api/{marker()}/gone?up=status&code=404", key, 404, k["key_prefix"]),
    ]
    for target, use, status, prefix in cases:
        r = send(gw, target, use, headers=[("X-Echo-Key", key)])
        assert r.status == status, (target, r)
        line = log_line(gw.server, r.headers["X-Request-Id"])
        fields = line.split()
        assert fields[1] == "GET" and fields[3] == str(status), line
        assert fields[2] == target.split("?")[0], line  # the path, never the query
        if prefix is not None:
            assert fields[4] == prefix, line
    text = gw.server.log_text()
    assert key not in text and key[8:40] not in text, "a key is in the log"
