"""Usage per key (issue 12, docs/design/issue-12.md "Usage per key"), black-box, on both backends.

The issue's central check: counts are exact at rest. A known number of requests of every kind
(verified, and refused for each reason: inactive, expired, suspended, scope, ip) goes through
two instances on one database (PostgreSQL; with SQLite, one instance: two servers never share
an SQLite file in this suite, see test_multi_instance.py), and the totals are checked once a
flush has written them, then again after more requests and a SIGTERM of every instance at once
(no wait for a flush) and a restart.

Every request made with a key goes through a `Tally`, which counts it by the answer it got
(204/200/201: verified; 401 key_inactive: inactive; 401 key_expired: expired; 403
account_suspended: suspended; 403 insufficient_scope: scope; 403 ip_not_allowed: ip; 401
invalid_api_key: nothing, an unknown key has nothing to count on; a usage read answered 403
forbidden or 404 authenticated first: verified), so waiting for another instance to learn of a
change is itself counted exactly. The one count a test cannot know exactly is the reader's own:
a usage read is a use of the key that reads, and a flush may write it before the sums are read
(or not). At rest, the reader's `verified` is the uses it made before that read, or one more;
while polling, its recent reads may still be in memory. So two readers take turns: the second
reads once the first has gone quiet, and then every key but the second reader is exact.

Then: the shape of the answers and their buckets (hour and day, zero-filled, `from` rounded down
and `to` up), what a sandbox key sees, 404/403, every 400 invalid_parameter, 405, and the
retention (rows older than --usage-retention-days are deleted by the prune).
"""

import signal
import sqlite3
import subprocess
import time
from collections import Counter, defaultdict
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest

from conftest import (
    ADMIN_ACCOUNTS,
    COLLECTION,
    STOP_TIMEOUT,
    Client,
    ServerFactory,
    assert_error,
    forge_key,
    parse_time,
    wait_until,
)
from lifecycle import CLOCK_TIMEOUT, ShiftClock, rfc3339

LONG = True  # several instances and flushes: scheduled first (conftest.pytest_collection_modifyitems)

VERIFY = "/v1/auth/verify"
USAGE = "/v1/account/usage"
HOUR = 3600
DAY = 86400
REASONS = ["inactive", "expired", "suspended", "scope", "ip", "rate_limited", "quota_exhausted"]
FLUSH_TIMEOUT = 10.0  # contract: a count reaches the store within a flush (every second); generous
PROPAGATION_TIMEOUT = 10.0  # another instance learning of a new key or a change
RETENTION_TIMEOUT = 15.0  # the first prune runs at the maintenance thread's first tick
OUTCOMES = {
    (401, "key_inactive"): "inactive",
    (401, "key_leaked"): "inactive",
    (401, "key_expired"): "expired",
    (403, "account_suspended"): "suspended",
    (403, "insufficient_scope"): "scope",
    (403, "ip_not_allowed"): "ip",
    (401, "invalid_api_key"): None,
    # Authenticated, then refused by the route: a use all the same.
    (403, "forbidden"): "verified",
    (404, "not_found"): "verified",
}


def key_usage_path(key_id, **params):
    return f"{COLLECTION}{key_id}/usage" + ("?" + urlencode(params) if params else "")


def usage_path(**params):
    return USAGE + ("?" + urlencode(params) if params else "")


def counts(verified=0, **refused):
    return {"verified": verified, "refused": {r: refused.get(r, 0) for r in REASONS}}


def floor_to(t, step):
    return t - t % step


def ceil_to(t, step):
    return t + (-t) % step


class Tally:
    """Every request made with a key, counted by the answer it got (see the module's docstring)."""

    def __init__(self):
        self.n = defaultdict(Counter)

    def outcome(self, r):
        if r.status_code in (200, 201, 204):
            return "verified"
        try:
            code = r.json()["error"]["code"]
        except ValueError:
            code = None
        key = (r.status_code, code)
        assert key in OUTCOMES, f"unexpected answer {r.status_code} {r.text[:300]}"
        return OUTCOMES[key]

    def client(self, server, key_id, key):
        """A Client for `key` whose every response is counted on `key_id`."""
        c = Client(server, key)

        def hook(r, *args, **kwargs):
            what = self.outcome(r)
            if what is not None:
                self.n[key_id][what] += 1

        c.session.hooks["response"].append(hook)
        c.key_id = key_id
        return c

    def expected(self, key_id):
        c = self.n[key_id]
        return counts(c["verified"], **{r: c[r] for r in REASONS})

    def used(self):
        return sorted(k for k, c in self.n.items() if sum(c.values()))


def outcome_of(r):
    """A verification's answer as a Tally outcome (or the status and code, when it is none of them)."""
    if r.status_code == 204:
        return "verified"
    code = (r.body or {}).get("error", {}).get("code")
    return OUTCOMES.get((r.status_code, code), f"{r.status_code} {code}")


def send(client, outcome, n, headers=None):
    """`n` verifications with `client`, each of which must be answered as `outcome`."""
    for _ in range(n):
        r = client.request("GET", VERIFY, headers=headers)
        assert outcome_of(r) == outcome, f"expected {outcome}, got {r.status_code} {r.text[:200]}"


def until_outcome(client, outcome, headers=None, what=None):
    """Verifies with `client` until the answer is `outcome` (every answer is counted)."""

    def check():
        return outcome_of(client.request("GET", VERIFY, headers=headers)) == outcome

    wait_until(check, PROPAGATION_TIMEOUT, interval=0.02, what=what or f"the answer {outcome}")


def read(reader, tally, path=USAGE):
    """GET `path` with `reader` (a tallied client): (body, the reader's uses before this read)."""
    before = tally.n[reader.key_id]["verified"]
    r = reader.get(path)
    assert r.status_code == 200, r.text
    return r.body, before


def usage_mismatch(body, tally, reader_id, reader_before, at_rest=True):
    """What differs between an account usage answer and the tally (None: nothing). The reader's
    own current read may or may not be counted already; unless `at_rest`, its earlier reads may
    not be either (module docstring)."""
    problems = []
    listed = [k["key_id"] for k in body["keys"]]
    if listed != sorted(listed):
        problems.append(f"keys not in ascending id order: {listed}")
    expected_ids = sorted(set(tally.used()) | {reader_id})
    if sorted(listed) != expected_ids:
        problems.append(f"keys listed {listed}, expected {expected_ids}")
    by_id = {k["key_id"]: {"verified": k["verified"], "refused": k["refused"]} for k in body["keys"]}
    total = counts()
    for kid in expected_ids:
        if kid == reader_id:
            continue
        want = tally.expected(kid)
        if by_id.get(kid) != want:
            problems.append(f"key {kid}: {by_id.get(kid)} != {want}")
        total["verified"] += want["verified"]
        for r in REASONS:
            total["refused"][r] += want["refused"][r]
    mine = by_id.get(reader_id)
    reader_ok = range(reader_before if at_rest else 0, reader_before + 2)
    mine_refused = {r: tally.n[reader_id][r] for r in REASONS}
    if mine is None or mine["verified"] not in reader_ok or mine["refused"] != mine_refused:
        problems.append(f"reader {reader_id}: {mine}, expected verified in {list(reader_ok)}, refused {mine_refused}")
    else:
        for r in REASONS:
            total["refused"][r] += tally.n[reader_id][r]
    if body["total"]["refused"] != total["refused"]:
        problems.append(f"total refused {body['total']['refused']} != {total['refused']}")
    if body["total"]["verified"] - total["verified"] not in reader_ok:
        problems.append(f"total verified {body['total']['verified']}: others {total['verified']}, reader {reader_ok}")
    return "; ".join(problems) or None


def assert_buckets_sum_to_total(body):
    s = counts()
    for b in body["buckets"]:
        s["verified"] += b["verified"]
        for r in REASONS:
            s["refused"][r] += b["refused"][r]
    assert s == body["total"], f"buckets sum to {s}, total is {body['total']}"


def wait_usage(reader, tally, what):
    """Polls the account's usage with `reader` until it agrees with the tally (the reader's own
    count: at most its reads so far); fails with the last difference."""
    deadline = time.monotonic() + FLUSH_TIMEOUT
    while True:
        body, before = read(reader, tally)
        problem = usage_mismatch(body, tally, reader.key_id, before, at_rest=False)
        if problem is None:
            assert_buckets_sum_to_total(body)
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: usage never matched the requests sent within {FLUSH_TIMEOUT} s: {problem}")
        time.sleep(0.1)


def assert_key_usage_exact(reader, tally, key_id):
    r = reader.get(key_usage_path(key_id))
    assert r.status_code == 200, r.text
    assert r.body["key_id"] == key_id
    assert r.body["total"] == tally.expected(key_id), f"key {key_id}"
    assert_buckets_sum_to_total(r.body)


def sigterm_all(servers):
    """SIGTERM to every instance at once (no wait for a flush); each must exit 0."""
    procs = []
    for s in servers:
        for c in list(s.clients):
            c.session.close()
        procs.append((s, s.proc))
        s.proc = None
    for _, p in procs:
        p.send_signal(signal.SIGTERM)
    for s, p in procs:
        try:
            rc = p.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            pytest.fail(f"apikeyd did not exit within {STOP_TIMEOUT} s of SIGTERM")
        assert rc == 0, f"apikeyd exited with {rc} after SIGTERM; stderr tail:\n{s.log_text()[-2000:]}"


def set_status(admin, account_id, status):
    r = admin.request("PATCH", f"{ADMIN_ACCOUNTS}{account_id}/", json={"status": status})
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- the central check

# Requests per instance and kind: (first round, before the flush), (second round, before SIGTERM).
PLAN = [
    [{"verified": 7, "inactive": 3, "expired": 4, "suspended": 2, "scope": 5, "ip": 6},
     {"verified": 4, "inactive": 2, "expired": 3, "suspended": 5, "scope": 1, "ip": 2}],
    [{"verified": 3, "inactive": 5, "expired": 2, "suspended": 4, "scope": 6, "ip": 1},
     {"verified": 6, "inactive": 1, "expired": 5, "suspended": 3, "scope": 2, "ip": 4}],
]  # fmt: skip
SCOPE_REFUSED = {"X-Required-Scopes": "posts:write"}


def test_counts_are_exact_through_instances_after_a_flush_and_after_sigterm(server_factory, backend, tmp_path):
    clock = ShiftClock(tmp_path / "test-clock")
    a = server_factory("--auth-failures", "0", accounts=("acme", "beta"), admin=True, env=clock.env)
    instances = [a]
    if backend.name == "postgres":  # instances sharing a database: PostgreSQL only (module docstring)
        instances.append(server_factory("--auth-failures", "0", share=a, env=clock.env))
    acme, beta = a.accounts
    tally = Tally()  # acme's keys
    beta_tally = Tally()  # beta's: the suspended requests (a suspension takes the whole account)
    owner = tally.client(a, acme.primary_id, acme.key)  # makes the keys, then reads the usage
    beta_owner = beta_tally.client(a, beta.primary_id, beta.key)

    def make(client, name, **fields):
        r = client.post(json={"name": name, "key_type": "production", **fields})
        assert r.status_code == 201, r.text
        return r.body

    second = make(owner, "Second reader", scopes=["keys:read"])
    second_reader = tally.client(a, second["id"], second["api_key"])
    now = int(time.time())
    keys = {
        "verified": make(owner, "Used"),
        "inactive": make(owner, "Deactivated"),
        "expired": make(owner, "Expiring", expires_at=rfc3339(now + 600)),
        "scope": make(owner, "Scoped", scopes=["posts:read"]),
        "ip": make(owner, "Elsewhere", allowed_ips=["10.0.0.0/8"]),
        "suspended": make(beta_owner, "Beta's"),
    }
    assert owner.patch(keys["inactive"]["id"], json={"is_active": False}).status_code == 200
    headers = {kind: SCOPE_REFUSED if kind == "scope" else None for kind in keys}
    tallies = {kind: beta_tally if kind == "suspended" else tally for kind in keys}
    clients = [{kind: tallies[kind].client(s, k["id"], k["api_key"]) for kind, k in keys.items()} for s in instances]

    # Every instance knows every key (and the deactivation); then the clock passes the expiry.
    for i, per_kind in enumerate(clients):
        for kind, c in per_kind.items():
            want = "verified" if kind in ("expired", "suspended") else kind
            until_outcome(c, want, headers[kind], f"instance {i}: key {kind!r} answered {want}")
    clock.set(1200)
    for i, per_kind in enumerate(clients):
        until_outcome(per_kind["expired"], "expired", what=f"instance {i} to see the key expired")

    def send_round(rnd):
        set_status(a.admin, beta.id, "suspended")
        for i, per_kind in enumerate(clients):
            until_outcome(per_kind["suspended"], "suspended", what=f"instance {i} to see beta suspended")
        for i, per_kind in enumerate(clients):
            for kind, c in per_kind.items():
                send(c, kind, PLAN[i][rnd][kind], headers[kind])
        # Unknown keys are counted nowhere.
        for s in instances:
            assert_error(Client(s, forge_key()).request("GET", VERIFY), 401, "invalid_api_key")

    def planned(kind, rounds):
        return sum(PLAN[i][rnd][kind] for i in range(len(instances)) for rnd in rounds)

    def assert_plan_in(body, t, rounds):
        """The planned refusals are all there (and the answers while waiting for the instances: the tally)."""
        for kind in ("inactive", "expired", "scope", "ip", "suspended"):
            if (kind == "suspended") != (t is beta_tally):
                continue
            k = keys[kind]["id"]
            assert t.n[k][kind] >= planned(kind, rounds)
            assert body["total"]["refused"][kind] == t.n[k][kind]

    # Round 1, then a flush: every count in the store, summed over the instances. The owner polls
    # until every other key is exact; then the second reader, until the owner is exact too.
    send_round(0)
    wait_usage(owner, tally, "after the first round, read by the owner")
    body = wait_usage(second_reader, tally, "after the first round, read by the second reader")
    assert_plan_in(body, tally, [0])
    for kind, k in keys.items():
        if kind != "suspended":
            assert_key_usage_exact(second_reader, tally, k["id"])
    set_status(a.admin, beta.id, "active")  # through A: A knows at once
    body = wait_usage(beta_owner, beta_tally, "beta after the first round")
    assert_plan_in(body, beta_tally, [0])
    assert_key_usage_exact(beta_owner, beta_tally, keys["suspended"]["id"])

    # Round 2, then SIGTERM to every instance at once: the counts still in memory are written at
    # shutdown. One instance comes back; the totals hold everything, at once.
    send_round(1)
    sigterm_all(instances)
    a.start()
    body, before = read(owner, tally)
    problem = usage_mismatch(body, tally, acme.primary_id, before)
    assert problem is None, f"after SIGTERM and a restart: {problem}"
    assert_buckets_sum_to_total(body)
    assert_plan_in(body, tally, [0, 1])
    for kind, k in keys.items():
        if kind != "suspended":
            assert_key_usage_exact(owner, tally, k["id"])
    set_status(a.admin, beta.id, "active")
    body, before = read(beta_owner, beta_tally)
    problem = usage_mismatch(body, beta_tally, beta.primary_id, before)
    assert problem is None, f"beta after SIGTERM and a restart: {problem}"
    assert_plan_in(body, beta_tally, [0, 1])
    assert_key_usage_exact(beta_owner, beta_tally, keys["suspended"]["id"])


# --------------------------------------------------------------------------- shape and buckets


@pytest.fixture(scope="module")
def metered(backend, apikeyd_bin, tmp_path_factory):
    """A server (for the module); `owner` (the primary, tallied) and `key`, a key with scopes
    [posts:read] used 3 times (verified) and refused twice (scope), once those counts are in the
    store. The tests below add keys of their own (production ones, but for the sandbox test's)."""
    factory = ServerFactory(backend, tmp_path_factory.mktemp("metered"))
    server = factory("--auth-failures", "0", accounts=("acme", "globex"))
    tally = Tally()
    acme = server.account
    owner = tally.client(server, acme.primary_id, acme.key)
    r = owner.post(json={"name": "Metered", "key_type": "production", "scopes": ["posts:read"]})
    assert r.status_code == 201, r.text
    key = r.body
    t0 = time.time()
    user = tally.client(server, key["id"], key["api_key"])
    send(user, "verified", 3)
    send(user, "scope", 2, SCOPE_REFUSED)
    wait_until(lambda: owner.get(key_usage_path(key["id"])).body["total"] == counts(3, scope=2), FLUSH_TIMEOUT,
               interval=0.1, what="the key's counts in the store")  # fmt: skip
    yield SimpleNamespace(server=server, tally=tally, owner=owner, key=key, t0=int(t0), t1=int(time.time()))
    factory.close_all()


def assert_usage_shape(body, key_id=None):
    expected = (["key_id"] if key_id is not None else []) + ["granularity", "from", "to", "total", "buckets"]
    if key_id is None:
        expected.append("keys")
    assert list(body) == expected, list(body)
    if key_id is not None:
        assert body["key_id"] == key_id
    for obj in [body["total"], *body["buckets"], *body.get("keys", [])]:
        assert list(obj["refused"]) == REASONS
        assert list(obj)[-2:] == ["verified", "refused"]
    for b in body["buckets"]:
        assert list(b) == ["start", "verified", "refused"]
    for k in body.get("keys", []):
        assert list(k) == ["key_id", "verified", "refused"]


def bucket_starts(body):
    return [parse_time(b["start"]) for b in body["buckets"]]


def assert_window(body, step, frm, to):
    assert parse_time(body["from"]) == frm, (body["from"], rfc3339(frm))
    assert parse_time(body["to"]) == to, (body["to"], rfc3339(to))
    assert bucket_starts(body) == list(range(frm, to, step))


def nonzero_starts(body):
    return [parse_time(b["start"]) for b in body["buckets"] if b["verified"] or any(b["refused"].values())]


def test_key_usage_default_window_by_hour(metered):
    m = metered
    before = int(time.time())
    r = m.owner.get(key_usage_path(m.key["id"]))
    after = int(time.time())
    assert r.status_code == 200, r.text
    body = r.body
    assert_usage_shape(body, m.key["id"])
    assert body["granularity"] == "hour"
    # to = now rounded up; from = now - 24 h rounded down: 25 buckets (24 at a whole hour).
    windows = {(floor_to(t - DAY, HOUR), ceil_to(t, HOUR)) for t in (before, after)}
    assert (parse_time(body["from"]), parse_time(body["to"])) in windows
    assert_window(body, HOUR, parse_time(body["from"]), parse_time(body["to"]))
    assert body["total"] == counts(3, scope=2)
    assert_buckets_sum_to_total(body)
    # The counts are in the hour they were written in (between the first request and now).
    for start in nonzero_starts(body):
        assert floor_to(m.t0, HOUR) <= start <= floor_to(after, HOUR)


def test_key_usage_explicit_windows_round_outwards(metered):
    m = metered
    h = floor_to(m.t0, HOUR)  # no count was written before this hour
    # A past window: from rounds down, to rounds up (exclusive); every bucket present, all zero.
    r = m.owner.get(key_usage_path(m.key["id"], **{"from": rfc3339(h - 5 * HOUR + 1234), "to": rfc3339(h - HOUR + 1)}))
    assert r.status_code == 200, r.text
    assert_usage_shape(r.body, m.key["id"])
    assert_window(r.body, HOUR, h - 5 * HOUR, h)
    assert r.body["total"] == counts() and not nonzero_starts(r.body)
    # Whole hours stay as they are.
    r = m.owner.get(key_usage_path(m.key["id"], **{"from": rfc3339(h - 3 * HOUR), "to": rfc3339(h)}))
    assert_window(r.body, HOUR, h - 3 * HOUR, h)
    # A window holding now: all the counts.
    now = int(time.time())
    r = m.owner.get(key_usage_path(m.key["id"], **{"from": rfc3339(h - 2 * HOUR + 59), "to": rfc3339(now)}))
    assert r.status_code == 200, r.text
    assert parse_time(r.body["from"]) == h - 2 * HOUR
    assert parse_time(r.body["to"]) == ceil_to(now, HOUR)
    assert_window(r.body, HOUR, h - 2 * HOUR, ceil_to(now, HOUR))
    assert r.body["total"] == counts(3, scope=2)
    assert_buckets_sum_to_total(r.body)
    # One second window: one bucket.
    r = m.owner.get(key_usage_path(m.key["id"], **{"from": rfc3339(h - HOUR + 10), "to": rfc3339(h - HOUR + 11)}))
    assert_window(r.body, HOUR, h - HOUR, h)


def test_key_usage_by_day(metered):
    m = metered
    before = int(time.time())
    r = m.owner.get(key_usage_path(m.key["id"], granularity="day"))
    after = int(time.time())
    assert r.status_code == 200, r.text
    body = r.body
    assert_usage_shape(body, m.key["id"])
    assert body["granularity"] == "day"
    windows = {(floor_to(t - 30 * DAY, DAY), ceil_to(t, DAY)) for t in (before, after)}
    assert (parse_time(body["from"]), parse_time(body["to"])) in windows
    assert_window(body, DAY, parse_time(body["from"]), parse_time(body["to"]))
    assert all(b["start"].endswith("T00:00:00Z") for b in body["buckets"])
    assert body["total"] == counts(3, scope=2)
    assert_buckets_sum_to_total(body)
    # Explicit: from rounds down to midnight, to up to the next one.
    d = floor_to(m.t0, DAY)
    r = m.owner.get(key_usage_path(m.key["id"], granularity="day", **{"from": rfc3339(d - 3 * DAY + 5 * HOUR),
                                                                      "to": rfc3339(after)}))  # fmt: skip
    assert r.status_code == 200, r.text
    assert_window(r.body, DAY, d - 3 * DAY, ceil_to(after, DAY))
    assert r.body["total"] == counts(3, scope=2)
    for start in nonzero_starts(r.body):
        assert d <= start <= floor_to(after, DAY)
    # A past window by day: zeros.
    r = m.owner.get(key_usage_path(m.key["id"], granularity="day", **{"from": rfc3339(d - 4 * DAY),
                                                                      "to": rfc3339(d - DAY - 7)}))  # fmt: skip
    assert_window(r.body, DAY, d - 4 * DAY, d - DAY)
    assert r.body["total"] == counts()


def test_account_usage_lists_the_keys_with_counts(metered):
    m = metered
    owner, tally, server = m.owner, m.tally, m.server

    def make(name, key_type="production"):
        r = owner.post(json={"name": name, "key_type": key_type})
        assert r.status_code == 201, r.text
        return r.body, tally.client(server, r.body["id"], r.body["api_key"])

    idle, _ = make("Never used")
    off, off_c = make("Deactivated")
    assert owner.patch(off["id"], json={"is_active": False}).status_code == 200
    send(off_c, "inactive", 2)
    gone_late, gone_late_c = make("Deleted after its counts were written")
    send(gone_late_c, "verified", 4)
    wait_until(lambda: owner.get(key_usage_path(gone_late["id"])).body["total"] == counts(4), FLUSH_TIMEOUT,
               interval=0.1, what="the counts in the store")  # fmt: skip
    assert owner.delete(gone_late["id"]).status_code == 204
    gone_early, gone_early_c = make("Deleted before its counts were written")
    send(gone_early_c, "verified", 2)
    assert owner.delete(gone_early["id"]).status_code == 204
    for _ in range(3):  # unknown keys: counted nowhere
        assert_error(Client(server, forge_key()).request("GET", VERIFY), 401, "invalid_api_key")
    body = wait_usage(owner, tally, "the account's usage")
    assert_usage_shape(body)
    listed = [k["key_id"] for k in body["keys"]]
    assert idle["id"] not in listed
    assert gone_late["id"] in listed and gone_early["id"] in listed  # deleted keys included
    # A deleted key's own route: 404.
    assert_error(owner.get(key_usage_path(gone_late["id"])), 404, "not_found")


def test_sandbox_key_sees_only_sandbox_usage(metered):
    m = metered
    owner, tally, server = m.owner, m.tally, m.server
    r = owner.post(json={"name": "Sandbox user", "key_type": "sandbox"})
    assert r.status_code == 201, r.text
    sand = r.body
    send(tally.client(server, sand["id"], sand["api_key"]), "verified", 5)
    r = owner.post(json={"name": "Sandbox reader", "key_type": "sandbox", "scopes": ["keys:read"]})
    assert r.status_code == 201, r.text
    reader = tally.client(server, r.body["id"], r.body["api_key"])
    sandbox_ids = {sand["id"], reader.key_id}
    view = Tally()  # what a sandbox key may see: the sandbox keys' counts only
    view.n[sand["id"]] = tally.n[sand["id"]]
    deadline = time.monotonic() + FLUSH_TIMEOUT
    while True:
        before = tally.n[reader.key_id]["verified"]
        r = reader.get(USAGE)
        assert r.status_code == 200, r.text
        problem = usage_mismatch(r.body, view, reader.key_id, before, at_rest=False)
        if problem is None:
            break
        assert time.monotonic() < deadline, f"the sandbox reader's view: {problem}"
        time.sleep(0.1)
    assert {k["key_id"] for k in r.body["keys"]} <= sandbox_ids
    assert_key_usage_exact(reader, tally, sand["id"])
    # A production key's usage: 403 forbidden; the account's primary too.
    assert_error(reader.get(key_usage_path(m.key["id"])), 403, "forbidden")
    assert_error(reader.get(key_usage_path(owner.key_id)), 403, "forbidden")


def test_unknown_and_foreign_keys_are_404(metered):
    m = metered
    globex = m.server.accounts[1]
    for path in (key_usage_path(999999), key_usage_path(globex.primary_id), key_usage_path(0), f"{COLLECTION}abc/usage"):
        assert_error(m.owner.get(path), 404, "not_found")
    assert_error(Client(m.server, globex.key).get(key_usage_path(m.key["id"])), 404, "not_found")


# --------------------------------------------------------------------------- parameters


@pytest.fixture(scope="module")
def short_retention(backend, apikeyd_bin, tmp_path_factory):
    """A server keeping usage 2 days; `key` a sandbox key of its account."""
    factory = ServerFactory(backend, tmp_path_factory.mktemp("usage-params"))
    server = factory("--usage-retention-days", "2")
    r = server.client.post(json={"name": "Sandbox", "key_type": "sandbox"})
    assert r.status_code == 201, r.text
    server.key = r.body
    yield server
    factory.close_all()


def routes(server):
    return [USAGE, f"{COLLECTION}{server.key['id']}/usage"]


def with_query(path, query):
    return path + "?" + query


def stable_now(fn):
    """Runs fn(now) where `now` is this second; again if the hour turned meanwhile."""
    for _ in range(3):
        now = int(time.time())
        result = fn(now)
        if floor_to(int(time.time()), HOUR) == floor_to(now, HOUR):
            return result
    pytest.fail("the hour kept turning")


def bad_queries(now):
    h = floor_to(now, HOUR)
    d = floor_to(now, DAY)
    t = rfc3339
    return {
        "from-equals-to": {"from": t(h - HOUR), "to": t(h - HOUR)},
        "from-after-to": {"from": t(h - HOUR), "to": t(h - 2 * HOUR)},
        "from-after-to-same-hour": {"from": t(h - HOUR + 600), "to": t(h - HOUR + 300)},
        "bad-time-word": {"from": "yesterday"},
        "bad-time-month": {"from": "2026-13-01T00:00:00Z"},
        "bad-time-date-only": {"to": "2026-01-01"},
        "bad-time-empty": {"from": ""},
        "bad-time-number": {"to": str(now)},
        "granularity-week": {"granularity": "week"},
        "granularity-upper": {"granularity": "HOUR"},
        "granularity-empty": {"granularity": ""},
        "granularity-days": {"granularity": "days"},
        "unknown-param": {"x": "1"},
        "unknown-param-limit": {"limit": "10"},
        "from-beyond-retention": {"from": t(now - 3 * DAY)},
        "from-beyond-retention-day": {"from": t(now - 4 * DAY), "granularity": "day"},
        "default-day-window-beyond-retention": {"granularity": "day"},  # from = to - 30 days
        "from-one-hour-beyond-retention": {"from": t(h - 2 * DAY - 1)},
        "to-in-the-future": {"to": t(h + 2 * HOUR)},
        "to-far-future": {"to": t(now + 3 * DAY)},
        "to-in-the-future-day": {"to": t(d + 2 * DAY), "granularity": "day"},
    }


@pytest.mark.parametrize("case", sorted(bad_queries(0)))
def test_bad_parameters_are_400(short_retention, case):
    server = short_retention

    def run(now):
        query = urlencode(bad_queries(now)[case])
        return [server.client.get(with_query(p, query)) for p in routes(server)]

    for r in stable_now(run):
        assert_error(r, 400, "invalid_parameter")


@pytest.mark.parametrize("query", ["from=2030-01-01T00:00:00Z&from=2030-01-01T00:00:00Z", "granularity=hour&granularity=hour",
                                   "granularity=hour&granularity=day"])  # fmt: skip
def test_repeated_parameters_are_400(short_retention, query):
    for p in routes(short_retention):
        assert_error(short_retention.client.get(with_query(p, query)), 400, "invalid_parameter")


def test_window_edges_that_are_allowed(short_retention):
    server = short_retention

    def run(now):
        h = floor_to(now, HOUR)
        out = []
        for params in (
            {"from": rfc3339(h - 2 * DAY)},  # exactly the retention
            {"from": rfc3339(h - 2 * DAY), "to": rfc3339(h + HOUR)},  # to: the end of this hour
            {"to": rfc3339(now)},
            {},
        ):
            for p in routes(server):
                out.append((params, server.client.get(with_query(p, urlencode(params)) if params else p)))
        return out

    for params, r in stable_now(run):
        assert r.status_code == 200, f"{params}: {r.status_code} {r.text}"


def test_windows_over_2232_buckets_are_400(server_factory):
    server = server_factory("--usage-retention-days", "3660")

    def run(now):
        h, d = floor_to(now, HOUR), floor_to(now, DAY)
        cases = [
            (200, {"from": rfc3339(h + HOUR - 2232 * HOUR), "to": rfc3339(h + HOUR)}),
            (400, {"from": rfc3339(h + HOUR - 2233 * HOUR), "to": rfc3339(h + HOUR)}),
            (200, {"from": rfc3339(d + DAY - 2232 * DAY), "to": rfc3339(d + DAY), "granularity": "day"}),
            (400, {"from": rfc3339(d + DAY - 2233 * DAY), "to": rfc3339(d + DAY), "granularity": "day"}),
        ]
        return cases, [server.client.get(usage_path(**params)) for _, params in cases]

    cases, answers = stable_now(run)
    for (status, params), r in zip(cases, answers):
        if status == 200:
            assert r.status_code == 200, f"{params}: {r.text[:300]}"
            assert len(r.body["buckets"]) == 2232
        else:
            assert_error(r, 400, "invalid_parameter")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_are_405(short_retention, method):
    for p in routes(short_retention):
        r = short_retention.client.request(method, p, json={})
        assert_error(r, 405, "method_not_allowed")
        assert r.headers["Allow"] == "GET"


# --------------------------------------------------------------------------- retention


def store_rows(server, where):
    """Rows of the usage table matching `where` (the store itself, like test_audit_retention.py)."""
    sql = f"SELECT key_id, hour, verified, scope FROM key_usage WHERE {where} ORDER BY hour"
    if server.backend.name == "sqlite":
        with sqlite3.connect(server.db) as db:
            return [tuple(row) for row in db.execute(sql)]
    out = server.psql(sql)
    return [tuple(int(v) for v in line.split("|")) for line in filter(None, out.splitlines())]


def insert_row(server, key_id, account_id, hour, verified, scope):
    sandbox = "0" if server.backend.name == "sqlite" else "false"
    sql = (
        "INSERT INTO key_usage (key_id, hour, account_id, sandbox, verified, inactive, expired, suspended, scope, ip)"
        f" VALUES ({key_id}, {hour}, {account_id}, {sandbox}, {verified}, 0, 0, 0, {scope}, 0)"
    )
    if server.backend.name == "sqlite":
        with sqlite3.connect(server.db) as db:
            db.execute(sql)
    else:
        server.psql(sql)


def test_old_counts_are_pruned_and_recent_ones_kept(server_factory):
    server = server_factory(start=False)
    acme = server.account
    h = floor_to(int(time.time()), HOUR)
    insert_row(server, acme.primary_id, acme.id, h - 3 * DAY, 11, 1)  # older than 1 day
    insert_row(server, acme.primary_id, acme.id, h - DAY - HOUR, 13, 0)  # just older
    insert_row(server, acme.primary_id, acme.id, h - 12 * HOUR, 5, 2)  # within
    server.start(["--usage-retention-days", "1"])
    wait_until(lambda: store_rows(server, f"key_id = {acme.primary_id} AND hour < {h - DAY}") == [], RETENTION_TIMEOUT,
               interval=0.1, what="the old rows to be pruned")  # fmt: skip
    rows = store_rows(server, f"key_id = {acme.primary_id} AND hour < {h - DAY}")
    assert rows == [], rows
    assert (acme.primary_id, h - 12 * HOUR, 5, 2) in store_rows(server, f"key_id = {acme.primary_id}")
    # The kept row is in the API's answer, in its hour.
    r = acme.client.get(key_usage_path(acme.primary_id, **{"from": rfc3339(h - 12 * HOUR), "to": rfc3339(h - 11 * HOUR)}))
    assert r.status_code == 200, r.text
    assert r.body["buckets"] == [{"start": rfc3339(h - 12 * HOUR), **counts(5, scope=2)}]


def test_counts_older_than_the_retention_go_after_the_clock_moves(server_factory, tmp_path):
    """Counts the server wrote itself, then two days pass (the test clock) with
    --usage-retention-days 1: the prune, which runs at the start and then hourly, deletes them
    (the restart makes it run now; a move of the clock runs the sweeps, not the prune)."""
    clock = ShiftClock(tmp_path / "test-clock")
    server = server_factory("--usage-retention-days", "1", env=clock.env)
    acme = server.account
    r = acme.client.post(json={"name": "Used", "key_type": "sandbox"})
    assert r.status_code == 201, r.text
    key = r.body
    send(Client(server, key["api_key"]), "verified", 3)
    wait_until(lambda: acme.client.get(key_usage_path(key["id"])).body["total"] == counts(3), FLUSH_TIMEOUT,
               interval=0.1, what="the counts in the store")  # fmt: skip
    written = store_rows(server, f"key_id = {key['id']}")
    assert sum(row[2] for row in written) == 3
    clock.set(2 * DAY)
    wait_until(lambda: parse_time(acme.client.get(USAGE).body["to"]) > time.time() + DAY, CLOCK_TIMEOUT,
               what="the server's clock two days ahead")  # fmt: skip
    server.restart()
    wait_until(lambda: store_rows(server, f"key_id = {key['id']}") == [], RETENTION_TIMEOUT, interval=0.1,
               what="the two-day-old counts to be pruned")  # fmt: skip
    # What is used now is counted (and kept).
    send(Client(server, key["api_key"]), "verified", 1)
    wait_until(lambda: acme.client.get(key_usage_path(key["id"])).body["total"] == counts(1), FLUSH_TIMEOUT,
               interval=0.1, what="the new count in the store")  # fmt: skip
