"""The change channel is input from strangers (PostgreSQL only, by nature: issue 8, section 1).

Any role that may connect to the database can `NOTIFY apikeyd, '...'`, with no table rights at
all. Here such a role, `intruder` (LOGIN, nothing granted, shown unable to read `api_keys`),
sends hostile payloads over its own connection while two instances serve one database and a
client verifies, on both, a valid key (must answer 204), a deactivated key (401 key_inactive)
and a deleted key (401 invalid_api_key), and lists the keys with the primary key. Asserted, for
every group of payloads:

- both instances stay up (process alive, /healthz 200) and every answer during and after the
  payloads is the right one: no 503 (a stall past --max-staleness would show as one), no 500;
- no key's last_used, in any list of either instance or in the database, ever lies more than
  5 s in the future (the issue's skew bound);
- a real use still moves last_used forward on both instances afterwards;
- a real change afterwards (deactivating a key through A) still reaches B within the suite's
  propagation timeout.

And: a `k` naming an id that does not exist yet must not keep the key that later gets that id
(ids come from a sequence, so the next one is predictable) from working on either instance.

All groups run in one scene, one after the other (starting two instances per group cost a
minute of every test run); after each group both instances must be alive and every answer so
far right, so a failure names the group and the payload that caused it. The only durations are
bounded waits.
"""

import subprocess
import threading
import time


from conftest import (
    PG_BINDIR,
    PSQL_TIMEOUT,
    Client,
    assert_error,
    parse_time,
    postgres_only,
    wait_until,
)

LONG = True  # mostly waiting: scheduled first (conftest.pytest_collection_modifyitems)

VERIFY = "/v1/auth/verify"
INTRUDER = "intruder"
SKEW = 5  # seconds: the furthest in the future a last_used may ever be
PROPAGATION_TIMEOUT = 5.0  # as in test_multi_instance.py: a change not there by then is lost
LAST_USED_TIMEOUT = 5.0  # a real use visible on both instances (contract: within about 1-2 s)
SETTLE = 0.3  # after each payload, before the liveness check (nothing is asserted on it)
FUTURE = 4102444800  # 2100-01-01T00:00:00Z

pytestmark = postgres_only  # LISTEN/NOTIFY is PostgreSQL's


def verify(client):
    return client.request("GET", VERIFY)


class Intruder:
    """psql as a role with LOGIN and no rights on any table, over the cluster's unix socket."""

    def __init__(self, server):
        self.cluster = server.backend.cluster
        self.dbname = server.backend.dbname
        self.cluster.psql(
            f"DO $$ BEGIN CREATE ROLE {INTRUDER} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        rights = self.cluster.psql(
            f"SELECT has_table_privilege('{INTRUDER}', 'api_keys', 'SELECT,UPDATE,INSERT,DELETE')"
            f" OR has_table_privilege('{INTRUDER}', 'accounts', 'SELECT,UPDATE,INSERT,DELETE')",
            dbname=self.dbname,
        )
        assert rights == "f", f"{INTRUDER} must have no table rights"
        p = self.run("SELECT count(*) FROM api_keys", check=False)
        assert p.returncode != 0 and "permission denied" in p.stderr, f"{INTRUDER} can read api_keys: {p.stdout}"

    def run(self, sql, check=True):
        argv = [str(PG_BINDIR / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", str(self.cluster.sockdir), "-p", str(self.cluster.port), "-U", INTRUDER, "-d", self.dbname,
                "-c", sql]  # fmt: skip
        p = subprocess.run(argv, capture_output=True, text=True, timeout=PSQL_TIMEOUT, stdin=subprocess.DEVNULL)
        if check:
            assert p.returncode == 0, f"psql as {INTRUDER} failed on {sql[:200]!r}: {p.stderr}"
        return p



def lit(text):
    """`SELECT pg_notify('apikeyd', 'text')`, the text quoted as an SQL literal."""
    return notify("'" + text.replace("'", "''") + "'")


def notify(expr, tail=""):
    """`SELECT pg_notify('apikeyd', expr) tail`: `expr` is an SQL expression, so any text can be built."""
    return f"SELECT pg_notify('apikeyd', {expr}){tail}"


class Scene:
    """Two instances on one database; a valid, a deactivated and a deleted key; an intruder;
    background traffic recording every wrong answer."""

    def __init__(self, factory):
        # --auth-failures 0: the deleted key, verified in a loop, must keep its 401 (not 429).
        self.a = factory("--auth-failures", "0")
        self.b = factory("--auth-failures", "0", share=self.a)
        admin = self.a.client
        self.admin = admin
        self.valid = admin.create("valid", "production")
        self.revoked = admin.create("revoked", "sandbox")
        admin.update(self.revoked["id"], is_active=False)
        self.deleted = admin.create("deleted", "sandbox")
        admin.remove(self.deleted["id"])
        self.spare = admin.create("deactivated at the end", "sandbox")
        self.servers = {"A": self.a, "B": self.b}
        for name, s in self.servers.items():
            wait_until(
                lambda s=s: verify(Client(s, self.spare["api_key"])).status_code == 204,
                PROPAGATION_TIMEOUT,
                what=f"the keys on {name}",
            )
        self.intruder = Intruder(self.a)
        self.wrong = []  # (instance, what, answer)
        self.max_last_used = []  # (instance, key id, last_used) over now + SKEW
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._traffic, daemon=True)

    def ids(self):
        return self.valid["id"], self.revoked["id"], self.deleted["id"], self.a.account.primary_id

    # -- background traffic
    def _traffic(self):
        expected = [
            (self.valid["api_key"], 204, None),
            (self.revoked["api_key"], 401, "key_inactive"),
            (self.deleted["api_key"], 401, "invalid_api_key"),
        ]
        clients = {
            name: ([(Client(s, k), st, code) for k, st, code in expected], Client(s, s.account.key))
            for name, s in self.servers.items()
        }
        while not self._stop.is_set():
            for name, (checks, lister) in clients.items():
                for c, status, code in checks:
                    self._check(name, lambda c=c: verify(c), status, code, c.key[:12])
                self._check(name, lister.get, 200, None, "list", lister=True)
            time.sleep(0.01)

    def _check(self, name, call, status, code, what, lister=False):
        try:
            r = call()
        except BaseException as e:  # noqa: BLE001 - a wrong answer, recorded and asserted on
            self.wrong.append((name, what, f"{type(e).__name__}: {e}"))
            return
        self.answers += 1
        if r.status_code != status or (code is not None and r.body["error"]["code"] != code):
            self.wrong.append((name, what, f"{r.status_code} {r.text[:200]}"))
        elif lister:
            self._check_last_used(name, r.body["api_keys"])

    def _check_last_used(self, name, keys):
        bound = time.time() + SKEW
        for k in keys:
            if k["last_used"] is not None and parse_time(k["last_used"]) > bound:
                self.max_last_used.append((name, k["id"], k["last_used"]))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)

    # -- assertions
    def assert_alive(self, after):
        for name, s in self.servers.items():
            rc = s.proc.poll()
            assert rc is None, (
                f"instance {name} died (exit status {rc}) after {after}; stderr tail:\n{s.log_text()[-1500:]}"
            )

    def send(self, payloads):
        """Runs each (label, SQL statement) as the intruder; checks both instances live after each."""
        for label, sql in payloads:
            self.intruder.run(sql)
            time.sleep(SETTLE)
            self.assert_alive(f"the payload {label}")

    def assert_healthy(self, what):
        self.assert_alive(what)
        for name, s in self.servers.items():
            r = Client(s).get("/healthz")
            assert r.status_code == 200, f"{name}: /healthz {r.status_code} after {what}"
        assert self.answers > 0, "no traffic ran"
        assert not self.wrong, f"wrong answers during or after {what} ({len(self.wrong)}): {self.wrong[:10]}"
        assert not self.max_last_used, (
            f"last_used more than {SKEW} s in the future after {what}: {self.max_last_used[:10]}"
        )
        now = time.time()
        for name, s in self.servers.items():
            for k in Client(s, s.account.key).list():
                if k["last_used"] is not None:
                    assert parse_time(k["last_used"]) <= now + SKEW, f"{name} lists key {k['id']} last used {k['last_used']}"
        in_db = int(self.a.psql("SELECT coalesce(max(last_used), 0) FROM api_keys"))
        assert in_db <= time.time() + SKEW, f"a last_used in the database lies in the future: {in_db}"

    def assert_real_use_recorded(self):
        """A use after the payloads moves last_used forward, in the list of both instances."""
        t0 = int(time.time()) + 1
        wait_until(lambda: time.time() >= t0, 2.0, what="the next second")
        r = verify(Client(self.b, self.valid["api_key"]))
        assert r.status_code == 204, r.text
        for name, s in self.servers.items():
            lister = Client(s, s.account.key)

            def seen(lister=lister):
                k = next(k for k in lister.list() if k["id"] == self.valid["id"])
                return k["last_used"] is not None and t0 <= parse_time(k["last_used"]) <= time.time() + SKEW

            wait_until(seen, LAST_USED_TIMEOUT, what=f"a real use (at or after {t0}) in {name}'s list")

    def assert_change_propagates(self):
        """A real change through A afterwards still reaches B."""
        self.admin.update(self.spare["id"], is_active=False)
        assert_error(verify(Client(self.a, self.spare["api_key"])), 401, "key_inactive")

        def refused_on_b():
            r = verify(Client(self.b, self.spare["api_key"]))
            if r.status_code == 204:
                return False
            assert_error(r, 401, "key_inactive")
            return True

        wait_until(refused_on_b, PROPAGATION_TIMEOUT, what="the deactivation through A on B")


# --------------------------------------------------------------------------- payload groups


def duplicates(s):
    v, r, d, p = s.ids()
    texts = [f"k {v} {v}", f"k {v} {v} {v} {v}", f"k {r} {r}", f"k {r} {v} {r} {v}", f"k {d} {d}", f"k {p} {p}",
             "k 5 5", "k 5 5 5 5", f"u {v}:1,{v}:2,{v}:3", f"u {v},{v},{v}"]  # fmt: skip
    return [(repr(t), lit(t)) for t in texts]


def huge(s):
    v, r, _, _ = s.ids()
    n = 7900 // (len(str(v)) + 1)
    m = 7900 // (len(f"{r}:{FUTURE}") + 1)
    return [
        (f"'k {v} ' x {n} (7.9 kB)", notify(f"'k ' || rtrim(repeat('{v} ', {n}))")),
        ("'k 1 2 ... 1500' (7 kB of distinct ids)",
         notify("'k ' || (SELECT string_agg(g::text, ' ') FROM generate_series(1, 1500) g)")),
        (f"'u {r}:{FUTURE},' x {m}", notify(f"'u ' || rtrim(repeat('{r}:{FUTURE},', {m}), ',')")),
        (f"'u {v},' x {n}", notify(f"'u ' || rtrim(repeat('{v},', {n}), ',')")),
        ("7999 bytes of 'k'", notify("repeat('k', 7999)")),
        ("'k ' and 7990 spaces", notify("'k ' || repeat(' ', 7990)")),
        ("'k ' and 7990 zeros", notify("'k ' || repeat('0', 7990)")),
        ("'k ' and 7990 nines", notify("'k ' || repeat('9', 7990)")),
    ]  # fmt: skip


def control(s):
    v, r, _, _ = s.ids()
    return [
        ("k id with \\x01\\x02", notify(f"'k {v}' || chr(1) || chr(2)")),
        ("k id, tab, newline", notify(f"'k' || chr(9) || '{v}' || chr(10) || '{r}'")),
        ("escape sequence", notify(f"chr(27) || '[2J' || 'k {v}'")),
        ("DEL and C1 controls", notify(f"'k {v}' || chr(127) || chr(133) || chr(155)")),
        ("carriage returns", notify(f"'k {v}' || chr(13) || ' {r}' || chr(13)")),
        ("non-ASCII digits", notify("'k ' || chr(65298) || ' ' || chr(1634)")),  # fullwidth 2, Arabic-Indic 2
        ("u with control characters", notify(f"'u {v}' || chr(1) || ':{FUTURE}'")),
        ("every byte 1..127", notify("(SELECT string_agg(chr(g), '') FROM generate_series(1, 127) g)")),
        ("k and every byte 1..127", notify("'k ' || (SELECT string_agg(chr(g), '') FROM generate_series(1, 127) g)")),
        ("emoji and RTL marks", notify(f"'k {v} ' || chr(128163) || chr(8238) || ' {r}'")),
    ]


def negative_zero(s):
    v, _, _, _ = s.ids()
    texts = ["k -1", "k 0", "k -0", f"k -{v}", f"k 0 {v}", "k -9223372036854775808", "k -9223372036854775809",
             "u -1:100", "u 0:0", f"u -{v}:{FUTURE}", f"u {v}:-1", f"u {v}:0", "u -1", "u 0", f"k {v} -{v}"]  # fmt: skip
    return [(repr(t), lit(t)) for t in texts]


def beyond_int64(s):
    v, _, _, _ = s.ids()
    texts = ["k 9223372036854775807", "k 9223372036854775808", "k 99999999999999999999999", "k 1" + "0" * 40,
             f"k {v}00000000000000000000", "u 99999999999999999999:1", f"u {v}:99999999999999999999",
             f"u {v}:9223372036854775807", "u 9223372036854775808", f"k 0x{v:x}", f"k {v}e3", f"k +{v}"]  # fmt: skip
    return [(repr(t), lit(t)) for t in texts]


def future_last_used(s):
    v, r, d, p = s.ids()
    texts = [f"u 1:{FUTURE}", f"u {v}:{FUTURE}", f"u {r}:{FUTURE}", f"u {p}:{FUTURE}", f"u {d}:{FUTURE}",
             f"u {v}:{FUTURE},{r}:{FUTURE},{p}:{FUTURE}", f"u {v}:{int(time.time()) + 3600}",
             f"u {v}:{int(time.time()) + 60}", f"u {v}:9223372036854775807"]  # fmt: skip
    return [(repr(t), lit(t)) for t in texts]


def unknown_prefix(s):
    v, _, _, _ = s.ids()
    texts = [f"x {v}", f"K {v}", f"kk {v}", f"k{v}", f" k {v}", f"U {v}:{FUTURE}", f"u{v}:{FUTURE}", f"d {v}",
             f"delete {v}", '{"id": %d, "is_active": false}' % v, f"k,{v}", f"k\t{v}", "k", "u", "k ", "u ",
             f"k {v} garbage", f"k {v},{v}", f"u {v}:{FUTURE}:{FUTURE}", f"u {v}::", "u :,:,:", "k  "]  # fmt: skip
    return [(repr(t), lit(t)) for t in texts]


def empty(s):
    return [("NOTIFY apikeyd (no payload)", "NOTIFY apikeyd"), ("''", lit("")), ("' '", lit(" ")), ("'\\n'", lit("\n"))]


def burst_k(s):
    return [("10,000 distinct 'k N' in one transaction", notify("'k ' || g", " FROM generate_series(1, 10000) g"))]


def burst_u(s):
    v, _, _, _ = s.ids()
    return [
        (f"10,000 distinct 'u N:{FUTURE}' in one transaction",
         notify(f"'u ' || g || ':{FUTURE}'", " FROM generate_series(1, 10000) g")),
        (f"10,000 distinct 'u {v}:<future>' in one transaction",
         notify(f"'u {v}:' || ({FUTURE} + g)", " FROM generate_series(1, 10000) g")),
        ("10,000 distinct 'u N' in one transaction", notify("'u ' || g", " FROM generate_series(1, 10000) g")),
    ]  # fmt: skip


GROUPS = {
    "duplicates": duplicates,
    "huge": huge,
    "control-characters": control,
    "negative-and-zero": negative_zero,
    "beyond-int64": beyond_int64,
    "future-last-used": future_last_used,
    "unknown-prefixes": unknown_prefix,
    "empty": empty,
    "burst-10000-k": burst_k,
    "burst-10000-u": burst_u,
}


def test_hostile_payloads_change_nothing(server_factory):
    """Every group of hostile payloads from a role without table rights, in turn, under traffic on
    two instances: both stay up and keep answering correctly after each group; last_used never in
    the future; real uses and real changes still go through afterwards."""
    with Scene(server_factory) as scene:
        time.sleep(0.2)  # traffic running before the first payload
        for group, payloads_of in GROUPS.items():
            payloads = payloads_of(scene)
            scene.send(payloads)
            what = f"the group {group} (" + ", ".join(label for label, _ in payloads) + ")"
            scene.assert_alive(what)
            assert not scene.wrong, f"wrong answers during or after {what} ({len(scene.wrong)}): {scene.wrong[:10]}"
            assert not scene.max_last_used, f"last_used more than {SKEW} s in the future after {what}: {scene.max_last_used[:10]}"
        time.sleep(1.5)  # traffic after the last payload, through at least one last_used flush
    scene.assert_healthy("every payload group")
    scene.assert_real_use_recorded()
    scene.assert_change_propagates()
    scene.assert_healthy("the checks after the payloads")


def test_announced_id_does_not_block_the_key_created_later(server_factory):
    """`k N` (and `u N:<future>`) for the next id, before any key has it: once the key with
    that id is really created through A, it works on both instances, and keeps working."""
    with Scene(server_factory) as scene:
        probe = scene.admin.create("probe", "sandbox")
        nxt = probe["id"] + 1
        texts = [f"k {nxt}", f"k {nxt} {nxt}", f"u {nxt}:{FUTURE}", f"u {nxt}"]
        scene.send([(repr(t), lit(t)) for t in texts])
        made = scene.admin.create("created after its id was announced", "production")
        assert made["id"] == nxt, f"ids did not come in sequence: {probe['id']} then {made['id']}"
        for name, s in scene.servers.items():
            c = Client(s, made["api_key"])
            wait_until(lambda c=c: verify(c).status_code == 204, PROPAGATION_TIMEOUT,
                       what=f"the key created after its id was announced to work on {name}")  # fmt: skip
        time.sleep(1.5)  # through a last_used flush and its notification
        for name, s in scene.servers.items():
            r = verify(Client(s, made["api_key"]))
            assert r.status_code == 204, f"{name}: the key stopped working: {r.status_code} {r.text}"
            k = next(k for k in Client(s, s.account.key).list() if k["id"] == nxt)
            assert k["is_active"] and k["name"] == made["name"], k
            if k["last_used"] is not None:
                assert parse_time(k["last_used"]) <= time.time() + SKEW, f"{name}: last_used {k['last_used']}"
    scene.assert_healthy("the payloads for an id not yet created")
