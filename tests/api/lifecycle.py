"""Helpers shared by the key-lifecycle tests (issue 10: expiry, rotation, leaks, idle keys).

- `ShiftClock`: the test clock, `APIKEYD_TEST_CLOCK_FILE`. The server reads the file (a decimal
  number of seconds added to its clock) at start and ten times a second; a change runs the
  lifecycle sweeps at once. Tests only move it forward, except the one that steps it back.
- RFC 3339 formatting, audit-log reading, operator shortcuts.
"""

import os
import time
from pathlib import Path
from urllib.parse import urlencode

from conftest import ADMIN_ACCOUNTS, ADMIN_AUDIT, COLLECTION, Client, parse_time, walk_pages

VERIFY = "/v1/auth/verify"
DAY = 86400
WEEK = 7 * DAY
DEFAULT_GRACE = 86400
MAX_GRACE = 2592000
TEN_YEARS = 10 * 366 * DAY  # the contract's bound for expires_at
CLOCK_TIMEOUT = 10.0  # the server reads the clock file ten times a second
SWEEP_TIMEOUT = 30.0  # a clock change runs the sweeps at once; generous
LIFECYCLE_FIELDS = ["expires_at", "rotated_from", "rotated_to", "leaked_at"]
# Issue 12's restrictions come last, then issue 13's limits.
KEY_OBJECT = ["id", "name", "key_type", "key_prefix", "is_active", "is_primary", "created_at", "last_used",
              *LIFECYCLE_FIELDS, "scopes", "allowed_ips", "rate_limit", "remaining", "refill"]  # fmt: skip


def rfc3339(t):
    """Seconds since the epoch as the server writes times: `YYYY-MM-DDTHH:MM:SSZ`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def now():
    return int(time.time())


class ShiftClock:
    """The file behind APIKEYD_TEST_CLOCK_FILE; `env` goes to server_factory(env=...)."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = 0
        self.set(0)

    @property
    def env(self):
        return {"APIKEYD_TEST_CLOCK_FILE": str(self.path)}

    def set(self, offset):
        """Writes the offset atomically (the server never reads half a number)."""
        self.offset = int(offset)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"{self.offset}\n")
        os.replace(tmp, self.path)

    def advance(self, seconds):
        self.set(self.offset + seconds)

    def now(self):
        """The server's clock once it has read the file: real time plus the offset."""
        return now() + self.offset


def verify(server, key, **kw):
    """One GET /v1/auth/verify with `key` (a fresh client: no shared connection state)."""
    return Client(server, key).request("GET", VERIFY, **kw)


def key_path(key_id):
    return f"{COLLECTION}{key_id}/"


def rotate_path(key_id):
    return f"{COLLECTION}{key_id}/rotate"


def admin_rotate_path(account_id, key_id):
    return f"{ADMIN_ACCOUNTS}{account_id}/keys/{key_id}/rotate"


def account_path(account_id):
    return f"{ADMIN_ACCOUNTS}{account_id}/"


def create_key(client, name="Key", key_type="sandbox", **fields):
    r = client.post(json={"name": name, "key_type": key_type, **fields})
    assert r.status_code == 201, r.text
    return r.body


def key_by_id(client, key_id):
    return next((k for k in client.list() if k["id"] == key_id), None)


def assert_key_object(obj, shown=False):
    """The key object's members, in the contract's order (with api_key and message after
    key_type when `shown`, as in a 201)."""
    expected = list(KEY_OBJECT)
    if shown:
        expected[3:3] = ["api_key", "message"]
    assert list(obj) == expected, f"key members: {list(obj)}"
    for field in ("created_at",):
        parse_time(obj[field])
    for field in ("last_used", "expires_at", "leaked_at"):
        if obj[field] is not None:
            parse_time(obj[field])


def admin_account(admin, name="Customer", **fields):
    """POST /v1/admin/accounts: (account object, its primary key object with api_key)."""
    r = admin.post(ADMIN_ACCOUNTS, json={"name": name, **fields})
    assert r.status_code == 201, r.text
    return r.body["account"], r.body["api_key"]


def admin_issue(admin, account_id, name="Issued", key_type="production", **fields):
    r = admin.post(f"{ADMIN_ACCOUNTS}{account_id}/keys/", json={"name": name, "key_type": key_type, **fields})
    assert r.status_code == 201, r.text
    return r.body


def admin_get_account(admin, account_id):
    r = admin.get(account_path(account_id))
    assert r.status_code == 200, r.text
    return r.body


def audit_events(admin, **filters):
    """Every event of the operator's audit log matching `filters`, newest first."""
    return walk_pages(admin, ADMIN_AUDIT, "events", limit=1000, **filters)[0]


def events_for_key(admin, key_id, action=None, account_id=None):
    filters = {}
    if action is not None:
        filters["action"] = action
    if account_id is not None:
        filters["account_id"] = account_id
    return [e for e in audit_events(admin, **filters) if e["target"] == {"type": "key", "id": key_id}]


def ch(old, new):
    return {"old": old, "new": new}


def query(path, **params):
    return path + ("?" + urlencode(params) if params else "")
