"""Authentication: 401 codes, WWW-Authenticate, deactivated and deleted keys."""

import pytest

from conftest import COLLECTION, Client, assert_error, forge_key, snapshot


def test_no_authorization_header(shared_server):
    assert_error(Client(shared_server).get(), 401, "missing_api_key")


def test_empty_bearer_token(shared_server):
    r = Client(shared_server).get(headers={"Authorization": "Bearer "})
    assert_error(r, 401, "missing_api_key")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer garbage",
        "Bearer ml_prod_",
        "Basic dXNlcjpwYXNz",
        "Token {key}",
        "{key}",
        "Bearer {key}x",
        "Bearer {key_lower}",
        "Bearer {bad_checksum}",
        "Bearer {forged_prod}",
        "Bearer {forged_sand}",
        "Bearer {other_brand}",
    ],
)
def test_unknown_or_malformed_key(shared_server, authorization):
    key = shared_server.account.key
    bad_checksum = key[:-1] + ("A" if key[-1] != "A" else "B")
    value = authorization.format(
        key=key,
        key_lower=key[:8] + key[8:].swapcase(),
        bad_checksum=bad_checksum,
        forged_prod=forge_key("prod"),
        forged_sand=forge_key("sand"),
        other_brand=forge_key("prod", brand="zz", random_part=key[8:40]),
    )
    r = Client(shared_server).get(headers={"Authorization": value})
    assert_error(r, 401, "invalid_api_key")
    assert key not in r.text


@pytest.mark.parametrize("method,path", [("GET", COLLECTION), ("POST", COLLECTION), ("PATCH", COLLECTION + "1/"), ("DELETE", COLLECTION + "1/")])
def test_every_v1_route_needs_a_key(shared_server, method, path):
    before = snapshot(shared_server.client)
    body = {"json": {"name": "x", "key_type": "sandbox"} if method == "POST" else {"name": "x"}}
    kw = body if method in ("POST", "PATCH") else {}
    assert_error(Client(shared_server).request(method, path, **kw), 401, "missing_api_key")
    assert_error(Client(shared_server, forge_key()).request(method, path, **kw), 401, "invalid_api_key")
    assert snapshot(shared_server.client) == before


def test_valid_key_works_on_every_route(client):
    assert client.get().status_code == 200
    assert client.get(COLLECTION.rstrip("/")).status_code == 200
    created = client.create("k", "sandbox")
    assert client.update(created["id"], name="k2")["name"] == "k2"
    client.remove(created["id"])


def test_deactivated_key_refused_on_very_next_request(server):
    admin = server.client
    created = admin.create("Worker", "production")
    worker = Client(server, created["api_key"])
    assert worker.get().status_code == 200  # also opens a keep-alive connection
    admin.update(created["id"], is_active=False)
    assert_error(worker.get(), 401, "key_inactive")
    assert_error(worker.post(json={"name": "x", "key_type": "sandbox"}), 401, "key_inactive")
    assert_error(worker.patch(created["id"], json={"is_active": True}), 401, "key_inactive")
    assert_error(Client(server, created["api_key"]).get(), 401, "key_inactive")
    # Reactivated: accepted again on its very next request.
    admin.update(created["id"], is_active=True)
    assert worker.get().status_code == 200


def test_key_deactivating_itself(server):
    admin = server.client
    created = admin.create("Self", "sandbox")
    me = Client(server, created["api_key"])
    r = me.patch(created["id"], json={"is_active": False})
    assert r.status_code == 200 and r.body["is_active"] is False
    assert_error(me.get(), 401, "key_inactive")
    assert admin.by_id()[created["id"]]["is_active"] is False


def test_deleted_key_refused_on_very_next_request(server):
    admin = server.client
    created = admin.create("Temp", "production")
    temp = Client(server, created["api_key"])
    assert temp.get().status_code == 200
    admin.remove(created["id"])
    assert_error(temp.get(), 401, "invalid_api_key")
    assert_error(Client(server, created["api_key"]).get(), 401, "invalid_api_key")


def test_key_deleting_itself(server):
    created = server.client.create("Temp", "sandbox")
    temp = Client(server, created["api_key"])
    r = temp.delete(created["id"])
    assert r.status_code == 204
    assert_error(temp.get(), 401, "invalid_api_key")
    assert created["id"] not in server.client.by_id()


def test_deleted_inactive_key_is_invalid_not_inactive(server):
    created = server.client.create("Temp", "sandbox")
    server.client.update(created["id"], is_active=False)
    server.client.remove(created["id"])
    assert_error(Client(server, created["api_key"]).get(), 401, "invalid_api_key")


def test_error_bodies_never_echo_the_key(shared_server):
    key = shared_server.account.key
    r = Client(shared_server, key + "x").get()
    assert key not in r.text and key[12:] not in r.text
