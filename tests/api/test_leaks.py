"""Leaked-key reports (issue 10; docs/contract.md "Leaked keys"), black-box, on both backends.

- `POST /v1/admin/leaked-keys` (admin token) and `POST /v1/leaks/github` (GitHub's secret
  scanning partner endpoint, signed with ECDSA P-256 / SHA-256 by a key of
  `--leak-report-keys`) take GitHub's report format and answer GitHub's labels, in order:
  true_positive for a key of this server, false_positive for anything else.
- A reported key is deactivated and marked (`leaked_at`), refused with 401 key_leaked, cannot
  be reactivated or deleted (409 key_leaked), and the report is audited (key.leaked, once).
  A leaked primary stays primary; the account recovers by rotating it.
- GitHub reports: every signature fault (tampered body, unknown key id, a signature over
  another body or by another key, a missing header) is 401 invalid_signature and changes
  nothing; without --leak-report-keys the route is 404; an invalid keys file stops `serve`
  (exit 2, one line); SIGHUP rereads the file.

The ECDSA keys are made in the test (python3-cryptography, Debian's package). No duration is
asserted.
"""

import base64
import json
import random
import secrets
import signal

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import (
    Client,
    assert_error,
    forge_key,
    json_bytes,
    parse_time,
    run_cli,
    snapshot,
    wait_until,
)
from lifecycle import (
    admin_account,
    admin_issue,
    audit_events,
    ch,
    create_key,
    events_for_key,
    key_by_id,
    now,
    rotate_path,
    verify,
)

ADMIN_LEAKS = "/v1/admin/leaked-keys"
GITHUB = "/v1/leaks/github"
KEY_ID_HEADER = "Github-Public-Key-Identifier"
SIG_HEADER = "Github-Public-Key-Signature"
RELOAD_TIMEOUT = 10.0


# --------------------------------------------------------------------------- helpers


def report(*tokens, url="https://github.com/octo/repo/blob/main/.env", source="content", type_="apikeyd_key"):
    return [{"token": t, "type": type_, "url": url, "source": source} for t in tokens]


def labels(body):
    return [item["label"] for item in body]


def admin_report(admin, entries, **kw):
    r = admin.post(ADMIN_LEAKS, json=entries, **kw)
    assert r.status_code == 200, r.text
    assert [i["token_raw"] for i in r.body] == [e["token"] for e in entries]
    return r.body


class SigningKey:
    """An ECDSA P-256 key pair as GitHub has them: an identifier and a PEM public key."""

    def __init__(self):
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.id = secrets.token_hex(32)
        self.pem = (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def entry(self, current=True):
        return {"key_identifier": self.id, "key": self.pem, "is_current": current}

    def sign(self, body):
        return base64.b64encode(self.private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


def write_keys(path, *keys):
    path.write_text(json.dumps({"public_keys": [k.entry() for k in keys]}))
    return path


def github_post(client, body, key=None, key_id=None, signature=None, headers=None):
    """POST /v1/leaks/github with `body` (bytes) signed by `key` unless told otherwise."""
    hdrs = {"Content-Type": "application/json"}
    if key is not None:
        hdrs[KEY_ID_HEADER] = key.id
        hdrs[SIG_HEADER] = key.sign(body)
    if key_id is not None:
        hdrs[KEY_ID_HEADER] = key_id
    if signature is not None:
        hdrs[SIG_HEADER] = signature
    hdrs.update(headers or {})
    return client.request("POST", GITHUB, data=body, headers=hdrs, key=None)


@pytest.fixture
def github(server_factory, tmp_path):
    """A server with --leak-report-keys (one key, `server.gh_key`) and an admin token."""
    key = SigningKey()
    path = write_keys(tmp_path / "github-keys.json", key)
    server = server_factory("--leak-report-keys", path, admin=True)
    server.gh_key = key
    server.gh_path = path
    return server


def assert_bad_signature(r):
    """401 invalid_signature (no WWW-Authenticate asked: GitHub sends no bearer token)."""
    assert r.status_code == 401, f"expected 401 invalid_signature, got {r.status_code}: {r.text}"
    assert r.body["error"]["code"] == "invalid_signature", r.text


def assert_leaked(server, key_body):
    r = verify(server, key_body["api_key"])
    assert_error(r, 401, "key_leaked")
    assert "reported leaked" in r.body["error"]["message"]
    assert_error(Client(server, key_body["api_key"]).get(), 401, "key_leaked")


# --------------------------------------------------------------------------- the operator's route


def test_reported_live_key_is_deactivated_marked_and_audited(admin_server):
    server = admin_server
    admin = server.admin
    acme = server.account
    k = create_key(acme.client, "Leaky", "production")
    before = now()
    body = admin_report(admin, report(k["api_key"], url="https://example.com/paste/1", source="pastebin"),
                        headers={"X-Request-Id": "r-leak-1"})  # fmt: skip
    after = now()
    assert body == [{"token_raw": k["api_key"], "token_type": "apikeyd_key", "label": "true_positive"}]
    listed = key_by_id(acme.client, k["id"])
    assert listed["is_active"] is False
    assert before <= parse_time(listed["leaked_at"]) <= after
    assert_leaked(server, k)
    # cannot be switched back on or deleted: the row is the record
    snap = snapshot(acme.client)
    assert_error(acme.client.patch(k["id"], json={"is_active": True}), 409, "key_leaked")
    assert_error(acme.client.patch(k["id"], json={"name": "x", "is_active": True}), 409, "key_leaked")
    assert_error(acme.client.delete(k["id"]), 409, "key_leaked")
    r = admin.request("DELETE", f"/v1/admin/accounts/{acme.id}/keys/{k['id']}/")
    assert r.status_code in (404, 405), r.text  # no operator key deletion route either way
    assert snapshot(acme.client) == snap
    # a rename is still fine
    assert acme.client.update(k["id"], name="Leaky (leaked)")["name"] == "Leaky (leaked)"
    # audit
    events = events_for_key(admin, k["id"], action="key.leaked")
    assert len(events) == 1, events
    ev = events[0]
    assert ev["account_id"] == acme.id
    token = admin.token_info
    assert ev["actor"] == {"type": "admin_token", "id": token["id"], "prefix": token["token"][:13]}
    assert ev["changes"] == {"is_active": ch(True, False), "leaked_at": ch(None, listed["leaked_at"])}
    assert ev["details"] == {"url": "https://example.com/paste/1", "source": "pastebin"}
    assert ev["request_id"] == "r-leak-1"


def test_inactive_and_expired_keys_are_true_positives(admin_server):
    server = admin_server
    admin = server.admin
    c = server.client
    inactive = create_key(c, "Off", "sandbox")
    c.update(inactive["id"], is_active=False)
    rotated_old = create_key(c, "Rotated", "sandbox")
    assert c.post(rotate_path(rotated_old["id"]), json={"grace_period_seconds": 0}).status_code == 201
    body = admin_report(admin, report(inactive["api_key"], rotated_old["api_key"], url=None, source=None))
    assert labels(body) == ["true_positive", "true_positive"]
    for k in (inactive, rotated_old):
        listed = key_by_id(c, k["id"])
        assert listed["leaked_at"] is not None and listed["is_active"] is False
        assert_error(verify(server, k["api_key"]), 401, "key_leaked")
    ev = events_for_key(admin, inactive["id"], action="key.leaked")
    assert len(ev) == 1
    assert "is_active" not in ev[0]["changes"]  # it was inactive already
    assert ev[0]["details"] == {"url": "", "source": ""}


def test_unknown_malformed_and_deleted_tokens_are_false_positives(admin_server):
    server = admin_server
    admin = server.admin
    c = server.client
    gone = create_key(c, "Deleted", "sandbox")
    c.remove(gone["id"])
    live = create_key(c, "Live", "sandbox")
    bad_check = live["api_key"][:-1] + ("A" if live["api_key"][-1] != "A" else "B")
    tokens = [
        forge_key("prod"),
        forge_key("sand"),
        forge_key("prod", brand="xx"),
        gone["api_key"],
        bad_check,
        live["api_key"][:-6],
        "ghp_" + "a" * 36,
        "x" * 300,
    ]
    snap = snapshot(c)
    events_before = audit_events(admin)
    body = admin_report(admin, report(*tokens))
    assert labels(body) == ["false_positive"] * len(tokens)
    assert snapshot(c) == snap
    assert audit_events(admin) == events_before
    assert verify(server, live["api_key"]).status_code == 204
    assert admin.get("/v1/admin/accounts/?limit=1").status_code == 200  # the admin token still works


def test_a_leaked_admin_token_is_revoked(admin_server):
    """An operator's token in a report is the worst leak there is: revoked at once, recorded, labelled ours."""
    server = admin_server
    admin = server.admin
    other = server.admin_client("scanner-ci")
    body = admin_report(admin, report(other.key, url="https://github.com/o/r/blob/x/.env", source="content"))
    assert labels(body) == ["true_positive"]
    assert_error(other.get("/v1/admin/accounts/?limit=1"), 401, "invalid_admin_token")
    events = audit_events(admin, action="admin_token.revoked")
    assert len(events) == 1
    assert events[0]["target"]["id"] == other.token_info["id"]
    assert events[0]["details"] == {"url": "https://github.com/o/r/blob/x/.env", "source": "content"}
    # Reported again: revoked already, so no longer ours, and nothing more happens.
    assert labels(admin_report(admin, report(other.key))) == ["false_positive"]
    assert len(audit_events(admin, action="admin_token.revoked")) == 1


def test_reporting_again_is_true_positive_with_no_second_event(admin_server):
    server = admin_server
    admin = server.admin
    k = create_key(server.client, "Twice", "sandbox")
    assert labels(admin_report(admin, report(k["api_key"]))) == ["true_positive"]
    first = key_by_id(server.client, k["id"])
    # the same token twice in one report, then again in another
    assert labels(admin_report(admin, report(k["api_key"], k["api_key"]))) == ["true_positive"] * 2
    assert labels(admin_report(admin, report(k["api_key"], source="other"))) == ["true_positive"]
    assert key_by_id(server.client, k["id"]) == first
    assert len(events_for_key(admin, k["id"], action="key.leaked")) == 1
    assert len(audit_events(admin, action="key.leaked")) == 1


def test_leaked_primary_stays_primary_and_recovers_by_rotation(admin_server):
    server = admin_server
    admin = server.admin
    acme = server.account
    other = create_key(acme.client, "Other prod", "production")
    sand = create_key(acme.client, "Sandbox", "sandbox")
    oc = Client(server, other["api_key"])
    assert labels(admin_report(admin, report(acme.key))) == ["true_positive"]
    p = key_by_id(oc, acme.primary_id)
    assert p["is_primary"] is True and p["is_active"] is False and p["leaked_at"] is not None
    assert [k["id"] for k in oc.list() if k["is_primary"]] == [acme.primary_id]
    assert_error(verify(server, acme.key), 401, "key_leaked")
    # a sandbox key cannot do the recovery
    assert_error(Client(server, sand["api_key"]).post(rotate_path(acme.primary_id)), 403, "forbidden")
    # another production key rotates the leaked primary: the new key is the active primary
    r = oc.post(rotate_path(acme.primary_id), json={"grace_period_seconds": 3600})
    assert r.status_code == 201, r.text
    new = r.body
    assert new["is_primary"] is True and new["is_active"] is True and new["rotated_from"] == acme.primary_id
    assert new["leaked_at"] is None
    keys = oc.by_id()
    assert [k["id"] for k in keys.values() if k["is_primary"]] == [new["id"]]
    old = keys[acme.primary_id]
    assert old["is_primary"] is False and old["rotated_to"] == new["id"] and old["leaked_at"] == p["leaked_at"]
    # the grace does not revive a leaked key
    assert_error(verify(server, acme.key), 401, "key_leaked")
    assert verify(server, new["api_key"]).status_code == 204
    # still undeletable
    assert_error(Client(server, new["api_key"]).delete(acme.primary_id), 409, "key_leaked")


def test_leaked_primary_recovers_by_moving_primary(admin_server):
    server = admin_server
    admin = server.admin
    acme = server.account
    other = create_key(acme.client, "Other prod", "production")
    oc = Client(server, other["api_key"])
    admin_report(admin, report(acme.key))
    assert oc.update(other["id"], is_primary=True)["is_primary"] is True
    keys = oc.by_id()
    assert keys[acme.primary_id]["is_primary"] is False and keys[acme.primary_id]["is_active"] is False
    # and an operator may issue a primary for an account whose only key leaked
    account, primary = admin_account(admin, "Solo")
    admin_report(admin, report(primary["api_key"]))
    issued = admin_issue(admin, account["id"], "Recovered", "production", make_primary=True)
    assert issued["is_primary"] is True
    listed = Client(server, issued["api_key"]).by_id()
    assert listed[primary["id"]]["is_primary"] is False and listed[primary["id"]]["leaked_at"] is not None


def test_thousand_tokens_of_many_accounts(admin_server):
    server = admin_server
    admin = server.admin
    real = []  # (token, account client token, key id)
    for i in range(50):
        account, primary = admin_account(admin, f"Customer {i}")
        real.append(primary["api_key"])
        if i % 2 == 0:
            real.append(admin_issue(admin, account["id"], "Extra", "sandbox")["api_key"])
    deleted = create_key(server.client, "Deleted", "sandbox")
    server.client.remove(deleted["id"])
    fakes = [forge_key(random.choice(["prod", "sand"])) for _ in range(1000 - len(real) - 1)] + [deleted["api_key"]]
    rng = random.Random(10)
    tokens = [(t, "true_positive") for t in real] + [(t, "false_positive") for t in fakes]
    rng.shuffle(tokens)
    assert len(tokens) == 1000
    entries = [{"token": t, "type": "apikeyd_key", "url": f"https://github.com/o/r/blob/{i}", "source": "content"}
               for i, (t, _) in enumerate(tokens)]  # fmt: skip
    assert len(json_bytes(entries)) < 1024 * 1024
    body = admin_report(admin, entries)
    assert labels(body) == [label for _, label in tokens]
    assert all(item["token_type"] == "apikeyd_key" for item in body)
    for t in real[:: 7]:
        assert_error(verify(server, t), 401, "key_leaked")
    assert len(audit_events(admin, action="key.leaked")) == len(real)
    assert verify(server, server.account.key).status_code == 204


REPORT_REFUSALS = [
    ("not json", {"data": b"[{", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
    ("object", {"json": {"token": "x"}}, 422, "validation_error"),
    ("string", {"json": "x"}, 422, "validation_error"),
    ("member not object", {"json": ["x"]}, 422, "validation_error"),
    ("no token", {"json": [{"type": "t", "url": "u", "source": "s"}]}, 422, "validation_error"),
    ("token number", {"json": [{"token": 5}]}, 422, "validation_error"),
    ("token null", {"json": [{"token": None}]}, 422, "validation_error"),
    ("url number", {"json": [{"token": "x", "url": 5}]}, 422, "validation_error"),
    ("type object", {"json": [{"token": "x", "type": {}}]}, 422, "validation_error"),
    ("1001 tokens", {"json": [{"token": "x"}] * 1001}, 422, "validation_error"),
    ("text/plain", {"data": b"[]", "headers": {"Content-Type": "text/plain"}}, 415, "unsupported_media_type"),
]  # fmt: skip


@pytest.mark.parametrize("label,kw,status,code", REPORT_REFUSALS, ids=[r[0] for r in REPORT_REFUSALS])
def test_admin_report_refusals(shared_admin_server, label, kw, status, code):
    server = shared_admin_server
    k = create_key(server.client, "K", "sandbox")
    snap = snapshot(server.client)
    r = server.admin.post(ADMIN_LEAKS, **kw)
    assert_error(r, status, code)
    assert snapshot(server.client) == snap
    assert verify(server, k["api_key"]).status_code == 204


def test_admin_report_small_bodies(admin_server):
    admin = admin_server.admin
    r = admin.post(ADMIN_LEAKS, json=[])
    assert r.status_code == 200 and r.body == [], r.text
    # optional members may be missing or null; unknown members are ignored
    r = admin.post(ADMIN_LEAKS, json=[{"token": "nope"}, {"token": "nope2", "type": None, "extra": 1}])
    assert r.status_code == 200, r.text
    assert r.body == [
        {"token_raw": "nope", "token_type": "", "label": "false_positive"},
        {"token_raw": "nope2", "token_type": "", "label": "false_positive"},
    ]


def test_admin_report_needs_an_admin_token(admin_server):
    server = admin_server
    k = create_key(server.client, "K", "sandbox")
    body = report(k["api_key"])
    assert_error(server.admin.post(ADMIN_LEAKS, json=body, key=None), 401, "missing_admin_token")
    assert_error(server.admin.post(ADMIN_LEAKS, json=body, key=server.account.key), 401, "invalid_admin_token")
    assert_error(server.admin.post(ADMIN_LEAKS, json=body, key=k["api_key"]), 401, "invalid_admin_token")
    r = server.admin.get(ADMIN_LEAKS)
    assert_error(r, 405, "method_not_allowed")
    assert verify(server, k["api_key"]).status_code == 204


# --------------------------------------------------------------------------- GitHub


def test_github_signed_report(github):
    server = github
    acme = server.account
    k = create_key(acme.client, "Pushed", "production")
    body = json_bytes([{"token": k["api_key"], "type": "apikeyd_production", "url": "https://github.com/o/r/blob/x",
                        "source": "content"}, {"token": forge_key(), "type": "apikeyd_production", "url": None,
                                                "source": None}])  # fmt: skip
    r = github_post(Client(server), body, server.gh_key, headers={"X-Request-Id": "r-gh-1"})
    assert r.status_code == 200, r.text
    assert r.body[0] == {"token_raw": k["api_key"], "token_type": "apikeyd_production", "label": "true_positive"}
    assert r.body[1]["label"] == "false_positive" and r.body[1]["token_type"] == "apikeyd_production"
    assert_leaked(server, k)
    ev = events_for_key(server.admin, k["id"], action="key.leaked")
    assert len(ev) == 1, ev
    ev = ev[0]
    assert ev["actor"]["type"] == "system"
    assert ev["details"] == {"url": "https://github.com/o/r/blob/x", "source": "content"}
    assert ev["request_id"] == "r-gh-1" and ev["client_ip"] == "127.0.0.1"
    assert ev["changes"]["is_active"] == ch(True, False)
    # no Content-Type needed (the signature covers the body); an empty report
    empty = b"[]"
    r = Client(server).request("POST", GITHUB, data=empty, key=None,
                               headers={KEY_ID_HEADER: server.gh_key.id, SIG_HEADER: server.gh_key.sign(empty)})  # fmt: skip
    assert r.status_code == 200 and r.body == [], r.text


def test_github_signature_faults_change_nothing(github):
    server = github
    k = create_key(server.client, "Pushed", "production")
    body = json_bytes(report(k["api_key"]))
    other_body = json_bytes(report(forge_key()))
    stranger = SigningKey()
    good_sig = server.gh_key.sign(body)
    c = Client(server)
    cases = {
        "tampered body": github_post(c, body.replace(b"content", b"CONTENT"), key_id=server.gh_key.id,
                                     signature=good_sig),
        "trailing byte": github_post(c, body + b" ", key_id=server.gh_key.id, signature=good_sig),
        "unknown key id": github_post(c, body, key_id=stranger.id, signature=stranger.sign(body)),
        "wrong key id": github_post(c, body, key_id="0" * 64, signature=good_sig),
        "another key's signature": github_post(c, body, key_id=server.gh_key.id, signature=stranger.sign(body)),
        "signature over another body": github_post(c, body, key_id=server.gh_key.id,
                                                   signature=server.gh_key.sign(other_body)),
        "no identifier": github_post(c, body, signature=good_sig),
        "no signature": github_post(c, body, key_id=server.gh_key.id),
        "no headers": github_post(c, body),
        "empty signature": github_post(c, body, key_id=server.gh_key.id, signature=""),
        "not base64": github_post(c, body, key_id=server.gh_key.id, signature="!!!not base64!!!"),
        "base64 garbage": github_post(c, body, key_id=server.gh_key.id, signature=base64.b64encode(b"x" * 70).decode()),
    }  # fmt: skip
    for label, r in cases.items():
        assert r.status_code == 401 and r.body["error"]["code"] == "invalid_signature", f"{label}: {r.status_code} {r.text}"
    listed = key_by_id(server.client, k["id"])
    assert listed["is_active"] is True and listed["leaked_at"] is None
    assert verify(server, k["api_key"]).status_code == 204
    assert audit_events(server.admin, action="key.leaked") == []
    # the genuine request still works afterwards
    assert github_post(c, body, server.gh_key).status_code == 200
    assert_leaked(server, k)


def test_github_body_refusals_after_a_valid_signature(github):
    server = github
    c = Client(server)
    for body, status, code in (
        (b"[{", 400, "invalid_json"),
        (b'{"token": "x"}', 422, "validation_error"),
        (json_bytes([{"token": "x"}] * 1001), 422, "validation_error"),
        (json_bytes([{"type": "t"}]), 422, "validation_error"),
    ):
        assert_error(github_post(c, body, server.gh_key), status, code)
    r = c.request("GET", GITHUB, key=None)
    assert_error(r, 405, "method_not_allowed")


def test_github_route_is_404_without_keys_file(server):
    key = SigningKey()
    body = json_bytes(report(server.account.key))
    r = github_post(Client(server), body, key)
    assert_error(r, 404, "not_found")
    assert verify(server, server.account.key).status_code == 204


def _bad_keys_files(tmp_path):
    rsa_pem = (
        "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMrZ7f0ghPQOPeIdTHr+Lxo7rH1GOcGL\n"
        "5PNf3AJVWclRIc9JtBD1lbn/Ql48KjbfGHO6BYWkkxFb8pOGrp3pNfsCAwEAAQ==\n-----END PUBLIC KEY-----\n"
    )
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()  # fmt: skip
    files = {
        "missing": None,
        "not json": "public_keys: []",
        "not an object": "[]",
        "no public_keys": "{}",
        "bad pem": json.dumps({"public_keys": [{"key_identifier": "ab", "key": "not a pem", "is_current": True}]}),
        "rsa": json.dumps({"public_keys": [{"key_identifier": "ab", "key": rsa_pem, "is_current": True}]}),
        "p-384": json.dumps({"public_keys": [{"key_identifier": "ab", "key": p384, "is_current": True}]}),
        "no identifier": json.dumps({"public_keys": [{"key": SigningKey().pem, "is_current": True}]}),
    }
    out = {}
    for label, text in files.items():
        path = tmp_path / f"keys-{label.replace(' ', '-')}.json"
        if text is not None:
            path.write_text(text)
        out[label] = path
    return out


def test_invalid_keys_file_stops_serve(server_factory, tmp_path):
    server = server_factory(start=False)
    for label, path in _bad_keys_files(tmp_path).items():
        p = run_cli("serve", "--db", server.db, "--listen", "127.0.0.1:1", "--leak-report-keys", path,
                    *server.common_args())  # fmt: skip
        assert p.returncode == 2, f"{label}: exit {p.returncode}: {p.stderr}"
        lines = [line for line in p.stderr.strip().splitlines() if "APIKEYD_TEST_CLOCK_FILE" not in line]
        assert len(lines) == 1, f"{label}: {p.stderr}"
        assert lines[0].startswith("apikeyd serve: --leak-report-keys: "), f"{label}: {p.stderr}"


def test_sighup_rereads_the_keys_file(github):
    server = github
    c = Client(server)
    first, second = server.gh_key, SigningKey()
    k1 = create_key(server.client, "One", "sandbox")
    k2 = create_key(server.client, "Two", "sandbox")
    k3 = create_key(server.client, "Three", "sandbox")
    b2 = json_bytes(report(k2["api_key"]))
    assert_bad_signature(github_post(c, b2, second))
    # a second key added: accepted after SIGHUP
    write_keys(server.gh_path, first, second)
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "SIGHUP: reloaded" in server.log_text(), RELOAD_TIMEOUT, what="the reload log line")
    r = github_post(c, b2, second)
    assert r.status_code == 200 and labels(r.body) == ["true_positive"], r.text
    assert_error(verify(server, k2["api_key"]), 401, "key_leaked")
    # a bad file on SIGHUP keeps the keys in use
    server.gh_path.write_text("{not json")
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "the keys loaded before stay in use" in server.log_text(), RELOAD_TIMEOUT,
               what="the failed reload's log line")  # fmt: skip
    r = github_post(c, json_bytes(report(k1["api_key"])), first)
    assert r.status_code == 200 and labels(r.body) == ["true_positive"], r.text
    # the first key removed: refused after SIGHUP
    write_keys(server.gh_path, second)
    n = server.log_text().count("SIGHUP: reloaded")
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: server.log_text().count("SIGHUP: reloaded") > n, RELOAD_TIMEOUT, what="the second reload")
    b3 = json_bytes(report(k3["api_key"]))
    assert_bad_signature(github_post(c, b3, first))
    assert verify(server, k3["api_key"]).status_code == 204
    assert github_post(c, b3, second).status_code == 200
    assert server.proc.poll() is None
