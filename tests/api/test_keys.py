"""Key management: list, create, update, delete; the primary-key invariant; sandbox keys; last_used."""

import time

import pytest

from conftest import (
    CREATED_MESSAGE,
    KEY_FIELDS,
    LAST_USED_TIMEOUT,
    Client,
    assert_error,
    assert_key_format,
    parallel,
    parse_time,
    snapshot,
    wait_until,
)


def primaries(keys):
    return [k["id"] for k in keys if k["is_primary"]]


def assert_invariant(keys):
    """Exactly one primary, and it is active and production."""
    p = [k for k in keys if k["is_primary"]]
    assert len(p) == 1, keys
    assert p[0]["is_active"] is True and p[0]["key_type"] == "production"


# --------------------------------------------------------------------------- list


def test_new_account_lists_its_primary_key(server):
    info = server.account.info
    keys = server.client.list()
    assert len(keys) == 1
    assert {k: v for k, v in keys[0].items() if k != "last_used"} == {k: info[k] for k in KEY_FIELDS if k != "last_used"}
    assert keys[0]["key_prefix"] == server.account.key[:12]


def test_list_is_ordered_by_id_and_never_shows_full_keys(client):
    created = [client.create(f"k{i}", "sandbox" if i % 2 else "production") for i in range(5)]
    r = client.get()
    ids = [k["id"] for k in r.body["api_keys"]]
    assert ids == sorted(ids) and len(set(ids)) == 6
    for c in created:
        assert c["api_key"] not in r.text
        assert c["api_key"][12:] not in r.text


# --------------------------------------------------------------------------- create


@pytest.mark.parametrize("key_type", ["production", "sandbox"])
def test_create(client, key_type):
    before = time.time()
    r = client.post(json={"name": "CI/CD Pipeline", "key_type": key_type})
    after = time.time()
    assert r.status_code == 201
    body = r.body
    assert body["name"] == "CI/CD Pipeline"
    assert body["key_type"] == key_type
    assert body["is_active"] is True and body["is_primary"] is False and body["last_used"] is None
    assert body["message"] == CREATED_MESSAGE
    assert_key_format(body["api_key"], key_type)
    assert body["key_prefix"] == body["api_key"][:12]
    assert before - 2 <= parse_time(body["created_at"]) <= after + 2
    listed = client.by_id()[body["id"]]
    assert listed == {k: body[k] for k in KEY_FIELDS}
    assert_invariant(client.list())
    # The new key works.
    assert Client(client.server, body["api_key"]).get().status_code == 200


def test_created_keys_are_distinct_and_random(client):
    keys = [client.create(f"k{i}", "sandbox")["api_key"] for i in range(10)]
    assert len(set(keys)) == 10
    assert len({k[8:40] for k in keys}) == 10
    assert len({k[8:12] for k in keys}) > 1  # display prefixes differ too (1 in 62**4*... to fail)


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "x" * 100,
        "é" * 100,
        "😀" * 100,
        "e\u0301" * 50,
        "Ünïcødé 名前 😀",
        'quote " backslash \\ slash / tab-free',
        "  padded  ",
        "a\u00a0b",
        "<script>alert(1)</script>",
        "null",
    ],
    ids=["1", "100ascii", "100e-acute", "100emoji", "combining", "mixed", "escapes", "padded", "nbsp", "html", "null"],
)
def test_create_name_round_trips(client, name):
    created = client.create(name, "sandbox")
    assert created["name"] == name
    assert client.by_id()[created["id"]]["name"] == name


def test_create_accepts_charset_parameter_and_escaped_unicode(client):
    r = client.post(
        data=b'{"name":"caf\\u00e9 \\ud83d\\ude00","key_type":"sandbox"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 201
    assert r.body["name"] == "café 😀"


def test_create_ignores_query_string(client):
    r = client.post(COLLECTION_Q, json={"name": "q", "key_type": "sandbox"})
    assert r.status_code == 201


COLLECTION_Q = "/v1/account/api-keys/?key_type=production&name=evil"


# --------------------------------------------------------------------------- update


def test_patch_name(client):
    key = client.create("Old", "sandbox")
    updated = client.update(key["id"], name="Updated Key Name")
    assert updated == {k: key[k] for k in KEY_FIELDS} | {"name": "Updated Key Name"}
    assert client.by_id()[key["id"]] == updated


def test_patch_seed_example_name_and_deactivate(client):
    key = client.create("Development Key", "sandbox")
    updated = client.update(key["id"], name="Updated Key Name", is_active=False)
    assert updated["name"] == "Updated Key Name" and updated["is_active"] is False
    assert client.by_id()[key["id"]] == updated
    again = client.update(key["id"], is_active=True)
    assert again["is_active"] is True and again["name"] == "Updated Key Name"


def test_patch_same_values_is_ok(client):
    primary = client.server.account.primary_id
    before = snapshot(client)
    assert client.update(primary, is_primary=True)["is_primary"] is True
    assert client.update(primary, is_active=True)["is_active"] is True
    key = client.create("k", "sandbox")
    assert client.update(key["id"], is_primary=False)["is_primary"] is False
    assert [k for k in snapshot(client) if k["id"] != key["id"]] == before


def test_delete(client):
    key = client.create("Doomed", "production")
    r = client.delete(key["id"])
    assert r.status_code == 204 and r.content == b""
    assert key["id"] not in client.by_id()


def test_delete_inactive_key(client):
    key = client.create("Doomed", "sandbox")
    client.update(key["id"], is_active=False)
    client.remove(key["id"])
    assert key["id"] not in client.by_id()


# --------------------------------------------------------------------------- primary invariant


def test_primary_cannot_be_deleted(client):
    primary = client.server.account.primary_id
    before = snapshot(client)
    assert_error(client.delete(primary), 409, "primary_key_protected")
    assert snapshot(client) == before


@pytest.mark.parametrize(
    "body",
    [
        {"is_active": False},
        {"is_primary": False},
        {"name": "Renamed", "is_active": False},
        {"name": "Renamed", "is_primary": False},
        {"is_active": False, "is_primary": True},
    ],
)
def test_primary_cannot_be_deactivated_or_demoted(client, body):
    primary = client.server.account.primary_id
    before = snapshot(client)
    r = client.patch(primary, json=body)
    assert r.status_code == 409
    assert r.body["error"]["code"] in ("primary_key_protected", "primary_key_invalid")
    if body.get("is_primary") is not True:
        assert r.body["error"]["code"] == "primary_key_protected"
    assert snapshot(client) == before
    assert client.get().status_code == 200


def test_sandbox_key_cannot_be_primary(client):
    key = client.create("Sandbox", "sandbox")
    before = snapshot(client)
    assert_error(client.patch(key["id"], json={"is_primary": True}), 409, "primary_key_invalid")
    assert_error(client.patch(key["id"], json={"is_primary": True, "name": "x"}), 409, "primary_key_invalid")
    assert snapshot(client) == before


def test_inactive_key_cannot_be_primary(client):
    key = client.create("Prod", "production")
    client.update(key["id"], is_active=False)
    before = snapshot(client)
    assert_error(client.patch(key["id"], json={"is_primary": True}), 409, "primary_key_invalid")
    assert snapshot(client) == before


def test_deactivating_in_the_same_patch_makes_primary_invalid(client):
    key = client.create("Prod", "production")
    before = snapshot(client)
    assert_error(client.patch(key["id"], json={"is_primary": True, "is_active": False}), 409, "primary_key_invalid")
    assert snapshot(client) == before


def test_activating_in_the_same_patch_allows_primary(client):
    old = client.server.account.primary_id
    key = client.create("Prod", "production")
    client.update(key["id"], is_active=False)
    updated = client.update(key["id"], is_active=True, is_primary=True)
    assert updated["is_active"] is True and updated["is_primary"] is True
    keys = client.by_id()
    assert keys[old]["is_primary"] is False
    assert_invariant(keys.values())


def test_move_primary_then_delete_old_one(server):
    """The seed's recipe: create a new key, set it as primary, then delete the old one."""
    client = server.client
    old = server.account.primary_id
    new = client.create("New Primary", "production")
    moved = client.update(new["id"], is_primary=True)
    assert moved["is_primary"] is True and moved["is_active"] is True
    keys = client.by_id()
    assert primaries(keys.values()) == [new["id"]]
    assert keys[old]["is_primary"] is False and keys[old]["is_active"] is True
    # The old primary is an ordinary key now.
    client.remove(old)
    assert_error(Client(server, server.account.key).get(), 401, "invalid_api_key")
    new_client = Client(server, new["api_key"])
    assert_invariant(new_client.list())
    assert_error(new_client.delete(new["id"]), 409, "primary_key_protected")


def test_move_primary_back_and_forth(client):
    first = client.server.account.primary_id
    second = client.create("Second", "production")["id"]
    for target in (second, first, second, first):
        client.update(target, is_primary=True)
        keys = client.list()
        assert primaries(keys) == [target]
        assert_invariant(keys)


def test_concurrent_primary_moves_leave_exactly_one_primary(server):
    client = server.client
    targets = [server.account.primary_id] + [client.create(f"P{i}", "production")["id"] for i in range(4)]
    moves = [targets[i % len(targets)] for i in range(40)]

    def move(target):
        r = Client(server, server.account.key).patch(target, json={"is_primary": True})
        assert r.status_code == 200, r.text
        return r.body

    parallel(move, moves, workers=10)
    keys = client.list()
    assert_invariant(keys)
    assert len(keys) == 5 and all(k["is_active"] for k in keys)


# --------------------------------------------------------------------------- sandbox keys


@pytest.fixture
def sandbox(server):
    """(production client, sandbox client, ids) with a mix of keys in the account."""
    prod = server.client
    sand_key = prod.create("Development Key", "sandbox")
    other_sand = prod.create("Staging Environment", "sandbox")
    other_prod = prod.create("CI/CD Pipeline", "production")
    sand = Client(server, sand_key["api_key"])
    ids = {
        "primary": server.account.primary_id,
        "self": sand_key["id"],
        "sandbox": other_sand["id"],
        "production": other_prod["id"],
    }
    return prod, sand, ids


def test_sandbox_lists_only_sandbox_keys(sandbox):
    prod, sand, ids = sandbox
    prod.update(ids["sandbox"], is_active=False)
    listed = snapshot(sand)
    assert [k["id"] for k in listed] == [ids["self"], ids["sandbox"]]
    assert all(k["key_type"] == "sandbox" for k in listed)
    everything = snapshot(prod)
    assert [k for k in everything if k["key_type"] == "sandbox"] == listed
    assert {k["id"] for k in everything} == set(ids.values())


def test_sandbox_creates_sandbox_keys_only(sandbox):
    prod, sand, ids = sandbox
    created = sand.create("From Sandbox", "sandbox")
    assert_key_format(created["api_key"], "sandbox")
    before = snapshot(prod)
    assert_error(sand.post(json={"name": "Escalate", "key_type": "production"}), 403, "forbidden")
    assert snapshot(prod) == before


@pytest.mark.parametrize("target", ["primary", "production"])
@pytest.mark.parametrize(
    "method,body",
    [
        ("PATCH", {"name": "pwned"}),
        ("PATCH", {"is_active": False}),
        ("PATCH", {"is_primary": True}),
        ("PATCH", {"is_active": True}),
        ("DELETE", None),
    ],
)
def test_sandbox_cannot_change_or_delete_production_keys(sandbox, target, method, body):
    prod, sand, ids = sandbox
    before = snapshot(prod)
    kw = {"json": body} if body is not None else {}
    r = sand.request(method, f"/v1/account/api-keys/{ids[target]}/", **kw)
    assert_error(r, 403, "forbidden")
    assert snapshot(prod) == before


def test_sandbox_manages_sandbox_keys(sandbox):
    prod, sand, ids = sandbox
    assert sand.update(ids["sandbox"], name="Renamed", is_active=False)["is_active"] is False
    assert sand.update(ids["sandbox"], is_active=True)["is_active"] is True
    assert_error(sand.patch(ids["sandbox"], json={"is_primary": True}), 409, "primary_key_invalid")
    sand.remove(ids["sandbox"])
    assert ids["sandbox"] not in prod.by_id()
    assert_invariant(prod.list())


def test_production_key_manages_everything(sandbox):
    prod, sand, ids = sandbox
    assert prod.update(ids["self"], name="By Prod")["name"] == "By Prod"
    assert prod.update(ids["production"], name="By Prod 2")["name"] == "By Prod 2"
    prod.remove(ids["sandbox"])
    prod.remove(ids["self"])
    assert_error(sand.get(), 401, "invalid_api_key")


def test_non_primary_production_key_has_full_access(server):
    prod = server.client
    other = prod.create("Second Prod", "production")
    second = Client(server, other["api_key"])
    created = second.create("By Second", "production")
    assert second.update(created["id"], name="renamed")["name"] == "renamed"
    second.update(other["id"], is_primary=True)
    assert primaries(prod.list()) == [other["id"]]
    second.remove(server.account.primary_id)
    assert_invariant(second.list())


# --------------------------------------------------------------------------- last_used


def test_last_used_null_then_set_and_visible(server):
    admin = server.client
    t0 = time.time()
    created = admin.create("Usage", "sandbox")
    assert created["last_used"] is None
    assert admin.by_id()[created["id"]]["last_used"] is None
    user = Client(server, created["api_key"])
    assert user.get().status_code == 200
    t1 = time.time()

    def seen():
        return admin.by_id()[created["id"]]["last_used"]

    value = wait_until(seen, LAST_USED_TIMEOUT, what="last_used in the list")
    assert int(t0) - 2 <= parse_time(value) <= t1 + 2


def test_last_used_set_by_refused_but_authenticated_requests(server):
    """Every authenticated request counts, including ones answered 4xx after auth."""
    admin = server.client
    created = admin.create("Usage", "sandbox")
    user = Client(server, created["api_key"])
    assert_error(user.post(json={"name": ""}), 422, "validation_error")
    wait_until(lambda: admin.by_id()[created["id"]]["last_used"], LAST_USED_TIMEOUT, what="last_used in the list")


def test_primary_last_used_visible(server):
    client = server.client
    assert client.get().status_code == 200
    wait_until(lambda: client.by_id()[server.account.primary_id]["last_used"], LAST_USED_TIMEOUT, what="last_used")


def test_last_used_advances(server):
    admin = server.client
    created = admin.create("Usage", "sandbox")
    user = Client(server, created["api_key"])
    user.get()
    first = wait_until(lambda: admin.by_id()[created["id"]]["last_used"], LAST_USED_TIMEOUT, what="last_used")
    # Wait for the clock to pass the next whole second, use the key again, see it move.
    wait_until(lambda: int(time.time()) > parse_time(first), 3.0, what="next second")
    user.get()
    wait_until(
        lambda: parse_time(admin.by_id()[created["id"]]["last_used"]) > parse_time(first),
        LAST_USED_TIMEOUT,
        what="newer last_used",
    )
