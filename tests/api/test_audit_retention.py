"""Audit retention: --audit-retention-days deletes older events in the background, and only those."""

import sqlite3
import time

import pytest

from conftest import Client, run_cli, strict_json, wait_until

RETENTION_TIMEOUT = 10  # the first prune runs at the maintenance thread's first tick (about 1 s)


def admin_token(server):
    p = run_cli("admin-token", "create", "--db", server.db, "--name", "ops", *server.common_args())
    assert p.returncode == 0, p.stderr
    return strict_json(p.stdout)["token"]


def insert_event(server, at, request_id):
    sql = (
        "INSERT INTO audit_events (at, account_id, actor_type, action, target_type, target_id, request_id)"
        f" VALUES ({int(at)}, {server.account.id}, 'cli', 'account.updated', 'account', {server.account.id}, '{request_id}')"
    )
    if server.backend.__class__.__name__.startswith("Sqlite"):
        with sqlite3.connect(server.db) as db:
            db.execute(sql)
    else:
        server.psql(sql)


def request_ids(client):
    r = client.get("/v1/admin/audit-log?limit=1000")
    assert r.status_code == 200, r.text
    return [e["request_id"] for e in r.body["events"]]


def test_old_events_are_pruned_and_recent_ones_kept(server_factory):
    server = server_factory(start=False)
    token = admin_token(server)
    now = time.time()
    insert_event(server, now - 3 * 86400, "old-3-days")
    insert_event(server, now - 2 * 86400 + 600, "recent-2-days")
    insert_event(server, now - 60, "recent-1-minute")
    server.start(["--audit-retention-days", "2"])
    admin = Client(server, token)
    wait_until(lambda: "old-3-days" not in request_ids(admin), RETENTION_TIMEOUT, what="the 3-day-old event to be pruned")
    ids = request_ids(admin)
    assert "recent-2-days" in ids and "recent-1-minute" in ids
    # the events apikeyd wrote itself (account and token created now) stay too
    r = admin.get("/v1/admin/audit-log?action=admin_token.created")
    assert len(r.body["events"]) == 1


def test_default_retention_keeps_a_year(server_factory):
    server = server_factory(start=False)
    token = admin_token(server)
    insert_event(server, time.time() - 364 * 86400, "old-364-days")
    insert_event(server, time.time() - 366 * 86400, "old-366-days")
    server.start()
    admin = Client(server, token)
    wait_until(lambda: "old-366-days" not in request_ids(admin), RETENTION_TIMEOUT, what="the 366-day-old event to be pruned")
    assert "old-364-days" in request_ids(admin)


@pytest.mark.parametrize("value", ["0", "36501", "-1", "abc", "", "1.5"])
def test_bad_retention_is_a_usage_error(server_factory, value):
    server = server_factory(start=False)
    p = run_cli("serve", "--db", server.db, "--listen", "127.0.0.1:1", "--audit-retention-days", value, *server.common_args())
    assert p.returncode == 2
    assert "--audit-retention-days" in p.stderr and len(p.stderr.strip().splitlines()) == 1
