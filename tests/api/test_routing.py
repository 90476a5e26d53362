"""Routing: trailing slash, query string, 404 for unknown paths and ids, 405 with Allow,
and the contract's processing order (405 -> 401 -> 404 -> 403 -> 413 -> 415 -> 400 -> 422 -> 403 -> 409)."""

import pytest

from conftest import COLLECTION, Client, assert_error, snapshot

BASE = COLLECTION.rstrip("/")


@pytest.mark.parametrize("path", [COLLECTION, BASE, COLLECTION + "?x=1", BASE + "?page=2&limit=1", COLLECTION + "?"])
def test_list_with_and_without_trailing_slash_and_query(shared_server, path):
    r = shared_server.client.get(path)
    assert r.status_code == 200
    assert [k["id"] for k in r.body["api_keys"]] == [shared_server.account.primary_id]


@pytest.mark.parametrize("path", [COLLECTION, BASE, BASE + "?x=1"])
def test_create_with_and_without_trailing_slash(client, path):
    r = client.post(path, json={"name": path, "key_type": "sandbox"})
    assert r.status_code == 201
    assert r.body["name"] == path
    assert r.body["id"] in client.by_id()


@pytest.mark.parametrize("suffix", ["/", "", "/?x=1", "?x=1"])
def test_patch_and_delete_with_and_without_trailing_slash(client, suffix):
    key = client.create("k", "sandbox")
    path = f"{BASE}/{key['id']}{suffix}"
    r = client.request("PATCH", path, json={"name": "renamed"})
    assert r.status_code == 200 and r.body["name"] == "renamed"
    r = client.request("DELETE", path)
    assert r.status_code == 204
    assert key["id"] not in client.by_id()


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/"),
        ("GET", "/v1"),
        ("GET", "/v1/account"),
        ("GET", "/v1/account/"),
        ("GET", "/v1/account/api-key"),
        ("GET", "/v1/account/api-keysx"),
        ("POST", "/v1/account/api-keysx/"),
        ("GET", "/v2/account/api-keys/"),
        ("PATCH", "/v1/account/api-keys/1/extra"),
        ("DELETE", "/v1/account/api-keys/1/2/"),
        ("GET", "/healthzz"),
        ("GET", "/nope?x=1"),
    ],
)
def test_unknown_path_404_without_auth(shared_server, method, path):
    for key in (None, shared_server.account.key):
        r = Client(shared_server, key).request(method, path)
        assert_error(r, 404, "not_found")


@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("PUT", COLLECTION, "GET, POST"),
        ("DELETE", COLLECTION, "GET, POST"),
        ("PATCH", BASE, "GET, POST"),
        ("OPTIONS", COLLECTION, "GET, POST"),
        ("GET", COLLECTION + "1/", "PATCH, DELETE"),
        ("POST", COLLECTION + "1", "PATCH, DELETE"),
        ("PUT", COLLECTION + "1/", "PATCH, DELETE"),
        ("GET", COLLECTION + "abc/", "PATCH, DELETE"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/healthz", "GET"),
    ],
)
def test_other_methods_405_with_allow_before_auth(shared_server, method, path, allow):
    before = snapshot(shared_server.client)
    for key in (None, "not-a-key", shared_server.account.key):
        r = Client(shared_server, key).request(method, path, json={"name": "x", "key_type": "sandbox"})
        assert_error(r, 405, "method_not_allowed")
        assert r.headers["Allow"] == allow
    assert snapshot(shared_server.client) == before


def bad_ids(server):
    """Ids that must all answer the same 404: not positive 64-bit integers, unknown, other account's."""
    other = server.accounts[1]
    own = server.account.primary_id
    return [
        "abc",
        "0",
        "-1",
        "9" * 30,
        "1" * 30,
        "9223372036854775808",  # 2**63
        "18446744073709551616",  # 2**64
        "9223372036854775807",  # fits, does not exist
        "999999",
        f"{own}abc",
        f"{own}.0",
        "1e3",
        "%20",
        str(other.primary_id),
    ]


@pytest.fixture
def two_accounts(server_factory):
    return server_factory(accounts=("acme", "globex"))


def test_bad_and_foreign_ids_give_identical_404(two_accounts):
    server = two_accounts
    client = server.client
    other = server.accounts[1]
    before_own, before_other = snapshot(client), snapshot(other.client)
    bodies = set()
    for key_id in bad_ids(server):
        for method, kw in [
            ("PATCH", {"json": {"name": "stolen"}}),
            ("PATCH", {"json": {"is_active": False}}),
            ("DELETE", {}),
        ]:
            r = client.request(method, f"{COLLECTION}{key_id}/", **kw)
            assert_error(r, 404, "not_found")
            bodies.add(r.content)
            r = client.request(method, f"{BASE}/{key_id}", **kw)
            assert_error(r, 404, "not_found")
            bodies.add(r.content)
    assert len(bodies) == 1, bodies
    assert snapshot(client) == before_own
    assert snapshot(other.client) == before_other


def test_deleted_id_gives_404(client):
    key = client.create("gone", "sandbox")
    client.remove(key["id"])
    assert_error(client.patch(key["id"], json={"name": "x"}), 404, "not_found")
    assert_error(client.delete(key["id"]), 404, "not_found")


# --------------------------------------------------------------------------- processing order


def test_order_405_before_401(shared_server):
    assert_error(Client(shared_server).request("PUT", COLLECTION, data=b"{"), 405, "method_not_allowed")


def test_order_401_before_404_and_body(shared_server):
    c = Client(shared_server)
    assert_error(c.request("PATCH", COLLECTION + "abc/", data=b"{", headers={"Content-Type": "text/plain"}), 401, "missing_api_key")
    assert_error(c.request("POST", COLLECTION, data=b"{", headers={"Content-Type": "text/plain"}), 401, "missing_api_key")
    assert_error(c.request("DELETE", COLLECTION + "0/"), 401, "missing_api_key")


def test_order_404_before_403_and_body(sandbox_server):
    server, sand = sandbox_server
    assert_error(sand.patch("abc", data=b"{", headers={"Content-Type": "text/plain"}), 404, "not_found")
    assert_error(sand.delete(999999), 404, "not_found")


@pytest.fixture
def sandbox_server(server):
    """(server, client with a sandbox key of the server's account)."""
    created = server.client.create("Sandbox", "sandbox")
    return server, Client(server, created["api_key"])


def test_order_403_before_body_on_patch(sandbox_server):
    server, sand = sandbox_server
    primary = server.account.primary_id
    for kw in [
        {"data": b"{", "headers": {"Content-Type": "text/plain"}},
        {"data": b"{"},
        {"data": b"{", "headers": {"Content-Type": "application/json"}},
        {"json": {"bogus": 1}},
        {"json": {"is_active": False}},
    ]:
        assert_error(sand.patch(primary, **kw), 403, "forbidden")


def test_order_415_before_400_before_422(client):
    assert_error(client.post(data=b"{", headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")
    assert_error(client.post(data=b"{", headers={"Content-Type": "application/json"}), 400, "invalid_json")
    assert_error(client.post(json={"name": "", "key_type": "nope"}), 422, "validation_error")


def test_order_post_body_before_sandbox_403(sandbox_server):
    server, sand = sandbox_server
    assert_error(sand.post(data=b'{"key_type":"production"', headers={"Content-Type": "application/json"}), 400, "invalid_json")
    assert_error(sand.post(json={"key_type": "production"}), 422, "validation_error")
    assert_error(sand.post(json={"name": "x", "key_type": "production", "x": 1}), 422, "validation_error")
    assert_error(sand.post(data=b'{"name":"x","key_type":"production"}', headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type")
    assert_error(sand.post(json={"name": "x", "key_type": "production"}), 403, "forbidden")


def test_order_403_and_422_before_409(server_factory):
    server = server_factory("--max-keys", "2")
    client = server.client
    sand_key = client.create("Sandbox", "sandbox")  # now at the cap
    sand = Client(server, sand_key["api_key"])
    assert_error(client.post(json={"name": "x", "key_type": "sandbox"}), 409, "key_limit_reached")
    assert_error(client.post(json={"name": "", "key_type": "sandbox"}), 422, "validation_error")
    assert_error(sand.post(json={"name": "x", "key_type": "production"}), 403, "forbidden")
    assert_error(sand.post(json={"name": "x", "key_type": "sandbox"}), 409, "key_limit_reached")
    # On the primary: 422 comes before 409.
    primary = server.account.primary_id
    assert_error(client.patch(primary, json={"is_active": False, "bogus": 1}), 422, "validation_error")
    assert_error(client.patch(primary, json={"is_active": "no"}), 422, "validation_error")
    assert_error(client.patch(primary, json={"is_active": False}), 409, "primary_key_protected")
