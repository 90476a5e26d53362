"""Faults and durability: SIGKILL at random moments, a full disk, a read-only database,
SIGTERM under load, and the systemd unit in contrib/.

The file-system faults need root: they mount a 2 MiB tmpfs (disk full) and a 16 MiB ext4 image
on a loop device (read-only). Without the permission to mount, those tests FAIL with a message
saying so; none is skipped. Every mount is unmounted at teardown, after its server is stopped.

Why ext4 for "read-only" and not `mount -o remount,ro` of the tmpfs: Linux refuses to remount a
file system read-only while a process holds a file on it open for writing (EBUSY, "mount point
is busy"), and a running apikeyd always holds its database, WAL and WAL index open read-write.
So a database cannot be made read-only under a running server by a remount. What can happen,
and is tested here:
  - the database files are made immutable (`chattr +i`, which ext4 enforces even on files
    already open and even for root: writes fail with EPERM), then writable again: writes
    answer 503 and come back without a restart;
  - the file system itself goes read-only under the server, as ext4 does on an I/O error
    with `errors=remount-ro` (forced here through /sys/fs/ext4/DEV/trigger_fs_error): writes
    answer 503 (EROFS) while reads and verification go on, and every write answered before
    is still there after `e2fsck` and a restart.

These tests are about SQLite files, so they run on SQLite only; the SIGTERM test runs on both
backends.
"""

import errno
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import (
    COLLECTION,
    HTTP_TIMEOUT,
    LAST_USED_TIMEOUT,
    REPO,
    STOP_TIMEOUT,
    Client,
    Server,
    SqliteBackend,
    assert_error,
    forge_key,
    parse_time,
    snapshot,
    wait_until,
)

LONG = True  # mostly waiting: scheduled first (conftest.pytest_collection_modifyitems)

CRASHTEST = REPO / "tests" / "crash" / "crashtest.py"
UNIT = REPO / "contrib" / "apikeyd.service"
VERIFY = "/v1/auth/verify"
CMD_TIMEOUT = 60
RECOVERY_TIMEOUT = 5.0  # writes come back "by themselves": a few retries, no restart


def run(argv, timeout=CMD_TIMEOUT):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


# --------------------------------------------------------------------------- crash test


def run_crashtest(apikeyd_bin, workdir, *args, timeout):
    p = run([sys.executable, CRASHTEST, "--bin", apikeyd_bin, "--workdir", workdir, *args], timeout=timeout)
    out = p.stdout + p.stderr
    summary = [line for line in p.stdout.splitlines() if line.startswith("crashtest: ")]
    return p, out, summary


def test_crash_test_short_run(apikeyd_bin, tmp_path):
    """The shorter run of `make crashtest`: 10 SIGKILLs while 4 clients create, deactivate and
    delete keys; after each restart nothing answered is lost and the database is intact."""
    seed = int.from_bytes(os.urandom(4), "big")
    p, out, summary = run_crashtest(apikeyd_bin, tmp_path, "--kills", "10", "--seed", str(seed), timeout=300)
    assert p.returncode == 0 and summary and summary[-1] == "crashtest: 10 kills, 0 failures", (
        f"crash test failed (rc {p.returncode}); repeat with: {CRASHTEST} --kills 10 --seed {seed}\n{out[-6000:]}"
        f"\nserver stderr (tail):\n{(tmp_path / 'stderr.log').read_text(errors='replace')[-3000:]}"
    )


def test_crash_test_catches_lost_writes(apikeyd_bin, tmp_path):
    """The crash test's own checks work: a key deleted and a deactivation undone behind the
    server's back while it is down (--tamper) make the run fail, naming both keys, in the
    answers (once) and in the audit log's disagreement with the rows (every check after)."""
    p, out, summary = run_crashtest(apikeyd_bin, tmp_path, "--kills", "4", "--seed", "7", "--tamper",
                                    "--no-boot-kills", timeout=300)  # fmt: skip
    m = re.search(r"tampered: deleted key (\d+), reactivated key (\d+)", out)
    assert m, f"the crash test did not tamper with the database:\n{out[-4000:]}"
    assert p.returncode == 1, out[-4000:]
    assert re.search(rf"key {m[1]} \(client \d+; answered state active\): listed as absent", out), out[-4000:]
    assert re.search(rf"key {m[2]} \(client \d+; answered state inactive\): listed as active", out), out[-4000:]
    assert re.search(rf"key {m[1]} has a key.created event but no row and no key.deleted event", out), out[-4000:]
    # (the reactivated key may be changed again by its client before the next check: only the deletion must persist)
    audit = len(re.findall(r"FAILURE \(round \d+\): PRAGMA integrity_check", out))
    assert audit >= 1
    assert summary[-1] == f"crashtest: 4 kills, {2 + audit} failures", out[-4000:]


# --------------------------------------------------------------------------- file systems


def need_root(what):
    if os.geteuid() != 0:
        pytest.fail(f"this test mounts {what} and must run as root (it never skips): run the suite as root", pytrace=False)


def unmount(path):
    for _ in range(50):
        if run(["umount", path]).returncode == 0 or not os.path.ismount(path):
            return
        time.sleep(0.1)
    run(["umount", "-l", path])  # last resort: detach it, whatever still holds it


class Mount:
    """A mounted file system for a test; `server()` starts apikeyd with its database in it (its
    logs stay outside). Teardown stops every server, then unmounts."""

    def __init__(self, path, logdir):
        self.path = Path(path)
        self.logdir = Path(logdir)
        self.servers = []

    def server(self, *extra_args):
        n = len(self.servers)
        server = Server(SqliteBackend, self.path, extra_args=extra_args)
        server.log_path = self.logdir / f"stderr{n}.log"
        server.stdout_path = self.logdir / f"stdout{n}.log"
        self.servers.append(server)
        server.create_account("acme")
        return server.start()

    def stop_servers(self):
        for server in self.servers:
            proc, server.proc = server.proc, None
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def tmpfs(tmp_path):
    """A 2 MiB tmpfs for a database that can fill its disk."""
    need_root("a tmpfs")
    path = tmp_path / "tmpfs"
    path.mkdir()
    p = run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", path])
    if p.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs on {path} (root with CAP_SYS_ADMIN needed): {p.stderr.strip()}", pytrace=False)
    mount = Mount(path, tmp_path)
    try:
        yield mount
    finally:
        mount.stop_servers()
        unmount(path)


class Ext4(Mount):
    def __init__(self, path, logdir, image):
        super().__init__(path, logdir)
        self.image = image

    def mount(self):
        p = run(["mount", "-t", "ext4", "-o", "loop,errors=remount-ro", self.image, self.path])
        if p.returncode != 0:
            pytest.fail(f"cannot mount an ext4 image on a loop device at {self.path} (root, /dev/loop-control and "
                        f"loop devices needed): {p.stderr.strip()}", pytrace=False)  # fmt: skip

    def device(self):
        p = run(["findmnt", "-n", "-o", "SOURCE", "--mountpoint", self.path])
        assert p.returncode == 0 and p.stdout.strip(), f"findmnt {self.path}: {p.stderr}"
        return os.path.basename(p.stdout.strip())

    def options(self):
        return run(["findmnt", "-n", "-o", "OPTIONS", "--mountpoint", self.path]).stdout.strip().split(",")


@pytest.fixture
def ext4(tmp_path):
    """A 16 MiB ext4 file system in an image file, on a loop device, `errors=remount-ro`."""
    need_root("an ext4 image on a loop device")
    image = tmp_path / "ext4.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    p = run(["mkfs.ext4", "-q", "-F", image])
    assert p.returncode == 0, f"mkfs.ext4 failed (Debian's e2fsprogs): {p.stderr}"
    path = tmp_path / "ext4"
    path.mkdir()
    fs = Ext4(path, tmp_path, image)
    fs.mount()
    try:
        yield fs
    finally:
        fs.stop_servers()
        unmount(path)


def fill(directory):
    """Fills the file system of `directory` to the last byte; returns the filler's path."""
    filler = Path(directory) / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            while True:
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return filler


def verify(server, key):
    """GET /v1/auth/verify with `key`: (status, error code or None)."""
    r = Client(server, key).get(VERIFY)
    return r.status_code, (r.body["error"]["code"] if r.body else None)


def assert_unavailable(r):
    assert_error(r, 503, "store_unavailable")
    message = r.body["error"]["message"]
    assert isinstance(message, str) and "unavailable" in message and "nothing was changed" in message, message


def assert_writes_refused(server, victim, before):
    """Every kind of write answers 503 store_unavailable and changes nothing."""
    admin = server.client
    for _ in range(3):
        assert_unavailable(admin.post(json={"name": "No Room", "key_type": "sandbox"}))
    assert_unavailable(admin.patch(victim["id"], json={"is_active": False}))
    assert_unavailable(admin.patch(victim["id"], json={"name": "Renamed"}))
    assert_unavailable(admin.delete(victim["id"]))
    assert snapshot(admin) == before, "a refused write changed the keys"


def assert_reads_go_on(server, keys):
    """Listing and verification answer from memory, as before the fault."""
    for k in keys:
        assert verify(server, k["api_key"]) == (204, None)
        assert Client(server, k["api_key"]).get().status_code == 200
    assert verify(server, forge_key("sand")) == (401, "invalid_api_key")
    assert server.proc.poll() is None, "apikeyd died"


def assert_writes_recover(server, victim):
    """Writes work again without a restart (retried while they answer 503, within a few s)."""
    admin = server.client

    def create():
        r = admin.post(json={"name": "Space Again", "key_type": "sandbox"})
        if r.status_code == 503:
            assert_unavailable(r)
            return None
        assert r.status_code == 201, r.text
        return r.body

    created = wait_until(create, RECOVERY_TIMEOUT, interval=0.2, what="a create to succeed again")
    assert verify(server, created["api_key"]) == (204, None)
    assert admin.update(victim["id"], is_active=False)["is_active"] is False
    assert verify(server, victim["api_key"]) == (401, "key_inactive")
    admin.remove(victim["id"])
    assert verify(server, victim["api_key"]) == (401, "invalid_api_key")
    return created


def assert_no_sanitizer_report(server):
    log = server.log_text()
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in log, log[-4000:]


# SQLite only, as the whole module's file-system tests: the disk is the SQLite file's.
def test_disk_full_refuses_writes_keeps_serving_and_recovers(tmpfs):
    server = tmpfs.server()
    admin = server.client
    kept = admin.create("Kept", "sandbox")
    victim = admin.create("Victim", "production")
    before = snapshot(admin)

    filler = fill(tmpfs.path)
    assert_writes_refused(server, victim, before)
    assert_reads_go_on(server, [kept, victim])
    # A use while the disk is full stays pending, to be written once there is room again.
    used_at = time.time()
    assert verify(server, kept["api_key"]) == (204, None)
    time.sleep(1.2)  # at least one last_used flush fails on the full disk
    assert server.proc.poll() is None, "apikeyd died on a full disk"

    os.unlink(filler)  # space returns
    created = assert_writes_recover(server, victim)

    def kept_last_used():
        return admin.by_id()[kept["id"]]["last_used"]

    assert parse_time(wait_until(kept_last_used, LAST_USED_TIMEOUT + 1, what="the pending last_used")) >= int(used_at)
    # Everything answered is what is on disk.
    after = snapshot(admin)
    server.restart()
    assert snapshot(admin) == after
    assert verify(server, created["api_key"]) == (204, None)
    assert_no_sanitizer_report(server)


def test_immutable_database_files_refuse_writes_then_recover(ext4):
    """A database the server may no longer write (its file and WAL immutable: EPERM on every
    write, also for root, also through descriptors already open)."""
    server = ext4.server()
    admin = server.client
    kept = admin.create("Kept", "sandbox")
    victim = admin.create("Victim", "sandbox")
    before = snapshot(admin)
    files = [server.db, server.db + "-wal"]
    assert os.path.exists(files[1]), "no WAL file: is the database in WAL mode?"

    p = run(["chattr", "+i", *files])
    assert p.returncode == 0, f"chattr +i: {p.stderr}"
    try:
        assert_writes_refused(server, victim, before)
        assert_reads_go_on(server, [kept, victim])
        time.sleep(1.2)  # a last_used flush fails too
        assert server.proc.poll() is None
    finally:
        p = run(["chattr", "-i", *files])
    assert p.returncode == 0, f"chattr -i: {p.stderr}"

    assert_writes_recover(server, victim)
    after = snapshot(admin)
    server.restart()
    assert snapshot(admin) == after
    assert_no_sanitizer_report(server)


def test_file_system_gone_read_only_keeps_serving_and_loses_nothing_answered(ext4):
    """The database's file system turns read-only under the server (ext4 errors=remount-ro after
    an error): writes answer 503, reads and verification go on, no crash; SIGTERM ends it (a
    last_used that cannot be written is reported); after e2fsck and a restart every write
    answered before the fault is there and writes work."""
    server = ext4.server()
    admin = server.client
    kept = admin.create("Kept", "sandbox")
    victim = admin.create("Victim", "sandbox")
    gone = admin.create("Deleted Before", "sandbox")
    admin.update(kept["id"], name="Renamed Before")
    admin.remove(gone["id"])
    before = snapshot(admin)

    device = ext4.device()
    try:
        with open(f"/sys/fs/ext4/{device}/trigger_fs_error", "w") as f:
            f.write("apikeyd test: file system error on purpose, remounting read-only\n")
    except OSError as e:
        pytest.fail(f"cannot trigger an ext4 error through /sys/fs/ext4/{device}/trigger_fs_error "
                    f"(root and a writable /sys needed): {e}", pytrace=False)  # fmt: skip
    with pytest.raises(OSError) as e:
        open(ext4.path / "probe", "w").close()
    assert e.value.errno == errno.EROFS, e.value

    assert_writes_refused(server, victim, before)
    assert_reads_go_on(server, [kept, victim])
    assert verify(server, gone["api_key"]) == (401, "invalid_api_key")
    time.sleep(1.2)
    assert server.proc.poll() is None, "apikeyd died when its file system went read-only"

    # SIGTERM: the pending last_used cannot be written; it says so, and it is not a crash.
    proc, server.proc = server.proc, None
    for client in list(server.clients):
        client.session.close()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(STOP_TIMEOUT)
    assert rc >= 0, f"apikeyd died of signal {-rc} at SIGTERM:\n{server.log_text()[-3000:]}"
    if rc != 0:
        assert "cannot flush last_used" in server.log_text(), server.log_text()[-3000:]
    assert_no_sanitizer_report(server)

    unmount(ext4.path)
    p = run(["e2fsck", "-f", "-y", ext4.image])
    assert p.returncode in (0, 1), f"e2fsck: {p.returncode}\n{p.stdout}{p.stderr}"
    ext4.mount()
    server.start()
    strip = lambda keys: [{k: v for k, v in key.items() if k != "last_used"} for key in keys]  # noqa: E731
    assert strip(snapshot(admin)) == strip(before)
    assert verify(server, victim["api_key"]) == (204, None)
    assert verify(server, gone["api_key"]) == (401, "invalid_api_key")
    assert_writes_recover(server, victim)


# --------------------------------------------------------------------------- SIGTERM under load


class Load:
    """Client threads on raw keep-alive connections, as fast as they go, until the server stops
    answering: creators (every 201 recorded) and verifiers (the time before sending each
    verification answered 204, per key)."""

    def __init__(self, server):
        self.port = server.port
        self.admin_key = server.account.key
        self.lock = threading.Lock()
        self.created = []
        self.other_answers = []
        self.early_errors = []
        self.last_verified = {}
        self.stopping = threading.Event()
        self.threads = []

    def _conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)

    def _call(self, conn, method, path, key, body=None):
        headers = {"Authorization": f"Bearer {key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()

    def _loop(self, step):
        conn = self._conn()
        try:
            while True:
                try:
                    step(conn)
                except (OSError, http.client.HTTPException) as e:
                    if not self.stopping.is_set():
                        with self.lock:
                            self.early_errors.append(repr(e))
                    if not self.stopping.is_set():
                        return
                    # Shutting down: a keep-alive connection may be closed under us; go on on a
                    # new one until the listener is gone (refused).
                    conn.close()
                    if isinstance(e, ConnectionRefusedError):
                        return
                    conn = self._conn()
        finally:
            conn.close()

    def creator(self, n):
        counter = iter(range(1, 10**9))

        def step(conn):
            name = f"load {n}-{next(counter)}"
            status, raw = self._call(conn, "POST", COLLECTION, self.admin_key, {"name": name, "key_type": "sandbox"})
            with self.lock:
                if status == 201:
                    body = json.loads(raw)
                    self.created.append((body["id"], body["api_key"], name))
                else:
                    self.other_answers.append((status, raw[:300]))

        self._loop(step)

    def verifier(self, keys):
        i = iter(range(10**9))

        def step(conn):
            k = keys[next(i) % len(keys)]
            t = time.time()
            status, raw = self._call(conn, "GET", VERIFY, k["api_key"])
            if status == 204:
                with self.lock:
                    self.last_verified[k["id"]] = max(self.last_verified.get(k["id"], 0), t)
            else:
                with self.lock:
                    self.other_answers.append((status, raw[:300]))

        self._loop(step)

    def start(self, creators, verifier_keys):
        self.threads = [threading.Thread(target=self.creator, args=(n,), daemon=True) for n in range(creators)]
        self.threads += [threading.Thread(target=self.verifier, args=(ks,), daemon=True) for ks in verifier_keys]
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join(STOP_TIMEOUT + HTTP_TIMEOUT)
            assert not t.is_alive(), "a load thread is still running after the server stopped"


def test_sigterm_under_load_loses_no_answered_write_and_no_pending_last_used(server_factory):
    server = server_factory("--max-keys", "1000000", "--no-access-log")
    admin = server.client
    hot = [admin.create(f"Hot {i}", "sandbox") for i in range(6)]
    once = [admin.create(f"Once {i}", "sandbox") for i in range(12)]
    assert all(k["last_used"] is None for k in hot + once)

    load = Load(server)
    load.start(creators=3, verifier_keys=[hot[0::2], hot[1::2]])
    time.sleep(1.5)  # load across a last_used flush
    # The `once` keys are used exactly once each, in the last moment before SIGTERM: their
    # last_used is pending in memory when the signal comes, unless a flush happened to catch it.
    once_at = {}
    for k in once:
        once_at[k["id"]] = time.time()
        assert verify(server, k["api_key"]) == (204, None)
    for client in list(server.clients):
        client.session.close()
    proc, server.proc = server.proc, None
    load.stopping.set()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"apikeyd did not exit within {STOP_TIMEOUT} s of SIGTERM under load")
    load.join()
    assert rc == 0, f"apikeyd exited with {rc} after SIGTERM under load:\n{server.log_text()[-3000:]}"
    assert not load.early_errors, f"connection errors before SIGTERM: {load.early_errors[:5]}"
    # While shutting down, a request may find the store closed (503) but never a server error.
    unexpected = [(s, b) for s, b in load.other_answers if s != 503 or b"store_unavailable" not in b]
    assert not unexpected, f"unexpected answers under load: {unexpected[:5]}"
    assert len(load.created) >= 10 and len(load.last_verified) == len(hot), "the load did not get going"

    server.start()
    keys = admin.by_id()  # first, before any use after the restart
    missing = [(i, name) for i, _, name in load.created if keys.get(i, {}).get("name") != name]
    assert not missing, f"{len(missing)} of {len(load.created)} creates answered 201 are lost: {missing[:10]}"
    for k in once:
        value = keys[k["id"]]["last_used"]
        assert value is not None, f"key {k['id']}: its use just before SIGTERM was lost (last_used null)"
        assert parse_time(value) >= int(once_at[k["id"]])
    for key_id, t in load.last_verified.items():
        value = keys[key_id]["last_used"]
        assert value is not None and parse_time(value) >= int(t), (
            f"key {key_id}: last_used {value} is older than its last answered verification at {int(t)}"
        )
    for i, key, _ in load.created:
        assert verify(server, key) == (204, None), f"key {i}, created under load, does not verify"


# --------------------------------------------------------------------------- systemd unit

REQUIRED_DIRECTIVES = {
    "ExecStart": "/usr/local/bin/apikeyd serve --db /var/lib/apikeyd/apikeyd.db --listen 127.0.0.1:8080",
    "DynamicUser": "yes",
    "StateDirectory": "apikeyd",
    "ProtectSystem": "strict",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ReadWritePaths": "/var/lib/apikeyd",
    "ProtectHome": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallArchitectures": "native",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictNamespaces": "yes",
    "UMask": "0077",
    "KillSignal": "SIGTERM",
    "Restart": "on-failure",
    "LimitNOFILE": "65536",
}


WRITE_DRAIN = 15  # s: how long a stopping apikeyd waits for writes in flight (src/http/server.c WRITE_DRAIN_MS)
BUSY_TIMEOUT = 5  # s: SQLite's busy timeout, the longest one store statement waits for a lock


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a lock held on the SQLite file stalls the writer
def test_sigterm_with_writes_stuck_gives_up_after_the_drain_runs_nothing_queued_and_flushes(server_factory):
    """Six creates queue behind a write lock the test holds (each statement waits 5 s, then
    answers 503). SIGTERM at t=1 s; the drain gives up at t=16 s while the fourth runs; the
    lock is released at t=17.5 s. Then: the creates still queued are never run (no key made
    that nobody will see), none is answered after the drain gave up, last_used is still
    flushed, and the process exits 0 well inside the unit's TimeoutStopSec."""
    import sqlite3

    server = server_factory()
    key = server.account.key
    names = [f"stuck-{i}" for i in range(6)]
    results = {}
    lock = sqlite3.connect(server.db, timeout=10, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the write lock: readers go on, the writer thread waits

    def create(name):
        try:
            c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            body = json.dumps({"name": name, "key_type": "sandbox"})
            c.request("POST", COLLECTION, body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            r = c.getresponse()
            results[name] = (r.status, time.monotonic())
        except (OSError, http.client.HTTPException) as e:
            results[name] = (type(e).__name__, time.monotonic())

    threads = []
    for name in names:  # one at a time, so that they queue in this order
        t = threading.Thread(target=create, args=(name,))
        t.start()
        threads.append(t)
        time.sleep(0.05)
    time.sleep(1)
    proc, server.proc = server.proc, None
    term = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    while time.monotonic() < term + WRITE_DRAIN + 1.5:
        assert proc.poll() is None, "exited before the drain gave up"
        time.sleep(0.1)
    lock.execute("ROLLBACK")
    lock.close()
    rc = proc.wait(STOP_TIMEOUT + BUSY_TIMEOUT)
    took = time.monotonic() - term
    for t in threads:
        t.join(HTTP_TIMEOUT)
    assert rc == 0, server.log_text()[-2000:]
    stop_timeout = int(unit_service_section(UNIT.read_text())["TimeoutStopSec"][0])
    # The unit leaves room for the drain, one running statement, the final flush and a margin.
    assert stop_timeout >= WRITE_DRAIN + 2 * BUSY_TIMEOUT + 5, f"TimeoutStopSec={stop_timeout} is too tight"
    assert took < stop_timeout - 2 * BUSY_TIMEOUT, f"took {took:.1f} s to stop; systemd kills at {stop_timeout} s"

    late = {n: r for n, r in results.items() if r[1] > term + WRITE_DRAIN + 0.5 and isinstance(r[0], int)}
    assert not late, f"answered after the drain gave up: {late}"
    assert all(r[0] == 503 or not isinstance(r[0], int) for r in results.values()), results
    unanswered = [n for n in names if not isinstance(results[n][0], int)]
    assert unanswered, f"every create was answered: the drain never gave up? {results}"
    db = sqlite3.connect(server.db)
    made = {row[0] for row in db.execute("SELECT name FROM api_keys WHERE name LIKE 'stuck-%'")}
    last_used = db.execute("SELECT last_used FROM api_keys WHERE is_primary = 1").fetchone()[0]
    db.close()
    # At most the one statement running when the drain gave up committed; nothing queued ran.
    assert made <= set(unanswered[:1]), f"created after the drain gave up: {made}, unanswered {unanswered}"
    assert last_used is not None, "the final last_used flush was lost"


def unit_service_section(text):
    section, out = None, {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            name, _, value = line.partition("=")
            out.setdefault(name.strip(), []).append(value.strip())
    return out


def systemd_analyze():
    p = run(["sh", "-c", "command -v systemd-analyze"])
    if p.returncode != 0:
        pytest.fail("systemd-analyze not found: install Debian's systemd package (scripts/deps.sh)", pytrace=False)
    return p.stdout.strip()


def unit_for_verify(apikeyd_bin, tmp_path):
    """The unit with ExecStart pointing at the built binary (verify wants it to exist)."""
    text = UNIT.read_text()
    old = "ExecStart=/usr/local/bin/apikeyd "
    assert text.count(old) == 1, "ExecStart must run /usr/local/bin/apikeyd"
    path = tmp_path / "apikeyd.service"
    path.write_text(text.replace(old, f"ExecStart={Path(apikeyd_bin).resolve()} "))
    return path


def test_systemd_unit_runs_unprivileged_in_a_sandbox():
    service = unit_service_section(UNIT.read_text())
    for name, value in REQUIRED_DIRECTIVES.items():
        assert value in service.get(name, []), f"[Service] {name}={value} missing (has {service.get(name)})"
    assert "User" not in service and "Group" not in service, "DynamicUser=yes allocates the user"
    assert not any(v for v in service.get("CapabilityBoundingSet", [])), "no capability may be kept"


def test_systemd_unit_passes_systemd_analyze_verify(apikeyd_bin, tmp_path):
    path = unit_for_verify(apikeyd_bin, tmp_path)
    p = run([systemd_analyze(), "verify", path])
    out = (p.stdout + p.stderr).strip()
    about_unit = [line for line in out.splitlines() if "apikeyd" in line]
    assert p.returncode == 0 and not about_unit, f"systemd-analyze verify (exit {p.returncode}):\n{out}"


def test_systemd_unit_exposure_is_low(apikeyd_bin, tmp_path):
    """`systemd-analyze security` scores the sandbox (0 best, 10 worst); keep it "OK" or better."""
    path = unit_for_verify(apikeyd_bin, tmp_path)
    p = run([systemd_analyze(), "security", "--offline=yes", "--threshold=20", "--no-pager", path])
    out = p.stdout + p.stderr
    m = re.search(r"Overall exposure level for apikeyd\.service: (\d+\.\d+)", out)
    assert p.returncode == 0 and m, f"systemd-analyze security (exit {p.returncode}):\n{out[-3000:]}"
    assert float(m[1]) <= 2.0, f"exposure {m[1]} (at most 2.0 expected):\n{out[-3000:]}"
