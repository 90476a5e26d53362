"""Key rotation with a grace period (issue 10; docs/contract.md "Rotation"), black-box, on both
backends.

`POST /v1/account/api-keys/{id}/rotate` (body optional: `{"grace_period_seconds": 0..2592000}`,
default 86400) answers 201 with the new key (shown once): same name and type, `rotated_from`
the old key; the old key gets `expires_at = min(its own, now + grace)`, `rotated_to` the new
key, and stops being primary (the new key is primary in the same answer). Rotation works at the
key cap, refuses an already rotated key (409 already_rotated), follows the BOLA rules of every
key route, and has an operator twin, `POST /v1/admin/accounts/{id}/keys/{key_id}/rotate`. Both
write key.rotated (old key) and key.created (new key).

The end of a grace period is reached with the test clock (APIKEYD_TEST_CLOCK_FILE), never by
waiting. No duration is asserted.
"""

import pytest

from conftest import (
    CREATED_MESSAGE,
    Client,
    assert_error,
    assert_key_format,
    parse_time,
    snapshot,
    wait_until,
)
from lifecycle import (
    CLOCK_TIMEOUT,
    DAY,
    DEFAULT_GRACE,
    MAX_GRACE,
    ShiftClock,
    admin_account,
    admin_get_account,
    admin_rotate_path,
    assert_key_object,
    audit_events,
    ch,
    create_key,
    events_for_key,
    key_by_id,
    now,
    rfc3339,
    rotate_path,
    verify,
)

EXPIRES_HEADER = "X-Key-Expires-At"


@pytest.fixture
def clock(tmp_path):
    return ShiftClock(tmp_path / "test-clock")


def rotate(client, key_id, body=None, **kw):
    if body is None and "data" not in kw:
        return client.post(rotate_path(key_id), **kw)
    if body is not None:
        kw["json"] = body
    return client.post(rotate_path(key_id), **kw)


def rotated(client, key_id, body=None, **kw):
    """A rotation that must succeed: (new key object with api_key, t_before, t_after)."""
    before = now()
    r = rotate(client, key_id, body, **kw)
    after = now()
    assert r.status_code == 201, r.text
    assert_key_object(r.body, shown=True)
    return r.body, before, after


def assert_new_key(new, old, before, after):
    """The 201 body of a rotation of `old` (its listing before the rotation)."""
    assert_key_format(new["api_key"], old["key_type"])
    assert new["message"] == CREATED_MESSAGE
    assert new["key_prefix"] == new["api_key"][:12]
    assert new["name"] == old["name"]
    assert new["key_type"] == old["key_type"]
    assert new["is_active"] is True
    assert new["is_primary"] == old["is_primary"]
    assert new["rotated_from"] == old["id"]
    assert new["rotated_to"] is None and new["leaked_at"] is None and new["last_used"] is None
    assert before <= parse_time(new["created_at"]) <= after
    assert new["id"] > old["id"]


def assert_grace(listed_old, grace, before, after):
    exp = parse_time(listed_old["expires_at"])
    assert before + grace <= exp <= after + grace, (listed_old["expires_at"], before, after, grace)


# --------------------------------------------------------------------------- the rotation


def test_rotate_with_default_grace(server):
    client = server.client
    old = create_key(client, "CI deploys", "production")
    listed_old = key_by_id(client, old["id"])
    new, before, after = rotated(client, old["id"])
    assert_new_key(new, listed_old, before, after)
    assert new["expires_at"] is None
    keys = client.by_id()
    assert "api_key" not in keys[new["id"]]  # shown once
    assert {k: v for k, v in keys[new["id"]].items() if k != "last_used"} == {
        k: v for k, v in new.items() if k not in ("api_key", "message", "last_used")
    }
    o = keys[old["id"]]
    assert o["rotated_to"] == new["id"] and o["rotated_from"] is None
    assert o["is_active"] is True and o["is_primary"] is False and o["name"] == "CI deploys"
    assert_grace(o, DEFAULT_GRACE, before, after)
    # Both work; the old one says when it ends.
    r = verify(server, new["api_key"])
    assert r.status_code == 204 and r.headers["X-Key-Id"] == str(new["id"])
    assert EXPIRES_HEADER not in r.headers
    r = verify(server, old["api_key"])
    assert r.status_code == 204 and r.headers["X-Key-Id"] == str(old["id"])
    assert r.headers[EXPIRES_HEADER] == o["expires_at"]
    assert Client(server, new["api_key"]).get().status_code == 200


def test_rotate_sandbox_key_copies_type(server):
    client = server.client
    old = create_key(client, "Staging", "sandbox")
    listed_old = key_by_id(client, old["id"])
    new, before, after = rotated(client, old["id"], {"grace_period_seconds": 600})
    assert_new_key(new, listed_old, before, after)
    assert new["key_type"] == "sandbox"
    assert_grace(key_by_id(client, old["id"]), 600, before, after)


def test_rotate_with_grace_zero_refuses_the_old_key_at_once(server):
    client = server.client
    old = create_key(client, "Burnt", "production")
    new, before, after = rotated(client, old["id"], {"grace_period_seconds": 0})
    assert_error(verify(server, old["api_key"]), 401, "key_expired")
    assert_error(Client(server, old["api_key"]).get(), 401, "key_expired")
    o = key_by_id(client, old["id"])
    assert before <= parse_time(o["expires_at"]) <= after
    assert o["rotated_to"] == new["id"]
    assert verify(server, new["api_key"]).status_code == 204


def test_rotate_with_max_grace(server):
    client = server.client
    old = create_key(client, "Slow", "sandbox")
    new, before, after = rotated(client, old["id"], {"grace_period_seconds": MAX_GRACE})
    assert_grace(key_by_id(client, old["id"]), MAX_GRACE, before, after)


def test_rotation_never_extends_a_life_and_the_new_key_gets_the_same_lifetime(server):
    client = server.client
    soon = now() + 300
    old = create_key(client, "Short-lived", "sandbox", expires_at=rfc3339(soon))
    new, before, after = rotated(client, old["id"])  # default grace: a day, longer than 300 s
    assert key_by_id(client, old["id"])["expires_at"] == rfc3339(soon)
    lifetime = soon - parse_time(old["created_at"])
    assert parse_time(new["expires_at"]) - parse_time(new["created_at"]) == lifetime

    long = now() + 30 * DAY
    old2 = create_key(client, "Monthly", "production", expires_at=rfc3339(long))
    new2, before, after = rotated(client, old2["id"], {"grace_period_seconds": 3600})
    assert_grace(key_by_id(client, old2["id"]), 3600, before, after)
    assert parse_time(new2["expires_at"]) - parse_time(new2["created_at"]) == long - parse_time(old2["created_at"])


@pytest.mark.parametrize(
    "kw",
    [
        {},  # no body, no Content-Type
        {"data": b"", "headers": {"Content-Type": "application/json"}},  # empty body, JSON type
        {"json": {}},
        {"json": {"grace_period_seconds": DEFAULT_GRACE}},
    ],
    ids=["no body", "empty body", "empty object", "explicit default"],
)
def test_rotate_default_grace_bodies(shared_server, kw):
    client = shared_server.client
    old = create_key(client, "K", "sandbox")
    before = now()
    r = client.post(rotate_path(old["id"]), **kw)
    after = now()
    assert r.status_code == 201, r.text
    assert_grace(key_by_id(client, old["id"]), DEFAULT_GRACE, before, after)


BAD_BODIES = [
    ("negative", {"json": {"grace_period_seconds": -1}}, 422, "validation_error"),
    ("too long", {"json": {"grace_period_seconds": MAX_GRACE + 1}}, 422, "validation_error"),
    ("huge", {"json": {"grace_period_seconds": 10**20}}, 422, "validation_error"),
    ("fraction", {"json": {"grace_period_seconds": 1.5}}, 422, "validation_error"),
    ("string", {"json": {"grace_period_seconds": "60"}}, 422, "validation_error"),
    ("null", {"json": {"grace_period_seconds": None}}, 422, "validation_error"),
    ("bool", {"json": {"grace_period_seconds": True}}, 422, "validation_error"),
    ("unknown member", {"json": {"grace": 60}}, 422, "validation_error"),
    ("extra member", {"json": {"grace_period_seconds": 60, "name": "x"}}, 422, "validation_error"),
    ("array", {"json": [60]}, 422, "validation_error"),
    ("bad json", {"data": b'{"grace_period_seconds": ', "headers": {"Content-Type": "application/json"}},
     400, "invalid_json"),
    ("text body", {"data": b"grace=60", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
    ("form body", {"data": b"grace_period_seconds=60", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
     415, "unsupported_media_type"),
]  # fmt: skip


@pytest.mark.parametrize("label,kw,status,code", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_rotate_bad_bodies_change_nothing(shared_server, label, kw, status, code):
    client = shared_server.client
    old = create_key(client, "K", "production")
    before = snapshot(client)
    r = client.post(rotate_path(old["id"]), **kw)
    assert_error(r, status, code)
    assert snapshot(client) == before


# --------------------------------------------------------------------------- primary


def test_rotate_primary_with_grace_then_the_old_one_ends(server_factory, clock):
    server = server_factory(env=clock.env)
    client = server.client
    primary = key_by_id(client, server.account.primary_id)
    new, before, after = rotated(client, primary["id"], {"grace_period_seconds": 3600})
    assert_new_key(new, primary, before, after)
    assert new["is_primary"] is True and new["expires_at"] is None
    keys = client.by_id()
    assert [k["id"] for k in keys.values() if k["is_primary"]] == [new["id"]]
    o = keys[primary["id"]]
    assert o["is_primary"] is False and o["is_active"] is True and o["rotated_to"] == new["id"]
    assert_grace(o, 3600, before, after)
    # The old primary keeps working during its grace...
    assert verify(server, server.account.key).status_code == 204
    assert client.get().status_code == 200
    # ...and not after it.
    clock.set(3600 + 60)
    wait_until(lambda: verify(server, server.account.key).status_code == 401, CLOCK_TIMEOUT, what="the grace to end")
    assert_error(verify(server, server.account.key), 401, "key_expired")
    newc = Client(server, new["api_key"])
    assert verify(server, new["api_key"]).status_code == 204
    keys = newc.by_id()
    assert keys[new["id"]]["is_primary"] is True
    assert keys[primary["id"]]["is_primary"] is False
    # The new primary cannot be given an expiry; the old one can be deleted now.
    assert_error(newc.patch(new["id"], json={"expires_at": rfc3339(clock.now() + DAY)}), 409, "primary_key_protected")
    newc.remove(primary["id"])


def test_rotate_primary_default_grace(server):
    client = server.client
    new, before, after = rotated(client, server.account.primary_id)
    assert new["is_primary"] is True
    assert_grace(key_by_id(client, server.account.primary_id), DEFAULT_GRACE, before, after)


# --------------------------------------------------------------------------- refusals


def test_rotating_a_rotated_key_is_refused(server):
    client = server.client
    old = create_key(client, "K", "production")
    new, _, _ = rotated(client, old["id"])
    before = snapshot(client)
    assert_error(rotate(client, old["id"]), 409, "already_rotated")
    # also asked by the old key itself during its grace
    assert_error(rotate(Client(server, old["api_key"]), old["id"]), 409, "already_rotated")
    assert snapshot(client) == before
    # the new key may be rotated in turn
    newer, _, _ = rotated(client, new["id"])
    assert newer["rotated_from"] == new["id"]
    assert key_by_id(client, new["id"])["rotated_to"] == newer["id"]
    assert key_by_id(client, old["id"])["rotated_to"] == new["id"]


def test_rotating_a_key_after_its_grace_is_refused(server):
    """A key whose grace is over (grace 0) has rotated_to set: 409 already_rotated."""
    client = server.client
    old = create_key(client, "K", "sandbox")
    rotated(client, old["id"], {"grace_period_seconds": 0})
    assert_error(rotate(client, old["id"]), 409, "already_rotated")


def test_rotation_works_at_the_key_cap(admin_server):
    server = admin_server
    admin = server.admin
    account, primary = admin_account(admin, "Capped", max_keys=2)
    owner = Client(server, primary["api_key"])
    k = create_key(owner, "Second", "production")
    assert_error(owner.post(json={"name": "Third", "key_type": "sandbox"}), 409, "key_limit_reached")
    new, _, _ = rotated(owner, k["id"])
    assert admin_get_account(admin, account["id"])["key_count"] == 3
    assert len(owner.list()) == 3
    assert_error(owner.post(json={"name": "Third", "key_type": "sandbox"}), 409, "key_limit_reached")
    # The primary too, over the cap.
    newp, _, _ = rotated(owner, primary["id"], {"grace_period_seconds": 60})
    assert newp["is_primary"] is True
    assert admin_get_account(admin, account["id"])["key_count"] == 4
    owner = Client(server, newp["api_key"])
    owner.remove(k["id"])
    owner.remove(primary["id"])
    assert admin_get_account(admin, account["id"])["key_count"] == 2
    assert_error(owner.post(json={"name": "Third", "key_type": "sandbox"}), 409, "key_limit_reached")
    owner.remove(new["id"])
    create_key(owner, "Fits", "sandbox")


def test_rotation_stops_at_twice_the_cap(admin_server):
    """Rotating in a loop cannot grow an account without bound: past twice its cap, 409."""
    admin = admin_server.admin
    account, primary = admin_account(admin, "Looping", max_keys=2)
    owner = Client(admin_server, primary["api_key"])
    k = create_key(owner, "Second", "production")
    for _ in range(2):  # 2 -> 4 keys: twice the cap
        k, _, _ = rotated(owner, k["id"], {"grace_period_seconds": 0})
    before = snapshot(owner)
    assert_error(rotate(owner, k["id"], {"grace_period_seconds": 0}), 409, "key_limit_reached")
    assert snapshot(owner) == before
    assert admin_get_account(admin, account["id"])["key_count"] == 4


def test_a_rotated_key_only_winds_down(server):
    """During its grace the old key's expiry may move sooner, never later or to null, and it cannot be primary again."""
    client = server.client
    old = server.account.primary_id
    new, _, _ = rotated(client, old, {"grace_period_seconds": 3600})
    client = Client(server, new["api_key"])
    listed = {k["id"]: k for k in client.list()}[old]
    before = snapshot(client)
    assert_error(client.patch(old, json={"expires_at": None}), 409, "already_rotated")
    later = rfc3339(parse_time(listed["expires_at"]) + 60)
    assert_error(client.patch(old, json={"expires_at": later}), 409, "already_rotated")
    assert_error(client.patch(old, json={"is_primary": True}), 409, "already_rotated")
    assert snapshot(client) == before
    sooner = rfc3339(parse_time(listed["expires_at"]) - 60)
    r = client.patch(old, json={"expires_at": sooner})
    assert r.status_code == 200, r.text
    assert r.body["expires_at"] == sooner


def test_rotate_bola(server_factory):
    server = server_factory(accounts=("acme", "globex"))
    acme, globex = server.accounts
    a_prod = create_key(acme.client, "A prod", "production")
    a_sand = create_key(acme.client, "A sand", "sandbox")
    a_sand2 = create_key(acme.client, "A sand 2", "sandbox")
    g_key = create_key(globex.client, "G", "sandbox")
    sand = Client(server, a_sand["api_key"])
    before_a, before_g = snapshot(acme.client), snapshot(globex.client)
    # another account's key: as if it did not exist
    assert_error(rotate(acme.client, g_key["id"]), 404, "not_found")
    assert_error(rotate(globex.client, a_prod["id"]), 404, "not_found")
    assert_error(rotate(globex.client, acme.primary_id), 404, "not_found")
    # a sandbox key may not rotate production keys
    assert_error(rotate(sand, a_prod["id"]), 403, "forbidden")
    assert_error(rotate(sand, acme.primary_id), 403, "forbidden")
    # unknown and non-canonical ids
    for key_id in ("999999", "0", "01", "-1", "abc", "1.0", "+1", str(2**63), str(2**64 + 1)):
        assert_error(acme.client.post(f"/v1/account/api-keys/{key_id}/rotate"), 404, "not_found")
    # no key, a forged key
    r = Client(server, None).post(rotate_path(a_prod["id"]))
    assert_error(r, 401, "missing_api_key")
    assert snapshot(acme.client) == before_a and snapshot(globex.client) == before_g
    # a sandbox key rotating a sandbox key (and itself) is fine
    new, _, _ = rotated(sand, a_sand2["id"])
    assert new["key_type"] == "sandbox"
    mine, _, _ = rotated(sand, a_sand["id"])
    assert mine["rotated_from"] == a_sand["id"]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_rotate_other_methods_are_405(shared_server, method):
    client = shared_server.client
    k = create_key(client, "K", "sandbox")
    before = snapshot(client)
    r = client.request(method, rotate_path(k["id"]))
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "POST"
    assert snapshot(client) == before


def test_trailing_slash_is_accepted(server):
    client = server.client
    k = create_key(client, "K", "sandbox")
    r = client.post(rotate_path(k["id"]) + "/")
    assert r.status_code == 201, r.text


def test_rotating_a_deleted_key_is_404(server):
    client = server.client
    k = create_key(client, "K", "sandbox")
    client.remove(k["id"])
    assert_error(rotate(client, k["id"]), 404, "not_found")


# --------------------------------------------------------------------------- operators


def test_operator_rotate(admin_server):
    server = admin_server
    admin = server.admin
    acme = server.account
    k = create_key(acme.client, "Ops rotates", "production")
    listed = key_by_id(acme.client, k["id"])
    before = now()
    r = admin.post(admin_rotate_path(acme.id, k["id"]), json={"grace_period_seconds": 120})
    after = now()
    assert r.status_code == 201, r.text
    assert_key_object(r.body, shown=True)
    assert_new_key(r.body, listed, before, after)
    assert_grace(key_by_id(acme.client, k["id"]), 120, before, after)
    assert verify(server, r.body["api_key"]).status_code == 204
    # no body at all
    r2 = admin.post(admin_rotate_path(acme.id, r.body["id"]))
    assert r2.status_code == 201, r2.text
    # the primary
    r3 = admin.post(admin_rotate_path(acme.id, acme.primary_id), json={"grace_period_seconds": 0})
    assert r3.status_code == 201 and r3.body["is_primary"] is True, r3.text
    assert_error(verify(server, acme.key), 401, "key_expired")
    assert_error(admin.post(admin_rotate_path(acme.id, k["id"])), 409, "already_rotated")


def test_operator_rotate_refusals(admin_server):
    server = admin_server
    admin = server.admin
    acme = server.account
    other, other_primary = admin_account(admin, "Other")
    k = create_key(acme.client, "K", "production")
    before = snapshot(acme.client)
    # a key of another account through this account's path, and the other way round
    assert_error(admin.post(admin_rotate_path(other["id"], k["id"])), 404, "not_found")
    assert_error(admin.post(admin_rotate_path(acme.id, other_primary["id"])), 404, "not_found")
    assert_error(admin.post(admin_rotate_path(999999, k["id"])), 404, "not_found")
    assert_error(admin.post(admin_rotate_path(acme.id, 999999)), 404, "not_found")
    assert_error(admin.post(admin_rotate_path(acme.id, k["id"]), json={"grace_period_seconds": -5}), 422,
                 "validation_error")  # fmt: skip
    assert_error(admin.post(admin_rotate_path(acme.id, k["id"]), data=b"{", headers={"Content-Type": "application/json"}),
                 400, "invalid_json")  # fmt: skip
    assert_error(admin.post(admin_rotate_path(acme.id, k["id"]), data=b"x", headers={"Content-Type": "text/plain"}),
                 415, "unsupported_media_type")  # fmt: skip
    # an account key is no admin token; no token at all
    assert_error(admin.post(admin_rotate_path(acme.id, k["id"]), key=acme.key), 401, "invalid_admin_token")
    assert_error(admin.post(admin_rotate_path(acme.id, k["id"]), key=None), 401, "missing_admin_token")
    r = admin.request("GET", admin_rotate_path(acme.id, k["id"]))
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "POST"
    assert snapshot(acme.client) == before
    assert snapshot(Client(server, other_primary["api_key"])) == [
        {f: v for f, v in other_primary.items() if f not in ("api_key", "message", "last_used")}
    ]


# --------------------------------------------------------------------------- audit


def test_rotation_is_audited(admin_server):
    server = admin_server
    admin = server.admin
    acme = server.account
    k = create_key(acme.client, "Audited", "production")
    new, _, _ = rotated(acme.client, k["id"], {"grace_period_seconds": 60}, headers={"X-Request-Id": "r-rotate-k"})
    old_exp = key_by_id(acme.client, k["id"])["expires_at"]

    ev = events_for_key(admin, k["id"], action="key.rotated")
    assert len(ev) == 1, ev
    ev = ev[0]
    assert ev["account_id"] == acme.id
    assert ev["actor"] == {"type": "key", "id": acme.primary_id, "prefix": acme.key[:12]}
    assert ev["changes"] == {"expires_at": ch(None, old_exp), "rotated_to": ch(None, new["id"])}
    assert ev["request_id"] == "r-rotate-k" and ev["client_ip"] == "127.0.0.1"
    assert ev["details"] is None
    created = events_for_key(admin, new["id"], action="key.created")
    assert len(created) == 1, created
    c = created[0]
    assert c["actor"] == ev["actor"] and c["request_id"] == "r-rotate-k"
    assert c["changes"]["rotated_from"] == ch(None, k["id"])
    assert c["changes"]["name"] == ch(None, "Audited")
    assert c["changes"]["key_type"] == ch(None, "production")

    # The primary, by an operator: is_primary in the changes, actor the admin token.
    token = admin.token_info
    newp = admin.post(admin_rotate_path(acme.id, acme.primary_id), json={"grace_period_seconds": 30}).body
    pev = events_for_key(admin, acme.primary_id, action="key.rotated")
    assert len(pev) == 1, pev
    pev = pev[0]
    assert pev["actor"] == {"type": "admin_token", "id": token["id"], "prefix": token["token"][:13]}
    assert pev["changes"]["is_primary"] == ch(True, False)
    assert pev["changes"]["rotated_to"] == ch(None, newp["id"])
    assert pev["changes"]["expires_at"]["old"] is None
    pc = events_for_key(admin, newp["id"], action="key.created")
    assert len(pc) == 1 and pc[0]["changes"]["is_primary"] == ch(None, True)
    assert pc[0]["changes"]["rotated_from"] == ch(None, acme.primary_id)
    # ?action=key.rotated lists exactly the two rotations, newest first
    assert [e["target"]["id"] for e in audit_events(admin, action="key.rotated")] == [acme.primary_id, k["id"]]
