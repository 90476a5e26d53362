"""Black-box API tests for apikeyd: fixtures and helpers.

The tests start the real binary (`APIKEYD_BIN`, default `<repo>/build/apikeyd`) with its real
flags on a free port and talk HTTP to it, as a client would. They never look inside the
process or the database schema. Every response goes through `OpenApi.check`, which validates
it against `docs/openapi.yaml` by path, method and status, so the document and the server
cannot drift apart.

The storage backend is chosen in one place, the `backend` fixture (`BACKENDS`); a server is
built by `server_factory`, so every test that uses a server runs once per backend: SQLite
(a file in the test's directory) and PostgreSQL (a fresh database per server in a throwaway
cluster, `pg_cluster`: initdb'd as `postgres` into a temporary directory, on a unix socket in
that directory and on 127.0.0.1 (both on one free port, trust authentication), removed at the
end of the session). Servers use the unix socket; `PgCluster.tcp_uri` is for tests that put
something (tests/api/tcpproxy.py) between apikeyd and PostgreSQL. If PostgreSQL cannot start, every PostgreSQL test fails
with a message saying so; none is skipped. A test that only makes sense for one backend says
so with `sqlite_only` / `postgres_only` (and a comment giving the reason).

No test asserts a duration, except the issue's two explicit bars in test_multi_instance.py
(propagation p99 under 100 ms, last_used on every instance within 2 s), marked `alone`: `make test`
runs them after the others, one at a time. Waiting for something
that the contract says becomes visible "within about 1 s" polls with a bounded timeout.
"""

import calendar
import json
import os
import re
import secrets
import signal
import string
import subprocess
import threading
import time
import weakref
import zlib
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator

from pgcluster import (  # noqa: F401 - the tests import these from conftest
    PG_BINDIR,
    PG_UNAVAILABLE,
    PG_USER,
    PSQL_TIMEOUT,
    free_port,
    owns_listener,
    start_pg_cluster,
    write_secret,
)

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO / "docs" / "openapi.yaml"
BIN = Path(os.environ.get("APIKEYD_BIN") or REPO / "build" / "apikeyd")

START_TIMEOUT = 10.0  # until GET /healthz answers 200
STOP_TIMEOUT = 10.0  # SIGTERM until exit
HTTP_TIMEOUT = 15.0  # any single request
CLI_TIMEOUT = 15.0  # any single CLI run
LAST_USED_TIMEOUT = 1.5  # contract: last_used visible in the list within 1 s
ACCOUNT_PICKUP_TIMEOUT = 2.0  # contract: new account picked up within about 1 s
LOG_TIMEOUT = 5.0  # access-log line written after the response

COLLECTION = "/v1/account/api-keys/"
ADMIN_ACCOUNTS = "/v1/admin/accounts/"
ADMIN_AUDIT = "/v1/admin/audit-log/"
ACCOUNT_AUDIT = "/v1/account/audit-log/"
KEY_FIELDS = [
    "id", "name", "key_type", "key_prefix", "is_active", "is_primary", "created_at", "last_used",
    # issue 10: the key lifecycle
    "expires_at", "rotated_from", "rotated_to", "leaked_at",
    # issue 12: restricted keys
    "scopes", "allowed_ips",
    # issue 13: limits
    "rate_limit", "remaining", "refill",
]  # fmt: skip
CREATED_MESSAGE = "Save this key securely. It will not be shown again."
ERROR_CODES = {
    "invalid_json",
    "missing_api_key",
    "invalid_api_key",
    "key_inactive",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "primary_key_protected",
    "primary_key_invalid",
    "key_limit_reached",
    "payload_too_large",
    "unsupported_media_type",
    "validation_error",
    "store_unavailable",
    "outcome_unknown",  # PostgreSQL: a write whose COMMIT answer was lost (503)
    "invalid_verify_token",
    "bad_request",  # hardening (contract): framing refused
    "headers_too_large",
    "too_many_failed_attempts",
    # issue 9: operator API, suspension, listings
    "missing_admin_token",
    "invalid_admin_token",
    "account_suspended",
    "account_exists",
    "max_keys_below_key_count",
    "invalid_cursor",
    "invalid_parameter",
    # issue 10: the key lifecycle
    "key_expired",
    "key_leaked",
    "already_rotated",
    "invalid_signature",
}

# --------------------------------------------------------------------------- keys and times

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
KEY_RE = re.compile(
    r"^(?P<brand>[A-Za-z0-9]+)_(?P<kind>prod|sand)_(?P<random>[0-9A-Za-z]{32})(?P<check>[0-9A-Za-z]{6})$"
)
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
KIND = {"production": "prod", "sandbox": "sand"}


def base62_6(n):
    """`n` (0 <= n < 62**6) as 6 base62 digits, big-endian, zero-padded."""
    assert 0 <= n < 62**6
    out = ""
    for _ in range(6):
        n, d = divmod(n, 62)
        out = BASE62[d] + out
    return out


def key_checksum(body):
    """The 6-character checksum of everything before it: CRC32 (zlib) in base62."""
    return base62_6(zlib.crc32(body.encode("ascii")))


def assert_key_format(key, key_type=None, brand="ml"):
    """Asserts that `key` is a well-formed key with a valid checksum."""
    m = KEY_RE.match(key)
    assert m, f"key does not match the format: {key!r}"
    assert m["brand"] == brand
    if brand == "ml":
        assert len(key) == 46
    if key_type is not None:
        assert m["kind"] == KIND[key_type]
    assert m["check"] == key_checksum(key[:-6]), f"bad checksum in {key!r}"


ADMIN_TOKEN_RE = re.compile(r"^(?P<brand>[A-Za-z0-9]+)_admin_(?P<random>[0-9A-Za-z]{32})(?P<check>[0-9A-Za-z]{6})$")


def assert_admin_token_format(token, brand="ml"):
    """Asserts that `token` is a well-formed admin token (brand, `_admin_`, checksum)."""
    m = ADMIN_TOKEN_RE.match(token)
    assert m, f"admin token does not match the format: {token!r}"
    assert m["brand"] == brand
    if brand == "ml":
        assert len(token) == 47
    assert m["check"] == key_checksum(token[:-6]), f"bad checksum in {token!r}"


def forge_key(kind="prod", brand="ml", random_part=None):
    """A key with a valid format and checksum that the server never issued."""
    if random_part is None:
        random_part = "".join(secrets.choice(BASE62) for _ in range(32))
    body = f"{brand}_{kind}_{random_part}"
    return body + key_checksum(body)


def parse_time(text):
    assert TIME_RE.match(text), text
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls `predicate` until it returns something truthy; returns that or fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def strict_json(raw):
    """Parses JSON, refusing duplicate object keys; dicts keep the server's field order."""

    def pairs(items):
        obj = {}
        for k, v in items:
            assert k not in obj, f"duplicate key {k!r} in response"
            obj[k] = v
        return obj

    return json.loads(raw, object_pairs_hook=pairs)


def assert_key_field_order(obj):
    """The key object's fields appear in the contract's order."""
    present = [k for k in obj if k in KEY_FIELDS]
    assert present == KEY_FIELDS, f"key fields out of order: {list(obj)}"


def _walk_key_objects(body):
    if isinstance(body, dict):
        if "key_prefix" in body:
            yield body
        for v in body.values():
            yield from _walk_key_objects(v)
    elif isinstance(body, list):
        for v in body:
            yield from _walk_key_objects(v)


# --------------------------------------------------------------------------- OpenAPI validation


class OpenApi:
    """docs/openapi.yaml, used to validate every response by path, method and status.

    Two extensions say what OpenAPI cannot: a path parameter with `x-multi-segment: true`
    matches several segments (`/v1/auth/verify/{path}`), and a path item with
    `x-any-method: get` answers every method, listed or not, like its `get` operation.
    """

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        self.routes = []
        for template, item in self.doc["paths"].items():
            multi = {
                p["name"]
                for p in map(self.resolve, item.get("parameters", []))
                if p.get("in") == "path" and p.get("x-multi-segment")
            }

            def segment(m, multi=multi):
                return ".+" if m.group(1) in multi else "[^/]+"

            rx = re.escape(template.rstrip("/"))
            rx = re.sub(r"\\\{([^}]+)\\\}", segment, rx)
            self.routes.append((re.compile("^" + rx + "/?$"), template, item))
        self._validators = {}

    def resolve(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            ref = obj["$ref"]
            assert ref.startswith("#/"), ref
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            obj = node
        return obj

    def validator(self, schema):
        cached = self._validators.get(id(schema))
        if cached is None:
            root = {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": self.doc["components"],
                "allOf": [schema],
            }
            # Keep `schema` referenced so its id() is never reused for another object.
            cached = self._validators[id(schema)] = (Draft202012Validator(root), schema)
        return cached[0]

    def schema(self, name):
        return self.doc["components"]["schemas"][name]

    def validate_schema(self, name, instance):
        """Validates `instance` against components/schemas/`name`."""
        self._raise(self.validator(self.schema(name)), instance, name)

    @staticmethod
    def _raise(validator, instance, what):
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            detail = "\n".join(f"  at {list(e.absolute_path)}: {e.message}" for e in errors[:10])
            pytest.fail(f"response does not match {what}:\n{detail}\nbody: {instance!r}")

    def operation(self, method, url_path):
        """(template, path item, operation or None) for a request; (None, None, None) if no route."""
        path = urlsplit(url_path).path
        for rx, template, item in self.routes:
            if rx.match(path):
                op = item.get(method.lower())
                if op is None and "x-any-method" in item:
                    op = item[item["x-any-method"]]
                return template, item, op
        return None, None, None

    def expected_response(self, method, url_path, status):
        """The Response Object the document promises for this request and status."""
        template, item, op = self.operation(method, url_path)
        where = f"{method} {url_path} -> {status}"
        if template is None:
            assert status == 404, f"{where}: unknown path must answer 404"
            return self.doc["components"]["responses"]["NotFound"], where
        if op is None:
            assert "x-method-not-allowed" in item, f"{template}: no x-method-not-allowed response"
            assert status == 405, f"{where}: a method the document does not list must answer 405"
            return self.resolve(item["x-method-not-allowed"]), where
        responses = op["responses"]
        assert str(status) in responses, (
            f"{where}: status {status} is not documented for {method.upper()} {template} "
            f"(documented: {sorted(responses)})"
        )
        return self.resolve(responses[str(status)]), f"{method.upper()} {template} {status}"

    def check_headers(self, resp, headers, where):
        """The headers of the Response Object `resp`: required ones present, each value matching its schema."""
        for name, header in (resp.get("headers") or {}).items():
            header = self.resolve(header)
            value = headers.get(name)
            if header.get("required"):
                assert value is not None, f"{where}: missing header {name}"
            if value is not None and "schema" in header:
                self._raise(self.validator(header["schema"]), value, f"{where} header {name}")

    def check(self, method, url_path, response):
        """Validates status, headers and body of `response`; returns the parsed body or None."""
        resp, where = self.expected_response(method, url_path, response.status_code)
        assert response.status_code != 500, "no client input may get a 500"
        self.check_headers(resp, response.headers, where)
        content = resp.get("content")
        if not content or method.upper() == "HEAD":
            assert response.content == b"", f"{where}: body must be empty, got {response.content[:200]!r}"
            return None
        ctype = response.headers.get("Content-Type", "")
        media = ctype.split(";")[0].strip().lower()
        if "application/json" not in content:  # the dashboard's page and assets: the type, not a schema
            assert media in content, f"{where}: Content-Type {ctype!r}, documented: {sorted(content)}"
            return None
        assert media == "application/json", f"{where}: Content-Type {ctype!r}"
        try:
            body = strict_json(response.content.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            pytest.fail(f"{where}: body is not JSON ({e}): {response.content[:200]!r}")
        self._raise(self.validator(content["application/json"]["schema"]), body, where)
        for obj in _walk_key_objects(body):
            assert_key_field_order(obj)
        return body


SPEC = OpenApi(SPEC_PATH)

# --------------------------------------------------------------------------- HTTP client


class _Default:
    pass


DEFAULT = _Default()


class Client:
    """HTTP client bound to a server (its current port) and a key; validates every response.

    `key=None` sends no Authorization header. `json=` is sent as UTF-8 JSON with
    `Content-Type: application/json`; `data=` is sent as is, with only the given headers.
    Each response gets `.body` (parsed JSON or None).
    """

    def __init__(self, server, key=None):
        self.server = server
        self.key = key
        self.session = requests.Session()
        server.clients.add(self)

    def request(self, method, path, *, json=DEFAULT, data=None, headers=None, key=DEFAULT):
        hdrs = {}
        key = self.key if key is DEFAULT else key
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        if json is not DEFAULT:
            data = json_bytes(json)
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        hdrs = {k: v for k, v in hdrs.items() if v is not None}
        r = self.session.request(
            method, self.server.base_url + path, data=data, headers=hdrs, timeout=HTTP_TIMEOUT, allow_redirects=False
        )
        r.body = SPEC.check(method, path, r)
        return r

    def get(self, path=COLLECTION, **kw):
        return self.request("GET", path, **kw)

    def post(self, path=COLLECTION, **kw):
        return self.request("POST", path, **kw)

    def patch(self, key_id, **kw):
        return self.request("PATCH", f"{COLLECTION}{key_id}/", **kw)

    def delete(self, key_id, **kw):
        return self.request("DELETE", f"{COLLECTION}{key_id}/", **kw)

    # Convenience calls that must succeed.
    def list(self):
        r = self.get()
        assert r.status_code == 200, r.text
        return r.body["api_keys"]

    def create(self, name="Key", key_type="sandbox"):
        r = self.post(json={"name": name, "key_type": key_type})
        assert r.status_code == 201, r.text
        return r.body

    def update(self, key_id, **fields):
        r = self.patch(key_id, json=fields)
        assert r.status_code == 200, r.text
        return r.body

    def remove(self, key_id):
        r = self.delete(key_id)
        assert r.status_code == 204, r.text

    def by_id(self):
        return {k["id"]: k for k in self.list()}


def json_bytes(value):
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def snapshot(client):
    """The account's keys without last_used (which every authenticated request may touch)."""
    return [{k: v for k, v in key.items() if k != "last_used"} for key in client.list()]


def error_code(response):
    return response.body["error"]["code"]


def assert_error(response, status, code):
    assert response.status_code == status, f"expected {status} {code}, got {response.status_code}: {response.text}"
    assert error_code(response) == code, response.text
    if status == 401:
        assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")


# --------------------------------------------------------------------------- backends


class SqliteBackend:
    """Embedded SQLite: `--db` is a file path; WAL mode adds -wal and -shm files."""

    name = "sqlite"

    @classmethod
    def for_session(cls, request):
        return cls

    def __init__(self, workdir):
        self.workdir = Path(workdir)

    def db_arg(self):
        return str(self.workdir / "apikeyd.db")

    def default_secret_file(self):
        """None: the server's own default, `<db>.secret`, created on first use."""
        return None

    def unopenable_dbs(self):
        """`--db` values (and extra flags) that cannot be opened: exit 1, one line on stderr."""
        return [("/nonexistent/dir/x.db", [])]

    def data_files(self):
        """Every file the backend keeps data in (for the 'no key in the database' check)."""
        db = self.db_arg()
        return [Path(p) for p in (db, db + "-wal", db + "-shm", db + "-journal") if os.path.exists(p)]

    def release(self):
        pass


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_cluster():
    """The session's throwaway PostgreSQL; each server gets a database of its own in it."""
    cluster = start_pg_cluster("pg", prefetch=2)
    yield cluster
    cluster.destroy()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A PostgreSQL test whose cluster could not start counts as failed (not as an error in
    setup), so that the summary's failure count says so."""
    outcome = yield
    report = outcome.get_result()
    if call.when == "setup" and report.failed and call.excinfo is not None and PG_UNAVAILABLE in str(call.excinfo.value):
        report.when = "call"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "alone: a test that asserts one of the issues' time bars; `make test` runs these after the others, one at a"
        " time, so that no other test's load is in its measurement",
    )


def pytest_collection_modifyitems(items):
    """Files marked `LONG = True` (a few long tests that mostly wait: partitions, faults, several
    instances) run first, so that with several workers (pytest-xdist) none of them is left to end
    the run alone. Otherwise the order is the files' own."""
    items.sort(key=lambda item: not getattr(item.module, "LONG", False))


class PostgresBackend:
    """PostgreSQL: `--db postgresql://postgres@/DB?host=SOCKETDIR`, a fresh database `DB` in the
    session's cluster, and a secret file that every instance on that database shares (with
    PostgreSQL `--secret-file` is required). Several servers may share one backend (one database)."""

    name = "postgres"
    cluster = None  # bound by for_session / bind

    @classmethod
    def for_session(cls, request):
        return cls.bind(request.getfixturevalue("pg_cluster"))

    @classmethod
    def bind(cls, cluster):
        return type(cls.__name__, (cls,), {"cluster": cluster})

    def __init__(self, workdir):
        assert self.cluster is not None, "PostgresBackend used without a cluster"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.dbname = self.cluster.create_database()
        self.secret_file = write_secret(self.workdir / "shared.secret")
        self.released = False

    def db_arg(self):
        return self.cluster.uri(self.dbname)

    def tcp_db_arg(self, port=None):
        """This database over TCP: `postgresql://postgres@127.0.0.1:PORT/DB`; `port` defaults to
        the cluster's own (pass a tests/api/tcpproxy.py proxy's port to go through it)."""
        return self.cluster.tcp_uri(self.dbname, port)

    def default_secret_file(self):
        return self.secret_file

    def psql(self, sql, **kw):
        return self.cluster.psql(sql, dbname=self.dbname, **kw)

    def unopenable_dbs(self):
        secret = ["--secret-file", str(self.secret_file)]
        return [
            (self.cluster.uri(f"{self.dbname}_does_not_exist"), secret),  # no such database
            (f"postgresql://{PG_USER}@/{self.dbname}?host=/nonexistent/dir", secret),  # no server there
        ]

    def data_files(self):
        """A pg_dump of the database, its table and index files (after a CHECKPOINT, so that
        even dead row versions are on disk) and the server's log."""
        dump = self.workdir / f"{self.dbname}.pg_dump.sql"
        p = subprocess.run(
            [str(PG_BINDIR / "pg_dump"), "-h", str(self.cluster.sockdir), "-p", str(self.cluster.port),
             "-U", PG_USER, "-f", str(dump), self.dbname],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=PSQL_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert p.returncode == 0, f"pg_dump failed: {p.stderr}"
        self.cluster.psql("CHECKPOINT")
        oid = self.cluster.psql(f"SELECT oid FROM pg_database WHERE datname = '{self.dbname}'")
        relations = sorted(f for f in (self.cluster.data / "base" / oid).iterdir() if f.is_file())
        return [dump, *relations, self.cluster.log]

    def release(self):
        if not self.released:
            self.released = True
            self.cluster.drop_database(self.dbname)


# The test matrix: every test that uses the `backend` fixture (directly or through a server)
# runs once per entry.
BACKENDS = {"sqlite": SqliteBackend, "postgres": PostgresBackend}


@pytest.fixture(scope="session", params=sorted(BACKENDS))
def backend(request):
    """The backend class for this run of the matrix."""
    return BACKENDS[request.param].for_session(request)


# For tests that only make sense on one backend (each use says why in a comment).
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.fixture(scope="session")
def apikeyd_bin():
    if not (BIN.is_file() and os.access(BIN, os.X_OK)):
        pytest.fail(f"apikeyd binary not found at {BIN} (build it with `make`, or set APIKEYD_BIN)")
    return BIN


# --------------------------------------------------------------------------- processes


def run_cli(*args, env=None, umask=None, timeout=CLI_TIMEOUT):
    """Runs the binary with `args`; returns CompletedProcess with text stdout/stderr."""
    full_env = dict(os.environ)
    full_env.pop("APIKEYD_DB", None)
    full_env.pop("APIKEYD_LISTEN", None)
    full_env.update(env or {})
    preexec = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run(
        [str(BIN), *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        preexec_fn=preexec,
        stdin=subprocess.DEVNULL,
    )




class Account:
    """An account made by `apikeyd account create`: its JSON output, primary key, client."""

    def __init__(self, server, info):
        self.server = server
        self.info = info
        self.id = info["account_id"]
        self.name = info["account_name"]
        self.key = info["api_key"]
        self.primary_id = info["id"]
        self.client = Client(server, self.key)


class Server:
    """One apikeyd data directory and (at most) one running `apikeyd serve` on it.

    `start`/`stop`/`restart` keep the database, secret file and stderr log; every start picks
    a new free port. `stop` sends a signal and asserts exit status 0.
    """

    def __init__(self, backend_cls, workdir, extra_args=(), brand=None, secret_file=None, env=None, backend=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # `backend`: share another server's database (another instance on it); else a fresh one.
        self.owns_backend = backend is None
        self.backend = backend_cls(self.workdir) if backend is None else backend
        self.db = self.backend.db_arg()
        self.extra_args = [str(a) for a in extra_args]
        self.brand = brand
        self.secret_file = secret_file if secret_file is not None else self.backend.default_secret_file()
        self.env = dict(env or {})  # extra environment for `serve`
        self.log_path = self.workdir / "stderr.log"
        self.stdout_path = self.workdir / "stdout.log"
        self.proc = None
        self.port = None
        self.accounts = []
        self.clients = weakref.WeakSet()

    # -- CLI
    def common_args(self):
        args = []
        if self.secret_file is not None:
            args += ["--secret-file", str(self.secret_file)]
        if self.brand is not None:
            args += ["--brand", self.brand]
        return args

    def create_account(self, name=None):
        name = name or f"account-{len(self.accounts) + 1}"
        p = run_cli("account", "create", "--db", self.db, "--name", name, *self.common_args())
        assert p.returncode == 0, f"account create failed ({p.returncode}): {p.stderr}"
        info = strict_json(p.stdout)
        assert isinstance(info, dict), p.stdout
        account = Account(self, info)
        self.accounts.append(account)
        return account

    def create_admin_token(self, name="ops"):
        """`apikeyd admin-token create`: its JSON output (`id`, `name`, `created_at`, `token`)."""
        p = run_cli("admin-token", "create", "--db", self.db, "--name", name, *self.common_args())
        assert p.returncode == 0, f"admin-token create failed ({p.returncode}): {p.stderr}"
        info = strict_json(p.stdout)
        assert isinstance(info, dict), p.stdout
        assert_admin_token_format(info["token"], self.brand or "ml")
        return info

    def revoke_admin_token(self, token_id):
        """`apikeyd admin-token revoke ID`: exit 0, nothing on stdout."""
        p = run_cli("admin-token", "revoke", "--db", self.db, *self.common_args(), token_id)
        assert p.returncode == 0, f"admin-token revoke failed ({p.returncode}): {p.stderr}"
        assert p.stdout == "", p.stdout

    def admin_client(self, name="ops"):
        """A Client with a new admin token (`.token_info` its CLI output), once this server
        (when running) accepts it: a token made by the CLI reaches a running server like a
        change from another process does."""
        info = self.create_admin_token(name)
        admin = Client(self, info["token"])
        admin.token_info = info
        if self.proc is not None:
            wait_until(
                lambda: admin.get(ADMIN_ACCOUNTS + "?limit=1").status_code == 200,
                ACCOUNT_PICKUP_TIMEOUT,
                interval=0.05,
                what="the new admin token on the server",
            )
        return admin

    @property
    def account(self):
        return self.accounts[0]

    @property
    def client(self):
        return self.account.client

    # -- server process
    @property
    def base_url(self):
        assert self.port is not None, "server is not running"
        return f"http://127.0.0.1:{self.port}"

    def start(self, extra_args=None, use_env=False):
        assert self.proc is None, "already running"
        args = self.extra_args if extra_args is None else [str(a) for a in extra_args]
        for attempt in range(3):
            self.port = free_port()
            listen = f"127.0.0.1:{self.port}"
            env = dict(os.environ)
            env.pop("APIKEYD_DB", None)
            env.pop("APIKEYD_LISTEN", None)
            env.pop("APIKEYD_VERIFY_TOKEN", None)
            env.update(self.env)
            if use_env:
                env.update(APIKEYD_DB=self.db, APIKEYD_LISTEN=listen)
                argv = [str(BIN), "serve", *self.common_args(), *args]
            else:
                argv = [str(BIN), "serve", "--db", self.db, "--listen", listen, *self.common_args(), *args]
            with open(self.log_path, "ab") as err, open(self.stdout_path, "ab") as out:
                self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
            if self._wait_ready():
                return self
            # Exited before becoming ready: maybe the port was taken in between; try another.
            self.proc = None
        pytest.fail(f"apikeyd serve did not start; stderr:\n{self.log_text()[-2000:]}")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = requests.get(url, timeout=1)
            except requests.ConnectionError:
                time.sleep(0.02)
                continue
            if r.status_code == 200:
                if not owns_listener(self.proc.pid, self.port):
                    # Another worker's server took the port between free_port()
                    # and our bind; ours exits with "address already in use".
                    self.proc.wait(STOP_TIMEOUT)
                    return False
                SPEC.check("GET", "/healthz", r)
                return True
            time.sleep(0.02)
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        pytest.fail(f"GET /healthz did not answer 200 within {START_TIMEOUT} s; stderr:\n{self.log_text()[-2000:]}")

    def stop(self, sig=signal.SIGTERM):
        """Sends `sig`, waits, asserts exit status 0."""
        assert self.proc is not None, "not running"
        # Close our idle keep-alive connections first: shutdown waits for in-flight
        # requests, and these tests are about the server, not about idle clients.
        for client in list(self.clients):
            client.session.close()
        proc, self.proc = self.proc, None
        proc.send_signal(sig)
        try:
            rc = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"apikeyd did not exit within {STOP_TIMEOUT} s of {sig.name}")
        assert rc == 0, f"apikeyd exited with {rc} after {sig.name}; stderr tail:\n{self.log_text()[-2000:]}"
        return rc

    def kill(self):
        """SIGKILL: no shutdown work at all (for durability tests)."""
        assert self.proc is not None, "not running"
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()

    def restart(self, extra_args=None):
        self.stop()
        return self.start(extra_args)

    def close(self):
        """Teardown: stop if running (asserting exit 0), release the backend if it is ours."""
        try:
            if self.proc is not None:
                self.stop()
        finally:
            if self.owns_backend:
                self.backend.release()

    def psql(self, sql, **kw):
        """PostgreSQL only: runs `sql` on this server's database."""
        return self.backend.psql(sql, **kw)

    # -- files
    def log_bytes(self):
        try:
            return self.log_path.read_bytes()
        except FileNotFoundError:
            return b""

    def log_text(self):
        return self.log_bytes().decode("utf-8", "replace")

    def data_files(self):
        return self.backend.data_files()


class ServerFactory:
    """Builds servers in numbered subdirectories of `root`; closes them all at teardown."""

    def __init__(self, backend_cls, root):
        self.backend_cls = backend_cls
        self.root = Path(root)
        self.servers = []

    def __call__(
        self, *extra_args, accounts=None, start=True, brand=None, secret_file=None, env=None, share=None, admin=False
    ):
        """A new server with `accounts` (default: one, `acme`) on a fresh database; with
        `share=other`, another instance on `other`'s database and secret, knowing (by default)
        `other`'s accounts instead of creating any. With `admin=True`, `server.admin` is a Client
        with an admin token made (by the CLI) before the start."""
        server = Server(
            self.backend_cls,
            self.root / f"server{len(self.servers)}",
            extra_args=extra_args,
            brand=brand if brand is not None or share is None else share.brand,
            secret_file=secret_file if secret_file is not None or share is None else share.secret_file,
            env=env,
            backend=None if share is None else share.backend,
        )
        self.servers.append(server)
        if share is not None and accounts is None:
            server.accounts = [Account(server, a.info) for a in share.accounts]
        for name in ("acme",) if accounts is None and share is None else accounts or ():
            server.create_account(name)
        if admin:
            server.admin = server.admin_client()
        if start:
            server.start()
        return server

    def close_all(self):
        """Stops every server first, then releases the databases (some may be shared)."""
        failures = []
        for server in self.servers:
            try:
                if server.proc is not None:
                    server.stop()
            except BaseException as e:  # collect every failure, report the first
                failures.append(e)
        for server in self.servers:
            try:
                server.close()
            except BaseException as e:
                failures.append(e)
        if failures:
            raise failures[0]


@pytest.fixture
def server_factory(backend, apikeyd_bin, tmp_path):
    """`server_factory(*extra_args, accounts=(...), start=True, env={...})` -> started Server."""
    factory = ServerFactory(backend, tmp_path)
    yield factory
    factory.close_all()


@pytest.fixture
def pg_factory(pg_cluster, apikeyd_bin, tmp_path):
    """Servers on the session's PostgreSQL; `pg_factory(share=a)` is another instance on a's database."""
    factory = ServerFactory(PostgresBackend.bind(pg_cluster), tmp_path)
    yield factory
    factory.close_all()


@pytest.fixture
def fault_cluster():
    """A PostgreSQL cluster of the test's own: the test stops and restarts it."""
    cluster = start_pg_cluster("pgfault")
    yield cluster
    cluster.destroy()


@pytest.fixture
def fault_factory(fault_cluster, apikeyd_bin, tmp_path):
    """Servers on `fault_cluster`."""
    factory = ServerFactory(PostgresBackend.bind(fault_cluster), tmp_path)
    yield factory
    factory.close_all()


def instances(factory, n, *extra_args):
    """`n` instances on one database (the first one's), started with `extra_args`."""
    first = factory(*extra_args)
    return [first] + [factory(*extra_args, share=first) for _ in range(n - 1)]


@pytest.fixture
def server(server_factory):
    """A fresh server with one account, `acme`, whose primary key is `server.client`'s key."""
    return server_factory()


@pytest.fixture(scope="module")
def shared_server(backend, apikeyd_bin, tmp_path_factory):
    """One server per module for tests whose requests are all refused (they change nothing)."""
    factory = ServerFactory(backend, tmp_path_factory.mktemp("shared"))
    server = factory()
    yield server
    factory.close_all()


@pytest.fixture(scope="module")
def shared_admin_server(backend, apikeyd_bin, tmp_path_factory):
    """shared_server with `server.admin` (an admin token's Client), for tests that only make refused or read-only calls."""
    factory = ServerFactory(backend, tmp_path_factory.mktemp("shared-admin"))
    server = factory(admin=True)
    yield server
    factory.close_all()


@pytest.fixture
def client(server):
    return server.client


@pytest.fixture
def admin_server(server_factory):
    """A fresh server with one account, `acme`, and `server.admin`: a Client with an admin token."""
    return server_factory(admin=True)


def walk_pages(client, path, field, limit=None, **filters):
    """Follows `next_cursor` from the first page of a cursor-paginated listing (asserting 200
    on every page); returns (every item in order, the pages' sizes)."""
    items, sizes, after = [], [], None
    while True:
        params = dict(filters)
        if limit is not None:
            params["limit"] = limit
        if after is not None:
            params["after"] = after
        r = client.get(path + ("?" + urlencode(params) if params else ""))
        assert r.status_code == 200, r.text
        items += r.body[field]
        sizes.append(len(r.body[field]))
        after = r.body["next_cursor"]
        if after is None:
            return items, sizes
        assert r.body[field], "an empty page with a next_cursor"
        assert len(sizes) < 100000, "the listing does not end"


def parallel(fn, items, workers):
    """Runs fn(item) on `workers` threads; returns the results in item order, re-raising errors."""
    results = [None] * len(items)
    errors = []
    barrier = threading.Barrier(min(workers, len(items)))
    lock = threading.Lock()
    chunks = [list(range(i, len(items), workers)) for i in range(min(workers, len(items)))]

    def run(indexes):
        try:
            barrier.wait(timeout=30)
            for i in indexes:
                results[i] = fn(items[i])
        except BaseException as e:
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results

