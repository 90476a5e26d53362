/*
 * sqlite: the embedded store. One connection in WAL mode with
 * synchronous=FULL, serialized by a mutex: writes are short transactions and
 * the hot read path never comes here (it reads the in-memory catalog).
 * Never stores a key, only its HMAC digest.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "store/store.h"

/* Each entry moves the schema one version forward; never edit a released one. */
static const char *const MIGRATIONS[] = {
    /* 1: accounts and keys */
    "CREATE TABLE accounts ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL,"
    "  key_type TEXT NOT NULL CHECK (key_type IN ('production', 'sandbox')),"
    "  key_prefix TEXT NOT NULL,"
    "  digest BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),"
    "  is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),"
    "  is_primary INTEGER NOT NULL CHECK (is_primary IN (0, 1)),"
    "  created_at INTEGER NOT NULL,"
    "  last_used INTEGER,"
    "  CHECK (NOT is_primary OR (is_active AND key_type = 'production')));"
    "CREATE INDEX api_keys_account ON api_keys(account_id);"
    "CREATE UNIQUE INDEX api_keys_one_primary ON api_keys(account_id) WHERE is_primary;",
    /* 2: a key count per account, so that the cap costs one row, not a scan of the account's keys */
    "ALTER TABLE accounts ADD COLUMN key_count INTEGER NOT NULL DEFAULT 0;"
    "UPDATE accounts SET key_count = (SELECT count(*) FROM api_keys WHERE account_id = accounts.id);",
    /* 3: accounts managed over HTTP (external id, suspension, own cap), admin tokens, the audit log */
    "ALTER TABLE accounts ADD COLUMN external_id TEXT;"
    "ALTER TABLE accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended'));"
    "ALTER TABLE accounts ADD COLUMN max_keys INTEGER CHECK (max_keys IS NULL OR max_keys > 0);"
    "CREATE UNIQUE INDEX accounts_external_id ON accounts(external_id);"
    "CREATE INDEX accounts_suspended ON accounts(id) WHERE status = 'suspended';"
    "CREATE TABLE admin_tokens ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  token_prefix TEXT NOT NULL,"
    "  digest BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),"
    "  created_at INTEGER NOT NULL);"
    "CREATE TABLE audit_events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at INTEGER NOT NULL,"
    "  account_id INTEGER,"
    "  actor_type TEXT NOT NULL,"
    "  actor_id INTEGER,"
    "  actor_prefix TEXT,"
    "  action TEXT NOT NULL,"
    "  target_type TEXT NOT NULL,"
    "  target_id INTEGER NOT NULL,"
    "  changes TEXT,"
    "  client_ip TEXT,"
    "  request_id TEXT);"
    "CREATE INDEX audit_events_account ON audit_events(account_id, id);"
    "CREATE INDEX audit_events_action ON audit_events(action, id);"
    "CREATE INDEX audit_events_account_action ON audit_events(account_id, action, id);"
    "CREATE INDEX audit_events_at ON audit_events(at);",
    /*
     * 4: the key lifecycle (expiry, rotation, leak reports), event details,
     * background sweeps. SQLite cannot change a CHECK in place, so api_keys
     * is rebuilt (ids kept, and its AUTOINCREMENT counter: ids are never
     * reused). A primary has no expiry, and is active unless reported leaked.
     */
    "CREATE TABLE api_keys_v4 ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL,"
    "  key_type TEXT NOT NULL CHECK (key_type IN ('production', 'sandbox')),"
    "  key_prefix TEXT NOT NULL,"
    "  digest BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),"
    "  is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),"
    "  is_primary INTEGER NOT NULL CHECK (is_primary IN (0, 1)),"
    "  created_at INTEGER NOT NULL,"
    "  last_used INTEGER,"
    "  expires_at INTEGER,"
    "  rotated_from INTEGER,"
    "  rotated_to INTEGER,"
    "  leaked_at INTEGER,"
    "  activated_at INTEGER,"
    "  expiry_seen INTEGER NOT NULL DEFAULT 0 CHECK (expiry_seen IN (0, 1)),"
    "  CHECK (NOT is_primary OR (key_type = 'production' AND expires_at IS NULL AND (is_active OR leaked_at IS NOT NULL))));"
    "INSERT INTO api_keys_v4 (id, account_id, name, key_type, key_prefix, digest, is_active, is_primary, created_at, last_used)"
    "  SELECT id, account_id, name, key_type, key_prefix, digest, is_active, is_primary, created_at, last_used FROM api_keys;"
    "DELETE FROM sqlite_sequence WHERE name = 'api_keys_v4';"
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'api_keys_v4', seq FROM sqlite_sequence WHERE name = 'api_keys';"
    "DROP TABLE api_keys;"
    "ALTER TABLE api_keys_v4 RENAME TO api_keys;"
    "CREATE INDEX api_keys_account ON api_keys(account_id);"
    "CREATE UNIQUE INDEX api_keys_one_primary ON api_keys(account_id) WHERE is_primary;"
    "ALTER TABLE audit_events ADD COLUMN details TEXT;"
    "CREATE TABLE sweeps (name TEXT PRIMARY KEY, due_at INTEGER NOT NULL);",
    /* 5: an account's events about one key (the dashboard's audit view filtered by key) */
    "CREATE INDEX audit_events_account_target ON audit_events(account_id, target_type, target_id, id);",
    /*
     * 6: restricted keys (scopes and IP allowlists as canonical text; NULL:
     * unrestricted) and usage per key and hour, added to by every instance.
     */
    "ALTER TABLE api_keys ADD COLUMN scopes TEXT;"
    "ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT;"
    "CREATE TABLE key_usage ("
    "  key_id INTEGER NOT NULL,"
    "  hour INTEGER NOT NULL,"
    "  account_id INTEGER NOT NULL,"
    "  sandbox INTEGER NOT NULL CHECK (sandbox IN (0, 1)),"
    "  verified INTEGER NOT NULL DEFAULT 0,"
    "  inactive INTEGER NOT NULL DEFAULT 0,"
    "  expired INTEGER NOT NULL DEFAULT 0,"
    "  suspended INTEGER NOT NULL DEFAULT 0,"
    "  scope INTEGER NOT NULL DEFAULT 0,"
    "  ip INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (key_id, hour)) WITHOUT ROWID;"
    "CREATE INDEX key_usage_account ON key_usage(account_id, hour);"
    "CREATE INDEX key_usage_hour ON key_usage(hour);",
    /*
     * 7: rate limits (requests per fixed window; NULL: none), and the usage
     * counts of refusals by rate limit and by quota.
     */
    "ALTER TABLE api_keys ADD COLUMN rate_limit INTEGER CHECK (rate_limit BETWEEN 1 AND 1000000000);"
    "ALTER TABLE api_keys ADD COLUMN rate_window INTEGER"
    "  CHECK (rate_window BETWEEN 1 AND 86400 AND (rate_limit IS NULL) = (rate_window IS NULL));"
    "ALTER TABLE key_usage ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE key_usage ADD COLUMN quota_exhausted INTEGER NOT NULL DEFAULT 0;",
    /*
     * 8: quotas (issue 13): a balance of credits, shared by the keys of a
     * rotation, with an optional refill per UTC day or month. A quota goes
     * with the last key that has it.
     */
    "CREATE TABLE key_quotas ("
    "  quota_id INTEGER PRIMARY KEY,"
    "  remaining INTEGER NOT NULL CHECK (remaining BETWEEN 0 AND 9007199254740991),"
    "  refill_amount INTEGER CHECK (refill_amount BETWEEN 1 AND 9007199254740991),"
    "  refill_interval TEXT CHECK (refill_interval IN ('day', 'month')),"
    "  refill_period INTEGER NOT NULL DEFAULT 0,"
    "  quota_version INTEGER NOT NULL DEFAULT 1,"
    "  CHECK ((refill_amount IS NULL) = (refill_interval IS NULL)));"
    "ALTER TABLE api_keys ADD COLUMN quota_id INTEGER REFERENCES key_quotas(quota_id);"
    "CREATE INDEX api_keys_quota ON api_keys(quota_id) WHERE quota_id IS NOT NULL;"
    "CREATE TRIGGER key_quotas_unused_delete AFTER DELETE ON api_keys WHEN old.quota_id IS NOT NULL BEGIN"
    "  DELETE FROM key_quotas WHERE quota_id = old.quota_id"
    "    AND NOT EXISTS (SELECT 1 FROM api_keys WHERE quota_id = old.quota_id); END;"
    "CREATE TRIGGER key_quotas_unused_update AFTER UPDATE OF quota_id ON api_keys"
    "  WHEN old.quota_id IS NOT NULL AND old.quota_id IS NOT new.quota_id BEGIN"
    "  DELETE FROM key_quotas WHERE quota_id = old.quota_id"
    "    AND NOT EXISTS (SELECT 1 FROM api_keys WHERE quota_id = old.quota_id); END;",
};

enum {
    ST_ACCOUNT_INSERT,
    ST_KEY_COUNT,
    ST_KEY_UNCOUNT,
    ST_KEY_INSERT,
    ST_KEY_UPDATE,
    ST_KEY_GET,
    ST_KEY_GET_DIGEST,
    ST_KEY_PRIMARY,
    ST_KEY_DELETE,
    ST_KEY_LOAD,
    ST_QUOTA_INSERT,
    ST_QUOTA_UPDATE,
    ST_QUOTA_READ,
    ST_QUOTA_BALANCE,
    ST_LAST_USED,
    ST_DATA_VERSION,
    ST_ACCOUNT_READ,
    ST_ACCOUNT_EXISTS,
    ST_ACCOUNT_FIND,
    ST_ACCOUNT_WRITE,
    ST_ACCOUNT_KEYS_REMOVE,
    ST_ACCOUNT_REMOVE,
    ST_ACCOUNT_LIST,
    ST_SUSPENDED,
    ST_TOKEN_INSERT,
    ST_TOKEN_READ,
    ST_TOKEN_REMOVE,
    ST_TOKEN_LOAD,
    ST_EVENT_INSERT,
    ST_EVENT_PRUNE,
    ST_EVENT_LIST,
    ST_EVENT_LIST_ACCOUNT,
    ST_EVENT_LIST_ACTION,
    ST_EVENT_LIST_BOTH,
    ST_EVENT_LIST_KEY,
    ST_ACCOUNT_LIST_EXTERNAL,
    ST_ACCOUNT_LIST_NAME,
    ST_EXPIRY_SEEN,
    ST_SWEEP_ENSURE,
    ST_SWEEP_CLAIM,
    ST_USAGE_ADD,
    ST_USAGE_PRUNE,
    ST_USAGE_BUCKETS,
    ST_USAGE_BY_KEY,
    ST_USAGE_ACCOUNT_REMOVE,
    ST_COUNT
};

#define ACCOUNT_COLUMNS "id, name, coalesce(external_id, ''), status = 'suspended', coalesce(max_keys, 0), key_count, created_at"
#define EVENT_COLUMNS                                                                                                              \
    "id, at, coalesce(account_id, 0), actor_type, coalesce(actor_id, 0), coalesce(actor_prefix, ''), action, target_type,"         \
    " target_id, changes, coalesce(client_ip, ''), coalesce(request_id, ''), details"
#define KEY_COLUMNS                                                                                                                \
    "id, account_id, name, key_type, key_prefix, digest, is_active, is_primary, created_at, coalesce(last_used, 0),"               \
    " coalesce(expires_at, 0), coalesce(rotated_from, 0), coalesce(rotated_to, 0), coalesce(leaked_at, 0), expiry_seen,"           \
    " coalesce(activated_at, 0), scopes, allowed_ips, coalesce(rate_limit, 0), coalesce(rate_window, 0),"                          \
    " coalesce(quota_id, 0), coalesce(remaining, 0), coalesce(refill_amount, 0), coalesce(refill_interval, ''),"                   \
    " refill_period, quota_version"
/* Where KEY_COLUMNS come from: a key and its quota, if any. */
#define KEY_TABLE "api_keys LEFT JOIN key_quotas USING (quota_id)"
#define QUOTA_COLUMNS "quota_id, remaining, coalesce(refill_amount, 0), coalesce(refill_interval, ''), refill_period, quota_version"
#define USAGE_SUMS                                                                                                                 \
    "sum(verified), sum(inactive), sum(expired), sum(suspended), sum(scope), sum(ip), sum(rate_limited), sum(quota_exhausted)"
/* ?1 account, ?2 key (0: all), ?3 from, ?4 to, ?5 sandbox only */
#define USAGE_WHERE "account_id = ?1 AND (?2 = 0 OR key_id = ?2) AND hour >= ?3 AND hour < ?4 AND (sandbox OR NOT ?5)"

static const char *const SQL[ST_COUNT] = {
    [ST_ACCOUNT_INSERT] = "INSERT INTO accounts (name, created_at, key_count, external_id, status, max_keys)"
                          " VALUES (?1, ?2, 0, ?3, ?4, ?5)",
    [ST_KEY_COUNT] = "UPDATE accounts SET key_count = key_count + 1 WHERE id = ?1 AND key_count < ?3 * coalesce(max_keys, ?2)",
    [ST_ACCOUNT_READ] = "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id = ?1",
    [ST_ACCOUNT_EXISTS] = "SELECT id FROM accounts WHERE id = ?1",
    [ST_ACCOUNT_FIND] = "SELECT id FROM accounts WHERE external_id = ?1",
    [ST_ACCOUNT_WRITE] = "UPDATE accounts SET name = ?2, status = ?3, max_keys = ?4 WHERE id = ?1",
    [ST_ACCOUNT_KEYS_REMOVE] = "DELETE FROM api_keys WHERE account_id = ?1 RETURNING id",
    [ST_ACCOUNT_REMOVE] = "DELETE FROM accounts WHERE id = ?1",
    [ST_ACCOUNT_LIST] = "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id > ?1 ORDER BY id LIMIT ?2",
    [ST_ACCOUNT_LIST_NAME] = "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id > ?1 AND name LIKE ?3 ESCAPE '\\'"
                             " ORDER BY id LIMIT ?2",
    [ST_ACCOUNT_LIST_EXTERNAL] = "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id > ?1 AND external_id = ?3 LIMIT ?2",
    [ST_SUSPENDED] = "SELECT id FROM accounts WHERE status = 'suspended' ORDER BY id",
    [ST_TOKEN_INSERT] = "INSERT INTO admin_tokens (name, token_prefix, digest, created_at) VALUES (?1, ?2, ?3, ?4)",
    [ST_TOKEN_READ] = "SELECT id, name, token_prefix, digest, created_at FROM admin_tokens WHERE id = ?1",
    [ST_TOKEN_REMOVE] = "DELETE FROM admin_tokens WHERE id = ?1",
    [ST_TOKEN_LOAD] = "SELECT id, name, token_prefix, digest, created_at FROM admin_tokens ORDER BY id",
    [ST_EVENT_INSERT] = "INSERT INTO audit_events (at, account_id, actor_type, actor_id, actor_prefix, action, target_type,"
                        " target_id, changes, client_ip, request_id, details)"
                        " VALUES (?1, nullif(?2, 0), ?3, nullif(?4, 0), nullif(?5, ''), ?6, ?7, ?8, ?9, nullif(?10, ''),"
                        " nullif(?11, ''), ?12)",
    [ST_EVENT_PRUNE] = "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < ?1 ORDER BY at LIMIT ?2)",
    /* One statement per filter, so that each walks its own index backwards from the cursor. */
    [ST_EVENT_LIST] = "SELECT " EVENT_COLUMNS " FROM audit_events WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    [ST_EVENT_LIST_ACCOUNT] = "SELECT " EVENT_COLUMNS " FROM audit_events WHERE account_id = ?3 AND id < ?1"
                              " ORDER BY id DESC LIMIT ?2",
    [ST_EVENT_LIST_ACTION] = "SELECT " EVENT_COLUMNS " FROM audit_events WHERE action = ?4 AND id < ?1"
                             " ORDER BY id DESC LIMIT ?2",
    [ST_EVENT_LIST_KEY] = "SELECT " EVENT_COLUMNS " FROM audit_events WHERE account_id = ?3 AND target_type = 'key'"
                          " AND target_id = ?5 AND id < ?1 ORDER BY id DESC LIMIT ?2",
    [ST_EVENT_LIST_BOTH] = "SELECT " EVENT_COLUMNS " FROM audit_events WHERE account_id = ?3 AND action = ?4 AND id < ?1"
                           " ORDER BY id DESC LIMIT ?2",
    [ST_KEY_INSERT] = "INSERT INTO api_keys (account_id, name, key_type, key_prefix, digest, is_active, is_primary, created_at,"
                      " expires_at, rotated_from, rotated_to, leaked_at, scopes, allowed_ips, rate_limit, rate_window, quota_id)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, nullif(?9, 0), nullif(?10, 0), nullif(?11, 0), nullif(?12, 0),"
                      " ?13, ?14, nullif(?15, 0), nullif(?16, 0), nullif(?17, 0))",
    [ST_KEY_GET] = "SELECT " KEY_COLUMNS " FROM " KEY_TABLE " WHERE id = ?1",
    [ST_KEY_GET_DIGEST] = "SELECT " KEY_COLUMNS " FROM " KEY_TABLE " WHERE digest = ?1",
    [ST_KEY_PRIMARY] = "SELECT id FROM api_keys WHERE account_id = ?1 AND is_primary",
    [ST_KEY_UPDATE] = "UPDATE api_keys SET name = ?3, is_active = ?4, is_primary = ?5, expires_at = nullif(?6, 0),"
                      " rotated_to = nullif(?7, 0), leaked_at = nullif(?8, 0), activated_at = nullif(?9, 0),"
                      " expiry_seen = CASE WHEN coalesce(expires_at, 0) = ?6 THEN expiry_seen ELSE 0 END,"
                      " scopes = ?10, allowed_ips = ?11, rate_limit = nullif(?12, 0), rate_window = nullif(?13, 0),"
                      " quota_id = nullif(?14, 0) WHERE id = ?1 AND account_id = ?2",
    [ST_KEY_DELETE] = "DELETE FROM api_keys WHERE id = ?1 AND account_id = ?2",
    [ST_KEY_UNCOUNT] = "UPDATE accounts SET key_count = key_count - 1 WHERE id = ?1",
    [ST_QUOTA_INSERT] = "INSERT INTO key_quotas (remaining, refill_amount, refill_interval, refill_period, quota_version)"
                        " VALUES (?1, nullif(?2, 0), nullif(?3, ''), ?4, 1)",
    [ST_QUOTA_UPDATE] = "UPDATE key_quotas SET remaining = CASE WHEN ?6 THEN ?2 ELSE remaining END,"
                        " refill_amount = nullif(?3, 0), refill_interval = nullif(?4, ''), refill_period = ?5,"
                        " quota_version = quota_version + ?6 WHERE quota_id = ?1 RETURNING quota_version, remaining",
    [ST_QUOTA_READ] = "SELECT " QUOTA_COLUMNS " FROM key_quotas WHERE quota_id = ?1",
    [ST_QUOTA_BALANCE] = "UPDATE key_quotas SET remaining = ?2, refill_period = ?3 WHERE quota_id = ?1",
    [ST_KEY_LOAD] = "SELECT " KEY_COLUMNS " FROM " KEY_TABLE " ORDER BY id",
    [ST_EXPIRY_SEEN] = "UPDATE api_keys SET expiry_seen = 1 WHERE id = ?1 AND expires_at = ?2",
    [ST_SWEEP_ENSURE] = "INSERT INTO sweeps (name, due_at) VALUES (?1, 0) ON CONFLICT DO NOTHING",
    [ST_SWEEP_CLAIM] = "UPDATE sweeps SET due_at = ?2 + ?3 WHERE name = ?1 AND (due_at <= ?2 OR due_at > ?2 + 2 * ?3)",
    [ST_LAST_USED] = "UPDATE api_keys SET last_used = max(coalesce(last_used, 0), ?2) WHERE id = ?1",
    [ST_DATA_VERSION] = "PRAGMA data_version",
    [ST_USAGE_ADD] = "INSERT INTO key_usage (key_id, hour, account_id, sandbox, verified, inactive, expired, suspended, scope, ip,"
                     " rate_limited, quota_exhausted)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (key_id, hour) DO UPDATE SET"
                     " verified = verified + excluded.verified, inactive = inactive + excluded.inactive,"
                     " expired = expired + excluded.expired, suspended = suspended + excluded.suspended,"
                     " scope = scope + excluded.scope, ip = ip + excluded.ip,"
                     " rate_limited = rate_limited + excluded.rate_limited,"
                     " quota_exhausted = quota_exhausted + excluded.quota_exhausted",
    [ST_USAGE_PRUNE] =
        "DELETE FROM key_usage WHERE (key_id, hour) IN (SELECT key_id, hour FROM key_usage WHERE hour < ?1 LIMIT ?2)",
    [ST_USAGE_BUCKETS] = "SELECT hour - hour % ?6 AS b, " USAGE_SUMS " FROM key_usage WHERE " USAGE_WHERE " GROUP BY b ORDER BY b",
    [ST_USAGE_BY_KEY] = "SELECT key_id, " USAGE_SUMS " FROM key_usage WHERE " USAGE_WHERE " GROUP BY key_id ORDER BY key_id",
    [ST_USAGE_ACCOUNT_REMOVE] = "DELETE FROM key_usage WHERE account_id = ?1",
};

struct sqlite_store {
    struct store super;
    pthread_mutex_t lock;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    int64_t data_version;
};

/* Maps an SQLite result code to ours: conditions of the disk are "unavailable", not bugs. */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_NOMEM:
        return AK_ERR_NOMEM;
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
        return AK_ERR_UNAVAILABLE;
    case SQLITE_CONSTRAINT:
        return AK_ERR_COLLISION;
    }
    return AK_ERR_STORE;
}

static int exec(struct sqlite_store *s, const char *sql)
{
    return map_rc(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

static sqlite3_stmt *stmt(struct sqlite_store *s, int which)
{
    sqlite3_stmt *st = s->st[which];

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

/* Runs a statement that returns no rows. */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_DONE ? 0 : map_rc(rc);

    sqlite3_reset(st);
    return r;
}

/* Migrations' own transaction (the store is not shared yet). */
static int begin(struct sqlite_store *s)
{
    return exec(s, "BEGIN IMMEDIATE");
}

static int finish(struct sqlite_store *s, int r)
{
    if (r == 0 && (r = exec(s, "COMMIT")) == 0)
        return 0;
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

/* ---- transactions: one at a time, under `lock`; BEGIN IMMEDIATE takes the database's write lock ---- */

static int sq_begin(struct store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r;

    pthread_mutex_lock(&s->lock);
    if ((r = exec(s, "BEGIN IMMEDIATE")) != 0)
        pthread_mutex_unlock(&s->lock);
    return r;
}

/* A local commit's answer is never lost: it committed or it did not. */
static int sq_commit(struct store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r;

    if ((r = exec(s, "COMMIT")) != 0)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void sq_rollback(struct store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;

    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->lock);
}

/* ---- row primitives ---- */

/* Runs `st` (bound), expecting it to change exactly one row, else `none`. */
static int change_one(struct sqlite_store *s, sqlite3_stmt *st, int none)
{
    int r = step_done(st);

    return r == 0 && sqlite3_changes(s->db) != 1 ? none : r;
}

/* Steps `st` (bound) for one integer: 0 and *ret, or AK_ERR_NOT_FOUND when there is no row. */
static int read_id(sqlite3_stmt *st, int64_t *ret)
{
    int rc = sqlite3_step(st), r;

    if (rc == SQLITE_ROW) {
        *ret = sqlite3_column_int64(st, 0);
        r = 0;
    } else {
        r = rc == SQLITE_DONE ? AK_ERR_NOT_FOUND : map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE;
    }
    sqlite3_reset(st);
    return r;
}

/* Binds `v` as text, or NULL when it is empty. */
static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
    if (v != NULL && v[0] != '\0')
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int sq_account_insert(struct store *base, struct account_rec *rec)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_ACCOUNT_INSERT);
    int r;

    sqlite3_bind_text(st, 1, rec->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, rec->created_at);
    bind_text_or_null(st, 3, rec->external_id);
    sqlite3_bind_text(st, 4, rec->suspended ? "suspended" : "active", -1, SQLITE_STATIC);
    if (rec->max_keys != 0)
        sqlite3_bind_int64(st, 5, rec->max_keys);
    if ((r = step_done(st)) == 0)
        rec->id = sqlite3_last_insert_rowid(s->db);
    return r;
}

/* BEGIN IMMEDIATE holds the whole database's write lock already: only the row's existence is checked. */
static int sq_account_lock(struct store *base, int64_t account_id)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_ACCOUNT_EXISTS);
    int64_t id;

    sqlite3_bind_int64(st, 1, account_id);
    return read_id(st, &id);
}

/* Counts one more key unless the account has `factor` times its cap (its own, or default_max) already. */
static int count_key(struct store *base, int64_t account_id, unsigned default_max, int factor)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_KEY_COUNT);

    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, (int64_t)default_max);
    sqlite3_bind_int(st, 3, factor);
    return change_one(s, st, AK_ERR_LIMIT); /* no row changed: the account is full */
}

static int sq_account_take_key(struct store *base, int64_t account_id, unsigned default_max)
{
    return count_key(base, account_id, default_max, 1);
}

static int sq_account_return_key(struct store *base, int64_t account_id)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_KEY_UNCOUNT);

    sqlite3_bind_int64(st, 1, account_id);
    return step_done(st);
}

/* Binds rec's scopes and allowed_ips at `i` and `i + 1` (NULL: unrestricted). */
static void bind_policy(sqlite3_stmt *st, int i, const struct key_rec *rec)
{
    if (rec->has_scopes)
        sqlite3_bind_text(st, i, rec->scopes, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
    if (rec->has_ips)
        sqlite3_bind_text(st, i + 1, rec->allowed_ips, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i + 1);
}

/* Copies a nullable text column into `out` (`cap` bytes); *ret_has says whether it was not NULL. AK_ERR_STORE if too long. */
static int column_policy(sqlite3_stmt *st, int col, bool *ret_has, char *out, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);

    *ret_has = v != NULL;
    out[0] = '\0';
    if (v == NULL)
        return 0;
    if (len >= cap)
        return AK_ERR_STORE;
    memcpy(out, v, len);
    out[len] = '\0';
    return 0;
}

/*
 * Writes what a request set of rec's quota (rec->quota_dirty): a new quota
 * row, or the new balance and refill of its own (a new balance is a new
 * version, which voids the credits leased before; a new refill alone keeps
 * them), or none (the key keeps no quota; the row goes with its last key,
 * by trigger).
 */
static int save_quota(struct sqlite_store *s, struct key_rec *rec)
{
    const char *iv = refill_interval_name((enum refill_interval)rec->refill_interval);
    sqlite3_stmt *st;
    int r, rc;

    if (!rec->quota_dirty)
        return 0;
    if (!rec->has_quota) {
        rec->quota_id = 0;
        return 0;
    }
    st = stmt(s, rec->quota_id == 0 ? ST_QUOTA_INSERT : ST_QUOTA_UPDATE);
    int i = rec->quota_id == 0 ? 1 : 2;
    if (rec->quota_id != 0)
        sqlite3_bind_int64(st, 1, rec->quota_id);
    sqlite3_bind_int64(st, i, rec->remaining);
    sqlite3_bind_int64(st, i + 1, rec->refill_amount);
    sqlite3_bind_text(st, i + 2, iv != NULL ? iv : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, i + 3, rec->quota_period);
    if (rec->quota_id == 0) {
        if ((r = step_done(st)) == 0) {
            rec->quota_id = sqlite3_last_insert_rowid(s->db);
            rec->quota_version = 1;
        }
        return r;
    }
    sqlite3_bind_int(st, 6, (rec->quota_dirty & KEY_QUOTA_REMAINING) != 0);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        rec->quota_version = sqlite3_column_int64(st, 0);
        rec->remaining = sqlite3_column_int64(st, 1);
        r = 0;
    } else {
        r = rc == SQLITE_DONE ? AK_ERR_STORE : map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE; /* the key holds it: not gone */
    }
    sqlite3_reset(st);
    return r;
}

static int sq_quota_read(struct store *base, int64_t id, struct quota_row *ret)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_QUOTA_READ);
    int rc, r;

    sqlite3_bind_int64(st, 1, id);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        r = store_quota_row(ret, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
                            (const char *)sqlite3_column_text(st, 3), (size_t)sqlite3_column_bytes(st, 3),
                            sqlite3_column_int64(st, 4), sqlite3_column_int64(st, 5))
                ? 0
                : AK_ERR_STORE;
    } else {
        r = rc == SQLITE_DONE ? AK_ERR_NOT_FOUND : map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE;
    }
    sqlite3_reset(st);
    return r;
}

static int sq_quota_balance(struct store *base, const struct quota_row *row)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_QUOTA_BALANCE);

    sqlite3_bind_int64(st, 1, row->id);
    sqlite3_bind_int64(st, 2, row->remaining);
    sqlite3_bind_int64(st, 3, row->period);
    return change_one(s, st, AK_ERR_NOT_FOUND);
}

static int sq_key_insert(struct store *base, struct key_rec *rec)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_KEY_INSERT);
    int r;

    sqlite3_bind_int64(st, 1, rec->account_id);
    sqlite3_bind_text(st, 2, rec->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key_type_name(rec->type), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, rec->prefix, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, rec->digest, DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, rec->active);
    sqlite3_bind_int(st, 7, rec->primary);
    sqlite3_bind_int64(st, 8, rec->created_at);
    sqlite3_bind_int64(st, 9, rec->expires_at);
    sqlite3_bind_int64(st, 10, rec->rotated_from);
    sqlite3_bind_int64(st, 11, rec->rotated_to);
    sqlite3_bind_int64(st, 12, rec->leaked_at);
    bind_policy(st, 13, rec);
    sqlite3_bind_int64(st, 15, rec->rate_limit);
    sqlite3_bind_int(st, 16, rec->rate_window);
    if ((r = save_quota(s, rec)) != 0) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return r;
    }
    sqlite3_bind_int64(st, 17, rec->quota_id);
    if ((r = step_done(st)) == 0) {
        rec->id = sqlite3_last_insert_rowid(s->db);
        rec->version = 0;
    }
    return r;
}

static int row_to_rec(sqlite3_stmt *st, struct key_rec *rec)
{
    const unsigned char *name = sqlite3_column_text(st, 2), *type = sqlite3_column_text(st, 3),
                        *prefix = sqlite3_column_text(st, 4);
    int name_len = sqlite3_column_bytes(st, 2), prefix_len = sqlite3_column_bytes(st, 4);

    if (name == NULL || type == NULL || prefix == NULL || name_len > KEY_NAME_MAX_BYTES || prefix_len > KEYFMT_PREFIX_LEN ||
        sqlite3_column_bytes(st, 5) != DIGEST_LEN ||
        key_type_parse((const char *)type, (size_t)sqlite3_column_bytes(st, 3), &rec->type) != 0)
        return AK_ERR_STORE;
    rec->id = sqlite3_column_int64(st, 0);
    rec->account_id = sqlite3_column_int64(st, 1);
    memcpy(rec->name, name, (size_t)name_len);
    rec->name[name_len] = '\0';
    memcpy(rec->prefix, prefix, (size_t)prefix_len);
    rec->prefix[prefix_len] = '\0';
    memcpy(rec->digest, sqlite3_column_blob(st, 5), DIGEST_LEN);
    rec->active = sqlite3_column_int(st, 6) != 0;
    rec->primary = sqlite3_column_int(st, 7) != 0;
    rec->created_at = sqlite3_column_int64(st, 8);
    rec->last_used = sqlite3_column_int64(st, 9);
    rec->expires_at = sqlite3_column_int64(st, 10);
    rec->rotated_from = sqlite3_column_int64(st, 11);
    rec->rotated_to = sqlite3_column_int64(st, 12);
    rec->leaked_at = sqlite3_column_int64(st, 13);
    rec->expiry_seen = sqlite3_column_int(st, 14) != 0;
    rec->activated_at = sqlite3_column_int64(st, 15);
    rec->version = 0;
    if (column_policy(st, 16, &rec->has_scopes, rec->scopes, sizeof(rec->scopes)) != 0 ||
        column_policy(st, 17, &rec->has_ips, rec->allowed_ips, sizeof(rec->allowed_ips)) != 0)
        return AK_ERR_STORE;
    rec->quota_dirty = 0;
    return key_set_rate(rec, sqlite3_column_int64(st, 18), sqlite3_column_int64(st, 19)) &&
                   key_set_quota(rec, sqlite3_column_int64(st, 20), sqlite3_column_int64(st, 21), sqlite3_column_int64(st, 22),
                                 (const char *)sqlite3_column_text(st, 23), (size_t)sqlite3_column_bytes(st, 23),
                                 sqlite3_column_int64(st, 24), sqlite3_column_int64(st, 25))
               ? 0
               : AK_ERR_STORE;
}

static int sq_key_primary(struct store *base, int64_t account_id, int64_t *ret)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_KEY_PRIMARY);
    int r;

    sqlite3_bind_int64(st, 1, account_id);
    if ((r = read_id(st, ret)) == AK_ERR_NOT_FOUND) {
        *ret = 0;
        r = 0;
    }
    return r;
}

static int sq_key_write(struct store *base, struct key_rec *rec)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_KEY_UPDATE);
    int r;

    sqlite3_bind_int64(st, 1, rec->id);
    sqlite3_bind_int64(st, 2, rec->account_id);
    sqlite3_bind_text(st, 3, rec->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, rec->active);
    sqlite3_bind_int(st, 5, rec->primary);
    sqlite3_bind_int64(st, 6, rec->expires_at);
    sqlite3_bind_int64(st, 7, rec->rotated_to);
    sqlite3_bind_int64(st, 8, rec->leaked_at);
    sqlite3_bind_int64(st, 9, rec->activated_at);
    bind_policy(st, 10, rec);
    sqlite3_bind_int64(st, 12, rec->rate_limit);
    sqlite3_bind_int(st, 13, rec->rate_window);
    if ((r = save_quota(s, rec)) != 0) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return r;
    }
    sqlite3_bind_int64(st, 14, rec->quota_id);
    if ((r = step_done(st)) == 0 && sqlite3_changes(s->db) != 1)
        r = AK_ERR_NOT_FOUND;
    return r;
}

/* Reads the one row `st` (bound) selects. */
static int read_row(sqlite3_stmt *st, struct key_rec *ret)
{
    int rc = sqlite3_step(st), r;

    if (rc == SQLITE_ROW)
        r = row_to_rec(st, ret);
    else if (rc == SQLITE_DONE)
        r = AK_ERR_NOT_FOUND;
    else
        r = map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE;
    sqlite3_reset(st);
    return r;
}

static int sq_key_read(struct store *base, int64_t id, struct key_rec *ret)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_KEY_GET);

    sqlite3_bind_int64(st, 1, id);
    return read_row(st, ret);
}

static int sq_key_read_digest(struct store *base, const uint8_t digest[DIGEST_LEN], struct key_rec *ret)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_KEY_GET_DIGEST);

    sqlite3_bind_blob(st, 1, digest, DIGEST_LEN, SQLITE_STATIC);
    return read_row(st, ret);
}

static int sq_key_remove(struct store *base, int64_t account_id, int64_t id)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_KEY_DELETE);

    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, account_id);
    return change_one(s, st, AK_ERR_NOT_FOUND);
}

/* Runs statement `which` (?1 an id, ?2 a time) for each of `v`. */
static int each_use(struct store *base, int which, const struct key_use *v, size_t n)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r = 0;

    for (size_t i = 0; i < n && r == 0; i++) {
        sqlite3_stmt *st = stmt(s, which);
        sqlite3_bind_int64(st, 1, v[i].id);
        sqlite3_bind_int64(st, 2, v[i].at);
        r = step_done(st);
    }
    return r;
}

static int sq_uses_raise(struct store *base, const struct key_use *v, size_t n)
{
    return each_use(base, ST_LAST_USED, v, n);
}

static int sq_account_add_key(struct store *base, int64_t account_id, unsigned default_max)
{
    return count_key(base, account_id, default_max, 2);
}

static int sq_expiry_seen(struct store *base, const struct key_use *v, size_t n)
{
    return each_use(base, ST_EXPIRY_SEEN, v, n);
}

static int sq_sweep_claim(struct store *base, const char *name, int64_t now, int64_t interval, bool *ret_claimed)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_SWEEP_ENSURE);
    int r;

    *ret_claimed = false;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if ((r = step_done(st)) != 0)
        return r;
    st = stmt(s, ST_SWEEP_CLAIM);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, interval);
    if ((r = step_done(st)) == 0)
        *ret_claimed = sqlite3_changes(s->db) == 1;
    return r;
}

/* Copies text column `col` into `out` (`outsz` bytes); AK_ERR_STORE when it does not fit. NULL reads as "". */
static int column_text(sqlite3_stmt *st, int col, char *out, size_t outsz)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);

    if (n >= outsz)
        return AK_ERR_STORE;
    if (v != NULL)
        memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

static int row_to_account(sqlite3_stmt *st, struct account_rec *rec)
{
    int64_t max = sqlite3_column_int64(st, 4);

    if (column_text(st, 1, rec->name, sizeof(rec->name)) != 0 ||
        column_text(st, 2, rec->external_id, sizeof(rec->external_id)) != 0 || max < 0 || max > UINT32_MAX)
        return AK_ERR_STORE;
    rec->id = sqlite3_column_int64(st, 0);
    rec->suspended = sqlite3_column_int(st, 3) != 0;
    rec->max_keys = (unsigned)max;
    rec->key_count = sqlite3_column_int64(st, 5);
    rec->created_at = sqlite3_column_int64(st, 6);
    return 0;
}

/* Steps `st` (bound) for at most one row, mapped by `map` into `ret`. AK_ERR_NOT_FOUND when there is none. */
static int read_one(sqlite3_stmt *st, int (*map)(sqlite3_stmt *, void *), void *ret)
{
    int rc = sqlite3_step(st), r;

    if (rc == SQLITE_ROW)
        r = map(st, ret);
    else
        r = rc == SQLITE_DONE ? AK_ERR_NOT_FOUND : map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE;
    sqlite3_reset(st);
    return r;
}

/* Steps `st` (bound) through every row, mapped by `map` into `scratch` and handed to `cb`. */
static int read_all(sqlite3_stmt *st, int (*map)(sqlite3_stmt *, void *), void *scratch, int (*cb)(void *, const void *), void *arg)
{
    int rc, r = 0;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((r = map(st, scratch)) != 0 || (r = cb(arg, scratch)) != 0)
            break;
    if (r == 0 && rc != SQLITE_DONE)
        r = map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE;
    sqlite3_reset(st);
    return r;
}

static int map_account(sqlite3_stmt *st, void *ret)
{
    return row_to_account(st, ret);
}

static int sq_account_read(struct store *base, int64_t id, struct account_rec *ret)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_ACCOUNT_READ);

    sqlite3_bind_int64(st, 1, id);
    return read_one(st, map_account, ret);
}

static int sq_account_find_external(struct store *base, const char *external_id, int64_t *ret_id)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_ACCOUNT_FIND);

    sqlite3_bind_text(st, 1, external_id, -1, SQLITE_STATIC);
    return read_id(st, ret_id);
}

static int sq_account_write(struct store *base, const struct account_rec *rec)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_ACCOUNT_WRITE);

    sqlite3_bind_int64(st, 1, rec->id);
    sqlite3_bind_text(st, 2, rec->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, rec->suspended ? "suspended" : "active", -1, SQLITE_STATIC);
    if (rec->max_keys != 0)
        sqlite3_bind_int64(st, 4, rec->max_keys);
    return change_one(s, st, AK_ERR_NOT_FOUND);
}

/* Steps `st` (bound) through its rows' first column: *ret (malloc'd, NULL when none; caller frees), *ret_n. */
static int collect_ids(sqlite3_stmt *st, int64_t **ret, size_t *ret_n)
{
    int64_t *ids = NULL, *nv;
    size_t n = 0, cap = 0;
    int rc, r = 0;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            if ((nv = realloc(ids, cap * sizeof(*ids))) == NULL) {
                r = AK_ERR_NOMEM;
                break;
            }
            ids = nv;
        }
        ids[n++] = sqlite3_column_int64(st, 0);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE;
    sqlite3_reset(st);
    if (r != 0) {
        free(ids);
        return r;
    }
    *ret = ids;
    *ret_n = n;
    return 0;
}

static int sq_account_remove(struct store *base, int64_t id, int64_t **ret_ids, size_t *ret_n)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_ACCOUNT_KEYS_REMOVE);
    int64_t *ids = NULL;
    size_t n = 0;
    int r;

    sqlite3_bind_int64(st, 1, id);
    if ((r = collect_ids(st, &ids, &n)) != 0)
        return r;
    st = stmt(s, ST_USAGE_ACCOUNT_REMOVE);
    sqlite3_bind_int64(st, 1, id);
    if ((r = step_done(st)) != 0) {
        free(ids);
        return r;
    }
    st = stmt(s, ST_ACCOUNT_REMOVE);
    sqlite3_bind_int64(st, 1, id);
    if ((r = change_one(s, st, AK_ERR_NOT_FOUND)) != 0) {
        free(ids);
        return r;
    }
    *ret_ids = ids;
    *ret_n = n;
    return 0;
}

static int map_token(sqlite3_stmt *st, void *arg)
{
    struct token_rec *rec = arg;

    if (column_text(st, 1, rec->name, sizeof(rec->name)) != 0 || column_text(st, 2, rec->prefix, sizeof(rec->prefix)) != 0 ||
        sqlite3_column_bytes(st, 3) != DIGEST_LEN)
        return AK_ERR_STORE;
    rec->id = sqlite3_column_int64(st, 0);
    memcpy(rec->digest, sqlite3_column_blob(st, 3), DIGEST_LEN);
    rec->created_at = sqlite3_column_int64(st, 4);
    return 0;
}

static int sq_token_insert(struct store *base, struct token_rec *rec)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_TOKEN_INSERT);
    int r;

    sqlite3_bind_text(st, 1, rec->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, rec->prefix, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, rec->digest, DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, rec->created_at);
    if ((r = step_done(st)) == 0)
        rec->id = sqlite3_last_insert_rowid(s->db);
    return r;
}

static int sq_token_read(struct store *base, int64_t id, struct token_rec *ret)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_TOKEN_READ);

    sqlite3_bind_int64(st, 1, id);
    return read_one(st, map_token, ret);
}

static int sq_token_remove(struct store *base, int64_t id)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_TOKEN_REMOVE);

    sqlite3_bind_int64(st, 1, id);
    return change_one(s, st, AK_ERR_NOT_FOUND);
}

static int sq_event_append(struct store *base, struct audit_event *ev)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_EVENT_INSERT);
    int r;

    sqlite3_bind_int64(st, 1, ev->at);
    sqlite3_bind_int64(st, 2, ev->account_id);
    sqlite3_bind_text(st, 3, ev->actor_type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, ev->actor_id);
    sqlite3_bind_text(st, 5, ev->actor_prefix, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, ev->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, ev->target_type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, ev->target_id);
    bind_text_or_null(st, 9, ev->changes);
    sqlite3_bind_text(st, 10, ev->client_ip, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, ev->request_id, -1, SQLITE_STATIC);
    bind_text_or_null(st, 12, ev->details);
    if ((r = step_done(st)) == 0)
        ev->id = sqlite3_last_insert_rowid(s->db);
    return r;
}

static int sq_events_prune(struct store *base, int64_t before, unsigned max, int64_t *ret_n)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_EVENT_PRUNE);
    int r;

    sqlite3_bind_int64(st, 1, before);
    sqlite3_bind_int64(st, 2, max);
    if ((r = step_done(st)) == 0)
        *ret_n = sqlite3_changes(s->db);
    return r;
}

static int sq_usage_add(struct store *base, const struct usage_row *rows, size_t n)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r = 0;

    for (size_t i = 0; i < n && r == 0; i++) {
        sqlite3_stmt *st = stmt(s, ST_USAGE_ADD);
        sqlite3_bind_int64(st, 1, rows[i].key_id);
        sqlite3_bind_int64(st, 2, rows[i].hour);
        sqlite3_bind_int64(st, 3, rows[i].account_id);
        sqlite3_bind_int(st, 4, rows[i].sandbox);
        for (int c = 0; c < USAGE_NCOUNTS; c++)
            sqlite3_bind_int64(st, 5 + c, (int64_t)rows[i].n[c]);
        r = step_done(st);
    }
    return r;
}

static int sq_usage_prune(struct store *base, int64_t before, unsigned max, int64_t *ret_n)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st = stmt(s, ST_USAGE_PRUNE);
    int r;

    sqlite3_bind_int64(st, 1, before);
    sqlite3_bind_int64(st, 2, max);
    if ((r = step_done(st)) == 0)
        *ret_n = sqlite3_changes(s->db);
    return r;
}

/* An event row; `changes` points into the statement's row (valid until the next step). */
static int map_event(sqlite3_stmt *st, void *arg)
{
    struct audit_event *ev = arg;

    if (column_text(st, 3, ev->actor_type, sizeof(ev->actor_type)) != 0 ||
        column_text(st, 5, ev->actor_prefix, sizeof(ev->actor_prefix)) != 0 ||
        column_text(st, 6, ev->action, sizeof(ev->action)) != 0 ||
        column_text(st, 7, ev->target_type, sizeof(ev->target_type)) != 0 ||
        column_text(st, 10, ev->client_ip, sizeof(ev->client_ip)) != 0 ||
        column_text(st, 11, ev->request_id, sizeof(ev->request_id)) != 0)
        return AK_ERR_STORE;
    ev->id = sqlite3_column_int64(st, 0);
    ev->at = sqlite3_column_int64(st, 1);
    ev->account_id = sqlite3_column_int64(st, 2);
    ev->actor_id = sqlite3_column_int64(st, 4);
    ev->target_id = sqlite3_column_int64(st, 8);
    ev->changes = (char *)sqlite3_column_text(st, 9);
    ev->details = (char *)sqlite3_column_text(st, 12);
    return 0;
}

/* ---- outside transactions (under `lock`) ---- */

static int sq_suspended_load(struct store *base, int64_t **ret, size_t *ret_n)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r;

    pthread_mutex_lock(&s->lock);
    r = collect_ids(stmt(s, ST_SUSPENDED), ret, ret_n);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int sq_token_load(struct store *base, store_token_cb cb, void *arg)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    struct token_rec rec;
    int r;

    pthread_mutex_lock(&s->lock);
    r = read_all(stmt(s, ST_TOKEN_LOAD), map_token, &rec, (int (*)(void *, const void *))cb, arg);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int sq_usage_sum(struct store *base, const struct usage_query *q, usage_sum_cb cb, void *arg)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    sqlite3_stmt *st;
    int rc, r = 0;

    pthread_mutex_lock(&s->lock);
    st = stmt(s, q->by_key ? ST_USAGE_BY_KEY : ST_USAGE_BUCKETS);
    sqlite3_bind_int64(st, 1, q->account_id);
    sqlite3_bind_int64(st, 2, q->key_id);
    sqlite3_bind_int64(st, 3, q->from);
    sqlite3_bind_int64(st, 4, q->to);
    sqlite3_bind_int(st, 5, q->sandbox_only);
    if (!q->by_key)
        sqlite3_bind_int64(st, 6, q->bucket_s);
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t n[USAGE_NCOUNTS];
        for (int c = 0; c < USAGE_NCOUNTS; c++)
            n[c] = (uint64_t)sqlite3_column_int64(st, 1 + c);
        r = cb(arg, sqlite3_column_int64(st, 0), n);
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE;
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int sq_account_get(struct store *base, int64_t id, struct account_rec *ret)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r;

    pthread_mutex_lock(&s->lock);
    r = sq_account_read(base, id, ret);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int sq_account_list(struct store *base, const struct account_query *q, store_account_cb cb, void *arg)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    struct account_rec *rec = malloc(sizeof(*rec));
    bool by_external = q->external_id != NULL && q->external_id[0] != '\0', by_name = !by_external && q->name_like != NULL;
    sqlite3_stmt *st;
    int r;

    if (rec == NULL)
        return AK_ERR_NOMEM;
    pthread_mutex_lock(&s->lock);
    /* LIKE is case-insensitive for ASCII in SQLite, as ILIKE is in PostgreSQL. */
    st = stmt(s, by_external ? ST_ACCOUNT_LIST_EXTERNAL : by_name ? ST_ACCOUNT_LIST_NAME : ST_ACCOUNT_LIST);
    sqlite3_bind_int64(st, 1, q->after);
    sqlite3_bind_int64(st, 2, q->limit);
    if (by_external || by_name)
        sqlite3_bind_text(st, 3, by_external ? q->external_id : q->name_like, -1, SQLITE_STATIC);
    r = read_all(st, map_account, rec, (int (*)(void *, const void *))cb, arg);
    pthread_mutex_unlock(&s->lock);
    free(rec);
    return r;
}

static int sq_event_list(struct store *base, const struct event_query *q, store_event_cb cb, void *arg)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    struct audit_event *ev = malloc(sizeof(*ev));
    bool by_action = q->action != NULL && q->action[0] != '\0';
    sqlite3_stmt *st;
    int r;

    if (ev == NULL)
        return AK_ERR_NOMEM;
    pthread_mutex_lock(&s->lock);
    st = stmt(s, q->account_id != 0 && q->key_id != 0 ? ST_EVENT_LIST_KEY
                 : q->account_id != 0                 ? (by_action ? ST_EVENT_LIST_BOTH : ST_EVENT_LIST_ACCOUNT)
                                                      : (by_action ? ST_EVENT_LIST_ACTION : ST_EVENT_LIST));
    sqlite3_bind_int64(st, 1, q->before != 0 ? q->before : INT64_MAX);
    sqlite3_bind_int64(st, 2, q->limit);
    if (q->account_id != 0)
        sqlite3_bind_int64(st, 3, q->account_id);
    if (by_action && q->key_id == 0)
        sqlite3_bind_text(st, 4, q->action, -1, SQLITE_STATIC);
    if (q->account_id != 0 && q->key_id != 0)
        sqlite3_bind_int64(st, 5, q->key_id);
    r = read_all(st, map_event, ev, (int (*)(void *, const void *))cb, arg);
    pthread_mutex_unlock(&s->lock);
    free(ev);
    return r;
}

static int sq_key_get(struct store *base, int64_t id, struct key_rec *ret)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int r;

    pthread_mutex_lock(&s->lock);
    r = sq_key_read(base, id, ret);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int sq_key_load(struct store *base, store_key_cb cb, void *arg)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    struct key_rec *rec;
    sqlite3_stmt *st;
    int rc, r = 0;

    if ((rec = malloc(sizeof(*rec))) == NULL)
        return AK_ERR_NOMEM;
    pthread_mutex_lock(&s->lock);
    /* One read transaction, so that the walk sees one consistent snapshot. */
    if ((r = exec(s, "BEGIN")) != 0)
        goto out;
    st = stmt(s, ST_KEY_LOAD);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((r = row_to_rec(st, rec)) != 0 || (r = cb(arg, rec)) != 0)
            break;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE;
    sqlite3_reset(st);
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&s->lock);
    free(rec);
    return r;
}

static int read_data_version(struct sqlite_store *s, int64_t *ret)
{
    sqlite3_stmt *st = stmt(s, ST_DATA_VERSION);
    int rc = sqlite3_step(st), r = 0;

    if (rc == SQLITE_ROW)
        *ret = sqlite3_column_int64(st, 0);
    else
        r = map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE;
    sqlite3_reset(st);
    return r;
}

static int sq_poll_changed(struct store *base, bool *ret_changed)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int64_t v = 0;
    int r;

    pthread_mutex_lock(&s->lock);
    if ((r = read_data_version(s, &v)) == 0) {
        *ret_changed = v != s->data_version;
        s->data_version = v;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void sq_free(struct store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;

    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const struct store_ops SQLITE_OPS = {
    .name = "sqlite",
    .free = sq_free,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .settle = NULL, /* a local commit is never ambiguous */
    .account_insert = sq_account_insert,
    .account_lock = sq_account_lock,
    .account_read = sq_account_read,
    .account_find_external = sq_account_find_external,
    .account_write = sq_account_write,
    .account_remove = sq_account_remove,
    .account_take_key = sq_account_take_key,
    .account_return_key = sq_account_return_key,
    .account_add_key = sq_account_add_key,
    .key_insert = sq_key_insert,
    .key_read = sq_key_read,
    .key_read_digest = sq_key_read_digest,
    .key_primary = sq_key_primary,
    .key_write = sq_key_write,
    .key_remove = sq_key_remove,
    .uses_raise = sq_uses_raise,
    .expiry_seen = sq_expiry_seen,
    .sweep_claim = sq_sweep_claim,
    .token_insert = sq_token_insert,
    .token_read = sq_token_read,
    .token_remove = sq_token_remove,
    .event_append = sq_event_append,
    .events_prune = sq_events_prune,
    .usage_add = sq_usage_add,
    .usage_prune = sq_usage_prune,
    .usage_sum = sq_usage_sum,
    .announce = NULL, /* one instance per file */
    .announce_uses = NULL,
    .key_get = sq_key_get,
    .key_load = sq_key_load,
    .quota_read = sq_quota_read,
    .quota_balance = sq_quota_balance,
    .suspended_load = sq_suspended_load,
    .token_load = sq_token_load,
    .account_get = sq_account_get,
    .account_list = sq_account_list,
    .event_list = sq_event_list,
    .poll_changed = sq_poll_changed,
    .watch = NULL, /* one instance per file: other processes' writes are found by poll_changed */
};

static int schema_version(struct sqlite_store *s, int *ret)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = sqlite3_exec(s->db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", NULL, NULL, NULL)) !=
        SQLITE_OK)
        return map_rc(rc);
    if ((rc = sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st, NULL)) != SQLITE_OK)
        return map_rc(rc);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *ret = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : (map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE);
}

/* Brings the schema to the newest version, one transaction per step. */
static int migrate(struct sqlite_store *s, char *err, size_t errlen)
{
    const int latest = (int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]));
    char sql[64];
    int version = 0, r;

    if ((r = begin(s)) != 0 || (r = schema_version(s, &version)) != 0) {
        finish(s, r != 0 ? r : AK_ERR_STORE);
        snprintf(err, errlen, "cannot read schema version: %s", sqlite3_errmsg(s->db));
        return r != 0 ? r : AK_ERR_STORE;
    }
    if (version > latest) {
        finish(s, AK_ERR_STORE);
        snprintf(err, errlen, "database schema version %d is newer than this apikeyd (%d)", version, latest);
        return AK_ERR_STORE;
    }
    for (; version < latest && r == 0; version++) {
        snprintf(sql, sizeof(sql), "INSERT INTO schema_version (version) VALUES (%d)", version + 1);
        if ((r = exec(s, MIGRATIONS[version])) == 0)
            r = exec(s, sql);
    }
    if (r != 0)
        snprintf(err, errlen, "cannot migrate schema: %s", sqlite3_errmsg(s->db));
    return finish(s, r);
}

int store_sqlite_schema_latest(void)
{
    return (int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]));
}

int store_sqlite_open(const char *path, struct store **ret, char *err, size_t errlen)
{
    struct sqlite_store *s;
    int rc, r = AK_ERR_STORE;

    if ((s = calloc(1, sizeof(*s))) == NULL)
        return AK_ERR_NOMEM;
    s->super.ops = &SQLITE_OPS;
    pthread_mutex_init(&s->lock, NULL);
    rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path, s->db != NULL ? sqlite3_errmsg(s->db) : "out of memory");
        r = map_rc(rc);
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    sqlite3_extended_result_codes(s->db, 0);
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open database %s: %s", path, sqlite3_errmsg(s->db));
        r = AK_ERR_UNAVAILABLE;
        goto fail;
    }
    if ((r = migrate(s, err, errlen)) != 0)
        goto fail;
    for (int i = 0; i < ST_COUNT; i++) {
        if ((rc = sqlite3_prepare_v3(s->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL)) != SQLITE_OK) {
            snprintf(err, errlen, "cannot prepare statement: %s", sqlite3_errmsg(s->db));
            r = map_rc(rc) != 0 ? map_rc(rc) : AK_ERR_STORE;
            goto fail;
        }
    }
    if ((r = read_data_version(s, &s->data_version)) != 0) {
        snprintf(err, errlen, "cannot read database %s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    *ret = &s->super;
    return 0;
fail:
    sq_free(&s->super);
    return r;
}
