"""Gateway mode (issue 15): every refusal stops at the gateway, answered exactly as
/v1/auth/verify answers for the same key, and every gateway request counts like a verify; on
both backends.

- Each refusal reason (missing, invalid, inactive, expired, leaked key; suspended account;
  insufficient scope from `;scopes=`; IP allowlist; rate limited; quota exhausted; throttled
  after failed attempts) gets the same status, JSON body and WWW-Authenticate / Retry-After /
  RateLimit-Policy / RateLimit headers through a route as through verify, no identity header,
  and the upstream receives nothing.
- The client cannot lower a route's scopes (X-Required-Scopes) nor its cost (X-Cost).
- Rate limits, quotas and the failed-attempt throttle are one count for the gateway and verify;
  `last_used` and the usage per key count gateway requests, verified and refused.
- PostgreSQL, two instances on one database: a key deactivated or deleted through one stops
  passing the other's gateway within the propagation bound of test_multi_instance.py.
- PostgreSQL out of reach past --max-staleness (a frozen link, tests/api/tcpproxy.py): 503
  store_unavailable through the gateway as through verify, and the upstream receives nothing.

The module's server trusts 127.0.0.1 as a proxy, so each test names its own client address in
X-Forwarded-For: allowlists see it, and each test has its own failed-attempt count
(--auth-failures 5). It runs on a test clock (APIKEYD_TEST_CLOCK_FILE) for expiry and windows.
"""

import itertools
import re
import threading
from types import SimpleNamespace

import pytest

from conftest import (
    ADMIN_ACCOUNTS,
    COLLECTION,
    LAST_USED_TIMEOUT,
    Client,
    ServerFactory,
    assert_error,
    forge_key,
    instances,
    postgres_only,
    wait_until,
)
from lifecycle import CLOCK_TIMEOUT, DAY, ShiftClock, rfc3339
from tcpproxy import TcpProxy
from upstream import Upstream, assert_gw_error, gw_request

VERIFY = "/v1/auth/verify"
IDENTITY = ("X-Account-Id", "X-Key-Id", "X-Key-Type", "X-Key-Prefix", "X-Key-Scopes", "X-Key-Expires-At")
REFUSAL_HEADERS = ("WWW-Authenticate", "Retry-After", "RateLimit-Policy", "RateLimit")
AUTH_FAILURES = 5
FLUSH_TIMEOUT = 10.0  # a count reaches the store within a flush (every second); generous
PROPAGATION_TIMEOUT = 5.0  # test_multi_instance.py: a change that has not arrived by then is lost
STALENESS = 1  # --max-staleness for the store_unavailable test
# test_partition.py's bound for a stale instance to refuse: max-staleness, the heartbeat (1 s)
# and its deadline (3 s), generous slack. A bound on a poll, not a measured duration.
STALE_BOUND = STALENESS + 1 + 3 + 8
RECOVERY_TIMEOUT = 20.0
REASONS = ["inactive", "expired", "suspended", "scope", "ip", "rate_limited", "quota_exhausted"]
_ADDRESSES = itertools.count(1)


def new_address():
    """A client address of the test's own (TEST-NET-2 and benchmarking blocks)."""
    n = next(_ADDRESSES)
    return f"198.18.{n // 250}.{n % 250 + 1}"


@pytest.fixture(scope="module")
def env(backend, apikeyd_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("gateway-auth")
    clock = ShiftClock(root / "clock")
    up = Upstream(name="auth")
    routes = [f"/api={up.url}", f"/scoped={up.url}/scoped;scopes=posts:write,posts:read", f"/costly={up.url}/costly;cost=3",
              f"/pub={up.url}/pub;public"]  # fmt: skip
    args = ["--max-keys", "1000", "--auth-failures", AUTH_FAILURES, "--trusted-proxies", "127.0.0.1/32"]
    for r in routes:
        args += ["--route", r]
    factory = ServerFactory(backend, root)
    try:
        server = factory(*args, accounts=("acme", "globex"), admin=True, env=clock.env)
        yield SimpleNamespace(server=server, clock=clock, up=up, acme=server.accounts[0], globex=server.accounts[1])
    finally:
        factory.close_all()
        up.close()


def make(client, name="Key", key_type="production", **fields):
    r = client.post(json={"name": name, "key_type": key_type, **fields})
    assert r.status_code == 201, r.text
    return r.body


def through_gateway(env, target, key, ip, headers=()):
    hdrs = [("X-Forwarded-For", ip), *headers]
    if key is not None:
        hdrs.insert(0, ("Authorization", f"Bearer {key}"))
    return gw_request(env.server.port, "GET", target, hdrs)


def through_verify(env, key, ip, headers=None):
    return Client(env.server, key).request("GET", VERIFY, headers={"X-Forwarded-For": ip, **(headers or {})})


def numbers_close(a, b):
    """Header values equal but for their numbers of seconds, which may differ by one (a second
    may turn between the two requests)."""
    na, nb = re.findall(r"\d+", a), re.findall(r"\d+", b)
    return re.sub(r"\d+", "#", a) == re.sub(r"\d+", "#", b) and all(abs(int(x) - int(y)) <= 1 for x, y in zip(na, nb))


def assert_same_refusal(gw_r, verify_r, status, code):
    """The gateway's refusal is verify's: status, body, and the refusal headers."""
    body = assert_gw_error(gw_r, status, code)
    assert_error(verify_r, status, code)
    assert body == verify_r.body, (body, verify_r.body)
    for name in REFUSAL_HEADERS:
        g, v = gw_r.headers.get(name), verify_r.headers.get(name)
        assert (g is None) == (v is None), f"{name}: gateway {g!r}, verify {v!r}"
        if g is not None:
            assert g == v or (name != "WWW-Authenticate" and numbers_close(g, v)), f"{name}: gateway {g!r}, verify {v!r}"
    for name in IDENTITY:
        assert name not in gw_r.headers, f"a refusal carries {name}"
    assert gw_r.headers.get("X-Request-Id")


def refused_alike(env, key, status, code, target="/api/x", required=None, cost=None, ip=None, headers=()):
    """A gateway request and a verify (with the route's scopes as X-Required-Scopes, its cost
    as X-Cost) with `key` and `headers` from `ip`: both refused alike, and the upstream received
    nothing."""
    ip = ip or new_address()
    before = env.up.count()
    g = through_gateway(env, target, key, ip, headers)
    vh = dict(headers)
    if required:
        vh["X-Required-Scopes"] = required
    if cost is not None:
        vh["X-Cost"] = str(cost)
    v = through_verify(env, key, ip, vh)
    assert_same_refusal(g, v, status, code)
    assert env.up.count() == before, f"the upstream received {env.up.since(before)}"
    return g, v


def passes(env, target, key, ip=None, headers=()):
    """A gateway request that must reach the upstream: (response, what the upstream received)."""
    before = env.up.count()
    r = through_gateway(env, target, key, ip or new_address(), headers)
    assert r.status == 200, r
    seen = env.up.since(before)
    assert len(seen) == 1, seen
    return r, seen[0]


def move_clock(env, to):
    """Moves the test clock forward to `to`; waits until the server has read it (a probe key
    expiring just before `to` is refused as expired)."""
    probe = make(env.acme.client, "clock probe", "sandbox", expires_at=rfc3339(to - 5))
    env.clock.set(env.clock.offset + (to - env.clock.now()))
    wait_until(lambda: Client(env.server, probe["api_key"]).request("GET", VERIFY).status_code == 401, CLOCK_TIMEOUT,
               what="the server to read the test clock")  # fmt: skip


def next_day(env):
    now = env.clock.now()
    start = now - now % DAY + DAY + 10
    move_clock(env, start)
    return start


# --------------------------------------------------------------------------- each refusal


def test_missing_key(env):
    refused_alike(env, None, 401, "missing_api_key")
    # Not a bearer key: whatever verify answers (invalid_api_key), the gateway answers.
    refused_alike(env, None, 401, "invalid_api_key", headers=[("Authorization", "Basic dXNlcjpwYXNz")])


@pytest.mark.parametrize("kind", ["forged", "near miss", "malformed", "other brand"])
def test_invalid_key(env, kind):
    real = env.acme.key
    key = {
        "forged": forge_key(),
        "near miss": real[:-1] + ("A" if real[-1] != "A" else "B"),
        "malformed": "ml_prod_tooshort",
        "other brand": forge_key(brand="zz"),
    }[kind]
    refused_alike(env, key, 401, "invalid_api_key")


def test_deactivated_and_deleted_keys(env):
    k = make(env.acme.client, "soon inactive")
    passes(env, "/api/x", k["api_key"])
    env.acme.client.update(k["id"], is_active=False)
    refused_alike(env, k["api_key"], 401, "key_inactive")
    env.acme.client.remove(k["id"])
    refused_alike(env, k["api_key"], 401, "invalid_api_key")


def test_expired_key(env):
    k = make(env.acme.client, "expiring", expires_at=rfc3339(env.clock.now() + 3600))
    r, seen = passes(env, "/api/x", k["api_key"])
    assert seen.header("X-Key-Expires-At") == k["expires_at"]
    move_clock(env, env.clock.now() + 7200)
    refused_alike(env, k["api_key"], 401, "key_expired")


def test_leaked_key(env):
    k = make(env.acme.client, "leaked")
    passes(env, "/api/x", k["api_key"])
    entry = {"token": k["api_key"], "type": "apikeyd_key", "url": "https://github.com/octo/repo/blob/main/.env",
             "source": "content"}  # fmt: skip
    r = env.server.admin.post("/v1/admin/leaked-keys", json=[entry])
    assert r.status_code == 200, r.text
    refused_alike(env, k["api_key"], 401, "key_leaked")


def test_suspended_account(env):
    globex = env.globex
    passes(env, "/api/x", globex.key)
    path = f"{ADMIN_ACCOUNTS}{globex.id}/"
    r = env.server.admin.request("PATCH", path, json={"status": "suspended"})
    assert r.status_code == 200, r.text
    try:
        refused_alike(env, globex.key, 403, "account_suspended")
        refused_alike(env, globex.key, 403, "account_suspended", target="/scoped/x", required="posts:write posts:read")
    finally:
        r = env.server.admin.request("PATCH", path, json={"status": "active"})
        assert r.status_code == 200, r.text
    passes(env, "/api/x", globex.key)


def test_insufficient_scope_from_the_route(env):
    reader = make(env.acme.client, "reader", scopes=["posts:read"])
    g, _ = refused_alike(env, reader["api_key"], 403, "insufficient_scope", target="/scoped/x",
                         required="posts:write posts:read")  # fmt: skip
    assert 'error="insufficient_scope"' in g.headers["WWW-Authenticate"]
    # The client cannot name fewer scopes than the route asks.
    for sent in ("posts:read", "", "other:x"):
        before = env.up.count()
        r = through_gateway(env, "/scoped/x", reader["api_key"], new_address(), [("X-Required-Scopes", sent)])
        assert_gw_error(r, 403, "insufficient_scope")
        assert env.up.count() == before
    # Routes without scopes take the same key.
    passes(env, "/api/x", reader["api_key"])
    # Keys holding both scopes (or a wildcard over them, or none at all) pass, their scopes told.
    for scopes, told in ((["posts:read", "posts:write"], "posts:read posts:write"), (["posts:*"], "posts:*"), (None, None)):
        k = make(env.acme.client, f"writer {scopes}", scopes=scopes)
        _, seen = passes(env, "/scoped/x?y=1", k["api_key"])
        assert seen.target == "/scoped/x?y=1"
        assert seen.header("X-Key-Scopes") == told


def test_ip_allowlist(env):
    k = make(env.acme.client, "partner", allowed_ips=["198.51.100.7", "2001:db8:1::/48"])
    _, seen = passes(env, "/api/x", k["api_key"], ip="198.51.100.7")
    assert seen.header("X-Forwarded-For").replace(" ", "") == "198.51.100.7,127.0.0.1"
    passes(env, "/api/x", k["api_key"], ip="2001:db8:1::5")
    refused_alike(env, k["api_key"], 403, "ip_not_allowed", ip="203.0.113.9")
    # Without a header naming the client, the client is the peer (127.0.0.1): refused.
    before = env.up.count()
    r = gw_request(env.server.port, "GET", "/api/x", [("Authorization", f"Bearer {k['api_key']}")])
    assert_gw_error(r, 403, "ip_not_allowed")
    assert env.up.count() == before


def test_rate_limit_is_one_count_with_verify(env):
    next_day(env)
    k = make(env.acme.client, "limited", rate_limit={"limit": 4, "window_seconds": DAY})
    key = k["api_key"]
    ip = new_address()
    left = []
    for via in ("gateway", "verify", "gateway", "verify"):
        if via == "gateway":
            r, _ = passes(env, "/api/x", key, ip=ip)
            policy, state = r.headers.get("RateLimit-Policy"), r.headers.get("RateLimit")
        else:
            r = through_verify(env, key, ip)
            assert r.status_code == 204, r.text
            policy, state = r.headers.get("RateLimit-Policy"), r.headers.get("RateLimit")
        assert policy == f'"rate";q=4;w={DAY}', (via, policy)
        assert state is not None and state.startswith('"rate";r='), (via, state)
        left.append(int(state.split("r=")[1].split(";")[0]))
    assert left == [3, 2, 1, 0]
    g, v = refused_alike(env, key, 429, "rate_limited", ip=ip)
    assert int(g.headers["Retry-After"]) > 0


def test_apikeyds_rate_limit_fields_replace_the_upstreams(env):
    """For a key with a rate limit, the upstream's own RateLimit-Policy / RateLimit (it sends
    both) are dropped: the client gets apikeyd's, once each."""
    next_day(env)
    k = make(env.acme.client, "limited, upstream says otherwise", rate_limit={"limit": 10, "window_seconds": DAY})
    before = env.up.count()
    r = through_gateway(env, "/api/x?up=headers", k["api_key"], new_address())
    assert r.status == 201, r
    assert env.up.count() == before + 1
    assert r.header_all("RateLimit-Policy") == [f'"rate";q=10;w={DAY}'], r.headers_list
    assert len(r.header_all("RateLimit")) == 1 and r.headers["RateLimit"].startswith('"rate";r=9;t='), r.headers_list


def test_quota_spends_the_routes_cost_whatever_the_client_says(env):
    k = make(env.acme.client, "metered", remaining=7)
    key = k["api_key"]
    ip = new_address()
    # cost=3 on the route: the client's X-Cost (0, or garbage) is never used.
    for cost in ("0", "abc"):
        r, seen = passes(env, "/costly/x", key, ip=ip, headers=[("X-Cost", cost)])
        assert seen.target == "/costly/x"
    # 7 - 3 - 3 = 1 left: the route cannot pay 3, refused as verify refuses X-Cost: 3.
    g, v = refused_alike(env, key, 429, "quota_exhausted", target="/costly/x", cost=3, ip=ip)
    assert g.headers["RateLimit"] == '"quota";r=1'
    # Exactly 1 left: a verify of cost 1 passes, then nothing does (a cost-1 route neither).
    assert through_verify(env, key, ip, {"X-Cost": "1"}).status_code == 204
    refused_alike(env, key, 429, "quota_exhausted", target="/api/x", ip=ip)


def test_failed_attempts_throttle_is_one_count_with_verify(env):
    ip = new_address()
    before = env.up.count()
    # Failures through both count together: 3 through verify, 2 through the gateway...
    for _ in range(3):
        assert_error(through_verify(env, forge_key(), ip), 401, "invalid_api_key")
    for _ in range(AUTH_FAILURES - 3):
        assert_gw_error(through_gateway(env, "/api/x", forge_key(), ip), 401, "invalid_api_key")
    # ... and the next unknown key is throttled on both, alike.
    g, v = refused_alike(env, forge_key(), 429, "too_many_failed_attempts", ip=ip)
    assert 1 <= int(g.headers["Retry-After"]) <= 60
    assert env.up.count() == before
    # A valid key from that address still passes.
    passes(env, "/api/x", env.acme.key, ip=ip)
    # Another address is not throttled.
    assert_gw_error(through_gateway(env, "/api/x", forge_key(), new_address()), 401, "invalid_api_key")


def test_public_route_refuses_nothing_and_counts_nothing(env):
    """A public route needs no key: no key, an unknown key, an inactive one all pass, without
    identity; and it counts nothing against keys (contract): no use, no usage, no failed
    attempt, no rate-limit slot."""
    client = env.acme.client
    inactive = make(client, "inactive on public")
    client.update(inactive["id"], is_active=False)
    ip = new_address()
    for key in (None, forge_key(), inactive["api_key"]) + (forge_key(),) * AUTH_FAILURES:
        _, seen = passes(env, "/pub/x", key, ip=ip)
        assert seen.header("X-Key-Id") is None and seen.header("X-Account-Id") is None
    # The unknown keys above were no failed attempts: this address is not throttled.
    assert_error(through_verify(env, forge_key(), ip), 401, "invalid_api_key")
    # A valid key with a limit of 2 used 5 times on the public route: unused, no slot taken.
    k = make(client, "public user", rate_limit={"limit": 2, "window_seconds": DAY})
    for _ in range(5):
        passes(env, "/pub/x", k["api_key"])
    assert [through_verify(env, k["api_key"], new_address()).status_code for _ in range(3)] == [204, 204, 429]
    # Counts are written in order: once the verifications show, the public requests would have.
    wait_until(lambda: usage_total(client, k["id"]) == counts(2, rate_limited=1), FLUSH_TIMEOUT, interval=0.1,
               what="the key's verifications in its usage")  # fmt: skip
    assert usage_total(client, inactive["id"]) == counts()


# --------------------------------------------------------------------------- counting


def usage_total(client, key_id):
    r = client.get(f"{COLLECTION}{key_id}/usage")
    assert r.status_code == 200, r.text
    return r.body["total"]


def counts(verified=0, **refused):
    return {"verified": verified, "refused": {r: refused.get(r, 0) for r in REASONS}}


def test_gateway_requests_count_for_last_used_and_usage(env):
    client = env.acme.client
    k = make(client, "counted", scopes=["posts:read"], allowed_ips=["198.51.100.0/24"])
    assert k["last_used"] is None
    ok = "198.51.100.20"
    for _ in range(3):
        passes(env, "/api/x", k["api_key"], ip=ok)
    assert through_verify(env, k["api_key"], ok).status_code == 204
    for _ in range(2):
        assert_gw_error(through_gateway(env, "/scoped/x", k["api_key"], ok), 403, "insufficient_scope")
    assert_gw_error(through_gateway(env, "/api/x", k["api_key"], "203.0.113.50"), 403, "ip_not_allowed")
    wait_until(lambda: usage_total(client, k["id"]) == counts(4, scope=2, ip=1), FLUSH_TIMEOUT, interval=0.1,
               what="the gateway's requests in the key's usage")  # fmt: skip
    # A key used through the gateway alone: last_used is set.
    only = make(client, "gateway only")
    passes(env, "/api/x", only["api_key"])
    wait_until(lambda: client.by_id()[only["id"]]["last_used"] is not None, LAST_USED_TIMEOUT,
               what="last_used of a key used only through the gateway")  # fmt: skip
    # Refusals counted by reason: inactive.
    client.update(only["id"], is_active=False)
    for _ in range(2):
        assert_gw_error(through_gateway(env, "/api/x", only["api_key"], new_address()), 401, "key_inactive")
    wait_until(lambda: usage_total(client, only["id"]) == counts(1, inactive=2), FLUSH_TIMEOUT, interval=0.1,
               what="the inactive refusals in the usage")  # fmt: skip


# --------------------------------------------------------------------------- several instances


def test_revocation_through_another_instance_stops_the_gateway(pg_factory):
    """PostgreSQL only, by nature (two instances share a database only there): a key
    deactivated, or deleted, through instance A is refused by B's gateway within the
    propagation bound, and from then on nothing with it reaches the upstream."""
    up = Upstream(name="multi")
    try:
        a, b = instances(pg_factory, 2, "--route", f"/api={up.url}", "--auth-failures", "0")
        owner = Client(a, a.account.key)
        doomed = make(owner, "revoked on A")
        deleted = make(owner, "deleted on A")

        def gateway(key):
            return gw_request(b.port, "GET", "/api/x", [("Authorization", f"Bearer {key}")])

        for key in (doomed["api_key"], deleted["api_key"]):
            wait_until(lambda: gateway(key).status == 200, PROPAGATION_TIMEOUT, interval=0.01, what="the key on B")
        owner.update(doomed["id"], is_active=False)
        owner.remove(deleted["id"])
        for key, code in ((doomed, "key_inactive"), (deleted, "invalid_api_key")):
            r = wait_until(lambda: (lambda r: r if r.status != 200 else None)(gateway(key["api_key"])), PROPAGATION_TIMEOUT,
                           interval=0.01, what=f"B's gateway to refuse the key ({code})")  # fmt: skip
            assert_gw_error(r, 401, code)
            seen_before = len([s for s in up.snapshot() if s.header("X-Key-Id") == str(key["id"])])
            for _ in range(20):
                assert_gw_error(gateway(key["api_key"]), 401, code)
            seen_after = len([s for s in up.snapshot() if s.header("X-Key-Id") == str(key["id"])])
            assert seen_after == seen_before, "a revoked key's request reached the upstream"
    finally:
        up.close()


def test_concurrent_gateway_requests_never_exceed_the_rate_limit(env):
    """Threads racing through the gateway and verify for the last slots: the upstream receives
    exactly what the limit admits, less what verify took."""
    next_day(env)
    k = make(env.acme.client, "raced", rate_limit={"limit": 30, "window_seconds": DAY})
    before = env.up.count()
    results = {"gateway": [], "verify": []}
    lock = threading.Lock()

    def worker(via):
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", env.server.port, timeout=15)
        c = Client(env.server, k["api_key"])
        got = []
        for _ in range(15):
            if via == "gateway":
                r = gw_request(env.server.port, "GET", "/api/race", [("Authorization", f"Bearer {k['api_key']}")], conn=conn)
                got.append(r.status)
            else:
                got.append(c.request("GET", VERIFY).status_code)
        conn.close()
        with lock:
            results[via] += got

    threads = [threading.Thread(target=worker, args=(v,)) for v in ("gateway", "gateway", "gateway", "verify")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    admitted_gw = results["gateway"].count(200)
    admitted_v = results["verify"].count(204)
    assert set(results["gateway"]) <= {200, 429} and set(results["verify"]) <= {204, 429}, results
    assert admitted_gw + admitted_v == 30, results
    assert env.up.count() - before == admitted_gw


@postgres_only  # a store out of reach: PostgreSQL behind a frozen link (SQLite is never out of reach)
def test_store_unavailable_stops_at_the_gateway_like_verify(server_factory, pg_cluster):
    proxy = TcpProxy(pg_cluster.port).start()
    up = Upstream(name="stale")
    server = None
    try:
        server = server_factory("--route", f"/api={up.url}", "--max-staleness", STALENESS, "--auth-failures", "0",
                                start=False)  # fmt: skip
        server.db = server.backend.tcp_db_arg(proxy.port)
        server.start()
        key = [("Authorization", f"Bearer {server.account.key}")]
        assert gw_request(server.port, "GET", "/api/x", key).status == 200
        proxy.freeze()
        wait_until(lambda: Client(server, server.account.key).request("GET", VERIFY).status_code == 503, STALE_BOUND,
                   interval=0.1, what="the instance to refuse while it cannot hear from the store")  # fmt: skip
        before = up.count()
        g = gw_request(server.port, "GET", "/api/x", key)
        v = Client(server, server.account.key).request("GET", VERIFY)
        assert_same_refusal(g, v, 503, "store_unavailable")
        assert g.headers.get("Retry-After"), g.headers_list
        assert up.count() == before, f"the upstream received {up.since(before)}"
        proxy.heal()
        wait_until(lambda: gw_request(server.port, "GET", "/api/x", key).status == 200, RECOVERY_TIMEOUT, interval=0.1,
                   what="the gateway to pass again once the store is back")  # fmt: skip
    finally:
        if server is not None and server.proc is not None:
            server.stop()
        proxy.stop()
        up.close()
    assert not proxy.errors, proxy.errors
