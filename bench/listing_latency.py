"""bench/listing_latency.py: `make bench` [g]. Latency of the issue-9 listings, one client.

    python3 listing_latency.py PORT ADMIN_TOKEN ACCOUNT_KEY ROUNDS REQUESTS

One keep-alive connection (http.client), one request at a time. Each round times every case
REQUESTS times in a row (the first round after 20 unmeasured requests per case); a request's
time runs from sending it to having read the whole body, so it includes the client's own
HTTP work (about 0.1 ms here). Before the rounds, the cursors of the deep pages are found by
walking the listing with limit=1000 (those walks are timed too, as context). Every answer
must be a 200 with a full page (100 items, the default limit; 1 for the external_id
filter); anything else is printed as "ISSUE ..." and the run goes on.

Prints a table, then one line per case for run.sh:
    RESULT <case> p50_ms=<median of the rounds' p50> p99_ms=<median of the rounds' p99>
           max_ms=<largest> p99_runs=<each round's p99>
"""
import http.client
import json
import statistics
import sys
import time

port, token, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rounds, n = int(sys.argv[4]), int(sys.argv[5])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
issues = []


def get(path, bearer):
    t0 = time.perf_counter_ns()
    conn.request("GET", path, headers={"Authorization": "Bearer " + bearer})
    resp = conn.getresponse()
    body = resp.read()
    return (time.perf_counter_ns() - t0) / 1e6, resp.status, body


def page(path, bearer, name):
    ms, status, body = get(path, bearer)
    if status != 200:
        sys.exit("listing_latency: %s answered %d: %s" % (path, status, body[:200]))
    doc = json.loads(body)
    return ms, doc[name], doc["next_cursor"]


def walk(path, bearer, name, stop):
    """Pages of 1000 from the start until stop(last item); returns (cursor, times)."""
    cursor, times = None, []
    while True:
        ms, items, cursor = page(path + ("&after=" + cursor if cursor else ""), bearer, name)
        times.append(ms)
        if cursor is None or stop(items[-1]):
            return cursor, times


def pct(xs, p):  # nearest rank
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


acc_cursor, acc_walk = walk("/v1/admin/accounts?limit=1000", token, "accounts", lambda a: a["id"] >= 50000)
ev_cursor, ev_walk = walk("/v1/admin/audit-log?limit=1000", token, "events", lambda e: e["id"] <= 500000)
CASES = [
    # name, path, bearer, items name, items expected
    ("accounts_first", "/v1/admin/accounts", token, "accounts", 100),
    ("accounts_middle", "/v1/admin/accounts?after=" + acc_cursor, token, "accounts", 100),
    ("accounts_external_id", "/v1/admin/accounts?external_id=cus_00050001", token, "accounts", 1),
    ("audit_first", "/v1/admin/audit-log", token, "events", 100),
    ("audit_deep", "/v1/admin/audit-log?after=" + ev_cursor, token, "events", 100),
    ("audit_account_id", "/v1/admin/audit-log?account_id=1", token, "events", 100),
    ("audit_action", "/v1/admin/audit-log?action=account.suspended", token, "events", 100),
    ("audit_both", "/v1/admin/audit-log?account_id=1&action=key.deleted", token, "events", 100),
    ("account_audit", "/v1/account/audit-log", key, "events", 100),
]
for name, path, bearer, items, want in CASES:
    _, got, _ = page(path, bearer, items)
    if len(got) != want:
        issues.append("%s: %d items, expected %d (%s)" % (name, len(got), want, path))
    for _ in range(20):
        get(path, bearer)

runs = {c[0]: [] for c in CASES}
for r in range(rounds):
    for name, path, bearer, _, _ in CASES:
        times = []
        for _ in range(n):
            ms, status, _ = get(path, bearer)
            if status != 200:
                issues.append("%s answered %d" % (name, status))
            times.append(ms)
        runs[name].append(times)

print("%-22s %8s %8s %8s   %s" % ("case (one client)", "p50_ms", "p99_ms", "max_ms", "p99 of each round"))
rows = [(c[0], runs[c[0]]) for c in CASES]
rows += [("walk_accounts_1000", [acc_walk]), ("walk_audit_1000", [ev_walk])]
for name, rr in rows:
    p50 = statistics.median(pct(t, 50) for t in rr)
    p99 = statistics.median(pct(t, 99) for t in rr)
    mx = max(max(t) for t in rr)
    each = ",".join("%.2f" % pct(t, 99) for t in rr)
    print("%-22s %8.2f %8.2f %8.2f   %s" % (name, p50, p99, mx, each))
    print("RESULT %s p50_ms=%.3f p99_ms=%.3f max_ms=%.3f p99_runs=%s" % (name, p50, p99, mx, each))
print("deep-page cursors: accounts after id %s, events before id %s (%d and %d pages of 1000 walked)"
      % (acc_cursor.split(".")[0], ev_cursor.split(".")[0], len(acc_walk), len(ev_walk)))
for i in issues[:20]:
    print("ISSUE " + i)
