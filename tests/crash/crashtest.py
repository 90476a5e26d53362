#!/usr/bin/python3
"""crashtest: SIGKILL apikeyd at random moments while clients write; after every restart,
check that nothing it answered was lost.

    /usr/bin/python3 tests/crash/crashtest.py [--kills N] [--seed S] [--clients C] [--bin PATH]

One SQLite database in a temporary directory, one account. Each round starts `apikeyd serve`
on it, checks the database against everything answered so far, lets `--clients` threads
create, deactivate, delete and verify keys as fast as they can (each thread touches only
keys it created, so every key's history is one sequence), then SIGKILLs the server at a
random moment: after a random delay, right after a write request went out (mid-write), or
around the once-a-second last_used flush; now and then also during the next start-up.
While the server is down, `PRAGMA integrity_check` runs on a copy of the database and its
WAL (the server itself still does the recovery when it restarts), and so does a check that
the audit log and the rows agree: no change without its event, no event without its change.

What is checked after every restart (list of the account's keys and /v1/auth/verify):
  - every create answered 201 still exists (listed) and its key verifies (204), unless an
    answered deactivation (then refused `key_inactive`, listed `is_active: false`) or an
    answered delete (then refused `invalid_api_key`, not listed) came after it;
  - a write that got no answer (the server died with it in flight) may or may not have
    happened: both outcomes are accepted and the model follows what is found, but keys of
    unanswered creates cannot outnumber those creates;
  - list and verification agree with each other;
  - any answer other than the expected status (a 500, a 503, ...) is a failure, and so is a
    connection error while the server was meant to be up, or a server that dies by itself.
Every live key and every key touched since the last check is verified each round; older
deleted keys are verified by random sample, and all of them after the last kill.

Prints `crashtest: N kills, F failures` last and exits 1 on any failure (the work directory,
with the server's stderr, is then kept). `--seed` makes the choices repeatable; the timing
of a kill against the server's work never is.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = os.environ.get("APIKEYD_BIN") or str(REPO / "build" / "apikeyd")
COLLECTION = "/v1/account/api-keys/"
VERIFY = "/v1/auth/verify"

START_TIMEOUT = 20.0  # spawn until /healthz answers 200 (an ASan build is slower)
HTTP_TIMEOUT = 15.0
JOIN_TIMEOUT = 20.0
MAX_LIVE_PER_CLIENT = 30  # keeps the list, and the per-round checks, small
DELETED_SAMPLE = 64  # older deleted keys re-verified per round

ACTIVE, INACTIVE, ABSENT = "active", "inactive", "absent"
EXPECT_VERIFY = {ACTIVE: (204, None), INACTIVE: (401, "key_inactive"), ABSENT: (401, "invalid_api_key")}


class Failures:
    def __init__(self, limit):
        self.items = []
        self.limit = limit
        self.lock = threading.Lock()

    def add(self, round_no, message):
        with self.lock:
            self.items.append((round_no, message))
            print(f"crashtest: FAILURE (round {round_no}): {message}", file=sys.stderr, flush=True)

    def __len__(self):
        return len(self.items)

    def too_many(self):
        return len(self.items) >= self.limit


class Key:
    """One key a client created (answered 201) and what the answered writes say about it."""

    __slots__ = ("id", "key", "owner", "state", "pending", "touched")

    def __init__(self, key_id, key, owner):
        self.id = key_id
        self.key = key
        self.owner = owner
        self.state = ACTIVE  # ACTIVE, INACTIVE or ABSENT (deleted)
        self.pending = None  # a write sent without an answer: "deactivate" or "delete"
        self.touched = True  # changed since the last check: verify it for sure

    def allowed(self):
        states = {self.state}
        if self.pending == "deactivate":
            states.add(INACTIVE)
        elif self.pending == "delete":
            states.add(ABSENT)
        return states


class Conn:
    """A keep-alive HTTP/1.1 connection; any error closes it and propagates."""

    def __init__(self, port, key):
        self.port = port
        self.key = key
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)

    def send(self, method, path, body=None, key=None):
        headers = {"Authorization": f"Bearer {key or self.key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.c.request(method, path, body=data, headers=headers)
        except BaseException:
            self.close()
            raise

    def receive(self):
        try:
            r = self.c.getresponse()
            raw = r.read()
        except BaseException:
            self.close()
            raise
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"unparsed": raw[:200].decode("utf-8", "replace")}
        return r.status, body

    def call(self, method, path, body=None, key=None):
        self.send(method, path, body, key)
        return self.receive()

    def close(self):
        try:
            self.c.close()
        except Exception:
            pass


def error_code(body):
    try:
        return body["error"]["code"]
    except (TypeError, KeyError):
        return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, db, log_path):
        self.binary = binary
        self.db = db
        self.log_path = log_path
        self.proc = None
        self.port = None

    def spawn(self):
        self.port = free_port()
        argv = [self.binary, "serve", "--db", self.db, "--listen", f"127.0.0.1:{self.port}", "--no-access-log",
                "--max-keys", "1000000", "--auth-failures", "0"]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/healthz")
                ok = c.getresponse().status == 200
                c.close()
                if ok:
                    return True
            except OSError:
                pass
            time.sleep(0.005)
        return False

    def start(self):
        for _ in range(3):  # the free port may be taken in between: try another
            self.spawn()
            if self.wait_ready():
                return True
            self.kill()
        return False

    def kill(self):
        """SIGKILL; returns the exit status if it had already exited by itself, else None."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        rc = proc.poll()
        if rc is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        return rc

    def stop(self):
        """SIGTERM; returns the exit status."""
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return "timeout"

    def log_tail(self, n=3000):
        try:
            return Path(self.log_path).read_text(errors="replace")[-n:]
        except OSError:
            return ""


def audit_check(con):
    """Every change has its audit event and every event its change (one transaction each):
    each key row has exactly one key.created event, no key with a key.deleted event has a row,
    and each key's is_active and is_primary are the last values its events recorded."""
    problems = []
    keys = {r[0]: (bool(r[1]), bool(r[2])) for r in con.execute("SELECT id, is_active, is_primary FROM api_keys")}
    created, deleted, state = {}, set(), {}
    for target, action, changes in con.execute(
        "SELECT target_id, action, changes FROM audit_events WHERE target_type = 'key' ORDER BY id"
    ):
        if action == "key.created":
            created[target] = created.get(target, 0) + 1
        elif action == "key.deleted":
            deleted.add(target)
        for field, pair in (json.loads(changes) if changes else {}).items():
            if field in ("is_active", "is_primary") and pair["new"] is not None:
                state.setdefault(target, {})[field] = pair["new"]
    for key_id, (active, primary) in keys.items():
        if created.get(key_id) != 1:
            problems.append(f"key {key_id} exists with {created.get(key_id, 0)} key.created events")
        if key_id in deleted:
            problems.append(f"key {key_id} exists after its key.deleted event")
        want = state.get(key_id, {})
        if want.get("is_active", active) != active or want.get("is_primary", primary) != primary:
            problems.append(f"key {key_id}: row is_active={active} is_primary={primary}, events say {want}")
    for key_id in created:
        if key_id not in keys and key_id not in deleted:
            problems.append(f"key {key_id} has a key.created event but no row and no key.deleted event")
    return problems


def integrity_check(db, scratch):
    """`PRAGMA integrity_check` on a copy of the database file and its WAL (no -shm: the copy
    rebuilds its WAL index, i.e. runs the same recovery the server will run), then the audit
    log's agreement with the rows (audit_check)."""
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    copy = os.path.join(scratch, "copy.db")
    shutil.copyfile(db, copy)
    if os.path.exists(db + "-wal"):
        shutil.copyfile(db + "-wal", copy + "-wal")
    con = sqlite3.connect(copy)
    try:
        rows = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        if rows == ["ok"]:
            rows = audit_check(con) or ["ok"]
    finally:
        con.close()
    return rows


class Client(threading.Thread):
    """Creates, deactivates, deletes and verifies its own keys until told to stop or until
    its connection fails (the server was killed)."""

    def __init__(self, tid, run):
        super().__init__(daemon=True, name=f"client-{tid}")
        self.tid = tid
        self.run_ = run
        self.rng = random.Random(run.seed * 1000003 + run.round * 101 + tid)
        self.mine = run.owned[tid]
        self.new_keys = []
        self.answered = {"create": 0, "deactivate": 0, "delete": 0, "verify": 0}
        self.unanswered_creates = 0
        self.unanswered = None  # (op, Key or None)

    def choose(self, live, active):
        if len(live) < 4:
            return "create"
        r = self.rng.random()
        if r < 0.15:
            return "verify"
        if r < 0.50:
            return "create" if len(live) < MAX_LIVE_PER_CLIENT else "delete"
        if r < 0.75 and active:
            return "deactivate"
        return "delete"

    def run(self):
        run = self.run_
        conn = Conn(run.server.port, run.admin_key)
        n = 0
        try:
            while not run.stop.is_set():
                live = [k for k in self.mine if k.state != ABSENT]
                active = [k for k in live if k.state == ACTIVE]
                op = self.choose(live, active)
                target = None
                if op == "create":
                    n += 1
                    name = f"crash r{run.round} c{self.tid} n{n}"
                    body = {"name": name, "key_type": self.rng.choice(["sandbox", "production"])}
                    request = ("POST", COLLECTION, body, None)
                elif op == "deactivate":
                    target = self.rng.choice(active)
                    request = ("PATCH", f"{COLLECTION}{target.id}/", {"is_active": False}, None)
                elif op == "delete":
                    target = self.rng.choice(live)
                    request = ("DELETE", f"{COLLECTION}{target.id}/", None, None)
                else:
                    target = self.rng.choice(live)
                    request = ("GET", VERIFY, None, target.key)
                self.unanswered = (op, target)
                try:
                    conn.send(*request)
                    if op != "verify":
                        run.write_sent.set()
                    status, body = conn.receive()
                except (OSError, http.client.HTTPException) as e:
                    if not run.killing.is_set():
                        run.failures.add(run.round, f"client {self.tid}: {op} failed while the server was up: {e!r}")
                    if op == "create":
                        self.unanswered_creates += 1
                    elif op in ("deactivate", "delete"):
                        target.pending = op
                        target.touched = True
                    return
                self.unanswered = None
                self.answered[op] += 1
                self.handle(op, target, status, body, request)
        finally:
            conn.close()

    def handle(self, op, target, status, body, request):
        run = self.run_
        what = f"client {self.tid}: {request[0]} {request[1]}"
        if op == "create":
            if status != 201 or not isinstance(body, dict) or "api_key" not in body or body.get("is_active") is not True:
                run.failures.add(run.round, f"{what} answered {status} {body}")
                return
            k = Key(body["id"], body["api_key"], self.tid)
            self.mine.append(k)
            self.new_keys.append(k)
        elif op == "deactivate":
            if status != 200 or not isinstance(body, dict) or body.get("is_active") is not False:
                run.failures.add(run.round, f"{what} (deactivate key {target.id}) answered {status} {body}")
                return
            target.state = INACTIVE
            target.touched = True
        elif op == "delete":
            if status != 204:
                run.failures.add(run.round, f"{what} (delete key {target.id}, {target.state}) answered {status} {body}")
                return
            target.state = ABSENT
            target.touched = True
        else:
            expected = EXPECT_VERIFY[target.state]
            if (status, error_code(body) if status != 204 else None) != expected:
                run.failures.add(run.round, f"{what} key {target.id} ({target.state}) answered {status} {body}")


class Run:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.rng = random.Random(args.seed)
        self.failures = Failures(args.max_failures)
        self.workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="apikeyd-crash-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db = str(self.workdir / "crash.db")
        self.server = Server(args.bin, self.db, str(self.workdir / "stderr.log"))
        self.owned = [[] for _ in range(args.clients)]
        self.orphans = {}  # id -> is_active, keys of unanswered creates found in the list
        self.admin_key = None
        self.admin_id = None
        self.round = 0
        self.kills = 0
        self.stop = threading.Event()
        self.killing = threading.Event()
        self.write_sent = threading.Event()
        self.stats = {"create": 0, "deactivate": 0, "delete": 0, "verify": 0}
        self.unanswered_total = 0
        self.unanswered_done = 0
        self.modes = {}
        self.tampered = False

    def all_keys(self):
        for mine in self.owned:
            yield from mine

    # -- setup
    def create_account(self):
        p = subprocess.run([self.args.bin, "account", "create", "--db", self.db, "--name", "crash"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
        if p.returncode != 0:
            raise SystemExit(f"crashtest: account create failed ({p.returncode}): {p.stderr}")
        info = json.loads(p.stdout)
        self.admin_key = info["api_key"]
        self.admin_id = info["id"]

    # -- one round: clients write, the server is killed
    def load_and_kill(self, unanswered_creates):
        self.stop.clear()
        self.killing.clear()
        self.write_sent.clear()
        clients = [Client(t, self) for t in range(self.args.clients)]
        for c in clients:
            c.start()
        mode = self.rng.choices(["early", "random", "mid-write", "flush-tick"], weights=[1, 4, 4, 1])[0]
        self.modes[mode] = self.modes.get(mode, 0) + 1
        if mode == "early":
            time.sleep(self.rng.uniform(0, 0.03))
        elif mode == "random":
            time.sleep(self.rng.uniform(0.03, self.args.max_delay))
        elif mode == "mid-write":
            time.sleep(self.rng.uniform(0.02, self.args.max_delay / 2))
            self.write_sent.clear()
            self.write_sent.wait(2.0)
            time.sleep(self.rng.uniform(0, 0.002))
        else:  # around the once-a-second last_used flush, with verifications going on
            time.sleep(self.rng.uniform(0.9, 1.15))
        if self.args.tamper and not self.tampered:
            # The self-test needs an answered deactivation and an active key to tamper with: on a
            # slow disk the drawn delay may end before the first; load on until both exist (bounded).
            deadline = time.monotonic() + 20
            while not self.tamperable() and time.monotonic() < deadline:
                time.sleep(0.01)
        self.killing.set()
        rc = self.server.kill()
        self.kills += 1
        if rc is not None:
            self.failures.add(self.round, f"apikeyd exited by itself with status {rc}:\n{self.server.log_tail()}")
        self.stop.set()
        for c in clients:
            c.join(JOIN_TIMEOUT)
            if c.is_alive():
                self.failures.add(self.round, f"client {c.tid} did not finish within {JOIN_TIMEOUT} s")
                raise SystemExit(1)
        for c in clients:
            for op, n in c.answered.items():
                self.stats[op] += n
            unanswered_creates += c.unanswered_creates
            if c.unanswered is not None and c.unanswered[0] != "verify":
                self.unanswered_total += 1
        return unanswered_creates

    def check_integrity(self):
        try:
            result = integrity_check(self.db, str(self.workdir / "integrity"))
        except sqlite3.Error as e:
            result = [f"sqlite3 error: {e}"]
        if result != ["ok"]:
            self.failures.add(self.round, f"PRAGMA integrity_check: {result[:10]}")

    def start_server(self):
        # Now and then, kill it again while it starts up (WAL recovery, loading the keys).
        if self.args.boot_kills and self.rng.random() < 0.05 and self.kills + 1 < self.args.kills:
            self.server.spawn()
            time.sleep(self.rng.uniform(0, 0.02))
            self.server.kill()
            self.kills += 1
            self.modes["start-up"] = self.modes.get("start-up", 0) + 1
            self.check_integrity()
        if not self.server.start():
            self.failures.add(self.round, f"apikeyd did not start again:\n{self.server.log_tail()}")
            raise SystemExit(1)

    # -- the check after a restart
    def check(self, unanswered_creates, full):
        conn = Conn(self.server.port, self.admin_key)
        try:
            self._check(conn, unanswered_creates, full)
        except (OSError, http.client.HTTPException) as e:
            self.failures.add(self.round, f"check: request failed: {e!r}\n{self.server.log_tail()}")
        finally:
            conn.close()

    def _check(self, conn, unanswered_creates, full):
        r = self.round
        status, body = conn.call("GET", COLLECTION)
        if status != 200:
            self.failures.add(r, f"list answered {status} {body}")
            return
        listed = {k["id"]: k for k in body["api_keys"]}
        admin = listed.get(self.admin_id)
        if admin is None or not admin["is_active"] or not admin["is_primary"]:
            self.failures.add(r, f"the primary key is gone or changed: {admin}")
        status, body = conn.call("GET", VERIFY, key=self.admin_key)
        if status != 204:
            self.failures.add(r, f"the primary key does not verify: {status} {body}")

        deleted_old = [k for k in self.all_keys() if k.state == ABSENT and not k.touched and k.pending is None]
        sample = set()
        if not full and len(deleted_old) > DELETED_SAMPLE:
            sample = {k.id for k in self.rng.sample(deleted_old, DELETED_SAMPLE)}
        for k in self.all_keys():
            row = listed.get(k.id)
            seen = ABSENT if row is None else (ACTIVE if row["is_active"] else INACTIVE)
            allowed = k.allowed()
            history = f"key {k.id} (client {k.owner}; answered state {k.state}" + (
                f", unanswered {k.pending})" if k.pending else ")"
            )
            if seen not in allowed:
                self.failures.add(r, f"{history}: listed as {seen}")
            if row is not None and (row["is_primary"] or row["id"] != k.id):
                self.failures.add(r, f"{history}: listed as {row}")
            must_verify = full or k.touched or k.pending or k.state != ABSENT or not sample or k.id in sample
            if must_verify:
                status, body = conn.call("GET", VERIFY, key=k.key)
                got = (status, error_code(body) if status != 204 else None)
                if got != EXPECT_VERIFY[seen]:
                    self.failures.add(r, f"{history}: listed as {seen} but verification answered {status} {body}")
            if k.pending is not None and seen != k.state:
                self.unanswered_done += 1
            k.state = seen  # an unanswered write is now settled, one way or the other
            k.pending = None
            k.touched = False

        known = {k.id for k in self.all_keys()} | {self.admin_id}
        for oid, was_active in list(self.orphans.items()):
            row = listed.get(oid)
            if row is None or row["is_active"] != was_active:
                self.failures.add(r, f"key {oid} (of an unanswered create, seen before) now listed as {row}")
        fresh = sorted(set(listed) - known - set(self.orphans))
        if len(fresh) > unanswered_creates:
            self.failures.add(r, f"{len(fresh)} unknown keys listed ({fresh}), only {unanswered_creates} creates unanswered")
        self.unanswered_done += len(fresh)
        for oid in fresh:
            self.orphans[oid] = listed[oid]["is_active"]

    def tamperable(self):
        keys = list(self.all_keys())
        return any(k.state == ACTIVE and k.pending is None for k in keys) and any(
            k.state == INACTIVE and k.pending is None for k in keys
        )

    def tamper(self):
        """Self-test of the checks (--tamper): while the server is down, lose an answered create
        and undo an answered deactivation behind its back; the next check must report both."""
        active = [k for k in self.all_keys() if k.state == ACTIVE and k.pending is None]
        inactive = [k for k in self.all_keys() if k.state == INACTIVE and k.pending is None]
        if not active or not inactive:
            return
        lost, revived = self.rng.choice(active), self.rng.choice(inactive)
        con = sqlite3.connect(self.db)
        with con:
            con.execute("DELETE FROM api_keys WHERE id = ?", (lost.id,))
            con.execute("UPDATE api_keys SET is_active = 1 WHERE id = ?", (revived.id,))
        con.close()
        self.tampered = True
        print(f"crashtest: tampered: deleted key {lost.id}, reactivated key {revived.id}", file=sys.stderr)

    def sanitizer_report(self):
        log = self.server.log_tail(10**7)
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if marker in log:
                i = log.index(marker)
                self.failures.add(self.round, f"sanitizer report in stderr:\n{log[max(0, i - 200):i + 3000]}")
                return

    def main(self):
        start = time.monotonic()
        self.create_account()
        unanswered = 0
        try:
            while self.kills < self.args.kills and not self.failures.too_many():
                if time.monotonic() - start > self.args.max_seconds:
                    self.failures.add(self.round, f"time limit of {self.args.max_seconds} s reached after {self.kills} kills")
                    break
                self.round += 1
                self.start_server()
                self.check(unanswered, full=False)
                unanswered = self.load_and_kill(0)
                self.check_integrity()
                if self.args.tamper and not self.tampered:
                    self.tamper()
            # After the last kill: one full check of everything, then a clean stop.
            self.round += 1
            self.server.start() or self.failures.add(self.round, f"apikeyd did not start:\n{self.server.log_tail()}")
            if self.server.proc is not None:
                self.check(unanswered, full=True)
                rc = self.server.stop()
                if rc != 0:
                    self.failures.add(self.round, f"apikeyd exited with {rc} after SIGTERM:\n{self.server.log_tail()}")
            result = integrity_check(self.db, str(self.workdir / "integrity"))
            if result != ["ok"]:
                self.failures.add(self.round, f"PRAGMA integrity_check at the end: {result[:10]}")
            self.sanitizer_report()
        finally:
            if self.server.proc is not None:
                self.server.kill()
        elapsed = time.monotonic() - start
        s = self.stats
        modes = ", ".join(f"{n} {m}" for m, n in sorted(self.modes.items()))
        print(
            f"crashtest: seed {self.seed}, {self.args.clients} clients, {self.round} rounds, {elapsed:.1f} s; "
            f"kill moments: {modes}; answered: {s['create']} creates, {s['deactivate']} deactivations, "
            f"{s['delete']} deletes, {s['verify']} verifications; {self.unanswered_total} writes unanswered, "
            f"{self.unanswered_done} of them found done"
        )
        print(f"crashtest: {self.kills} kills, {len(self.failures)} failures", flush=True)
        if self.failures:
            print(f"crashtest: work directory kept: {self.workdir}", file=sys.stderr)
            return 1
        if not self.args.workdir and not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=100, help="SIGKILLs to deliver (default 100)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    ap.add_argument("--bin", default=DEFAULT_BIN, help="apikeyd binary (default $APIKEYD_BIN or build/apikeyd)")
    ap.add_argument("--max-delay", type=float, default=0.6, help="longest random delay before a kill, s")
    ap.add_argument("--max-seconds", type=float, default=900, help="give up (and fail) after this long")
    ap.add_argument("--max-failures", type=int, default=20, help="stop after this many failures")
    ap.add_argument("--no-boot-kills", dest="boot_kills", action="store_false", help="never kill during start-up")
    ap.add_argument("--tamper", action="store_true",
                    help="self-test: change the database behind the server's back once; the run must fail")
    ap.add_argument("--workdir", help="use this directory (kept) instead of a temporary one")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    if args.kills < 1 or args.clients < 1:
        ap.error("--kills and --clients must be at least 1")
    if not os.access(args.bin, os.X_OK):
        ap.error(f"apikeyd binary not found at {args.bin} (build it with `make`, or pass --bin)")
    return Run(args).main()


if __name__ == "__main__":
    sys.exit(main())
