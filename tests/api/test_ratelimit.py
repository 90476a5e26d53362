"""Per-key rate limits (issue 13, docs/design/issue-13.md), one instance, black-box, on both
backends.

- The key object's `rate_limit` (null or {"limit", "window_seconds"}) on create, PATCH, list,
  rotation and operator issue; bad values are 422 and change nothing.
- Fixed windows from the epoch, exact on one instance: `limit` admitted per window, then 429
  `rate_limited` with Retry-After (seconds to the window's end); the next window admits again;
  a client at the limit is never refused; threads racing for the last slots get exactly the
  limit.
- RateLimit-Policy / RateLimit on every answer for a limited key (verify and management API),
  none for a key without a limit.
- A refusal is not a use, takes no slot when it comes from an earlier rule, and usage counts it.
- A caller with a rate limit gives only limits no looser than its own (403 insufficient_scope).

The server runs on a test clock (APIKEYD_TEST_CLOCK_FILE) set so that each test starts early in
a day-long window, far from its end: a window turns only when the test moves the clock.
"""

import threading
from types import SimpleNamespace

import pytest

from conftest import (
    ACCOUNT_AUDIT,
    ADMIN_ACCOUNTS,
    COLLECTION,
    Client,
    ServerFactory,
    assert_error,
    snapshot,
    wait_until,
    walk_pages,
)
from lifecycle import CLOCK_TIMEOUT, ShiftClock, rfc3339

VERIFY = "/v1/auth/verify"
DAY = 86400
FLUSH_TIMEOUT = 10.0  # a count reaches the store within a flush (every second); generous


def rate(limit, window):
    return {"limit": limit, "window_seconds": window}


def make(client, name="Key", key_type="production", **fields):
    r = client.post(json={"name": name, "key_type": key_type, **fields})
    assert r.status_code == 201, r.text
    return r.body


def verify(server, key, headers=None):
    return Client(server, key).request("GET", VERIFY, headers=headers)


def limits_headers(r):
    return r.headers.get("RateLimit-Policy"), r.headers.get("RateLimit")


def window_end(clock, window):
    t = clock.now()
    return t - t % window + window


@pytest.fixture(scope="module")
def env(backend, apikeyd_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("ratelimit")
    clock = ShiftClock(root / "clock")
    factory = ServerFactory(backend, root)
    server = factory("--max-keys", "1000", "--auth-failures", "0", accounts=("acme", "other"), admin=True, env=clock.env)
    yield SimpleNamespace(server=server, clock=clock)
    factory.close_all()


def move_clock(env, to):
    """Moves the server's test clock forward to `to` and waits until the server has read it: a
    probe key expiring 5 s before `to` (still ahead of the old clock) is then refused as expired."""
    probe = make(env.server.accounts[0].client, "clock probe", key_type="sandbox", expires_at=rfc3339(to - 5))
    env.clock.set(env.clock.offset + (to - env.clock.now()))
    wait_until(lambda: verify(env.server, probe["api_key"]).status_code == 401, CLOCK_TIMEOUT,
               what="the server to read the test clock")  # fmt: skip


def next_day(env):
    """10 s into the next day-long window, far from its end; returns that time."""
    now = env.clock.now()
    start = now - now % DAY + DAY + 10
    move_clock(env, start)
    return start


@pytest.fixture
def day(env):
    return next_day(env)


@pytest.fixture
def acme(env):
    return env.server.accounts[0].client


# --------------------------------------------------------------------------- the field


def test_rate_limit_on_create_list_patch_rotate(env, acme):
    k = make(acme, "limited", rate_limit=rate(1000, 60))
    assert k["rate_limit"] == rate(1000, 60)
    assert list(k)[-3] == "rate_limit"
    assert acme.by_id()[k["id"]]["rate_limit"] == rate(1000, 60)
    assert acme.update(k["id"], rate_limit=rate(5, 1))["rate_limit"] == rate(5, 1)
    r = acme.post(f"{COLLECTION}{k['id']}/rotate", json={"grace_period_seconds": 0})
    assert r.status_code == 201, r.text
    assert r.body["rate_limit"] == rate(5, 1)
    assert acme.update(r.body["id"], rate_limit=None)["rate_limit"] is None
    plain = make(acme, "plain")
    assert plain["rate_limit"] is None
    # The limits at their bounds.
    assert make(acme, "max", rate_limit=rate(1000000000, 86400))["rate_limit"] == rate(1000000000, 86400)
    assert make(acme, "min", rate_limit=rate(1, 1))["rate_limit"] == rate(1, 1)


def test_operator_issues_a_rate_limited_key(env):
    account = env.server.accounts[1]
    r = env.server.admin.post(f"{ADMIN_ACCOUNTS}{account.id}/keys",
                              json={"name": "partner", "key_type": "production", "rate_limit": rate(10, 60)})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.body["rate_limit"] == rate(10, 60)


BAD = [
    rate(0, 60), rate(-1, 60), rate(1000000001, 60), rate(10, 0), rate(10, -5), rate(10, 86401),
    {"limit": 1.5, "window_seconds": 60}, {"limit": 10, "window_seconds": 60.0}, {"limit": "10", "window_seconds": 60},
    {"limit": True, "window_seconds": 60}, {"limit": 10}, {"window_seconds": 60}, {},
    {"limit": 10, "window_seconds": 60, "burst": 5}, {"limit": 10, "window": 60}, [10, 60], 10, "10/60", True,
]  # fmt: skip


@pytest.mark.parametrize("value", BAD, ids=range(len(BAD)))
def test_bad_rate_limits_are_422_and_change_nothing(env, acme, value):
    k = make(acme, "target", rate_limit=rate(7, 70))
    before = snapshot(acme)
    assert_error(acme.post(json={"name": "x", "key_type": "production", "rate_limit": value}), 422, "validation_error")
    assert_error(acme.patch(k["id"], json={"rate_limit": value}), 422, "validation_error")
    assert_error(acme.patch(k["id"], json={"name": "renamed", "rate_limit": value}), 422, "validation_error")
    assert snapshot(acme) == before


def test_rate_limit_is_audited(env, acme):
    k = make(acme, "audited")
    acme.update(k["id"], rate_limit=rate(3, 30))
    events = walk_pages(acme, ACCOUNT_AUDIT, "events", limit=1000)[0]
    mine = next(e for e in events if e["action"] == "key.updated" and e["target"]["id"] == k["id"])
    assert mine["changes"]["rate_limit"] == {"old": None, "new": rate(3, 30)}


# --------------------------------------------------------------------------- enforcement


def test_exact_per_window_then_429_and_the_next_window(env, acme, day):
    k = make(acme, "five a day", rate_limit=rate(5, DAY))
    for left in (4, 3, 2, 1, 0):
        r = verify(env.server, k["api_key"])
        assert r.status_code == 204, r.text
        policy, state = limits_headers(r)
        assert policy == f'"rate";q=5;w={DAY}'
        assert state.startswith(f'"rate";r={left};t=')
        assert 0 < int(state.rsplit("=", 1)[1]) <= DAY
    r = verify(env.server, k["api_key"])
    assert_error(r, 429, "rate_limited")
    reset = window_end(env.clock, DAY) - env.clock.now()
    assert abs(int(r.headers["Retry-After"]) - reset) <= 2
    assert limits_headers(r)[1] == f'"rate";r=0;t={r.headers["Retry-After"]}'
    for name in ("X-Account-Id", "X-Key-Id"):
        assert name not in r.headers
    # The next window admits again, exactly as many.
    next_day(env)
    assert [verify(env.server, k["api_key"]).status_code for _ in range(7)] == [204] * 5 + [429] * 2


def test_a_client_at_the_limit_is_never_refused(env, acme, day):
    k = make(acme, "steady", rate_limit=rate(20, DAY))
    c = Client(env.server, k["api_key"])  # one keep-alive connection, as a real client
    for _ in range(3):
        assert [c.request("GET", VERIFY).status_code for _ in range(20)] == [204] * 20
        next_day(env)


def test_threads_racing_get_exactly_the_limit(env, acme, day):
    k = make(acme, "raced", rate_limit=rate(100, DAY))
    results = []
    lock = threading.Lock()

    def worker():
        c = Client(env.server, k["api_key"])
        got = [c.request("GET", VERIFY).status_code for _ in range(40)]
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(204) == 100 and results.count(429) == 140, sorted(set(results))


def test_management_api_is_rate_limited_too(env, acme, day):
    k = make(acme, "manager", rate_limit=rate(3, DAY))
    c = Client(env.server, k["api_key"])
    for left in (2, 1, 0):
        r = c.get()
        assert r.status_code == 200, r.text
        assert limits_headers(r) == (f'"rate";q=3;w={DAY}', limits_headers(r)[1])
        assert limits_headers(r)[1].startswith(f'"rate";r={left};')
    assert_error(c.get(), 429, "rate_limited")
    assert_error(c.post(json={"name": "more", "key_type": "sandbox"}), 429, "rate_limited")
    assert not any(x["name"] == "more" for x in acme.list())


def test_no_headers_for_a_key_without_limit(env, acme):
    k = make(acme, "free")
    r = verify(env.server, k["api_key"])
    assert r.status_code == 204
    assert limits_headers(r) == (None, None)
    assert limits_headers(acme.get()) == (None, None)


def test_earlier_refusals_take_no_slot_and_carry_the_headers(env, acme, day):
    k = make(acme, "scoped", scopes=["posts:read"], rate_limit=rate(2, DAY))
    for _ in range(5):
        r = verify(env.server, k["api_key"], headers={"X-Required-Scopes": "posts:write"})
        assert_error(r, 403, "insufficient_scope")
        assert limits_headers(r)[1].startswith('"rate";r=2;')
    assert [verify(env.server, k["api_key"]).status_code for _ in range(3)] == [204, 204, 429]
    # An inactive limited key is refused as inactive, not rate limited.
    acme.update(k["id"], is_active=False)
    assert_error(verify(env.server, k["api_key"]), 401, "key_inactive")


def test_rate_limited_is_not_a_use_and_is_counted(env, acme, day):
    k = make(acme, "counted", rate_limit=rate(2, DAY))
    assert [verify(env.server, k["api_key"]).status_code for _ in range(5)] == [204, 204, 429, 429, 429]

    def total():
        r = acme.get(f"{COLLECTION}{k['id']}/usage")
        assert r.status_code == 200, r.text
        return r.body["total"]

    wait_until(lambda: total()["refused"]["rate_limited"] == 3, FLUSH_TIMEOUT, what="the usage flush")
    assert total()["verified"] == 2
    used = acme.by_id()[k["id"]]["last_used"]
    assert_error(verify(env.server, k["api_key"]), 429, "rate_limited")
    wait_until(lambda: total()["refused"]["rate_limited"] == 4, FLUSH_TIMEOUT, what="the usage flush")
    assert acme.by_id()[k["id"]]["last_used"] == used


# --------------------------------------------------------------------------- limited callers


def test_limited_caller_gives_only_tighter_limits_and_they_are_inherited(env, acme):
    caller_key = make(acme, "limited manager", rate_limit=rate(600, 60))
    caller = Client(env.server, caller_key["api_key"])
    inherited = make(caller, "inherits")
    assert inherited["rate_limit"] == rate(600, 60)
    assert make(caller, "tighter", rate_limit=rate(10, 60))["rate_limit"] == rate(10, 60)
    assert make(caller, "same rate, smaller burst", rate_limit=rate(10, 1))["rate_limit"] == rate(10, 1)
    before = snapshot(acme)
    for looser in (None, rate(601, 60), rate(11, 1), rate(600, 59), rate(1000, 3600)):
        assert_error(caller.post(json={"name": "x", "key_type": "production", "rate_limit": looser}), 403,
                     "insufficient_scope")  # fmt: skip
        assert_error(caller.patch(inherited["id"], json={"rate_limit": looser}), 403, "insufficient_scope")
    # Nor may it loosen itself, or touch a key looser than itself.
    assert_error(caller.patch(caller_key["id"], json={"rate_limit": None}), 403, "insufficient_scope")
    free = next(x for x in acme.list() if x["rate_limit"] is None)
    assert_error(caller.patch(free["id"], json={"name": "mine now"}), 403, "insufficient_scope")
    assert snapshot(acme) == before


def test_rate_limit_survives_a_restart(env, acme):
    k = make(acme, "durable", rate_limit=rate(42, 4200))
    env.server.restart()
    assert acme.by_id()[k["id"]]["rate_limit"] == rate(42, 4200)


def test_a_new_window_length_counts_afresh(env, acme, day):
    """A PATCH to another window length starts counting in windows of that length (found in review: the old
    window number read as a later window refused the key for good)."""
    k = make(acme, "reshaped", rate_limit=rate(2, DAY))
    assert [verify(env.server, k["api_key"]).status_code for _ in range(3)] == [204, 204, 429]
    acme.update(k["id"], rate_limit=rate(2, 3600))
    assert [verify(env.server, k["api_key"]).status_code for _ in range(3)] == [204, 204, 429]
    acme.update(k["id"], rate_limit=rate(3, 3600))  # the same length, a higher limit: the same window's count goes on
    assert [verify(env.server, k["api_key"]).status_code for _ in range(2)] == [204, 429]
