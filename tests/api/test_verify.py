"""Gateway verification, `/v1/auth/verify` (contract.md, last section): 204 with the key's
identity in headers, the API's 401s, any method, any path below it, last_used, and the
optional `--verify-token` / `APIKEYD_VERIFY_TOKEN`.

Requests go through `Client`, so every response is validated against docs/openapi.yaml. The
few that need bytes `requests` would not send or show (dot segments, pipelining) use a raw
socket.
"""

import socket
import time

import pytest

from conftest import ACCOUNT_PICKUP_TIMEOUT, HTTP_TIMEOUT, LAST_USED_TIMEOUT, Client, assert_error, forge_key, parse_time, wait_until

VERIFY = "/v1/auth/verify"
TOKEN = "gw-7f3c9a1e5b2d4c6e8a0b1d3f5e7a9c2b"
IDENTITY = ("X-Account-Id", "X-Key-Id", "X-Key-Type", "X-Key-Prefix")
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def verify(server, key=None, method="GET", path=VERIFY, **kw):
    """One verification with a fresh connection; `key=None` sends no Authorization."""
    return Client(server, key).request(method, path, **kw)


def assert_verified(r, account_id, key_id, key_type, key):
    assert r.status_code == 204, f"expected 204, got {r.status_code}: {r.text}"
    assert r.content == b""
    assert r.headers["X-Account-Id"] == str(account_id)
    assert r.headers["X-Key-Id"] == str(key_id)
    assert r.headers["X-Key-Type"] == key_type
    assert r.headers["X-Key-Prefix"] == key[:12]
    assert "WWW-Authenticate" not in r.headers


def assert_refused(r, code, status=401):
    if r.request.method == "HEAD":  # no body to read the code from
        assert r.status_code == status, f"expected {status} {code}, got {r.status_code}"
        if status == 401:
            assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    else:
        assert_error(r, status, code)
    for name in IDENTITY:
        assert name not in r.headers, f"a refusal must not carry {name}"


def assert_primary_verified(server, r):
    account = server.account
    assert_verified(r, account.id, account.primary_id, "production", account.key)


# --------------------------------------------------------------------------- valid keys


def test_primary_production_key(server):
    assert_primary_verified(server, verify(server, server.account.key))


@pytest.mark.parametrize("key_type", ["production", "sandbox"])
def test_created_key_identity(server, key_type):
    created = server.client.create(f"Gateway {key_type}", key_type)
    r = verify(server, created["api_key"])
    assert_verified(r, server.account.id, created["id"], key_type, created["api_key"])
    assert r.headers["X-Key-Prefix"] == created["key_prefix"]


def test_each_account_gets_its_own_identity(server_factory):
    server = server_factory(accounts=("acme", "globex"))
    acme, globex = server.accounts
    assert acme.id != globex.id
    sandbox = globex.client.create("Globex sandbox", "sandbox")
    assert_verified(verify(server, acme.key), acme.id, acme.primary_id, "production", acme.key)
    assert_verified(verify(server, globex.key), globex.id, globex.primary_id, "production", globex.key)
    assert_verified(verify(server, sandbox["api_key"]), globex.id, sandbox["id"], "sandbox", sandbox["api_key"])


def test_account_created_while_serving_verifies(server):
    newcomer = server.create_account("newcomer")

    def verified():
        r = verify(server, newcomer.key)
        return r if r.status_code == 204 else None

    r = wait_until(verified, ACCOUNT_PICKUP_TIMEOUT, what="the new account's key to verify")
    assert_verified(r, newcomer.id, newcomer.primary_id, "production", newcomer.key)


@pytest.mark.parametrize(
    "path",
    [
        VERIFY,
        VERIFY + "/",
        VERIFY + "?x=1",
        VERIFY + "/?upstream=orders&id=2",
        VERIFY + "/orders",
        VERIFY + "/orders/42/items/",
        VERIFY + "/v1/account/api-keys/",  # Envoy appending an API path: still only a check
        VERIFY + "/v1/account/api-keys/1/",
        VERIFY + "/healthz",
    ],
)
def test_path_suffixes_and_query(shared_server, path):
    assert_primary_verified(shared_server, verify(shared_server, shared_server.account.key, path=path))
    assert_refused(verify(shared_server, path=path), "missing_api_key")
    assert_refused(verify(shared_server, forge_key(), path=path), "invalid_api_key")


@pytest.mark.parametrize("path", ["/v1/auth/verifyx", "/v1/auth/verif", "/v1/auth", "/v1/auth/", "/v1/auth/verify-me"])
def test_neighbouring_paths_are_not_verify(shared_server, path):
    assert_error(verify(shared_server, shared_server.account.key, path=path), 404, "not_found")


@pytest.mark.parametrize("method", METHODS)
def test_any_method_works_the_same(shared_server, method):
    # A fresh connection per request: HEAD refusals are checked on their own below.
    server = shared_server
    assert_primary_verified(server, verify(server, server.account.key, method=method))
    assert_primary_verified(server, verify(server, server.account.key, method=method, path=VERIFY + "/a/b"))
    assert_refused(verify(server, method=method), "missing_api_key")
    assert_refused(verify(server, forge_key(), method=method, path=VERIFY + "/a/b"), "invalid_api_key")


@pytest.mark.parametrize(
    "data,ctype",
    [
        (b"{not json", "application/json"),
        (b"x" * (200 * 1024), "text/plain"),  # over the API's 64 KiB limit and not JSON
        (b'{"name": "x", "key_type": "production"}', "application/json"),
    ],
    ids=["bad-json", "200KiB-text", "create-body"],
)
def test_body_is_never_read(server, data, ctype):
    before = [k["id"] for k in server.client.list()]
    for method in ("POST", "PUT", "PATCH"):
        r = verify(server, server.account.key, method=method, data=data, headers={"Content-Type": ctype})
        assert_primary_verified(server, r)
        r = verify(server, method=method, data=data, headers={"Content-Type": ctype})
        assert_refused(r, "missing_api_key")
    assert [k["id"] for k in server.client.list()] == before


def test_no_token_configured_ignores_x_verify_token(shared_server):
    r = verify(shared_server, shared_server.account.key, headers={"X-Verify-Token": "anything"})
    assert_primary_verified(shared_server, r)


# --------------------------------------------------------------------------- refused keys


@pytest.mark.parametrize(
    "authorization,code",
    [
        (None, "missing_api_key"),
        ("Bearer ", "missing_api_key"),
        ("Bearer garbage", "invalid_api_key"),
        ("Basic dXNlcjpwYXNz", "invalid_api_key"),
        ("{key}", "invalid_api_key"),
        ("Bearer {key}x", "invalid_api_key"),
        ("Bearer {truncated}", "invalid_api_key"),
        ("Bearer {bad_checksum}", "invalid_api_key"),
        ("Bearer {forged_prod}", "invalid_api_key"),
        ("Bearer {forged_sand}", "invalid_api_key"),
        ("Bearer {other_brand}", "invalid_api_key"),
    ],
)
def test_missing_and_invalid_keys(shared_server, authorization, code):
    key = shared_server.account.key
    if authorization is not None:
        authorization = authorization.format(
            key=key,
            truncated=key[:-1],
            bad_checksum=key[:-1] + ("A" if key[-1] != "A" else "B"),
            forged_prod=forge_key("prod"),
            forged_sand=forge_key("sand"),
            other_brand=forge_key("prod", brand="zz", random_part=key[8:40]),
        )
    r = verify(shared_server, headers={"Authorization": authorization})
    assert_refused(r, code)
    assert key[12:] not in r.text


def test_deactivated_key_is_inactive_until_reactivated(server):
    admin = server.client
    created = admin.create("Worker", "production")
    gateway = Client(server, created["api_key"])  # one keep-alive connection, like a gateway's
    assert gateway.get(VERIFY).status_code == 204
    admin.update(created["id"], is_active=False)
    assert_refused(gateway.get(VERIFY), "key_inactive")
    assert_refused(gateway.request("POST", VERIFY + "/orders"), "key_inactive")
    admin.update(created["id"], is_active=True)
    assert_verified(gateway.get(VERIFY), server.account.id, created["id"], "production", created["api_key"])


@pytest.mark.parametrize("deactivate_first", [False, True])
def test_deleted_key_is_invalid(server, deactivate_first):
    admin = server.client
    created = admin.create("Temp", "sandbox")
    gateway = Client(server, created["api_key"])
    assert gateway.get(VERIFY).status_code == 204
    if deactivate_first:
        admin.update(created["id"], is_active=False)
    admin.remove(created["id"])
    assert_refused(gateway.get(VERIFY), "invalid_api_key")
    assert_refused(verify(server, created["api_key"], method="DELETE", path=VERIFY + "/x"), "invalid_api_key")


# --------------------------------------------------------------------------- last_used


def test_verify_counts_as_a_use(server):
    admin = server.client
    t0 = time.time()
    created = admin.create("Behind the gateway", "sandbox")
    assert admin.by_id()[created["id"]]["last_used"] is None
    assert verify(server, created["api_key"], method="POST", path=VERIFY + "/orders").status_code == 204
    t1 = time.time()
    value = wait_until(lambda: admin.by_id()[created["id"]]["last_used"], LAST_USED_TIMEOUT, what="last_used in the list")
    assert int(t0) - 2 <= parse_time(value) <= t1 + 2


def test_refused_verification_is_not_a_use(server_factory):
    """A refused request changes nothing: neither a wrong token nor an inactive key sets last_used."""
    server = server_factory("--verify-token", TOKEN)
    admin = server.client
    wrong_token = admin.create("Wrong token", "sandbox")
    inactive = admin.create("Inactive", "sandbox")
    witness = admin.create("Witness", "sandbox")
    admin.update(inactive["id"], is_active=False)
    assert_refused(verify(server, wrong_token["api_key"], headers={"X-Verify-Token": "nope"}), "invalid_verify_token", 403)
    assert_refused(verify(server, inactive["api_key"], headers={"X-Verify-Token": TOKEN}), "key_inactive")
    assert verify(server, witness["api_key"], headers={"X-Verify-Token": TOKEN}).status_code == 204
    # Once the witness's use is visible, any use recorded before it would be too.
    wait_until(lambda: admin.by_id()[witness["id"]]["last_used"], LAST_USED_TIMEOUT, what="the witness's last_used")
    keys = admin.by_id()
    assert keys[wrong_token["id"]]["last_used"] is None
    assert keys[inactive["id"]]["last_used"] is None


# --------------------------------------------------------------------------- --verify-token


def check_token_protection(server):
    key = server.account.key
    for headers in (
        {},
        {"X-Verify-Token": ""},
        {"X-Verify-Token": "wrong"},
        {"X-Verify-Token": TOKEN[:-1]},
        {"X-Verify-Token": TOKEN + "x"},
        {"X-Verify-Token": TOKEN.upper()},
        {"X-Verify-Token": TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1")},
        {"X-Other-Token": TOKEN},
        {"Authorization-Token": TOKEN},
    ):
        # Even with a valid key; and the token is checked before the key.
        assert_refused(verify(server, key, headers=headers), "invalid_verify_token", 403)
        assert_refused(verify(server, None, headers=headers), "invalid_verify_token", 403)
        assert_refused(verify(server, forge_key(), method="POST", path=VERIFY + "/x", headers=headers), "invalid_verify_token", 403)
    ok = {"X-Verify-Token": TOKEN}
    assert_primary_verified(server, verify(server, key, headers=ok))
    assert_primary_verified(server, verify(server, key, headers={"x-verify-token": TOKEN}))
    assert_primary_verified(server, verify(server, key, method="DELETE", path=VERIFY + "/a/b", headers=ok))
    assert_refused(verify(server, None, headers=ok), "missing_api_key")
    assert_refused(verify(server, forge_key(), headers=ok), "invalid_api_key")
    # The token guards only the gateway endpoint: the API itself needs just the key.
    assert server.client.get().status_code == 200


def test_verify_token_flag(server_factory):
    check_token_protection(server_factory("--verify-token", TOKEN))


def test_verify_token_environment(server_factory):
    check_token_protection(server_factory(env={"APIKEYD_VERIFY_TOKEN": TOKEN}))


def test_verify_token_never_logged(server_factory):
    server = server_factory("--verify-token", TOKEN)
    verify(server, server.account.key, headers={"X-Verify-Token": TOKEN})
    verify(server, server.account.key, headers={"X-Verify-Token": TOKEN + "x"})
    server.stop()
    log = server.log_text()
    assert f"{VERIFY} 204 {server.account.key[:12]}" in log
    assert TOKEN not in log and server.account.key not in log


# --------------------------------------------------------------------------- raw HTTP


def raw_exchange(server, data):
    """Sends raw bytes on one connection and reads until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def split_response(raw):
    """(status, headers dict with lower-case names, rest of the bytes after the header block)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response header block: {raw[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


@pytest.mark.parametrize(
    "path,authorization,status",
    [
        (VERIFY, None, 401),  # missing_api_key
        (VERIFY + "/orders", "Bearer garbage", 401),  # invalid_api_key
        (VERIFY, "Bearer {key}", 204),
        ("/healthz", None, 405),  # the same response writer outside /v1/auth/verify
        ("/nope", None, 404),
    ],
)
def test_head_response_has_no_body(shared_server, path, authorization, status):
    """RFC 9110 9.3.2: no content in a response to HEAD. A body left on a keep-alive
    connection is read as the start of the next response: pipeline a GET behind the HEAD
    and check that its status line comes right after the HEAD's headers."""
    auth = ""
    if authorization is not None:
        auth = "Authorization: " + authorization.format(key=shared_server.account.key) + "\r\n"
    raw = raw_exchange(
        shared_server,
        (
            f"HEAD {path} HTTP/1.1\r\nHost: apikeyd\r\n{auth}\r\n"
            "GET /healthz HTTP/1.1\r\nHost: apikeyd\r\nConnection: close\r\n\r\n"
        ).encode(),
    )
    got, _, rest = split_response(raw)
    assert got == status
    assert rest.startswith(b"HTTP/1.1 200"), (
        f"HEAD {path} -> {status} sent a body; the next response on the connection starts with {rest[:120]!r}"
    )


@pytest.mark.parametrize(
    "raw_path,with_key",
    [
        (VERIFY + "/../../../healthz", False),
        (VERIFY + "/%2e%2e/%2e%2e/%2e%2e/healthz", False),
        (VERIFY + "/..%2f..%2f..%2fhealthz", False),
        (VERIFY + "/orders/..%2F..%2F..%2F..%2Fhealthz", False),
        (VERIFY + "/../../account/api-keys/", True),
    ],
)
def test_dot_segments_stay_below_verify(shared_server, raw_path, with_key):
    """A gateway that appends the client's path (Envoy ext_authz `path_prefix`) passes the
    client's dot segments through. Every path below /v1/auth/verify is the verify endpoint
    (contract), so it answers 204 or 401, never another route: GET /healthz's 200 would
    let a request through the gateway without any key."""
    key = shared_server.account.key
    auth = f"Authorization: Bearer {key}\r\n" if with_key else ""
    raw = raw_exchange(
        shared_server, f"GET {raw_path} HTTP/1.1\r\nHost: apikeyd\r\n{auth}Connection: close\r\n\r\n".encode()
    )
    status, headers, body = split_response(raw)
    if with_key:
        assert status == 204 and headers.get("x-key-id") == str(shared_server.account.primary_id), (
            f"GET {raw_path} was not answered by the verify endpoint: {status} {body[:200]!r}"
        )
    else:
        assert status == 401 and b'"missing_api_key"' in body, (
            f"GET {raw_path} without a key answered {status} {body[:200]!r}: routed outside /v1/auth/verify"
        )
