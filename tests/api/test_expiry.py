"""Key expiry (issue 10; docs/contract.md "Expiry"), black-box, on both backends.

- `expires_at` on create, PATCH and the operator's issue-key: RFC 3339 (Z or an offset, a
  fraction dropped), shown in UTC with Z; in the future, at most 10 years ahead; null clears.
- From `expires_at` on the key is refused (401 key_expired) on /v1/auth/verify and on the
  account API, checked on the hot path (no background job); such a request is not a use.
- Verify of a key expiring within 7 days answers `X-Key-Expires-At`.
- The primary never has an expiry (409 primary_key_protected / primary_key_invalid); an expired
  key stays expired (PATCH expires_at: 409 key_expired), also when the clock steps back, after a
  restart and (PostgreSQL) on another instance.
- `--expired-retention-days`: keys expired longer are deleted by the server (key.deleted, actor
  system), give their place under the cap back; leaked keys are never deleted.

Time passes through the test clock (APIKEYD_TEST_CLOCK_FILE) wherever possible; the one test of
expiry in real time waits about two seconds. No duration is asserted.
"""

import time

import pytest

from conftest import (
    LAST_USED_TIMEOUT,
    Client,
    assert_error,
    parse_time,
    postgres_only,
    run_cli,
    snapshot,
    wait_until,
)
from lifecycle import (
    CLOCK_TIMEOUT,
    DAY,
    SWEEP_TIMEOUT,
    TEN_YEARS,
    WEEK,
    ShiftClock,
    admin_account,
    admin_get_account,
    admin_issue,
    assert_key_object,
    ch,
    create_key,
    events_for_key,
    key_by_id,
    now,
    rfc3339,
    verify,
)

EXPIRES_HEADER = "X-Key-Expires-At"
LEAKED = "/v1/admin/leaked-keys"


@pytest.fixture
def clock(tmp_path):
    return ShiftClock(tmp_path / "test-clock")


def assert_expired(r):
    assert_error(r, 401, "key_expired")
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    for name in ("X-Account-Id", "X-Key-Id", "X-Key-Type", "X-Key-Prefix"):
        assert name not in r.headers


# --------------------------------------------------------------------------- create and show


def test_create_with_expiry_shows_it_everywhere(server):
    client = server.client
    at = now() + 3600
    body = create_key(client, "Temp", "sandbox", expires_at=rfc3339(at))
    assert_key_object(body, shown=True)
    assert body["expires_at"] == rfc3339(at)
    assert body["rotated_from"] is None and body["rotated_to"] is None and body["leaked_at"] is None
    listed = key_by_id(client, body["id"])
    assert_key_object(listed)
    assert listed["expires_at"] == rfc3339(at)
    r = verify(server, body["api_key"])
    assert r.status_code == 204, r.text
    assert r.headers["X-Key-Id"] == str(body["id"])


def test_keys_without_expiry_show_null(server):
    client = server.client
    body = create_key(client, "Plain", "production")
    assert body["expires_at"] is None
    explicit = create_key(client, "Explicit null", "sandbox", expires_at=None)
    assert explicit["expires_at"] is None
    for key in client.list():
        assert_key_object(key)
        assert key["expires_at"] is None


def test_key_is_refused_once_expires_at_passes_and_refusal_is_no_use(server):
    """Real time: a key expiring four seconds ahead works, then is refused on verify and on
    the account API (401 key_expired); refused requests do not move last_used."""
    client = server.client
    expires = now() + 4  # (room for a slow create and verify under ASan)
    body = create_key(client, "Short", "production", expires_at=rfc3339(expires))
    key = body["api_key"]
    assert verify(server, key).status_code == 204
    # (Until the second passes this may still answer 204; after it, never.)
    wait_until(lambda: verify(server, key).status_code == 401, 10, what="the key to expire")
    assert time.time() >= expires
    assert_expired(verify(server, key))
    assert_expired(Client(server, key).get())
    assert_expired(Client(server, key).post(json={"name": "x", "key_type": "sandbox"}))
    assert_expired(verify(server, key, headers={"X-Original-Method": "POST"}))
    # last_used: the one use before expiry, then nothing. Another key's use after the refusals
    # is flushed in the same batch or a later one; once it shows, the refusals would have too.
    used = wait_until(lambda: key_by_id(client, body["id"])["last_used"], LAST_USED_TIMEOUT + 2, what="last_used")
    other = create_key(client, "Witness", "sandbox")
    for _ in range(3):
        assert_expired(verify(server, key))
    assert verify(server, other["api_key"]).status_code == 204
    wait_until(lambda: key_by_id(client, other["id"])["last_used"], LAST_USED_TIMEOUT + 2, what="the witness's use")
    assert key_by_id(client, body["id"])["last_used"] == used
    # Still listed, as it was.
    listed = key_by_id(client, body["id"])
    assert listed["expires_at"] == rfc3339(expires) and listed["is_active"] is True


def test_never_used_expired_key_keeps_last_used_null(server_factory, clock):
    server = server_factory(env=clock.env)
    client = server.client
    body = create_key(client, "Never used", "sandbox", expires_at=rfc3339(now() + 600))
    probe = create_key(client, "Clock probe", "sandbox", expires_at=rfc3339(now() + 900))
    clock.set(3600)
    wait_until(lambda: verify(server, probe["api_key"]).status_code == 401, CLOCK_TIMEOUT, what="the clock to move")
    for _ in range(3):
        assert_expired(verify(server, body["api_key"]))
    witness = create_key(client, "Witness", "sandbox")
    assert verify(server, witness["api_key"]).status_code == 204
    wait_until(lambda: key_by_id(client, witness["id"])["last_used"], LAST_USED_TIMEOUT + 2, what="the witness's use")
    assert key_by_id(client, body["id"])["last_used"] is None


# --------------------------------------------------------------------------- X-Key-Expires-At


def test_verify_header_within_seven_days(server):
    client = server.client
    soon = create_key(client, "3 days", "production", expires_at=rfc3339(now() + 3 * DAY))
    inside = create_key(client, "7 days - 1 min", "sandbox", expires_at=rfc3339(now() + WEEK - 60))
    outside = create_key(client, "7 days + 1 h", "sandbox", expires_at=rfc3339(now() + WEEK + 3600))
    plain = create_key(client, "No expiry", "sandbox")
    for body in (soon, inside):
        r = verify(server, body["api_key"])
        assert r.status_code == 204, r.text
        assert r.headers.get(EXPIRES_HEADER) == body["expires_at"], r.headers
    for body in (outside, plain):
        r = verify(server, body["api_key"])
        assert r.status_code == 204, r.text
        assert EXPIRES_HEADER not in r.headers, r.headers
    r = verify(server, server.account.key)
    assert r.status_code == 204 and EXPIRES_HEADER not in r.headers


def test_verify_header_appears_as_the_date_comes_closer(server_factory, clock):
    server = server_factory(env=clock.env)
    body = create_key(server.client, "Ten days", "sandbox", expires_at=rfc3339(now() + 10 * DAY))
    assert EXPIRES_HEADER not in verify(server, body["api_key"]).headers
    clock.set(4 * DAY)
    wait_until(lambda: EXPIRES_HEADER in verify(server, body["api_key"]).headers, CLOCK_TIMEOUT,
               what="the header once 6 days remain")  # fmt: skip
    r = verify(server, body["api_key"])
    assert r.status_code == 204
    assert r.headers[EXPIRES_HEADER] == body["expires_at"]


# --------------------------------------------------------------------------- validation


def test_offsets_and_fractions_are_accepted_and_shown_in_utc(server):
    client = server.client
    base = now() + 30 * DAY
    base -= base % 60
    utc = time.gmtime(base)
    plain = time.strftime("%Y-%m-%dT%H:%M:%S", utc)
    # base written as local times in other zones: +02:00 is two hours later on the wall clock.
    plus2 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + 2 * 3600)) + "+02:00"
    minus0530 = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base - 5 * 3600 - 30 * 60)) + "-05:30"
    for text in (plain + "Z", plain + ".123Z", plus2, minus0530, plain + "+00:00", plain + ".999999-00:00"):
        body = create_key(client, "Offset", "sandbox", expires_at=text)
        assert body["expires_at"] == rfc3339(base), (text, body["expires_at"])
        assert key_by_id(client, body["id"])["expires_at"] == rfc3339(base)


def test_upper_bound_is_ten_years(server):
    client = server.client
    ok = create_key(client, "Nine years", "sandbox", expires_at=rfc3339(now() + TEN_YEARS - DAY))
    assert parse_time(ok["expires_at"]) > now() + TEN_YEARS - 2 * DAY
    before = snapshot(client)
    r = client.post(json={"name": "x", "key_type": "sandbox", "expires_at": rfc3339(now() + TEN_YEARS + DAY)})
    assert_error(r, 422, "validation_error")
    assert "at most 10 years" in r.body["error"]["message"], r.text
    assert snapshot(client) == before


BAD_VALUES = [
    ("date only", "2031-01-01"),
    ("no offset", "2031-01-01T00:00:00"),
    ("garbage", "next tuesday"),
    ("empty", ""),
    ("bad month", "2031-13-01T00:00:00Z"),
    ("bad day", "2031-02-30T00:00:00Z"),
    ("bad hour", "2031-01-01T25:00:00Z"),
    ("bad offset", "2031-01-01T00:00:00+2"),
    ("trailing", "2031-01-01T00:00:00Zjunk"),
    ("number", 1924992000),
    ("float", 1924992000.5),
    ("true", True),
    ("object", {}),
    ("array", ["2031-01-01T00:00:00Z"]),
]


@pytest.mark.parametrize("label,value", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_expires_at_is_refused_on_create_and_patch(shared_server, label, value):
    client = shared_server.client
    key = create_key(client, "Target", "sandbox")
    before = snapshot(client)
    r = client.post(json={"name": "x", "key_type": "sandbox", "expires_at": value})
    assert_error(r, 422, "validation_error")
    assert "RFC 3339" in r.body["error"]["message"], r.text
    r = client.patch(key["id"], json={"expires_at": value})
    assert_error(r, 422, "validation_error")
    assert snapshot(client) == before


@pytest.mark.parametrize("ago", [1, 3600, 400 * DAY])
def test_expires_at_in_the_past_is_refused(shared_server, ago):
    client = shared_server.client
    key = create_key(client, "Target", "sandbox")
    before = snapshot(client)
    r = client.post(json={"name": "x", "key_type": "sandbox", "expires_at": rfc3339(now() - ago)})
    assert_error(r, 422, "validation_error")
    assert "in the future" in r.body["error"]["message"], r.text
    r = client.patch(key["id"], json={"expires_at": rfc3339(now() - ago)})
    assert_error(r, 422, "validation_error")
    assert "in the future" in r.body["error"]["message"], r.text
    assert snapshot(client) == before


# --------------------------------------------------------------------------- PATCH


def test_patch_sets_changes_and_clears_expiry(server):
    client = server.client
    key = create_key(client, "Target", "production")
    at = now() + 2 * DAY
    body = client.update(key["id"], expires_at=rfc3339(at))
    assert_key_object(body)
    assert body["expires_at"] == rfc3339(at)
    assert key_by_id(client, key["id"])["expires_at"] == rfc3339(at)
    r = verify(server, key["api_key"])
    assert r.status_code == 204 and r.headers[EXPIRES_HEADER] == rfc3339(at)
    later = now() + 300 * DAY
    assert client.update(key["id"], expires_at=rfc3339(later))["expires_at"] == rfc3339(later)
    assert client.update(key["id"], expires_at=None)["expires_at"] is None
    assert key_by_id(client, key["id"])["expires_at"] is None
    r = verify(server, key["api_key"])
    assert r.status_code == 204 and EXPIRES_HEADER not in r.headers
    # With other members in the same PATCH.
    both = client.update(key["id"], name="Renamed", expires_at=rfc3339(at))
    assert both["name"] == "Renamed" and both["expires_at"] == rfc3339(at)


def test_patch_expiry_is_audited(admin_server):
    server = admin_server
    client = server.client
    key = create_key(client, "Target", "sandbox")
    at = rfc3339(now() + DAY)
    client.update(key["id"], expires_at=at)
    client.update(key["id"], expires_at=None)
    events = events_for_key(server.admin, key["id"], action="key.updated")
    assert [e["changes"] for e in events] == [{"expires_at": ch(at, None)}, {"expires_at": ch(None, at)}]
    for e in events:
        assert e["actor"]["type"] == "key" and e["actor"]["id"] == server.account.primary_id
        assert e["details"] is None


def test_primary_never_gets_an_expiry(server):
    client = server.client
    primary = server.account.primary_id
    before = snapshot(client)
    r = client.patch(primary, json={"expires_at": rfc3339(now() + DAY)})
    assert_error(r, 409, "primary_key_protected")
    r = client.patch(primary, json={"name": "Renamed", "expires_at": rfc3339(now() + DAY)})
    assert_error(r, 409, "primary_key_protected")
    assert snapshot(client) == before


def test_a_key_with_an_expiry_cannot_become_primary(server):
    client = server.client
    key = create_key(client, "Expiring", "production", expires_at=rfc3339(now() + DAY))
    before = snapshot(client)
    r = client.patch(key["id"], json={"is_primary": True})
    assert_error(r, 409, "primary_key_invalid")
    r = client.patch(key["id"], json={"is_primary": True, "expires_at": rfc3339(now() + 2 * DAY)})
    assert_error(r, 409, "primary_key_invalid")
    assert snapshot(client) == before
    # Once its expiry is cleared it may.
    client.update(key["id"], expires_at=None)
    assert client.update(key["id"], is_primary=True)["is_primary"] is True


def test_operator_issue_key_with_expiry(admin_server):
    server = admin_server
    admin = server.admin
    acct = server.account.id
    at = rfc3339(now() + 5 * DAY)
    body = admin_issue(admin, acct, "Ops issued", "sandbox", expires_at=at)
    assert body["expires_at"] == at
    assert key_by_id(server.client, body["id"])["expires_at"] == at
    before = snapshot(server.client)
    r = admin.post(f"/v1/admin/accounts/{acct}/keys/",
                   json={"name": "P", "key_type": "production", "make_primary": True, "expires_at": at})  # fmt: skip
    assert_error(r, 409, "primary_key_invalid")
    r = admin.post(f"/v1/admin/accounts/{acct}/keys/", json={"name": "P", "key_type": "sandbox", "expires_at": "soon"})
    assert_error(r, 422, "validation_error")
    assert snapshot(server.client) == before


# --------------------------------------------------------------------------- expired keys stay expired


def test_expired_key_cannot_get_a_new_expiry_but_can_be_renamed_and_deleted(server_factory, clock):
    server = server_factory(env=clock.env)
    client = server.client
    key = create_key(client, "Expiring", "sandbox", expires_at=rfc3339(now() + 600))
    clock.set(3600)
    wait_until(lambda: verify(server, key["api_key"]).status_code == 401, CLOCK_TIMEOUT, what="the key to expire")
    before = snapshot(client)
    for value in (rfc3339(clock.now() + DAY), None):
        r = client.patch(key["id"], json={"expires_at": value})
        assert_error(r, 409, "key_expired")
        assert "stays expired" in r.body["error"]["message"], r.text
    assert snapshot(client) == before
    renamed = client.update(key["id"], name="Expired, renamed")
    assert renamed["name"] == "Expired, renamed" and renamed["expires_at"] == key["expires_at"]
    assert_expired(verify(server, key["api_key"]))
    client.remove(key["id"])
    assert key_by_id(client, key["id"]) is None


def test_clock_stepped_back_does_not_revive_an_expired_key(server_factory, clock):
    server = server_factory(env=clock.env)
    client = server.client
    key = create_key(client, "Expiring", "production", expires_at=rfc3339(now() + 1800))
    # A probe whose X-Key-Expires-At header says which side of the clock move the server is on.
    probe = create_key(client, "Clock probe", "sandbox", expires_at=rfc3339(now() + WEEK + 1200))
    assert verify(server, key["api_key"]).status_code == 204
    assert EXPIRES_HEADER not in verify(server, probe["api_key"]).headers

    clock.set(3600)
    wait_until(lambda: verify(server, key["api_key"]).status_code == 401, CLOCK_TIMEOUT, what="the key to expire")
    assert_expired(verify(server, key["api_key"]))
    assert EXPIRES_HEADER in verify(server, probe["api_key"]).headers

    clock.set(0)  # real time: half an hour before expires_at
    wait_until(lambda: EXPIRES_HEADER not in verify(server, probe["api_key"]).headers, CLOCK_TIMEOUT,
               what="the server to read the clock back at 0")  # fmt: skip
    assert_expired(verify(server, key["api_key"]))
    assert_expired(Client(server, key["api_key"]).get())

    # Persisted: the contract writes it to the store within a second.
    time.sleep(LAST_USED_TIMEOUT)
    server.restart()
    assert_expired(verify(server, key["api_key"]))
    assert EXPIRES_HEADER not in verify(server, probe["api_key"]).headers
    assert key_by_id(client, key["id"])["expires_at"] == key["expires_at"]


@postgres_only  # instances sharing one database: PostgreSQL only
def test_expiry_seen_by_one_instance_holds_on_another(server_factory, tmp_path):
    """Instance A's clock is an hour ahead, B's is real time: once A has refused the key as
    expired (and stored that, within a second), B refuses it too once it reloads the key (a
    change to the key made through A) or restarts, although by B's clock it has half an hour left."""
    clock_a = ShiftClock(tmp_path / "clock-a")
    clock_b = ShiftClock(tmp_path / "clock-b")
    a = server_factory(env=clock_a.env)
    b = server_factory(env=clock_b.env, share=a)
    key = create_key(a.client, "Expiring", "production", expires_at=rfc3339(now() + 1800))
    wait_until(lambda: verify(b, key["api_key"]).status_code == 204, 5, what="the key on B")
    clock_a.set(3600)
    wait_until(lambda: verify(a, key["api_key"]).status_code == 401, CLOCK_TIMEOUT, what="the key to expire on A")
    assert_expired(verify(a, key["api_key"]))
    time.sleep(LAST_USED_TIMEOUT)  # contract: in the store within a second
    a.client.update(key["id"], name="Renamed on A")
    wait_until(lambda: key_by_id(b.client, key["id"])["name"] == "Renamed on A", 5, what="the rename on B")
    wait_until(lambda: verify(b, key["api_key"]).status_code != 204, 10, what="B to refuse the key A saw expire")
    assert_expired(verify(b, key["api_key"]))
    b.restart()
    assert_expired(verify(b, key["api_key"]))


# --------------------------------------------------------------------------- expired-key retention


def listed_ids(client):
    return [k["id"] for k in client.list()]


def test_expired_keys_are_deleted_after_retention_and_leaked_ones_never(server_factory, clock):
    server = server_factory(start=False, accounts=(), env=clock.env)
    admin_info = server.create_admin_token()
    server.start(["--expired-retention-days", "1"])
    admin = Client(server, admin_info["token"])
    account, primary = admin_account(admin, "Capped", max_keys=4)
    owner = Client(server, primary["api_key"])
    expiring = create_key(owner, "Expiring", "sandbox", expires_at=rfc3339(now() + 600))
    leaked = create_key(owner, "Leaked", "sandbox", expires_at=rfc3339(now() + 600))
    keeper = create_key(owner, "Keeper", "production")
    assert admin_get_account(admin, account["id"])["key_count"] == 4
    assert_error(owner.post(json={"name": "Over", "key_type": "sandbox"}), 409, "key_limit_reached")
    r = admin.post(LEAKED, json=[{"token": leaked["api_key"], "type": "t", "url": "", "source": "test"}])
    assert r.status_code == 200 and r.body[0]["label"] == "true_positive", r.text

    # Expired, within retention: listed and refused.
    clock.set(3600)
    wait_until(lambda: verify(server, expiring["api_key"]).status_code == 401, CLOCK_TIMEOUT, what="expiry")
    assert_expired(verify(server, expiring["api_key"]))
    time.sleep(1.0)  # several maintenance ticks (0.1 s with the test clock) after the clock change: the sweep has run
    assert {expiring["id"], leaked["id"]} <= set(listed_ids(owner))
    assert admin_get_account(admin, account["id"])["key_count"] == 4

    # Expired for more than a day: the expired key goes, the leaked one stays.
    clock.set(2 * DAY + 3600)
    wait_until(lambda: expiring["id"] not in listed_ids(owner), SWEEP_TIMEOUT, what="the expired key's deletion")
    ids = listed_ids(owner)
    assert leaked["id"] in ids and keeper["id"] in ids and primary["id"] in ids
    left = key_by_id(owner, leaked["id"])
    assert left["leaked_at"] is not None and left["is_active"] is False
    assert_error(verify(server, expiring["api_key"]), 401, "invalid_api_key")
    assert admin_get_account(admin, account["id"])["key_count"] == 3
    assert create_key(owner, "Fits again", "sandbox")["id"] > keeper["id"]
    assert_error(owner.post(json={"name": "Over", "key_type": "sandbox"}), 409, "key_limit_reached")

    events = events_for_key(admin, expiring["id"], action="key.deleted")
    assert len(events) == 1, events
    ev = events[0]
    assert ev["actor"]["type"] == "system"
    assert ev["account_id"] == account["id"]
    assert ev["details"] == {"reason": "expired", "retention_days": 1}
    assert ev["changes"]["name"] == ch("Expiring", None)
    assert events_for_key(admin, leaked["id"], action="key.deleted") == []


def test_default_retention_keeps_expired_keys_listed(server_factory, clock):
    server = server_factory(env=clock.env)
    client = server.client
    key = create_key(client, "Expiring", "sandbox", expires_at=rfc3339(now() + 600))
    clock.set(29 * DAY)
    wait_until(lambda: verify(server, key["api_key"]).status_code == 401, CLOCK_TIMEOUT, what="expiry")
    time.sleep(1.0)  # the sweep that the clock change started has run (ticks of 0.1 s)
    assert key["id"] in listed_ids(client)
    clock.set(31 * DAY)
    wait_until(lambda: key["id"] not in listed_ids(client), SWEEP_TIMEOUT, what="deletion after 30 days")


@pytest.mark.parametrize(
    "flag,value",
    [("--expired-retention-days", v) for v in ("-1", "36501", "abc", "", "1.5")]
    + [("--deactivate-idle-after", v) for v in ("0", "-1", "36501", "x", "")],
)
def test_bad_lifecycle_flags_are_usage_errors(shared_server, flag, value):
    server = shared_server
    p = run_cli("serve", "--db", server.db, "--listen", "127.0.0.1:1", flag, value, *server.common_args())
    assert p.returncode == 2, p.stderr
    assert flag in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
