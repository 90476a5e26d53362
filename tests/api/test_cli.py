"""The command line: help, version, usage errors, `account create`, secret file, `serve` flags."""

import os
import re
import signal
import stat
from pathlib import Path

import pytest

from conftest import (
    KEY_FIELDS,
    SPEC,
    Account,
    Client,
    assert_error,
    assert_key_field_order,
    assert_key_format,
    free_port,
    parse_time,
    postgres_only,
    run_cli,
    sqlite_only,
    strict_json,
)

pytestmark = pytest.mark.usefixtures("apikeyd_bin")


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"], ["account", "--help"], ["account", "create", "--help"]])
def test_help_exits_0_with_usage_on_stdout(args):
    p = run_cli(*args)
    assert p.returncode == 0, p.stderr
    assert "usage" in p.stdout.lower(), p.stdout


def test_version():
    p = run_cli("--version")
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(r"apikeyd \d+\.\d+\.\d+\n?", p.stdout), p.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["frobnicate"],
        ["serve", "--db", "{db}", "--listen", "{listen}", "--bogus"],
        ["serve", "--listen", "{listen}", "--db"],
        ["serve", "--db", "{db}", "--listen"],
        ["serve", "--db", "{db}", "--listen", "{listen}", "--max-keys"],
        ["account", "create", "--db", "{db}", "--name", "x", "--bogus"],
        ["account", "create", "--db", "{db}", "--name"],
        ["account", "frobnicate"],
    ],
    ids=lambda a: " ".join(a),
)
def test_usage_error_exits_2_with_usage_on_stderr(args, tmp_path):
    db = str(tmp_path / "x.db")
    listen = f"127.0.0.1:{free_port()}"
    p = run_cli(*[a.format(db=db, listen=listen) for a in args])
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "usage" in p.stderr.lower(), p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("value", ["0", "9", "10001", "abc", "-1", "100ms", ""])
def test_bad_rate_sync_interval_exits_2(value, tmp_path):
    p = run_cli("serve", "--db", str(tmp_path / "x.db"), "--listen", f"127.0.0.1:{free_port()}", "--rate-sync-ms", value)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip() == "apikeyd serve: --rate-sync-ms takes milliseconds from 10 to 10000", p.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


@pytest.mark.parametrize(
    "command",
    [["account", "create", "--name", "x"], ["serve", "--listen", "{listen}"]],
    ids=["account create", "serve"],
)
def test_unopenable_database_exits_1_with_one_line(command, backend, tmp_path):
    """SQLite: a file in a directory that does not exist. PostgreSQL: a database that does
    not exist, and a socket directory with no server in it."""
    b = backend(tmp_path / "backend")
    try:
        for db, extra in b.unopenable_dbs():
            listen = f"127.0.0.1:{free_port()}"
            p = run_cli(*[a.format(listen=listen) for a in command], "--db", db, *extra)
            assert p.returncode == 1, (db, p.returncode, p.stderr)
            lines = p.stderr.splitlines()
            assert len(lines) == 1 and lines[0].strip(), (db, p.stderr)
            assert p.stdout == ""
    finally:
        b.release()


def test_account_create_prints_the_account_and_its_primary_key(server_factory):
    server = server_factory(accounts=(), start=False)
    p = run_cli("account", "create", "--db", server.db, "--name", "Acme Inc", *server.common_args())
    assert p.returncode == 0, p.stderr
    info = strict_json(p.stdout)
    assert list(info) == ["account_id", "account_name"] + KEY_FIELDS + ["api_key"]
    assert_key_field_order(info)
    assert isinstance(info["account_id"], int) and info["account_id"] >= 1
    assert info["account_name"] == "Acme Inc"
    key = {k: info[k] for k in KEY_FIELDS}
    SPEC.validate_schema("ApiKey", key)
    assert info["name"] == "Production Key"
    assert info["key_type"] == "production"
    assert info["is_active"] is True and info["is_primary"] is True
    assert info["last_used"] is None
    parse_time(info["created_at"])
    assert_key_format(info["api_key"], "production")
    assert info["key_prefix"] == info["api_key"][:12]
    assert info["api_key"] not in p.stderr
    # strict_json (json.loads) already refused anything but one JSON value on stdout.
    # And the account is there for a server on that database.
    server.accounts.append(Account(server, info))
    server.start()
    assert [k["id"] for k in server.client.list()] == [info["id"]]


def test_account_create_twice_gives_distinct_accounts_and_keys(server_factory):
    server = server_factory(accounts=(), start=False)
    runs = [run_cli("account", "create", "--db", server.db, "--name", n, *server.common_args()) for n in ("one", "two")]
    for p in runs:
        assert p.returncode == 0, p.stderr
        # Nothing but the JSON: no library chatter either (e.g. a PostgreSQL NOTICE about the
        # schema that the first run created).
        assert p.stderr == "", p.stderr
    a, b = (strict_json(p.stdout) for p in runs)
    assert a["account_id"] != b["account_id"]
    assert a["id"] != b["id"]
    assert a["api_key"] != b["api_key"]
    assert a["api_key"][12:] != b["api_key"][12:]


# SQLite only: the default secret file sits next to the database file. PostgreSQL has no
# default (every instance must share one secret): test_postgres_requires_a_secret_file.
@sqlite_only
def test_secret_file_default_is_db_dot_secret_mode_0600(backend, tmp_path):
    db = backend(tmp_path).db_arg()
    p = run_cli("account", "create", "--db", db, "--name", "x", umask=0)
    assert p.returncode == 0, p.stderr
    secret = Path(db + ".secret")
    assert secret.is_file()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.stat().st_size > 0
    key = strict_json(p.stdout)["api_key"]
    assert key.encode() not in secret.read_bytes()


# PostgreSQL only: the counterpart of the SQLite default secret file above.
@postgres_only
@pytest.mark.parametrize(
    "command", [["account", "create", "--name", "x"], ["serve", "--listen", "{listen}"]], ids=["account create", "serve"]
)
def test_postgres_requires_a_secret_file(command, server_factory):
    """Without --secret-file: exit 1, one line naming the flag, and the database untouched."""
    server = server_factory(accounts=(), start=False)
    listen = f"127.0.0.1:{free_port()}"
    p = run_cli(*[a.format(listen=listen) for a in command], "--db", server.db)
    assert p.returncode == 1, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "--secret-file" in lines[0], repr(p.stderr)
    assert p.stdout == ""
    assert server.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"


def test_secret_file_flag(tmp_path, server_factory):
    secret = tmp_path / "custom.secret"
    server = server_factory(secret_file=secret)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert not os.path.exists(server.db + ".secret")
    assert server.client.get().status_code == 200


def test_keys_depend_on_the_secret(server_factory, tmp_path):
    """A server with another secret does not recognise the keys (only HMACs are stored)."""
    server = server_factory(secret_file=tmp_path / "one.secret", start=False)
    server.secret_file = tmp_path / "two.secret"
    server.start()
    assert_error(server.client.get(), 401, "invalid_api_key")


def test_brand_flag(server_factory):
    server = server_factory(brand="xy")
    info = server.account.info
    assert_key_format(info["api_key"], "production", brand="xy")
    assert info["key_prefix"] == info["api_key"][:12]
    created = server.client.create("Branded", "sandbox")
    assert_key_format(created["api_key"], "sandbox", brand="xy")
    assert created["key_prefix"] == created["api_key"][:12]
    assert Client(server, created["api_key"]).get().status_code == 200


def test_serve_logs_startup_line(server):
    assert f"apikeyd: listening on 127.0.0.1:{server.port}\n" in server.log_text()


ACCESS_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [A-Z]+ \S+ \d{3} \S+ \d+(\.\d+)?ms rid=[A-Za-z0-9._:-]{1,128}$")


def test_serve_stderr_holds_only_its_own_lines(server):
    """`apikeyd: ...` lines and access-log lines, nothing else (no library chatter such as a
    PostgreSQL NOTICE), also when starting again on an existing database."""
    server.client.get()
    server.restart()
    server.client.get()
    server.stop()
    for line in server.log_text().splitlines():
        assert line.startswith("apikeyd: ") or ACCESS_LINE.match(line), f"unexpected line on stderr: {line!r}"
    server.start()


def test_serve_reads_db_and_listen_from_environment(server_factory):
    server = server_factory(start=False)
    server.start(use_env=True)
    assert f"apikeyd: listening on 127.0.0.1:{server.port}" in server.log_text()
    assert server.client.get().status_code == 200


def test_serve_with_threads_flag(server_factory):
    server = server_factory("--threads", "3")
    assert server.client.get().status_code == 200


def test_healthz_needs_no_key(server):
    r = Client(server).get("/healthz")
    assert r.status_code == 200 and r.body == {"status": "ok"}
    r = Client(server).get("/healthz/")
    assert r.status_code == 200 and r.body == {"status": "ok"}


def test_no_thread_takes_stop_signals(server):
    """Every thread blocks SIGTERM and SIGINT (only the main thread's sigwait takes them).

    A thread started before the mask was set (PostgreSQL's watcher was) could take SIGTERM with
    its default action: the process died with -15 instead of shutting down (failed before).
    """
    server.client.get()
    # The main thread waits in sigwait(), which unblocks the signals it waits for while it waits.
    tasks = [t for t in Path(f"/proc/{server.proc.pid}/task").iterdir() if t.name != str(server.proc.pid)]
    assert len(tasks) >= 2
    for task in tasks:
        status = (task / "status").read_text()
        blocked = int(re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.M).group(1), 16)
        name = (task / "comm").read_text().strip()
        for sig in (signal.SIGTERM, signal.SIGINT):
            assert blocked & (1 << (sig - 1)), f"thread {task.name} ({name}) does not block {sig.name}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_0(server, sig):
    server.client.get()
    server.stop(sig)  # asserts exit status 0
    server.start()
    assert server.client.get().status_code == 200
