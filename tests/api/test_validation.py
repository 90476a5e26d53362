"""Request bodies: 413, 415, 400 invalid_json, 422 validation_error. A refused request changes nothing:
every test on `shared_server` compares the account's keys before and after."""

import pytest

from conftest import COLLECTION, assert_error, snapshot

LIMIT = 64 * 1024
JSON = {"Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def unchanged(request):
    """Tests on the shared server must leave its keys exactly as they were."""
    if "shared_server" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("shared_server")
    before = snapshot(server.client)
    yield
    assert snapshot(server.client) == before, "a refused request changed the keys"


@pytest.fixture(scope="module")
def target(shared_server):
    """The id PATCH requests go to: the primary key (validation comes before the 409 rules)."""
    return shared_server.account.primary_id


def padded(size, name="padded", key_type="sandbox"):
    """A valid create body of exactly `size` bytes (whitespace padding)."""
    body = f'{{"name":"{name}","key_type":"{key_type}"}}'.encode()
    assert len(body) <= size
    return body[:-1] + b" " * (size - len(body)) + b"}"


# --------------------------------------------------------------------------- 413


@pytest.mark.parametrize("size", [LIMIT + 1, 65 * 1024 + 1, 1024 * 1024], ids=["64KiB+1", "65KiB+1", "1MiB"])
def test_post_over_64k_is_413(shared_server, size):
    r = shared_server.client.post(data=padded(size), headers=JSON)
    assert_error(r, 413, "payload_too_large")


def test_patch_over_64k_is_413(shared_server, target):
    body = b'{"name":"x"' + b" " * LIMIT + b"}"
    assert_error(shared_server.client.patch(target, data=body, headers=JSON), 413, "payload_too_large")


def test_413_before_415(shared_server):
    r = shared_server.client.post(data=b"x" * (LIMIT + 1), headers={"Content-Type": "text/plain"})
    assert_error(r, 413, "payload_too_large")


def test_chunked_over_64k_is_413(shared_server):
    def chunks():
        yield b'{"name":"x","key_type":"sandbox"'
        for _ in range(17):
            yield b" " * 4096
        yield b"}"

    r = shared_server.client.post(data=chunks(), headers=JSON)
    assert_error(r, 413, "payload_too_large")


def test_exactly_64k_is_accepted(client):
    r = client.post(data=padded(LIMIT, name="big"), headers=JSON)
    assert r.status_code == 201, r.text
    assert r.body["name"] == "big"


def test_chunked_small_body_is_accepted(client):
    def chunks():
        yield b'{"name":"chunked",'
        yield b'"key_type":"sandbox"}'

    r = client.post(data=chunks(), headers=JSON)
    assert r.status_code == 201, r.text
    assert r.body["name"] == "chunked"


# --------------------------------------------------------------------------- 415


BAD_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/json",
    "application/jsonx",
    "application/json-patch+json",
    "application/javascript",
    "",
]


@pytest.mark.parametrize("ctype", BAD_TYPES)
def test_post_non_json_content_type_is_415(shared_server, ctype):
    body = b'{"name":"x","key_type":"sandbox"}'
    r = shared_server.client.post(data=body, headers={"Content-Type": ctype})
    assert_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("ctype", BAD_TYPES)
def test_patch_non_json_content_type_is_415(shared_server, target, ctype):
    r = shared_server.client.patch(target, data=b'{"name":"x"}', headers={"Content-Type": ctype})
    assert_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "application/json;charset=UTF-8", "application/json ; charset=utf-8"])
def test_json_content_type_with_parameters_is_accepted(client, ctype):
    r = client.post(data=b'{"name":"x","key_type":"sandbox"}', headers={"Content-Type": ctype})
    assert r.status_code == 201, r.text
    key_id = r.body["id"]
    r = client.patch(key_id, data=b'{"name":"y"}', headers={"Content-Type": ctype})
    assert r.status_code == 200 and r.body["name"] == "y"


# --------------------------------------------------------------------------- 400


def nest(depth):
    return b'{"name":"a","key_type":"sandbox","x":' + b"[" * depth + b"]" * depth + b"}"


INVALID_JSON = {
    "empty": b"",
    "truncated": b'{"name":',
    "open-brace": b"{",
    "not-json": b"name=x&key_type=sandbox",
    "trailing-garbage": b'{"name":"a","key_type":"sandbox"} x',
    "two-objects": b'{"name":"a","key_type":"sandbox"}{}',
    "trailing-comma": b'{"name":"a","key_type":"sandbox",}',
    "single-quotes": b"{'name':'a','key_type':'sandbox'}",
    "nan": b'{"name":"a","key_type":"sandbox","x":NaN}',
    "unquoted-key": b'{name:"a","key_type":"sandbox"}',
    "duplicate-name": b'{"name":"a","name":"b","key_type":"sandbox"}',
    "duplicate-same-value": b'{"name":"a","key_type":"sandbox","key_type":"sandbox"}',
    "duplicate-nested": b'{"name":"a","key_type":"sandbox","x":{"y":1,"y":2}}',
    "deep-nesting-40": nest(40),
    "deep-nesting-1000": nest(1000),
    "deep-nesting-30000": b"[" * 30000 + b"]" * 30000,
    "deep-unclosed-60000": b"[" * 60000,
    "deep-objects": b'{"a":' * 200 + b"1" + b"}" * 200,
    "raw-control-char": b'{"name":"a\x01b","key_type":"sandbox"}',
    "raw-newline": b'{"name":"a\nb","key_type":"sandbox"}',
    "utf8-invalid-byte": b'{"name":"\xff","key_type":"sandbox"}',
    "utf8-overlong": b'{"name":"\xc0\xaf","key_type":"sandbox"}',
    "utf8-surrogate": b'{"name":"\xed\xa0\x80","key_type":"sandbox"}',
    "utf8-truncated": b'{"name":"\xe2\x82","key_type":"sandbox"}',
    "latin1": '{"name":"caf\u00e9","key_type":"sandbox"}'.encode("latin-1"),
    "bad-escape": b'{"name":"\\x41","key_type":"sandbox"}',
}


@pytest.mark.parametrize("body", list(INVALID_JSON.values()), ids=list(INVALID_JSON))
def test_post_invalid_json_is_400(shared_server, body):
    assert_error(shared_server.client.post(data=body, headers=JSON), 400, "invalid_json")


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"name":"a","name":"b"}', b'{"is_active":false,"is_active":true}', nest(100), b'{"name":"\xff"}'],
    ids=["empty", "open-brace", "duplicate", "duplicate-bool", "deep", "utf8"],
)
def test_patch_invalid_json_is_400(shared_server, target, body):
    assert_error(shared_server.client.patch(target, data=body, headers=JSON), 400, "invalid_json")


def test_moderate_nesting_is_parsed(shared_server):
    # Parsed fine (depth well under 32), then refused for the unknown field.
    assert_error(shared_server.client.post(data=nest(5), headers=JSON), 422, "validation_error")


# --------------------------------------------------------------------------- 422


def name_case(name):
    return {"name": name, "key_type": "sandbox"}


POST_422 = {
    "array": [],
    "array-of-object": [{"name": "a", "key_type": "sandbox"}],
    "string": "name",
    "number": 1,
    "null": None,
    "true": True,
    "empty-object": {},
    "missing-name": {"key_type": "sandbox"},
    "empty-name": name_case(""),
    "space-name": name_case(" "),
    "spaces-name": name_case("     "),
    "name-101": name_case("x" * 101),
    "name-101-e-acute": name_case("é" * 101),
    "name-101-emoji": name_case("😀" * 101),
    "name-101-combining": name_case("e\u0301" * 50 + "e"),
    "name-1000": name_case("x" * 1000),
    "name-nul": name_case("a\u0000b"),
    "name-u0001": name_case("\u0001"),
    "name-tab": name_case("a\tb"),
    "name-newline": name_case("a\nb"),
    "name-cr": name_case("a\rb"),
    "name-u001f": name_case("a\u001fb"),
    "name-del": name_case("a\u007fb"),
    "name-u0080": name_case("a\u0080b"),
    "name-u0085": name_case("a\u0085b"),
    "name-u009f": name_case("a\u009fb"),
    "name-trailing-control": name_case("abc\u0007"),
    "name-int": {"name": 1, "key_type": "sandbox"},
    "name-null": {"name": None, "key_type": "sandbox"},
    "name-bool": {"name": True, "key_type": "sandbox"},
    "name-array": {"name": ["a"], "key_type": "sandbox"},
    "name-object": {"name": {"a": 1}, "key_type": "sandbox"},
    "missing-key-type": {"name": "a"},
    "key-type-unknown": {"name": "a", "key_type": "staging"},
    "key-type-case": {"name": "a", "key_type": "Production"},
    "key-type-short": {"name": "a", "key_type": "prod"},
    "key-type-empty": {"name": "a", "key_type": ""},
    "key-type-null": {"name": "a", "key_type": None},
    "key-type-int": {"name": "a", "key_type": 1},
    "key-type-array": {"name": "a", "key_type": ["sandbox"]},
    "unknown-field": {"name": "a", "key_type": "sandbox", "foo": 1},
    "unknown-field-case": {"Name": "a", "name": "a", "key_type": "sandbox"},
    "unknown-field-null": {"name": "a", "key_type": "sandbox", "foo": None},
    "read-only-id": {"name": "a", "key_type": "sandbox", "id": 99},
    "read-only-key-prefix": {"name": "a", "key_type": "sandbox", "key_prefix": "ml_sand_abcd"},
    "read-only-created-at": {"name": "a", "key_type": "sandbox", "created_at": "2024-01-15T10:00:00Z"},
    "read-only-last-used": {"name": "a", "key_type": "sandbox", "last_used": None},
    "read-only-api-key": {"name": "a", "key_type": "sandbox", "api_key": "ml_sand_x"},
    "read-only-message": {"name": "a", "key_type": "sandbox", "message": "hi"},
    "post-is-active-true": {"name": "a", "key_type": "sandbox", "is_active": True},
    "post-is-active-false": {"name": "a", "key_type": "sandbox", "is_active": False},
    "post-is-primary-false": {"name": "a", "key_type": "sandbox", "is_primary": False},
    "post-is-primary-true": {"name": "a", "key_type": "production", "is_primary": True},
}


@pytest.mark.parametrize("body", list(POST_422.values()), ids=list(POST_422))
def test_post_validation_error_is_422(shared_server, body):
    assert_error(shared_server.client.post(json=body), 422, "validation_error")


def test_post_escaped_nul_is_422_not_400(shared_server):
    body = b'{"name":"a\\u0000b","key_type":"sandbox"}'
    assert_error(shared_server.client.post(data=body, headers=JSON), 422, "validation_error")


def test_post_ascii_escaped_unicode_name_counts_code_points(shared_server):
    # 101 astral code points written as surrogate-pair escapes (202 UTF-16 units, 404 bytes).
    body = ('{"name":"' + "\\ud83d\\ude00" * 101 + '","key_type":"sandbox"}').encode()
    assert_error(shared_server.client.post(data=body, headers=JSON), 422, "validation_error")


PATCH_422 = {
    "empty-object": {},
    "array": [],
    "string": "x",
    "null": None,
    "number": 1,
    "empty-name": {"name": ""},
    "space-name": {"name": "   "},
    "name-101": {"name": "x" * 101},
    "name-101-emoji": {"name": "😀" * 101},
    "name-nul": {"name": "\u0000"},
    "name-newline": {"name": "a\nb"},
    "name-u009f": {"name": "\u009f"},
    "name-int": {"name": 5},
    "name-null": {"name": None},
    "is-active-string": {"is_active": "false"},
    "is-active-int": {"is_active": 0},
    "is-active-null": {"is_active": None},
    "is-primary-string": {"is_primary": "true"},
    "is-primary-int": {"is_primary": 1},
    "is-primary-null": {"is_primary": None},
    "key-type": {"key_type": "sandbox"},
    "key-type-with-name": {"name": "ok", "key_type": "production"},
    "id": {"id": 5},
    "key-prefix": {"key_prefix": "ml_prod_abcd"},
    "created-at": {"created_at": "2024-01-15T10:00:00Z"},
    "last-used": {"last_used": None},
    "api-key": {"api_key": "ml_prod_x"},
    "unknown": {"foo": 1},
    "valid-plus-unknown": {"name": "ok", "foo": 1},
    "valid-plus-bad-type": {"name": "ok", "is_active": "yes"},
    "valid-plus-bad-name": {"is_active": True, "name": ""},
}


@pytest.mark.parametrize("body", list(PATCH_422.values()), ids=list(PATCH_422))
def test_patch_validation_error_is_422(shared_server, target, body):
    assert_error(shared_server.client.patch(target, json=body), 422, "validation_error")


def test_patch_validation_on_non_primary_key(server):
    client = server.client
    key = client.create("Original", "sandbox")
    before = snapshot(client)
    for body in [{}, {"name": "x" * 101}, {"name": "renamed", "key_type": "production"}, {"name": "renamed", "is_active": 1}]:
        assert_error(client.patch(key["id"], json=body), 422, "validation_error")
    assert snapshot(client) == before


@pytest.mark.parametrize("name", ["x" * 100, "é" * 100, "😀" * 100, "名" * 100, " x", "a\u00a0b", "a\u00a0"])
def test_boundary_names_are_accepted(client, name):
    created = client.create(name, "sandbox")
    assert created["name"] == name
    renamed = client.update(created["id"], name=name[::-1])
    assert renamed["name"] == name[::-1]


def test_collection_path_variants_validate_the_same(shared_server):
    for path in (COLLECTION, COLLECTION.rstrip("/"), COLLECTION + "?name=ok&key_type=sandbox"):
        assert_error(shared_server.client.post(path, json={"key_type": "sandbox"}), 422, "validation_error")
