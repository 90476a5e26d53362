"""No key left in the server's memory (issue 8, sections 2 and 5), checked on a core dump.

A created key passes through apikeyd's memory once: drawn on the writer thread, rendered into
the 201 answer, sent. A presented key (Authorization) sits in h2o's input buffer, and in the
request's pool for a request with a body. SECURITY.md promises that each is wiped once its
request is over. This test creates keys with names of every length class (1, 50 and 100
characters; ASCII, 2-, 3- and 4-byte UTF-8, and characters that JSON escapes), so that the
answer's buffer would have to grow before, around and after the key; it authenticates with the
account's key on GET and on POST (a body) requests, and over a connection it then keeps idle.
Then it takes a core dump of the running server with `gcore` (Debian `gdb`) and scans it for
every key and for its random part: none may be there. The names themselves (kept by the
catalog) must be found: that shows the dump holds the heap.

Memory is a property of the HTTP layer and of core, not of the store: SQLite only.
"""

import os
import shutil
import subprocess

import pytest

from conftest import Client, sqlite_only

LONG = True  # mostly waiting: scheduled first (conftest.pytest_collection_modifyitems)

GCORE_TIMEOUT = 120.0
BRAND_PART = len("ml_prod_")  # the random part starts here
RANDOM_LEN = 32


def names():
    """(label, name): every length class, from 1 byte to the limit (100 characters, 400 bytes)."""
    return [
        ("ascii x1", "a"),
        ("ascii x50", "a" * 50),
        ("ascii x100", "a" * 100),
        ("2-byte x100 (200 bytes)", "\u00e9" * 100),
        ("escaped x100 (202 bytes of JSON)", '"' * 100),
        ("3-byte x85 (255 bytes)", "\u20ac" * 85),
        ("4-byte x60 + ascii x40 (280 bytes)", "\U0001f600" * 60 + "a" * 40),
        ("3-byte x100 (300 bytes)", "\u20ac" * 100),
        ("4-byte x100 (400 bytes)", "\U0001f600" * 100),
    ]


def core_dump(pid, directory):
    """A core file of the running process `pid` (gcore attaches, dumps, detaches)."""
    gcore = shutil.which("gcore")
    assert gcore is not None, "gcore not found: install Debian's gdb (scripts/deps.sh)"
    prefix = directory / "core"
    p = subprocess.run(
        [gcore, "-o", str(prefix), str(pid)],
        capture_output=True,
        text=True,
        timeout=GCORE_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    path = directory / f"core.{pid}"
    assert p.returncode == 0 and path.exists(), f"gcore failed ({p.returncode}): {p.stderr[-2000:]}"
    return path


def scan(server, directory, keys):
    """Dumps the server's memory; returns (the dump's bytes, what of `keys` ({label: key}) it holds)."""
    core = core_dump(server.proc.pid, directory)
    try:
        data = core.read_bytes()
    finally:
        os.unlink(core)
    found = []
    for label, key in keys.items():
        if key.encode() in data:
            found.append(f"{label}: the whole key")
        elif key[BRAND_PART : BRAND_PART + RANDOM_LEN].encode() in data:
            found.append(f"{label}: its random part")
    return data, found


def asan_build(binary):
    """Whether `binary` is the ASan build (make test's second pass): its core dumps hold the
    sanitizer's shadow and allocator regions, many GB, and its allocator is not the one users run."""
    p = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return "libasan" in p.stdout


@sqlite_only  # the key's path through memory is the HTTP layer's and core's; the store sees only digests
def test_no_key_in_a_core_dump_of_the_server(server, tmp_path, apikeyd_bin):
    if asan_build(apikeyd_bin):
        pytest.skip("the release build's memory is what users run; make test's release pass runs this test")
    client = server.client
    created, found = {}, []
    # One dump after each creation: the next request of the same shape would reuse (and overwrite)
    # the memory a key was left in, so each class is looked at before anything else runs.
    for i, (label, name) in enumerate(names()):
        key_type = ("production", "sandbox")[i % 2]
        key = client.create(name, key_type)["api_key"]
        created[f"name {label}, {key_type}"] = key
        data, hits = scan(server, tmp_path, {f"name {label}, {key_type}": key})
        assert name.encode() in data, f"{label}: the name is not in the dump; is the heap dumped?"
        found += hits
    # The account's key, presented on GETs and POSTs (whose headers h2o copies into the pool),
    # on the kept-alive connection of `client` and on a fresh one; a key used and then deleted.
    assert client.list()
    fresh = Client(server, server.account.key)
    assert fresh.list()
    fresh.session.close()
    spent = client.create("spent", "sandbox")
    Client(server, spent["api_key"]).list()
    client.remove(spent["id"])
    _, hits = scan(server, tmp_path, {**created, "account key (Authorization)": server.account.key, "spent key": spent["api_key"]})
    found += hits
    assert not found, "keys found in the server's memory:\n" + "\n".join(found)
