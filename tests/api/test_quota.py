"""Per-key quotas (issue 13), one instance, black-box, on both backends.

- The key object's `remaining` (null or a count) and `refill` (null or {"amount", "interval"}) on
  create, PATCH, list, rotation and operator issue; bad values are 422 and change nothing.
- Each admitted verification spends X-Cost (default 1, 0..1000; garbage is 400 invalid_cost and
  spends nothing); a balance that cannot pay is 429 quota_exhausted, with Retry-After to the
  refill when there is one, and RateLimit fields for the quota.
- Never overspent: threads racing spend exactly the balance; a PATCH sets it; a rotated pair
  spends one balance; a restart gives back what was leased and not spent.
- Refills at UTC day and month boundaries (on a test clock).
- A refusal is not a use and usage counts it; the management API spends nothing; a key with a
  quota makes keys that spend from it and sets no balance.
"""

import threading
from types import SimpleNamespace

import pytest

from conftest import (
    ADMIN_ACCOUNTS,
    COLLECTION,
    Client,
    ServerFactory,
    assert_error,
    forge_key as forged_key,
    snapshot,
    wait_until,
)
from lifecycle import CLOCK_TIMEOUT, ShiftClock, rfc3339

VERIFY = "/v1/auth/verify"
DAY = 86400
FLUSH_TIMEOUT = 10.0
MAX = 2**53 - 1


def refill(amount, interval):
    return {"amount": amount, "interval": interval}


def make(client, name="Key", key_type="production", **fields):
    r = client.post(json={"name": name, "key_type": key_type, **fields})
    assert r.status_code == 201, r.text
    return r.body


def verify(server, key, cost=None, headers=None):
    h = dict(headers or {})
    if cost is not None:
        h["X-Cost"] = str(cost)
    return Client(server, key).request("GET", VERIFY, headers=h)


def spend(server, key, n, cost=None):
    return [verify(server, key, cost).status_code for _ in range(n)]


@pytest.fixture(scope="module")
def env(backend, apikeyd_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("quota")
    clock = ShiftClock(root / "clock")
    factory = ServerFactory(backend, root)
    server = factory("--max-keys", "1000", "--auth-failures", "0", accounts=("acme", "other"), admin=True, env=clock.env)
    yield SimpleNamespace(server=server, clock=clock)
    factory.close_all()


@pytest.fixture
def acme(env):
    return env.server.accounts[0].client


def move_clock(env, to):
    """Moves the test clock to `to` and waits until the server has read it (a probe key expiring
    just before `to` is refused as expired)."""
    probe = make(env.server.accounts[0].client, "clock probe", key_type="sandbox", expires_at=rfc3339(to - 5))
    env.clock.set(env.clock.offset + (to - env.clock.now()))
    wait_until(lambda: verify(env.server, probe["api_key"]).status_code == 401, CLOCK_TIMEOUT,
               what="the server to read the test clock")  # fmt: skip


# --------------------------------------------------------------------------- the fields


def test_quota_fields_on_create_list_patch(env, acme):
    k = make(acme, "metered", remaining=100000, refill=refill(100000, "month"))
    assert k["remaining"] == 100000 and k["refill"] == refill(100000, "month")
    assert list(k)[-3:] == ["rate_limit", "remaining", "refill"]
    assert acme.by_id()[k["id"]]["remaining"] == 100000
    assert acme.update(k["id"], remaining=50)["remaining"] == 50
    assert acme.by_id()[k["id"]]["refill"] == refill(100000, "month")
    changed = acme.update(k["id"], refill=None)
    assert changed["refill"] is None and changed["remaining"] == 50
    changed = acme.update(k["id"], refill=refill(7, "day"))
    assert changed["refill"] == refill(7, "day") and changed["remaining"] == 50
    gone = acme.update(k["id"], remaining=None)
    assert gone["remaining"] is None and gone["refill"] is None
    plain = make(acme, "plain")
    assert plain["remaining"] is None and plain["refill"] is None
    assert make(acme, "max", remaining=MAX)["remaining"] == MAX
    assert make(acme, "zero", remaining=0)["remaining"] == 0


def test_operator_issues_a_key_with_a_quota(env):
    account = env.server.accounts[1]
    r = env.server.admin.post(f"{ADMIN_ACCOUNTS}{account.id}/keys",
                              json={"name": "partner", "key_type": "production", "remaining": 1000,
                                    "refill": refill(1000, "month")})  # fmt: skip
    assert r.status_code == 201, r.text
    assert (r.body["remaining"], r.body["refill"]) == (1000, refill(1000, "month"))
    assert spend(env.server, r.body["api_key"], 2) == [204, 204]


BAD_REMAINING = [-1, MAX + 1, 1.5, "10", True, {}, [], 1e3]
BAD_REFILL = [
    refill(0, "day"), refill(-1, "day"), refill(MAX + 1, "day"), refill(1, "week"), refill(1, "Day"), refill(1.5, "day"),
    refill("1", "day"), {"amount": 1}, {"interval": "day"}, {}, {"amount": 1, "interval": "day", "at": 0}, [1, "day"],
    "day", 5, True,
]  # fmt: skip


@pytest.mark.parametrize("field,value", [("remaining", v) for v in BAD_REMAINING] + [("refill", v) for v in BAD_REFILL],
                         ids=lambda v: repr(v)[:30])  # fmt: skip
def test_bad_quotas_are_422_and_change_nothing(env, acme, field, value):
    k = make(acme, "target", remaining=70, refill=refill(70, "day"))
    before = snapshot(acme)
    extra = {"remaining": 5} if field == "refill" else {}
    assert_error(acme.post(json={"name": "x", "key_type": "production", field: value, **extra}), 422, "validation_error")
    assert_error(acme.patch(k["id"], json={field: value}), 422, "validation_error")
    assert_error(acme.patch(k["id"], json={"name": "renamed", field: value}), 422, "validation_error")
    assert snapshot(acme) == before


def test_refill_needs_a_quota(env, acme):
    k = make(acme, "no quota")
    before = snapshot(acme)
    assert_error(acme.post(json={"name": "x", "key_type": "production", "refill": refill(5, "day")}), 422,
                 "validation_error")  # fmt: skip
    assert_error(acme.post(json={"name": "x", "key_type": "production", "remaining": None, "refill": refill(5, "day")}),
                 422, "validation_error")  # fmt: skip
    assert_error(acme.patch(k["id"], json={"refill": refill(5, "day")}), 422, "validation_error")
    assert snapshot(acme) == before


# --------------------------------------------------------------------------- spending


def test_each_verification_spends_one_then_429(env, acme):
    k = make(acme, "three", remaining=3)
    statuses = []
    for _ in range(5):
        r = verify(env.server, k["api_key"])
        statuses.append(r.status_code)
        assert r.headers["RateLimit-Policy"].startswith('"quota";q=')
    assert statuses == [204, 204, 204, 429, 429]
    r = verify(env.server, k["api_key"])
    assert_error(r, 429, "quota_exhausted")
    assert "Retry-After" not in r.headers  # no refill: nothing to wait for
    assert r.headers["RateLimit"] == '"quota";r=0'
    assert acme.by_id()[k["id"]]["remaining"] == 0


def test_no_limits_on_answers_for_unknown_keys(env, acme):
    """An answer without a known key carries no RateLimit fields, never those of an earlier request
    (found in review: the fields were read from uninitialised memory)."""
    k = make(acme, "seen first", remaining=100, refill=refill(100, "month"), rate_limit={"limit": 50, "window_seconds": 60})
    c = Client(env.server, k["api_key"])
    for _ in range(20):
        assert c.request("GET", VERIFY).status_code == 204
        for key in (None, "", "ml_prod_not_a_key", forged_key()):
            r = c.request("GET", VERIFY, key=key)
            assert r.status_code == 401
            assert "RateLimit" not in r.headers and "RateLimit-Policy" not in r.headers, r.headers


def test_x_cost(env, acme):
    k = make(acme, "costly", remaining=5)
    r = verify(env.server, k["api_key"], 3)
    assert r.status_code == 204 and r.headers["RateLimit"] == '"quota";r=2'
    assert_error(verify(env.server, k["api_key"], 3), 429, "quota_exhausted")  # 2 left: not enough, nothing spent
    assert verify(env.server, k["api_key"], 2).status_code == 204
    assert verify(env.server, k["api_key"], 0).status_code == 204  # costs nothing: always admitted
    assert_error(verify(env.server, k["api_key"], 1), 429, "quota_exhausted")
    assert acme.by_id()[k["id"]]["remaining"] == 0


@pytest.mark.parametrize("value", ["-1", "1001", "01", "1.0", "1 1", "abc", "", "+1", "0x1", "99999999999"])
def test_garbage_x_cost_is_400_and_spends_nothing(env, acme, value):
    k = make(acme, "careful", remaining=2)
    assert_error(verify(env.server, k["api_key"], headers={"X-Cost": value}), 400, "invalid_cost")
    assert acme.by_id()[k["id"]]["remaining"] == 2
    assert spend(env.server, k["api_key"], 3) == [204, 204, 429]


def test_two_x_cost_headers_are_400(env, acme):
    import http.client

    k = make(acme, "twice", remaining=2)
    conn = http.client.HTTPConnection("127.0.0.1", env.server.port, timeout=10)
    conn.putrequest("GET", VERIFY)
    conn.putheader("Authorization", f"Bearer {k['api_key']}")
    conn.putheader("X-Cost", "1")
    conn.putheader("X-Cost", "1")
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 400 and b"invalid_cost" in r.read()
    conn.close()
    assert acme.by_id()[k["id"]]["remaining"] == 2


def test_threads_racing_spend_exactly_the_balance(env, acme):
    k = make(acme, "raced", remaining=60)
    results = []
    lock = threading.Lock()

    def worker():
        c = Client(env.server, k["api_key"])
        for _ in range(20):
            st = c.request("GET", VERIFY).status_code
            with lock:
                results.append(st)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(204) == 60 and results.count(429) == 60


def test_patch_sets_the_balance(env, acme):
    k = make(acme, "reset", remaining=100)
    assert spend(env.server, k["api_key"], 3) == [204] * 3  # credits leased here
    assert acme.update(k["id"], remaining=2)["remaining"] == 2
    assert spend(env.server, k["api_key"], 4) == [204, 204, 429, 429]
    assert acme.update(k["id"], remaining=1)["remaining"] == 1
    assert spend(env.server, k["api_key"], 2) == [204, 429]


def test_a_rotated_pair_spends_one_balance(env, acme):
    old = make(acme, "rotated", remaining=10, refill=refill(10, "day"))
    assert verify(env.server, old["api_key"], 6).status_code == 204
    r = acme.post(f"{COLLECTION}{old['id']}/rotate", json={"grace_period_seconds": 3600})
    assert r.status_code == 201, r.text
    new = r.body
    assert new["refill"] == refill(10, "day") and new["remaining"] is not None
    assert_error(verify(env.server, new["api_key"], 5), 429, "quota_exhausted")
    assert verify(env.server, new["api_key"], 3).status_code == 204
    assert verify(env.server, old["api_key"], 1).status_code == 204  # the last credit, through the old key
    assert_error(verify(env.server, old["api_key"]), 429, "quota_exhausted")
    assert_error(verify(env.server, new["api_key"]), 429, "quota_exhausted")


def test_restart_gives_back_what_was_not_spent(env, acme):
    k = make(acme, "durable", remaining=1000)
    assert spend(env.server, k["api_key"], 5) == [204] * 5
    env.server.restart()
    assert acme.by_id()[k["id"]]["remaining"] == 995  # the block leased and not spent came back
    assert verify(env.server, k["api_key"], 995).status_code == 204
    assert_error(verify(env.server, k["api_key"]), 429, "quota_exhausted")


def test_exhausted_is_not_a_use_and_is_counted(env, acme):
    k = make(acme, "counted", remaining=2)
    assert spend(env.server, k["api_key"], 5) == [204, 204, 429, 429, 429]

    def total():
        r = acme.get(f"{COLLECTION}{k['id']}/usage")
        assert r.status_code == 200, r.text
        return r.body["total"]

    wait_until(lambda: total()["refused"]["quota_exhausted"] == 3, FLUSH_TIMEOUT, what="the usage flush")
    assert total()["verified"] == 2
    used = acme.by_id()[k["id"]]["last_used"]
    assert_error(verify(env.server, k["api_key"]), 429, "quota_exhausted")
    wait_until(lambda: total()["refused"]["quota_exhausted"] == 4, FLUSH_TIMEOUT, what="the usage flush")
    assert acme.by_id()[k["id"]]["last_used"] == used


def test_management_api_spends_nothing(env, acme):
    k = make(acme, "manager", remaining=0)
    c = Client(env.server, k["api_key"])
    for _ in range(3):
        assert c.get().status_code == 200
    assert acme.by_id()[k["id"]]["remaining"] == 0
    assert_error(verify(env.server, k["api_key"]), 429, "quota_exhausted")


def test_rate_limit_refusals_spend_no_credits(env, acme):
    k = make(acme, "both", remaining=10, rate_limit={"limit": 2, "window_seconds": DAY})
    assert spend(env.server, k["api_key"], 4) == [204, 204, 429, 429]
    assert_error(verify(env.server, k["api_key"]), 429, "rate_limited")
    r = verify(env.server, k["api_key"])
    assert r.headers["RateLimit"].startswith('"rate";r=0;') and '"quota";r=8' in r.headers["RateLimit"]
    assert acme.by_id()[k["id"]]["remaining"] == 8


def test_a_caller_with_a_quota_shares_it_and_sets_none(env, acme):
    caller_key = make(acme, "metered manager", remaining=5)
    caller = Client(env.server, caller_key["api_key"])
    child = make(caller, "child")
    assert child["remaining"] is not None
    assert verify(env.server, child["api_key"], 4).status_code == 204
    assert verify(env.server, caller_key["api_key"], 1).status_code == 204
    assert_error(verify(env.server, child["api_key"]), 429, "quota_exhausted")
    before = snapshot(acme)
    assert_error(caller.post(json={"name": "x", "key_type": "production", "remaining": 100}), 403, "insufficient_scope")
    assert_error(caller.patch(child["id"], json={"remaining": 100}), 403, "insufficient_scope")
    assert_error(caller.patch(caller_key["id"], json={"remaining": None}), 403, "insufficient_scope")
    free = next(x for x in acme.list() if x["remaining"] is None)
    assert_error(caller.patch(free["id"], json={"name": "mine now"}), 403, "insufficient_scope")
    assert snapshot(acme) == before


# --------------------------------------------------------------------------- refills


def test_daily_refill_at_the_utc_boundary(env, acme):
    now = env.clock.now()
    move_clock(env, now - now % DAY + DAY + 10)  # early in a day
    k = make(acme, "daily", remaining=2, refill=refill(3, "day"))
    assert spend(env.server, k["api_key"], 3) == [204, 204, 429]
    r = verify(env.server, k["api_key"])
    assert_error(r, 429, "quota_exhausted")
    assert 0 < int(r.headers["Retry-After"]) <= DAY
    assert r.headers["RateLimit-Policy"] == '"quota";q=3;w=86400'
    move_clock(env, env.clock.now() - env.clock.now() % DAY + DAY + 10)
    assert acme.by_id()[k["id"]]["remaining"] == 3
    assert spend(env.server, k["api_key"], 4) == [204, 204, 204, 429]


def test_monthly_refill_at_the_utc_boundary(env, acme):
    import calendar
    import time

    t = time.gmtime(env.clock.now())
    y, m = (t.tm_year + (t.tm_mon == 12), t.tm_mon % 12 + 1)
    next_month = calendar.timegm((y, m, 1, 0, 0, 0))
    move_clock(env, next_month - 3600)  # an hour before a month ends
    k = make(acme, "monthly", remaining=1, refill=refill(2, "month"))
    assert spend(env.server, k["api_key"], 2) == [204, 429]
    r = verify(env.server, k["api_key"])
    assert 0 < int(r.headers["Retry-After"]) <= 3600
    move_clock(env, next_month + 10)
    assert spend(env.server, k["api_key"], 3) == [204, 204, 429]
