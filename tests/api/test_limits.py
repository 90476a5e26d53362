"""Key cap (--max-keys, default 100) and concurrent requests."""

import pytest

from conftest import Client, assert_error, assert_key_format, parallel, snapshot


def test_max_keys_3(server_factory):
    server = server_factory("--max-keys", "3")
    client = server.client
    a = client.create("a", "sandbox")
    b = client.create("b", "production")
    before = snapshot(client)
    assert_error(client.post(json={"name": "c", "key_type": "sandbox"}), 409, "key_limit_reached")
    assert_error(client.post(json={"name": "c", "key_type": "production"}), 409, "key_limit_reached")
    assert snapshot(client) == before
    # Inactive keys count.
    client.update(a["id"], is_active=False)
    assert_error(client.post(json={"name": "c", "key_type": "sandbox"}), 409, "key_limit_reached")
    # Deleted keys do not.
    client.remove(b["id"])
    c = client.create("c", "sandbox")
    assert len(client.list()) == 3
    assert_error(client.post(json={"name": "d", "key_type": "sandbox"}), 409, "key_limit_reached")
    # A sandbox key of a full account is refused the same way.
    client.update(a["id"], is_active=True)
    assert_error(Client(server, c["api_key"]).post(json={"name": "d", "key_type": "sandbox"}), 409, "key_limit_reached")


def test_cap_is_per_account(server_factory):
    server = server_factory("--max-keys", "2", accounts=("acme", "globex"))
    acme, globex = (a.client for a in server.accounts)
    acme.create("a", "sandbox")
    assert_error(acme.post(json={"name": "b", "key_type": "sandbox"}), 409, "key_limit_reached")
    globex.create("g", "sandbox")
    assert_error(globex.post(json={"name": "h", "key_type": "sandbox"}), 409, "key_limit_reached")


def test_default_cap_is_100(server_factory):
    server = server_factory()
    names = [f"key-{i}" for i in range(99)]

    def create(name):
        r = Client(server, server.account.key).post(json={"name": name, "key_type": "sandbox"})
        assert r.status_code == 201, r.text
        return r.body["id"]

    ids = parallel(create, names, workers=8)
    assert len(set(ids)) == 99
    assert len(server.client.list()) == 100
    assert_error(server.client.post(json={"name": "one too many", "key_type": "sandbox"}), 409, "key_limit_reached")


def test_cap_holds_under_concurrency(server_factory):
    server = server_factory("--max-keys", "10", "--threads", "4")

    def create(i):
        r = Client(server, server.account.key).post(json={"name": f"k{i}", "key_type": "sandbox"})
        assert r.status_code in (201, 409), r.text
        return r.status_code

    statuses = parallel(create, list(range(30)), workers=15)
    assert statuses.count(201) == 9
    assert len(server.client.list()) == 10


@pytest.mark.parametrize("threads", [None, "4"], ids=["default-threads", "threads-4"])
def test_40_parallel_creates(server_factory, threads):
    extra = ["--max-keys", "100"] + (["--threads", threads] if threads else [])
    server = server_factory(*extra)

    def create(i):
        r = Client(server, server.account.key).post(
            json={"name": f"parallel-{i}", "key_type": "production" if i % 2 else "sandbox"}
        )
        assert r.status_code == 201, r.text
        return r.body

    created = parallel(create, list(range(40)), workers=40)
    ids = [c["id"] for c in created]
    assert len(set(ids)) == 40
    assert len({c["api_key"] for c in created}) == 40
    for c in created:
        assert_key_format(c["api_key"], c["key_type"])
    listed = server.client.list()
    assert [k["id"] for k in listed] == sorted(ids + [server.account.primary_id])
    by_id = {k["id"]: k for k in listed}
    for c in created:
        assert by_id[c["id"]]["name"] == c["name"]
    # Every new key authenticates.
    statuses = parallel(lambda c: Client(server, c["api_key"]).get().status_code, created, workers=10)
    assert statuses == [200] * 40


def test_parallel_mixed_requests(server_factory):
    """Reads, writes and refusals from many threads at once: all answered correctly."""
    server = server_factory("--threads", "4")
    client = server.client
    keys = [client.create(f"k{i}", "sandbox") for i in range(5)]

    def work(i):
        c = Client(server, server.account.key)
        kind = i % 4
        if kind == 0:
            assert c.get().status_code == 200
        elif kind == 1:
            assert c.update(keys[i % 5]["id"], name=f"renamed-{i}")
        elif kind == 2:
            assert_error(c.post(json={"name": ""}), 422, "validation_error")
        else:
            assert_error(c.delete(server.account.primary_id), 409, "primary_key_protected")
        return True

    assert all(parallel(work, list(range(80)), workers=16))
    listed = client.list()
    assert len(listed) == 6
    assert sum(k["is_primary"] for k in listed) == 1
