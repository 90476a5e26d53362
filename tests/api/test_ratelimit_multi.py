"""Rate limits across instances on one PostgreSQL database (issue 13; PostgreSQL only, by nature).

- Three instances, traffic spread evenly, demand at 3x the limit: over >= 20 windows of 10 s,
  the requests admitted in each window are within [0.98, 1.02] x the limit (never over-admitting,
  never over-blocking). The figures, the exchange interval and the database load it costs (rows
  written per second, from pg_stat_user_tables) are printed: they go in docs/benchmarks.md.
- PostgreSQL away: each instance falls back to limit / 3 (the instances it last knew of) per
  window; when PostgreSQL is back, the counts converge on the limit again.

Windows are the server's: each answer's RateLimit header says how far its window's end is
(t=), which names the window. The bars asserted are the issue's; no duration is.
"""

import os
import re
import threading
import time

from conftest import (
    ACCOUNT_PICKUP_TIMEOUT,
    Client,
    assert_error,
    instances,
    wait_until,
)

LONG = True  # mostly waiting: scheduled first (conftest.pytest_collection_modifyitems)

VERIFY = "/v1/auth/verify"
INSTANCES = 3
LIMIT = 300
WINDOW = 10  # the bar holds for windows >= 10 s
# Measured windows: the issue asks for >= 20 (the release suite); scripts/test.sh sets 3 under ASan.
WINDOWS = int(os.environ.get("APIKEYD_RATE_WINDOWS", "20"))
DEMAND = 3  # x the limit, spread evenly over the instances
OVER_BAR, UNDER_BAR = 1.02, 0.98
SYNC_MS = 100  # the exchange interval (the default, given explicitly for the record)
RECOVERY_TIMEOUT = 15.0
RATELIMIT_T = re.compile(r"(?:^|;)\s*t=(\d+)")


def limited_key(servers, limit, window):
    """A key limited to `limit` per `window` s, made on the first instance and known on all."""
    r = servers[0].client.post(json={"name": "partner", "key_type": "production",
                                     "rate_limit": {"limit": limit, "window_seconds": window}})  # fmt: skip
    assert r.status_code == 201, r.text
    key = r.body["api_key"]
    for s in servers[1:]:
        c = Client(s, key)
        wait_until(lambda c=c: c.request("GET", VERIFY).status_code == 204, ACCOUNT_PICKUP_TIMEOUT,
                   what="the key on every instance")  # fmt: skip
    return key


class Pacer:
    """One client per instance, each sending `rate` verifications a second at an even pace, and
    recording each answer as (instance, window number, status). The window is the server's:
    the answer's RateLimit t= is the time to its end, so its end is the multiple of the window
    length nearest to (the time of the answer + t)."""

    def __init__(self, servers, key, rate, window):
        self.window = window
        self.rate = rate
        self.clients = [Client(s, key) for s in servers]
        self.records = []  # (instance, window number, status)
        self.problems = []  # anything but 204 / 429 rate_limited with its headers
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(len(servers))]

    def run(self, i):
        client, period = self.clients[i], 1.0 / self.rate
        due = time.monotonic() + i * period / len(self.clients)
        while not self.stop_event.is_set():
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            due += period
            try:
                r = client.request("GET", VERIFY)
            except Exception as e:  # noqa: BLE001 - recorded and asserted on
                with self.lock:
                    self.problems.append(f"instance {i}: {type(e).__name__}: {e}")
                continue
            done = time.time()
            m = RATELIMIT_T.search(r.headers.get("RateLimit", ""))
            if r.status_code not in (204, 429) or m is None:
                with self.lock:
                    self.problems.append(f"instance {i}: {r.status_code} {r.headers} {r.text}")
                continue
            if r.status_code == 429:
                assert_error(r, 429, "rate_limited")
            end = round((done + int(m.group(1))) / self.window) * self.window
            with self.lock:
                self.records.append((i, end // self.window - 1, r.status_code))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=30)

    def admitted(self, w, instance=None):
        with self.lock:
            return sum(1 for i, win, st in self.records if win == w and st == 204 and instance in (None, i))

    def demand(self, w):
        with self.lock:
            return sum(1 for _, win, _ in self.records if win == w)


def current_window(window):
    return int(time.time()) // window


def wait_for_window(w, window):
    """Sleeps until window `w` has ended (plus a margin for the last answers in it)."""
    time.sleep(max(0.0, (w + 1) * window - time.time()) + 1.0)


def rate_rows_written(server):
    """Rows inserted, updated and deleted in the exchange's tables so far (pg_stat_user_tables)."""
    out = server.psql(
        "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
        " WHERE relname IN ('rate_windows', 'rate_instances')"
    )
    return int(out)


def test_three_instances_hold_the_limit_within_2_percent(pg_factory, capsys):
    servers = instances(pg_factory, INSTANCES, "--auth-failures", "0", "--rate-sync-ms", str(SYNC_MS))
    key = limited_key(servers, LIMIT, WINDOW)
    per_instance = DEMAND * LIMIT / WINDOW / INSTANCES
    with Pacer(servers, key, per_instance, WINDOW) as pacer:
        first = current_window(WINDOW) + 1  # the first whole window (the one now is partly before the traffic)
        wait_for_window(first - 1, WINDOW)
        rows0, t0 = rate_rows_written(servers[0]), time.monotonic()
        wait_for_window(first + WINDOWS - 1, WINDOW)
        time.sleep(1.0)  # the statistics of the last exchanges reach pg_stat
        rows1, t1 = rate_rows_written(servers[0]), time.monotonic()
    assert not pacer.problems, pacer.problems[:5]
    windows = range(first, first + WINDOWS)
    admitted = [pacer.admitted(w) for w in windows]
    demand = [pacer.demand(w) for w in windows]
    per = [[pacer.admitted(w, i) for i in range(INSTANCES)] for w in windows]
    report = "\n".join(f"  window {w}: demand {d}, admitted {a} ({a / LIMIT:.3f}x) = {' + '.join(map(str, p))}"
                       for w, d, a, p in zip(windows, demand, admitted, per))  # fmt: skip
    assert all(d >= 2.5 * LIMIT for d in demand), f"the clients fell behind the 3x demand:\n{report}"
    assert max(admitted) <= OVER_BAR * LIMIT, f"over-admitted:\n{report}"
    assert min(admitted) >= UNDER_BAR * LIMIT, f"over-blocked:\n{report}"
    rows_per_s = (rows1 - rows0) / (t1 - t0)
    assert rows1 > rows0  # the instances did exchange through the database
    with capsys.disabled():
        print(f"\nrate limit {LIMIT} per {WINDOW} s, {INSTANCES} instances, demand {DEMAND}x spread evenly, "
              f"exchange every {SYNC_MS} ms, {WINDOWS} windows: admitted per window min {min(admitted) / LIMIT:.3f}x, "
              f"max {max(admitted) / LIMIT:.3f}x, mean {sum(admitted) / len(admitted) / LIMIT:.3f}x of the limit; "
              f"database load {rows_per_s:.1f} rows written/s\n{report}")  # fmt: skip


def test_postgres_away_falls_back_to_a_share_then_converges(fault_cluster, fault_factory, capsys):
    """PostgreSQL stops under 3x demand: each instance admits limit / 3 per window (its share of
    the instances it last knew of), no more, no less. When it is back, the windows hold the
    limit again."""
    limit, window = 90, 5
    servers = instances(fault_factory, INSTANCES, "--auth-failures", "0", "--max-staleness", "0")
    key = limited_key(servers, limit, window)
    with Pacer(servers, key, DEMAND * limit / window / INSTANCES, window) as pacer:
        w = current_window(window) + 1
        wait_for_window(w, window)  # one whole window on the database: the instances know of each other
        fault_cluster.stop("fast")
        away = current_window(window) + 2  # a whole window after the store is found away (1 s)
        wait_for_window(away + 1, window)
        fault_cluster.start()
        back = current_window(window) + 2  # the exchange reconnects within a tick; the next window is whole
        wait_for_window(back + 1, window)
    assert not pacer.problems, pacer.problems[:5]
    share = limit // INSTANCES
    outage = {w: [pacer.admitted(w, i) for i in range(INSTANCES)] for w in (away, away + 1)}
    after = {w: pacer.admitted(w) for w in (back, back + 1)}
    for w, per in outage.items():
        assert per == [share] * INSTANCES, f"window {w} with PostgreSQL away: admitted {per}, not {share} each"
        assert pacer.demand(w) >= 2.5 * limit
    for w, n in after.items():
        assert UNDER_BAR * limit <= n <= OVER_BAR * limit, f"window {w} after PostgreSQL came back: {n} of {limit}"
    with capsys.disabled():
        print(f"\nPostgreSQL away: {outage} admitted per instance per window (limit {limit}); back: {after}")
