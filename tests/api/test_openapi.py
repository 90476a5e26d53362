"""docs/openapi.yaml itself: well-formed, complete, and consistent with the contract and seed.

These tests need no server; they make sure the document the other tests validate against
says what contract.md says.
"""

import pytest
from jsonschema import Draft202012Validator

from conftest import CREATED_MESSAGE, ERROR_CODES, KEY_FIELDS, SPEC, assert_key_format

DOC = SPEC.doc
SCHEMAS = DOC["components"]["schemas"]
# Issue 12 (restricted keys, usage): two more key members, last, and three more error codes
# (the union keeps these tests right whether or not conftest lists them already).
ALL_KEY_FIELDS = KEY_FIELDS + [f for f in ("scopes", "allowed_ips", "rate_limit", "remaining", "refill") if f not in KEY_FIELDS]
ALL_ERROR_CODES = set(ERROR_CODES) | {"insufficient_scope", "ip_not_allowed", "invalid_required_scopes", "rate_limited",
                                      "quota_exhausted", "invalid_cost",
                                      # issue 15: gateway mode, and h2o's own 417 in the API's envelope
                                      "invalid_path", "upgrade_not_supported", "upstream_unavailable",
                                      "bad_upstream_response", "upstream_timeout", "client_closed_request",
                                      "expectation_failed"}  # fmt: skip

# The seed's list response, verbatim.
SEED_LIST_VERBATIM = {
    "api_keys": [
        {
            "id": 1,
            "name": "Production Key",
            "key_type": "production",
            "key_prefix": "ml_prod_abc1",
            "is_active": True,
            "is_primary": True,
            "created_at": "2024-01-15T10:00:00Z",
            "last_used": "2025-01-15T14:30:00Z",
        },
        {
            "id": 2,
            "name": "Development Key",
            "key_type": "sandbox",
            "key_prefix": "ml_sand_xyz7",
            "is_active": True,
            "is_primary": False,
            "created_at": "2024-02-01T09:00:00Z",
            "last_used": "2025-01-14T11:20:00Z",
        },
    ]
}
# Issue 10 gave every key object four more members, always present: the seed's keys with them.
LIFECYCLE_NULLS = {"expires_at": None, "rotated_from": None, "rotated_to": None, "leaked_at": None}
# Issue 12 gave them two more, always present: null for an unrestricted key.
RESTRICTION_NULLS = {"scopes": None, "allowed_ips": None}
# Issue 13: and a rate limit, null for none.
LIMIT_NULLS = {"rate_limit": None, "remaining": None, "refill": None}
SEED_LIST = {"api_keys": [dict(key, **LIFECYCLE_NULLS, **RESTRICTION_NULLS, **LIMIT_NULLS)
                          for key in SEED_LIST_VERBATIM["api_keys"]]}

OPERATIONS = {
    ("/v1/account/api-keys/", "get"): {"200", "401", "403", "429", "503"},  # 403: account_suspended
    ("/v1/account/api-keys/", "post"): {"201", "400", "401", "403", "409", "413", "415", "422", "429", "503"},
    ("/v1/account/api-keys/{id}/", "patch"): {"200", "400", "401", "403", "404", "409", "413", "415", "422", "429", "503"},
    ("/v1/account/api-keys/{id}/", "delete"): {"204", "401", "403", "404", "409", "429", "503"},
    ("/healthz", "get"): {"200"},
    # 400: invalid_required_scopes; 503: PostgreSQL, --max-staleness
    ("/v1/auth/verify/", "get"): {"204", "400", "401", "403", "429", "503"},
    ("/v1/auth/verify/{path}", "get"): {"204", "400", "401", "403", "429", "503"},
    # issue 9: the account's audit log and the operator API
    ("/v1/account/audit-log/", "get"): {"200", "400", "401", "403", "429", "503"},
    ("/v1/admin/accounts/", "get"): {"200", "400", "401", "503"},
    ("/v1/admin/accounts/", "post"): {"201", "400", "401", "409", "413", "415", "422", "503"},
    ("/v1/admin/accounts/{id}/", "get"): {"200", "401", "404", "503"},
    ("/v1/admin/accounts/{id}/", "patch"): {"200", "400", "401", "404", "409", "413", "415", "422", "503"},
    ("/v1/admin/accounts/{id}/", "delete"): {"204", "401", "404", "503"},
    ("/v1/admin/accounts/{id}/keys/", "post"): {"201", "400", "401", "404", "409", "413", "415", "422", "503"},
    ("/v1/admin/audit-log/", "get"): {"200", "400", "401", "503"},
    # issue 10: rotation and leak reports
    ("/v1/account/api-keys/{id}/rotate", "post"): {"201", "400", "401", "403", "404", "409", "413", "415", "422", "429", "503"},
    ("/v1/admin/accounts/{id}/keys/{key_id}/rotate", "post"): {"201", "400", "401", "404", "409", "413", "415", "422", "503"},
    ("/v1/admin/leaked-keys/", "post"): {"200", "400", "401", "413", "415", "422", "503"},
    ("/v1/leaks/github", "post"): {"200", "400", "401", "404", "413", "422", "503"},
    # issue 11: the dashboard (HTML, no authentication)
    ("/dashboard/", "get"): {"200", "301", "404"},  # 404: --dashboard off
    ("/dashboard/", "head"): {"200", "301", "404"},
    ("/dashboard/assets/{asset}", "get"): {"200", "404"},
    ("/dashboard/assets/{asset}", "head"): {"200", "404"},
    # issue 12: usage per key
    ("/v1/account/api-keys/{id}/usage", "get"): {"200", "400", "401", "403", "404", "429", "503"},
    ("/v1/account/usage/", "get"): {"200", "400", "401", "403", "429", "503"},
}
ADMIN_PATHS = ["/v1/admin/accounts/", "/v1/admin/accounts/{id}/", "/v1/admin/accounts/{id}/keys/", "/v1/admin/audit-log/",
               "/v1/admin/accounts/{id}/keys/{key_id}/rotate", "/v1/admin/leaked-keys/"]  # fmt: skip
GITHUB_PATHS = ["/v1/leaks/github"]
VERIFY_PATHS = ["/v1/auth/verify/", "/v1/auth/verify/{path}"]
DASHBOARD_PATHS = ["/dashboard/", "/dashboard/assets/{asset}"]  # a web page: HTML and its assets, no key
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def iter_refs(node, path="#"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield path, v
            else:
                yield from iter_refs(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from iter_refs(v, f"{path}/{i}")


def test_openapi_version_and_info():
    assert str(DOC["openapi"]).startswith("3.1.")
    assert DOC["info"]["title"] and DOC["info"]["version"]


def test_every_ref_resolves():
    refs = list(iter_refs(DOC))
    assert refs
    for where, ref in refs:
        try:
            SPEC.resolve({"$ref": ref})
        except (KeyError, AssertionError):
            pytest.fail(f"{where}: unresolvable $ref {ref}")


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_component_schema_is_valid_2020_12(name):
    Draft202012Validator.check_schema(SCHEMAS[name])


def test_exactly_the_contract_operations():
    found = {
        (path, method)
        for path, item in DOC["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("path,method", sorted(OPERATIONS))
def test_operation_lists_every_status_with_schema(path, method):
    op = DOC["paths"][path][method]
    assert set(op["responses"]) == OPERATIONS[(path, method)]
    assert op.get("operationId")
    for status, resp in op["responses"].items():
        resp = SPEC.resolve(resp)
        assert resp.get("description")
        if status == "204" or (path in DASHBOARD_PATHS and status == "301"):
            assert "content" not in resp
            continue
        if path in DASHBOARD_PATHS and status == "200":
            assert set(resp["content"]) <= {"text/html", "text/javascript", "text/css"}
            assert resp["headers"]["Content-Security-Policy"] and resp["headers"]["X-Frame-Options"]
            continue
        schema = resp["content"]["application/json"]["schema"]
        Draft202012Validator.check_schema(schema)
        if status.startswith(("4", "5")):
            assert "$ref" in str(schema) and "Error" in str(schema)


def test_security_bearer_everywhere_but_healthz():
    scheme = DOC["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert DOC["security"] == [{"bearerAuth": []}]
    assert DOC["paths"]["/healthz"]["get"]["security"] == []
    for (path, method) in OPERATIONS:
        if path == "/healthz":
            continue
        if path in DASHBOARD_PATHS:
            # The page itself needs no key: it asks for one, and sends it only to the API.
            assert DOC["paths"][path][method]["security"] == []
            continue
        if path in VERIFY_PATHS:
            # The gateway's X-Verify-Token comes on top of the key when --verify-token is set.
            assert DOC["paths"][path][method]["security"] == [{"bearerAuth": [], "verifyToken": []}, {"bearerAuth": []}]
        elif path in GITHUB_PATHS:
            # GitHub's signature over the body, never a key or an admin token.
            assert DOC["paths"][path][method]["security"] == [{"githubSignature": []}]
            unauthorized = DOC["paths"][path][method]["responses"]["401"]
            assert SPEC.resolve(unauthorized) is DOC["components"]["responses"]["InvalidSignature"]
        elif path in ADMIN_PATHS:
            # Admin tokens only: never an account key.
            assert DOC["paths"][path][method]["security"] == [{"adminToken": []}]
            unauthorized = DOC["paths"][path][method]["responses"]["401"]
            assert SPEC.resolve(unauthorized) is DOC["components"]["responses"]["AdminUnauthorized"]
        else:
            assert "security" not in DOC["paths"][path][method]
        assert "401" in DOC["paths"][path][method]["responses"]
    admin = DOC["components"]["securitySchemes"]["adminToken"]
    assert admin["type"] == "http" and admin["scheme"] == "bearer"
    token = DOC["components"]["securitySchemes"]["verifyToken"]
    assert token == {**token, "type": "apiKey", "in": "header", "name": "X-Verify-Token"}
    github = DOC["components"]["securitySchemes"]["githubSignature"]
    assert github == {**github, "type": "apiKey", "in": "header", "name": "Github-Public-Key-Signature"}
    params = [SPEC.resolve(p) for p in DOC["paths"]["/v1/leaks/github"]["post"]["parameters"]]
    assert any(p["in"] == "header" and p["name"] == "Github-Public-Key-Identifier" and p["required"] for p in params)


def test_401_documents_www_authenticate_and_405_documents_allow():
    unauthorized = DOC["components"]["responses"]["Unauthorized"]
    assert SPEC.resolve(unauthorized["headers"]["WWW-Authenticate"])["required"] is True
    for path, allow in [
        ("/v1/account/api-keys/", "GET, POST"),
        ("/v1/account/api-keys/{id}/", "PATCH, DELETE"),
        ("/healthz", "GET"),
        ("/v1/account/audit-log/", "GET"),
        ("/v1/admin/accounts/", "GET, POST"),
        ("/v1/admin/accounts/{id}/", "GET, PATCH, DELETE"),
        ("/v1/admin/accounts/{id}/keys/", "POST"),
        ("/v1/admin/audit-log/", "GET"),
        ("/v1/account/api-keys/{id}/rotate", "POST"),
        ("/v1/admin/accounts/{id}/keys/{key_id}/rotate", "POST"),
        ("/v1/admin/leaked-keys/", "POST"),
        ("/v1/leaks/github", "POST"),
        ("/dashboard/", "GET, HEAD"),
        ("/dashboard/assets/{asset}", "GET, HEAD"),
        ("/v1/account/api-keys/{id}/usage", "GET"),
        ("/v1/account/usage/", "GET"),
    ]:
        resp = SPEC.resolve(DOC["paths"][path]["x-method-not-allowed"])
        assert resp["headers"]["Allow"]["schema"]["const"] == allow


def iter_responses():
    """(where, Response Object) for every response the document gives, 405s included."""
    for name, resp in DOC["components"]["responses"].items():
        yield f"components/responses/{name}", resp
    for path, item in DOC["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                for status, resp in op["responses"].items():
                    yield f"{method.upper()} {path} {status}", SPEC.resolve(resp)


def test_every_response_documents_x_request_id():
    header = DOC["components"]["headers"]["X-Request-Id"]
    assert header["required"] is True
    for where, resp in iter_responses():
        assert SPEC.resolve((resp.get("headers") or {}).get("X-Request-Id")) is header, where
    validator = SPEC.validator(header["schema"])
    for value in ["a", "0123456789abcdef0123456789abcdef", "req-1.2:3_x", "x" * 128]:
        assert not list(validator.iter_errors(value)), value
    for value in ["", "x" * 129, "a b", "<x>", "é"]:
        assert list(validator.iter_errors(value)), value


def test_every_path_takes_the_x_request_id_parameter():
    param = DOC["components"]["parameters"]["X-Request-Id"]
    assert param["in"] == "header" and param["required"] is False
    for path, item in DOC["paths"].items():
        assert param in [SPEC.resolve(p) for p in item.get("parameters", [])], path


def test_api_key_schema_has_exactly_the_seed_fields():
    s = SCHEMAS["ApiKey"]
    assert list(s["properties"]) == ALL_KEY_FIELDS
    assert s["required"] == ALL_KEY_FIELDS
    assert s["additionalProperties"] is False
    assert s["properties"]["last_used"]["type"] == ["string", "null"]
    for field in ("created_at", "last_used", "expires_at", "leaked_at"):
        pattern = SPEC.resolve(s["properties"][field])["pattern"]
        assert pattern == r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
    for field in ("expires_at", "leaked_at"):
        assert SPEC.resolve(s["properties"][field])["type"] == ["string", "null"]
    for field in ("rotated_from", "rotated_to"):
        assert SPEC.resolve(s["properties"][field])["type"] == ["integer", "null"]
    for field in ("scopes", "allowed_ips"):
        assert SPEC.resolve(s["properties"][field])["type"] == ["array", "null"]


def test_created_api_key_schema():
    for name in ("CreatedApiKey", "IssuedApiKey", "RotatedApiKey"):
        s = SCHEMAS[name]
        assert list(s["properties"]) == ALL_KEY_FIELDS + ["api_key", "message"], name
        assert set(s["required"]) == set(ALL_KEY_FIELDS + ["api_key", "message"]), name
        assert s["additionalProperties"] is False, name
        assert s["properties"]["message"]["const"] == CREATED_MESSAGE, name


def test_request_schemas():
    create = SCHEMAS["CreateRequest"]
    assert set(create["properties"]) == {"name", "key_type", "expires_at", "scopes", "allowed_ips", "rate_limit", "remaining",
                                         "refill"}  # fmt: skip
    assert set(create["required"]) == {"name", "key_type"}
    assert create["additionalProperties"] is False
    update = SCHEMAS["UpdateRequest"]
    assert set(update["properties"]) == {"name", "is_active", "is_primary", "expires_at", "scopes", "allowed_ips", "rate_limit",
                                         "remaining", "refill"}  # fmt: skip
    assert update["additionalProperties"] is False and update["minProperties"] == 1
    issue = SCHEMAS["AdminKeyCreate"]
    assert set(issue["properties"]) == {"name", "key_type", "expires_at", "scopes", "allowed_ips", "rate_limit", "remaining",
                                        "refill", "make_primary"}  # fmt: skip
    assert set(issue["required"]) == {"name", "key_type"}
    rotate = SCHEMAS["RotateRequest"]
    assert set(rotate["properties"]) == {"grace_period_seconds"} and rotate["additionalProperties"] is False
    grace = rotate["properties"]["grace_period_seconds"]
    assert (grace["minimum"], grace["maximum"], grace["default"]) == (0, 2592000, 86400)
    for name in ("CreateRequest", "UpdateRequest", "AdminKeyCreate"):
        assert SPEC.resolve(SCHEMAS[name]["properties"]["expires_at"])["type"] == ["string", "null"], name
        assert SPEC.resolve(SCHEMAS[name]["properties"]["scopes"]) is SCHEMAS["ScopesInput"], name
        assert SPEC.resolve(SCHEMAS[name]["properties"]["allowed_ips"]) is SCHEMAS["AllowedIpsInput"], name


def test_leak_report_schemas():
    """GitHub's secret-scanning formats: the request array (at most 1,000 tokens) and the answer."""
    SPEC.validate_schema("LeakReport", [{"token": "t", "type": None, "url": "u", "source": "content", "new": 1}])
    SPEC.validate_schema("LeakReportAnswer", [{"token_raw": "t", "token_type": "", "label": "false_positive"}])
    assert SCHEMAS["LeakReport"]["maxItems"] == 1000
    for name, bad in [
        ("LeakReport", {"token": "t"}),
        ("LeakReport", [{"type": "x"}]),
        ("LeakReport", [{"token": ""}]),
        ("LeakReport", [{"token": "t"}] * 1001),
        ("LeakReportAnswer", [{"token_raw": "t", "token_type": "", "label": "maybe"}]),
        ("LeakReportAnswer", [{"token_raw": "t", "label": "true_positive"}]),
        ("LeakReportAnswer", [{"token_raw": "t", "token_type": "", "label": "true_positive", "key_id": 1}]),
    ]:
        assert list(SPEC.validator(SCHEMAS[name]).iter_errors(bad)), (name, bad)


def test_error_codes_are_the_contract_codes():
    code = SCHEMAS["Error"]["properties"]["error"]["properties"]["code"]
    assert set(code["enum"]) == ALL_ERROR_CODES
    assert SCHEMAS["Error"]["properties"]["error"]["required"] == ["code", "message"]


def test_admin_401_documents_its_realm():
    header = SPEC.resolve(DOC["components"]["responses"]["AdminUnauthorized"]["headers"]["WWW-Authenticate"])
    assert header["required"] is True
    validator = SPEC.validator(header["schema"])
    assert not list(validator.iter_errors('Bearer realm="apikeyd-admin", error="invalid_token"'))
    assert list(validator.iter_errors("Bearer"))


def test_account_exists_carries_the_account_id_and_nothing_else_does():
    SPEC.validate_schema("Error", {"error": {"code": "account_exists", "message": "m", "account_id": 7}})
    for bad in [
        {"error": {"code": "account_exists", "message": "m"}},
        {"error": {"code": "not_found", "message": "m", "account_id": 7}},
        {"error": {"code": "account_exists", "message": "m", "account_id": 0}},
    ]:
        assert list(SPEC.validator(SCHEMAS["Error"]).iter_errors(bad)), bad


def test_new_object_field_orders():
    assert list(SCHEMAS["Account"]["properties"]) == [
        "id", "name", "external_id", "status", "max_keys", "key_count", "created_at"]
    assert list(SCHEMAS["AuditEvent"]["properties"]) == [
        "id", "at", "account_id", "actor", "action", "target", "changes", "details", "client_ip", "request_id"]
    assert list(SCHEMAS["AccountCreated"]["properties"]) == ["account", "api_key"]
    assert list(SCHEMAS["IssuedApiKey"]["properties"]) == ALL_KEY_FIELDS + ["api_key", "message"]
    for name in ("Account", "AccountCreate", "AccountPatch", "AccountCreated", "AdminKeyCreate",
                 "IssuedApiKey", "AuditEvent", "AuditActor", "AuditTarget", "AccountPage", "AuditPage",
                 "RotatedApiKey", "RotateRequest", "LeakDetails", "KeyUsage", "AccountUsage", "UsageCounts",
                 "RefusedCounts", "UsageBucket", "UsageByKey"):
        assert SCHEMAS[name]["additionalProperties"] is False, name
    assert set(SCHEMAS["AuditAction"]["enum"]) == {
        "key.created", "key.updated", "key.deleted", "account.created", "account.updated",
        "account.suspended", "account.reactivated", "account.deleted",
        "admin_token.created", "admin_token.revoked", "key.rotated", "key.leaked"}


def test_seed_list_example_validates():
    SPEC.validate_schema("ApiKeyList", SEED_LIST)
    # The seed's fields come first, in the seed's order; the lifecycle members follow, then the restrictions.
    assert KEY_FIELDS[: len(SEED_LIST_VERBATIM["api_keys"][0])] == list(SEED_LIST_VERBATIM["api_keys"][0])
    assert list(SEED_LIST["api_keys"][0]) == ALL_KEY_FIELDS


@pytest.mark.parametrize(
    "name,instance",
    [
        ("ApiKey", dict(SEED_LIST["api_keys"][0], extra=1)),
        ("ApiKey", {k: v for k, v in SEED_LIST["api_keys"][0].items() if k != "last_used"}),
        ("ApiKey", dict(SEED_LIST["api_keys"][0], created_at="2024-01-15T10:00:00+00:00")),
        ("ApiKey", dict(SEED_LIST["api_keys"][0], last_used="2024-01-15 10:00:00")),
        ("ApiKey", dict(SEED_LIST["api_keys"][0], key_type="staging")),
        ("ApiKey", dict(SEED_LIST["api_keys"][0], api_key="ml_prod_x")),
        ("Error", {"error": {"code": "teapot", "message": "x"}}),
        ("Error", {"error": {"code": "not_found"}}),
        ("CreatedApiKey", dict(SEED_LIST["api_keys"][0], api_key="ml_prod_full_key_shown_once_here", message="x")),
        ("Health", {"status": "starting"}),
        ("AccountCreate", {"name": "A", "max_keys": 0}),
        ("AccountCreate", {"name": "A", "max_keys": 1000001}),
        ("AccountCreate", {"name": "A", "external_id": "has space"}),
        ("AccountCreate", {"name": "A", "external_id": "x" * 256}),
        ("AccountCreate", {"name": "A", "status": "active"}),
        ("AccountPatch", {}),
        ("AccountPatch", {"external_id": "x"}),
        ("AccountPatch", {"status": "deleted"}),
        ("AdminKeyCreate", {"name": "k", "key_type": "sandbox", "make_primary": True}),
        ("AuditActor", {"type": "cli", "id": 3, "prefix": None}),
        ("AuditEvent", dict(SCHEMAS["AuditEvent"]["examples"][0], action="key.expired")),
        ("AuditEvent", dict(SCHEMAS["AuditEvent"]["examples"][0], details={"reason": "idle"})),
        ("AuditEvent", dict(SCHEMAS["AuditEvent"]["examples"][0], details={"reason": "expired", "retention_days": 30})),
        ("AuditEvent", {k: v for k, v in SCHEMAS["AuditEvent"]["examples"][0].items() if k != "details"}),
        ("AuditEvent", dict(SCHEMAS["AuditEvent"]["examples"][0], action="key.leaked")),
        ("ApiKey", dict(SEED_LIST["api_keys"][0], expires_at="2030-01-01T00:00:00Z")),
        ("ApiKey", dict(SEED_LIST["api_keys"][1], expires_at="2030-01-01T00:00:00+02:00")),
        ("ApiKey", dict(SEED_LIST["api_keys"][1], leaked_at="2025-01-01T00:00:00Z")),
        ("ApiKey", dict(SEED_LIST["api_keys"][1], rotated_to=0)),
        ("CreatedApiKey", dict(SCHEMAS["CreatedApiKey"]["examples"][0], rotated_from=2)),
        ("RotatedApiKey", dict(SCHEMAS["RotatedApiKey"]["examples"][0], rotated_from=None)),
        ("RotatedApiKey", dict(SCHEMAS["RotatedApiKey"]["examples"][0], is_primary=True, expires_at="2030-01-01T00:00:00Z")),
        ("IssuedApiKey", dict(SCHEMAS["IssuedApiKey"]["examples"][0], expires_at="2030-01-01T00:00:00Z")),
        ("RotateRequest", {"grace_period_seconds": 2592001}),
        ("RotateRequest", {"grace_period_seconds": -1}),
        ("RotateRequest", {"grace": 5}),
        ("AuditEvent", dict(SCHEMAS["AuditEvent"]["examples"][0], changes={"digest": {"old": None, "new": "x"}})),
        # issue 12: restrictions and usage
        ("ApiKey", {k: v for k, v in SEED_LIST["api_keys"][1].items() if k != "scopes"}),
        ("ApiKey", dict(SEED_LIST["api_keys"][0], scopes=["keys:read"])),  # the primary is never scoped
        ("ApiKey", dict(SEED_LIST["api_keys"][1], scopes=[])),
        ("ApiKey", dict(SEED_LIST["api_keys"][1], scopes=["Posts:write"])),
        ("ApiKey", dict(SEED_LIST["api_keys"][1], scopes=["posts:write", "posts:write"])),
        ("ApiKey", dict(SEED_LIST["api_keys"][1], scopes=["x"] * 51)),
        ("ApiKey", dict(SEED_LIST["api_keys"][1], scopes="posts:write")),
        ("ApiKey", dict(SEED_LIST["api_keys"][1], allowed_ips=[])),
        ("ApiKey", dict(SEED_LIST["api_keys"][1], allowed_ips=["10.0.0.1"])),
        ("ApiKey", dict(SEED_LIST["api_keys"][1], allowed_ips=["10.0.0.0/8"] * 33)),
        ("IssuedApiKey", dict(SCHEMAS["IssuedApiKey"]["examples"][0], scopes=["keys:read"])),
        ("RotatedApiKey", dict(SCHEMAS["RotatedApiKey"]["examples"][0], is_primary=True)),  # it has scopes
        ("AdminKeyCreate", {"name": "k", "key_type": "production", "make_primary": True, "scopes": ["keys:read"]}),
        ("UsageCounts", {"verified": -1, "refused": {"inactive": 0, "expired": 0, "suspended": 0, "scope": 0, "ip": 0}}),
        ("UsageCounts", {"verified": 1.5, "refused": {"inactive": 0, "expired": 0, "suspended": 0, "scope": 0, "ip": 0}}),
        ("UsageCounts", {"verified": 1, "refused": {"inactive": 0, "expired": 0, "suspended": 0, "scope": 0}}),
        ("UsageCounts", {"verified": 1, "refused": {"inactive": 0, "expired": 0, "suspended": 0, "scope": 0, "ip": 0,
                                                    "unknown": 0}}),
        ("KeyUsage", dict(SCHEMAS["KeyUsage"]["examples"][0], granularity="week")),
        ("KeyUsage", dict(SCHEMAS["KeyUsage"]["examples"][0], keys=[])),
        ("KeyUsage", {k: v for k, v in SCHEMAS["KeyUsage"]["examples"][0].items() if k != "key_id"}),
        ("AccountUsage", dict(SCHEMAS["AccountUsage"]["examples"][0], key_id=1)),
        ("AccountUsage", {k: v for k, v in SCHEMAS["AccountUsage"]["examples"][0].items() if k != "keys"}),
        ("AuditEvent", dict(SCHEMAS["AuditEvent"]["examples"][0], changes={"scopes": {"old": None, "new": ["Bad"]}})),
    ],
)
def test_schemas_reject_wrong_instances(name, instance):
    errors = list(SPEC.validator(SCHEMAS[name]).iter_errors(instance))
    assert errors, f"{name} accepted {instance!r}"


def test_last_used_may_be_null():
    SPEC.validate_schema("ApiKey", dict(SEED_LIST["api_keys"][1], last_used=None))


def iter_examples(node, path="#"):
    """(where, schema, value) for every example next to a schema in the document."""
    if isinstance(node, dict):
        if "schema" in node and "examples" in node and isinstance(node["examples"], dict):
            for name, ex in node["examples"].items():
                yield f"{path}/examples/{name}", node["schema"], SPEC.resolve(ex)["value"]
        if "examples" in node and isinstance(node["examples"], list) and ("type" in node or "$ref" in node or "const" in node):
            for i, ex in enumerate(node["examples"]):
                yield f"{path}/examples/{i}", node, ex
        for k, v in node.items():
            yield from iter_examples(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from iter_examples(v, f"{path}/{i}")


def test_every_example_validates_against_its_schema():
    examples = list(iter_examples(DOC))
    assert len(examples) > 10
    for where, schema, value in examples:
        errors = list(SPEC.validator(schema).iter_errors(value))
        assert not errors, f"{where}: {errors[0].message}"


def test_example_keys_are_well_formed():
    created = SCHEMAS["CreatedApiKey"]["examples"][0]
    assert_key_format(created["api_key"], created["key_type"])
    assert created["key_prefix"] == created["api_key"][:12]
    for ex in SCHEMAS["FullKey"]["examples"]:
        assert_key_format(ex)


# --------------------------------------------------------------------------- /v1/auth/verify


@pytest.mark.parametrize("path", VERIFY_PATHS)
def test_verify_answers_every_method_and_never_405(path):
    item = DOC["paths"][path]
    assert item["x-any-method"] == "get"
    assert "x-method-not-allowed" not in item
    responses = item["get"]["responses"]
    assert SPEC.resolve(responses["204"]) is DOC["components"]["responses"]["Verified"]
    assert SPEC.resolve(responses["401"]) is DOC["components"]["responses"]["Unauthorized"]
    assert SPEC.resolve(responses["403"]) is DOC["components"]["responses"]["InvalidVerifyToken"]


def test_verified_response_documents_the_identity_headers():
    verified = DOC["components"]["responses"]["Verified"]
    assert "content" not in verified
    headers = {name: SPEC.resolve(h) for name, h in verified["headers"].items()}
    assert list(headers) == ["X-Account-Id", "X-Key-Id", "X-Key-Type", "X-Key-Prefix", "X-Key-Expires-At", "X-Key-Scopes",
                             "RateLimit-Policy", "RateLimit", "X-Request-Id"]  # fmt: skip
    # X-Key-Expires-At only for a key that expires within 7 days, X-Key-Scopes only for a key
    # with scopes, the RateLimit fields only for a key with a rate limit; every other header always.
    optional = {"X-Key-Expires-At", "X-Key-Scopes", "RateLimit-Policy", "RateLimit"}
    assert all(h["required"] is True for name, h in headers.items() if name not in optional)
    assert all(headers[name]["required"] is False for name in optional)
    for name, good, bad in [
        ("X-Account-Id", ["1", "9223372036854775807"], ["0", "01", "-1", "x", ""]),
        ("X-Key-Id", ["42"], ["0", "4 2"]),
        ("X-Key-Type", ["production", "sandbox"], ["staging", ""]),
        ("X-Key-Prefix", ["ml_prod_abc1", "ml_sand_xyz7"], ["ml_prod_abc", "ml_prod_abc1X"]),
        ("X-Key-Expires-At", ["2025-01-20T00:00:00Z"], ["2025-01-20T00:00:00+00:00", "2025-01-20", ""]),
        ("X-Key-Scopes", ["posts:write", "billing:read posts:*", " ".join(["a"] * 50)],
         ["", "posts:write,billing:read", "posts:write  billing:read", " posts:write", "Posts", " ".join(["a"] * 51)]),
    ]:
        validator = SPEC.validator(headers[name]["schema"])
        for value in good:
            assert not list(validator.iter_errors(value)), (name, value)
        for value in bad:
            assert list(validator.iter_errors(value)), (name, value)


def test_invalid_verify_token_response():
    resp = DOC["components"]["responses"]["InvalidVerifyToken"]
    validator = SPEC.validator(resp["content"]["application/json"]["schema"])
    for code in ("invalid_verify_token", "account_suspended", "insufficient_scope", "ip_not_allowed"):
        assert not list(validator.iter_errors({"error": {"code": code, "message": "m"}})), code
    assert list(validator.iter_errors({"error": {"code": "forbidden", "message": "m"}}))


def test_403s_of_account_keys_name_the_restrictions():
    """Every route an account key may call documents 403 insufficient_scope (with its
    WWW-Authenticate) and ip_not_allowed."""
    header = DOC["components"]["headers"]["WWW-Authenticate-Scope"]
    validator = SPEC.validator(header["schema"])
    for good in ['Bearer realm="apikeyd", error="insufficient_scope", scope="keys:write"',
                 'Bearer realm="apikeyd", error="insufficient_scope", scope="posts:write billing:read posts:*"',
                 'Bearer realm="apikeyd", error="invalid_token"']:  # fmt: skip
        assert not list(validator.iter_errors(good)), good
    for bad in ["Bearer", 'Bearer realm="apikeyd-admin"', 'Basic realm="apikeyd"']:
        assert list(validator.iter_errors(bad)), bad
    for (path, method) in OPERATIONS:
        if path in ADMIN_PATHS + GITHUB_PATHS + DASHBOARD_PATHS + ["/healthz"]:
            continue  # no account key there
        op = DOC["paths"][path][method]
        resp = SPEC.resolve(op["responses"]["403"])
        assert SPEC.resolve(resp["headers"]["WWW-Authenticate"]) is header, (path, method)
        codes = resp["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["properties"]["code"]
        assert {"insufficient_scope", "ip_not_allowed", "account_suspended"} <= set(codes["enum"]), (path, method)


def test_usage_routes_take_their_query_parameters():
    for path in ("/v1/account/api-keys/{id}/usage", "/v1/account/usage/"):
        params = {SPEC.resolve(p)["name"]: SPEC.resolve(p) for p in DOC["paths"][path]["get"]["parameters"]}
        assert set(params) == {"from", "to", "granularity"}, path
        assert all(p["in"] == "query" and p["required"] is False for p in params.values())
        assert params["granularity"]["schema"]["enum"] == ["hour", "day"]
        bad = SPEC.resolve(DOC["paths"][path]["get"]["responses"]["400"])
        assert bad is DOC["components"]["responses"]["BadUsageQuery"]
    assert SPEC.operation("GET", "/v1/account/api-keys/7/usage?granularity=day")[0] == "/v1/account/api-keys/{id}/usage"
    assert SPEC.operation("GET", "/v1/account/api-keys/7/usage/")[0] == "/v1/account/api-keys/{id}/usage"
    assert SPEC.operation("GET", "/v1/account/usage")[0] == "/v1/account/usage/"


def test_refused_reasons_are_exactly_the_counted_ones():
    assert SCHEMAS["RefusedCounts"]["required"] == ["inactive", "expired", "suspended", "scope", "ip", "rate_limited", "quota_exhausted"]
    assert list(SCHEMAS["RefusedCounts"]["properties"]) == ["inactive", "expired", "suspended", "scope", "ip", "rate_limited", "quota_exhausted"]
    assert list(SCHEMAS["KeyUsage"]["properties"]) == ["key_id", "granularity", "from", "to", "total", "buckets"]
    assert list(SCHEMAS["AccountUsage"]["properties"]) == ["granularity", "from", "to", "total", "buckets", "keys"]


@pytest.mark.parametrize(
    "method,url,template",
    [
        ("GET", "/v1/auth/verify", "/v1/auth/verify/"),
        ("HEAD", "/v1/auth/verify/", "/v1/auth/verify/"),
        ("POST", "/v1/auth/verify?x=1", "/v1/auth/verify/"),
        ("PUT", "/v1/auth/verify/orders", "/v1/auth/verify/{path}"),
        ("DELETE", "/v1/auth/verify/orders/42/items/", "/v1/auth/verify/{path}"),
        ("PROPFIND", "/v1/auth/verify/a/b?c=d", "/v1/auth/verify/{path}"),
    ],
)
def test_wrapper_maps_any_method_and_any_suffix_to_verify(method, url, template):
    found, _, op = SPEC.operation(method, url)
    assert found == template
    assert op is DOC["paths"][template]["get"]


@pytest.mark.parametrize("url", ["/v1/auth/verifyx", "/v1/auth", "/v1/auth/verif"])
def test_wrapper_does_not_stretch_verify(url):
    assert SPEC.operation("GET", url) == (None, None, None)


def test_wrapper_keeps_405_for_other_paths():
    template, item, op = SPEC.operation("PUT", "/v1/account/api-keys/")
    assert template == "/v1/account/api-keys/" and op is None and "x-method-not-allowed" in item
    template, _, op = SPEC.operation("GET", "/v1/account/api-keys/1/2/")
    assert template is None and op is None
