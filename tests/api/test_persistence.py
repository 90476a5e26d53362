"""Durability, restarts, accounts, secrets at rest and the access log."""

import http.client
import os
import re
import signal
import time
import uuid

from conftest import (
    ACCOUNT_PICKUP_TIMEOUT,
    COLLECTION,
    HTTP_TIMEOUT,
    LAST_USED_TIMEOUT,
    LOG_TIMEOUT,
    Client,
    assert_error,
    forge_key,
    parse_time,
    run_cli,
    snapshot,
    sqlite_only,
    strict_json,
    wait_until,
)


def without_last_used_of(keys, key_id):
    return [{k: v for k, v in key.items() if not (k == "last_used" and key["id"] == key_id)} for key in keys]


def test_restart_keeps_keys_changes_and_deletions(server):
    client = server.client
    old_primary = server.account.primary_id
    prod = client.create("CI/CD Pipeline", "production")
    sand = client.create("Staging Environment", "sandbox")
    inactive = client.create("Development Key", "sandbox")
    doomed = client.create("Doomed", "production")
    client.update(sand["id"], name="Renamed Staging")
    client.update(inactive["id"], is_active=False)
    client.remove(doomed["id"])
    Client(server, sand["api_key"]).get()
    client.update(prod["id"], is_primary=True)
    lister = Client(server, prod["api_key"])
    before = lister.list()

    server.restart()

    after = lister.list()
    assert without_last_used_of(after, prod["id"]) == without_last_used_of(before, prod["id"])
    assert [k["id"] for k in after if k["is_primary"]] == [prod["id"]]
    assert doomed["id"] not in {k["id"] for k in after}
    assert {k["id"]: k["is_active"] for k in after}[inactive["id"]] is False
    # Keys authenticate exactly as before.
    assert Client(server, sand["api_key"]).get().status_code == 200
    assert Client(server, server.account.key).get().status_code == 200
    assert_error(Client(server, inactive["api_key"]).get(), 401, "key_inactive")
    assert_error(Client(server, doomed["api_key"]).get(), 401, "invalid_api_key")
    assert_error(lister.delete(prod["id"]), 409, "primary_key_protected")
    assert lister.delete(old_primary).status_code == 204


def test_answered_changes_survive_sigkill(server):
    """Creates, updates and deletes are durable once answered (no shutdown flush needed)."""
    client = server.client
    created = client.create("Durable", "production")
    renamed = client.create("To Rename", "sandbox")
    doomed = client.create("Doomed", "sandbox")
    client.update(renamed["id"], name="Renamed", is_active=False)
    client.update(created["id"], is_primary=True)
    client.remove(doomed["id"])
    before = snapshot(client)
    server.kill()
    server.start()
    assert snapshot(client) == before
    assert Client(server, created["api_key"]).get().status_code == 200
    assert_error(Client(server, doomed["api_key"]).get(), 401, "invalid_api_key")


# SQLite only: WAL mode is a property of the SQLite file. PostgreSQL's durability is the
# server's own (a commit is durable once answered); test_answered_changes_survive_sigkill
# covers what apikeyd promises on both backends.
@sqlite_only
def test_sqlite_database_is_in_wal_mode(server):
    server.client.create("k", "sandbox")
    header = open(server.db, "rb").read(100)
    assert header.startswith(b"SQLite format 3\0")
    assert header[18] == 2 and header[19] == 2, "database is not in WAL mode"
    assert os.path.exists(server.db + "-wal")


def test_restart_twice_and_keep_creating(server):
    client = server.client
    first = client.create("one", "sandbox")
    server.restart()
    second = client.create("two", "sandbox")
    assert second["id"] > first["id"]
    server.restart()
    assert [k["name"] for k in client.list()] == ["Production Key", "one", "two"]


def test_last_used_survives_sigterm_right_after_use(server):
    admin = server.client
    created = admin.create("Used Once", "sandbox")
    t0 = time.time()
    assert Client(server, created["api_key"]).get().status_code == 200
    t1 = time.time()
    server.stop()  # immediately: the pending last_used must be flushed at shutdown
    server.start()
    keys = admin.by_id()
    value = keys[created["id"]]["last_used"]
    assert value is not None, "last_used lost across SIGTERM"
    assert int(t0) - 2 <= parse_time(value) <= t1 + 2
    assert keys[server.account.primary_id]["last_used"] is not None


def test_last_used_survives_sigint(server):
    admin = server.client
    created = admin.create("Used Once", "sandbox")
    Client(server, created["api_key"]).get()
    server.stop(signal.SIGINT)
    server.start()
    assert admin.by_id()[created["id"]]["last_used"] is not None


def test_last_used_persisted_without_shutdown_flush_is_visible_after_restart(server):
    admin = server.client
    created = admin.create("Flushed", "sandbox")
    Client(server, created["api_key"]).get()
    wait_until(lambda: admin.by_id()[created["id"]]["last_used"], LAST_USED_TIMEOUT, what="last_used")
    before = admin.by_id()[created["id"]]["last_used"]
    server.restart()
    assert admin.by_id()[created["id"]]["last_used"] == before


def test_account_created_while_serving_is_picked_up(server):
    p = run_cli("account", "create", "--db", server.db, "--name", "late", *server.common_args())
    assert p.returncode == 0, p.stderr
    info = strict_json(p.stdout)
    late = Client(server, info["api_key"])

    def accepted():
        r = late.get()
        if r.status_code == 200:
            return r.body["api_keys"]
        assert_error(r, 401, "invalid_api_key")
        return None

    keys = wait_until(accepted, ACCOUNT_PICKUP_TIMEOUT, interval=0.1, what="the new account's key to be accepted")
    assert [k["id"] for k in keys] == [info["id"]]
    assert info["account_id"] != server.account.id
    # The running server's other account is untouched.
    assert [k["id"] for k in server.client.list()] == [server.account.primary_id]
    # And the new account's primary key can do everything.
    created = late.create("late sandbox", "sandbox")
    assert created["id"] in late.by_id()
    assert created["id"] not in server.client.by_id()


def test_two_accounts_are_isolated(server_factory):
    server = server_factory(accounts=("acme", "globex"))
    acme, globex = server.accounts
    a_keys = [acme.client.create(f"acme-{t}", t) for t in ("production", "sandbox")]
    g_keys = [globex.client.create(f"globex-{t}", t) for t in ("production", "sandbox")]
    a_ids = {acme.primary_id} | {k["id"] for k in a_keys}
    g_ids = {globex.primary_id} | {k["id"] for k in g_keys}
    assert not a_ids & g_ids
    assert set(acme.client.by_id()) == a_ids
    assert set(globex.client.by_id()) == g_ids
    g_sand = Client(server, g_keys[1]["api_key"])
    assert {k["id"] for k in g_sand.list()} == {g_keys[1]["id"]}

    a_before, g_before = snapshot(acme.client), snapshot(globex.client)
    for attacker in (acme.client, Client(server, a_keys[0]["api_key"]), Client(server, a_keys[1]["api_key"])):
        for victim in sorted(g_ids):
            for body in ({"name": "pwned"}, {"is_active": False}, {"is_primary": True}):
                assert_error(attacker.patch(victim, json=body), 404, "not_found")
            assert_error(attacker.delete(victim), 404, "not_found")
    assert snapshot(acme.client) == a_before
    assert snapshot(globex.client) == g_before
    # Each account still has its own primary.
    assert [k["id"] for k in acme.client.list() if k["is_primary"]] == [acme.primary_id]
    assert [k["id"] for k in globex.client.list() if k["is_primary"]] == [globex.primary_id]


def test_no_key_in_database_files_or_logs(server_factory):
    server = server_factory(accounts=("acme", "globex"))
    keys = [a.key for a in server.accounts]
    client = server.client
    for i, t in enumerate(["production", "sandbox", "production", "sandbox"]):
        created = client.create(f"k{i}", t)
        keys.append(created["api_key"])
        c = Client(server, created["api_key"])
        c.get()
        c.get(f"{COLLECTION}?api_key={created['api_key']}")
        c.patch(created["id"], json={"name": f"renamed {i}"})
    Client(server, keys[-1]).delete(client.create("temp", "sandbox")["id"])
    client.update(client.list()[1]["id"], is_active=False)

    def scan(when):
        files = server.data_files() + [server.log_path, server.stdout_path]
        assert server.data_files(), "no database files found"
        for path in files:
            data = path.read_bytes() if path.exists() else b""
            for key in keys:
                assert key.encode() not in data, f"{when}: a full key is in {path.name}"
                assert key[8:].encode() not in data, f"{when}: a key's secret part is in {path.name}"

    if server.backend.name == "sqlite":
        assert {p.name for p in server.data_files()} >= {"apikeyd.db", "apikeyd.db-wal"}
    scan("while running")
    server.stop()
    scan("after shutdown")
    server.start()


LOG_RE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) "
    r"(?P<prefix>\S+) (?P<ms>\d+(\.\d+)?)ms rid=(?P<rid>[A-Za-z0-9._:-]{1,128})$"
)


def access_lines(server):
    return [line for line in server.log_text().splitlines() if LOG_RE.match(line)]


def test_access_log_one_line_per_request(server_factory):
    # One event loop: each loop buffers its log lines and writes them after its turn, so
    # lines of requests on different connections (served by different loops) may be written
    # out of request order. The order is what this test reads; --threads 1 keeps it exact.
    server = server_factory("--threads", "1")
    client = server.client
    anon = Client(server)
    start_marker = f"/start-{uuid.uuid4().hex}"
    end_marker = f"/end-{uuid.uuid4().hex}"
    created = client.create("logged", "sandbox")
    sand = Client(server, created["api_key"])

    anon.get(start_marker)
    requests_made = [
        ("GET", COLLECTION, client, {}, 200),
        ("GET", "/v1/account/api-keys", client, {}, 200),
        ("GET", f"{COLLECTION}?secret=hunter2", client, {}, 200),
        ("POST", COLLECTION, client, {"json": {"name": "x", "key_type": "sandbox"}}, 201),
        ("POST", COLLECTION, client, {"json": {"name": ""}}, 422),
        ("PATCH", f"{COLLECTION}{created['id']}/", sand, {"json": {"name": "y"}}, 200),
        ("PATCH", f"{COLLECTION}abc/", client, {"json": {"name": "y"}}, 404),
        ("DELETE", f"{COLLECTION}{server.account.primary_id}", client, {}, 409),
        ("PUT", COLLECTION, anon, {}, 405),
        ("GET", COLLECTION, anon, {}, 401),
        ("GET", "/healthz", anon, {}, 200),
        ("GET", "/no/such/path?x=1", anon, {}, 404),
    ]
    for method, path, c, kw, status in requests_made:
        r = c.request(method, path, **kw)
        assert r.status_code == status, (method, path, r.text)
    anon.get(end_marker)

    def logged():
        lines = access_lines(server)
        return lines if any(end_marker in line for line in lines) else None

    lines = wait_until(logged, LOG_TIMEOUT, what="the access log line of the last request")
    start = next(i for i, line in enumerate(lines) if start_marker in line)
    end = next(i for i, line in enumerate(lines) if end_marker in line)
    window = [LOG_RE.match(line) for line in lines[start + 1 : end]]
    assert len(window) == len(requests_made), "\n".join(lines[start : end + 1])
    expected_prefix = {id(client): server.account.key[:12], id(sand): created["key_prefix"], id(anon): "-"}
    for m, (method, path, c, _, status) in zip(window, requests_made):
        assert m["method"] == method
        assert m["path"] == path.split("?")[0]
        assert int(m["status"]) == status
        assert m["prefix"] == expected_prefix[id(c)], m.group(0)
        parse_time(m["time"])
    text = server.log_text()
    assert "hunter2" not in text and "x=1" not in text


def encode_all(text, upper=True):
    return "".join(("%%%02X" if upper else "%%%02x") % b for b in text.encode())


def raw_get(server, path, key=None):
    """A GET with `path` sent byte for byte (requests would decode %5F back to _)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def test_access_log_redacts_keys_in_paths_however_encoded(server):
    """A key pasted into a path below /v1/auth/verify (or anywhere), in clear or percent-encoded
    (either case, every byte, twice), real or forged, never reaches the access log."""
    real, forged = server.account.key, forge_key("sand")
    end_marker = f"/end-{uuid.uuid4().hex}"
    sent = []
    for key in (real, forged):
        brand, kind, rest = key.split("_", 2)
        forms = [
            key,
            f"{brand}%5F{kind}%5F{rest}",
            f"{brand}%5f{kind}%5f{rest}",
            encode_all(key),
            encode_all(key, upper=False),
            encode_all(encode_all(key)),
            f"{brand}%255F{kind}%255F{rest}",
            f"x/{rest[:32]}",
        ]
        for form in forms:
            for path in (f"/v1/auth/verify/{form}", f"/v1/auth/verify/a/{form}/b", f"{COLLECTION}{form}/"):
                status = raw_get(server, path, key=real if path.startswith("/v1/auth") else None)
                assert status in (204, 401, 404, 405), (path, status)
                sent.append((key, form, path))
        assert raw_get(server, encode_all(f"/v1/auth/verify/{key}")) == 404
    raw_get(server, end_marker)

    def redacted_paths(text):
        return [m["path"] for m in map(LOG_RE.match, text.splitlines()) if m and "redacted" in m["path"]]

    # Each event loop buffers its own access log: the end marker's line can come out before
    # another loop's earlier lines do, so wait for all of them, not for the marker alone.
    def logged():
        text = server.log_text()
        return text if end_marker in text and len(redacted_paths(text)) >= len(sent) + 2 else None

    text = wait_until(logged, LOG_TIMEOUT, what="the access log lines of every request")
    for key, form, path in sent:
        rest = key.split("_", 2)[2]
        for secret in (key, rest[:32], form, path):
            assert secret not in text, f"{secret!r} (sent as {path!r}) is in the access log"
    redacted = redacted_paths(text)
    assert len(redacted) == len(sent) + 2, redacted
    assert set(redacted) == {"/v1/auth/verify/[redacted]", "[redacted]"}
