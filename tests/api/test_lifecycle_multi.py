"""The key lifecycle across instances on one PostgreSQL database (PostgreSQL only, by nature).

- Expiry holds on every instance with no background job: a key that expires is refused by
  both instances from that second on (sweeps are made impossible by a far-off claim).
- A leak reported through one instance deactivates the key on the other at once.
- A primary rotated through one instance: the other serves the new primary, the old key
  through its grace, and the refusal after it.
- A key refused as expired by one instance is refused by the others, whatever their clocks
  say, and by an instance started later (the mark is in the database, and announced).

Waits poll with generous bounds; no duration is asserted.
"""

import time


from conftest import (
    Client,
    assert_error,
    wait_until,
)

VERIFY = "/v1/auth/verify"
PROPAGATION_TIMEOUT = 5.0


def verify(server, key):
    return Client(server, key).request("GET", VERIFY)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def create_key(client, **fields):
    r = client.post(json={"name": "k", "key_type": "production", **fields})
    assert r.status_code == 201, r.text
    return r.body


def test_expiry_holds_on_every_instance_without_a_sweep(pg_factory):
    a = pg_factory()
    b = pg_factory(share=a)
    # Take the sweeps' periods far ahead: nothing but the hot path can refuse the key.
    a.psql("INSERT INTO sweeps (name, due_at) VALUES ('expired-keys', 4000000000), ('idle-keys', 4000000000)"
           " ON CONFLICT (name) DO UPDATE SET due_at = 4000000000")
    key = create_key(a.client, expires_at=iso(time.time() + 5))
    wait_until(lambda: verify(b, key["api_key"]).status_code == 204, PROPAGATION_TIMEOUT, what="the key on b")
    wait_until(lambda: verify(a, key["api_key"]).status_code == 401, 10, what="the expiry on a")
    for server in (a, b):
        r = verify(server, key["api_key"])
        assert_error(r, 401, "key_expired")


def test_leak_reported_on_one_instance_is_refused_by_the_other(pg_factory):
    a = pg_factory()
    b = pg_factory(share=a)
    admin = a.admin_client()
    key = create_key(a.client)
    wait_until(lambda: verify(b, key["api_key"]).status_code == 204, PROPAGATION_TIMEOUT, what="the key on b")
    r = admin.post("/v1/admin/leaked-keys", json=[{"token": key["api_key"], "type": "apikeyd", "url": "https://x", "source": "s"}])
    assert r.status_code == 200, r.text
    assert r.body[0]["label"] == "true_positive"
    wait_until(lambda: verify(b, key["api_key"]).status_code == 401, PROPAGATION_TIMEOUT, what="the leak on b")
    assert_error(verify(b, key["api_key"]), 401, "key_leaked")
    listed = {k["id"]: k for k in Client(b, a.account.key).list()}
    assert listed[key["id"]]["leaked_at"] is not None and listed[key["id"]]["is_active"] is False


def test_primary_rotated_on_one_instance_is_served_by_the_other(pg_factory, tmp_path):
    clock = tmp_path / "clock"
    clock.write_text("0")
    a = pg_factory(env={"APIKEYD_TEST_CLOCK_FILE": str(clock)})
    b = pg_factory(share=a, env={"APIKEYD_TEST_CLOCK_FILE": str(clock)})
    old = a.account
    r = a.client.post(f"/v1/account/api-keys/{old.primary_id}/rotate", json={"grace_period_seconds": 3600})
    assert r.status_code == 201, r.text
    new = r.body
    assert new["is_primary"] is True and new["rotated_from"] == old.primary_id

    def served():
        keys = {k["id"]: k for k in Client(b, new["api_key"]).list()}
        return keys[new["id"]]["is_primary"] and not keys[old.primary_id]["is_primary"]

    wait_until(lambda: verify(b, new["api_key"]).status_code == 204 and served(), PROPAGATION_TIMEOUT, what="the new primary on b")
    assert verify(b, old.key).status_code == 204  # the grace
    clock.write_text(str(3600 + 5))
    wait_until(lambda: verify(b, old.key).status_code == 401, 10, what="the end of the grace on b")
    assert_error(verify(b, old.key), 401, "key_expired")
    assert verify(b, new["api_key"]).status_code == 204


def test_expiry_refusal_outlives_a_clock_stepped_back(pg_factory, tmp_path):
    """a's clock runs an hour ahead, b's is the real one: once a refuses the key as expired, b
    (an hour before the expiry by its clock) refuses it too, and so does an instance started
    afterwards: the mark is in the database and announced."""
    clock = tmp_path / "clock"
    clock.write_text("0")
    a = pg_factory(env={"APIKEYD_TEST_CLOCK_FILE": str(clock)})
    b = pg_factory(share=a)
    key = create_key(a.client, expires_at=iso(time.time() + 3600))
    wait_until(lambda: verify(b, key["api_key"]).status_code == 204, PROPAGATION_TIMEOUT, what="the key on b")
    assert verify(a, key["api_key"]).status_code == 204
    clock.write_text(str(3600 + 60))
    wait_until(lambda: verify(a, key["api_key"]).status_code == 401, 10, what="the expiry on a")
    wait_until(lambda: verify(b, key["api_key"]).status_code == 401, 10, what="a's refusal on b")
    assert_error(verify(b, key["api_key"]), 401, "key_expired")
    assert a.psql(f"SELECT expiry_seen FROM api_keys WHERE id = {key['id']}").strip() == "t"
    c = pg_factory(share=a)
    assert_error(verify(c, key["api_key"]), 401, "key_expired")
