"""The operator API (`/v1/admin/...`, issue 9; docs/contract.md "Admin tokens", "Operator API",
"Cursors") and admin tokens, black-box, on both backends.

- Cross-authentication: an admin token is never an account key (401 invalid_api_key on
  `/v1/account/...` and `/v1/auth/verify`), an account key is never an admin token (401
  invalid_admin_token on every `/v1/admin/` route and method), and a refused request changes
  nothing (the keys, the accounts and the audit events are listed after each one).
- A revoked admin token is refused on the instance and (PostgreSQL) on another instance.
- Accounts: create (the key shown once, `external_id` retries), list (cursor pagination, also
  while accounts are being created), show, update, delete; keys issued by an operator.
- Every `/v1/admin/` response carries `X-Request-Id`.

Suspension is in test_suspension.py, the audit log in test_audit.py. No duration is asserted;
what another instance must eventually see is polled with a generous deadline.
"""

import json
import re
import threading
from urllib.parse import quote

import pytest

from conftest import (
    ACCOUNT_AUDIT,
    ADMIN_ACCOUNTS,
    ADMIN_AUDIT,
    COLLECTION,
    CREATED_MESSAGE,
    KEY_FIELDS,
    Client,
    ServerFactory,
    assert_error,
    assert_key_format,
    forge_key,
    json_bytes,
    parallel,
    parse_time,
    postgres_only,
    run_cli,
    snapshot,
    strict_json,
    wait_until,
    walk_pages,
)

VERIFY = "/v1/auth/verify"
ACCOUNT_FIELDS = ["id", "name", "external_id", "status", "max_keys", "key_count", "created_at"]
ADMIN_REALM = 'Bearer realm="apikeyd-admin"'
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
INT64_MAX = 2**63 - 1
OTHER_INSTANCE_TIMEOUT = 5.0  # another instance follows a change (contract: 100 ms; generous here)
NON_CANONICAL_IDS = ["01", "0", "-1", "abc", str(2**63), "1.0", "+1", "0x1", str(2**64 + 1)]
JSON = {"Content-Type": "application/json"}


# --------------------------------------------------------------------------- helpers


def account_path(account_id):
    return f"{ADMIN_ACCOUNTS}{account_id}/"


def keys_path(account_id):
    return f"{ADMIN_ACCOUNTS}{account_id}/keys/"


def assert_account(obj, **expected):
    assert list(obj) == ACCOUNT_FIELDS, f"account fields (order): {list(obj)}"
    parse_time(obj["created_at"])
    for field, value in expected.items():
        assert obj[field] == value, f"{field}: {obj[field]!r} != {value!r} in {obj}"


def create_account(admin, name="Customer", **fields):
    r = admin.post(ADMIN_ACCOUNTS, json={"name": name, **fields})
    assert r.status_code == 201, r.text
    return r.body


def get_account(admin, account_id):
    r = admin.get(account_path(account_id))
    assert r.status_code == 200, r.text
    return r.body


def patch_account(admin, account_id, **fields):
    r = admin.request("PATCH", account_path(account_id), json=fields)
    assert r.status_code == 200, r.text
    return r.body


def issue_key(admin, account_id, name="Issued", key_type="production", **fields):
    r = admin.post(keys_path(account_id), json={"name": name, "key_type": key_type, **fields})
    assert r.status_code == 201, r.text
    return r.body


def all_accounts(admin):
    return walk_pages(admin, ADMIN_ACCOUNTS, "accounts", limit=1000)[0]


def account_events(admin, account_id):
    """The account's audit events (filtered by account_id, so that only account and key events appear)."""
    return walk_pages(admin, ADMIN_AUDIT, "events", limit=1000, account_id=account_id)[0]


def verify(client, key=None):
    return client.request("GET", VERIFY, **({} if key is None else {"key": key}))


def assert_admin_401(r, code):
    assert_error(r, 401, code)
    assert r.headers["WWW-Authenticate"].startswith(ADMIN_REALM), r.headers["WWW-Authenticate"]


# --------------------------------------------------------------------------- a world for refusals


class World:
    """A server (`--auth-failures 0`: these tests send many bad credentials) with two accounts
    (acme with a production and a sandbox key besides its primary, and globex), an admin token,
    and a way to see everything that a request could change."""

    def __init__(self, server):
        self.server = server
        self.admin = server.admin
        self.acme = server.accounts[0]
        self.globex = server.accounts[1]
        self.prod = self.acme.client.create("Second Production", "production")
        self.sand = self.acme.client.create("Sandbox", "sandbox")
        self.sand_client = Client(server, self.sand["api_key"])

    def state(self):
        """The keys of both accounts (without last_used), the accounts and their audit events."""
        return {
            "acme keys": snapshot(self.acme.client),
            "globex keys": snapshot(self.globex.client),
            "accounts": all_accounts(self.admin),
            "acme events": account_events(self.admin, self.acme.id),
            "globex events": account_events(self.admin, self.globex.id),
        }

    def last_used(self):
        """last_used of acme's keys other than its primary (which lists them)."""
        return {k["id"]: k["last_used"] for k in self.acme.client.list() if k["id"] != self.acme.primary_id}


@pytest.fixture(scope="module")
def world(backend, apikeyd_bin, tmp_path_factory):
    factory = ServerFactory(backend, tmp_path_factory.mktemp("admin-world"))
    try:
        server = factory("--auth-failures", 0, accounts=("acme", "globex"), admin=True)
        yield World(server)
    finally:
        factory.close_all()


class Tenant:
    """A new account in the world, made over HTTP: `.id`, `.key` (its primary), `.primary_id`,
    `.client` (a Client with the primary), `.server` and `.admin`."""

    def __init__(self, world, name="tenant", **fields):
        self.server, self.admin = world.server, world.admin
        body = create_account(self.admin, name, **fields)
        self.account = body["account"]
        self.id = self.account["id"]
        self.key = body["api_key"]["api_key"]
        self.primary_id = body["api_key"]["id"]
        self.client = Client(self.server, self.key)


@pytest.fixture
def tenant(world):
    return Tenant(world)


# --------------------------------------------------------------------------- cross-authentication


def account_routes(w):
    """(method, path, json body or None) of every account route and of verification, each a
    request that would change something (or be a use) if it were accepted."""
    return [
        ("GET", COLLECTION, None),
        ("POST", COLLECTION, {"name": "Smuggled", "key_type": "production"}),
        ("PATCH", f"{COLLECTION}{w.prod['id']}/", {"is_active": False}),
        ("PATCH", f"{COLLECTION}{w.prod['id']}/", {"is_primary": True}),
        ("DELETE", f"{COLLECTION}{w.prod['id']}/", None),
        ("DELETE", f"{COLLECTION}{w.sand['id']}/", None),
        ("GET", ACCOUNT_AUDIT, None),
        ("GET", VERIFY, None),
        ("POST", VERIFY, None),
        ("DELETE", f"{VERIFY}/some/original/path", None),
    ]


def test_admin_token_is_not_an_account_key(world):
    """An admin token on every account route and on verification: 401 invalid_api_key, and
    nothing changes (keys, accounts, audit events, last_used)."""
    before, used = world.state(), world.last_used()
    for method, path, body in account_routes(world):
        kw = {} if body is None else {"json": body}
        r = world.admin.request(method, path, **kw)
        assert_error(r, 401, "invalid_api_key")
        assert world.state() == before, f"{method} {path} with an admin token changed something"
    assert world.last_used() == used


def admin_routes(w):
    """(method, path, json body or None) of every /v1/admin/ route and method, each a request
    that would change or show something if it were accepted."""
    acme = w.acme.id
    return [
        ("GET", ADMIN_ACCOUNTS, None),
        ("GET", ADMIN_ACCOUNTS + "?limit=1", None),
        ("POST", ADMIN_ACCOUNTS, {"name": "Smuggled", "external_id": "smuggled"}),
        ("GET", account_path(acme), None),
        ("PATCH", account_path(acme), {"status": "suspended"}),
        ("PATCH", account_path(acme), {"name": "Renamed", "max_keys": 3}),
        ("DELETE", account_path(acme), None),
        ("POST", keys_path(acme), {"name": "Smuggled", "key_type": "production", "make_primary": True}),
        ("GET", ADMIN_AUDIT, None),
        ("GET", ADMIN_AUDIT + f"?account_id={acme}", None),
    ]


def credentials(w):
    """(what, Authorization header value or None, expected code) of everything that is not a
    valid admin token."""
    return [
        ("no header", None, "missing_admin_token"),
        ("empty bearer token", "Bearer ", "missing_admin_token"),
        ("production primary key", f"Bearer {w.acme.key}", "invalid_admin_token"),
        ("second production key", f"Bearer {w.prod['api_key']}", "invalid_admin_token"),
        ("sandbox key", f"Bearer {w.sand['api_key']}", "invalid_admin_token"),
        ("another account's key", f"Bearer {w.globex.key}", "invalid_admin_token"),
        ("forged production key", f"Bearer {forge_key('prod')}", "invalid_admin_token"),
        ("forged admin token", f"Bearer {forge_key('admin')}", "invalid_admin_token"),
        ("admin token with a bad checksum", f"Bearer {w.admin.key[:-1]}{'A' if w.admin.key[-1] != 'A' else 'B'}",
         "invalid_admin_token"),  # fmt: skip
        ("admin token under another scheme", f"Basic {w.admin.key}", "invalid_admin_token"),
        ("admin token with another brand", f"Bearer xx{w.admin.key[2:]}", "invalid_admin_token"),
    ]


@pytest.mark.parametrize("route", range(10))
def test_account_keys_are_not_admin_tokens(world, route):
    """Every /v1/admin/ route and method with no header, account keys (production, sandbox,
    another account's), forged and mangled tokens: 401 with the admin realm, and nothing
    changes."""
    method, path, body = admin_routes(world)[route]
    before, used = world.state(), world.last_used()
    for what, auth, code in credentials(world):
        kw = {} if body is None else {"json": body}
        r = world.admin.request(method, path, key=None, headers={"Authorization": auth}, **kw)
        assert r.status_code == 401, f"{what} on {method} {path}: {r.status_code} {r.text}"
        assert_admin_401(r, code)
        assert world.state() == before, f"{what} on {method} {path} changed something"
    # A refused account key is not a use either.
    assert world.last_used() == used


def test_the_admin_token_itself_works_on_every_admin_route(world):
    """The control for the refusals above: the same token is accepted (read-only routes)."""
    for path in (ADMIN_ACCOUNTS, account_path(world.acme.id), ADMIN_AUDIT + f"?account_id={world.acme.id}"):
        assert world.admin.get(path).status_code == 200


def test_revoked_admin_token_is_refused(server_factory):
    """`apikeyd admin-token revoke`: the token is refused on every route (401 invalid_admin_token)
    once the server has seen the revocation (a CLI is another process: polled); the other token
    keeps working; `admin-token list` no longer shows it."""
    server = server_factory(admin=True)
    doomed = server.admin_client("doomed")
    acme = server.account.id
    assert doomed.get(account_path(acme)).status_code == 200
    server.revoke_admin_token(doomed.token_info["id"])

    def refused():
        r = doomed.get(account_path(acme))
        if r.status_code == 200:
            return False
        assert_admin_401(r, "invalid_admin_token")
        return True

    wait_until(refused, OTHER_INSTANCE_TIMEOUT, interval=0.02, what="the revoked admin token refused")
    before = get_account(server.admin, acme)
    for method, path, body in [
        ("GET", ADMIN_ACCOUNTS, None),
        ("POST", ADMIN_ACCOUNTS, {"name": "After revocation"}),
        ("PATCH", account_path(acme), {"status": "suspended"}),
        ("DELETE", account_path(acme), None),
        ("POST", keys_path(acme), {"name": "After revocation", "key_type": "sandbox"}),
        ("GET", ADMIN_AUDIT, None),
    ]:
        r = doomed.request(method, path, **({} if body is None else {"json": body}))
        assert_admin_401(r, "invalid_admin_token")
    assert get_account(server.admin, acme) == before
    assert [a["id"] for a in all_accounts(server.admin)] == [acme]
    p = run_cli("admin-token", "list", "--db", server.db, *server.common_args())
    assert p.returncode == 0, p.stderr
    listed = strict_json(p.stdout)["admin_tokens"]
    assert [t["id"] for t in listed] == [server.admin.token_info["id"]]
    assert doomed.key not in p.stdout and server.admin.key not in p.stdout
    # Revoking it again: unknown id, exit 1, one line.
    p = run_cli("admin-token", "revoke", "--db", server.db, *server.common_args(), doomed.token_info["id"])
    assert p.returncode == 1 and p.stderr.count("\n") == 1, (p.returncode, p.stderr)


@postgres_only  # two instances on one database: PostgreSQL by nature
def test_revoked_admin_token_is_refused_on_another_instance(server_factory):
    a = server_factory(admin=True)
    doomed = a.admin_client("doomed")
    b = server_factory(share=a)
    on_b = Client(b, doomed.key)
    assert on_b.get(ADMIN_ACCOUNTS).status_code == 200
    a.revoke_admin_token(doomed.token_info["id"])
    for server in (a, b):
        client = Client(server, doomed.key)

        def refused(client=client):
            r = client.get(ADMIN_ACCOUNTS)
            if r.status_code == 200:
                return False
            assert_admin_401(r, "invalid_admin_token")
            return True

        wait_until(refused, OTHER_INSTANCE_TIMEOUT, interval=0.01, what="the revoked token refused on every instance")
    # The other token still works on B.
    assert Client(b, a.admin.key).get(ADMIN_ACCOUNTS).status_code == 200


def test_admin_token_cli_output(server_factory):
    """`admin-token create` prints id, name, created_at and token (in that order); list never
    shows a token."""
    server = server_factory(start=False)
    info = server.create_admin_token("ops team")
    assert list(info) == ["id", "name", "created_at", "token"]
    assert info["name"] == "ops team"
    parse_time(info["created_at"])
    p = run_cli("admin-token", "list", "--db", server.db, *server.common_args())
    assert p.returncode == 0, p.stderr
    (listed,) = strict_json(p.stdout)["admin_tokens"]
    assert listed == {"id": info["id"], "name": "ops team", "prefix": info["token"][:13], "created_at": info["created_at"]}
    assert info["token"] not in p.stdout


# --------------------------------------------------------------------------- POST /v1/admin/accounts


def test_create_account_shape_and_key(world):
    admin = world.admin
    r = admin.post(ADMIN_ACCOUNTS, json={"name": "Acme Corp", "external_id": "cus_NffrFeUfNV2Hib", "max_keys": 20})
    assert r.status_code == 201, r.text
    assert list(r.body) == ["account", "api_key"]
    account, key = r.body["account"], r.body["api_key"]
    assert_account(account, name="Acme Corp", external_id="cus_NffrFeUfNV2Hib", status="active", max_keys=20, key_count=1)
    assert [f for f in key if f in KEY_FIELDS] == KEY_FIELDS
    assert set(key) == set(KEY_FIELDS) | {"api_key", "message"}
    assert key["name"] == "Production Key" and key["key_type"] == "production"
    assert key["is_active"] is True and key["is_primary"] is True and key["last_used"] is None
    assert key["message"] == CREATED_MESSAGE
    assert_key_format(key["api_key"], "production")
    assert key["key_prefix"] == key["api_key"][:12]
    # The account as shown later is the one created; the key is never shown again.
    shown = get_account(admin, account["id"])
    assert shown == account
    assert key["api_key"] not in json.dumps(all_accounts(admin))
    # The key works: verification and the account's own API.
    customer = Client(world.server, key["api_key"])
    v = verify(customer)
    assert v.status_code == 204
    assert v.headers["X-Account-Id"] == str(account["id"]) and v.headers["X-Key-Id"] == str(key["id"])
    assert v.headers["X-Key-Type"] == "production"
    listed = customer.list()
    assert [k["id"] for k in listed] == [key["id"]]
    assert {k: v for k, v in listed[0].items() if k != "last_used"} == {
        k: v for k, v in key.items() if k in KEY_FIELDS and k != "last_used"
    }
    # Defaults: no external_id, the server's --max-keys.
    plain = create_account(admin, "Plain")
    assert_account(plain["account"], name="Plain", external_id=None, status="active", max_keys=100, key_count=1)
    assert plain["account"]["id"] > account["id"]
    assert plain["api_key"]["api_key"] != key["api_key"]


def test_create_account_boundaries(world):
    admin = world.admin
    ext = "".join(chr(c) for c in range(0x21, 0x7F))  # every printable ASCII character but space
    made = []
    for fields in (
        {"name": "x" * 100, "external_id": "a" * 255, "max_keys": 1},
        {"name": "y", "external_id": ext, "max_keys": 1000000},
        {"name": "Zoë 株式会社", "external_id": None},
        {"name": "no external id either"},
    ):
        body = create_account(admin, **fields)
        expected = {k: v for k, v in fields.items() if k != "external_id"}
        assert_account(body["account"], external_id=fields.get("external_id"), **expected)
        made.append(body["account"])
    # All there (accounts without external_id do not collide with each other).
    listed = {a["id"]: a for a in all_accounts(admin)}
    assert [listed.get(a["id"]) for a in made] == made


def test_external_id_retry_is_safe(world):
    """A second create with the same external_id: 409 account_exists with the first account's id,
    and nothing new (no account, no key, no event)."""
    admin = world.admin
    first = create_account(admin, "Signup", external_id="cus_42")
    account_id = first["account"]["id"]
    before_accounts = all_accounts(admin)
    before_events = account_events(admin, account_id)
    for body in (
        {"name": "Signup", "external_id": "cus_42"},
        {"name": "Another name", "external_id": "cus_42", "max_keys": 5},
    ):
        r = admin.post(ADMIN_ACCOUNTS, json=body)
        assert_error(r, 409, "account_exists")
        assert r.body["error"]["account_id"] == account_id
        assert list(r.body["error"]) == ["code", "message", "account_id"]
        assert "api_key" not in r.text and "ml_prod_" not in r.text
    assert all_accounts(admin) == before_accounts
    assert get_account(admin, account_id)["key_count"] == 1
    assert [k["id"] for k in Client(world.server, first["api_key"]["api_key"]).list()] == [first["api_key"]["id"]]
    assert account_events(admin, account_id) == before_events
    # The ids that a failed create may have taken leave no visible account behind.
    later = create_account(admin, "Later", external_id="cus_43")
    assert [a["id"] for a in all_accounts(admin)] == [a["id"] for a in before_accounts] + [later["account"]["id"]]
    # The filter finds it.
    r = admin.get(ADMIN_ACCOUNTS + "?external_id=cus_42")
    assert [a["id"] for a in r.body["accounts"]] == [account_id] and r.body["next_cursor"] is None


def test_concurrent_creates_with_one_external_id_make_one_account(world):
    """Eight sign-up retries at once: one 201, seven 409 naming it."""
    admin = world.admin
    clients = [Client(world.server, admin.key) for _ in range(8)]
    results = parallel(lambda c: c.post(ADMIN_ACCOUNTS, json={"name": "Race", "external_id": "cus_race"}), clients, 8)
    created = [r for r in results if r.status_code == 201]
    assert len(created) == 1, [r.status_code for r in results]
    account_id = created[0].body["account"]["id"]
    for r in results:
        if r.status_code != 201:
            assert_error(r, 409, "account_exists")
            assert r.body["error"]["account_id"] == account_id
    assert [a["id"] for a in all_accounts(admin) if a["external_id"] == "cus_race"] == [account_id]
    assert get_account(admin, account_id)["key_count"] == 1


BAD_CREATES = [
    # (what, body as JSON or raw bytes, headers, status, code)
    ("unknown field", {"name": "x", "plan": "pro"}, JSON, 422, "validation_error"),
    ("read-only id", {"name": "x", "id": 99}, JSON, 422, "validation_error"),
    ("read-only status", {"name": "x", "status": "active"}, JSON, 422, "validation_error"),
    ("read-only key_count", {"name": "x", "key_count": 1}, JSON, 422, "validation_error"),
    ("read-only created_at", {"name": "x", "created_at": "2025-01-01T00:00:00Z"}, JSON, 422, "validation_error"),
    ("api_key", {"name": "x", "api_key": "ml_prod_x"}, JSON, 422, "validation_error"),
    ("no name", {"external_id": "cus_x"}, JSON, 422, "validation_error"),
    ("empty object", {}, JSON, 422, "validation_error"),
    ("name null", {"name": None}, JSON, 422, "validation_error"),
    ("name a number", {"name": 5}, JSON, 422, "validation_error"),
    ("name an array", {"name": ["x"]}, JSON, 422, "validation_error"),
    ("name empty", {"name": ""}, JSON, 422, "validation_error"),
    ("name white space", {"name": " \u00a0\u3000 "}, JSON, 422, "validation_error"),
    ("name 101 characters", {"name": "é" * 101}, JSON, 422, "validation_error"),
    ("name with a control character", {"name": "a\u0001b"}, JSON, 422, "validation_error"),
    ("name with DEL", {"name": "a\u007fb"}, JSON, 422, "validation_error"),
    ("name with a C1 control", {"name": "a\u0085b"}, JSON, 422, "validation_error"),
    ("external_id a number", {"name": "x", "external_id": 42}, JSON, 422, "validation_error"),
    ("external_id a boolean", {"name": "x", "external_id": True}, JSON, 422, "validation_error"),
    ("external_id with a space", {"name": "x", "external_id": "cus 42"}, JSON, 422, "validation_error"),
    ("external_id empty", {"name": "x", "external_id": ""}, JSON, 422, "validation_error"),
    ("external_id 256 characters", {"name": "x", "external_id": "a" * 256}, JSON, 422, "validation_error"),
    ("external_id non-ASCII", {"name": "x", "external_id": "cüs_42"}, JSON, 422, "validation_error"),
    ("external_id with a tab", {"name": "x", "external_id": "cus\t42"}, JSON, 422, "validation_error"),
    ("external_id with DEL", {"name": "x", "external_id": "cus\u007f"}, JSON, 422, "validation_error"),
    ("external_id with NUL", {"name": "x", "external_id": "cus\u0000x"}, JSON, 422, "validation_error"),
    ("max_keys 0", {"name": "x", "max_keys": 0}, JSON, 422, "validation_error"),
    ("max_keys -1", {"name": "x", "max_keys": -1}, JSON, 422, "validation_error"),
    ("max_keys 1000001", {"name": "x", "max_keys": 1000001}, JSON, 422, "validation_error"),
    ("max_keys 10^12", {"name": "x", "max_keys": 10**12}, JSON, 422, "validation_error"),
    ("max_keys 2^63-1", {"name": "x", "max_keys": INT64_MAX}, JSON, 422, "validation_error"),
    ("max_keys a string", {"name": "x", "max_keys": "5"}, JSON, 422, "validation_error"),
    ("max_keys 1.5", {"name": "x", "max_keys": 1.5}, JSON, 422, "validation_error"),
    ("max_keys 5.0", b'{"name":"x","max_keys":5.0}', JSON, 422, "validation_error"),
    ("max_keys 1e3", b'{"name":"x","max_keys":1e3}', JSON, 422, "validation_error"),
    ("max_keys a boolean", {"name": "x", "max_keys": True}, JSON, 422, "validation_error"),
    ("body an array", [{"name": "x"}], JSON, 422, "validation_error"),
    ("body a string", "x", JSON, 422, "validation_error"),
    ("body a number", 5, JSON, 422, "validation_error"),
    ("body null", None, JSON, 422, "validation_error"),
    ("invalid JSON", b'{"name": "x"', JSON, 400, "invalid_json"),
    ("trailing comma", b'{"name": "x",}', JSON, 400, "invalid_json"),
    ("duplicate key", b'{"name": "x", "name": "y"}', JSON, 400, "invalid_json"),
    ("invalid UTF-8", b'{"name": "\xff"}', JSON, 400, "invalid_json"),
    ("empty body", b"", JSON, 400, "invalid_json"),
    ("text/plain", b'{"name": "x"}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("no Content-Type", b'{"name": "x"}', {}, 415, "unsupported_media_type"),
    ("form", b"name=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ("over 64 KiB", json_bytes({"name": "x", "pad": "a" * 70000}), JSON, 413, "payload_too_large"),
]


@pytest.mark.parametrize("case", BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
def test_create_account_bad_input(world, case):
    what, body, headers, status, code = case
    before = world.state()
    data = body if isinstance(body, bytes) else json_bytes(body)
    r = world.admin.post(ADMIN_ACCOUNTS, data=data, headers=headers)
    assert_error(r, status, code)
    assert world.state() == before


def test_huge_max_keys_is_a_validation_error(world):
    """A `max_keys` beyond 64 bits is well-formed JSON with an out-of-range value: 422, like
    any other `max_keys` out of 1..1000000 (contract: 400 invalid_json is for malformed JSON,
    duplicate keys, deep nesting, bad UTF-8). Nothing is created."""
    before = world.state()
    for value in (2**64, -(2**64), 10**30):
        r = world.admin.post(ADMIN_ACCOUNTS, data=b'{"name":"x","max_keys":%d}' % value, headers=JSON)
        assert_error(r, 422, "validation_error")
        r = world.admin.request("PATCH", account_path(world.acme.id), data=b'{"max_keys":%d}' % value, headers=JSON)
        assert_error(r, 422, "validation_error")
    assert world.state() == before


def test_create_account_charset_parameter_is_json(world):
    r = world.admin.post(
        ADMIN_ACCOUNTS, data=b'{"name": "charset"}', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert r.status_code == 201, r.text


# --------------------------------------------------------------------------- GET /v1/admin/accounts


def make_accounts(admin, n, prefix="acct"):
    return [create_account(admin, f"{prefix}-{i}", external_id=f"{prefix}-{i}")["account"] for i in range(n)]


def test_pagination_walks_every_account_once_in_order(admin_server):
    admin = admin_server.admin
    made = make_accounts(admin, 104)  # 105 accounts with acme
    expected = [admin_server.account.id] + [a["id"] for a in made]
    assert expected == sorted(expected)
    for limit in (1, 7, 100, 104, 105, 106, 1000):
        items, sizes = walk_pages(admin, ADMIN_ACCOUNTS, "accounts", limit=limit)
        assert [a["id"] for a in items] == expected, f"limit={limit}"
        assert all(s == limit for s in sizes[:-1]) and 0 < sizes[-1] <= limit, (limit, sizes)
        for a in items:
            assert_account(a)
    # Default limit: 100.
    r = admin.get(ADMIN_ACCOUNTS)
    assert len(r.body["accounts"]) == 100 and r.body["next_cursor"] is not None
    rest = admin.get(ADMIN_ACCOUNTS + "?after=" + r.body["next_cursor"])
    assert [a["id"] for a in r.body["accounts"] + rest.body["accounts"]] == expected
    assert rest.body["next_cursor"] is None
    # A page is exactly what GET of each account shows.
    for a in items[:5]:
        assert get_account(admin, a["id"]) == a


def test_pagination_is_stable_under_concurrent_creates(admin_server):
    """While one client follows next_cursor (limit 3), accounts are created both between its
    pages and by another thread (at most 60): every account that existed at the start appears
    exactly once, ascending, and anything else is an account created meanwhile."""
    admin = admin_server.admin
    initial = [admin_server.account.id] + [a["id"] for a in make_accounts(admin, 30, "before")]
    stop = threading.Event()
    made_meanwhile = []
    errors = []

    def creator():
        other = Client(admin_server, admin.key)
        try:
            for i in range(60):
                if stop.is_set():
                    break
                r = other.post(ADMIN_ACCOUNTS, json={"name": f"during-{i}"})
                assert r.status_code == 201, r.text
                made_meanwhile.append(r.body["account"]["id"])
        except BaseException as e:  # reported below
            errors.append(e)

    thread = threading.Thread(target=creator)
    thread.start()
    seen = []
    try:
        after = None
        while True:
            r = admin.get(ADMIN_ACCOUNTS + "?limit=3" + ("" if after is None else f"&after={after}"))
            assert r.status_code == 200, r.text
            seen += [a["id"] for a in r.body["accounts"]]
            made_meanwhile.append(create_account(admin, f"between-{len(seen)}")["account"]["id"])
            after = r.body["next_cursor"]
            if after is None or len(seen) > 5000:
                break
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert len(seen) == len(set(seen)), "an account was listed twice"
    assert seen == sorted(seen), "not in ascending id order"
    missing = set(initial) - set(seen)
    assert not missing, f"accounts that existed throughout were skipped: {sorted(missing)}"
    extra = set(seen) - set(initial)
    assert all(i > max(initial) for i in extra)
    assert made_meanwhile, "the creator thread made no account"
    # Afterwards, a fresh walk sees everything.
    assert extra <= set(made_meanwhile)
    assert [a["id"] for a in all_accounts(admin)] == sorted(set(initial) | set(made_meanwhile))


def test_listing_limits(world):
    """limit 1..1000; anything else, and any unknown parameter: 400 invalid_parameter."""
    admin = world.admin
    make_accounts(admin, 2, "limits")
    total = len(all_accounts(admin))
    assert 2 < total < 999
    for limit in (1, 2, 999, 1000):
        r = admin.get(ADMIN_ACCOUNTS + f"?limit={limit}")
        assert r.status_code == 200, (limit, r.text)
        assert len(r.body["accounts"]) == min(limit, total)
        assert (r.body["next_cursor"] is None) == (limit >= total)
    for query in (
        "limit=0", "limit=1001", "limit=abc", "limit=-1", "limit=", "limit=1.5", "limit=%20", "limit=99999999999999999999",
        "limit=1e2", "foo=1", "limit=1&foo=1", "cursor=x", "account_id=1", "action=key.created", "LIMIT=1", "limit",
    ):  # fmt: skip
        r = admin.get(ADMIN_ACCOUNTS + "?" + query)
        assert_error(r, 400, "invalid_parameter")
    for query in ("external_id=a%20b", "external_id=" + "a" * 256, "external_id=", "external_id=%C3%A9", "external_id=%00"):
        assert_error(admin.get(ADMIN_ACCOUNTS + "?" + query), 400, "invalid_parameter")


def test_listing_external_id_filter(world):
    admin = world.admin
    made = make_accounts(admin, 3, "filter")
    for a in made:
        r = admin.get(ADMIN_ACCOUNTS + f"?external_id={a['external_id']}")
        assert r.body == {"accounts": [a], "next_cursor": None}
    r = admin.get(ADMIN_ACCOUNTS + "?external_id=nobody")
    assert r.body == {"accounts": [], "next_cursor": None}
    # Every printable character, percent-encoded where needed.
    odd = "a+b&c=d%e/f?g#h"
    created = create_account(admin, "odd", external_id=odd)["account"]
    r = admin.get(ADMIN_ACCOUNTS + "?external_id=" + quote(odd, safe=""))
    assert r.body["accounts"] == [created]


def test_bad_cursors(world, tenant):
    admin = world.admin
    make_accounts(admin, 4, "cur")
    first = admin.get(ADMIN_ACCOUNTS + "?limit=2")
    cursor = first.body["next_cursor"]
    assert cursor is not None
    # The real one works; also with a different limit.
    assert admin.get(ADMIN_ACCOUNTS + f"?limit=2&after={cursor}").status_code == 200
    assert admin.get(ADMIN_ACCOUNTS + f"?limit=500&after={cursor}").status_code == 200

    def altered(c):
        """Every single-character change of the cursor that stays printable."""
        out = set()
        for i, ch in enumerate(c):
            for rep in ("0", "1", "9", "a", "f", "Z"):
                if rep != ch:
                    out.add(c[:i] + rep + c[i + 1 :])
        return sorted(out)

    # Cursors of the audit logs (an admin page, an account page, a filtered admin page).
    for i in range(3):
        tenant.client.create(f"for events {i}", "sandbox")
    admin_events = admin.get(ADMIN_AUDIT + f"?limit=1&account_id={tenant.id}").body["next_cursor"]
    own_events = tenant.client.get(ACCOUNT_AUDIT + "?limit=1").body["next_cursor"]
    assert admin_events is not None and own_events is not None
    bad = ["garbage", "", "0", "-1", "1", cursor + "0", cursor[:-1], "0" + cursor, " " + cursor,
           admin_events, own_events, "9" * 30, cursor.replace(".", "")] + altered(cursor)  # fmt: skip
    # The check in upper case, when it has a letter to raise: about 1 cursor in 1,850 has
    # 16 decimal digits for a check, and its upper case is the cursor itself, which works.
    if cursor.upper() != cursor:
        bad.append(cursor.upper())
    for after in bad:
        r = admin.get(ADMIN_ACCOUNTS + "?after=" + after.replace(" ", "%20"))
        assert_error(r, 400, "invalid_cursor")
    # The accounts cursor with a filter it was not made with.
    assert_error(admin.get(ADMIN_ACCOUNTS + f"?external_id=cur-3&after={cursor}"), 400, "invalid_cursor")
    # An accounts cursor on the audit logs.
    assert_error(admin.get(ADMIN_AUDIT + f"?after={cursor}"), 400, "invalid_cursor")
    assert_error(tenant.client.get(ACCOUNT_AUDIT + f"?after={cursor}"), 400, "invalid_cursor")


def test_cursor_from_another_servers_secret_is_refused(world, server_factory):
    """A cursor signed by another database's secret is garbage here."""
    other = server_factory(accounts=("one", "two", "three"), admin=True)
    cursor = world.admin.get(ADMIN_ACCOUNTS + "?limit=1").body["next_cursor"]
    assert world.admin.get(ADMIN_ACCOUNTS + f"?after={cursor}").status_code == 200
    assert_error(other.admin.get(ADMIN_ACCOUNTS + f"?after={cursor}"), 400, "invalid_cursor")


# --------------------------------------------------------------------------- one account


def test_unknown_and_non_canonical_ids_are_404(world):
    before = world.state()
    ids = NON_CANONICAL_IDS + [str(INT64_MAX), "999999", f"0{world.acme.id}"]
    for account_id in ids:
        for method, path, body in (
            ("GET", account_path(account_id), None),
            ("PATCH", account_path(account_id), {"status": "suspended"}),
            ("DELETE", account_path(account_id), None),
            ("POST", keys_path(account_id), {"name": "x", "key_type": "production"}),
        ):
            r = world.admin.request(method, path, **({} if body is None else {"json": body}))
            assert_error(r, 404, "not_found")
    assert world.state() == before


def test_get_account_counts_keys(tenant):
    admin, acme = tenant.admin, tenant
    shown = get_account(admin, acme.id)
    assert_account(shown, id=acme.id, name="tenant", external_id=None, status="active", max_keys=100, key_count=1)
    made = [acme.client.create(f"k{i}", "sandbox" if i % 2 else "production") for i in range(3)]
    assert get_account(admin, acme.id)["key_count"] == 4
    acme.client.update(made[0]["id"], is_active=False)  # inactive keys count
    assert get_account(admin, acme.id)["key_count"] == 4
    acme.client.remove(made[1]["id"])  # deleted ones do not
    assert get_account(admin, acme.id)["key_count"] == 3
    # Trailing slash optional.
    assert admin.get(account_path(acme.id).rstrip("/")).body == get_account(admin, acme.id)


def test_patch_account_fields(server_factory):
    server = server_factory("--max-keys", 50, admin=True)
    admin, acme = server.admin, server.account
    original = get_account(admin, acme.id)
    assert original["max_keys"] == 50  # the server's --max-keys
    assert create_account(admin, "capped by the server")["account"]["max_keys"] == 50
    renamed = patch_account(admin, acme.id, name="Acme Corporation")
    assert renamed == {**original, "name": "Acme Corporation"}
    capped = patch_account(admin, acme.id, max_keys=5)
    assert capped == {**renamed, "max_keys": 5}
    suspended = patch_account(admin, acme.id, status="suspended")
    assert suspended == {**capped, "status": "suspended"}
    both = patch_account(admin, acme.id, status="active", name="Acme", max_keys=1000000)
    assert both == {**original, "name": "Acme", "max_keys": 1000000}
    back = patch_account(admin, acme.id, max_keys=None)
    assert back == {**original, "name": "Acme", "max_keys": 50}
    assert get_account(admin, acme.id) == back
    # Unchanged fields are still a valid PATCH.
    assert patch_account(admin, acme.id, name="Acme", status="active") == back
    # The cap set by PATCH applies: up to it, then key_limit_reached.
    patch_account(admin, acme.id, max_keys=2)
    acme.client.create("second", "sandbox")
    assert_error(acme.client.post(json={"name": "third", "key_type": "sandbox"}), 409, "key_limit_reached")
    assert_error(admin.post(keys_path(acme.id), json={"name": "third", "key_type": "sandbox"}), 409, "key_limit_reached")
    assert get_account(admin, acme.id)["key_count"] == 2


def test_patch_max_keys_below_key_count(tenant):
    admin, acme = tenant.admin, tenant
    for i in range(2):
        acme.client.create(f"k{i}", "sandbox")
    before = get_account(admin, acme.id)
    events = account_events(admin, acme.id)
    assert before["key_count"] == 3
    for body in ({"max_keys": 2}, {"max_keys": 1}, {"max_keys": 2, "name": "Renamed", "status": "suspended"}):
        r = admin.request("PATCH", account_path(acme.id), json=body)
        assert_error(r, 409, "max_keys_below_key_count")
        assert get_account(admin, acme.id) == before, "a refused PATCH changed the account"
    assert account_events(admin, acme.id) == events
    assert verify(acme.client).status_code == 204  # not suspended by the refused PATCH
    # Exactly key_count is fine.
    assert patch_account(admin, acme.id, max_keys=3)["max_keys"] == 3


BAD_PATCHES = [
    ("empty object", {}, JSON, 422, "validation_error"),
    ("external_id", {"external_id": "cus_1"}, JSON, 422, "validation_error"),
    ("unknown field", {"plan": "pro"}, JSON, 422, "validation_error"),
    ("read-only id", {"id": 5}, JSON, 422, "validation_error"),
    ("read-only key_count", {"key_count": 0}, JSON, 422, "validation_error"),
    ("read-only created_at", {"created_at": "2025-01-01T00:00:00Z"}, JSON, 422, "validation_error"),
    ("valid and unknown field", {"status": "suspended", "plan": "pro"}, JSON, 422, "validation_error"),
    ("status unknown", {"status": "deleted"}, JSON, 422, "validation_error"),
    ("status upper case", {"status": "SUSPENDED"}, JSON, 422, "validation_error"),
    ("status a boolean", {"status": True}, JSON, 422, "validation_error"),
    ("status null", {"status": None}, JSON, 422, "validation_error"),
    ("name empty", {"name": ""}, JSON, 422, "validation_error"),
    ("name null", {"name": None}, JSON, 422, "validation_error"),
    ("name 101 characters", {"name": "n" * 101}, JSON, 422, "validation_error"),
    ("name with a newline", {"name": "a\nb"}, JSON, 422, "validation_error"),
    ("max_keys 0", {"max_keys": 0}, JSON, 422, "validation_error"),
    ("max_keys -1", {"max_keys": -1}, JSON, 422, "validation_error"),
    ("max_keys 1000001", {"max_keys": 1000001}, JSON, 422, "validation_error"),
    ("max_keys a string", {"max_keys": "5"}, JSON, 422, "validation_error"),
    ("max_keys 1.5", {"max_keys": 1.5}, JSON, 422, "validation_error"),
    ("body an array", [], JSON, 422, "validation_error"),
    ("body null", None, JSON, 422, "validation_error"),
    ("invalid JSON", b"{", JSON, 400, "invalid_json"),
    ("duplicate key", b'{"status": "suspended", "status": "active"}', JSON, 400, "invalid_json"),
    ("text/plain", b'{"status": "suspended"}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("over 64 KiB", json_bytes({"name": "x" * 70000}), JSON, 413, "payload_too_large"),
]


@pytest.mark.parametrize("case", BAD_PATCHES, ids=[c[0] for c in BAD_PATCHES])
def test_patch_account_bad_input(world, case):
    what, body, headers, status, code = case
    before = world.state()
    data = body if isinstance(body, bytes) else json_bytes(body)
    r = world.admin.request("PATCH", account_path(world.acme.id), data=data, headers=headers)
    assert_error(r, status, code)
    assert world.state() == before


def test_delete_account_removes_it_and_all_its_keys(server_factory):
    server = server_factory(accounts=("acme", "globex"), admin=True)
    admin = server.admin
    doomed = create_account(admin, "Doomed", external_id="cus_doomed")
    doomed_id = doomed["account"]["id"]
    owner = Client(server, doomed["api_key"]["api_key"])
    keys = [doomed["api_key"]["api_key"]]
    keys.append(owner.create("second production", "production")["api_key"])
    keys.append(owner.create("sandbox", "sandbox")["api_key"])
    keys.append(issue_key(admin, doomed_id, "issued", "sandbox")["api_key"])
    inactive = owner.create("inactive", "sandbox")
    owner.update(inactive["id"], is_active=False)
    keys.append(inactive["api_key"])
    for key in keys[:-1]:
        assert verify(owner, key).status_code == 204
    others = snapshot(server.accounts[1].client), snapshot(server.account.client)

    r = admin.request("DELETE", account_path(doomed_id))
    assert r.status_code == 204 and r.content == b""
    for key in keys:  # from their very next request
        assert_error(verify(owner, key), 401, "invalid_api_key")
        assert_error(owner.get(key=key), 401, "invalid_api_key")
    assert_error(admin.get(account_path(doomed_id)), 404, "not_found")
    assert_error(admin.request("DELETE", account_path(doomed_id)), 404, "not_found")
    assert_error(admin.request("PATCH", account_path(doomed_id), json={"name": "x"}), 404, "not_found")
    assert_error(admin.post(keys_path(doomed_id), json={"name": "x", "key_type": "sandbox"}), 404, "not_found")
    assert doomed_id not in [a["id"] for a in all_accounts(admin)]
    assert admin.get(ADMIN_ACCOUNTS + "?external_id=cus_doomed").body["accounts"] == []
    # The other accounts are untouched.
    assert (snapshot(server.accounts[1].client), snapshot(server.account.client)) == others
    # Its events stay, ending with the deletion.
    events = account_events(admin, doomed_id)
    assert events[0]["action"] == "account.deleted"
    # Deleted stays deleted after a restart.
    server.restart()
    for key in keys:
        assert_error(verify(Client(server, key)), 401, "invalid_api_key")
    assert doomed_id not in [a["id"] for a in all_accounts(Client(server, admin.key))]
    # The external_id is free again.
    again = create_account(Client(server, admin.key), "Doomed again", external_id="cus_doomed")
    assert again["account"]["id"] != doomed_id


@postgres_only  # two instances on one database: PostgreSQL by nature
def test_delete_account_reaches_another_instance(server_factory):
    a = server_factory(admin=True)
    b = server_factory(share=a)
    doomed = create_account(a.admin, "Doomed")
    owner = Client(a, doomed["api_key"]["api_key"])
    keys = [doomed["api_key"]["api_key"], owner.create("sandbox", "sandbox")["api_key"]]
    on_b = [Client(b, k) for k in keys]
    for c in on_b:
        wait_until(lambda c=c: verify(c).status_code == 204, OTHER_INSTANCE_TIMEOUT, what="the keys on B")
    r = a.admin.request("DELETE", account_path(doomed["account"]["id"]))
    assert r.status_code == 204
    for c in on_b:

        def refused(c=c):
            r = verify(c)
            if r.status_code == 204:
                return False
            assert_error(r, 401, "invalid_api_key")
            return True

        wait_until(refused, OTHER_INSTANCE_TIMEOUT, interval=0.01, what="the deleted account's keys refused on B")
        assert_error(c.get(), 401, "invalid_api_key")
    assert_error(Client(b, a.admin.key).get(account_path(doomed["account"]["id"])), 404, "not_found")


# --------------------------------------------------------------------------- POST /v1/admin/accounts/{id}/keys


def test_issue_key(tenant):
    admin, acme = tenant.admin, tenant
    for key_type in ("production", "sandbox"):
        r = admin.post(keys_path(acme.id), json={"name": f"Issued {key_type}", "key_type": key_type})
        assert r.status_code == 201, r.text
        key = r.body
        assert [f for f in key if f in KEY_FIELDS] == KEY_FIELDS
        assert set(key) == set(KEY_FIELDS) | {"api_key", "message"}
        assert key["message"] == CREATED_MESSAGE
        assert_key_format(key["api_key"], key_type)
        assert key["key_prefix"] == key["api_key"][:12]
        assert key["is_active"] is True and key["is_primary"] is False and key["last_used"] is None
        assert key["key_type"] == key_type and key["name"] == f"Issued {key_type}"
        v = verify(admin, key["api_key"])
        assert v.status_code == 204 and v.headers["X-Account-Id"] == str(acme.id)
        listed = acme.client.by_id()[key["id"]]
        assert {k: v for k, v in listed.items() if k != "last_used"} == {
            k: v for k, v in key.items() if k in KEY_FIELDS and k != "last_used"
        }
    assert get_account(admin, acme.id)["key_count"] == 3
    # make_primary false is the default.
    plain = issue_key(admin, acme.id, "explicitly not primary", make_primary=False)
    assert plain["is_primary"] is False
    assert acme.client.by_id()[acme.primary_id]["is_primary"] is True


def test_issue_key_make_primary(tenant):
    """The operator's recovery: the new key is the primary; the old one stays, active, not primary."""
    admin, acme = tenant.admin, tenant
    new = issue_key(admin, acme.id, "Recovered Primary", make_primary=True)
    assert new["is_primary"] is True and new["is_active"] is True and new["key_type"] == "production"
    keys = Client(tenant.server, new["api_key"]).by_id()
    assert keys[new["id"]]["is_primary"] is True
    assert keys[acme.primary_id]["is_primary"] is False and keys[acme.primary_id]["is_active"] is True
    assert [k for k in keys.values() if k["is_primary"]] == [keys[new["id"]]]
    # Both work; the old one is now an ordinary key that may be deleted.
    assert verify(acme.client).status_code == 204
    newc = Client(tenant.server, new["api_key"])
    assert_error(acme.client.delete(new["id"]), 409, "primary_key_protected")
    newc.remove(acme.primary_id)
    assert [k["id"] for k in newc.list()] == [new["id"]]


def test_issue_key_refusals(world, tenant):
    server, admin, acme = world.server, world.admin, tenant
    capped = create_account(admin, "Capped", max_keys=2)
    capped_id = capped["account"]["id"]
    issue_key(admin, capped_id, "second", "sandbox")
    state = (snapshot(acme.client), snapshot(Client(server, capped["api_key"]["api_key"])), all_accounts(admin))
    cases = [
        (capped_id, {"name": "third", "key_type": "sandbox"}, 409, "key_limit_reached"),
        (capped_id, {"name": "third", "key_type": "production", "make_primary": True}, 409, "key_limit_reached"),
        (acme.id, {"name": "x", "key_type": "sandbox", "make_primary": True}, 422, "validation_error"),
        (acme.id, {"name": "x", "key_type": "production", "make_primary": "yes"}, 422, "validation_error"),
        (acme.id, {"name": "x", "key_type": "production", "make_primary": None}, 422, "validation_error"),
        (acme.id, {"name": "x", "key_type": "admin"}, 422, "validation_error"),
        (acme.id, {"name": "x"}, 422, "validation_error"),
        (acme.id, {"key_type": "sandbox"}, 422, "validation_error"),
        (acme.id, {"name": "", "key_type": "sandbox"}, 422, "validation_error"),
        (acme.id, {"name": "x", "key_type": "sandbox", "is_active": True}, 422, "validation_error"),
        (acme.id, {"name": "x", "key_type": "sandbox", "is_primary": True}, 422, "validation_error"),
        (acme.id, {"name": "x", "key_type": "sandbox", "account_id": capped_id}, 422, "validation_error"),
        (acme.id, [], 422, "validation_error"),
        (acme.id, b"{", 400, "invalid_json"),
        (999999, {"name": "x", "key_type": "sandbox"}, 404, "not_found"),
        (INT64_MAX, {"name": "x", "key_type": "sandbox", "make_primary": False}, 404, "not_found"),
    ]
    for account_id, body, status, code in cases:
        data = body if isinstance(body, bytes) else json_bytes(body)
        r = admin.post(keys_path(account_id), data=data, headers=JSON)
        assert_error(r, status, code)
    r = admin.post(keys_path(acme.id), data=b'{"name":"x","key_type":"sandbox"}', headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")
    r = admin.post(keys_path(acme.id), json={"name": "x", "key_type": "sandbox", "pad": "p" * 70000})
    assert_error(r, 413, "payload_too_large")
    assert (snapshot(acme.client), snapshot(Client(server, capped["api_key"]["api_key"])), all_accounts(admin)) == state
    # Raising the cap lets the operator issue again.
    patch_account(admin, capped_id, max_keys=3)
    assert issue_key(admin, capped_id, "third", make_primary=True)["is_primary"] is True


def test_issue_key_for_a_suspended_account(tenant):
    """A suspended account stays manageable: its new key exists, and is refused like the others."""
    admin, acme = tenant.admin, tenant
    patch_account(admin, acme.id, status="suspended")
    new = issue_key(admin, acme.id, "while suspended", make_primary=True)
    assert_error(verify(admin, new["api_key"]), 403, "account_suspended")
    patch_account(admin, acme.id, status="active")
    keys = Client(tenant.server, new["api_key"]).by_id()
    assert keys[new["id"]]["is_primary"] is True and keys[acme.primary_id]["is_primary"] is False


# --------------------------------------------------------------------------- methods and request ids


@pytest.mark.parametrize(
    "path, allow",
    [
        (ADMIN_ACCOUNTS, "GET, POST"),
        ("/v1/admin/accounts/1/", "GET, PATCH, DELETE"),
        ("/v1/admin/accounts/1/keys/", "POST"),
        (ADMIN_AUDIT, "GET"),
    ],
)
def test_other_methods_are_405_before_auth(world, path, allow):
    before = world.state()
    for method in ("PUT", "DELETE", "PATCH", "POST", "GET", "OPTIONS"):
        if method in allow.split(", "):
            continue
        for auth in ({}, {"Authorization": f"Bearer {world.admin.key}"}, {"Authorization": f"Bearer {world.acme.key}"}):
            r = world.admin.request(method, path, key=None, headers=auth)
            assert_error(r, 405, "method_not_allowed")
            assert r.headers["Allow"] == allow
            assert r.headers.get("X-Request-Id")
    assert world.state() == before


def test_every_admin_response_carries_x_request_id(tenant):
    """200, 201, 204, 400, 401, 404, 405, 409, 413, 415, 422: each with X-Request-Id, the
    request's own when it sends a sane one, else 32 hex digits."""
    admin, acme = tenant.admin, tenant
    extra = create_account(admin, "with external id", external_id="cus_rid")["account"]
    requests_ = [
        ("GET", ADMIN_ACCOUNTS, None, {}, 200),
        ("GET", account_path(acme.id), None, {}, 200),
        ("GET", ADMIN_AUDIT + f"?account_id={acme.id}", None, {}, 200),
        ("POST", ADMIN_ACCOUNTS, {"name": "rid"}, {}, 201),
        ("POST", keys_path(acme.id), {"name": "rid", "key_type": "sandbox"}, {}, 201),
        ("PATCH", account_path(acme.id), {"name": "rid"}, {}, 200),
        ("DELETE", account_path(extra["id"]), None, {}, 204),
        ("GET", ADMIN_ACCOUNTS + "?limit=0", None, {}, 400),
        ("GET", ADMIN_ACCOUNTS + "?after=garbage", None, {}, 400),
        ("GET", ADMIN_AUDIT + "?action=nope", None, {}, 400),
        ("POST", ADMIN_ACCOUNTS, b"{", {}, 400),
        ("GET", ADMIN_ACCOUNTS, None, {"Authorization": None}, 401),
        ("GET", ADMIN_ACCOUNTS, None, {"Authorization": f"Bearer {acme.key}"}, 401),
        ("GET", account_path(999), None, {}, 404),
        ("GET", account_path("01"), None, {}, 404),
        ("PUT", ADMIN_ACCOUNTS, None, {}, 405),
        ("GET", keys_path(acme.id), None, {}, 405),
        ("POST", ADMIN_ACCOUNTS, {"name": "dup", "external_id": "cus_rid_dup"}, {}, 201),
        ("POST", ADMIN_ACCOUNTS, {"name": "dup", "external_id": "cus_rid_dup"}, {}, 409),
        ("PATCH", account_path(acme.id), {"max_keys": 1}, {}, 409),
        ("POST", ADMIN_ACCOUNTS, {"name": "x" * 70000}, {}, 413),
        ("POST", ADMIN_ACCOUNTS, b'{"name":"x"}', {"Content-Type": "text/plain"}, 415),
        ("POST", ADMIN_ACCOUNTS, {}, {}, 422),
        ("PATCH", account_path(acme.id), {}, {}, 422),
    ]
    for n, (method, path, body, headers, status) in enumerate(requests_):
        for sent in (None, f"rid-{n}.check:{status}"):
            if sent is not None and status in (201, 204):
                continue  # a second create or delete would not give the same status
            kw = {"headers": {**headers, **({} if sent is None else {"X-Request-Id": sent})}}
            if isinstance(body, bytes):
                kw["data"] = body
                kw["headers"].setdefault("Content-Type", "application/json")
            elif body is not None:
                kw["json"] = body
            r = admin.request(method, path, **kw)
            assert r.status_code == status, (method, path, r.status_code, r.text)
            rid = r.headers.get("X-Request-Id")
            assert rid is not None, f"{method} {path} -> {status} without X-Request-Id"
            assert REQUEST_ID.match(rid)
            if sent is None:
                assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
            else:
                assert rid == sent


def test_accounts_searched_by_name(admin_server):
    """?name= keeps the accounts whose name holds the text, case-insensitively (ASCII), with LIKE's own
    characters taken literally; it pages with cursors bound to it and does not go with external_id."""
    admin = admin_server.admin
    for name in ("Acme Corp", "acme labs", "Globex", "100%_off", "x_y"):
        r = admin.post(ADMIN_ACCOUNTS, json={"name": name})
        assert r.status_code == 201, r.text
    names = lambda text: [a["name"] for a in walk_pages(admin, ADMIN_ACCOUNTS, "accounts", limit=1, name=text)[0]]  # noqa: E731
    assert names("ACME") == ["acme", "Acme Corp", "acme labs"]  # the server's own account is "acme"
    assert names("%") == ["100%_off"]
    assert names("_") == ["100%_off", "x_y"]
    assert names("nothing") == []
    first = admin.get(ADMIN_ACCOUNTS + "?name=corp&limit=1")
    assert first.status_code == 200 and [a["name"] for a in first.body["accounts"]] == ["Acme Corp"]
    second = admin.get(ADMIN_ACCOUNTS + "?name=acme&limit=1")
    cursor = second.body["next_cursor"]
    assert_error(admin.get(ADMIN_ACCOUNTS + f"?limit=1&after={cursor}"), 400, "invalid_cursor")
    r = admin.get(ADMIN_ACCOUNTS + f"?name=acme&limit=1&after={cursor}")
    assert [a["name"] for a in r.body["accounts"]] == ["Acme Corp"]
    for bad in ("name=", "name=a&external_id=x", "name=" + "a" * 101):
        assert_error(admin.get(ADMIN_ACCOUNTS + "?" + bad), 400, "invalid_parameter")
