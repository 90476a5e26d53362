"""Restricted keys (issue 12, docs/design/issue-12.md): scopes and IP allowlists, black-box, on
both backends.

- The key object: `scopes` and `allowed_ips` come last, canonical on create, PATCH, list and
  rotation (scopes sorted bytewise without repeats; blocks canonicalised, in the order given,
  without repeats). Every bad value is a 422 validation_error that changes nothing.
- The primary stays unrestricted in scopes (409 primary_key_protected / primary_key_invalid).
- The built-in scopes on the management API (keys:read, keys:write, audit:read): 403
  insufficient_scope with the exact WWW-Authenticate header.
- Restricted callers never grant what they lack (403 insufficient_scope), and a key they create
  without `scopes` / `allowed_ips` inherits theirs.
- /v1/auth/verify with X-Required-Scopes (all required, wildcards, separators, bad headers),
  X-Key-Scopes on success, and the allowlist (ip_not_allowed; the client address from
  --trusted-proxies and X-Forwarded-For, never from an untrusted peer's header; IPv6).
- The audit log records scopes and allowed_ips on key.created / key.updated.

Most tests share two servers per backend (module scope): `plain` (no proxy trusted) and
`proxied` (--trusted-proxies 127.0.0.1/32). Every test makes its own keys.
"""

import http.client
import json
import os
import signal
import subprocess
import time
import weakref
from types import SimpleNamespace

import pytest
import requests

from conftest import (
    ACCOUNT_AUDIT,
    ADMIN_ACCOUNTS,
    BIN,
    COLLECTION,
    HTTP_TIMEOUT,
    LAST_USED_TIMEOUT,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Client,
    ServerFactory,
    assert_error,
    free_port,
    snapshot,
    wait_until,
    walk_pages,
)

VERIFY = "/v1/auth/verify"
IDENTITY = ("X-Account-Id", "X-Key-Id", "X-Key-Type", "X-Key-Prefix")
BAD_REQUIRED = "invalid_required_scopes"


def www_scope(scope):
    """The WWW-Authenticate value of a 403 insufficient_scope (RFC 6750, section 3.1)."""
    return f'Bearer realm="apikeyd", error="insufficient_scope", scope="{scope}"'


def assert_insufficient(r, scope=None):
    """403 insufficient_scope; with `scope`, the exact WWW-Authenticate header naming it."""
    assert_error(r, 403, "insufficient_scope")
    if scope is not None:
        assert r.headers.get("WWW-Authenticate") == www_scope(scope), r.headers
    for name in IDENTITY + ("X-Key-Scopes",):
        assert name not in r.headers, f"a refusal must not carry {name}"


def assert_ip_refused(r):
    assert_error(r, 403, "ip_not_allowed")
    for name in IDENTITY + ("X-Key-Scopes",):
        assert name not in r.headers, f"a refusal must not carry {name}"


def make(client, name="Key", key_type="production", **fields):
    """POST /v1/account/api-keys that must succeed: the 201 body."""
    r = client.post(json={"name": name, "key_type": key_type, **fields})
    assert r.status_code == 201, r.text
    return r.body


def listed(client, key_id):
    return next(k for k in client.list() if k["id"] == key_id)


def verify(server, key, headers=None):
    """One GET /v1/auth/verify on a fresh connection."""
    return Client(server, key).request("GET", VERIFY, headers=headers)


def rotate(client, key_id, **kw):
    return client.post(f"{COLLECTION}{key_id}/rotate", **kw)


def assert_tail(obj):
    """The key object's restrictions follow leaked_at, in order (issue 13's limits come after them)."""
    fields = list(obj)
    i = fields.index("leaked_at")
    assert fields[i : i + 3] == ["leaked_at", "scopes", "allowed_ips"], fields


@pytest.fixture(scope="module")
def servers(backend, apikeyd_bin, tmp_path_factory):
    """`plain`: trusts no proxy (accounts acme, rules, audit; an admin token). `proxied`:
    --trusted-proxies 127.0.0.1/32 (accounts acme, edge)."""
    factory = ServerFactory(backend, tmp_path_factory.mktemp("restricted"))
    plain = factory("--max-keys", "1000", "--auth-failures", "0", accounts=("acme", "rules", "audit"), admin=True)
    proxied = factory("--max-keys", "1000", "--auth-failures", "0", "--trusted-proxies", "127.0.0.1/32",
                      accounts=("acme", "edge"))  # fmt: skip
    yield SimpleNamespace(plain=plain, proxied=proxied)
    factory.close_all()


@pytest.fixture
def plain(servers):
    return servers.plain


@pytest.fixture
def proxied(servers):
    return servers.proxied


# --------------------------------------------------------------------------- canonical values


SCOPES_IN = ["posts:write", "billing:read", "posts:write", "a:*", "posts:*", "x_y", "x.y", "x-y", "x:y", "x0", "b" * 64,
             "c" * 63 + ":*", "9", "posts:"]  # fmt: skip
IPS_IN = ["10.1.2.3/8", "127.0.0.1", "::1", "10.0.0.0/8", "192.168.1.77/24", "2001:db8:ffff::1/32", "127.0.0.1/32",
          "0.0.0.0/0", "::/0"]  # fmt: skip
IPS_OUT = ["10.0.0.0/8", "127.0.0.1/32", "::1/128", "192.168.1.0/24", "2001:db8::/32", "0.0.0.0/0", "::/0"]


def test_scopes_and_allowed_ips_are_canonical_everywhere(plain):
    client = plain.client
    r = client.post(json={"name": "Canonical", "key_type": "production", "scopes": SCOPES_IN, "allowed_ips": IPS_IN})
    assert r.status_code == 201, r.text
    created = r.body
    expected_scopes = sorted(set(SCOPES_IN))  # bytewise: the names are ASCII
    assert created["scopes"] == expected_scopes
    assert created["allowed_ips"] == IPS_OUT
    assert_tail(created)
    shown = listed(client, created["id"])
    assert shown["scopes"] == expected_scopes and shown["allowed_ips"] == IPS_OUT
    assert_tail(shown)
    # PATCH: replaced, canonical again; one field sent leaves the other as it was.
    patched = client.update(created["id"], scopes=["z", "m:*", "a", "m:*"])
    assert patched["scopes"] == ["a", "m:*", "z"] and patched["allowed_ips"] == IPS_OUT
    assert_tail(patched)
    patched = client.update(created["id"], allowed_ips=["172.16.5.4/12", "203.0.113.9", "172.16.0.0/12"])
    assert patched["allowed_ips"] == ["172.16.0.0/12", "203.0.113.9/32"] and patched["scopes"] == ["a", "m:*", "z"]
    shown = listed(client, created["id"])
    assert (shown["scopes"], shown["allowed_ips"]) == (["a", "m:*", "z"], ["172.16.0.0/12", "203.0.113.9/32"])
    # null lifts a restriction.
    patched = client.update(created["id"], scopes=None, allowed_ips=None)
    assert patched["scopes"] is None and patched["allowed_ips"] is None
    assert_tail(patched)


def test_unrestricted_keys_show_null(plain):
    client = plain.client
    key = make(client, "Plain", "sandbox")
    assert key["scopes"] is None and key["allowed_ips"] is None
    assert_tail(key)
    for k in client.list():
        assert_tail(k)
    primary = listed(client, plain.account.primary_id)
    assert primary["scopes"] is None and primary["allowed_ips"] is None


def test_limits_are_inclusive(plain):
    """50 scopes and 32 blocks are allowed (51 and 33 are not: below)."""
    client = plain.client
    scopes = [f"s{i:02d}" for i in range(50)]
    ips = [f"10.0.{i}.0/24" for i in range(32)]
    key = make(client, "At the limits", scopes=list(reversed(scopes)), allowed_ips=ips)
    assert key["scopes"] == scopes and key["allowed_ips"] == ips


def test_scope_name_length_follows_the_pattern(plain):
    """`^[a-z0-9][a-z0-9:._-]{0,63}(:\\*)?$`: 64 characters, and then optionally `:*` (66 in all)."""
    client = plain.client
    for name in ("a" * 64, "a" * 63 + ":*", "a" * 64 + ":*", "a" * 62 + "::*"):
        r = client.post(json={"name": "Long scope", "key_type": "sandbox", "scopes": [name]})
        assert r.status_code == 201, f"{name!r} ({len(name)} characters): {r.status_code} {r.text}"
        assert r.body["scopes"] == [name]
    for name in ("a" * 65, "a" * 65 + ":*", "a" * 64 + "::*"):
        assert_error(client.post(json={"name": "Too long", "key_type": "sandbox", "scopes": [name]}), 422, "validation_error")


BAD_SCOPES = {
    "upper-case": ["Posts:write"],
    "all-upper": ["POSTS"],
    "65-chars": ["a" * 65],
    "65-chars-wildcard": ["a" * 65 + ":*"],
    "star": ["*"],
    "star-suffix-no-colon": ["posts*"],
    "star-inside": ["posts:*:write"],
    "leading-colon": [":posts"],
    "leading-dash": ["-posts"],
    "space-inside": ["posts write"],
    "empty-name": [""],
    "non-ascii": ["pöst"],
    "zero-scopes": [],
    "51-scopes": [f"s{i:02d}" for i in range(51)],
    "string": "posts:write",
    "object": {"posts": "write"},
    "number": 5,
    "true": True,
    "number-item": ["posts:write", 1],
    "null-item": [None],
    "array-item": [["posts:write"]],
    "one-bad-among-good": ["posts:write", "billing:read", "Bad"],
}
BAD_IPS = {
    "garbage": ["garbage"],
    "v4-prefix-33": ["10.0.0.0/33"],
    "v6-prefix-129": ["::/129"],
    "negative-prefix": ["10.0.0.0/-1"],
    "empty-prefix": ["10.0.0.1/"],
    "octet-256": ["10.0.0.256"],
    "three-octets": ["10.0.0"],
    "prefix-junk": ["10.0.0.0/8x"],
    "hostname": ["localhost"],
    "empty-string": [""],
    "zero-blocks": [],
    "33-blocks": [f"10.0.{i}.0/24" for i in range(33)],
    "string": "10.0.0.0/8",
    "number-item": [10],
    "null-item": [None],
    "object": {"10.0.0.0": 8},
    "one-bad-among-good": ["10.0.0.0/8", "::1", "1.2.3.4/40"],
}
BAD_BODIES = [pytest.param({"scopes": v}, id=f"scopes-{k}") for k, v in BAD_SCOPES.items()] + [
    pytest.param({"allowed_ips": v}, id=f"allowed_ips-{k}") for k, v in BAD_IPS.items()
]


@pytest.mark.parametrize("fields", BAD_BODIES)
def test_bad_restrictions_are_422_and_change_nothing(plain, fields):
    client = plain.client
    target = make(client, "Target", scopes=["posts:read"], allowed_ips=["127.0.0.1"])
    before = snapshot(client)
    r = client.post(json={"name": "Bad", "key_type": "production", **fields})
    assert_error(r, 422, "validation_error")
    r = client.patch(target["id"], json=fields)
    assert_error(r, 422, "validation_error")
    r = client.patch(target["id"], json={"name": "Renamed with a bad field", **fields})
    assert_error(r, 422, "validation_error")
    assert snapshot(client) == before


def test_admin_issue_takes_restrictions(plain):
    admin, acme = plain.admin, plain.account
    path = f"{ADMIN_ACCOUNTS}{acme.id}/keys/"
    r = admin.post(path, json={"name": "Issued", "key_type": "production", "scopes": ["b", "a", "b"],
                               "allowed_ips": ["10.9.8.7/16"]})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.body["scopes"] == ["a", "b"] and r.body["allowed_ips"] == ["10.9.0.0/16"]
    assert_tail(r.body)
    shown = listed(acme.client, r.body["id"])
    assert shown["scopes"] == ["a", "b"] and shown["allowed_ips"] == ["10.9.0.0/16"]
    before = snapshot(acme.client)
    for fields in ({"scopes": ["Bad"]}, {"allowed_ips": ["10.0.0.0/33"]}, {"scopes": []}):
        r = admin.post(path, json={"name": "Bad", "key_type": "production", **fields})
        assert_error(r, 422, "validation_error")
    # The primary keeps scopes null: an operator's new primary cannot have scopes.
    r = admin.post(path, json={"name": "Primary", "key_type": "production", "make_primary": True, "scopes": ["a"]})
    assert_error(r, 422, "validation_error")
    assert snapshot(acme.client) == before


# --------------------------------------------------------------------------- the primary


def test_primary_cannot_get_scopes(plain):
    rules = plain.accounts[1]
    client = rules.client
    before = snapshot(client)
    r = client.patch(rules.primary_id, json={"scopes": ["keys:read"]})
    assert_error(r, 409, "primary_key_protected")
    r = client.patch(rules.primary_id, json={"name": "still primary", "scopes": ["posts:*"]})
    assert_error(r, 409, "primary_key_protected")
    assert snapshot(client) == before


def test_scoped_key_cannot_become_primary(plain):
    rules = plain.accounts[1]
    client = rules.client
    scoped = make(client, "Scoped production", scopes=["posts:read"])
    plain_key = make(client, "Unscoped production")
    before = snapshot(client)
    assert_error(client.patch(scoped["id"], json={"is_primary": True}), 409, "primary_key_invalid")
    # Giving scopes and primacy in one request: refused as a whole.
    assert_error(client.patch(plain_key["id"], json={"is_primary": True, "scopes": ["a"]}), 409, "primary_key_invalid")
    assert snapshot(client) == before
    # Dropping the scopes in the same request makes it a valid primary.
    promoted = client.update(scoped["id"], is_primary=True, scopes=None)
    assert promoted["is_primary"] is True and promoted["scopes"] is None
    # Back: the old primary again (made so by the new primary, now unrestricted).
    Client(plain, scoped["api_key"]).update(rules.primary_id, is_primary=True)
    assert listed(client, rules.primary_id)["is_primary"] is True


# --------------------------------------------------------------------------- built-in scopes


def test_keys_read_lists_but_writes_nothing(plain):
    owner = plain.client
    reader = Client(plain, make(owner, "Reader", scopes=["keys:read"])["api_key"])
    victim = make(owner, "Victim", "sandbox")
    listing = reader.list()
    assert victim["id"] in [k["id"] for k in listing]
    before = snapshot(owner)
    assert_insufficient(reader.post(json={"name": "New", "key_type": "sandbox"}), "keys:write")
    assert_insufficient(reader.post(json={"name": "New", "key_type": "sandbox", "scopes": ["keys:read"]}), "keys:write")
    assert_insufficient(reader.patch(victim["id"], json={"name": "Renamed"}), "keys:write")
    assert_insufficient(reader.patch(victim["id"], json={"is_active": False}), "keys:write")
    assert_insufficient(reader.delete(victim["id"]), "keys:write")
    assert_insufficient(rotate(reader, victim["id"]), "keys:write")
    assert_insufficient(reader.get(ACCOUNT_AUDIT), "audit:read")
    assert snapshot(owner) == before
    # The usage routes are reads.
    assert reader.get("/v1/account/usage").status_code == 200
    assert reader.get(f"{COLLECTION}{victim['id']}/usage").status_code == 200


def test_keys_write_without_keys_read(plain):
    owner = plain.client
    writer = Client(plain, make(owner, "Writer", scopes=["keys:write"])["api_key"])
    assert_insufficient(writer.get(), "keys:read")
    assert_insufficient(writer.get("/v1/account/usage"), "keys:read")
    assert_insufficient(writer.get(f"{COLLECTION}{plain.account.primary_id}/usage"), "keys:read")
    assert_insufficient(writer.get(ACCOUNT_AUDIT), "audit:read")
    # It may create a key within its own scopes (inheriting them).
    r = writer.post(json={"name": "By the writer", "key_type": "sandbox"})
    assert r.status_code == 201, r.text
    assert r.body["scopes"] == ["keys:write"]


def test_audit_read_reads_the_audit_log_only_if_production(plain):
    owner = plain.client
    auditor = Client(plain, make(owner, "Auditor", scopes=["audit:read"])["api_key"])
    r = auditor.get(ACCOUNT_AUDIT)
    assert r.status_code == 200, r.text
    assert_insufficient(auditor.get(), "keys:read")
    assert_insufficient(auditor.post(json={"name": "x", "key_type": "sandbox"}), "keys:write")
    sandbox_auditor = Client(plain, make(owner, "Sandbox auditor", "sandbox", scopes=["audit:read"])["api_key"])
    assert_error(sandbox_auditor.get(ACCOUNT_AUDIT), 403, "forbidden")


def test_a_key_with_only_foreign_scopes_cannot_use_the_management_api(plain):
    owner = plain.client
    k = make(owner, "API only", scopes=["posts:*", "billing:read"])
    c = Client(plain, k["api_key"])
    before = snapshot(owner)
    assert_insufficient(c.get(), "keys:read")
    assert_insufficient(c.post(json={"name": "x", "key_type": "sandbox"}), "keys:write")
    assert_insufficient(c.patch(k["id"], json={"name": "x"}), "keys:write")
    assert_insufficient(c.delete(k["id"]), "keys:write")
    assert_insufficient(rotate(c, k["id"]), "keys:write")
    assert_insufficient(c.get(ACCOUNT_AUDIT), "audit:read")
    assert_insufficient(c.get("/v1/account/usage"), "keys:read")
    assert snapshot(owner) == before
    # A scope named like a built-in one but longer does not grant it.
    k2 = Client(plain, make(owner, "Look-alike", scopes=["keys:reader", "keys:read:x", "keys"])["api_key"])
    assert_insufficient(k2.get(), "keys:read")


def test_insufficient_scope_is_not_a_use(plain):
    owner = plain.client
    refused = make(owner, "Refused", scopes=["posts:read"])
    witness = make(owner, "Witness", scopes=["keys:read"])
    assert_insufficient(Client(plain, refused["api_key"]).get(), "keys:read")
    assert_insufficient(verify(plain, refused["api_key"], {"X-Required-Scopes": "posts:write"}), "posts:write")
    assert Client(plain, witness["api_key"]).get().status_code == 200
    wait_until(lambda: listed(owner, witness["id"])["last_used"], LAST_USED_TIMEOUT, what="the witness's last_used")
    assert listed(owner, refused["id"])["last_used"] is None


# --------------------------------------------------------------------------- restricted callers


def test_scoped_caller_cannot_grant_what_it_lacks(plain):
    owner = plain.client
    caller_key = make(owner, "Delegator", scopes=["keys:*", "posts:*"])
    caller = Client(plain, caller_key["api_key"])
    # keys:* grants keys:read and keys:write.
    assert caller.get().status_code == 200
    inherited = make(caller, "Inherited", "sandbox")
    assert inherited["scopes"] == ["keys:*", "posts:*"]
    assert inherited["allowed_ips"] is None
    narrower = make(caller, "Narrower", scopes=["posts:write", "keys:read"])
    assert narrower["scopes"] == ["keys:read", "posts:write"]
    same_wildcard = make(caller, "Same wildcard", scopes=["posts:*"])
    assert same_wildcard["scopes"] == ["posts:*"]
    with_ips = make(caller, "Allowlisted", scopes=["posts:read"], allowed_ips=["10.0.0.0/8"])
    assert with_ips["allowed_ips"] == ["10.0.0.0/8"]
    other = make(owner, "Beyond the caller", scopes=["billing:read"])  # made by the unrestricted primary
    before = snapshot(owner)

    # Creating: wider scopes, null, a primary.
    for fields in ({"scopes": ["billing:read"]}, {"scopes": ["posts:write", "billing:read"]}, {"scopes": None},
                   {"scopes": ["p:*"]}, {"scopes": ["keys:*", "posts:*", "x"]}):  # fmt: skip
        assert_insufficient(caller.post(json={"name": "Wider", "key_type": "production", **fields}))
    # Changing a key within its powers into more, or into a primary.
    assert_insufficient(caller.patch(narrower["id"], json={"scopes": ["billing:read"]}))
    assert_insufficient(caller.patch(narrower["id"], json={"scopes": ["posts:*", "audit:read"]}))
    assert_insufficient(caller.patch(narrower["id"], json={"scopes": None}))
    assert_insufficient(caller.patch(same_wildcard["id"], json={"is_primary": True}))
    # Managing keys beyond its powers: the unrestricted primary, a key with other scopes.
    primary = plain.account.primary_id
    for target in (primary, other["id"]):
        assert_insufficient(caller.patch(target, json={"name": "Hijacked"}))
        assert_insufficient(caller.patch(target, json={"is_active": False}))
        assert_insufficient(caller.delete(target))
        assert_insufficient(rotate(caller, target))
    assert snapshot(owner) == before

    # Within its powers: rename, deactivate, narrow, rotate, delete.
    assert caller.update(narrower["id"], name="Renamed", scopes=["posts:write"])["scopes"] == ["posts:write"]
    assert caller.update(narrower["id"], is_active=False)["is_active"] is False
    r = rotate(caller, same_wildcard["id"])
    assert r.status_code == 201, r.text
    assert r.body["scopes"] == ["posts:*"]
    caller.remove(inherited["id"])
    # It may manage itself (its scopes are within its own).
    assert caller.update(caller_key["id"], name="Delegator (renamed)")["name"] == "Delegator (renamed)"


def test_allowlisted_caller_gives_only_allowlists_within_its_own(plain):
    owner = plain.client
    caller_key = make(owner, "Local only", allowed_ips=["127.0.0.0/8"])
    caller = Client(plain, caller_key["api_key"])
    inherited = make(caller, "Inherited", "sandbox")
    assert inherited["allowed_ips"] == ["127.0.0.0/8"] and inherited["scopes"] is None
    inside = make(caller, "Inside", allowed_ips=["127.0.0.1", "127.1.0.0/16"])
    assert inside["allowed_ips"] == ["127.0.0.1/32", "127.1.0.0/16"]
    with_scopes = make(caller, "Scoped inside", scopes=["posts:read"])
    assert with_scopes["allowed_ips"] == ["127.0.0.0/8"] and with_scopes["scopes"] == ["posts:read"]
    unlisted = make(owner, "Wider allowlist", allowed_ips=["127.0.0.0/8", "10.0.0.0/8"])
    before = snapshot(owner)
    for ips in (["10.0.0.0/8"], ["127.0.0.0/7"], ["0.0.0.0/0"], ["::/0"], ["127.0.0.1", "10.1.1.1"], None):
        assert_insufficient(caller.post(json={"name": "Wider", "key_type": "sandbox", "allowed_ips": ips}))
        assert_insufficient(caller.patch(inside["id"], json={"allowed_ips": ips}))
    for target in (plain.account.primary_id, unlisted["id"]):
        assert_insufficient(caller.patch(target, json={"name": "Hijacked"}))
        assert_insufficient(caller.delete(target))
        assert_insufficient(rotate(caller, target))
    assert snapshot(owner) == before
    assert caller.update(inside["id"], allowed_ips=["127.0.0.2"])["allowed_ips"] == ["127.0.0.2/32"]
    caller.remove(inherited["id"])


def test_operator_is_not_limited(plain):
    """An operator gives any scopes and allowlist (admin issue), restricted keys exist or not."""
    admin, audit_account = plain.admin, plain.accounts[2]
    r = admin.post(f"{ADMIN_ACCOUNTS}{audit_account.id}/keys/", json={"name": "Wide", "key_type": "production",
                   "scopes": ["keys:*", "audit:read", "anything:*"], "allowed_ips": ["0.0.0.0/0", "::/0"]})  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.body["scopes"] == ["anything:*", "audit:read", "keys:*"]


# --------------------------------------------------------------------------- rotation


def test_rotation_copies_scopes_and_allowed_ips(plain):
    owner = plain.client
    old = make(owner, "To rotate", scopes=["posts:write", "billing:read"], allowed_ips=["127.0.0.1", "10.0.0.0/8"])
    r = rotate(owner, old["id"])
    assert r.status_code == 201, r.text
    new = r.body
    assert new["scopes"] == ["billing:read", "posts:write"]
    assert new["allowed_ips"] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert_tail(new)
    keys = owner.by_id()
    for k in (keys[old["id"]], keys[new["id"]]):
        assert k["scopes"] == ["billing:read", "posts:write"] and k["allowed_ips"] == ["127.0.0.1/32", "10.0.0.0/8"]
    r = verify(plain, new["api_key"])
    assert r.status_code == 204, r.text
    assert r.headers["X-Key-Scopes"] == "billing:read posts:write"
    # The operator's rotation copies them too.
    r = plain.admin.post(f"{ADMIN_ACCOUNTS}{plain.account.id}/keys/{new['id']}/rotate")
    assert r.status_code == 201, r.text
    assert r.body["scopes"] == ["billing:read", "posts:write"]
    assert r.body["allowed_ips"] == ["127.0.0.1/32", "10.0.0.0/8"]


# --------------------------------------------------------------------------- /v1/auth/verify and scopes


@pytest.fixture(scope="module")
def scoped(servers):
    """A key with scopes [billing:read, posts:*] on the plain server."""
    return make(servers.plain.client, "Scoped for verify", scopes=["posts:*", "billing:read"])


@pytest.mark.parametrize(
    "required",
    [
        None,
        "",
        "posts:write",
        "posts:a:b",
        "posts:*",
        "billing:read",
        "posts:write billing:read",
        "posts:write,billing:read",
        "posts:write, billing:read",
        "posts:write  billing:read",
        "posts:write,,billing:read",
        "billing:read posts:read posts:write posts:admin:delete",
        "billing:read billing:read",
    ],
)
def test_verify_grants_what_the_scopes_cover(plain, scoped, required):
    headers = None if required is None else {"X-Required-Scopes": required}
    r = verify(plain, scoped["api_key"], headers)
    assert r.status_code == 204, r.text
    assert r.headers["X-Key-Scopes"] == "billing:read posts:*"
    assert r.headers["X-Key-Id"] == str(scoped["id"])
    assert "WWW-Authenticate" not in r.headers


@pytest.mark.parametrize(
    "required,named",
    [
        ("billing:write", "billing:write"),
        ("posts:write billing:write", "posts:write billing:write"),
        ("posts:write,billing:write", "posts:write billing:write"),
        ("posts:write, billing:write,billing:read", "posts:write billing:write billing:read"),
        ("billing:*", "billing:*"),  # a wildcard is needed to satisfy a wildcard
        ("posts", "posts"),  # posts:* covers what starts with "posts:", not "posts"
        ("postsx:write", "postsx:write"),
        ("keys:read", "keys:read"),
    ],
)
def test_verify_refuses_a_missing_scope(plain, scoped, required, named):
    r = verify(plain, scoped["api_key"], {"X-Required-Scopes": required})
    assert_insufficient(r, named)


@pytest.mark.parametrize(
    "required",
    [
        "Posts:write",
        "posts:write;billing:read",
        "*",
        "posts:*:x",
        "a" * 65,
        "posts:write | billing:read",
        " ".join(f"s{i}" for i in range(51)),
        ",".join(f"s{i}" for i in range(51)),
    ],
    ids=["upper", "semicolon", "star", "star-inside", "65-chars", "pipe", "51-spaces", "51-commas"],
)
def test_malformed_required_scopes_are_400(plain, scoped, required):
    for key in (scoped["api_key"], plain.account.key):  # restricted or not, the header is checked
        r = verify(plain, key, {"X-Required-Scopes": required})
        assert_error(r, 400, BAD_REQUIRED)
        for name in IDENTITY + ("X-Key-Scopes",):
            assert name not in r.headers


def test_fifty_required_scopes_are_allowed(plain):
    key = make(plain.client, "Fifty", scopes=["s:*"])
    r = verify(plain, key["api_key"], {"X-Required-Scopes": " ".join(f"s:{i}" for i in range(50))})
    assert r.status_code == 204, r.text


def raw_verify(server, key, header_lines):
    """GET /v1/auth/verify with header lines sent as given (http.client: repeated names allowed)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT)
    try:
        conn.putrequest("GET", VERIFY)
        conn.putheader("Authorization", f"Bearer {key}")
        for name, value in header_lines:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, resp.headers, body
    finally:
        conn.close()


def test_required_scopes_header_twice_is_400(plain, scoped):
    for lines in (
        [("X-Required-Scopes", "posts:write"), ("X-Required-Scopes", "billing:read")],
        [("X-Required-Scopes", "posts:write"), ("x-required-scopes", "posts:write")],
        [("X-Required-Scopes", ""), ("X-Required-Scopes", "posts:write")],
    ):
        status, headers, body = raw_verify(plain, scoped["api_key"], lines)
        assert status == 400, (status, body)
        assert json.loads(body)["error"]["code"] == BAD_REQUIRED
        assert "X-Key-Id" not in headers
    # One header: fine (the control).
    status, headers, _ = raw_verify(plain, scoped["api_key"], [("X-Required-Scopes", "posts:write")])
    assert status == 204 and headers["X-Key-Scopes"] == "billing:read posts:*"


def test_unrestricted_key_passes_any_required_scopes_without_x_key_scopes(plain):
    only_ips = make(plain.client, "Allowlist only", allowed_ips=["127.0.0.1"])
    for key in (plain.account.key, only_ips["api_key"]):
        for headers in (None, {"X-Required-Scopes": "posts:write billing:read"}, {"X-Required-Scopes": "keys:write"}):
            r = verify(plain, key, headers)
            assert r.status_code == 204, r.text
            assert "X-Key-Scopes" not in r.headers


def test_refusal_order_before_scopes(plain):
    """unknown -> inactive -> expired -> suspended -> allowlist -> scopes: a key refused for an
    earlier reason is refused for that one, whatever the required scopes."""
    owner = plain.client
    need = {"X-Required-Scopes": "nothing:held"}
    off = make(owner, "Off", scopes=["a"])
    owner.update(off["id"], is_active=False)
    assert_error(verify(plain, off["api_key"], need), 401, "key_inactive")
    far = make(owner, "Elsewhere", scopes=["a"], allowed_ips=["10.0.0.0/8"])
    assert_ip_refused(verify(plain, far["api_key"], need))
    assert_ip_refused(Client(plain, far["api_key"]).get())  # the management API: the same order


def test_suspended_account_before_scopes(plain):
    admin, rules = plain.admin, plain.accounts[1]
    k = make(rules.client, "Suspended scoped", scopes=["a"], allowed_ips=["10.0.0.0/8"])
    r = admin.request("PATCH", f"{ADMIN_ACCOUNTS}{rules.id}/", json={"status": "suspended"})
    assert r.status_code == 200, r.text
    try:
        assert_error(verify(plain, k["api_key"], {"X-Required-Scopes": "b"}), 403, "account_suspended")
    finally:
        r = admin.request("PATCH", f"{ADMIN_ACCOUNTS}{rules.id}/", json={"status": "active"})
        assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- allowlists


def test_allowlist_refuses_other_addresses_and_is_not_a_use(plain):
    owner = plain.client
    far = make(owner, "Private network only", allowed_ips=["10.0.0.0/8"])
    near = make(owner, "Loopback", allowed_ips=["127.0.0.1"])
    assert_ip_refused(verify(plain, far["api_key"]))
    # An untrusted peer's X-Forwarded-For is not believed (spoofing).
    for xff in ("10.1.2.3", "10.1.2.3, 10.4.5.6", "127.0.0.1, 10.1.2.3"):
        assert_ip_refused(verify(plain, far["api_key"], {"X-Forwarded-For": xff}))
        assert_ip_refused(verify(plain, far["api_key"], {"X-Real-IP": "10.1.2.3", "X-Forwarded-For": xff}))
    # The allowed one passes, also with a header naming another address.
    r = verify(plain, near["api_key"], {"X-Forwarded-For": "10.1.2.3"})
    assert r.status_code == 204, r.text
    assert "X-Key-Scopes" not in r.headers
    wait_until(lambda: listed(owner, near["id"])["last_used"], LAST_USED_TIMEOUT, what="the allowed key's last_used")
    assert listed(owner, far["id"])["last_used"] is None


def test_ipv4_any_and_ipv6_any(plain):
    owner = plain.client
    any6 = make(owner, "Any (IPv6 ::/0)", allowed_ips=["::/0"])
    any4 = make(owner, "Any IPv4", allowed_ips=["0.0.0.0/0"])
    v6_only = make(owner, "IPv6 loopback only", allowed_ips=["::1"])
    assert verify(plain, any6["api_key"]).status_code == 204  # ::/0 holds IPv4 clients too
    assert verify(plain, any4["api_key"]).status_code == 204
    assert_ip_refused(verify(plain, v6_only["api_key"]))


def test_trusted_proxy_names_the_client(proxied):
    owner = proxied.client
    far = make(owner, "Private network only", allowed_ips=["10.0.0.0/8"])
    doc = make(owner, "Documentation network only", allowed_ips=["203.0.113.0/24"])
    v6 = make(owner, "IPv6 documentation", allowed_ips=["2001:db8::/32"])

    def status(key, xff=None):
        r = verify(proxied, key["api_key"], None if xff is None else {"X-Forwarded-For": xff})
        if r.status_code != 204:
            assert_ip_refused(r)
        return r.status_code

    assert status(far) == 403  # no header: the client is the peer, 127.0.0.1
    assert status(far, "10.1.2.3") == 204
    # The right-most hop that is not itself a trusted proxy is the client.
    assert status(far, "10.1.2.3, 203.0.113.9") == 403
    assert status(doc, "10.1.2.3, 203.0.113.9") == 204
    assert status(far, "203.0.113.9, 10.1.2.3") == 204
    assert status(doc, "203.0.113.9, 10.1.2.3") == 403
    assert status(far, "10.1.2.3, 127.0.0.1") == 204  # 127.0.0.1 is trusted: skipped
    assert status(v6, "2001:db8::5") == 204
    assert status(far, "2001:db8::5") == 403
    # A key used through the trusted proxy for an allowed client is a use.
    wait_until(lambda: listed(owner, far["id"])["last_used"], LAST_USED_TIMEOUT, what="last_used of the allowed use")


def test_trusted_proxy_client_in_the_audit_log(proxied):
    edge = proxied.accounts[1]
    target = make(edge.client, "Renamed from behind the proxy", "sandbox")
    r = edge.client.patch(target["id"], json={"name": "Renamed"},
                          headers={"X-Forwarded-For": "198.51.100.7", "X-Request-Id": "r-xff-rename"})  # fmt: skip
    assert r.status_code == 200, r.text
    events = walk_pages(edge.client, ACCOUNT_AUDIT, "events", limit=1000)[0]
    ev = next(e for e in events if e["request_id"] == "r-xff-rename")
    assert ev["client_ip"] == "198.51.100.7"


class V6Endpoint:
    """Enough of a Server for `Client`: an apikeyd listening on [::1] (started by hand)."""

    def __init__(self, port):
        self.port = port
        self.base_url = f"http://[::1]:{port}"
        self.clients = weakref.WeakSet()


def start_v6(server):
    """`apikeyd serve` on `server`'s database, listening on [::1]; (process, endpoint)."""
    for _ in range(3):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("APIKEYD_DB", "APIKEYD_LISTEN", "APIKEYD_VERIFY_TOKEN")}
        argv = [str(BIN), "serve", "--db", server.db, "--listen", f"[::1]:{port}", *server.common_args()]
        with open(server.log_path, "ab") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(f"http://[::1]:{port}/healthz", timeout=1).status_code == 200:
                    return proc, V6Endpoint(port)
            except requests.ConnectionError:
                pass
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pytest.fail(f"apikeyd on [::1] did not start:\n{server.log_text()[-2000:]}")


def test_ipv6_client(server_factory):
    """A client on ::1 (apikeyd listening on [::1]): ["::1"] and ["::/0"] allow it, IPv4-only
    allowlists do not."""
    server = server_factory(start=False)
    proc, v6 = start_v6(server)
    try:
        owner = Client(v6, server.account.key)
        keys = {name: make(owner, name, allowed_ips=ips) for name, ips in (
            ("v6 loopback", ["::1"]), ("v6 any", ["::/0"]), ("v4 loopback", ["127.0.0.1"]), ("v4 any", ["0.0.0.0/0"]),
            ("v6 doc", ["2001:db8::/32"]))}  # fmt: skip
        assert keys["v6 loopback"]["allowed_ips"] == ["::1/128"]
        for name, expected in (("v6 loopback", 204), ("v6 any", 204), ("v4 loopback", 403), ("v4 any", 403),
                               ("v6 doc", 403)):  # fmt: skip
            r = Client(v6, keys[name]["api_key"]).request("GET", VERIFY)
            if expected == 204:
                assert r.status_code == 204, f"{name}: {r.status_code} {r.text}"
            else:
                assert_ip_refused(r)
        assert Client(v6, keys["v6 loopback"]["api_key"]).list()  # the management API too
    finally:
        for c in list(v6.clients):
            c.session.close()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("apikeyd on [::1] did not stop on SIGTERM")
        assert rc == 0, server.log_text()[-2000:]


# --------------------------------------------------------------------------- audit


def ch(old, new):
    return {"old": old, "new": new}


def own_event(client, rid):
    events = walk_pages(client, ACCOUNT_AUDIT, "events", limit=1000)[0]
    found = [e for e in events if e["request_id"] == rid]
    assert len(found) == 1, f"events with request id {rid}: {found}"
    return found[0]


def test_audit_records_scopes_and_allowed_ips(plain):
    audit_account = plain.accounts[2]
    owner = audit_account.client
    r = owner.post(json={"name": "Audited", "key_type": "production", "scopes": ["b:*", "a"],
                         "allowed_ips": ["10.1.2.3/8", "::1"]}, headers={"X-Request-Id": "r-create-restricted"})  # fmt: skip
    assert r.status_code == 201, r.text
    key_id = r.body["id"]
    ev = own_event(owner, "r-create-restricted")
    assert ev["action"] == "key.created" and ev["target"] == {"type": "key", "id": key_id}
    assert ev["changes"]["scopes"] == ch(None, ["a", "b:*"])
    assert ev["changes"]["allowed_ips"] == ch(None, ["10.0.0.0/8", "::1/128"])
    # An unrestricted key's creation does not mention them (null -> null is no change).
    r = owner.post(json={"name": "Plain", "key_type": "sandbox"}, headers={"X-Request-Id": "r-create-plain"})
    assert r.status_code == 201, r.text
    ev = own_event(owner, "r-create-plain")
    assert "scopes" not in ev["changes"] and "allowed_ips" not in ev["changes"]

    for rid, body, changes in (
        ("r-scopes", {"scopes": ["c"]}, {"scopes": ch(["a", "b:*"], ["c"])}),
        ("r-ips", {"allowed_ips": ["127.0.0.1"]}, {"allowed_ips": ch(["10.0.0.0/8", "::1/128"], ["127.0.0.1/32"])}),
        ("r-both-null", {"scopes": None, "allowed_ips": None},
         {"scopes": ch(["c"], None), "allowed_ips": ch(["127.0.0.1/32"], None)}),
        ("r-name-and-scopes", {"name": "Audited again", "scopes": ["z", "y"]},
         {"name": ch("Audited", "Audited again"), "scopes": ch(None, ["y", "z"])}),
    ):  # fmt: skip
        r = owner.patch(key_id, json=body, headers={"X-Request-Id": rid})
        assert r.status_code == 200, r.text
        ev = own_event(owner, rid)
        assert ev["action"] == "key.updated" and ev["target"] == {"type": "key", "id": key_id}
        assert ev["changes"] == changes
    # A refused change leaves no event.
    r = owner.patch(key_id, json={"scopes": ["Bad"]}, headers={"X-Request-Id": "r-refused"})
    assert_error(r, 422, "validation_error")
    events = walk_pages(owner, ACCOUNT_AUDIT, "events", limit=1000)[0]
    assert not [e for e in events if e["request_id"] == "r-refused"]
