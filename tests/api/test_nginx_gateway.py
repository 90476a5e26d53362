"""A real nginx (Debian's nginx-light, `/usr/sbin/nginx`) with `auth_request` in front of a
small upstream, apikeyd checking every request through `/v1/auth/verify`.

The nginx configuration is docs/nginx-auth-request.conf, the one the README shows, with only
its @PLACEHOLDERS@ replaced (ports and the verify token): the documented config is the tested
config. nginx runs unprivileged-port, single-process and in the foreground (`-g 'daemon off;
master_process off;'`), with its pid file, logs and temporary files in its own directory
(`-p`), and is stopped at teardown whatever happens.

Set NGINX_BIN to use another nginx binary.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from conftest import (
    HTTP_TIMEOUT,
    LAST_USED_TIMEOUT,
    REPO,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Client,
    ServerFactory,
    assert_error,
    forge_key,
    free_port,
    wait_until,
)

NGINX = Path(os.environ.get("NGINX_BIN") or "/usr/sbin/nginx")
CONFIG_TEMPLATE = REPO / "docs" / "nginx-auth-request.conf"
README = REPO / "README.md"
TOKEN = "gw-test-0d9b1f6c3a5e7d2b4f6a8c0e1d3b5f7a"
PLACEHOLDER_RE = re.compile(r"@[A-Z_]+@")
IDENTITY = {"account_id": "X-Account-Id", "key_id": "X-Key-Id", "key_type": "X-Key-Type", "key_prefix": "X-Key-Prefix"}


def render_config(gateway_port, apikeyd_port, upstream_port, token):
    """docs/nginx-auth-request.conf with every placeholder replaced, and nothing else changed."""
    text = CONFIG_TEMPLATE.read_text(encoding="utf-8")
    values = {
        "@GATEWAY_PORT@": gateway_port,
        "@APIKEYD_PORT@": apikeyd_port,
        "@UPSTREAM_PORT@": upstream_port,
        "@VERIFY_TOKEN@": token,
    }
    assert set(PLACEHOLDER_RE.findall(text)) == set(values), "placeholders in the documented config changed"
    for placeholder, value in values.items():
        text = text.replace(placeholder, str(value))
    return text


# --------------------------------------------------------------------------- the upstream


class Upstream:
    """The API behind the gateway: answers every request 200 with a JSON echo of what nginx
    passed on (method, URI, the identity headers, whether a key or token leaked through)."""

    def __init__(self):
        self.seen = []
        self.peers = []  # the client port of every request: connections nginx kept alive repeat
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, when nginx asks for it

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                echo = {
                    "method": self.command,
                    "uri": self.path,
                    **{field: self.headers.get(name) for field, name in IDENTITY.items()},
                    "authorization": self.headers.get("Authorization"),
                    "verify_token": self.headers.get("X-Verify-Token"),
                    "key_scopes": self.headers.get("X-Key-Scopes"),  # issue 12 (scoped_gateway)
                    "body": body.decode("utf-8", "replace"),
                }
                with upstream.lock:
                    upstream.seen.append(echo)
                    upstream.peers.append(self.client_address[1])
                out = json.dumps(echo).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_any

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="upstream", daemon=True)
        self.thread.start()

    def count(self):
        with self.lock:
            return len(self.seen)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(STOP_TIMEOUT)


# --------------------------------------------------------------------------- nginx


class Nginx:
    """nginx in `workdir` (its -p prefix) with the rendered documented config."""

    ERROR_LEVELS = re.compile(r"\[(error|crit|alert|emerg)\]")

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "nginx.conf"
        self.error_log = self.workdir / "error.log"
        self.output = self.workdir / "nginx.out"
        self.proc = None
        self.port = None
        self.config = None

    def start(self, apikeyd_port, upstream_port, token, transform=None):
        for _ in range(3):
            self.port = free_port()
            self.config = render_config(self.port, apikeyd_port, upstream_port, token)
            if transform is not None:  # a derived config (scoped_gateway): the documented one, plus
                self.config = transform(self.config)
            self.config_path.write_text(self.config, encoding="utf-8")
            argv = [str(NGINX), "-p", f"{self.workdir}/", "-c", str(self.config_path), "-g", "daemon off; master_process off;"]
            with open(self.output, "ab") as out:
                self.proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
            if self._wait_ready():
                return self
            self.proc = None
            if "Address already in use" not in self.log_text():
                break  # not a lost race for the port: no point in retrying
        pytest.fail(f"nginx did not start:\n{self.log_text()[-3000:]}")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.02)
        self.stop()
        return False

    def stop(self):
        """Graceful (SIGQUIT), then SIGKILL if it takes too long. Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log_text(self):
        text = ""
        for path in (self.output, self.error_log):
            if path.exists():
                text += path.read_text(encoding="utf-8", errors="replace")
        return text

    def error_lines(self):
        return [line for line in self.log_text().splitlines() if self.ERROR_LEVELS.search(line)]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"


class Gateway:
    """apikeyd (--verify-token) + upstream + nginx, and a client session talking to nginx."""

    def __init__(self, server, upstream, nginx):
        self.server = server
        self.upstream = upstream
        self.nginx = nginx
        self.session = requests.Session()

    def request(self, method, path="/orders/42", key=None, headers=None, **kw):
        """A request to nginx; a 200 is parsed into `.echo` (what the upstream saw)."""
        hdrs = {"Authorization": f"Bearer {key}"} if key is not None else {}
        hdrs.update(headers or {})
        before = self.upstream.count()
        r = self.session.request(method, self.nginx.url + path, headers=hdrs, timeout=HTTP_TIMEOUT, allow_redirects=False, **kw)
        r.reached_upstream = self.upstream.count() > before
        r.echo = None
        if r.status_code == 200:
            r.echo = r.json() if method != "HEAD" else self.upstream.seen[-1]
        return r

    def get(self, path="/orders/42", **kw):
        return self.request("GET", path, **kw)


def require_nginx():
    if not (NGINX.is_file() and os.access(NGINX, os.X_OK)):
        pytest.fail(f"nginx not found at {NGINX}: install Debian's nginx-light (scripts/deps.sh), or set NGINX_BIN")


@pytest.fixture(scope="module")
def gateway(backend, apikeyd_bin, tmp_path_factory):
    require_nginx()
    root = tmp_path_factory.mktemp("gateway")
    factory = ServerFactory(backend, root / "apikeyd")
    upstream = nginx = None
    try:
        server = factory("--verify-token", TOKEN, accounts=("acme", "globex"))
        upstream = Upstream()
        nginx = Nginx(root / "nginx").start(server.port, upstream.port, TOKEN)
        gw = Gateway(server, upstream, nginx)
        yield gw
        gw.session.close()
    finally:
        try:
            if nginx is not None:
                nginx.stop()
        finally:
            try:
                if upstream is not None:
                    upstream.close()
            finally:
                factory.close_all()


@pytest.fixture(autouse=True)
def no_nginx_errors(request):
    """After each test that used the gateway: nothing at [error] or worse in nginx's logs
    (an upstream that answers garbage, a refused connection to apikeyd, ...)."""
    name = next((n for n in ("gateway", "scoped_gateway") if n in request.fixturenames), None)
    if name is None:
        yield
        return
    nginx = request.getfixturevalue(name).nginx
    before = len(nginx.error_lines())
    yield
    # auth_request logs apikeyd's 429 (a rate limit) as an unexpected status, at [error]: expected.
    new = [line for line in nginx.error_lines()[before:] if "auth request unexpected status: 429" not in line]
    assert not new, "nginx logged errors:\n" + "\n".join(new)


def assert_reached(r, account, key_id, key_type, key):
    assert r.status_code == 200, f"expected 200 from the upstream, got {r.status_code}: {r.text[:300]}"
    assert r.reached_upstream
    assert r.echo["account_id"] == str(account.id)
    assert r.echo["key_id"] == str(key_id)
    assert r.echo["key_type"] == key_type
    assert r.echo["key_prefix"] == key[:12]
    # The config strips the key and the gateway token before the upstream.
    assert r.echo["authorization"] is None
    assert r.echo["verify_token"] is None


def assert_refused(r):
    assert r.status_code == 401, f"expected 401, got {r.status_code}: {r.text[:300]}"
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r.headers
    assert not r.reached_upstream, "a refused request reached the upstream"


# --------------------------------------------------------------------------- the config itself


def test_running_config_is_the_documented_one(gateway):
    nginx = gateway.nginx
    assert nginx.config_path.read_text(encoding="utf-8") == render_config(
        nginx.port, gateway.server.port, gateway.upstream.port, TOKEN
    )
    template = CONFIG_TEMPLATE.read_text(encoding="utf-8")
    for line in [
        "auth_request /_apikeyd_verify;",
        "location = /_apikeyd_verify {",
        "internal;",
        "proxy_pass http://apikeyd/v1/auth/verify;",
        "proxy_pass_request_body off;",
        'proxy_set_header Content-Length "";',
        'proxy_set_header X-Verify-Token "@VERIFY_TOKEN@";',
        "auth_request_set $apikeyd_account_id $upstream_http_x_account_id;",
        "auth_request_set $apikeyd_key_id $upstream_http_x_key_id;",
        "auth_request_set $apikeyd_key_type $upstream_http_x_key_type;",
        "auth_request_set $apikeyd_key_prefix $upstream_http_x_key_prefix;",
        "proxy_set_header X-Account-Id $apikeyd_account_id;",
        "proxy_set_header X-Key-Id $apikeyd_key_id;",
        "proxy_set_header X-Key-Type $apikeyd_key_type;",
        "proxy_set_header X-Key-Prefix $apikeyd_key_prefix;",
    ]:
        assert re.search(r"^\s*" + re.escape(line) + r"\s*(#.*)?$", template, re.M), f"missing: {line}"


def test_readme_shows_exactly_the_tested_config():
    readme = README.read_text(encoding="utf-8")
    blocks = re.findall(r"^```nginx\n(.*?)^```$", readme, re.S | re.M)
    blocks = [b for b in blocks if "auth_request" in b]
    assert len(blocks) == 1, "the README must show the nginx auth_request configuration once, in a ```nginx block"
    assert blocks[0] == CONFIG_TEMPLATE.read_text(encoding="utf-8"), (
        "the README's nginx block differs from docs/nginx-auth-request.conf (the tested config)"
    )


# --------------------------------------------------------------------------- through nginx


def test_valid_keys_reach_the_upstream_with_their_identity(gateway):
    acme, globex = gateway.server.accounts
    r = gateway.get("/orders/42?page=2", key=acme.key)
    assert_reached(r, acme, acme.primary_id, "production", acme.key)
    assert r.echo["method"] == "GET" and r.echo["uri"] == "/orders/42?page=2"
    r = gateway.get("/", key=globex.key)
    assert_reached(r, globex, globex.primary_id, "production", globex.key)
    sandbox = globex.client.create("Globex sandbox", "sandbox")
    r = gateway.get("/v1/things", key=sandbox["api_key"])
    assert_reached(r, globex, sandbox["id"], "sandbox", sandbox["api_key"])


def test_connections_to_the_api_are_kept_alive(gateway):
    """The documented config reuses its connections to the API (keepalive, HTTP/1.1,
    Connection ""), instead of opening one per request."""
    acme = gateway.server.accounts[0]
    first = len(gateway.upstream.peers)
    for _ in range(10):
        assert_reached(gateway.get(key=acme.key), acme, acme.primary_id, "production", acme.key)
    ports = gateway.upstream.peers[first:]
    assert len(ports) == 10 and len(set(ports)) < 10, f"one upstream connection per request: {ports}"


def test_client_cannot_forge_the_identity_headers(gateway):
    acme, globex = gateway.server.accounts
    sandbox = acme.client.create("Acme sandbox", "sandbox")
    forged = {"X-Account-Id": str(globex.id), "X-Key-Id": str(globex.primary_id), "X-Key-Type": "production",
              "X-Key-Prefix": globex.key[:12], "X-Verify-Token": "client-chosen"}
    r = gateway.get(key=sandbox["api_key"], headers=forged)
    assert_reached(r, acme, sandbox["id"], "sandbox", sandbox["api_key"])
    assert_refused(gateway.get(headers=forged))


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer ", "Bearer garbage", "Basic dXNlcjpwYXNz", "Bearer {forged}", "Bearer {bad_checksum}", "{key}"],
)
def test_missing_and_invalid_keys_get_401(gateway, authorization):
    key = gateway.server.account.key
    headers = {}
    if authorization is not None:
        bad_checksum = key[:-1] + ("A" if key[-1] != "A" else "B")
        headers["Authorization"] = authorization.format(key=key, forged=forge_key(), bad_checksum=bad_checksum)
    assert_refused(gateway.get(headers=headers))


def test_deactivated_key_refused_on_the_very_next_request(gateway):
    admin = gateway.server.account.client
    created = admin.create("Partner integration", "production")
    acme = gateway.server.account
    assert_reached(gateway.get(key=created["api_key"]), acme, created["id"], "production", created["api_key"])
    admin.update(created["id"], is_active=False)
    assert_refused(gateway.get(key=created["api_key"]))
    assert_refused(gateway.request("POST", "/orders", key=created["api_key"], json={"n": 1}))
    admin.update(created["id"], is_active=True)
    assert_reached(gateway.get(key=created["api_key"]), acme, created["id"], "production", created["api_key"])
    admin.remove(created["id"])
    assert_refused(gateway.get(key=created["api_key"]))


def test_rate_limits_through_the_gateway(gateway):
    """The RateLimit fields reach the client on every answer for a limited key; past the limit,
    the client gets apikeyd's 429 with Retry-After (not nginx's 500), and the upstream nothing."""
    # A day's window starts at a UTC midnight (real clock here): start clear of one.
    left = 86400 - time.time() % 86400
    if left < 30:
        time.sleep(left + 1)
    acme = gateway.server.account
    r = acme.client.post(json={"name": "Partner, limited", "key_type": "production",
                               "rate_limit": {"limit": 3, "window_seconds": 86400}})  # fmt: skip
    assert r.status_code == 201, r.text
    k = r.body
    answers = [gateway.get(key=k["api_key"]) for _ in range(5)]
    for left, r in zip((2, 1, 0), answers[:3]):
        assert_reached(r, acme, k["id"], "production", k["api_key"])
        assert r.headers.get("RateLimit-Policy") == '"rate";q=3;w=86400'
        assert r.headers.get("RateLimit", "").startswith(f'"rate";r={left};t='), r.headers
    for r in answers[3:]:
        assert r.status_code == 429, f"expected 429, got {r.status_code}: {r.text[:300]}"
        assert not r.reached_upstream
        assert 0 < int(r.headers["Retry-After"]) <= 86400
        assert r.headers.get("RateLimit") == f'"rate";r=0;t={r.headers["Retry-After"]}'
        assert r.headers.get("RateLimit-Policy") == '"rate";q=3;w=86400'
        assert r.json()["error"]["code"] == "rate_limited"
    # A key without a limit gets no RateLimit fields.
    r = gateway.get(key=acme.key)
    assert r.status_code == 200
    assert "RateLimit" not in r.headers and "RateLimit-Policy" not in r.headers


def test_quota_through_the_gateway_costs_what_nginx_says(gateway):
    """The gateway sets X-Cost (the client's own never reaches apikeyd): a client sending
    X-Cost: 0 or garbage still spends one credit per request; when the quota is spent, the
    client gets the 429 and the upstream nothing."""
    acme = gateway.server.account
    r = acme.client.post(json={"name": "Partner, metered", "key_type": "production", "remaining": 3})
    assert r.status_code == 201, r.text
    k = r.body
    answers = [gateway.get(key=k["api_key"], headers={"X-Cost": cost}) for cost in ("0", "zero", "1000", "0")]
    for left, r in zip((2, 1, 0), answers[:3]):
        assert_reached(r, acme, k["id"], "production", k["api_key"])
        assert r.headers.get("RateLimit") == f'"quota";r={left}', r.headers
    r = answers[3]
    assert r.status_code == 429 and not r.reached_upstream, f"{r.status_code}: {r.text[:300]}"
    assert r.headers.get("RateLimit") == '"quota";r=0'
    assert acme.client.by_id()[k["id"]]["remaining"] == 0


def test_deleted_key_refused(gateway):
    admin = gateway.server.account.client
    created = admin.create("Short-lived", "sandbox")
    assert gateway.get(key=created["api_key"]).status_code == 200
    admin.remove(created["id"])
    assert_refused(gateway.get(key=created["api_key"]))


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def test_other_methods_and_bodies(gateway, method):
    acme = gateway.server.account
    body = json.dumps({"order": 42, "note": "x" * 5000}) if method in ("POST", "PUT", "PATCH") else None
    headers = {"Content-Type": "application/json"} if body else {}
    r = gateway.request(method, "/orders/42", key=acme.key, data=body, headers=headers)
    assert_reached(r, acme, acme.primary_id, "production", acme.key)
    assert r.echo["method"] == method
    if body:
        assert r.echo["body"] == body  # the upstream gets the body; apikeyd never does
    r = gateway.request(method, "/orders/42", key=forge_key(), data=body, headers=headers)
    assert_refused(r)
    r = gateway.request(method, "/orders/42", data=body, headers=headers)
    assert_refused(r)


def test_verification_subrequest_is_internal(gateway):
    r = gateway.get("/_apikeyd_verify", key=gateway.server.account.key)
    assert r.status_code == 404 and not r.reached_upstream


def test_apikeyd_behind_the_gateway_requires_its_token(gateway):
    """The gateway works only because nginx sends the right X-Verify-Token."""
    server, key = gateway.server, gateway.server.account.key
    r = Client(server, key).get("/v1/auth/verify")
    assert_error(r, 403, "invalid_verify_token")
    r = Client(server, key).get("/v1/auth/verify", headers={"X-Verify-Token": TOKEN})
    assert r.status_code == 204


def test_use_through_the_gateway_sets_last_used(gateway):
    admin = gateway.server.account.client
    created = admin.create("Metered", "sandbox")
    assert gateway.get(key=created["api_key"]).status_code == 200
    wait_until(lambda: admin.by_id()[created["id"]]["last_used"], LAST_USED_TIMEOUT, what="last_used in the list")


# --------------------------------------------------------------------------- issue 12: scopes and allowlists
#
# A second gateway runs a config derived from the documented one (rendered as above), with only
# additions: the verification subrequest sets `X-Forwarded-For $remote_addr` unless the
# documented one sets X-Forwarded-For already (then that line is what is tested; apikeyd runs
# with --trusted-proxies 127.0.0.1/32, so it believes nginx's header), the protected locations
# pass X-Key-Scopes on to the upstream unless the documented config does (always set: a
# client's own never gets through), and locations whose subrequest sends X-Required-Scopes:
#   /posts/     auth_request /_apikeyd_verify_posts     X-Required-Scopes "posts:write"
#   /billing/   auth_request /_apikeyd_verify_billing   X-Required-Scopes "billing:read billing:write"
#   /spoofable/ auth_request /_apikeyd_verify_spoofable (the documented subrequest as it is,
#               without the X-Forwarded-For line: the control that shows the line matters)

MAIN_BLOCK_RE = re.compile(r"^( *)location / \{\n.*?^\1\}\n", re.S | re.M)
VERIFY_BLOCK_RE = re.compile(r"^( *)location = /_apikeyd_verify \{\n.*?^\1\}\n", re.S | re.M)
XFF_LINE = "proxy_set_header X-Forwarded-For $remote_addr;"
SCOPES_LINES = ["auth_request_set $apikeyd_key_scopes $upstream_http_x_key_scopes;",
                "proxy_set_header X-Key-Scopes $apikeyd_key_scopes;"]  # fmt: skip
SCOPED_LOCATIONS = {  # path -> (subrequest location, X-Required-Scopes or None, X-Forwarded-For set by nginx)
    "/posts/": ("/_apikeyd_verify_posts", "posts:write", True),
    "/billing/": ("/_apikeyd_verify_billing", "billing:read billing:write", True),
    "/spoofable/": ("/_apikeyd_verify_spoofable", None, False),
}


def _add_lines(block, after_re, lines, indent):
    """`lines` inserted after the first line of `block` matching `after_re` (none already there)."""
    lines = [line for line in lines if line not in block]
    if not lines:
        return block
    m = re.search(after_re, block, re.M)
    assert m, f"no line matching {after_re!r} in:\n{block}"
    return block[: m.end()] + "".join(f"\n{indent}{line}" for line in lines) + block[m.end():]


def _without(block, header):
    """`block` without any `proxy_set_header <header> ...;` line."""
    return re.sub(r"^ *proxy_set_header " + re.escape(header) + r" .*\n", "", block, flags=re.M | re.I)


def scoped_config(text):
    """The rendered documented config plus the additions described above."""
    main = MAIN_BLOCK_RE.search(text)
    verify = VERIFY_BLOCK_RE.search(text)
    assert main and verify, "the documented config no longer has `location /` and `location = /_apikeyd_verify`"
    inner = main.group(1) + "    "
    main_block = main.group(0)
    if not re.search(r"proxy_set_header\s+X-Key-Scopes\s", main_block, re.I):  # the documented config may pass it already
        main_block = _add_lines(main_block, r"^ *auth_request /_apikeyd_verify;$", SCOPES_LINES, inner)
    verify_block = verify.group(0)
    if not re.search(r"proxy_set_header\s+X-Forwarded-For\s", verify_block, re.I):  # a documented one is kept as it is
        verify_block = _add_lines(verify_block, r"^ *proxy_pass http://apikeyd/v1/auth/verify;$", [XFF_LINE], inner)
    extra = ""
    for path, (sub, required, xff) in SCOPED_LOCATIONS.items():
        block = main_block.replace("location / {", f"location {path} {{", 1)
        block = block.replace("auth_request /_apikeyd_verify;", f"auth_request {sub};", 1)
        sub_block = _without(verify_block if xff else _without(verify_block, "X-Forwarded-For"), "X-Required-Scopes")
        sub_block = sub_block.replace("location = /_apikeyd_verify {", f"location = {sub} {{", 1)
        if required is not None:
            sub_block = _add_lines(sub_block, r"^ *proxy_pass http://apikeyd/v1/auth/verify;$",
                                   [f'proxy_set_header X-Required-Scopes "{required}";'], inner)  # fmt: skip
        extra += "\n" + block + "\n" + sub_block
    end = verify.end()
    return text[: main.start()] + main_block + text[main.end(): verify.start()] + verify_block + extra + text[end:]


@pytest.fixture(scope="module")
def scoped_gateway(backend, apikeyd_bin, tmp_path_factory):
    """apikeyd (--verify-token, --trusted-proxies 127.0.0.1/32) + upstream + nginx on scoped_config."""
    require_nginx()
    root = tmp_path_factory.mktemp("scoped-gateway")
    factory = ServerFactory(backend, root / "apikeyd")
    upstream = nginx = None
    try:
        server = factory("--verify-token", TOKEN, "--trusted-proxies", "127.0.0.1/32", accounts=("acme",))
        upstream = Upstream()
        nginx = Nginx(root / "nginx").start(server.port, upstream.port, TOKEN, transform=scoped_config)
        gw = Gateway(server, upstream, nginx)
        yield gw
        gw.session.close()
    finally:
        try:
            if nginx is not None:
                nginx.stop()
        finally:
            try:
                if upstream is not None:
                    upstream.close()
            finally:
                factory.close_all()


def make_key(client, name, **fields):
    r = client.post(json={"name": name, "key_type": "production", **fields})
    assert r.status_code == 201, r.text
    return r.body


def assert_forbidden(r):
    """nginx's answer when apikeyd's subrequest answered 403: 403, and the upstream never saw it."""
    assert r.status_code == 403, f"expected 403, got {r.status_code}: {r.text[:300]}"
    assert not r.reached_upstream, "a refused request reached the upstream"


def test_scoped_config_is_the_documented_one_plus_additions(scoped_gateway):
    config = scoped_gateway.nginx.config
    documented = render_config(scoped_gateway.nginx.port, scoped_gateway.server.port, scoped_gateway.upstream.port, TOKEN)
    # Every documented line is still there (additions only).
    for line in documented.splitlines():
        if line.strip() and not line.strip().startswith("#"):
            assert line in config.splitlines(), f"the derived config lost a documented line: {line!r}"
    for path, (sub, required, _) in SCOPED_LOCATIONS.items():
        assert f"location {path} {{" in config and f"auth_request {sub};" in config
        if required is not None:
            assert f'proxy_set_header X-Required-Scopes "{required}";' in config


def test_required_scopes_per_location(scoped_gateway):
    gw = scoped_gateway
    acme = gw.server.account
    posts = make_key(acme.client, "Posts writer", scopes=["posts:*"])
    billing = make_key(acme.client, "Billing", scopes=["billing:write", "billing:read"])
    reader = make_key(acme.client, "Billing reader", scopes=["billing:read"])

    r = gw.get("/posts/42", key=posts["api_key"])
    assert_reached(r, acme, posts["id"], "production", posts["api_key"])
    assert r.echo["key_scopes"] == "posts:*" and r.echo["uri"] == "/posts/42"
    assert_forbidden(gw.get("/billing/7", key=posts["api_key"]))
    r = gw.get("/orders/1", key=posts["api_key"])  # `location /` requires no scope
    assert_reached(r, acme, posts["id"], "production", posts["api_key"])
    assert r.echo["key_scopes"] == "posts:*"

    r = gw.get("/billing/7", key=billing["api_key"])
    assert_reached(r, acme, billing["id"], "production", billing["api_key"])
    assert r.echo["key_scopes"] == "billing:read billing:write"
    assert_forbidden(gw.get("/posts/42", key=billing["api_key"]))
    assert_forbidden(gw.get("/billing/7", key=reader["api_key"]))  # all the required scopes, not one

    # An unrestricted key passes everywhere; the upstream gets no X-Key-Scopes.
    for path in ("/posts/1", "/billing/1", "/orders/1"):
        r = gw.get(path, key=acme.key)
        assert_reached(r, acme, acme.primary_id, "production", acme.key)
        assert r.echo["key_scopes"] is None
    # No key, or an unknown one: 401 as everywhere.
    assert_refused(gw.get("/posts/1"))
    assert_refused(gw.get("/billing/1", key=forge_key()))


def test_client_cannot_forge_scopes(scoped_gateway):
    gw = scoped_gateway
    acme = gw.server.account
    posts = make_key(acme.client, "Posts only", scopes=["posts:*"])
    # Its own X-Required-Scopes never replaces the location's.
    assert_forbidden(gw.get("/billing/1", key=posts["api_key"], headers={"X-Required-Scopes": "posts:read"}))
    assert_forbidden(gw.get("/billing/1", key=posts["api_key"], headers={"X-Required-Scopes": ""}))
    # Its own X-Key-Scopes never reaches the upstream.
    forged = {"X-Key-Scopes": "billing:* posts:*"}
    r = gw.get("/posts/1", key=posts["api_key"], headers=forged)
    assert_reached(r, acme, posts["id"], "production", posts["api_key"])
    assert r.echo["key_scopes"] == "posts:*"
    r = gw.get("/posts/1", key=acme.key, headers=forged)
    assert_reached(r, acme, acme.primary_id, "production", acme.key)
    assert r.echo["key_scopes"] is None


def test_client_cannot_spoof_its_address_through_the_gateway(scoped_gateway):
    """apikeyd trusts nginx (127.0.0.1); nginx names the client ($remote_addr: 127.0.0.1 here)
    in the subrequest's X-Forwarded-For, replacing whatever the client sent."""
    gw = scoped_gateway
    acme = gw.server.account
    far = make_key(acme.client, "Private network only", allowed_ips=["10.0.0.0/8"])
    near = make_key(acme.client, "Loopback only", allowed_ips=["127.0.0.1"])
    for headers in ({}, {"X-Forwarded-For": "10.9.9.9"}, {"X-Forwarded-For": "10.9.9.9, 10.8.8.8"}):
        assert_forbidden(gw.get("/orders/1", key=far["api_key"], headers=headers))
        assert_forbidden(gw.get("/posts/1", key=far["api_key"], headers=headers))
        r = gw.get("/orders/1", key=near["api_key"], headers=headers)
        assert_reached(r, acme, near["id"], "production", near["api_key"])
    # The control: a subrequest that passes on the client's own X-Forwarded-For (no
    # `proxy_set_header X-Forwarded-For $remote_addr;`) lets it choose its address.
    r = gw.get("/spoofable/1", key=far["api_key"], headers={"X-Forwarded-For": "10.9.9.9"})
    assert_reached(r, acme, far["id"], "production", far["api_key"])
    assert_forbidden(gw.get("/spoofable/1", key=far["api_key"]))
    # A refused request is not a use.
    wait_until(lambda: acme.client.by_id()[near["id"]]["last_used"], LAST_USED_TIMEOUT, what="the allowed key's last_used")
