"""The audit log (issue 9; docs/contract.md "Audit log", "Cursors"), black-box, on both backends.

A scripted sequence of changes (accounts over the operator API, keys over the account API and
the operator API, admin tokens over the CLI, each HTTP request with its own X-Request-Id) must
be exactly the events listed, newest first, with their actor, target, changes, client address
and request id; refused requests leave no event; no listing ever holds a key, a token or a
digest. Then: the filters, the account's own audit log, and cursor pagination over hundreds of
events, also while events are being added.
"""

import json
import re
from urllib.parse import urlencode

import pytest

from conftest import (
    ACCOUNT_AUDIT,
    ADMIN_ACCOUNTS,
    ADMIN_AUDIT,
    COLLECTION,
    Client,
    ServerFactory,
    assert_error,
    parse_time,
    wait_until,
    walk_pages,
)

ACTIONS = [
    "key.created", "key.updated", "key.deleted", "account.created", "account.updated", "account.suspended",
    "account.reactivated", "account.deleted", "admin_token.created", "admin_token.revoked", "key.rotated", "key.leaked",
]  # fmt: skip
EVENT_FIELDS = ["id", "at", "account_id", "actor", "action", "target", "changes", "details", "client_ip", "request_id"]
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
LOCALHOST = "127.0.0.1"


def account_path(account_id):
    return f"{ADMIN_ACCOUNTS}{account_id}/"


def ch(old, new):
    return {"old": old, "new": new}


def created(**fields):
    return {f: ch(None, v) for f, v in fields.items()}


def deleted(**fields):
    return {f: ch(v, None) for f, v in fields.items()}


def event(action, account_id, actor, target, changes, rid):
    """An expected event (without id and at). `actor`: ("key", id, prefix), ("admin_token", id,
    prefix) or "cli"; `rid`: the request's X-Request-Id (None: not over HTTP)."""
    kind, target_id = target
    if actor == "cli":
        actor_obj = {"type": "cli", "id": None, "prefix": None}
    else:
        actor_obj = {"type": actor[0], "id": actor[1], "prefix": actor[2]}
    return {
        "account_id": account_id,
        "actor": actor_obj,
        "action": action,
        "target": {"type": kind, "id": target_id},
        "changes": changes,
        "details": None,  # only the server's own changes and leak reports have details
        "client_ip": None if rid is None else LOCALHOST,
        "request_id": rid,
    }


def strip(ev):
    return {k: v for k, v in ev.items() if k not in ("id", "at")}


def canonical(events):
    return sorted(json.dumps(e, sort_keys=True) for e in events)


class Script:
    """Runs the scripted sequence once on a fresh server; keeps every step's expected events,
    every plaintext key and token it made, and every audit listing's body (`bodies`)."""

    def __init__(self, factory):
        self.steps = []  # [(label, [expected events])], oldest first
        self.secrets = []
        self.bodies = []
        server = self.server = factory("--auth-failures", 0, accounts=(), start=False)
        ops = server.create_admin_token("ops")
        self.secrets.append(ops["token"])
        self.step("admin token ops", [event("admin_token.created", None, "cli", ("admin_token", ops["id"]),
                                            created(name="ops", prefix=ops["token"][:13]), None)])  # fmt: skip
        server.start()
        self.admin = admin = self.listener(Client(server, ops["token"]))
        admin_actor = ("admin_token", ops["id"], ops["token"][:13])
        self.admin_actor = admin_actor

        # An account over HTTP: the account and its primary key.
        r = admin.post(ADMIN_ACCOUNTS, json={"name": "Acme", "external_id": "cus_acme", "max_keys": 10},
                       headers={"X-Request-Id": "r-create-acme"})  # fmt: skip
        assert r.status_code == 201, r.text
        assert r.headers["X-Request-Id"] == "r-create-acme"
        acme = self.acme = r.body["account"]["id"]
        p = r.body["api_key"]
        self.secrets.append(p["api_key"])
        p_actor = ("key", p["id"], p["key_prefix"])
        self.step("create acme", [
            event("account.created", acme, admin_actor, ("account", acme),
                  created(name="Acme", external_id="cus_acme", status="active", max_keys=10), "r-create-acme"),
            event("key.created", acme, admin_actor, ("key", p["id"]),
                  created(name="Production Key", key_type="production", is_active=True, is_primary=True), "r-create-acme"),
        ])  # fmt: skip

        # Another account, for the filters.
        r = admin.post(ADMIN_ACCOUNTS, json={"name": "Globex"}, headers={"X-Request-Id": "r-create-globex"})
        assert r.status_code == 201, r.text
        globex = self.globex = r.body["account"]["id"]
        g = r.body["api_key"]
        self.secrets.append(g["api_key"])
        self.globex_key = g["api_key"]
        self.step("create globex", [
            event("account.created", globex, admin_actor, ("account", globex), created(name="Globex", status="active"),
                  "r-create-globex"),
            event("key.created", globex, admin_actor, ("key", g["id"]),
                  created(name="Production Key", key_type="production", is_active=True, is_primary=True), "r-create-globex"),
        ])  # fmt: skip

        # Keys over the account API, with the primary P.
        pc = Client(server, p["api_key"])
        k = self.call(pc, "POST", COLLECTION, {"name": "CI", "key_type": "production"}, "r-key-create", 201)
        k_actor = ("key", k["id"], k["key_prefix"])
        self.step("create K", [event("key.created", acme, p_actor, ("key", k["id"]),
                                     created(name="CI", key_type="production", is_active=True, is_primary=False),
                                     "r-key-create")])  # fmt: skip
        for rid, body, changes in (
            ("r-key-rename", {"name": "CI/CD"}, {"name": ch("CI", "CI/CD")}),
            ("r-key-deactivate", {"is_active": False}, {"is_active": ch(True, False)}),
            ("r-key-reactivate", {"is_active": True}, {"is_active": ch(False, True)}),
        ):
            self.call(pc, "PATCH", f"{COLLECTION}{k['id']}/", body, rid, 200)
            self.step(rid, [event("key.updated", acme, p_actor, ("key", k["id"]), changes, rid)])
        self.call(pc, "PATCH", f"{COLLECTION}{k['id']}/", {"is_primary": True}, "r-key-primary", 200)
        self.step("K primary", [
            event("key.updated", acme, p_actor, ("key", p["id"]), {"is_primary": ch(True, False)}, "r-key-primary"),
            event("key.updated", acme, p_actor, ("key", k["id"]), {"is_primary": ch(False, True)}, "r-key-primary"),
        ])  # fmt: skip
        kc = Client(server, k["api_key"])
        self.call(kc, "DELETE", f"{COLLECTION}{p['id']}/", None, "r-key-delete", 204)
        self.step("delete P", [event("key.deleted", acme, k_actor, ("key", p["id"]),
                                     deleted(name="Production Key", key_type="production", is_active=True,
                                             is_primary=False), "r-key-delete")])  # fmt: skip
        s = self.call(kc, "POST", COLLECTION, {"name": "Sandbox", "key_type": "sandbox"}, "r-sand-create", 201)
        self.sandbox_key = s["api_key"]
        self.step("create S", [event("key.created", acme, k_actor, ("key", s["id"]),
                                     created(name="Sandbox", key_type="sandbox", is_active=True, is_primary=False),
                                     "r-sand-create")])  # fmt: skip
        s2 = self.call(kc, "POST", COLLECTION, {"name": "Sandbox 2", "key_type": "sandbox"}, "r-sand2-create", 201)
        self.step("create S2", [event("key.created", acme, k_actor, ("key", s2["id"]),
                                      created(name="Sandbox 2", key_type="sandbox", is_active=True, is_primary=False),
                                      "r-sand2-create")])  # fmt: skip
        self.call(kc, "PATCH", f"{COLLECTION}{s2['id']}/", {"name": "Off", "is_active": False}, "r-sand2-two", 200)
        self.step("S2 two fields", [event("key.updated", acme, k_actor, ("key", s2["id"]),
                                          {"name": ch("Sandbox 2", "Off"), "is_active": ch(True, False)},
                                          "r-sand2-two")])  # fmt: skip
        # Refused requests leave no event.
        self.call(kc, "DELETE", f"{COLLECTION}{k['id']}/", None, "r-refused-1", 409)
        self.call(kc, "PATCH", f"{COLLECTION}{s['id']}/", {"is_primary": True}, "r-refused-2", 409)
        self.call(kc, "PATCH", f"{COLLECTION}{s['id']}/", {"key_type": "production"}, "r-refused-3", 422)
        self.call(Client(server, s["api_key"]), "DELETE", f"{COLLECTION}{k['id']}/", None, "r-refused-4", 403)
        self.call(admin, "PATCH", account_path(acme), {"max_keys": 2}, "r-refused-5", 409)
        self.call(admin, "PATCH", account_path(acme), {}, "r-refused-6", 422)
        self.call(admin, "POST", ADMIN_ACCOUNTS, {"name": "Dup", "external_id": "cus_acme"}, "r-refused-7", 409)
        self.call(pc, "POST", COLLECTION, {"name": "Deleted key", "key_type": "sandbox"}, "r-refused-8", 401)

        # The account over the operator API.
        for rid, body, action, changes in (
            ("r-suspend", {"status": "suspended"}, "account.suspended", {"status": ch("active", "suspended")}),
            ("r-reactivate", {"status": "active"}, "account.reactivated", {"status": ch("suspended", "active")}),
            ("r-update", {"name": "Acme Corp", "max_keys": None}, "account.updated",
             {"name": ch("Acme", "Acme Corp"), "max_keys": ch(10, None)}),
            ("r-suspend-and-cap", {"status": "suspended", "max_keys": 20}, "account.suspended",
             {"status": ch("active", "suspended"), "max_keys": ch(None, 20)}),
        ):  # fmt: skip
            self.call(admin, "PATCH", account_path(acme), body, rid, 200)
            self.step(rid, [event(action, acme, admin_actor, ("account", acme), changes, rid)])
        # An operator's recovery key: created and made primary in one transaction.
        rec = self.call(admin, "POST", f"{account_path(acme)}keys/",
                        {"name": "Recovered", "key_type": "production", "make_primary": True}, "r-issue", 201)  # fmt: skip
        self.step("issue recovered", [
            event("key.created", acme, admin_actor, ("key", rec["id"]),
                  created(name="Recovered", key_type="production", is_active=True, is_primary=True), "r-issue"),
            event("key.updated", acme, admin_actor, ("key", k["id"]), {"is_primary": ch(True, False)}, "r-issue"),
        ])  # fmt: skip
        self.call(admin, "PATCH", account_path(acme), {"status": "active"}, "r-reactivate-2", 200)
        self.step("r-reactivate-2", [event("account.reactivated", acme, admin_actor, ("account", acme),
                                           {"status": ch("suspended", "active")}, "r-reactivate-2")])  # fmt: skip
        self.recovered_key = rec["api_key"]

        # An admin token made and revoked by the CLI.
        temp = server.create_admin_token("temp")
        self.secrets.append(temp["token"])
        self.step("admin token temp", [event("admin_token.created", None, "cli", ("admin_token", temp["id"]),
                                             created(name="temp", prefix=temp["token"][:13]), None)])  # fmt: skip
        server.revoke_admin_token(temp["id"])
        self.step("revoke temp", [event("admin_token.revoked", None, "cli", ("admin_token", temp["id"]),
                                        deleted(name="temp", prefix=temp["token"][:13]), None)])  # fmt: skip
        # The account's own log, read before it is deleted (the listing is no change).
        self.own_log = walk_pages(self.listener(Client(server, rec["api_key"])), ACCOUNT_AUDIT, "events", limit=1000)[0]
        self.sandbox_refusal = Client(server, s["api_key"]).get(ACCOUNT_AUDIT)

        # Finally the account goes.
        self.call(admin, "DELETE", account_path(acme), None, "r-delete-acme", 204)
        self.step("delete acme", [event("account.deleted", acme, admin_actor, ("account", acme),
                                        deleted(name="Acme Corp", external_id="cus_acme", status="active",
                                                max_keys=20), "r-delete-acme")])  # fmt: skip

    def listener(self, client):
        """Keeps every body this client receives (to search them for secrets)."""
        client.session.hooks["response"].append(lambda r, *a, **kw: self.bodies.append(r.text))
        return client

    def call(self, client, method, path, body, rid, status):
        kw = {"headers": {"X-Request-Id": rid}}
        if body is not None:
            kw["json"] = body
        r = client.request(method, path, **kw)
        assert r.status_code == status, f"{method} {path} ({rid}): {r.status_code} {r.text}"
        assert r.headers["X-Request-Id"] == rid
        if r.body is not None and "api_key" in r.body:
            self.secrets.append(r.body["api_key"])
        return r.body

    def step(self, label, events):
        self.steps.append((label, events))

    def expected(self, keep=lambda e: True):
        """The expected events, newest first, as [(label, [events])] (each step's events in any order)."""
        out = []
        for label, events in reversed(self.steps):
            kept = [e for e in events if keep(e)]
            if kept:
                out.append((label, kept))
        return out


def assert_events(actual, expected, what):
    """`actual` (newest first) is exactly `expected` ([(label, events)] newest first; within a
    step any order): same events, ids strictly descending, fields in the contract's order."""
    for ev in actual:
        assert list(ev) == EVENT_FIELDS, f"event fields (order): {list(ev)}"
        parse_time(ev["at"])
    ids = [e["id"] for e in actual]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids), f"{what}: ids not descending: {ids}"
    stripped = [strip(e) for e in actual]
    total = sum(len(events) for _, events in expected)
    assert len(stripped) == total, (
        f"{what}: {len(stripped)} events, expected {total}:\n" + "\n".join(json.dumps(e) for e in stripped)
    )
    i = 0
    for label, events in expected:
        got = stripped[i : i + len(events)]
        assert canonical(got) == canonical(events), (
            f"{what}, step {label!r}:\n got      {json.dumps(got)}\n expected {json.dumps(events)}"
        )
        i += len(events)
    times = [parse_time(e["at"]) for e in actual]
    assert times == sorted(times, reverse=True), f"{what}: `at` goes backwards"


@pytest.fixture(scope="module")
def script(backend, apikeyd_bin, tmp_path_factory):
    factory = ServerFactory(backend, tmp_path_factory.mktemp("audit-script"))
    try:
        yield Script(factory)
    finally:
        factory.close_all()


def listing(script, path=ADMIN_AUDIT, client=None, **params):
    client = client or script.admin
    return walk_pages(script.listener(client) if client is not script.admin else client, path, "events", limit=1000,
                      **params)[0]  # fmt: skip


# --------------------------------------------------------------------------- the scripted sequence


def test_account_events_are_exactly_the_changes_newest_first(script):
    """account_id=: every change of the account (also after its deletion), with actor, target,
    changes, client address and the request's X-Request-Id; refused requests left nothing."""
    acme = listing(script, account_id=script.acme)
    assert_events(acme, script.expected(lambda e: e["account_id"] == script.acme), "account_id=acme")
    assert not [e for e in acme if (e["request_id"] or "").startswith("r-refused")]
    globex = listing(script, account_id=script.globex)
    assert_events(globex, script.expected(lambda e: e["account_id"] == script.globex), "account_id=globex")


def test_action_filter(script):
    for action in ACTIONS:
        if action.startswith("admin_token."):
            continue  # test_admin_token_events
        got = listing(script, action=action)
        assert_events(got, script.expected(lambda e, a=action: e["action"] == a), f"action={action}")
    got = listing(script, action="key.updated", account_id=script.acme)
    assert_events(got, script.expected(lambda e: e["action"] == "key.updated" and e["account_id"] == script.acme),
                  "action=key.updated&account_id=acme")  # fmt: skip
    assert listing(script, action="key.deleted", account_id=script.globex) == []
    assert listing(script, account_id=999999) == []
    assert listing(script, account_id=2**63 - 1) == []


def test_admin_token_events(script):
    """admin_token.created / .revoked: actor cli (id and prefix null), account_id null, target
    the token, changes of the documented fields only, no client address or request id."""
    for action in ("admin_token.created", "admin_token.revoked"):
        got = listing(script, action=action)
        assert_events(got, script.expected(lambda e, a=action: e["action"] == a), f"action={action}")


def test_whole_log_is_exactly_the_script_newest_first(script):
    got = listing(script)
    assert_events(got, script.expected(), "the whole log")


def test_account_audit_log_shows_only_its_account(script):
    """GET /v1/account/audit-log with a production key: the account's events, as the operator's
    account_id= listing showed them at that moment; a sandbox key: 403 forbidden."""
    own = script.own_log
    acme_then = [e for e in listing(script, account_id=script.acme) if e["action"] != "account.deleted"]
    assert own == acme_then
    assert {e["account_id"] for e in own} == {script.acme}
    assert_error(script.sandbox_refusal, 403, "forbidden")
    globex_own = listing(script, path=ACCOUNT_AUDIT, client=Client(script.server, script.globex_key))
    assert globex_own == listing(script, account_id=script.globex)
    assert {e["account_id"] for e in globex_own} == {script.globex}


def test_no_listing_holds_a_key_a_token_or_a_digest(script):
    """Every audit listing body received in this module: no plaintext key or token made by the
    script (nor its random part), and no 64-hex string (an HMAC-SHA256 digest)."""
    for path in (ADMIN_AUDIT, ADMIN_AUDIT + f"?account_id={script.acme}", ADMIN_AUDIT + "?action=admin_token.created"):
        r = script.admin.session.get(script.server.base_url + path, headers={"Authorization": f"Bearer {script.admin.key}"})
        script.bodies.append(r.text)  # raw: also when the document would refuse the body
    bodies = [b for b in script.bodies if '"events"' in b]
    assert len(bodies) >= 5
    assert len(script.secrets) >= 8
    for body in bodies:
        for secret in script.secrets:
            assert secret not in body, "a key or token in an audit listing"
            random_part = secret.rsplit("_", 1)[1][:32]
            assert random_part not in body, "a key's random part in an audit listing"
        assert not HEX64.search(body), f"a 64-hex string (digest?) in an audit listing: {HEX64.search(body)[0]}"


# --------------------------------------------------------------------------- query parameters


@pytest.mark.parametrize(
    "query",
    [
        "action=key.nope", "action=", "action=KEY.CREATED", "action=key.created,key.deleted", "action=key",
        "action=key.created%00", "account_id=0", "account_id=01", "account_id=-1", "account_id=abc",
        f"account_id={2**63}", "account_id=", "account_id=1.0", "limit=0", "limit=1001", "limit=abc", "limit=-1",
        "foo=1", "external_id=x", "action=key.created&action=key.deleted",
    ],
)  # fmt: skip
def test_admin_audit_bad_parameters(script, query):
    assert_error(script.admin.get(ADMIN_AUDIT + "?" + query), 400, "invalid_parameter")


def test_account_audit_log_parameters(script):
    """The account's listing accepts only limit and after."""
    client = Client(script.server, script.globex_key)
    for query in ("account_id=1", f"account_id={script.globex}", "action=key.created", "limit=0", "limit=1001", "x=1"):
        assert_error(client.get(ACCOUNT_AUDIT + "?" + query), 400, "invalid_parameter")
    assert client.get(ACCOUNT_AUDIT + "?limit=1000").status_code == 200


def test_audit_cursors_belong_to_their_listing(script):
    admin = script.admin
    first = admin.get(ADMIN_AUDIT + f"?limit=1&account_id={script.acme}")
    cursor = first.body["next_cursor"]
    assert cursor is not None
    assert admin.get(ADMIN_AUDIT + f"?limit=1&account_id={script.acme}&after={cursor}").status_code == 200
    for query in (
        f"after={cursor}",  # without its filter
        f"account_id={script.globex}&after={cursor}",
        f"account_id={script.acme}&action=key.created&after={cursor}",
        f"account_id={script.acme}&after={cursor[:-1]}{'0' if cursor[-1] != '0' else '1'}",
        f"account_id={script.acme}&after=garbage",
    ):
        assert_error(admin.get(ADMIN_AUDIT + "?" + query), 400, "invalid_cursor")
    own = Client(script.server, script.globex_key)
    own_cursor = own.get(ACCOUNT_AUDIT + "?limit=1").body["next_cursor"]
    assert own_cursor is not None
    assert_error(admin.get(ADMIN_AUDIT + f"?account_id={script.globex}&after={own_cursor}"), 400, "invalid_cursor")
    assert_error(own.get(ACCOUNT_AUDIT + f"?after={cursor}"), 400, "invalid_cursor")
    globex_cursor = admin.get(ADMIN_AUDIT + f"?limit=1&account_id={script.globex}").body["next_cursor"]
    assert_error(own.get(ACCOUNT_AUDIT + f"?after={globex_cursor}"), 400, "invalid_cursor")


# --------------------------------------------------------------------------- pagination


def test_pagination_over_hundreds_of_events(server_factory):
    """Over 250 events, limit=100: every event exactly once, newest first, on the operator's
    listing (account_id=) and the account's own; events added while paging do not shift the
    later pages."""
    server = server_factory(admin=True)
    acme, admin = server.account, server.admin
    r = acme.client.post(json={"name": "churn", "key_type": "sandbox"})  # no X-Request-Id: the server makes one
    assert r.status_code == 201, r.text
    key = r.body
    (ev,) = acme.client.get(ACCOUNT_AUDIT + "?limit=1").body["events"]
    assert ev["action"] == "key.created" and ev["target"]["id"] == key["id"]
    assert ev["request_id"] == r.headers["X-Request-Id"] and re.fullmatch(r"[0-9a-f]{32}", ev["request_id"])
    assert ev["client_ip"] == LOCALHOST
    for i in range(130):  # two events per round
        acme.client.update(key["id"], name=f"churn {i}")
        acme.client.update(key["id"], is_active=bool(i % 2))
    for path, client, params in (
        (ADMIN_AUDIT, admin, {"account_id": acme.id}),
        (ACCOUNT_AUDIT, acme.client, {}),
    ):
        events, sizes = walk_pages(client, path, "events", limit=100, **params)
        assert sizes == [100, 100, 63], sizes
        ids = [e["id"] for e in events]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == 263
        assert events[-1]["action"] == "account.created" and events[-2]["action"] == "key.created"
        assert [e["changes"]["name"]["new"] for e in events if "name" in (e["changes"] or {})][:2] == [
            "churn 129", "churn 128"]  # fmt: skip
        # The same walk with another limit gives the same events.
        assert walk_pages(client, path, "events", limit=7, **params)[0] == events
    everything = events
    # Default limit: 100.
    r = acme.client.get(ACCOUNT_AUDIT)
    assert r.body["events"] == everything[:100] and r.body["next_cursor"] is not None
    # One account's cursor is not another's.
    other = admin.post(ADMIN_ACCOUNTS, json={"name": "other"})
    assert other.status_code == 201, other.text
    other_client = Client(server, other.body["api_key"]["api_key"])
    assert_error(other_client.get(ACCOUNT_AUDIT + "?after=" + r.body["next_cursor"]), 400, "invalid_cursor")

    # Events recorded after the first page do not shift the later ones.
    first = acme.client.get(ACCOUNT_AUDIT + "?limit=100")
    for i in range(15):
        acme.client.update(key["id"], name=f"late {i}")
    fresh, _ = walk_pages(acme.client, ACCOUNT_AUDIT, "events", limit=100)
    assert len(fresh) == 263 + 15 and fresh[15:] == everything
    walked = first.body["events"]
    after = first.body["next_cursor"]
    while after is not None:
        r = acme.client.get(ACCOUNT_AUDIT + "?" + urlencode({"limit": 100, "after": after}))
        walked += r.body["events"]
        after = r.body["next_cursor"]
    assert walked == everything


def test_account_log_filtered_by_key(server):
    """?key_id= keeps the events about one key of the account, pages with cursors bound to that filter."""
    client = server.client
    a = client.create("A", "sandbox")
    b = client.create("B", "sandbox")
    client.update(a["id"], name="A2")
    client.update(b["id"], name="B2")
    client.update(a["id"], is_active=False)
    r = client.get(f"/v1/account/audit-log?key_id={a['id']}")
    assert r.status_code == 200, r.text
    events = r.body["events"]
    assert [e["action"] for e in events] == ["key.updated", "key.updated", "key.created"]
    assert all(e["target"] == {"type": "key", "id": a["id"]} for e in events)
    # paged one at a time: the same events, and the cursor is this filter's only
    first = client.get(f"/v1/account/audit-log?key_id={a['id']}&limit=1")
    cursor = first.body["next_cursor"]
    assert cursor
    second = client.get(f"/v1/account/audit-log?key_id={a['id']}&limit=1&after={cursor}")
    assert second.status_code == 200 and second.body["events"][0]["id"] == events[1]["id"]
    assert_error(client.get(f"/v1/account/audit-log?limit=1&after={cursor}"), 400, "invalid_cursor")
    assert_error(client.get(f"/v1/account/audit-log?key_id={b['id']}&after={cursor}"), 400, "invalid_cursor")
    # another account's key, or no key at all: nothing
    other = server.create_account("other")
    wait_until(lambda: other.client.get().status_code == 200, 10, what="the other account")
    r = other.client.get(f"/v1/account/audit-log?key_id={a['id']}")
    assert r.status_code == 200 and r.body["events"] == []
    for bad in ("0", "-1", "x", "01", "99999999999999999999"):
        assert_error(client.get(f"/v1/account/audit-log?key_id={bad}"), 400, "invalid_parameter")
