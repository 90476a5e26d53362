"""A throwaway PostgreSQL cluster for the tests (the API suite's backend matrix and the browser
suite): initdb'd as `postgres` into a temporary directory, on a unix socket in that directory and
on 127.0.0.1, trust authentication, removed at the end. Never the machine's own PostgreSQL."""
import atexit
import itertools
import os
import pwd
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def owns_listener(pid, port):
    """True if process `pid` holds a socket listening on TCP `port`.

    free_port() only finds a port that was free a moment ago: a server started
    in another test worker may take it first, and then GET /healthz on that
    port answers from the wrong process. The kernel's socket tables say whose
    listener it is."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{inode}]")
        except FileNotFoundError:
            continue
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


PG_BINDIR = Path(os.environ.get("APIKEYD_PG_BINDIR") or "/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
PG_PORT = 5432  # libpq's default port: a URI on any other port says `port=`
PG_TIMEOUT = 60.0  # initdb, pg_ctl start/stop
PSQL_TIMEOUT = 30.0
# The message of every PostgreSQL test when the throwaway cluster cannot start; such a test is
# reported as failed (see pytest_runtest_makereport), never skipped.
PG_UNAVAILABLE = "PostgreSQL is unavailable, so this PostgreSQL test cannot run"


class PgUnavailable(Exception):
    pass


def write_secret(path):
    """A shared HMAC secret file (64 hex characters, mode 0600), as every instance must use."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return Path(path)


class PgCluster:
    """A throwaway PostgreSQL cluster in its own temporary directory, reachable through a unix
    socket in that directory and on 127.0.0.1, both on `home_port` (a free port chosen at
    construction, so that clusters of concurrent sessions never collide; PostgreSQL has one
    port for both). Trust authentication on both. initdb and the server run as the `postgres`
    user (through runuser when the tests run as root). `destroy()` stops it and removes the
    directory."""

    def __init__(self, label="pg", prefetch=0):
        self.root = Path(tempfile.mkdtemp(prefix=f"apikeyd-{label}-", dir="/tmp"))
        # With prefetch > 0, a thread keeps that many fresh databases created ahead and drops
        # released ones, so that tests do not wait for CREATE/DROP DATABASE.
        self.prefetch = prefetch
        self._jobs = queue.Queue()
        self._ready = queue.Queue()
        self._worker = None
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.sockdir = self.root
        self.home_port = free_port()
        self.port = self.home_port
        self.running = False
        self._names = itertools.count(1)
        self._destroyed = False
        atexit.register(self.destroy)  # also when the session dies before its teardown
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam(PG_USER)
            except KeyError:
                self.destroy()
                raise PgUnavailable(f"no `{PG_USER}` user: install Debian's postgresql-15 (scripts/deps.sh)") from None
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    @staticmethod
    def _as_postgres(argv):
        argv = [str(a) for a in argv]
        return ["runuser", "-u", PG_USER, "--", *argv] if os.geteuid() == 0 else argv

    def _run_pg(self, argv, what):
        try:
            p = subprocess.run(
                self._as_postgres(argv),
                capture_output=True,
                text=True,
                timeout=PG_TIMEOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,  # a directory the postgres user may enter
            )
        except (OSError, subprocess.SubprocessError) as e:
            raise PgUnavailable(f"{what}: {e}") from e
        if p.returncode != 0:
            raise PgUnavailable(f"{what} failed ({p.returncode}):\n{p.stdout}{p.stderr}\n{self.log_tail()}")
        return p

    def log_tail(self, n=3000):
        try:
            return "postgres.log:\n" + self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def init(self):
        initdb = PG_BINDIR / "initdb"
        if not os.access(initdb, os.X_OK):
            raise PgUnavailable(
                f"{initdb} not found: install Debian's postgresql-15 (scripts/deps.sh), or set APIKEYD_PG_BINDIR"
            )
        self._run_pg(
            [initdb, "-D", self.data, "-A", "trust", "-U", PG_USER, "-E", "UTF8", "--locale=C", "--no-sync"], "initdb"
        )
        return self

    def start(self, port=None):
        """Starts the server on `port` (default `home_port`): its socket `.s.PGSQL.<port>` in the
        cluster's directory, and 127.0.0.1:<port>. When the home port was taken meanwhile by
        someone else, another free one becomes the home port (a few attempts)."""
        for attempt in range(3):
            use = self.home_port if port is None else port
            opts = (
                f"-c listen_addresses=127.0.0.1 -k {self.sockdir} -p {use}"
                " -c fsync=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                self._run_pg(
                    [PG_BINDIR / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", int(PG_TIMEOUT), "-o", opts,
                     "start"],  # fmt: skip
                    f"pg_ctl start (port {use})",
                )
            except PgUnavailable:
                if port is not None or attempt == 2 or not self._port_taken(use):
                    raise
                self.home_port = free_port()
                continue
            self.port = use
            self.running = True
            return self

    @staticmethod
    def _port_taken(port):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return True
        return False

    def stop(self, mode="fast"):
        self._run_pg([PG_BINDIR / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", int(PG_TIMEOUT), "stop"], "pg_ctl stop")
        self.running = False

    def destroy(self):
        """Stops the server if it runs and removes the whole directory; idempotent."""
        if self._destroyed:
            return
        self._destroyed = True
        try:
            self._stop_worker()
            if self.running or (self.data / "postmaster.pid").exists():
                try:
                    self.stop("immediate")
                except PgUnavailable:
                    self._kill_postmaster()
        finally:
            self.running = False
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self):
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, signal.SIGQUIT)  # the postmaster this cluster started: immediate shutdown
        except (OSError, ValueError):
            pass

    # -- clients
    def uri(self, dbname, port=None):
        """`postgresql://postgres@/DBNAME?host=SOCKETDIR&port=PORT` (the unix socket)."""
        port = self.port if port is None else port
        suffix = "" if port == PG_PORT else f"&port={port}"
        return f"postgresql://{PG_USER}@/{dbname}?host={self.sockdir}{suffix}"

    def tcp_uri(self, dbname, port=None, host="127.0.0.1"):
        """`postgresql://postgres@127.0.0.1:PORT/DBNAME` (TCP; `port` may be a proxy's)."""
        port = self.port if port is None else port
        return f"postgresql://{PG_USER}@{host}:{port}/{dbname}"

    def psql_argv(self, dbname="postgres", port=None):
        port = self.port if port is None else port
        return [str(PG_BINDIR / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", str(self.sockdir), "-p", str(port), "-U", PG_USER, "-d", dbname]  # fmt: skip

    def psql(self, sql, dbname="postgres", port=None, check=True):
        """Runs `sql` with psql; returns its unaligned, tuples-only output (stripped)."""
        p = subprocess.run(
            [*self.psql_argv(dbname, port), "-c", sql],
            capture_output=True,
            text=True,
            timeout=PSQL_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert p.returncode == 0, f"psql failed ({p.returncode}) on {sql!r}: {p.stderr}"
        return p.stdout.strip() if p.returncode == 0 else None

    def _create(self):
        name = f"apikeyd_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        return name

    def _drop(self, name):
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _work(self):
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                if job == "create":
                    self._ready.put(self._create())
                else:
                    self._drop(job)
            except BaseException as e:  # noqa: BLE001 - handed to the test that waits for a database
                if job == "create":
                    self._ready.put(e)

    def create_database(self):
        """The name of a new, empty database (CREATE DATABASE, a unique name)."""
        if not self.prefetch:
            return self._create()
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="pg-databases", daemon=True)
            self._worker.start()
            for _ in range(self.prefetch):
                self._jobs.put("create")
        try:
            name = self._ready.get(timeout=PSQL_TIMEOUT * 2)
        except queue.Empty:
            pytest.fail("no fresh PostgreSQL database within 60 s")
        self._jobs.put("create")
        if isinstance(name, BaseException):
            raise name
        return name

    def drop_database(self, name):
        if self._worker is not None:
            self._jobs.put(name)
        else:
            self._drop(name)

    def _stop_worker(self):
        if self._worker is not None:
            self._jobs.put(None)
            self._worker.join(timeout=PSQL_TIMEOUT * 4)
            self._worker = None


def start_pg_cluster(label, prefetch=0):
    """A started PgCluster, or the test fails with PG_UNAVAILABLE and the reason."""
    cluster = None
    try:
        cluster = PgCluster(label, prefetch)
        return cluster.init().start()
    except (PgUnavailable, OSError, subprocess.SubprocessError) as e:
        reason = str(e) or type(e).__name__
    if cluster is not None:
        cluster.destroy()
    pytest.fail(f"{PG_UNAVAILABLE}: {reason}", pytrace=False)
