"""Gateway mode (issue 15): routes the server refuses at start, and those it accepts, on both
backends.

A route that would shadow apikeyd's own paths (equal to, above or below /healthz, /dashboard,
/v1/account, /v1/admin, /v1/auth, /v1/leaks; `/` alone), a repeated prefix, an https upstream, a
malformed prefix, URL or option, more than 64 routes, a bad gateway flag: `apikeyd serve` exits 2
with one line on stderr, from a flag as from APIKEYD_ROUTE. Names that merely start like apikeyd's
own (`/v2`, `/healthzx`, `/dashboards`, `/v1/accounts`) are accepted and proxied, and routes from
APIKEYD_ROUTE (one per line) work.
"""

import os
import subprocess
import uuid

import pytest

from conftest import BIN, START_TIMEOUT, Server, ServerFactory, free_port
from upstream import Upstream, dead_port, gw_request

UP = "http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def db(backend, apikeyd_bin, tmp_path_factory):
    """A database (and secret) of the backend, with one account; no server running on it."""
    factory = ServerFactory(backend, tmp_path_factory.mktemp("gateway-start"))
    server = factory(start=False)
    yield server
    factory.close_all()


def serve(server, *args, env=None):
    """`apikeyd serve` on `server`'s database with `args`: (exit status, stderr). A server that
    starts instead of exiting is stopped, and the test fails."""
    full_env = dict(os.environ)
    for name in ("APIKEYD_DB", "APIKEYD_LISTEN", "APIKEYD_ROUTE"):
        full_env.pop(name, None)
    full_env.update(env or {})
    argv = [str(BIN), "serve", "--db", server.db, "--listen", f"127.0.0.1:{free_port()}", *server.common_args(), *args]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=full_env,
                            text=True)  # fmt: skip
    try:
        _, err = proc.communicate(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"apikeyd serve {args} started instead of refusing; stderr: {err}")
    return proc.returncode, err


def assert_refused(server, *args, env=None):
    rc, err = serve(server, *args, env=env)
    lines = err.strip().splitlines()
    assert rc == 2, f"{args}: exit {rc}, stderr: {err}"
    assert len(lines) == 1 and lines[0].strip(), f"{args}: not one line on stderr: {err!r}"
    assert "listening" not in err
    return lines[0]


U = UP.format(port=8080)

SHADOWING = ["/v1", "/v1/account", "/v1/account/api-keys", "/v1/admin", "/v1/admin/accounts", "/v1/auth",
             "/v1/auth/verify", "/v1/leaks", "/v1/leaks/github", "/healthz", "/healthz/x", "/dashboard",
             "/dashboard/x", "/dashboard/assets/app.js", "/"]  # fmt: skip


@pytest.mark.parametrize("prefix", SHADOWING)
def test_route_shadowing_apikeyds_own_paths_is_refused(db, prefix):
    assert_refused(db, "--route", f"{prefix}={U}")


BAD_ROUTES = {
    "https upstream": "/api=https://127.0.0.1:8443",
    "https upstream, upper case": "/api=HTTPS://127.0.0.1:8443",
    "no scheme": "/api=127.0.0.1:8080",
    "other scheme": "/api=ftp://127.0.0.1:21",
    "no upstream": "/api=",
    "no =": "/api",
    "no prefix": f"={U}",
    "relative prefix": f"api={U}",
    "trailing slash": f"/api/={U}",
    "empty segment": f"/a//b={U}",
    "dot segment": f"/a/./b={U}",
    "dot-dot segment": f"/a/../b={U}",
    "percent in prefix": f"/a%20b={U}",
    "space in prefix": f"/a b={U}",
    "prefix of 257 bytes": "/" + "a" * 256 + f"={U}",
    "cost over 1000": f"/api={U};cost=1001",
    "negative cost": f"/api={U};cost=-1",
    "cost not a number": f"/api={U};cost=many",
    "unknown option": f"/api={U};frobnicate",
    "no host": "/api=http://",
    "bad port": "/api=http://127.0.0.1:99999",
    "user in the URL": "/api=http://user@127.0.0.1:8080",
    "query in the URL": "/api=http://127.0.0.1:8080/p?x=1",
    "fragment in the URL": "/api=http://127.0.0.1:8080/p#f",
    "URL over 1024 bytes": "/api=http://127.0.0.1:8080/" + "p" * 1020,
    "cost with a leading zero": f"/api={U};cost=01",
    "public with scopes": f"/api={U};public;scopes=posts:read",
    "empty scopes": f"/api={U};scopes=",
    "bad scope name": f"/api={U};scopes=Posts:Write",
    "scope name with a bad character": f"/api={U};scopes=posts:w!rite",
    "51 scopes": f"/api={U};scopes=" + ",".join(f"s{i}:r" for i in range(51)),
}


@pytest.mark.parametrize("name", sorted(BAD_ROUTES))
def test_malformed_route_is_refused(db, name):
    assert_refused(db, "--route", BAD_ROUTES[name])


def test_prefix_of_256_bytes_is_accepted_and_257_refused(db):
    up = Upstream()
    try:
        prefix = "/" + "a" * 255
        server = start(db, "--route", f"{prefix}={up.url}")
        try:
            key = [("Authorization", f"Bearer {db.account.key}")]
            assert gw_request(server.port, "GET", prefix + "/x", key).status == 200
        finally:
            server.stop()
    finally:
        up.close()
    assert_refused(db, "--route", "/" + "a" * 256 + f"={U}")


def test_duplicate_prefix_is_refused(db):
    assert_refused(db, "--route", f"/api={U}", "--route", f"/api={UP.format(port=8081)};public")
    assert_refused(db, env={"APIKEYD_ROUTE": f"/api={U}\n/api={U}"})


def test_65_routes_are_refused_64_accepted(db):
    routes = [a for i in range(65) for a in ("--route", f"/r{i}={U}")]
    assert_refused(db, *routes)
    server = start(db, *routes[:128])
    server.stop()


@pytest.mark.parametrize("flag,value", [("--upstream-connect-timeout", "soon"), ("--upstream-connect-timeout", "0"),
                                        ("--upstream-first-byte-timeout", "-1"), ("--upstream-idle-timeout", "x"),
                                        ("--max-body-bytes", "lots"), ("--max-body-bytes", "-5")])  # fmt: skip
def test_bad_gateway_flag_is_refused(db, flag, value):
    assert_refused(db, "--route", f"/api={U}", flag, value)


def test_bad_route_in_the_environment_is_refused(db):
    line = assert_refused(db, env={"APIKEYD_ROUTE": f"/ok={U}\n/v1/account={U}"})
    assert "APIKEYD_ROUTE" in line or "/v1/account" in line, line


def start(db, *args, env=None):
    """A server on `db`'s database with `args` (the caller stops it)."""
    server = Server(type(db.backend), db.workdir / f"run-{uuid.uuid4().hex[:8]}", extra_args=args, env=env,
                    backend=db.backend, secret_file=db.secret_file)  # fmt: skip
    server.accounts = db.accounts
    server.start()
    return server


def test_names_that_only_start_like_apikeyds_own_are_routes(db):
    up = Upstream()
    try:
        prefixes = ["/v2", "/v1x", "/v1/accounts", "/v1/authz", "/healthzx", "/dashboards", "/dash", "/v"]
        args = [a for p in prefixes for a in ("--route", f"{p}={up.url}/to{p}")]
        server = start(db, *args)
        try:
            for p in prefixes:
                r = gw_request(server.port, "GET", f"{p}/x?y=1", [("Authorization", f"Bearer {db.account.key}")])
                assert r.status == 200, (p, r)
                assert r.json()["target"] == f"/to{p}/x?y=1"
            # apikeyd's own paths are still its own.
            assert gw_request(server.port, "GET", "/healthz").status == 200
            assert gw_request(server.port, "GET", "/dashboard/").status == 200
        finally:
            server.stop()
    finally:
        up.close()


def test_routes_from_the_environment_one_per_line(db):
    up = Upstream()
    try:
        server = start(db, env={"APIKEYD_ROUTE": f"/one={up.url}/1\n/two={up.url}/2;public"})
        try:
            key = [("Authorization", f"Bearer {db.account.key}")]
            assert gw_request(server.port, "GET", "/one/x", key).json()["target"] == "/1/x"
            assert gw_request(server.port, "GET", "/two/x").json()["target"] == "/2/x"
            assert gw_request(server.port, "GET", "/one/x").status == 401  # /one is not public
        finally:
            server.stop()
    finally:
        up.close()


def test_command_line_routes_replace_the_environments(db):
    up = Upstream()
    try:
        server = start(db, "--route", f"/flag={up.url}/f", env={"APIKEYD_ROUTE": f"/env={up.url}/e"})
        try:
            key = [("Authorization", f"Bearer {db.account.key}")]
            assert gw_request(server.port, "GET", "/flag/x", key).json()["target"] == "/f/x"
            r = gw_request(server.port, "GET", "/env/x", key)
            assert r.status == 404, r
        finally:
            server.stop()
    finally:
        up.close()


def test_empty_lines_in_the_environment_are_skipped(db):
    up = Upstream()
    try:
        server = start(db, env={"APIKEYD_ROUTE": f"\n/one={up.url}/1\n\n/two={up.url}/2\n"})
        try:
            key = [("Authorization", f"Bearer {db.account.key}")]
            assert gw_request(server.port, "GET", "/one", key).json()["target"] == "/1"
            assert gw_request(server.port, "GET", "/two", key).json()["target"] == "/2"
        finally:
            server.stop()
    finally:
        up.close()


def test_verify_token_guards_verify_only(db):
    """--verify-token is for /v1/auth/verify; a route authenticates without it."""
    up = Upstream()
    try:
        server = start(db, "--verify-token", "vt-0123456789abcdef", "--route", f"/api={up.url}")
        try:
            key = [("Authorization", f"Bearer {db.account.key}")]
            assert gw_request(server.port, "GET", "/api/x", key).status == 200
            r = gw_request(server.port, "GET", "/v1/auth/verify", key)
            assert r.status == 403 and r.json()["error"]["code"] == "invalid_verify_token", r
        finally:
            server.stop()
    finally:
        up.close()


def test_ipv6_upstream(db):
    up = Upstream(host="::1")
    try:
        server = start(db, "--route", f"/v6={up.url}/six")
        try:
            r = gw_request(server.port, "GET", "/v6/x?y=1", [("Authorization", f"Bearer {db.account.key}")])
            assert r.status == 200, r
            seen = up.snapshot()[-1]
            assert seen.target == "/six/x?y=1"
            assert seen.header("Host") == up.authority  # [::1]:PORT
        finally:
            server.stop()
    finally:
        up.close()


def test_an_upstream_down_at_start_is_no_reason_to_refuse(db):
    """Upstreams come and go: a route to a port where nothing listens starts, and answers 502."""
    server = start(db, "--route", f"/api=http://127.0.0.1:{dead_port()}")
    try:
        r = gw_request(server.port, "GET", "/api/x", [("Authorization", f"Bearer {db.account.key}")])
        assert r.status == 502 and r.json()["error"]["code"] == "upstream_unavailable", r
    finally:
        server.stop()
