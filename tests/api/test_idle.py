"""The idle-key policy (issue 10; docs/contract.md "Idle keys"), black-box, on both backends.

`--deactivate-idle-after DAYS`: a key active, not primary, not leaked, not expired, whose
last_used (or created_at, never used) is DAYS days or more in the past is deactivated by the
server within a minute (key.updated, actor system, details reason idle). The days pass through
the test clock (APIKEYD_TEST_CLOCK_FILE). With two PostgreSQL instances sharing a database and
the clock, each idle key is deactivated once: exactly one event per key.

No duration is asserted; what the sweep does is polled with a generous deadline.
"""

import time

import pytest

from conftest import LAST_USED_TIMEOUT, Client, assert_error, parse_time, postgres_only, wait_until
from lifecycle import (
    CLOCK_TIMEOUT,
    DAY,
    SWEEP_TIMEOUT,
    ShiftClock,
    admin_account,
    admin_issue,
    audit_events,
    ch,
    events_for_key,
    key_by_id,
    now,
    verify,
)

IDLE_DAYS = 3


@pytest.fixture
def clock(tmp_path):
    return ShiftClock(tmp_path / "test-clock")


def start_with_admin(server_factory, clock, *flags, share=None):
    server = server_factory(start=False, accounts=(), env=clock.env, share=share)
    token = server.create_admin_token()["token"]
    server.start(["--deactivate-idle-after", IDLE_DAYS, *flags])
    return server, Client(server, token)


def use_until_seen(server, key_body, lister, at_least):
    """Uses the key until the list shows a last_used of at least `at_least` (the server's
    clock has moved and the use was flushed)."""

    def used():
        r = verify(server, key_body["api_key"])
        assert r.status_code == 204, r.text
        last = key_by_id(lister, key_body["id"])["last_used"]
        return last is not None and parse_time(last) >= at_least

    wait_until(used, CLOCK_TIMEOUT + LAST_USED_TIMEOUT, interval=0.2, what="a use at the shifted clock")


def test_idle_keys_are_deactivated_never_the_primary_nor_recent_ones(server_factory, clock):
    server, admin = start_with_admin(server_factory, clock)
    account, primary = admin_account(admin, "Idle Co")
    # Keys issued by the operator: the primary is never used by the test.
    recent = admin_issue(admin, account["id"], "Recent", "production")
    unused = admin_issue(admin, account["id"], "Unused", "sandbox")
    unused_prod = admin_issue(admin, account["id"], "Unused prod", "production")
    other, other_primary = admin_account(admin, "Other Co")
    lister = Client(server, recent["api_key"])  # `recent` lists: each listing is a use of it
    t0 = now()

    # Two days on, `recent` is used; nothing is due yet.
    clock.set(2 * DAY)
    use_until_seen(server, recent, lister, t0 + 2 * DAY)
    assert all(k["is_active"] for k in lister.list())

    # Three days and a second after the start: the unused keys are due, `recent` is not.
    clock.set(IDLE_DAYS * DAY + 1)
    wait_until(lambda: not any(k["is_active"] for k in lister.list() if k["id"] in (unused["id"], unused_prod["id"])),
               SWEEP_TIMEOUT, what="the idle keys to be deactivated")  # fmt: skip
    keys = lister.by_id()
    assert keys[recent["id"]]["is_active"] is True
    assert keys[primary["id"]]["is_active"] is True and keys[primary["id"]]["is_primary"] is True
    assert_error(verify(server, unused["api_key"]), 401, "key_inactive")
    assert verify(server, primary["api_key"]).status_code == 204  # never used before, never deactivated
    assert verify(server, other_primary["api_key"]).status_code == 204

    for key in (unused, unused_prod):
        events = events_for_key(admin, key["id"], action="key.updated")
        assert len(events) == 1, events
        ev = events[0]
        assert ev["actor"]["type"] == "system"
        assert ev["account_id"] == account["id"]
        assert ev["changes"] == {"is_active": ch(True, False)}
        assert ev["details"] == {"reason": "idle", "idle_days": IDLE_DAYS}
    for key_id in (recent["id"], primary["id"], other_primary["id"]):
        assert events_for_key(admin, key_id, action="key.updated") == []

    # The customer may switch a deactivated idle key back on (a later sweep may find it idle again).
    r = lister.patch(unused["id"], json={"is_active": True})
    assert r.status_code == 200 and r.body["is_active"] is True, r.text


def test_idle_policy_skips_leaked_expired_and_inactive_keys(server_factory, clock):
    server, admin = start_with_admin(server_factory, clock)
    account, primary = admin_account(admin, "Skips")
    lister_key = admin_issue(admin, account["id"], "Lister", "production")
    lister = Client(server, lister_key["api_key"])
    leaked = admin_issue(admin, account["id"], "Leaked", "sandbox")
    inactive = admin_issue(admin, account["id"], "Inactive", "sandbox")
    expiring = admin_issue(admin, account["id"], "Expiring", "sandbox",
                           expires_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now() + DAY)))  # fmt: skip
    idle = admin_issue(admin, account["id"], "Idle", "sandbox")
    r = admin.post("/v1/admin/leaked-keys", json=[{"token": leaked["api_key"]}])
    assert r.status_code == 200, r.text
    lister.update(inactive["id"], is_active=False)
    t0 = now()
    clock.set(2 * DAY)
    use_until_seen(server, lister_key, lister, t0 + 2 * DAY)
    clock.set(IDLE_DAYS * DAY + 60)
    wait_until(lambda: key_by_id(lister, idle["id"])["is_active"] is False, SWEEP_TIMEOUT, what="the idle key")
    system = [e for e in audit_events(admin, action="key.updated") if e["actor"]["type"] == "system"]
    assert [e["target"]["id"] for e in system] == [idle["id"]]
    assert system[0]["details"] == {"reason": "idle", "idle_days": IDLE_DAYS}
    keys = lister.by_id()
    assert keys[leaked["id"]]["leaked_at"] is not None
    assert keys[expiring["id"]]["is_active"] is True  # expired, not deactivated
    assert keys[primary["id"]]["is_active"] is True


def test_without_the_flag_nothing_is_deactivated(server_factory, clock):
    server = server_factory(start=False, accounts=(), env=clock.env)
    token = server.create_admin_token()["token"]
    server.start()
    admin = Client(server, token)
    account, primary = admin_account(admin, "No policy")
    key = admin_issue(admin, account["id"], "Unused", "sandbox")
    # A probe key whose X-Key-Expires-At header appears once the server's clock has moved.
    probe = admin_issue(admin, account["id"], "Probe", "sandbox",
                        expires_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now() + 103 * DAY)))  # fmt: skip
    assert "X-Key-Expires-At" not in verify(server, probe["api_key"]).headers
    clock.set(100 * DAY)
    wait_until(lambda: "X-Key-Expires-At" in verify(server, probe["api_key"]).headers, CLOCK_TIMEOUT,
               what="the server to read the clock")  # fmt: skip
    time.sleep(1.0)  # several maintenance ticks (0.1 s with the test clock) after the clock change
    assert verify(server, key["api_key"]).status_code == 204
    assert [e for e in audit_events(admin, action="key.updated") if e["actor"]["type"] == "system"] == []


@postgres_only  # several instances on one database: PostgreSQL only
def test_two_instances_deactivate_each_idle_key_once(server_factory, clock):
    a, admin = start_with_admin(server_factory, clock)
    b = server_factory(start=False, accounts=(), env=clock.env, share=a)
    b.start(["--deactivate-idle-after", IDLE_DAYS])
    idle = []
    for i in range(4):
        account, primary = admin_account(admin, f"Account {i}")
        for j in range(5):
            idle.append(admin_issue(admin, account["id"], f"Idle {j}", "sandbox"))
    ids = {k["id"] for k in idle}
    admin_b = Client(b, admin.key)
    wait_until(lambda: verify(b, idle[-1]["api_key"]).status_code == 204, 5, what="the keys on B")
    # (that use of idle[-1] is at the real clock: it is due all the same)
    clock.set(IDLE_DAYS * DAY + 60)

    def all_off():
        events = [e for e in audit_events(admin, action="key.updated") if e["actor"]["type"] == "system"]
        return {e["target"]["id"] for e in events} == ids

    wait_until(all_off, SWEEP_TIMEOUT, interval=0.5, what="every idle key deactivated")
    # Both instances have swept since (a later clock move makes both sweep at once again).
    clock.set(IDLE_DAYS * DAY + 120)
    time.sleep(1.5)
    events = [e for e in audit_events(admin_b, action="key.updated") if e["actor"]["type"] == "system"]
    per_key = {}
    for e in events:
        per_key.setdefault(e["target"]["id"], []).append(e)
    assert set(per_key) == ids
    doubles = {k: len(v) for k, v in per_key.items() if len(v) != 1}
    assert doubles == {}, f"keys with more than one idle event: {doubles}"
    for k in idle:
        assert_error(verify(a, k["api_key"]), 401, "key_inactive")
        assert_error(verify(b, k["api_key"]), 401, "key_inactive")
