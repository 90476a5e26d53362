"""Backups (issue 14): `apikeyd backup` copies a SQLite database while a server serves and writes
it, `apikeyd check` verifies a database (integrity, schema version, invariants) without changing
it, and PostgreSQL is backed up with pg_dump and restored with pg_restore into a fresh cluster
that apikeyd then serves (README, "Backups").

Every restored database is served by a new server with the same secret file (the backup never
copies it), and every key acknowledged before the backup started must verify there. The tests
that break a copy on purpose are the only ones that write SQL into a database (with Debian's
sqlite3, as an operator's mistake or a bad disk would), and they only break copies.
"""

import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (
    PG_BINDIR,
    PG_USER,
    PSQL_TIMEOUT,
    Client,
    Server,
    run_cli,
    snapshot,
    sqlite_only,
    strict_json,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("apikeyd_bin")

VERIFY = "/v1/auth/verify"
SQLITE3 = "/usr/bin/sqlite3"
LOAD_TIMEOUT = 60.0  # until the write load has made the keys a step asks for
WRITERS = 4  # threads creating keys through the API while the backup runs
BEFORE = 2500  # keys acknowledged before the backup starts: a database of several backup steps
STEP_PAGES = 128  # pages one step of the backup copies (src/store/sqlite_backup.c)
AFTER = 100  # keys acknowledged after it ended, before the load stops
BACKUP_LINE = re.compile(r"apikeyd backup: wrote (?P<out>.+): (?P<bytes>\d+) bytes, (?P<pages>\d+) pages\n")


def assert_verifies(server, key_id, api_key):
    r = Client(server, api_key).get(VERIFY)
    assert r.status_code == 204, f"key {key_id}: {r.status_code} {r.text}"
    assert r.headers["X-Key-Id"] == str(key_id)


def assert_one_line(text):
    assert text.endswith("\n") and text.count("\n") == 1, repr(text)


def check(db):
    """`apikeyd check --db DB`: (exit code, the JSON report)."""
    p = run_cli("check", "--db", db)
    assert p.returncode in (0, 1), (p.returncode, p.stdout, p.stderr)
    report = strict_json(p.stdout)
    assert list(report) == ["ok", "schema_version", "problems"], report
    assert report["ok"] == (p.returncode == 0) == (report["problems"] == []), (p.returncode, report)
    for problem in report["problems"]:
        assert list(problem) == ["check", "message"] and "\n" not in problem["message"], problem
    return p.returncode, report


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def copy_secret(source, restored):
    """The secret file, backed up apart, restored beside the copy (0600, as serve demands)."""
    shutil.copyfile(source.db + ".secret", restored.db + ".secret")
    os.chmod(restored.db + ".secret", 0o600)


def sqlite_copy(server, tmp_path, name):
    """A copy of `server`'s (stopped or running) database made by `apikeyd backup`."""
    out = tmp_path / name
    p = run_cli("backup", "--db", server.db, out)
    assert p.returncode == 0, p.stderr
    return out


# --------------------------------------------------------------------------- SQLite: backup


class KeyLoad:
    """Threads creating keys through the API until stopped; `acked` holds (monotonic time of the
    201, key id, api_key) of every key acknowledged."""

    def __init__(self, server, n):
        self.server = server
        self.acked = []
        self.errors = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._write, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def _write(self, n):
        client = Client(self.server, self.server.account.key)
        i = 0
        try:
            while not self.stop.is_set():
                r = client.post(json={"name": f"load {n}-{i}", "key_type": "sandbox" if i % 2 else "production"})
                at = time.monotonic()
                if r.status_code != 201:
                    raise AssertionError(f"create under load: {r.status_code} {r.text}")
                with self.lock:
                    self.acked.append((at, r.body["id"], r.body["api_key"]))
                i += 1
        except BaseException as e:  # reported by the test
            self.errors.append(e)
            self.stop.set()

    def count(self):
        with self.lock:
            return len(self.acked)

    def wait_for(self, n, what):
        wait_until(lambda: self.count() >= n or self.errors, LOAD_TIMEOUT, what=what)
        assert not self.errors, self.errors[0]

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        assert not self.errors, self.errors[0]
        return list(self.acked)


@sqlite_only  # SQLite's online backup API; PostgreSQL is backed up with pg_dump (below)
def test_backup_under_write_load_keeps_every_acknowledged_key(server_factory, tmp_path):
    source = server_factory("--max-keys", "1000000")
    outdir = tmp_path / "backups"
    outdir.mkdir()
    out = outdir / "apikeyd-backup.db"
    load = KeyLoad(source, WRITERS)
    try:
        load.wait_for(BEFORE, f"{BEFORE} keys acknowledged before the backup")
        started = time.monotonic()
        p = run_cli("backup", "--db", source.db, out, timeout=120)
        ended = time.monotonic()
        load.wait_for(load.count() + AFTER, f"{AFTER} more keys acknowledged after the backup")
    finally:
        acked = load.finish()
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    m = BACKUP_LINE.fullmatch(p.stdout)
    assert m and m["out"] == str(out), p.stdout
    assert int(m["bytes"]) == out.stat().st_size and int(m["pages"]) > 2 * STEP_PAGES, p.stdout  # several steps
    # OUT and nothing else: no OUT.tmp left, and nothing of the secret.
    assert sorted(f.name for f in outdir.iterdir()) == [out.name]
    assert out.stat().st_mode & 0o077 == 0, oct(out.stat().st_mode)
    # The source went on serving writes during and after the backup (KeyLoad saw only 201s).
    assert any(at > ended for at, _, _ in acked)

    # --auth-failures 0: the keys made after the snapshot are unknown there, and are asked for.
    restored = server_factory("--auth-failures", "0", accounts=(), start=False)
    shutil.copyfile(out, restored.db)
    copy_secret(source, restored)
    code, report = check(out)
    assert code == 0 and report == {"ok": True, "schema_version": report["schema_version"], "problems": []}, report
    restored.start()
    before = [(key_id, key) for at, key_id, key in acked if at < started]
    assert len(before) >= BEFORE
    assert_verifies(restored, source.account.primary_id, source.account.key)
    for key_id, key in before:
        assert_verifies(restored, key_id, key)
    # The copy is one snapshot taken during the backup: of the keys made meanwhile (ids ascend in commit
    # order: one writer), it has the first ones and none after, whatever the load did while the pages were
    # copied.
    during = [(key_id, key) for at, key_id, key in acked if at >= started]
    present = [Client(restored, key).get(VERIFY).status_code == 204 for key_id, key in sorted(during)]
    assert present == sorted(present, reverse=True), "the copy is not one snapshot: a later key without an earlier one"


@sqlite_only  # SQLite's online backup API
def test_backup_refuses_an_existing_out_and_postgresql(server_factory, tmp_path):
    source = server_factory(start=False)
    out = tmp_path / "taken.db"
    out.write_bytes(b"an operator's file\n")
    p = run_cli("backup", "--db", source.db, out)
    assert p.returncode == 2 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert_one_line(p.stderr)
    assert str(out) in p.stderr and "exists" in p.stderr
    assert out.read_bytes() == b"an operator's file\n"
    assert not Path(f"{out}.tmp").exists()

    pg_out = tmp_path / "pg.db"
    p = run_cli("backup", "--db", f"postgresql://{PG_USER}@/apikeyd?host=/nonexistent/dir", pg_out)
    assert p.returncode == 2 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert_one_line(p.stderr)
    assert "pg_dump" in p.stderr
    assert not pg_out.exists()

    # Usage errors: no OUT, two OUTs, no --db.
    for args in (["--db", source.db], ["--db", source.db, tmp_path / "a.db", tmp_path / "b.db"], [tmp_path / "c.db"]):
        p = run_cli("backup", *args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(["server0", "taken.db"])


def test_backup_help_says_the_secret_is_backed_up_apart():
    p = run_cli("backup", "--help")
    assert p.returncode == 0 and "usage" in p.stdout.lower(), p.stdout
    text = " ".join(p.stdout.split())
    assert "<db>.secret" in text and "not copied" in text and "apart" in text, p.stdout
    assert "pg_dump" in text
    p = run_cli("check", "--help")
    assert p.returncode == 0 and "usage" in p.stdout.lower(), p.stdout


@sqlite_only  # copies a stopped SQLite database (the load test above covers a running one)
def test_backup_of_an_idle_database_serves_the_same_keys(server_factory, tmp_path):
    source = server_factory()
    made = [source.client.create(f"k{i}", "production" if i % 2 else "sandbox") for i in range(5)]
    keys = snapshot(source.client)
    source.stop()
    out = sqlite_copy(source, tmp_path, "idle.db")
    restored = server_factory(accounts=(), start=False)
    shutil.copyfile(out, restored.db)
    copy_secret(source, restored)
    restored.start()
    assert snapshot(Client(restored, source.account.key)) == keys
    for k in made:
        assert_verifies(restored, k["id"], k["api_key"])


# --------------------------------------------------------------------------- SQLite: check

# Each breaks a copy of a database with one key of each kind and a quota, the way a bad manual
# fix would; `check` names the rule and the row.
BREAKS = [
    ("UPDATE accounts SET key_count = 99", "key_count", "key_count 99"),
    ("DELETE FROM api_keys WHERE is_primary", "primary_count", "0 primary keys"),
    ("UPDATE api_keys SET is_primary = 0", "primary_count", "0 primary keys"),
    ("UPDATE api_keys SET scopes = 'keys:read' WHERE is_primary", "primary_rule", "has scopes"),
    # The schema's CHECK refuses this one; a tool that ignores CHECKs does not.
    ("PRAGMA ignore_check_constraints = ON; UPDATE api_keys SET is_active = 0 WHERE is_primary", "primary_rule",
     "inactive"),
    ("INSERT INTO key_quotas (remaining) VALUES (5)", "quota_unused", "belongs to no key"),
    ("PRAGMA foreign_keys = OFF; DELETE FROM key_quotas", "key_quota", "which does not exist"),
    ("DELETE FROM accounts WHERE id = (SELECT min(id) FROM accounts)", "key_account", "which does not exist"),
    ("DELETE FROM schema_version WHERE version = (SELECT max(version) FROM schema_version)", "schema_version",
     "needs migration (serve migrates on start)"),
    ("INSERT INTO schema_version (version) VALUES (100000)", "schema_version", "newer"),
]  # fmt: skip


@pytest.fixture
def good_copy(server_factory, tmp_path):
    """A copy of a stopped server's database: acme's primary, a sandbox key and a key with a quota."""
    source = server_factory()
    source.client.create("sandbox", "sandbox")
    r = source.client.post(json={"name": "metered", "key_type": "production", "remaining": 10})
    assert r.status_code == 201, r.text
    source.stop()
    out = sqlite_copy(source, tmp_path, "good.db")
    code, report = check(out)
    assert code == 0, report
    return out


@sqlite_only  # breaks a SQLite file with the sqlite3 CLI
@pytest.mark.parametrize("sql, rule, words", BREAKS, ids=[b[1] + ":" + b[0].split("; ")[-1][:40] for b in BREAKS])
def test_check_names_what_is_broken(good_copy, tmp_path, sql, rule, words):
    broken = tmp_path / "broken.db"
    shutil.copyfile(good_copy, broken)
    p = subprocess.run([SQLITE3, broken, sql], capture_output=True, text=True, timeout=PSQL_TIMEOUT, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    before = digest(broken)
    code, report = check(broken)
    assert code == 1, report
    assert any(pr["check"] == rule and words in pr["message"] for pr in report["problems"]), report
    assert digest(broken) == before, "check changed the database"
    # A schema it does not know is reported, and nothing else is read from it.
    if rule == "schema_version":
        assert [pr["check"] for pr in report["problems"]] == ["schema_version"], report


def test_check_of_a_file_that_is_not_a_database_is_one_line(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database\n" * 300)
    p = run_cli("check", "--db", junk)
    assert p.returncode in (1, 2) and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert_one_line(p.stderr)
    assert "not a database" in p.stderr
    missing = tmp_path / "missing.db"
    p = run_cli("check", "--db", missing)
    assert p.returncode in (1, 2) and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert_one_line(p.stderr)
    assert not missing.exists(), "check created the database"
    p = run_cli("backup", "--db", junk, tmp_path / "junk-copy.db")
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert_one_line(p.stderr)
    assert not (tmp_path / "junk-copy.db").exists() and not (tmp_path / "junk-copy.db.tmp").exists()


@sqlite_only  # a SQLite page damaged on disk
def test_check_reports_a_damaged_file(good_copy, tmp_path):
    damaged = tmp_path / "damaged.db"
    shutil.copyfile(good_copy, damaged)
    p = subprocess.run(
        [SQLITE3, damaged, "SELECT rootpage FROM sqlite_master WHERE name = 'api_keys_account'"],
        capture_output=True, text=True, timeout=PSQL_TIMEOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    page = int(p.stdout)
    size = int(subprocess.run([SQLITE3, damaged, "PRAGMA page_size"], capture_output=True, text=True).stdout)
    with open(damaged, "r+b") as f:  # an index page whose header says it holds nine cells it does not
        f.seek(size * (page - 1))
        f.write(b"\x0a\x00\x00\x00\x09" + b"\x00" * 30)
    code, report = check(damaged)
    assert code == 1 and report["problems"], report
    assert {pr["check"] for pr in report["problems"]} == {"integrity"}, report


# --------------------------------------------------------------------------- PostgreSQL


def pg_tool(cluster, tool, *args):
    p = subprocess.run(
        [str(PG_BINDIR / tool), "-h", str(cluster.sockdir), "-p", str(cluster.port), "-U", PG_USER, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=PSQL_TIMEOUT * 2,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, f"{tool} failed ({p.returncode}): {p.stderr}"
    return p


class RestoredDatabase:
    """A database restored by the test into `cluster`: a Server's backend that it does not own."""

    name = "postgres"

    def __init__(self, cluster, dbname, secret_file):
        self.cluster, self.dbname, self.secret_file = cluster, dbname, secret_file

    def db_arg(self):
        return self.cluster.uri(self.dbname)

    def default_secret_file(self):
        return self.secret_file

    def release(self):
        pass


def test_postgresql_pg_dump_restores_into_a_fresh_cluster_that_apikeyd_serves(pg_factory, fault_cluster, tmp_path):
    source = pg_factory("--max-keys", "1000")
    made = [source.client.create(f"k{i}", "production" if i % 2 else "sandbox") for i in range(20)]
    r = source.client.post(json={"name": "metered", "key_type": "production", "remaining": 10})
    assert r.status_code == 201, r.text
    made.append(r.body)
    code, report = check(source.db)
    assert code == 0, report
    keys = snapshot(source.client)

    # pg_dump while the server serves; pg_restore into a new database of a fresh cluster.
    dump = tmp_path / "apikeyd.dump"
    pg_tool(source.backend.cluster, "pg_dump", "-Fc", "-f", dump, source.backend.dbname)
    fault_cluster.psql('CREATE DATABASE "apikeyd_restored"')
    pg_tool(fault_cluster, "pg_restore", "--exit-on-error", "--no-owner", "-d", "apikeyd_restored", dump)
    restored_uri = fault_cluster.uri("apikeyd_restored")
    code, report = check(restored_uri)
    assert code == 0 and report["schema_version"] == check(source.db)[1]["schema_version"], report

    restored = Server(
        None,
        tmp_path / "restored",
        secret_file=source.secret_file,
        backend=RestoredDatabase(fault_cluster, "apikeyd_restored", source.secret_file),
    )
    try:
        restored.start()
        assert snapshot(Client(restored, source.account.key)) == keys
        assert_verifies(restored, source.account.primary_id, source.account.key)
        for k in made:
            assert_verifies(restored, k["id"], k["api_key"])
        # The restored database takes writes, and check still finds it sound.
        Client(restored, source.account.key).create("after restore", "sandbox")
    finally:
        restored.close()
    code, report = check(restored_uri)
    assert code == 0, report


def test_check_of_a_broken_postgresql_database(pg_factory):
    server = pg_factory()
    server.psql("UPDATE accounts SET key_count = 42")
    code, report = check(server.db)
    assert code == 1, report
    assert any(pr["check"] == "key_count" and "key_count 42" in pr["message"] for pr in report["problems"]), report
    assert server.psql("SELECT key_count FROM accounts") == "42", "check changed the database"
    p = run_cli("check", "--db", server.backend.cluster.uri(f"{server.backend.dbname}_does_not_exist"))
    assert p.returncode == 1 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert_one_line(p.stderr)
