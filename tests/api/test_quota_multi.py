"""Quotas across instances on one PostgreSQL database (issue 13; PostgreSQL only, by nature).

Three instances spend one key's balance as fast as their clients can:
- one instance stopped cleanly mid-run: every credit is spent, exactly (what it had leased
  and not spent went back to the database at its shutdown);
- one instance SIGKILLed mid-run: never overspent, and what is left unspent (stranded on the
  killed instance) is at most one block (QUOTA_BLOCK_MAX credits); it comes back at the key's
  next refill, which the test reaches on a test clock.
The counts are printed for docs/benchmarks.md.
"""

import threading
from types import SimpleNamespace

import pytest

from conftest import ACCOUNT_PICKUP_TIMEOUT, Client, assert_error, wait_until
from lifecycle import CLOCK_TIMEOUT, ShiftClock

LONG = True  # scheduled first (conftest.pytest_collection_modifyitems)

VERIFY = "/v1/auth/verify"
INSTANCES = 3
BALANCE = 6000
BLOCK_MAX = 1000  # QUOTA_BLOCK_MAX (src/core/quota.h): the most one instance holds of a key
CLIENTS_PER_INSTANCE = 3
DAY = 86400


@pytest.fixture
def cluster(pg_factory, tmp_path):
    clock = ShiftClock(tmp_path / "clock")
    # Early in a (test) day: the key's daily refill must not come during the run.
    now = clock.now()
    clock.set(now - now % DAY + DAY + 10 - now)
    first = pg_factory("--auth-failures", "0", env=clock.env)
    servers = [first] + [pg_factory("--auth-failures", "0", env=clock.env, share=first) for _ in range(INSTANCES - 1)]
    return SimpleNamespace(servers=servers, clock=clock)


class Spenders:
    """CLIENTS_PER_INSTANCE threads per instance verifying one key until told to stop; counts 204s per instance."""

    def __init__(self, servers, key):
        self.key = key
        self.admitted = [0] * len(servers)
        self.refused = [0] * len(servers)
        self.problems = []
        self.lock = threading.Lock()
        self.stopped = [threading.Event() for _ in servers]
        self.threads = [threading.Thread(target=self.run, args=(i, s), daemon=True)
                        for i, s in enumerate(servers) for _ in range(CLIENTS_PER_INSTANCE)]  # fmt: skip

    def run(self, i, server):
        c = Client(server, self.key)
        while not self.stopped[i].is_set():
            try:
                r = c.request("GET", VERIFY)
            except Exception as e:  # noqa: BLE001 - an instance killed under its client: expected, then stop
                if not self.stopped[i].is_set():
                    with self.lock:
                        self.problems.append(f"instance {i}: {type(e).__name__}")
                return
            with self.lock:
                if r.status_code == 204:
                    self.admitted[i] += 1
                elif r.status_code == 429 and r.body["error"]["code"] == "quota_exhausted":
                    self.refused[i] += 1
                else:
                    self.problems.append(f"instance {i}: {r.status_code} {r.text}")

    def start(self):
        for t in self.threads:
            t.start()

    def total(self):
        with self.lock:
            return sum(self.admitted)

    def stop(self, i=None):
        for j in range(len(self.stopped)) if i is None else (i,):
            self.stopped[j].set()

    def join(self):
        for t in self.threads:
            t.join(timeout=30)


def metered_key(servers, balance):
    r = servers[0].client.post(json={"name": "metered", "key_type": "production", "remaining": balance,
                                     "refill": {"amount": balance, "interval": "day"}})  # fmt: skip
    assert r.status_code == 201, r.text
    for s in servers[1:]:
        c = Client(s, r.body["api_key"])
        wait_until(lambda c=c: c.request("GET", VERIFY, headers={"X-Cost": "0"}).status_code == 204,
                   ACCOUNT_PICKUP_TIMEOUT, what="the key on every instance")  # fmt: skip
    return r.body


def balance_in_db(server, key_id):
    return int(server.psql(f"SELECT q.remaining FROM api_keys k JOIN key_quotas q USING (quota_id) WHERE k.id = {key_id}"))


def exhausted_everywhere(servers, key):
    return all(Client(s, key).request("GET", VERIFY).status_code == 429 for s in servers)


def run_until_half_then(cluster, fault, capsys):
    servers = cluster.servers
    key = metered_key(servers, BALANCE)
    spenders = Spenders(servers, key["api_key"])
    spenders.start()
    wait_until(lambda: spenders.total() >= BALANCE // 2, 120, interval=0.01, what="half the balance spent")
    spenders.stop(2)
    if fault == "kill":
        servers[2].kill()
    else:
        servers[2].stop()
    wait_until(lambda: min(spenders.refused[:2]) >= 30, 120, interval=0.05, what="the balance spent on the others")
    # Spent to the end: nothing left in the database (what the stopped instance gave back has been
    # leased again), then each live instance refusing requests sent after that, so that it holds
    # nothing either (more refusals than it has clients: at least one was sent after the look).
    wait_until(lambda: balance_in_db(servers[0], key["id"]) == 0, 30, what="the database balance at 0")
    seen = list(spenders.refused)
    wait_until(lambda: all(spenders.refused[i] > seen[i] + CLIENTS_PER_INSTANCE for i in range(2)), 30,
               interval=0.01, what="every live instance refusing")  # fmt: skip
    spenders.stop()
    spenders.join()
    assert not spenders.problems, spenders.problems[:5]
    live = servers[:2]
    wait_until(lambda: exhausted_everywhere(live, key["api_key"]), 10, what="every live instance refusing")
    admitted = spenders.total()
    with capsys.disabled():
        print(f"\nquota {BALANCE}, {INSTANCES} instances x {CLIENTS_PER_INSTANCE} clients, instance 3 "
              f"{'SIGKILLed' if fault == 'kill' else 'stopped'} at half: admitted {admitted} "
              f"(per instance {spenders.admitted}), unspent {BALANCE - admitted}, "
              f"left in the database {balance_in_db(servers[0], key['id'])}")  # fmt: skip
    return key, admitted


def test_clean_stop_mid_run_spends_every_credit_exactly(cluster, capsys):
    key, admitted = run_until_half_then(cluster, "stop", capsys)
    assert admitted == BALANCE
    assert balance_in_db(cluster.servers[0], key["id"]) == 0


def test_sigkill_mid_run_never_overspends_and_strands_at_most_one_block(cluster, capsys):
    key, admitted = run_until_half_then(cluster, "kill", capsys)
    assert admitted <= BALANCE, "overspent"
    assert BALANCE - admitted <= BLOCK_MAX, f"{BALANCE - admitted} credits stranded, more than one block"
    assert balance_in_db(cluster.servers[0], key["id"]) == 0  # the rest is held by the killed instance, nowhere else
    # The stranded credits come back with the next refill (the balance is reset to its amount).
    now = cluster.clock.now()
    cluster.clock.set(cluster.clock.offset + (now - now % DAY + DAY + 10 - now))
    c = Client(cluster.servers[0], key["api_key"])
    wait_until(lambda: c.request("GET", VERIFY, headers={"X-Cost": "1000"}).status_code == 204, CLOCK_TIMEOUT,
               what="the refill at the next day")  # fmt: skip
    spent = 1000
    while True:
        r = c.request("GET", VERIFY, headers={"X-Cost": "1000"})
        if r.status_code != 204:
            assert_error(r, 429, "quota_exhausted")
            break
        spent += 1000
    assert spent == BALANCE  # the whole refill, on one instance now
