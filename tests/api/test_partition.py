"""A silent network and a lost COMMIT answer (PostgreSQL only, by nature: issue 8, sections 3 and 4).

Instance A reaches PostgreSQL over TCP through a proxy the test controls (tests/api/tcpproxy.py);
instance B uses the unix socket directly. The proxy's `freeze()` is a real silent partition: it
stops forwarding without closing anything, and the kernel keeps acknowledging, so only A's own
heartbeat can notice.

- Partition, fail closed (`--max-staleness 3`): a key revoked through B (deactivated, or
  deleted) during the partition stops passing on A within max-staleness plus the heartbeat's
  detection time (answers 503 store_unavailable or the key's 401), and while A is stale a
  valid key gets 503 store_unavailable too, on verify and on the API. After `heal()`, A resyncs
  by itself: the revoked key gets its 401, the valid key 204.
- Partition, fail open (`--max-staleness 0`, explicit): the valid key keeps working through
  the partition; a write on A during it answers 503 within a bounded time (never hangs), and
  `store_unavailable` only if nothing changed; after `heal()` A converges.
- Lost COMMIT answer (`cut_after(COMMIT)`: the COMMIT reaches PostgreSQL, which commits; the
  connection is closed before its answer gets back): deactivating or deleting a key through A
  answers the real outcome (200 inactive / 204), the database has it, and A refuses the key at
  once.
- Unanswerable COMMIT (`freeze_after(COMMIT)`: the COMMIT reaches PostgreSQL, then nothing
  more gets through): the answer is 503 outcome_unknown (or the real outcome), never
  `store_unavailable` ("nothing was changed") for a change that was committed; after `heal()`
  A converges.

No duration is asserted; every wait is a bounded poll.
"""

import re
import threading
import time

import pytest
import requests

from conftest import (
    SPEC,
    Client,
    assert_error,
    postgres_only,
    wait_until,
)
from tcpproxy import TcpProxy

LONG = True  # mostly waiting: scheduled first (conftest.pytest_collection_modifyitems)

VERIFY = "/v1/auth/verify"
STALENESS = 3  # --max-staleness for the fail-closed tests
# The watcher sends a heartbeat every 1 s and declares the link dead after 3 s unanswered; the
# bound for a stale instance to refuse is max-staleness plus that, with generous slack for a
# loaded machine. It is a bound on a poll, not a measured duration.
STALE_BOUND = STALENESS + 1 + 3 + 8
RECOVERY_TIMEOUT = 20.0  # reconnect (after the connect attempts held by the freeze end) and resync
PROPAGATION_TIMEOUT = 5.0
WRITE_BOUND = 30.0  # a write during a partition must be answered by then (statement deadline 5 s)
FAIL_OPEN_WINDOW = 8.0  # well past the heartbeat's 3 s and the default staleness of a dead link

pytestmark = postgres_only  # LISTEN/NOTIFY and a network between apikeyd and its database


@pytest.fixture
def proxy(pg_cluster):
    """A proxy to the session cluster's TCP port; healed and stopped at teardown."""
    p = TcpProxy(pg_cluster.port).start()
    yield p
    p.stop()
    assert not p.errors, f"the proxy failed: {p.errors}"


def verify(client):
    return client.request("GET", VERIFY)


def pair(factory, proxy, *extra_args):
    """(A through the proxy, B direct), one database, one account; both started."""
    b = factory("--auth-failures", "0", *extra_args)
    a = factory("--auth-failures", "0", *extra_args, share=b, start=False)
    a.db = a.backend.tcp_db_arg(proxy.port)
    a.start()
    assert proxy.accepted > 0, "A does not go through the proxy"
    return a, b


def known(server, key):
    return verify(Client(server, key)).status_code == 204


def create_everywhere(a, b, name, key_type="production"):
    """A key created through B, once A knows it too."""
    key = Client(b, b.account.key).create(name, key_type)
    wait_until(lambda: known(a, key["api_key"]), PROPAGATION_TIMEOUT, what=f"{name!r} on A")
    assert known(b, key["api_key"])
    return key


def revoke(client, key, how):
    """Deactivates or deletes `key` through `client`; returns the 401 code the key gets then."""
    if how == "deactivate":
        client.update(key["id"], is_active=False)
        return "key_inactive"
    client.remove(key["id"])
    return "invalid_api_key"


def db_row(server, key_id):
    """'t' / 'f' (is_active), or '' when the row does not exist."""
    return server.psql(f"SELECT is_active FROM api_keys WHERE id = {key_id}")


def assert_stale(r):
    assert_error(r, 503, "store_unavailable")
    assert r.headers.get("Retry-After"), "503 without Retry-After"


def timed_request(server, method, path, key, json=None, timeout=WRITE_BOUND):
    """A request with its own (longer) bound than the suite's HTTP timeout; fails if unanswered."""
    try:
        r = requests.request(method, server.base_url + path, json=json, timeout=timeout,
                             headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    except requests.Timeout:
        pytest.fail(f"{method} {path} on A was not answered within {timeout} s: the writer hangs")
    r.body = SPEC.check(method, path, r)
    return r


# --------------------------------------------------------------------------- partition


@pytest.mark.parametrize("how", ["deactivate", "delete"])
def test_partition_fails_closed_and_resyncs(proxy, server_factory, how):
    a, b = pair(server_factory, proxy, "--max-staleness", STALENESS)
    victim = create_everywhere(a, b, "revoked during the partition")
    valid = create_everywhere(a, b, "stays valid", "sandbox")
    a_valid, a_victim = Client(a, valid["api_key"]), Client(a, victim["api_key"])

    proxy.freeze()
    code = revoke(Client(b, b.account.key), victim, how)
    assert_error(verify(Client(b, victim["api_key"])), 401, code)

    # A stops accepting the revoked key: it heard nothing, so it must stop trusting itself.
    seen = []

    def refused():
        r = verify(a_victim)
        seen.append(r.status_code)
        if r.status_code == 204:
            return False
        if r.status_code == 503:
            assert_stale(r)
        else:
            assert_error(r, 401, code)
        return True

    wait_until(refused, STALE_BOUND, interval=0.1, what="A to stop accepting the key revoked during the partition")
    # Still partitioned: A fails closed for every key, on verify and on the API.
    wait_until(lambda: verify(a_valid).status_code == 503, STALE_BOUND, interval=0.1, what="A to answer 503 while stale")
    assert proxy.frozen
    assert_stale(verify(a_valid))
    assert_stale(Client(a, a.account.key).get())
    assert_stale(Client(a, valid["api_key"]).get())
    r = verify(a_victim)
    assert r.status_code in (401, 503), f"the revoked key passed on A again: {r.status_code}"
    if r.status_code == 503:
        assert_stale(r)
    # B was never partitioned.
    assert verify(Client(b, valid["api_key"])).status_code == 204

    proxy.heal()

    def resynced():
        r = verify(a_victim)
        if r.status_code != 401:
            assert r.status_code == 503, f"the revoked key on A after heal: {r.status_code} {r.text}"
            return False
        assert_error(r, 401, code)
        return verify(a_valid).status_code == 204

    wait_until(resynced, RECOVERY_TIMEOUT, interval=0.1, what="A to resync after the partition heals")
    keys = {k["id"]: k for k in Client(a, a.account.key).list()}
    if how == "deactivate":
        assert keys[victim["id"]]["is_active"] is False
    else:
        assert victim["id"] not in keys
    # And A follows changes again.
    r = Client(b, b.account.key).update(valid["id"], is_active=False)
    assert r["is_active"] is False

    def followed():
        r = verify(a_valid)
        if r.status_code == 204:
            return False
        assert_error(r, 401, "key_inactive")
        return True

    wait_until(followed, PROPAGATION_TIMEOUT, what="a change through B on A after the heal")


def test_partition_fail_open_and_bounded_write(proxy, server_factory):
    """--max-staleness 0: verification keeps answering from memory during a partition (the
    documented, explicit fail-open); a write on A does not hang."""
    a, b = pair(server_factory, proxy, "--max-staleness", "0")
    valid = create_everywhere(a, b, "valid through the partition", "sandbox")
    target = create_everywhere(a, b, "renamed during the partition", "sandbox")
    victim = create_everywhere(a, b, "deactivated during the partition", "sandbox")
    a_valid = Client(a, valid["api_key"])
    admin = Client(a, a.account.key)
    wrong = []
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            try:
                r = verify(a_valid)
                if r.status_code != 204:
                    wrong.append(f"{r.status_code} {r.text[:200]}")
            except BaseException as e:  # noqa: BLE001 - recorded, asserted on below
                wrong.append(f"{type(e).__name__}: {e}")
            time.sleep(0.05)

    proxy.freeze()
    t = threading.Thread(target=traffic, daemon=True)
    t.start()
    try:
        revoke(Client(b, b.account.key), victim, "deactivate")
        r = timed_request(a, "PATCH", f"/v1/account/api-keys/{target['id']}/", a.account.key, {"name": "during"})
        assert r.status_code == 503, f"a write on A during the partition: {r.status_code} {r.text}"
        outcome = r.body["error"]["code"]
        assert outcome in ("store_unavailable", "outcome_unknown"), r.text
        deadline = time.monotonic() + FAIL_OPEN_WINDOW
        while time.monotonic() < deadline:
            time.sleep(0.2)
            assert a.proc.poll() is None, "A died during the partition"
    finally:
        stop.set()
        t.join(timeout=60)
    assert not wrong, f"with --max-staleness 0 the valid key must keep working during a partition: {wrong[:5]}"

    proxy.heal()

    def converged():
        r = verify(Client(a, victim["api_key"]))
        if r.status_code == 204:
            return False
        assert_error(r, 401, "key_inactive")
        return True

    wait_until(converged, RECOVERY_TIMEOUT, interval=0.1, what="A to catch up with B's change after the heal")
    assert verify(a_valid).status_code == 204
    name = b.psql(f"SELECT name FROM api_keys WHERE id = {target['id']}")
    if outcome == "store_unavailable":
        # "Nothing was changed" must be true: give anything A sent during the partition time
        # to reach PostgreSQL (it flows on heal), then look.
        time.sleep(1.0)
        name = b.psql(f"SELECT name FROM api_keys WHERE id = {target['id']}")
        assert name == target["name"], f"503 store_unavailable, but the write happened: name is {name!r}"
    # Whatever happened, A serves what the database has.
    wait_until(lambda: {k["id"]: k["name"] for k in admin.list()}[target["id"]] == name, RECOVERY_TIMEOUT,
               what="A's list to agree with the database")  # fmt: skip
    # Writes through A work again.
    r = timed_request(a, "PATCH", f"/v1/account/api-keys/{target['id']}/", a.account.key, {"name": "after"})
    assert r.status_code == 200, f"first write through A after the heal: {r.status_code} {r.text}"


# --------------------------------------------------------------------------- ambiguous COMMIT


def notifies(key_id):
    """The transaction that announces key `key_id` (apikeyd NOTIFYs `k ID` in the transaction
    that changes a key), so that a last_used flush committing around it is not the one cut."""
    return re.compile(rb"k %d(?![0-9])" % key_id)


@pytest.mark.parametrize("how", ["deactivate", "delete"])
def test_commit_answer_lost_after_commit(proxy, server_factory, how):
    a, b = pair(server_factory, proxy)
    victim = create_everywhere(a, b, "changed by a COMMIT whose answer is lost")
    admin = Client(a, a.account.key)
    proxy.cut_after(b"COMMIT", when=notifies(victim["id"]))
    if how == "deactivate":
        r = timed_request(a, "PATCH", f"/v1/account/api-keys/{victim['id']}/", a.account.key, {"is_active": False})
    else:
        r = timed_request(a, "DELETE", f"/v1/account/api-keys/{victim['id']}/", a.account.key)
    assert proxy.triggered.is_set(), f"the proxy never saw the write's COMMIT (answer: {r.status_code} {r.text})"
    # PostgreSQL committed.
    assert db_row(a, victim["id"]) == ("f" if how == "deactivate" else "")
    # So the client hears the real outcome, not "nothing was changed".
    if how == "deactivate":
        assert r.status_code == 200, f"committed deactivation answered {r.status_code}: {r.text}"
        assert r.body["id"] == victim["id"] and r.body["is_active"] is False
    else:
        assert r.status_code == 204, f"committed delete answered {r.status_code}: {r.text}"
    # And A's catalog has the change at once (no wait: the answer promises it).
    code = "key_inactive" if how == "deactivate" else "invalid_api_key"
    assert_error(verify(Client(a, victim["api_key"])), 401, code)
    keys = {k["id"]: k for k in admin.list()}
    assert (keys[victim["id"]]["is_active"] is False) if how == "deactivate" else victim["id"] not in keys
    # B heard of it too (from PostgreSQL), and writes through A still work.
    wait_until(lambda: not known(b, victim["api_key"]), PROPAGATION_TIMEOUT, what="the change on B")
    r = timed_request(a, "POST", "/v1/account/api-keys/", a.account.key, {"name": "after", "key_type": "sandbox"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("how", ["deactivate", "delete"])
def test_commit_unanswerable_is_outcome_unknown_then_converges(proxy, server_factory, how):
    a, b = pair(server_factory, proxy)
    victim = create_everywhere(a, b, "changed by a COMMIT nobody can confirm")
    proxy.freeze_after(b"COMMIT", when=notifies(victim["id"]))
    if how == "deactivate":
        r = timed_request(a, "PATCH", f"/v1/account/api-keys/{victim['id']}/", a.account.key, {"is_active": False})
    else:
        r = timed_request(a, "DELETE", f"/v1/account/api-keys/{victim['id']}/", a.account.key)
    assert proxy.triggered.is_set(), f"the proxy never saw the write's COMMIT (answer: {r.status_code} {r.text})"
    committed = db_row(a, victim["id"]) == ("f" if how == "deactivate" else "")
    assert committed, "PostgreSQL received the COMMIT but did not commit: the test's premise failed"
    code = "key_inactive" if how == "deactivate" else "invalid_api_key"
    ok_status = 200 if how == "deactivate" else 204
    if r.status_code == 503:
        assert_error(r, 503, "outcome_unknown")  # never "store_unavailable": the change did happen
        assert r.headers.get("Retry-After")
    else:
        assert r.status_code == ok_status, f"{how} answered {r.status_code}: {r.text}"
        assert_error(verify(Client(a, victim["api_key"])), 401, code)
    assert a.proc.poll() is None

    proxy.heal()

    def converged():
        r = verify(Client(a, victim["api_key"]))
        if r.status_code == 204:
            return False
        if r.status_code == 503:
            assert_stale(r)
            return False
        assert_error(r, 401, code)
        return True

    wait_until(converged, RECOVERY_TIMEOUT, interval=0.1, what="A to converge on the committed change after the heal")
    keys = {k["id"]: k for k in Client(a, a.account.key).list()}
    assert (keys[victim["id"]]["is_active"] is False) if how == "deactivate" else victim["id"] not in keys
    r = timed_request(a, "POST", "/v1/account/api-keys/", a.account.key, {"name": "after", "key_type": "sandbox"})
    assert r.status_code == 201, f"first write through A after the heal: {r.status_code} {r.text}"
