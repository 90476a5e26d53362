"""Request ids (contract.md, "Request ids"): every response carries `X-Request-Id`, the
request's own when it is a sane token (1 to 128 characters of [A-Za-z0-9._:-], sent once, not
shaped like a key), else 32 lower-case hex digits made by the server; the request's access-log
line ends with `rid=<the same id>`."""

import http.client
import re
import uuid

import pytest
import requests

from conftest import COLLECTION, HTTP_TIMEOUT, LOG_TIMEOUT, Client, forge_key, sqlite_only, wait_until

GENERATED = re.compile(r"^[0-9a-f]{32}$")
VERIFY = "/v1/auth/verify"
JSON = {"Content-Type": "application/json"}

SANE = [
    "a",
    "req-42",
    "A.b_C:d-9",
    "123e4567-e89b-12d3-a456-426614174000",  # fixed values: pytest-xdist workers must collect the same ids
    "0123456789abcdef0123456789abcdef",
    "f" * 128,
    "-".join(["abc1234"] * 16),  # 127 characters, no long run
]
INSANE = {
    "129 characters": "f" * 129,
    "empty": "",
    "space": "req 42",
    "angle brackets": "<script>",
    "quote": 'req"42',
    "slash": "a/b",
    "percent": "a%41",
    "comma": "a,b",
    "tab": "a\tb",
}


def rid(response):
    value = response.headers.get("X-Request-Id")
    assert value is not None, f"{response.status_code} without X-Request-Id"
    return value


def logged_line(server, request_id):
    """The access-log line that ends with `rid=<request_id>` (waits for it)."""

    def find():
        lines = [line for line in server.log_text().splitlines() if line.endswith(f" rid={request_id}")]
        return lines or None

    lines = wait_until(find, LOG_TIMEOUT, what=f"the access-log line with rid={request_id}")
    assert len(lines) == 1, lines
    return lines[0]


def raw_request(server, method, path, headers, body=None):
    """`headers` as a list of (name, value) pairs sent byte for byte, repeats included; (status, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        r.read()
        return r.status, r.headers
    finally:
        conn.close()


# --------------------------------------------------------------------------- taken or made


@pytest.mark.parametrize("value", SANE)
def test_sane_id_is_echoed_and_logged(shared_server, value):
    r = shared_server.client.get(headers={"X-Request-Id": value})
    assert r.status_code == 200
    assert rid(r) == value
    line = logged_line(shared_server, value)
    assert f" GET {COLLECTION} 200 " in line, line


@pytest.mark.parametrize("value", list(INSANE.values()), ids=list(INSANE))
def test_insane_id_is_replaced(shared_server, value):
    r = shared_server.client.get(headers={"X-Request-Id": value})
    assert r.status_code == 200
    assert GENERATED.match(rid(r)), rid(r)
    assert f" GET {COLLECTION} 200 " in logged_line(shared_server, rid(r))


@pytest.mark.parametrize("value", [b"caf\xc3\xa9", b"\xe9t\xe9"], ids=["utf-8", "latin-1"])
def test_non_ascii_id_is_replaced(shared_server, value):
    status, headers = raw_request(shared_server, "GET", "/healthz", [("X-Request-Id", value)])
    assert status == 200
    assert GENERATED.match(headers["X-Request-Id"]), headers["X-Request-Id"]


def test_repeated_header_is_replaced(shared_server):
    """Several X-Request-Id headers: none is taken (which one would a gateway have meant?)."""
    status, headers = raw_request(shared_server, "GET", "/healthz", [("X-Request-Id", "one"), ("X-Request-Id", "two")])
    assert status == 200
    assert GENERATED.match(headers["X-Request-Id"]), headers["X-Request-Id"]
    assert headers.get_all("X-Request-Id") == [headers["X-Request-Id"]]


def test_key_shaped_id_is_replaced_and_never_logged(shared_server):
    """An id that looks like a key (or a key's random part) would put a secret in the log."""
    key = shared_server.account.key
    for value in (key, forge_key("sand"), key.split("_", 2)[2][:32]):
        r = shared_server.client.get(headers={"X-Request-Id": value})
        assert r.status_code == 200
        assert GENERATED.match(rid(r)), rid(r)
        logged_line(shared_server, rid(r))
        assert value not in shared_server.log_text()


def test_generated_ids_differ(shared_server):
    anon = Client(shared_server)
    ids = [rid(shared_server.client.get()) for _ in range(20)] + [rid(anon.get("/healthz")) for _ in range(20)]
    assert all(GENERATED.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids), ids


def test_one_header_in_the_response(shared_server):
    r = shared_server.client.get(headers={"X-Request-Id": "only-once"})
    assert r.raw.headers.getlist("X-Request-Id") == ["only-once"]


# --------------------------------------------------------------------------- every answer


def test_every_status_carries_the_id_and_logs_it(server):
    client, anon = server.client, Client(server)
    created = client.create("victim", "sandbox")
    sand = Client(server, created["api_key"])
    big = b'{"name":"x"' + b" " * (64 * 1024) + b"}"
    cases = [
        (200, lambda h: client.get(headers=h)),
        (200, lambda h: anon.get("/healthz", headers=h)),
        (201, lambda h: client.post(json={"name": "n", "key_type": "sandbox"}, headers=h)),
        (204, lambda h: client.request("GET", VERIFY, headers=h)),
        (204, lambda h: client.request("POST", VERIFY + "/orders/42", headers=h)),
        (400, lambda h: client.post(data=b"{", headers={**JSON, **h})),
        (401, lambda h: anon.get(headers=h)),
        (401, lambda h: anon.request("GET", VERIFY, headers=h)),
        (403, lambda h: sand.post(json={"name": "p", "key_type": "production"}, headers=h)),
        (404, lambda h: client.get("/no/such/path", headers=h)),
        (404, lambda h: client.patch(999999, json={"name": "y"}, headers=h)),
        (405, lambda h: client.request("PUT", COLLECTION, headers=h)),
        (405, lambda h: anon.request("POST", "/healthz", headers=h)),
        (409, lambda h: client.delete(server.account.primary_id, headers=h)),
        (413, lambda h: client.post(data=big, headers={**JSON, **h})),
        (415, lambda h: client.post(data=b"{}", headers={"Content-Type": "text/plain", **h})),
        (422, lambda h: client.post(json={"name": ""}, headers=h)),
        (200, lambda h: client.patch(created["id"], json={"name": "renamed"}, headers=h)),
        (204, lambda h: client.delete(created["id"], headers=h)),
    ]
    for i, (status, send) in enumerate(cases):
        # Every response is validated against docs/openapi.yaml, where X-Request-Id is required.
        sent = f"case-{i}.{uuid.uuid4().hex[:8]}"
        r = send({"X-Request-Id": sent})
        assert r.status_code == status, (i, r.status_code, r.text)
        assert rid(r) == sent
        assert f" {status} " in logged_line(server, sent)
        r = send({})
        assert r.status_code in (status, 404), (i, r.status_code, r.text)  # a second DELETE finds nothing
        assert GENERATED.match(rid(r)), rid(r)
        assert f" {r.status_code} " in logged_line(server, rid(r))


@sqlite_only  # HTTP framing: the storage backend plays no part
def test_refused_framing_and_headers_carry_the_id(shared_server):
    status, headers = raw_request(
        shared_server,
        "POST",
        COLLECTION,
        [("X-Request-Id", "framing-1"), ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
        body=b"2\r\n{}\r\n0\r\n\r\n",
    )
    assert status == 400 and headers["X-Request-Id"] == "framing-1"
    # Not through Client: the document lists 431 for no operation (it answers any path, before routing).
    r = requests.get(
        shared_server.base_url + "/healthz",
        headers={"X-Request-Id": "large-1", **{f"X-Pad-{i}": "p" * 1000 for i in range(40)}},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 431 and r.json()["error"]["code"] == "headers_too_large"
    assert rid(r) == "large-1"
    assert " 431 " in logged_line(shared_server, "large-1")


@sqlite_only  # HTTP framing: the storage backend plays no part
def test_bodies_over_the_http_servers_limit_carry_the_id(shared_server):
    """Over 1 MiB, h2o itself answers 413 (plain text) before apikeyd's handler runs."""
    # Only the headers go out: h2o answers from the Content-Length and closes, so a client still
    # sending the body would get its answer or a reset, by the luck of timing.
    for sent in ("huge-1", None):
        conn = http.client.HTTPConnection("127.0.0.1", shared_server.port, timeout=HTTP_TIMEOUT)
        try:
            conn.putrequest("POST", COLLECTION)
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Authorization", f"Bearer {shared_server.account.key}")
            conn.putheader("Content-Length", str(1024 * 1024 + 1))
            if sent is not None:
                conn.putheader("X-Request-Id", sent)
            conn.endheaders()
            r = conn.getresponse()
            r.read()
            got = r.getheader("X-Request-Id")
        finally:
            conn.close()
        assert r.status == 413
        assert got == sent if sent is not None else GENERATED.match(got)
        assert f"POST {COLLECTION} 413 " in logged_line(shared_server, got)
