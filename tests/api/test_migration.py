"""Upgrades: a database written by an older apikeyd (schema version 2, tests/fixtures/schema-v2/,
made by its make.sh) opens with this one, is migrated to the newest schema this binary knows,
and serves its keys exactly as before, on both backends.

These are the only API tests that look inside the database, and only at `schema_version`: the
migration's own bookkeeping. Everything about the keys is checked through the API. Each
fixture key's expected answers were recorded from the old binary: the list of every account
(`expected.json`) and each key's /v1/auth/verify answer (`fixture-keys.json`).

Listing is a use of the key that lists, so the lister key's own `last_used` can only be checked
to be no earlier than it was; every other field of every key is compared exactly.
"""

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import time

import pytest

from conftest import (
    ACCOUNT_PICKUP_TIMEOUT,
    PSQL_TIMEOUT,
    REPO,
    Client,
    assert_error,
    free_port,
    parse_time,
    run_cli,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("apikeyd_bin")

FIXTURES = REPO / "tests" / "fixtures" / "schema-v2"
FIXTURE_VERSION = 2
FIXTURE_FILES = {"sqlite": ("sqlite.db", "sqlite.db.secret"), "postgres": ("postgres.sql", "postgres.secret")}
VERIFY_HEADERS = ("X-Account-Id", "X-Key-Id", "X-Key-Type", "X-Key-Prefix")
VERIFY = "/v1/auth/verify"


def load_json(name):
    with open(FIXTURES / name, encoding="utf-8") as f:
        return json.load(f)


EXPECTED = load_json("expected.json")
# Key members added after schema version 2 (issue 10), and their value on every migrated key.
LATER_MEMBERS = {"expires_at": None, "rotated_from": None, "rotated_to": None, "leaked_at": None,
                 "scopes": None, "allowed_ips": None,  # issue 12: an old key is unrestricted
                 "rate_limit": None, "remaining": None, "refill": None}  # issue 13: and unlimited
KEYS = load_json("fixture-keys.json")


# --------------------------------------------------------------------------- the fixture's database


def fixture_server(server_factory, backend):
    """A server (not started) whose database and secret are a copy of the backend's fixture."""
    data, secret = FIXTURE_FILES[backend.name]
    workdir = server_factory.root / f"fixture{len(server_factory.servers)}"
    workdir.mkdir(parents=True)
    secret_copy = workdir / "fixture.secret"
    shutil.copyfile(FIXTURES / secret, secret_copy)
    os.chmod(secret_copy, 0o600)  # git keeps no file mode; apikeyd refuses a secret others may read
    server = server_factory(accounts=(), start=False, secret_file=secret_copy)
    if backend.name == "sqlite":
        shutil.copyfile(FIXTURES / data, server.db)
    else:
        cluster = server.backend.cluster
        p = subprocess.run(
            [*cluster.psql_argv(server.backend.dbname), "-f", str(FIXTURES / data)],
            capture_output=True,
            text=True,
            timeout=PSQL_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert p.returncode == 0, f"loading {data} failed: {p.stderr}"
    return server


def schema_versions(server):
    """The rows of `schema_version`, sorted (read while no server runs on the database)."""
    if server.backend.name == "sqlite":
        with contextlib.closing(sqlite3.connect(f"file:{server.db}?mode=ro", uri=True)) as db:
            return sorted(v for (v,) in db.execute("SELECT version FROM schema_version"))
    return sorted(int(v) for v in server.psql("SELECT version FROM schema_version").split())


def add_schema_version(server, version):
    if server.backend.name == "sqlite":
        with contextlib.closing(sqlite3.connect(server.db)) as db, db:
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    else:
        server.psql(f"INSERT INTO schema_version (version) VALUES ({int(version)})")


def newest_schema_version(server_factory):
    """What this binary gives a brand-new database: the newest schema version it knows."""
    fresh = server_factory(accounts=("fresh",), start=False)
    return max(schema_versions(fresh))


# --------------------------------------------------------------------------- what the old binary answered


def key_client(server, backend, label):
    return Client(server, KEYS[backend.name][label]["api_key"])


def assert_list_as_before(got, expected, lister_id, since):
    """`got` is `expected` field for field and in order, except the lister's own last_used,
    which this very request set: no earlier than before, and not after now. The members that
    later schemas added follow, as an old key has them: no expiry, never rotated or reported."""
    used = next(k for k in got if k["id"] == lister_id)["last_used"]
    want = [dict(k, **LATER_MEMBERS) for k in expected]
    for key in want:
        if key["id"] == lister_id:
            assert parse_time(key["last_used"]) <= parse_time(used), (key, used)
            assert since - 1 <= parse_time(used) <= time.time() + 1, used
            key["last_used"] = used
    assert [list(k.items()) for k in got] == [list(k.items()) for k in want]


def assert_lists_as_before(server, backend):
    """Every account's list (with its lister key), then its sandbox-only view (with a sandbox key)."""
    keys = KEYS[backend.name]
    for exp in EXPECTED[backend.name].values():
        since = time.time()
        got = key_client(server, backend, exp["lister"]).list()
        assert_list_as_before(got, exp["api_keys"], keys[exp["lister"]]["id"], since)
    for account, exp in EXPECTED[backend.name].items():
        sandbox = next(label for label, k in keys.items()
                       if k["account"] == account and k["key_type"] == "sandbox" and k["verify"]["status"] == 204)  # fmt: skip
        since = time.time()
        got = key_client(server, backend, sandbox).list()
        want = [k for k in exp["api_keys"] if k["key_type"] == "sandbox"]
        assert_list_as_before(got, want, keys[sandbox]["id"], since)


def assert_verify_as_before(server, backend):
    for label, key in KEYS[backend.name].items():
        r = key_client(server, backend, label).get(VERIFY)
        want = key["verify"]
        if want["status"] == 204:
            assert r.status_code == 204, (label, r.status_code, r.text)
            assert {h: r.headers.get(h) for h in VERIFY_HEADERS} == want["headers"], label
        else:
            assert_error(r, want["status"], want["code"])


# --------------------------------------------------------------------------- tests


def test_fixture_is_the_old_schema(server_factory, backend):
    """The fixture is what it says: schema version 2 (were it regenerated with a newer binary,
    the tests below would no longer exercise any migration)."""
    server = fixture_server(server_factory, backend)
    assert schema_versions(server) == list(range(1, FIXTURE_VERSION + 1))


def test_old_database_migrates_and_serves_its_keys_unchanged(server_factory, backend):
    server = fixture_server(server_factory, backend)
    newest = newest_schema_version(server_factory)
    assert newest >= FIXTURE_VERSION

    server.start()
    # The lists first: every authenticated request after them moves some key's last_used.
    assert_lists_as_before(server, backend)
    assert_verify_as_before(server, backend)

    # Writes work on the migrated schema: a new key (an id never used before, not even by the
    # deleted keys), made primary, used; an old key deleted.
    keys = KEYS[backend.name]
    acme = EXPECTED[backend.name]["acme"]
    lister = key_client(server, backend, acme["lister"])
    new = lister.create("After the upgrade", "production")
    assert new["id"] > max(k["id"] for k in keys.values())
    assert new["last_used"] is None and new["is_primary"] is False
    newcomer = Client(server, new["api_key"])
    r = newcomer.get(VERIFY)
    assert r.status_code == 204, r.text
    assert r.headers["X-Account-Id"] == str(acme["account_id"]) and r.headers["X-Key-Id"] == str(new["id"])
    assert newcomer.update(new["id"], is_primary=True)["is_primary"] is True
    newcomer.remove(keys["acme-batch"]["id"])
    assert_error(key_client(server, backend, "acme-batch").get(VERIFY), 401, "invalid_api_key")
    listed = {k["id"]: k for k in newcomer.list()}
    assert listed[new["id"]]["is_primary"] is True and listed[keys[acme["lister"]]["id"]]["is_primary"] is False
    assert keys["acme-batch"]["id"] not in listed

    # And so does a new account, made while the server runs.
    p = run_cli("account", "create", "--db", server.db, "--name", "initech", *server.common_args())
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["account_id"] > max(a["account_id"] for a in EXPECTED[backend.name].values())
    assert info["id"] > new["id"]
    initech = Client(server, info["api_key"])
    wait_until(lambda: initech.get().status_code == 200, ACCOUNT_PICKUP_TIMEOUT, what="the new account")
    server.stop()

    migrated = schema_versions(server)
    assert max(migrated) == newest

    # A second start on the migrated database changes neither the schema nor the keys.
    server.start()
    assert {k["id"]: k for k in newcomer.list()}.keys() == listed.keys()
    r = key_client(server, backend, "globex-mobile").get(VERIFY)
    assert r.status_code == 204 and r.headers["X-Key-Id"] == str(keys["globex-mobile"]["id"])
    server.stop()
    assert schema_versions(server) == migrated


@pytest.mark.parametrize(
    "command",
    [["account", "create", "--name", "x"], ["serve", "--listen", "{listen}"]],
    ids=["account create", "serve"],
)
def test_newer_schema_version_is_refused(server_factory, backend, command):
    """A database from a newer apikeyd (here: schema version 999) is neither opened nor
    migrated: exit status non-zero, one line on stderr, the database untouched."""
    server = fixture_server(server_factory, backend)
    add_schema_version(server, 999)
    before = schema_versions(server)
    listen = f"127.0.0.1:{free_port()}"
    p = run_cli(*[a.format(listen=listen) for a in command], "--db", server.db, *server.common_args())
    assert p.returncode != 0, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), p.stderr
    assert "999" in lines[0], lines[0]
    assert p.stdout == ""
    assert schema_versions(server) == before
