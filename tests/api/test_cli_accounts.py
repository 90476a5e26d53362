"""The operator commands: `apikeyd account create|list|show|suspend|reactivate|set-max-keys|
delete|issue-key` (docs/contract.md, "Operator commands").

Black-box, on both backends: each command's output is compared with what the operator API
(`/v1/admin/...`, with a token from `apikeyd admin-token create`) answers for the same account,
cursors are passed back and forth between the two, a running server follows the CLI's changes
(polled with a deadline, never timed), and the audit log shows them with actor cli.
"""

import pytest

from conftest import (
    KEY_FIELDS,
    SPEC,
    Client,
    assert_error,
    assert_key_field_order,
    assert_key_format,
    parse_time,
    run_cli,
    strict_json,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("apikeyd_bin")

ACCOUNT_FIELDS = ["id", "name", "external_id", "status", "max_keys", "key_count", "created_at"]
CREATE_FIELDS = ["account_id", "account_name"] + KEY_FIELDS + ["api_key"]
ISSUED_FIELDS = ["id", "name", "key_type", "api_key", "message"] + KEY_FIELDS[3:]
CLI_ACTOR = {"type": "cli", "id": None, "prefix": None}
FOLLOW_TIMEOUT = 5.0  # a running server follows another process's change (SQLite: polls about every 1 s)
DEFAULT_MAX_KEYS = 100  # `serve --max-keys` default, which the servers here keep


# --------------------------------------------------------------------------- helpers


def account_cli(server, command, *args):
    """`apikeyd account COMMAND --db DB [common flags] ARGS...` on `server`'s database."""
    return run_cli("account", command, "--db", server.db, *server.common_args(), *args)


def ok_json(p):
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert p.stderr == "", p.stderr
    return strict_json(p.stdout)


def assert_one_line_error(p, *words):
    """Exit 1, nothing on stdout, exactly one line on stderr containing each of `words`."""
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), repr(p.stderr)
    for w in words:
        assert w in lines[0], (w, lines[0])


def http_account(admin, account_id):
    r = admin.get(f"/v1/admin/accounts/{account_id}/")
    assert r.status_code == 200, r.text
    return r.body


def http_page(admin, query):
    r = admin.get(f"/v1/admin/accounts/?{query}")
    assert r.status_code == 200, r.text
    return r.body


def assert_account(obj):
    assert list(obj) == ACCOUNT_FIELDS, list(obj)
    SPEC.validate_schema("Account", obj)


def make_account(server, name, *args):
    return ok_json(account_cli(server, "create", "--name", name, *args))


def wait_status(client, status, what):
    """Polls the key's listing until it answers `status` (FOLLOW_TIMEOUT); returns the response."""

    def answered():
        r = client.get()
        return [r] if r.status_code == status else None  # a list: a 4xx Response is falsy

    return wait_until(answered, FOLLOW_TIMEOUT, what=what)[0]


@pytest.fixture
def ops(admin_server):
    """(server, admin client): a running server with account `acme`, and an operator's token
    (made before the start: nothing to wait for)."""
    return admin_server, admin_server.admin


@pytest.fixture
def shared_ops(shared_admin_server):
    """ops, one per module, for tests whose commands are all refused (they change nothing)."""
    return shared_admin_server, shared_admin_server.admin


# --------------------------------------------------------------------------- create


def test_create_keeps_its_shape_and_takes_external_id_and_max_keys(ops):
    server, admin = ops
    info = make_account(server, "Globex", "--external-id", "cus_42", "--max-keys", "7")
    assert list(info) == CREATE_FIELDS
    assert_key_field_order(info)
    assert info["account_name"] == "Globex"
    assert info["name"] == "Production Key" and info["key_type"] == "production"
    assert info["is_active"] is True and info["is_primary"] is True and info["last_used"] is None
    assert_key_format(info["api_key"], "production")
    assert info["key_prefix"] == info["api_key"][:12]
    acct = http_account(admin, info["account_id"])
    assert acct["external_id"] == "cus_42" and acct["max_keys"] == 7 and acct["key_count"] == 1
    assert acct["status"] == "active" and acct["name"] == "Globex"


def test_create_with_a_taken_external_id_names_the_account_and_creates_nothing(ops):
    server, admin = ops
    first = make_account(server, "one", "--external-id", "cus_dup")
    before = http_page(admin, "limit=1000")["accounts"]
    p = account_cli(server, "create", "--name", "two", "--external-id", "cus_dup")
    assert_one_line_error(p, str(first["account_id"]))
    assert http_page(admin, "limit=1000")["accounts"] == before


# --------------------------------------------------------------------------- show and list


def test_show_prints_what_the_http_api_answers(ops):
    server, admin = ops
    acct_id = make_account(server, "Initech", "--external-id", "cus_7")["account_id"]
    shown = ok_json(account_cli(server, "show", str(acct_id)))
    assert_account(shown)
    assert shown == http_account(admin, acct_id)
    assert shown["max_keys"] == DEFAULT_MAX_KEYS and shown["external_id"] == "cus_7"
    parse_time(shown["created_at"])
    # And the server's own account, made by the fixture without an external_id.
    acme = ok_json(account_cli(server, "show", str(server.account.id)))
    assert acme == http_account(admin, server.account.id) and acme["external_id"] is None


def test_list_pages_match_the_http_api_and_cursors_go_both_ways(ops):
    server, admin = ops
    for i in range(6):
        make_account(server, f"acct-{i}")
    every = [a["id"] for a in http_page(admin, "limit=1000")["accounts"]]
    assert len(every) == 7 and every == sorted(every)

    first = ok_json(account_cli(server, "list", "--limit", "2"))
    assert list(first) == ["accounts", "next_cursor"]
    SPEC.validate_schema("AccountPage", first)
    assert first == http_page(admin, "limit=2")
    for a in first["accounts"]:
        assert_account(a)

    # Walk the listing alternating: a CLI cursor to the HTTP API, an HTTP cursor to the CLI.
    seen = [a["id"] for a in first["accounts"]]
    cursor, use_http = first["next_cursor"], True
    while cursor is not None:
        if use_http:
            page = http_page(admin, f"limit=2&after={cursor}")
            assert ok_json(account_cli(server, "list", "--limit", "2", "--after", cursor)) == page
        else:
            page = ok_json(account_cli(server, "list", "--limit", "2", "--after", cursor))
        seen += [a["id"] for a in page["accounts"]]
        cursor, use_http = page["next_cursor"], not use_http
    assert seen == every

    # Default limit: everything here on one page, no cursor.
    whole = ok_json(account_cli(server, "list"))
    assert [a["id"] for a in whole["accounts"]] == every and whole["next_cursor"] is None


def test_list_filters_by_external_id_with_cursors_of_that_listing(ops):
    server, admin = ops
    wanted = make_account(server, "wanted", "--external-id", "cus_x")["account_id"]
    make_account(server, "other", "--external-id", "cus_y")
    page = ok_json(account_cli(server, "list", "--external-id", "cus_x"))
    assert [a["id"] for a in page["accounts"]] == [wanted] and page["next_cursor"] is None
    assert page == http_page(admin, "external_id=cus_x")
    assert ok_json(account_cli(server, "list", "--external-id", "cus_none")) == {"accounts": [], "next_cursor": None}
    # A cursor of the unfiltered listing is not one of the filtered listing, here or over HTTP.
    cursor = ok_json(account_cli(server, "list", "--limit", "1"))["next_cursor"]
    assert cursor is not None
    assert_one_line_error(account_cli(server, "list", "--external-id", "cus_x", "--after", cursor), "--after")
    assert_error(admin.get(f"/v1/admin/accounts/?external_id=cus_x&after={cursor}"), 400, "invalid_cursor")


@pytest.mark.parametrize("cursor", ["garbage", "1.0000000000000000", "99999999999999999999.abcdefabcdefabcd"])
def test_list_refuses_a_bad_cursor_with_exit_1(shared_ops, cursor):
    server, _ = shared_ops
    assert_one_line_error(account_cli(server, "list", "--after", cursor), "--after")


def test_list_refuses_an_altered_cursor(ops):
    server, _ = ops
    make_account(server, "second")
    cursor = ok_json(account_cli(server, "list", "--limit", "1"))["next_cursor"]
    altered = cursor[:-1] + ("0" if cursor[-1] != "0" else "1")
    assert_one_line_error(account_cli(server, "list", "--after", altered), "--after")


# --------------------------------------------------------------------------- changes


def test_suspend_and_reactivate_reach_a_running_server(ops):
    server, admin = ops
    acct = server.account
    assert acct.client.get().status_code == 200
    suspended = ok_json(account_cli(server, "suspend", str(acct.id)))
    assert_account(suspended)
    assert suspended["status"] == "suspended"
    assert suspended == http_account(admin, acct.id)
    r = wait_status(acct.client, 403, "the server to refuse a suspended account's key")
    assert_error(r, 403, "account_suspended")
    # Suspending again changes nothing and says so the same way.
    assert ok_json(account_cli(server, "suspend", str(acct.id))) == suspended

    active = ok_json(account_cli(server, "reactivate", str(acct.id)))
    assert active["status"] == "active"
    assert active == http_account(admin, acct.id)
    wait_status(acct.client, 200, "the server to take a reactivated account's key again")


def test_set_max_keys_sets_clears_and_refuses_below_the_key_count(ops):
    server, admin = ops
    acct_id = server.account.id
    capped = ok_json(account_cli(server, "set-max-keys", str(acct_id), "3"))
    assert_account(capped)
    assert capped["max_keys"] == 3 and capped == http_account(admin, acct_id)
    cleared = ok_json(account_cli(server, "set-max-keys", str(acct_id), "default"))
    assert cleared["max_keys"] == DEFAULT_MAX_KEYS and cleared == http_account(admin, acct_id)

    for i in range(2):
        ok_json(account_cli(server, "issue-key", str(acct_id), "--name", f"k{i}"))
    ok_json(account_cli(server, "set-max-keys", str(acct_id), "3"))  # equal to the key count: fine
    before = http_account(admin, acct_id)
    assert before["key_count"] == 3 and before["max_keys"] == 3
    p = account_cli(server, "set-max-keys", str(acct_id), "2")
    assert_one_line_error(p, "max_keys", "key count")
    assert http_account(admin, acct_id) == before


def test_issue_key_prints_what_the_http_api_answers(ops):
    server, admin = ops
    acct = server.account
    issued = ok_json(account_cli(server, "issue-key", str(acct.id), "--name", "CI pipeline"))
    assert list(issued) == ISSUED_FIELDS
    SPEC.validate_schema("IssuedApiKey", issued)
    assert issued["name"] == "CI pipeline" and issued["key_type"] == "production"
    assert issued["is_active"] is True and issued["is_primary"] is False and issued["last_used"] is None
    assert_key_format(issued["api_key"], "production")
    assert issued["key_prefix"] == issued["api_key"][:12]

    r = admin.post(f"/v1/admin/accounts/{acct.id}/keys/", json={"name": "over http", "key_type": "production"})
    assert r.status_code == 201, r.text
    assert list(r.body) == list(issued)
    assert r.body["message"] == issued["message"]

    sandbox = ok_json(account_cli(server, "issue-key", str(acct.id), "--name", "dev", "--sandbox"))
    assert sandbox["key_type"] == "sandbox" and sandbox["is_primary"] is False
    assert_key_format(sandbox["api_key"], "sandbox")

    # The running server takes the new keys (SQLite: within about 1 s).
    for key in (issued["api_key"], sandbox["api_key"]):
        wait_status(Client(server, key), 200, "the server to take a key issued by the CLI")
    assert http_account(admin, acct.id)["key_count"] == 4


def test_issue_key_make_primary_keeps_the_old_primary_active(ops):
    server, _ = ops
    acct = server.account
    new = ok_json(account_cli(server, "issue-key", str(acct.id), "--name", "Recovered", "--make-primary"))
    assert new["is_primary"] is True and new["key_type"] == "production"
    client = Client(server, new["api_key"])
    wait_status(client, 200, "the server to take the new primary")

    def demoted():
        keys = {k["id"]: k for k in client.list()}
        old = keys.get(acct.primary_id)
        return keys if old is not None and not old["is_primary"] and keys[new["id"]]["is_primary"] else None

    keys = wait_until(demoted, FOLLOW_TIMEOUT, what="the old primary to be demoted")
    assert keys[acct.primary_id]["is_active"] is True
    assert [k["id"] for k in keys.values() if k["is_primary"]] == [new["id"]]


def test_issue_key_past_the_cap_is_refused(ops):
    server, admin = ops
    acct_id = server.account.id
    ok_json(account_cli(server, "set-max-keys", str(acct_id), "1"))
    assert_one_line_error(account_cli(server, "issue-key", str(acct_id), "--name", "one too many"), "key limit")
    assert http_account(admin, acct_id)["key_count"] == 1


def test_delete_prints_nothing_and_the_keys_stop_working(ops):
    server, admin = ops
    acct = server.account
    p = account_cli(server, "delete", str(acct.id))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and p.stderr == ""
    assert_error(admin.get(f"/v1/admin/accounts/{acct.id}/"), 404, "not_found")
    assert_one_line_error(account_cli(server, "show", str(acct.id)), "no such account")
    r = wait_status(acct.client, 401, "the server to refuse a deleted account's key")
    assert_error(r, 401, "invalid_api_key")


def test_a_suspended_account_stays_manageable(ops):
    server, admin = ops
    acct_id = server.account.id
    ok_json(account_cli(server, "suspend", str(acct_id)))
    assert ok_json(account_cli(server, "show", str(acct_id)))["status"] == "suspended"
    issued = ok_json(account_cli(server, "issue-key", str(acct_id), "--name", "while suspended"))
    assert issued["is_active"] is True
    assert ok_json(account_cli(server, "set-max-keys", str(acct_id), "5"))["status"] == "suspended"
    assert http_account(admin, acct_id)["key_count"] == 2


@pytest.mark.parametrize(
    "args",
    [
        ["show", "999"],
        ["suspend", "999"],
        ["reactivate", "999"],
        ["set-max-keys", "999", "5"],
        ["set-max-keys", "999", "default"],
        ["delete", "999"],
        ["issue-key", "999", "--name", "x"],
    ],
    ids=lambda a: " ".join(a),
)
def test_an_unknown_account_is_one_line_and_exit_1(shared_ops, args):
    server, admin = shared_ops
    before = admin.get("/v1/admin/audit-log/").body
    assert_one_line_error(account_cli(server, *args), "no such account")
    assert admin.get("/v1/admin/audit-log/").body == before


# --------------------------------------------------------------------------- audit


def test_the_audit_log_shows_the_cli_changes_with_actor_cli(ops):
    server, admin = ops
    created = make_account(server, "audited", "--external-id", "cus_audit")
    acct_id = created["account_id"]
    ok_json(account_cli(server, "suspend", str(acct_id)))
    ok_json(account_cli(server, "reactivate", str(acct_id)))
    ok_json(account_cli(server, "set-max-keys", str(acct_id), "9"))
    ok_json(account_cli(server, "issue-key", str(acct_id), "--name", "recovery", "--make-primary"))
    assert run_cli("account", "delete", "--db", server.db, *server.common_args(), str(acct_id)).returncode == 0

    r = admin.get(f"/v1/admin/audit-log/?account_id={acct_id}")
    assert r.status_code == 200, r.text
    events = list(reversed(r.body["events"]))  # oldest first
    # The new primary is created as primary, demoting the old one (its key.updated) in the same
    # transaction; the account's deletion is one event, its keys have none of their own.
    assert [e["action"] for e in events] == [
        "account.created",
        "key.created",
        "account.suspended",
        "account.reactivated",
        "account.updated",
        "key.updated",
        "key.created",
        "account.deleted",
    ], [e["action"] for e in events]
    for e in events:
        assert e["actor"] == CLI_ACTOR, e
        assert e["account_id"] == acct_id
        assert e["client_ip"] is None and e["request_id"] is None
    by_action = {e["action"]: e for e in events}
    assert by_action["account.suspended"]["changes"]["status"] == {"old": "active", "new": "suspended"}
    assert by_action["account.reactivated"]["changes"]["status"] == {"old": "suspended", "new": "active"}
    assert by_action["account.updated"]["changes"] == {"max_keys": {"old": None, "new": 9}}
    assert by_action["key.updated"]["target"] == {"type": "key", "id": created["id"]}
    assert by_action["key.updated"]["changes"] == {"is_primary": {"old": True, "new": False}}
    assert by_action["key.created"]["changes"]["is_primary"] == {"old": None, "new": True}
    assert by_action["account.deleted"]["target"] == {"type": "account", "id": acct_id}


# --------------------------------------------------------------------------- usage


SUBCOMMANDS = ["create", "list", "show", "suspend", "reactivate", "set-max-keys", "delete", "issue-key"]


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_each_subcommand_has_help(sub):
    p = run_cli("account", sub, "--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.lower().startswith("usage:") and f"account {sub} " in p.stdout, p.stdout
    assert p.stderr == ""


def test_the_family_and_the_main_help_list_every_subcommand():
    family = run_cli("account", "--help")
    main = run_cli("--help")
    for p in (family, main):
        assert p.returncode == 0, p.stderr
    for sub in SUBCOMMANDS:
        assert f"account {sub} " in family.stdout, sub
        assert sub in main.stdout, sub


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["list", "--bogus"],
        ["list", "--limit"],
        ["list", "--limit", "0"],
        ["list", "--limit", "1001"],
        ["list", "--limit", "ten"],
        ["list", "extra"],
        ["list", "--name", "x"],  # an option of another subcommand
        ["list", "--external-id", "has space"],
        ["show"],
        ["show", "abc"],
        ["show", "0"],
        ["show", "-3"],
        ["show", "007"],
        ["show", "1", "2"],
        ["show", "1", "--limit", "5"],
        ["suspend"],
        ["reactivate", "x"],
        ["delete", "1", "--sandbox"],
        ["set-max-keys", "1"],
        ["set-max-keys", "1", "0"],
        ["set-max-keys", "1", "1000001"],
        ["set-max-keys", "1", "lots"],
        ["set-max-keys", "1", "5", "6"],
        ["issue-key", "1"],
        ["issue-key", "1", "--name"],
        ["issue-key", "--name", "x"],
        ["issue-key", "1", "--name", ""],
        ["issue-key", "1", "--name", "x", "--sandbox", "--make-primary"],
        ["issue-key", "1", "--name", "x", "--make-primary=yes"],
        ["create", "--name", "x", "--max-keys", "0"],
        ["create", "--name", "x", "--max-keys", "many"],
        ["create", "--name", "x", "--external-id", ""],
        ["create", "--name", "x", "--limit", "3"],
        ["create"],
    ],
    ids=lambda a: " ".join(a) or "(nothing)",
)
def test_usage_errors_exit_2_with_usage_and_open_nothing(args, tmp_path):
    db = tmp_path / "x.db"
    p = run_cli("account", *args, "--db", db)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "usage" in p.stderr.lower(), p.stderr
    assert p.stdout == ""
    assert not db.exists(), "a usage error must not open (create) the database"


def test_db_is_required(tmp_path):
    p = run_cli("account", "show", "1")
    assert p.returncode == 2 and "--db" in p.stderr and "usage" in p.stderr.lower(), p.stderr


def test_db_from_the_environment(server):
    p = run_cli("account", "show", str(server.account.id), *server.common_args(), env={"APIKEYD_DB": server.db})
    assert ok_json(p)["id"] == server.account.id


@pytest.mark.parametrize("sub", [["show", "1"], ["list"], ["delete", "1"]], ids=lambda a: a[0])
def test_an_unopenable_database_is_one_line_and_exit_1(sub, backend, tmp_path):
    b = backend(tmp_path / "backend")
    try:
        for db, extra in b.unopenable_dbs():
            assert_one_line_error(run_cli("account", *sub, "--db", db, *extra))
    finally:
        b.release()


def test_apikeyd_max_keys_sets_the_default_cap_for_serve_and_the_operator_commands(server_factory):
    """APIKEYD_MAX_KEYS (as in the unit's EnvironmentFile) is the cap of accounts without their
    own, for `serve` and for the operator commands alike (the CLI counted 100 before)."""
    server = server_factory(env={"APIKEYD_MAX_KEYS": "2"}, admin=True)
    env = {"APIKEYD_MAX_KEYS": "2"}
    account = server.account
    admin = server.admin
    assert http_account(admin, account.id)["max_keys"] == 2
    p = run_cli("account", "show", account.id, "--db", server.db, *server.common_args(), env=env)
    assert ok_json(p)["max_keys"] == 2
    p = run_cli("account", "issue-key", account.id, "--name", "second", "--db", server.db, *server.common_args(), env=env)
    ok_json(p)
    p = run_cli("account", "issue-key", account.id, "--name", "third", "--db", server.db, *server.common_args(), env=env)
    assert p.returncode == 1 and "limit" in p.stderr
    r = account.client.post(json={"name": "third", "key_type": "sandbox"})
    assert r.status_code == 409 and r.body["error"]["code"] == "key_limit_reached"
    for bad in ("0", "abc", "1000001"):
        p = run_cli("account", "show", account.id, "--db", server.db, *server.common_args(), env={"APIKEYD_MAX_KEYS": bad})
        assert p.returncode != 0 and "APIKEYD_MAX_KEYS" in p.stderr
