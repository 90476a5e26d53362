"""A TCP proxy between apikeyd and PostgreSQL that a test controls: a silent partition and a lost
COMMIT answer, on loopback.

It must never do anything a test did not ask for: it listens on 127.0.0.1 only, forwards only to
a loopback target, holds at most `max_conns` connections and `BUF_MAX` bytes per direction of
each, and stops by itself after `lifetime` seconds (closing everything) if the test forgets to.

- `freeze()`: stops forwarding in both directions WITHOUT closing any socket. Bytes sent to the
  proxy stay in the kernel's buffers (the kernel still acknowledges them, so TCP keepalives and
  `tcp_user_timeout` see a live peer: only an application-level heartbeat notices). New
  connections are accepted but not connected onwards. `heal()` resumes: buffered bytes flow,
  held connections are connected to the target.
- `cut_after(pattern, when=None)`: the next client->server chunk containing `pattern` (and, with
  `when`, whose transaction so far matches it) is forwarded to the server; then that
  connection's client socket is closed and the server side is shut down for writing (so the
  server reads the whole chunk, runs it, and only then sees the end of the stream), and the
  server's answer is read and dropped: it never reaches the client. One-shot.
- `freeze_after(pattern, when=None)`: forwards that chunk, then freezes everything. One-shot.

"Transaction so far": the client->server bytes of that connection since the previous chunk that
contained `pattern` (apikeyd sends COMMIT as a simple-protocol query, `Q` ... `COMMIT\\0`, after
the transaction's statements). `when` is a compiled bytes regex searched in them, so that a test
can pick its own transaction (e.g. the one that NOTIFYs `k 42`) and not another one that the
same connection commits around it (a last_used flush).
"""

import select
import socket
import threading
import time

BUF_MAX = 1 << 20  # bytes queued per direction of a connection; reading pauses past it
TXN_MAX = 1 << 16  # bytes of "transaction so far" kept per connection (the tail)
SEND_TIMEOUT = 5.0  # forwarding the triggering chunk
DRAIN_TIMEOUT = 10.0  # reading (and dropping) the server's answer after a cut
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class _Pair:
    def __init__(self, client):
        self.client = client
        self.server = None  # connected when forwarding starts
        self.c2s = bytearray()  # client -> server, waiting to be written
        self.s2c = bytearray()
        self.client_eof = False
        self.server_eof = False
        self.txn = bytearray()
        self.tail = b""  # last bytes of the previous chunk, for a pattern split across chunks


class TcpProxy:
    def __init__(self, target_port, target_host="127.0.0.1", max_conns=64, lifetime=600.0):
        assert target_host in LOOPBACK, "the proxy forwards to loopback only"
        self.target = (target_host, target_port)
        self.max_conns = max_conns
        self.lifetime = lifetime
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._lock = threading.Lock()
        self._frozen = False
        self._armed = None  # (action, pattern, when)
        self._stop = False
        self._pairs = []
        self._draining = []  # (server socket, deadline) after a cut
        self.accepted = 0  # connections accepted so far
        self.triggered = threading.Event()  # a cut_after / freeze_after fired
        self.errors = []
        self._thread = threading.Thread(target=self._run, name=f"tcpproxy:{self.port}", daemon=True)

    # -- control (any thread)
    def start(self):
        self._thread.start()
        return self

    def freeze(self):
        self._set(frozen=True)

    def heal(self):
        self._set(frozen=False)

    @property
    def frozen(self):
        with self._lock:
            return self._frozen

    def cut_after(self, pattern, when=None):
        self.triggered.clear()
        self._set(armed=("cut", bytes(pattern), when))

    def freeze_after(self, pattern, when=None):
        self.triggered.clear()
        self._set(armed=("freeze", bytes(pattern), when))

    def disarm(self):
        self._set(armed=None)

    def stop(self):
        with self._lock:
            self._stop = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._close_all()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _set(self, **kw):
        with self._lock:
            if "frozen" in kw:
                self._frozen = kw["frozen"]
            if "armed" in kw:
                self._armed = kw["armed"]
        self._wake()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    # -- the loop (the proxy's thread)
    def _run(self):
        deadline = time.monotonic() + self.lifetime
        try:
            while time.monotonic() < deadline:
                with self._lock:
                    if self._stop:
                        return
                    frozen = self._frozen
                if not frozen:
                    for p in self._pairs:
                        if p.server is None and not self._connect(p):
                            self._drop(p)
                rd, wr = [self.listener, self._wake_r], []
                now = time.monotonic()
                for sock, until in list(self._draining):
                    if now > until:
                        self._draining.remove((sock, until))
                        sock.close()
                    else:
                        rd.append(sock)
                if not frozen:
                    for p in self._pairs:
                        if not p.client_eof and len(p.c2s) < BUF_MAX:
                            rd.append(p.client)
                        if not p.server_eof and len(p.s2c) < BUF_MAX:
                            rd.append(p.server)
                        if p.c2s:
                            wr.append(p.server)
                        if p.s2c:
                            wr.append(p.client)
                r, w, _ = select.select(rd, wr, [], 0.1)
                if self._wake_r in r:
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                if self.listener in r:
                    self._accept()
                for sock, until in list(self._draining):
                    if sock in r:
                        try:
                            data = sock.recv(65536)
                        except OSError:
                            data = b""
                        if not data:
                            self._draining.remove((sock, until))
                            sock.close()
                for p in list(self._pairs):
                    if p not in self._pairs or self.frozen:
                        continue
                    try:
                        self._service(p, r, w)
                    except OSError:
                        self._drop(p)
        except Exception as e:  # noqa: BLE001 - reported to the test through .errors
            self.errors.append(e)
        finally:
            self._close_all()

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.accepted += 1
            if len(self._pairs) >= self.max_conns:
                sock.close()
                continue
            sock.setblocking(False)
            self._pairs.append(_Pair(sock))  # connected onwards by the loop, when not frozen

    def _connect(self, p):
        try:
            p.server = socket.create_connection(self.target, timeout=2.0)
        except OSError:
            return False
        p.server.setblocking(False)
        return True

    def _service(self, p, r, w):
        if p.client in r:
            data = p.client.recv(65536)
            if not data:
                p.client_eof = True
            elif self._on_client_data(p, data):
                return  # the pair was cut, or everything froze
        if p.server in r:
            data = p.server.recv(65536)
            if not data:
                p.server_eof = True
            else:
                p.s2c += data
        if p.server in w and p.c2s:
            n = p.server.send(p.c2s)
            del p.c2s[:n]
        if p.client in w and p.s2c:
            n = p.client.send(p.s2c)
            del p.s2c[:n]
        if p.client_eof and not p.c2s:
            self._shut(p.server)
        if p.server_eof and not p.s2c:
            self._shut(p.client)
        if p.client_eof and p.server_eof and not p.c2s and not p.s2c:
            self._drop(p)

    def _on_client_data(self, p, data):
        """Queues `data` for the server; fires an armed action. True when the pair is gone or frozen."""
        with self._lock:
            armed = self._armed
        pattern = armed[1] if armed else None
        p.c2s += data
        p.txn += data
        del p.txn[:-TXN_MAX]
        window = (p.tail[len(p.tail) - len(pattern) + 1 :] if pattern else b"") + bytes(data)
        p.tail = bytes(data[-64:])
        if pattern is None or pattern not in window:
            return False
        action, _, when = armed
        if when is not None and not when.search(p.txn):
            p.txn.clear()  # another transaction's COMMIT: start over
            return False
        with self._lock:
            if self._armed is not armed:
                return False
            self._armed = None
        p.txn.clear()
        # Forward everything up to and including the triggering chunk, completely, now.
        p.server.settimeout(SEND_TIMEOUT)
        p.server.sendall(bytes(p.c2s))
        p.server.setblocking(False)
        p.c2s.clear()
        if action == "cut":
            p.s2c.clear()
            self._pairs.remove(p)
            p.client.close()
            self._shut(p.server)  # the server reads the chunk, then the end of the stream
            self._draining.append((p.server, time.monotonic() + DRAIN_TIMEOUT))
        else:
            with self._lock:
                self._frozen = True
        self.triggered.set()
        return True

    @staticmethod
    def _shut(sock):
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _drop(self, p):
        if p in self._pairs:
            self._pairs.remove(p)
        for s in (p.client, p.server):
            if s is not None:
                s.close()

    def _close_all(self):
        for p in list(self._pairs):
            self._drop(p)
        for sock, _ in self._draining:
            sock.close()
        self._draining = []
        for s in (self.listener, self._wake_r, self._wake_w):
            try:
                s.close()
            except OSError:
                pass
