/*
 * postgres: the shared store, for several apikeyd instances on one
 * PostgreSQL database.
 *
 * One connection carries the writes (serialized by a mutex; the callers are
 * the writer and maintenance threads, never an event loop). Every write
 * transaction first locks its account's row, so that rules, the key cap and
 * the primary move see and change one consistent state across instances,
 * and announces what it changed with NOTIFY in the same transaction. A
 * second connection, on a thread of its own, LISTENs and reports other
 * instances' changes to the watcher; it reconnects by itself and asks for a
 * full resync after every connection. Never stores a key, only its digest;
 * never logs.
 */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/error.h"
#include "core/timefmt.h"
#include "store/notify.h"
#include "store/store.h"

#define CHANNEL "apikeyd"
#define NOTIFY_MAX 7000 /* bytes of one payload we send; PostgreSQL's limit is 8000 */
#define RECONNECT_MS 200
/*
 * Time bounds, so that a silent network (no FIN, no RST) never holds a
 * thread: a statement that gets no answer for STATEMENT_MS fails and its
 * connection is closed; the watcher sends a heartbeat every HEARTBEAT_MS and
 * declares the link dead when one goes DEAD_MS unanswered. The kernel's
 * keepalive and TCP_USER_TIMEOUT (see connect_db) catch dead peers on
 * connections that are idle or have unacknowledged data.
 */
#define STATEMENT_MS 5000
#define MIGRATION_MS (10 * 60 * 1000)
#define HEARTBEAT_MS 1000
#define DEAD_MS 3000
#define SETTLE_MS 5000      /* how long an ambiguous commit's old backend may take to end */
#define RATE_MS 1000        /* the rate exchange's bound: a store slower than this is as good as away */
#define RATE_PRUNE_EVERY 10 /* beats between two deletes of ended windows */

/* Each entry moves the schema one version forward; never edit a released one. */
static const char *const MIGRATIONS[] = {
    /* 1: accounts and keys */
    "CREATE SEQUENCE apikeyd_version;"
    "CREATE TABLE accounts ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL);"
    "CREATE TABLE api_keys ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  account_id BIGINT NOT NULL REFERENCES accounts(id),"
    "  name TEXT NOT NULL,"
    "  key_type TEXT NOT NULL CHECK (key_type IN ('production', 'sandbox')),"
    "  key_prefix TEXT NOT NULL,"
    "  digest BYTEA NOT NULL UNIQUE CHECK (length(digest) = 32),"
    "  is_active BOOLEAN NOT NULL,"
    "  is_primary BOOLEAN NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  last_used BIGINT,"
    "  version BIGINT NOT NULL DEFAULT nextval('apikeyd_version'),"
    "  CHECK (NOT is_primary OR (is_active AND key_type = 'production')));"
    "CREATE INDEX api_keys_account ON api_keys(account_id);"
    /* exactly one primary per account is enforced by the schema, not only by code */
    "CREATE UNIQUE INDEX api_keys_one_primary ON api_keys(account_id) WHERE is_primary;",
    /* 2: a key count per account, so that the cap costs one row, not a scan of the account's keys */
    "ALTER TABLE accounts ADD COLUMN key_count BIGINT NOT NULL DEFAULT 0;"
    "UPDATE accounts SET key_count = (SELECT count(*) FROM api_keys WHERE account_id = accounts.id);",
    /* 3: accounts managed over HTTP (external id, suspension, own cap), admin tokens, the audit log */
    "ALTER TABLE accounts ADD COLUMN external_id TEXT UNIQUE,"
    "  ADD COLUMN status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),"
    "  ADD COLUMN max_keys BIGINT CHECK (max_keys IS NULL OR max_keys > 0);"
    "CREATE INDEX accounts_suspended ON accounts(id) WHERE status = 'suspended';"
    "CREATE TABLE admin_tokens ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  token_prefix TEXT NOT NULL,"
    "  digest BYTEA NOT NULL UNIQUE CHECK (length(digest) = 32),"
    "  created_at BIGINT NOT NULL);"
    "CREATE TABLE audit_events ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  at BIGINT NOT NULL,"
    "  account_id BIGINT,"
    "  actor_type TEXT NOT NULL,"
    "  actor_id BIGINT,"
    "  actor_prefix TEXT,"
    "  action TEXT NOT NULL,"
    "  target_type TEXT NOT NULL,"
    "  target_id BIGINT NOT NULL,"
    "  changes TEXT,"
    "  client_ip TEXT,"
    "  request_id TEXT);"
    "CREATE INDEX audit_events_account ON audit_events(account_id, id);"
    "CREATE INDEX audit_events_action ON audit_events(action, id);"
    "CREATE INDEX audit_events_account_action ON audit_events(account_id, action, id);"
    "CREATE INDEX audit_events_at ON audit_events(at);",
    /*
     * 4: the key lifecycle (expiry, rotation, leak reports), event details,
     * background sweeps. A primary has no expiry, and is active unless
     * reported leaked: the old unnamed CHECK is replaced by a named one.
     */
    "ALTER TABLE api_keys ADD COLUMN expires_at BIGINT, ADD COLUMN rotated_from BIGINT, ADD COLUMN rotated_to BIGINT,"
    "  ADD COLUMN leaked_at BIGINT, ADD COLUMN activated_at BIGINT, ADD COLUMN expiry_seen BOOLEAN NOT NULL DEFAULT false;"
    "DO $$ DECLARE c text; BEGIN"
    "  FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = 'api_keys'::regclass AND contype = 'c'"
    "    AND pg_get_constraintdef(oid) LIKE '%is_primary%' LOOP"
    "    EXECUTE 'ALTER TABLE api_keys DROP CONSTRAINT ' || quote_ident(c);"
    "  END LOOP;"
    "END $$;"
    "ALTER TABLE api_keys ADD CONSTRAINT api_keys_primary_rule CHECK (NOT is_primary OR"
    "  (key_type = 'production' AND expires_at IS NULL AND (is_active OR leaked_at IS NOT NULL)));"
    "ALTER TABLE audit_events ADD COLUMN details TEXT;"
    "CREATE TABLE sweeps (name TEXT PRIMARY KEY, due_at BIGINT NOT NULL);",
    /* 5: an account's events about one key (the dashboard's audit view filtered by key) */
    "CREATE INDEX audit_events_account_target ON audit_events(account_id, target_type, target_id, id);",
    /*
     * 6: restricted keys (scopes and IP allowlists as canonical text; NULL:
     * unrestricted) and usage per key and hour, added to by every instance.
     */
    "ALTER TABLE api_keys ADD COLUMN scopes TEXT, ADD COLUMN allowed_ips TEXT;"
    "CREATE TABLE key_usage ("
    "  key_id BIGINT NOT NULL,"
    "  hour BIGINT NOT NULL,"
    "  account_id BIGINT NOT NULL,"
    "  sandbox BOOLEAN NOT NULL,"
    "  verified BIGINT NOT NULL DEFAULT 0,"
    "  inactive BIGINT NOT NULL DEFAULT 0,"
    "  expired BIGINT NOT NULL DEFAULT 0,"
    "  suspended BIGINT NOT NULL DEFAULT 0,"
    "  scope BIGINT NOT NULL DEFAULT 0,"
    "  ip BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (key_id, hour));"
    "CREATE INDEX key_usage_account ON key_usage(account_id, hour);"
    "CREATE INDEX key_usage_hour ON key_usage(hour);",
    /*
     * 7: rate limits (requests per fixed window; NULL: none), and the usage
     * counts of refusals by rate limit and by quota.
     */
    "ALTER TABLE api_keys ADD COLUMN rate_limit BIGINT CHECK (rate_limit BETWEEN 1 AND 1000000000),"
    "  ADD COLUMN rate_window INTEGER CHECK (rate_window BETWEEN 1 AND 86400),"
    "  ADD CONSTRAINT api_keys_rate_both CHECK ((rate_limit IS NULL) = (rate_window IS NULL));"
    "ALTER TABLE key_usage ADD COLUMN rate_limited BIGINT NOT NULL DEFAULT 0,"
    "  ADD COLUMN quota_exhausted BIGINT NOT NULL DEFAULT 0;",
    /*
     * 8: shared rate limits (issue 13). Leases of each limited key's windows,
     * and the instances alive. UNLOGGED: counts of windows lasting at most a
     * day, rebuilt by the next leases after a crash; never worth a WAL write.
     */
    "CREATE UNLOGGED TABLE rate_windows ("
    "  key_id BIGINT NOT NULL,"
    "  window_s INTEGER NOT NULL,"
    "  window_start BIGINT NOT NULL,"
    "  ends_at BIGINT NOT NULL,"
    "  lim BIGINT NOT NULL,"
    "  owed BIGINT NOT NULL,"
    "  want BIGINT NOT NULL,"
    "  granted BIGINT NOT NULL,"
    "  last_grant BIGINT NOT NULL,"
    "  PRIMARY KEY (key_id, window_s, window_start));"
    "CREATE INDEX rate_windows_ends ON rate_windows(ends_at);"
    "CREATE UNLOGGED TABLE rate_instances (id BIGINT PRIMARY KEY, seen_at TIMESTAMPTZ NOT NULL);",
    /*
     * 9: quotas (issue 13): a balance of credits, shared by the keys of a
     * rotation, with an optional refill per UTC day or month. A quota goes
     * with the last key that has it.
     */
    "CREATE TABLE key_quotas ("
    "  quota_id BIGSERIAL PRIMARY KEY,"
    "  remaining BIGINT NOT NULL CHECK (remaining BETWEEN 0 AND 9007199254740991),"
    "  refill_amount BIGINT CHECK (refill_amount BETWEEN 1 AND 9007199254740991),"
    "  refill_interval TEXT CHECK (refill_interval IN ('day', 'month')),"
    "  refill_period BIGINT NOT NULL DEFAULT 0,"
    "  quota_version BIGINT NOT NULL DEFAULT 1,"
    "  CHECK ((refill_amount IS NULL) = (refill_interval IS NULL)));"
    "ALTER TABLE api_keys ADD COLUMN quota_id BIGINT REFERENCES key_quotas(quota_id);"
    "CREATE INDEX api_keys_quota ON api_keys(quota_id) WHERE quota_id IS NOT NULL;"
    "CREATE FUNCTION key_quotas_unused() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    "  IF OLD.quota_id IS NOT NULL AND (TG_OP = 'DELETE' OR OLD.quota_id IS DISTINCT FROM NEW.quota_id) THEN"
    "    DELETE FROM key_quotas WHERE quota_id = OLD.quota_id"
    "      AND NOT EXISTS (SELECT 1 FROM api_keys WHERE quota_id = OLD.quota_id);"
    "  END IF; RETURN NULL; END $$;"
    "CREATE TRIGGER key_quotas_unused AFTER DELETE OR UPDATE OF quota_id ON api_keys"
    "  FOR EACH ROW EXECUTE FUNCTION key_quotas_unused();",
};

#define ACCOUNT_COLUMNS "id, name, coalesce(external_id, ''), status = 'suspended', coalesce(max_keys, 0), key_count, created_at"
#define TOKEN_COLUMNS "id, name, token_prefix, encode(digest, 'hex'), created_at"
#define EVENT_COLUMNS                                                                                                              \
    "id, at, coalesce(account_id, 0), actor_type, coalesce(actor_id, 0), coalesce(actor_prefix, ''), action, target_type,"         \
    " target_id, changes, coalesce(client_ip, ''), coalesce(request_id, ''), details"

#define KEY_COLUMNS                                                                                                                \
    "id, account_id, name, key_type, key_prefix, encode(digest, 'hex'), is_active, is_primary, created_at,"                        \
    " coalesce(last_used, 0), version, coalesce(expires_at, 0), coalesce(rotated_from, 0), coalesce(rotated_to, 0),"               \
    " coalesce(leaked_at, 0), expiry_seen, coalesce(activated_at, 0), scopes, allowed_ips, coalesce(rate_limit, 0),"               \
    " coalesce(rate_window, 0), coalesce(quota_id, 0), coalesce(remaining, 0), coalesce(refill_amount, 0),"                        \
    " coalesce(refill_interval, ''), coalesce(refill_period, 0), coalesce(quota_version, 0)"
/* Where KEY_COLUMNS come from: a key and its quota, if any. */
#define KEY_TABLE "api_keys LEFT JOIN key_quotas USING (quota_id)"
#define QUOTA_COLUMNS "quota_id, remaining, coalesce(refill_amount, 0), coalesce(refill_interval, ''), refill_period, quota_version"

struct pg_store {
    struct store super;
    char *uri;
    pthread_mutex_t lock; /* the write connection */
    PGconn *conn;
    int commit_pid;         /* backend of a COMMIT whose answer was lost (under lock) */
    _Atomic int writer_pid; /* backend pid of `conn`, to skip our own notifications */
    /* the rate exchange's connection (rate_lease, rate_beat), so that it never waits behind a write */
    pthread_mutex_t rate_lock;
    PGconn *rate_conn;
    unsigned beats;
    /* the watcher */
    const struct store_watch_ops *watch_ops;
    void *watch_arg;
    pthread_t watch_tid;
    bool watching;
    _Atomic int stop;
};

#define PG(base) ((struct pg_store *)(base))

/* The store never logs: the server's notices (e.g. "relation already exists") are dropped. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/*
 * Our defaults come first, so that the URI can override them. Keepalives
 * probe an idle connection after 5 s, every 2 s, twice; TCP_USER_TIMEOUT
 * drops one whose sent data goes unacknowledged for 10 s. A backend left
 * idle inside a transaction (its apikeyd partitioned away) ends after 15 s,
 * releasing the account locks other instances wait for.
 */
static PGconn *connect_db(const char *uri)
{
    const char *keys[] = {"connect_timeout",  "application_name", "keepalives", "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout", "options",    "dbname",          NULL};
    const char *vals[] = {"3", "apikeyd", "1", "5", "2", "2", "10000", "-c idle_in_transaction_session_timeout=15000", uri, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);

    if (conn != NULL)
        PQsetNoticeProcessor(conn, ignore_notice, NULL);
    return conn;
}

/* Maps a failed result to our codes: a connection or resource problem is "unavailable", not a bug. */
static int map_result(PGconn *conn, const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (PQstatus(conn) != CONNECTION_OK || state == NULL)
        return AK_ERR_UNAVAILABLE;
    if (strcmp(state, "23505") == 0 || strcmp(state, "23514") == 0)
        return AK_ERR_COLLISION; /* unique or check violation */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 || strncmp(state, "57", 2) == 0 ||
        strcmp(state, "25006") == 0 || strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return AK_ERR_UNAVAILABLE; /* connection, resources, shutdown, read-only, conflicts */
    return AK_ERR_STORE;
}

/*
 * Waits until a result of `conn` can be read without blocking, for at most
 * `ms` without any byte arriving. On time-out the socket is shut down, so
 * that libpq sees the connection as broken and it is replaced.
 */
static int wait_result(PGconn *conn, int ms)
{
    while (PQisBusy(conn)) {
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        int n;
        if (pfd.fd < 0)
            return AK_ERR_UNAVAILABLE;
        if ((n = poll(&pfd, 1, ms)) < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            shutdown(pfd.fd, SHUT_RDWR);
            PQconsumeInput(conn);
            return AK_ERR_UNAVAILABLE;
        }
        if (!PQconsumeInput(conn))
            return AK_ERR_UNAVAILABLE;
    }
    return 0;
}

/*
 * Runs a statement, waiting at most `ms` for each answer; on success *ret
 * holds the last result (caller PQclear()s it) if ret is non-NULL.
 */
static int exec_ms(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **ret, int ms)
{
    PGresult *res, *last = NULL;
    int r = 0;

    /* Without parameters, the simple protocol: it also runs a migration's several statements. */
    if (!(n == 0 ? PQsendQuery(conn, sql) : PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0)))
        return map_result(conn, NULL);
    for (;;) {
        if (r == 0 && wait_result(conn, ms) != 0)
            r = AK_ERR_UNAVAILABLE;
        if ((res = PQgetResult(conn)) == NULL)
            break;
        ExecStatusType st = PQresultStatus(res);
        if (r == 0 && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) {
            PQclear(last);
            last = res;
            continue;
        }
        if (r == 0)
            r = map_result(conn, res);
        PQclear(res);
    }
    if (r == 0 && last == NULL)
        r = AK_ERR_STORE;
    if (r == 0 && ret != NULL)
        *ret = last;
    else
        PQclear(last);
    return r;
}

static int exec(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **ret)
{
    return exec_ms(conn, sql, n, params, ret, STATEMENT_MS);
}

/* Makes sure the write connection is up (reconnecting if it dropped). Called with the lock held. */
static int ensure_conn(struct pg_store *s)
{
    if (s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    if (s->conn != NULL)
        PQfinish(s->conn);
    s->conn = connect_db(s->uri);
    if (PQstatus(s->conn) != CONNECTION_OK)
        return AK_ERR_UNAVAILABLE;
    atomic_store(&s->writer_pid, PQbackendPID(s->conn));
    return 0;
}

static int begin(struct pg_store *s)
{
    int r;

    if ((r = ensure_conn(s)) != 0)
        return r;
    return exec(s->conn, "BEGIN", 0, NULL, NULL);
}

/*
 * Commits (r == 0) or rolls back. A COMMIT whose answer is lost with the
 * connection may have committed: that gives AK_ERR_OUTCOME_UNKNOWN, with the
 * backend noted in commit_pid for confirm().
 */
static int finish(struct pg_store *s, int r)
{
    int pid = PQbackendPID(s->conn);

    if (r == 0 && (r = exec(s->conn, "COMMIT", 0, NULL, NULL)) == 0)
        return 0;
    if (PQstatus(s->conn) == CONNECTION_OK) {
        exec(s->conn, "ROLLBACK", 0, NULL, NULL);
        return r;
    }
    if (r == AK_ERR_UNAVAILABLE && pid != 0) {
        s->commit_pid = pid;
        return AK_ERR_OUTCOME_UNKNOWN;
    }
    return r;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void fmt_i64(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%" PRId64, v);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Reads column `col` of `row`, a digest in hex, into `out`. */
static int hex_digest(const PGresult *res, int row, int col, uint8_t out[DIGEST_LEN])
{
    const char *hex = PQgetvalue(res, row, col);

    if (PQgetlength(res, row, col) != DIGEST_LEN * 2)
        return AK_ERR_STORE;
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return AK_ERR_STORE;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* Copies text column `col` of `row` into `out` (`outsz` bytes); AK_ERR_STORE when it does not fit. */
static int copy_text(const PGresult *res, int row, int col, char *out, size_t outsz)
{
    size_t n = (size_t)PQgetlength(res, row, col);

    if (n >= outsz)
        return AK_ERR_STORE;
    memcpy(out, PQgetvalue(res, row, col), n);
    out[n] = '\0';
    return 0;
}

static int64_t get_i64(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* A nullable text column into `out` (`cap` bytes); *ret_has says whether it was not NULL. AK_ERR_STORE if too long. */
static int policy_column(const PGresult *res, int row, int col, bool *ret_has, char *out, size_t cap)
{
    size_t len = (size_t)PQgetlength(res, row, col);

    *ret_has = !PQgetisnull(res, row, col);
    out[0] = '\0';
    if (!*ret_has)
        return 0;
    if (len >= cap)
        return AK_ERR_STORE;
    memcpy(out, PQgetvalue(res, row, col), len + 1);
    return 0;
}

/* Reads one row of KEY_COLUMNS. */
static int row_to_rec(const PGresult *res, int row, struct key_rec *rec)
{
    const char *name = PQgetvalue(res, row, 2), *type = PQgetvalue(res, row, 3), *prefix = PQgetvalue(res, row, 4);
    size_t name_len = (size_t)PQgetlength(res, row, 2), prefix_len = (size_t)PQgetlength(res, row, 4);

    if (name_len > KEY_NAME_MAX_BYTES || prefix_len > KEYFMT_PREFIX_LEN || hex_digest(res, row, 5, rec->digest) != 0 ||
        key_type_parse(type, (size_t)PQgetlength(res, row, 3), &rec->type) != 0)
        return AK_ERR_STORE;
    rec->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    rec->account_id = strtoll(PQgetvalue(res, row, 1), NULL, 10);
    memcpy(rec->name, name, name_len);
    rec->name[name_len] = '\0';
    memcpy(rec->prefix, prefix, prefix_len);
    rec->prefix[prefix_len] = '\0';
    rec->active = PQgetvalue(res, row, 6)[0] == 't';
    rec->primary = PQgetvalue(res, row, 7)[0] == 't';
    rec->created_at = strtoll(PQgetvalue(res, row, 8), NULL, 10);
    rec->last_used = strtoll(PQgetvalue(res, row, 9), NULL, 10);
    rec->version = strtoll(PQgetvalue(res, row, 10), NULL, 10);
    rec->expires_at = strtoll(PQgetvalue(res, row, 11), NULL, 10);
    rec->rotated_from = strtoll(PQgetvalue(res, row, 12), NULL, 10);
    rec->rotated_to = strtoll(PQgetvalue(res, row, 13), NULL, 10);
    rec->leaked_at = strtoll(PQgetvalue(res, row, 14), NULL, 10);
    rec->expiry_seen = PQgetvalue(res, row, 15)[0] == 't';
    rec->activated_at = strtoll(PQgetvalue(res, row, 16), NULL, 10);
    if (policy_column(res, row, 17, &rec->has_scopes, rec->scopes, sizeof(rec->scopes)) != 0 ||
        policy_column(res, row, 18, &rec->has_ips, rec->allowed_ips, sizeof(rec->allowed_ips)) != 0 ||
        !key_set_rate(rec, strtoll(PQgetvalue(res, row, 19), NULL, 10), strtoll(PQgetvalue(res, row, 20), NULL, 10)) ||
        !key_set_quota(rec, strtoll(PQgetvalue(res, row, 21), NULL, 10), strtoll(PQgetvalue(res, row, 22), NULL, 10),
                       strtoll(PQgetvalue(res, row, 23), NULL, 10), PQgetvalue(res, row, 24), (size_t)PQgetlength(res, row, 24),
                       strtoll(PQgetvalue(res, row, 25), NULL, 10), strtoll(PQgetvalue(res, row, 26), NULL, 10)))
        return AK_ERR_STORE;
    rec->quota_dirty = 0;
    return 0;
}

/* Reads one row of QUOTA_COLUMNS. */
static int row_to_quota(const PGresult *res, int row, struct quota_row *ret)
{
    return store_quota_row(ret, strtoll(PQgetvalue(res, row, 0), NULL, 10), strtoll(PQgetvalue(res, row, 1), NULL, 10),
                           strtoll(PQgetvalue(res, row, 2), NULL, 10), PQgetvalue(res, row, 3), (size_t)PQgetlength(res, row, 3),
                           strtoll(PQgetvalue(res, row, 4), NULL, 10), strtoll(PQgetvalue(res, row, 5), NULL, 10))
               ? 0
               : AK_ERR_STORE;
}

/* See save_quota in sqlite.c: what a request set of rec's quota. */
static int save_quota(PGconn *conn, struct key_rec *rec)
{
    const char *iv = refill_interval_name((enum refill_interval)rec->refill_interval);
    char id[24], remaining[24], amount[24], period[24];
    const char *p[] = {remaining, amount, iv != NULL ? iv : "",
                       period,    id,     (rec->quota_dirty & KEY_QUOTA_REMAINING) != 0 ? "t" : "f"};
    PGresult *res;
    int r;

    if (!rec->quota_dirty)
        return 0;
    if (!rec->has_quota) {
        rec->quota_id = 0;
        return 0;
    }
    fmt_i64(id, sizeof(id), rec->quota_id);
    fmt_i64(remaining, sizeof(remaining), rec->remaining);
    fmt_i64(amount, sizeof(amount), rec->refill_amount);
    fmt_i64(period, sizeof(period), rec->quota_period);
    if (rec->quota_id == 0)
        r = exec(conn,
                 "INSERT INTO key_quotas (remaining, refill_amount, refill_interval, refill_period)"
                 " VALUES ($1, nullif($2::bigint, 0), nullif($3, ''), $4) RETURNING quota_id, quota_version, remaining",
                 4, p, &res);
    else
        r = exec(conn,
                 "UPDATE key_quotas SET remaining = CASE WHEN $6::boolean THEN $1::bigint ELSE remaining END,"
                 " refill_amount = nullif($2::bigint, 0), refill_interval = nullif($3, ''), refill_period = $4,"
                 " quota_version = quota_version + CASE WHEN $6::boolean THEN 1 ELSE 0 END WHERE quota_id = $5"
                 " RETURNING quota_id, quota_version, remaining",
                 6, p, &res);
    if (r != 0)
        return r;
    if (PQntuples(res) == 1) {
        rec->quota_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        rec->quota_version = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        rec->remaining = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    } else {
        r = AK_ERR_STORE; /* the key holds it: it cannot be gone */
    }
    PQclear(res);
    return r;
}

/* Locks the account's row for the rest of the transaction. AK_ERR_NOT_FOUND if there is no such account. */
static int pg_account_lock(struct store *base, int64_t account_id)
{
    PGconn *conn = PG(base)->conn;
    char a[24];
    const char *p[] = {a};
    PGresult *res;
    int r;

    fmt_i64(a, sizeof(a), account_id);
    if ((r = exec(conn, "SELECT id FROM accounts WHERE id = $1 FOR UPDATE", 1, p, &res)) != 0)
        return r;
    r = PQntuples(res) == 1 ? 0 : AK_ERR_NOT_FOUND;
    PQclear(res);
    return r;
}

#define DIGEST_PARAM_LEN (2 + DIGEST_LEN * 2 + 1)

/* A digest as a bytea parameter: "\\x" and hex. */
static void digest_param(const uint8_t d[DIGEST_LEN], char out[DIGEST_PARAM_LEN])
{
    static const char HEX[] = "0123456789abcdef";

    out[0] = '\\';
    out[1] = 'x';
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        out[2 + 2 * i] = HEX[d[i] >> 4];
        out[3 + 2 * i] = HEX[d[i] & 15];
    }
    out[DIGEST_PARAM_LEN - 1] = '\0';
}

static int pg_key_insert(struct store *base, struct key_rec *rec)
{
    PGconn *conn = PG(base)->conn;
    char account[24], created[24], digest[DIGEST_PARAM_LEN], expires[24], from[24], to[24], leaked[24], rate[24], window[24],
        quota[24];
    const char *p[] = {account,
                       rec->name,
                       key_type_name(rec->type),
                       rec->prefix,
                       digest,
                       rec->active ? "t" : "f",
                       rec->primary ? "t" : "f",
                       created,
                       expires,
                       from,
                       to,
                       leaked,
                       rec->has_scopes ? rec->scopes : NULL,
                       rec->has_ips ? rec->allowed_ips : NULL,
                       rate,
                       window,
                       quota};
    PGresult *res;
    int r;

    if ((r = save_quota(conn, rec)) != 0)
        return r;
    fmt_i64(quota, sizeof(quota), rec->quota_id);
    fmt_i64(rate, sizeof(rate), rec->rate_limit);
    fmt_i64(window, sizeof(window), rec->rate_window);
    fmt_i64(account, sizeof(account), rec->account_id);
    fmt_i64(created, sizeof(created), rec->created_at);
    fmt_i64(expires, sizeof(expires), rec->expires_at);
    fmt_i64(from, sizeof(from), rec->rotated_from);
    fmt_i64(to, sizeof(to), rec->rotated_to);
    fmt_i64(leaked, sizeof(leaked), rec->leaked_at);
    digest_param(rec->digest, digest);
    if ((r = exec(conn,
                  "INSERT INTO api_keys (account_id, name, key_type, key_prefix, digest, is_active, is_primary, created_at,"
                  " expires_at, rotated_from, rotated_to, leaked_at, scopes, allowed_ips, rate_limit, rate_window, quota_id)"
                  " VALUES ($1, $2, $3, $4, $5::bytea, $6, $7, $8, nullif($9::bigint, 0), nullif($10::bigint, 0),"
                  " nullif($11::bigint, 0), nullif($12::bigint, 0), $13, $14, nullif($15::bigint, 0), nullif($16::integer, 0),"
                  " nullif($17::bigint, 0)) RETURNING id, version",
                  17, p, &res)) != 0)
        return r;
    rec->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    rec->version = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    return 0;
}

/* Reads key `id` (of `account_id` when non-zero). */
static int read_key(PGconn *conn, int64_t id, struct key_rec *ret)
{
    char i[24];
    const char *p[] = {i};
    PGresult *res;
    int r;

    fmt_i64(i, sizeof(i), id);
    if ((r = exec(conn, "SELECT " KEY_COLUMNS " FROM " KEY_TABLE " WHERE id = $1", 1, p, &res)) != 0)
        return r;
    r = PQntuples(res) == 1 ? row_to_rec(res, 0, ret) : AK_ERR_NOT_FOUND;
    PQclear(res);
    return r;
}

static int pg_key_primary(struct store *base, int64_t account_id, int64_t *ret)
{
    PGconn *conn = PG(base)->conn;
    char a[24];
    const char *p[] = {a};
    PGresult *res;
    int r;

    fmt_i64(a, sizeof(a), account_id);
    if ((r = exec(conn, "SELECT id FROM api_keys WHERE account_id = $1 AND is_primary", 1, p, &res)) != 0)
        return r;
    *ret = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return 0;
}

static int pg_key_write(struct store *base, struct key_rec *rec)
{
    PGconn *conn = PG(base)->conn;
    char i[24], a[24], expires[24], to[24], leaked[24], activated[24], rate[24], window[24], quota[24];
    const char *p[] = {i,
                       a,
                       rec->name,
                       rec->active ? "t" : "f",
                       rec->primary ? "t" : "f",
                       expires,
                       to,
                       leaked,
                       activated,
                       rec->has_scopes ? rec->scopes : NULL,
                       rec->has_ips ? rec->allowed_ips : NULL,
                       rate,
                       window,
                       quota};
    PGresult *res;
    int r;

    if ((r = save_quota(conn, rec)) != 0)
        return r;
    fmt_i64(quota, sizeof(quota), rec->quota_id);
    fmt_i64(rate, sizeof(rate), rec->rate_limit);
    fmt_i64(window, sizeof(window), rec->rate_window);
    fmt_i64(i, sizeof(i), rec->id);
    fmt_i64(a, sizeof(a), rec->account_id);
    fmt_i64(expires, sizeof(expires), rec->expires_at);
    fmt_i64(to, sizeof(to), rec->rotated_to);
    fmt_i64(leaked, sizeof(leaked), rec->leaked_at);
    fmt_i64(activated, sizeof(activated), rec->activated_at);
    if ((r = exec(conn,
                  "UPDATE api_keys SET name = $3, is_active = $4, is_primary = $5, expires_at = nullif($6::bigint, 0),"
                  " rotated_to = nullif($7::bigint, 0), leaked_at = nullif($8::bigint, 0), activated_at = nullif($9::bigint, 0),"
                  " expiry_seen = CASE WHEN coalesce(expires_at, 0) = $6::bigint THEN expiry_seen ELSE false END,"
                  " scopes = $10, allowed_ips = $11, rate_limit = nullif($12::bigint, 0), rate_window = nullif($13::integer, 0),"
                  " quota_id = nullif($14::bigint, 0), version = nextval('apikeyd_version') WHERE id = $1 AND account_id = $2"
                  " RETURNING version",
                  14, p, &res)) != 0)
        return r;
    if (PQntuples(res) == 1)
        rec->version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        r = AK_ERR_NOT_FOUND;
    PQclear(res);
    return r;
}

/* ---- transactions: one at a time on the write connection, under `lock` ---- */

static int pg_begin(struct store *base)
{
    struct pg_store *s = PG(base);
    int r;

    pthread_mutex_lock(&s->lock);
    if ((r = begin(s)) != 0)
        pthread_mutex_unlock(&s->lock);
    return r;
}

static int pg_commit(struct store *base)
{
    int r = finish(PG(base), 0);

    pthread_mutex_unlock(&PG(base)->lock);
    return r;
}

static void pg_rollback(struct store *base)
{
    finish(PG(base), AK_ERR_ARG);
    pthread_mutex_unlock(&PG(base)->lock);
}

/*
 * After a lost COMMIT answer: on a new connection, ends the old backend
 * (noted by finish) and waits until it is gone, so that its transaction is
 * settled one way for good. Ending it rolls back a transaction still open;
 * a commit under way completes first. Needs no privilege for our own role.
 */
static int pg_settle(struct store *base)
{
    struct pg_store *s = PG(base);
    char pid[16];
    const char *p[] = {pid};
    PGresult *res;
    int alive = 1;

    pthread_mutex_lock(&s->lock);
    snprintf(pid, sizeof(pid), "%d", s->commit_pid);
    if (ensure_conn(s) == 0) {
        exec(s->conn, "SELECT pg_terminate_backend($1)", 1, p, NULL);
        for (int waited = 0; alive == 1 && waited <= SETTLE_MS; waited += 50) {
            if (exec(s->conn, "SELECT 1 FROM pg_stat_activity WHERE pid = $1", 1, p, &res) != 0) {
                alive = -1;
                break;
            }
            alive = PQntuples(res) > 0;
            PQclear(res);
            if (alive)
                sleep_ms(50);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return alive == 0 ? 0 : AK_ERR_OUTCOME_UNKNOWN;
}

/* ---- row primitives (in a transaction: the lock is held) ---- */

static int pg_account_insert(struct store *base, struct account_rec *rec)
{
    char created[24], max[24];
    const char *p[] = {rec->name, created, rec->external_id[0] != '\0' ? rec->external_id : NULL,
                       rec->suspended ? "suspended" : "active", rec->max_keys != 0 ? max : NULL};
    PGresult *res;
    int r;

    fmt_i64(created, sizeof(created), rec->created_at);
    fmt_i64(max, sizeof(max), rec->max_keys);
    if ((r = exec(PG(base)->conn,
                  "INSERT INTO accounts (name, created_at, key_count, external_id, status, max_keys)"
                  " VALUES ($1, $2, 0, $3, $4, $5) RETURNING id",
                  5, p, &res)) != 0)
        return r;
    rec->id = get_i64(res, 0, 0);
    PQclear(res);
    return 0;
}

/* Runs `sql` with `p`, expecting one row back, else `none`. */
static int returns_one(PGconn *conn, const char *sql, int n, const char *const *p, int none)
{
    PGresult *res;
    int r;

    if ((r = exec(conn, sql, n, p, &res)) != 0)
        return r;
    r = PQntuples(res) == 1 ? 0 : none;
    PQclear(res);
    return r;
}

/* Counts one more key unless the account has `factor` times its cap (its own, or default_max) already. */
static int count_key(struct store *base, int64_t account_id, unsigned default_max, int factor)
{
    char a[24], m[24], f[24];
    const char *p[] = {a, m, f};

    fmt_i64(a, sizeof(a), account_id);
    fmt_i64(m, sizeof(m), (int64_t)default_max);
    fmt_i64(f, sizeof(f), factor);
    /* Locks the account's row: safe against every other instance. */
    return returns_one(PG(base)->conn,
                       "UPDATE accounts SET key_count = key_count + 1 WHERE id = $1 AND key_count < $3 * coalesce(max_keys, $2)"
                       " RETURNING id",
                       3, p, AK_ERR_LIMIT);
}

static int pg_account_take_key(struct store *base, int64_t account_id, unsigned default_max)
{
    return count_key(base, account_id, default_max, 1);
}

/*
 * Writes `n` integers as a PostgreSQL array literal "{a,b,...}" into a
 * malloc'd string: the one at `first`, then every `stride` bytes (a column
 * of an array of structs, or a plain array).
 */
static char *int64_array_literal(const int64_t *first, size_t n, size_t stride)
{
    size_t cap = n * 24 + 4, len = 0;
    char *buf = malloc(cap);

    if (buf == NULL)
        return NULL;
    len += (size_t)snprintf(buf + len, cap - len, "{");
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const char *)first + i * stride, sizeof(v));
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i != 0 ? "," : "", v);
    }
    snprintf(buf + len, cap - len, "}");
    return buf;
}

static int pg_account_add_key(struct store *base, int64_t account_id, unsigned default_max)
{
    return count_key(base, account_id, default_max, 2);
}

static int pg_keys_lock(struct store *base, const int64_t *ids, size_t n)
{
    char *arr = int64_array_literal(ids, n, sizeof(*ids));
    const char *p[] = {arr};
    int r;

    if (arr == NULL)
        return AK_ERR_NOMEM;
    r = exec(PG(base)->conn, "SELECT id FROM api_keys WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", 1, p, NULL);
    free(arr);
    return r;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* Locks the rows of the keys in `v`, in id order. */
static int lock_uses(struct store *base, const struct key_use *v, size_t n)
{
    int64_t *ids = malloc((n != 0 ? n : 1) * sizeof(*ids));
    int r;

    if (ids == NULL)
        return AK_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        ids[i] = v[i].id;
    qsort(ids, n, sizeof(*ids), cmp_id);
    r = pg_keys_lock(base, ids, n);
    free(ids);
    return r;
}

static int pg_expiry_seen(struct store *base, const struct key_use *v, size_t n)
{
    char *ids = n != 0 ? int64_array_literal(&v[0].id, n, sizeof(*v)) : NULL,
         *ats = n != 0 ? int64_array_literal(&v[0].at, n, sizeof(*v)) : NULL;
    const char *p[] = {ids, ats};
    int r = AK_ERR_NOMEM;

    /*
     * Rows locked in id order first (as every multi-row write does), then
     * marked where the expiry seen is still theirs, with a new version: the
     * other instances re-read them (txn.c announces them) and refuse the keys
     * too, whatever their clocks.
     */
    if (ids != NULL && ats != NULL && (r = lock_uses(base, v, n)) == 0)
        r = exec(PG(base)->conn,
                 "UPDATE api_keys k SET expiry_seen = true, version = nextval('apikeyd_version')"
                 " FROM unnest($1::bigint[], $2::bigint[]) AS u(id, at) WHERE k.id = u.id AND k.expires_at = u.at"
                 " AND NOT k.expiry_seen",
                 2, p, NULL);
    free(ids);
    free(ats);
    return r;
}

static int pg_sweep_claim(struct store *base, const char *name, int64_t now, int64_t interval, bool *ret_claimed)
{
    char n[24], i[24];
    const char *p[] = {name, n, i};
    PGresult *res;
    int r;

    *ret_claimed = false;
    fmt_i64(n, sizeof(n), now);
    fmt_i64(i, sizeof(i), interval);
    if ((r = exec(PG(base)->conn, "INSERT INTO sweeps (name, due_at) VALUES ($1, 0) ON CONFLICT DO NOTHING", 1, p, NULL)) != 0)
        return r;
    /*
     * The row lock orders concurrent claims: the second sees the moved due
     * time and claims nothing. A due time implausibly far ahead (a clock
     * that was stepped back) is claimed at once rather than waited for.
     */
    if ((r = exec(PG(base)->conn,
                  "UPDATE sweeps SET due_at = $2::bigint + $3::bigint WHERE name = $1"
                  " AND (due_at <= $2::bigint OR due_at > $2::bigint + 2 * $3::bigint) RETURNING name",
                  3, p, &res)) != 0)
        return r;
    *ret_claimed = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}

static int pg_account_return_key(struct store *base, int64_t account_id)
{
    char a[24];
    const char *p[] = {a};

    fmt_i64(a, sizeof(a), account_id);
    return exec(PG(base)->conn, "UPDATE accounts SET key_count = key_count - 1 WHERE id = $1", 1, p, NULL);
}

static int pg_key_read(struct store *base, int64_t id, struct key_rec *ret)
{
    return read_key(PG(base)->conn, id, ret);
}

static int pg_key_read_digest(struct store *base, const uint8_t digest[DIGEST_LEN], struct key_rec *ret)
{
    char d[DIGEST_PARAM_LEN];
    const char *p[] = {d};
    PGresult *res;
    int r;

    digest_param(digest, d);
    if ((r = exec(PG(base)->conn, "SELECT " KEY_COLUMNS " FROM " KEY_TABLE " WHERE digest = $1::bytea", 1, p, &res)) != 0)
        return r;
    r = PQntuples(res) == 1 ? row_to_rec(res, 0, ret) : AK_ERR_NOT_FOUND;
    PQclear(res);
    return r;
}

static int pg_key_remove(struct store *base, int64_t account_id, int64_t id)
{
    char i[24], a[24];
    const char *p[] = {i, a};

    fmt_i64(i, sizeof(i), id);
    fmt_i64(a, sizeof(a), account_id);
    return returns_one(PG(base)->conn, "DELETE FROM api_keys WHERE id = $1 AND account_id = $2 RETURNING id", 2, p,
                       AK_ERR_NOT_FOUND);
}

static int row_to_account(const PGresult *res, int row, struct account_rec *rec)
{
    int64_t max = get_i64(res, row, 4);

    if (copy_text(res, row, 1, rec->name, sizeof(rec->name)) != 0 ||
        copy_text(res, row, 2, rec->external_id, sizeof(rec->external_id)) != 0 || max < 0 || max > UINT32_MAX)
        return AK_ERR_STORE;
    rec->id = get_i64(res, row, 0);
    rec->suspended = PQgetvalue(res, row, 3)[0] == 't';
    rec->max_keys = (unsigned)max;
    rec->key_count = get_i64(res, row, 5);
    rec->created_at = get_i64(res, row, 6);
    return 0;
}

/* Runs `sql` (one id as $1) for at most one row, read by `map` into `ret`. AK_ERR_NOT_FOUND when there is none. */
static int read_by_id(PGconn *conn, const char *sql, int64_t id, int (*map)(const PGresult *, int, void *), void *ret)
{
    char i[24];
    const char *p[] = {i};
    PGresult *res;
    int r;

    fmt_i64(i, sizeof(i), id);
    if ((r = exec(conn, sql, 1, p, &res)) != 0)
        return r;
    r = PQntuples(res) == 1 ? map(res, 0, ret) : AK_ERR_NOT_FOUND;
    PQclear(res);
    return r;
}

static int map_account(const PGresult *res, int row, void *ret)
{
    return row_to_account(res, row, ret);
}

static int pg_account_read(struct store *base, int64_t id, struct account_rec *ret)
{
    return read_by_id(PG(base)->conn, "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id = $1", id, map_account, ret);
}

static int pg_account_find_external(struct store *base, const char *external_id, int64_t *ret_id)
{
    const char *p[] = {external_id};
    PGresult *res;
    int r;

    if ((r = exec(PG(base)->conn, "SELECT id FROM accounts WHERE external_id = $1", 1, p, &res)) != 0)
        return r;
    if (PQntuples(res) == 1)
        *ret_id = get_i64(res, 0, 0);
    else
        r = AK_ERR_NOT_FOUND;
    PQclear(res);
    return r;
}

static int pg_account_write(struct store *base, const struct account_rec *rec)
{
    char i[24], max[24];
    const char *p[] = {i, rec->name, rec->suspended ? "suspended" : "active", rec->max_keys != 0 ? max : NULL};

    fmt_i64(i, sizeof(i), rec->id);
    fmt_i64(max, sizeof(max), rec->max_keys);
    return returns_one(PG(base)->conn, "UPDATE accounts SET name = $2, status = $3, max_keys = $4 WHERE id = $1 RETURNING id", 4, p,
                       AK_ERR_NOT_FOUND);
}

/* The first column of every row of `res` as ids: *ret malloc'd (NULL when none). */
static int result_ids(const PGresult *res, int64_t **ret, size_t *ret_n)
{
    size_t n = (size_t)PQntuples(res);
    int64_t *ids = n != 0 ? malloc(n * sizeof(*ids)) : NULL;

    if (n != 0 && ids == NULL)
        return AK_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        ids[i] = get_i64(res, (int)i, 0);
    *ret = ids;
    *ret_n = n;
    return 0;
}

static int pg_account_remove(struct store *base, int64_t id, int64_t **ret_ids, size_t *ret_n)
{
    PGconn *conn = PG(base)->conn;
    char i[24];
    const char *p[] = {i};
    PGresult *res;
    int r;

    fmt_i64(i, sizeof(i), id);
    if ((r = exec(conn, "DELETE FROM key_usage WHERE account_id = $1", 1, p, NULL)) != 0 ||
        (r = exec(conn, "DELETE FROM api_keys WHERE account_id = $1 RETURNING id", 1, p, &res)) != 0)
        return r;
    r = result_ids(res, ret_ids, ret_n);
    PQclear(res);
    if (r == 0 && (r = returns_one(conn, "DELETE FROM accounts WHERE id = $1 RETURNING id", 1, p, AK_ERR_NOT_FOUND)) != 0) {
        free(*ret_ids);
        *ret_ids = NULL;
    }
    return r;
}

static int map_token(const PGresult *res, int row, void *arg)
{
    struct token_rec *rec = arg;

    if (copy_text(res, row, 1, rec->name, sizeof(rec->name)) != 0 ||
        copy_text(res, row, 2, rec->prefix, sizeof(rec->prefix)) != 0 || hex_digest(res, row, 3, rec->digest) != 0)
        return AK_ERR_STORE;
    rec->id = get_i64(res, row, 0);
    rec->created_at = get_i64(res, row, 4);
    return 0;
}

static int pg_token_insert(struct store *base, struct token_rec *rec)
{
    char created[24], digest[DIGEST_PARAM_LEN];
    const char *p[] = {rec->name, rec->prefix, digest, created};
    PGresult *res;
    int r;

    fmt_i64(created, sizeof(created), rec->created_at);
    digest_param(rec->digest, digest);
    if ((r = exec(PG(base)->conn,
                  "INSERT INTO admin_tokens (name, token_prefix, digest, created_at) VALUES ($1, $2, $3::bytea, $4) RETURNING id",
                  4, p, &res)) != 0)
        return r;
    rec->id = get_i64(res, 0, 0);
    PQclear(res);
    return 0;
}

static int pg_token_read(struct store *base, int64_t id, struct token_rec *ret)
{
    return read_by_id(PG(base)->conn, "SELECT " TOKEN_COLUMNS " FROM admin_tokens WHERE id = $1", id, map_token, ret);
}

static int pg_token_remove(struct store *base, int64_t id)
{
    char i[24];
    const char *p[] = {i};

    fmt_i64(i, sizeof(i), id);
    return returns_one(PG(base)->conn, "DELETE FROM admin_tokens WHERE id = $1 RETURNING id", 1, p, AK_ERR_NOT_FOUND);
}

static int pg_event_append(struct store *base, struct audit_event *ev)
{
    char at[24], account[24], actor[24], target[24];
    const char *p[] = {at,     account,     ev->actor_type, actor,          ev->actor_prefix, ev->action, ev->target_type,
                       target, ev->changes, ev->client_ip,  ev->request_id, ev->details};
    PGresult *res;
    int r;

    fmt_i64(at, sizeof(at), ev->at);
    fmt_i64(account, sizeof(account), ev->account_id);
    fmt_i64(actor, sizeof(actor), ev->actor_id);
    fmt_i64(target, sizeof(target), ev->target_id);
    if ((r = exec(PG(base)->conn,
                  "INSERT INTO audit_events (at, account_id, actor_type, actor_id, actor_prefix, action, target_type, target_id,"
                  " changes, client_ip, request_id, details) VALUES ($1, nullif($2::bigint, 0), $3, nullif($4::bigint, 0),"
                  " nullif($5, ''), $6, $7, $8, $9, nullif($10, ''), nullif($11, ''), $12) RETURNING id",
                  12, p, &res)) != 0)
        return r;
    ev->id = get_i64(res, 0, 0);
    PQclear(res);
    return 0;
}

/* Runs a batched DELETE (`sql`: $1 the cut-off, $2 the batch size); sets *ret_n to the rows deleted. */
static int prune(struct store *base, const char *sql, int64_t before, unsigned max, int64_t *ret_n)
{
    char b[24], m[24];
    const char *p[] = {b, m};
    PGresult *res;
    int r;

    fmt_i64(b, sizeof(b), before);
    fmt_i64(m, sizeof(m), max);
    if ((r = exec(PG(base)->conn, sql, 2, p, &res)) != 0)
        return r;
    *ret_n = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

static int pg_events_prune(struct store *base, int64_t before, unsigned max, int64_t *ret_n)
{
    return prune(base, "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
                 before, max, ret_n);
}

static int pg_usage_prune(struct store *base, int64_t before, unsigned max, int64_t *ret_n)
{
    return prune(base, "DELETE FROM key_usage WHERE ctid = ANY (ARRAY (SELECT ctid FROM key_usage WHERE hour < $1 LIMIT $2))",
                 before, max, ret_n);
}

/*
 * Adds the rows in one statement. Rows repeating a key and hour (counts kept
 * from a failed flush beside new ones) are summed first, and rows are
 * written in key order, so that two instances never wait on each other in
 * a cycle.
 */
static int pg_usage_add(struct store *base, const struct usage_row *rows, size_t n)
{
    char *cols[4 + USAGE_NCOUNTS] = {NULL};
    int64_t *sandbox = malloc(n * sizeof(*sandbox));
    int r = AK_ERR_NOMEM;

    if (n == 0) {
        free(sandbox);
        return 0;
    }
    if (sandbox == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        sandbox[i] = rows[i].sandbox;
    cols[0] = int64_array_literal(&rows[0].key_id, n, sizeof(*rows));
    cols[1] = int64_array_literal(&rows[0].hour, n, sizeof(*rows));
    cols[2] = int64_array_literal(&rows[0].account_id, n, sizeof(*rows));
    cols[3] = int64_array_literal(sandbox, n, sizeof(*sandbox));
    for (int c = 0; c < USAGE_NCOUNTS; c++)
        cols[4 + c] = int64_array_literal((const int64_t *)(const void *)&rows[0].n[c], n, sizeof(*rows));
    for (int c = 0; c < 4 + USAGE_NCOUNTS; c++)
        if (cols[c] == NULL)
            goto out;
    r = exec(PG(base)->conn,
             "INSERT INTO key_usage (key_id, hour, account_id, sandbox, verified, inactive, expired, suspended, scope, ip,"
             " rate_limited, quota_exhausted)"
             " SELECT k, h, min(a), bool_or(s <> 0), sum(v)::bigint, sum(i)::bigint, sum(e)::bigint, sum(su)::bigint,"
             " sum(sc)::bigint, sum(ip)::bigint, sum(rl)::bigint, sum(qe)::bigint"
             " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],"
             " $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[])"
             " AS u(k, h, a, s, v, i, e, su, sc, ip, rl, qe)"
             " GROUP BY k, h ORDER BY k, h"
             " ON CONFLICT (key_id, hour) DO UPDATE SET verified = key_usage.verified + excluded.verified,"
             " inactive = key_usage.inactive + excluded.inactive, expired = key_usage.expired + excluded.expired,"
             " suspended = key_usage.suspended + excluded.suspended, scope = key_usage.scope + excluded.scope,"
             " ip = key_usage.ip + excluded.ip, rate_limited = key_usage.rate_limited + excluded.rate_limited,"
             " quota_exhausted = key_usage.quota_exhausted + excluded.quota_exhausted",
             4 + USAGE_NCOUNTS, (const char *const *)cols, NULL);
out:
    for (int c = 0; c < 4 + USAGE_NCOUNTS; c++)
        free(cols[c]);
    free(sandbox);
    return r;
}

static int pg_uses_raise(struct store *base, const struct key_use *v, size_t n)
{
    char *ids, *ats;
    const char *p[2];
    int r = AK_ERR_NOMEM;

    if (n == 0)
        return 0;
    p[0] = ids = int64_array_literal(&v[0].id, n, sizeof(*v));
    p[1] = ats = int64_array_literal(&v[0].at, n, sizeof(*v));

    /* A maximum: uses flushed by other instances never move last_used backwards. Rows locked in id order first. */
    if (ids != NULL && ats != NULL && (r = lock_uses(base, v, n)) == 0)
        r = exec(PG(base)->conn,
                 "UPDATE api_keys k SET last_used = GREATEST(coalesce(k.last_used, 0), u.at)"
                 " FROM unnest($1::bigint[], $2::bigint[]) AS u(id, at) WHERE k.id = u.id",
                 2, p, NULL);
    free(ids);
    free(ats);
    return r;
}

static int notify(PGconn *conn, const char *payload)
{
    const char *p[] = {payload};

    return exec(conn, "SELECT pg_notify('" CHANNEL "', $1)", 1, p, NULL);
}

/*
 * "<topic> ID[ ID]...", in payloads within notify.h's bounds, delivered at
 * commit with the transaction's rows. Ids only: a payload is never
 * believed, so it carries no state.
 */
static int pg_announce(struct store *base, enum store_topic topic, const int64_t *ids, size_t n)
{
    char *note = malloc(NOTIFY_MAX + 64);
    int r = 0;

    if (note == NULL)
        return AK_ERR_NOMEM;
    for (size_t i = 0; i < n && r == 0;) {
        size_t k = 0, nl = (size_t)snprintf(note, NOTIFY_MAX + 64, "%c", (char)topic);
        for (; i < n && nl < NOTIFY_MAX && k < NOTIFY_IDS_MAX; i++, k++)
            nl += (size_t)snprintf(note + nl, NOTIFY_MAX + 64 - nl, " %" PRId64, ids[i]);
        r = notify(PG(base)->conn, note);
    }
    free(note);
    return r;
}

/*
 * "u id,id,...", in payloads within notify.h's bounds. The values stay in
 * the table: a payload is never believed, so it does not carry them.
 */
static int pg_announce_uses(struct store *base, const struct key_use *v, size_t n)
{
    char *note = malloc(NOTIFY_MAX + 64);
    int r = 0;

    if (note == NULL)
        return AK_ERR_NOMEM;
    for (size_t i = 0; i < n && r == 0;) {
        size_t k = 0, nl = (size_t)snprintf(note, NOTIFY_MAX + 64, "u ");
        for (; i < n && nl < NOTIFY_MAX && k < NOTIFY_IDS_MAX; i++, k++)
            nl += (size_t)snprintf(note + nl, NOTIFY_MAX + 64 - nl, "%s%" PRId64, k != 0 ? "," : "", v[i].id);
        r = notify(PG(base)->conn, note);
    }
    free(note);
    return r;
}

/* ---- outside transactions ---- */

/* Evaluates `expr` (into r) on the write connection, outside any transaction, under its lock. */
#define WITH_CONN(s, expr)                                                                                                         \
    do {                                                                                                                           \
        pthread_mutex_lock(&(s)->lock);                                                                                            \
        if ((r = ensure_conn(s)) == 0)                                                                                             \
            r = (expr);                                                                                                            \
        pthread_mutex_unlock(&(s)->lock);                                                                                          \
    } while (0)

static int pg_key_get(struct store *base, int64_t id, struct key_rec *ret)
{
    int r;

    WITH_CONN(PG(base), read_key(PG(base)->conn, id, ret));
    return r;
}

/* Streams every key to `cb` in single-row mode, so that a million keys never sit in one result. */
static int load_keys(PGconn *conn, store_key_cb cb, void *arg)
{
    struct key_rec *rec = malloc(sizeof(*rec));
    PGresult *res;
    int r = 0, failed = 0;

    if (rec == NULL)
        return AK_ERR_NOMEM;
    if (!PQsendQueryParams(conn, "SELECT " KEY_COLUMNS " FROM " KEY_TABLE " ORDER BY id", 0, NULL, NULL, NULL, NULL, 0) ||
        !PQsetSingleRowMode(conn)) {
        free(rec);
        return AK_ERR_UNAVAILABLE;
    }
    for (;;) {
        /* A silent server fails the load (within STATEMENT_MS of the last row) instead of holding the thread. */
        if (!failed && wait_result(conn, STATEMENT_MS) != 0) {
            failed = 1;
            r = AK_ERR_UNAVAILABLE;
        }
        if ((res = PQgetResult(conn)) == NULL)
            break;
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_SINGLE_TUPLE && r == 0) {
            if ((r = row_to_rec(res, 0, rec)) == 0)
                r = cb(arg, rec);
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && !failed) {
            failed = 1;
            r = map_result(conn, res);
        }
        PQclear(res); /* drain every result, even after a failure, so the connection stays usable */
    }
    free(rec);
    return r;
}

static int pg_key_load(struct store *base, store_key_cb cb, void *arg)
{
    int r;

    WITH_CONN(PG(base), load_keys(PG(base)->conn, cb, arg));
    return r;
}

static int suspended_ids(PGconn *conn, int64_t **ret, size_t *ret_n)
{
    PGresult *res;
    int r;

    if ((r = exec(conn, "SELECT id FROM accounts WHERE status = 'suspended' ORDER BY id", 0, NULL, &res)) != 0)
        return r;
    r = result_ids(res, ret, ret_n);
    PQclear(res);
    return r;
}

static int pg_suspended_load(struct store *base, int64_t **ret, size_t *ret_n)
{
    int r;

    WITH_CONN(PG(base), suspended_ids(PG(base)->conn, ret, ret_n));
    return r;
}

/* Runs `sql` with `p` and hands each row, read by `map` into `scratch`, to `cb`. */
static int each_row(PGconn *conn, const char *sql, int n, const char *const *p, int (*map)(const PGresult *, int, void *),
                    void *scratch, int (*cb)(void *, const void *), void *arg)
{
    PGresult *res;
    int r;

    if ((r = exec(conn, sql, n, p, &res)) != 0)
        return r;
    for (int row = 0; row < PQntuples(res) && r == 0; row++)
        if ((r = map(res, row, scratch)) == 0)
            r = cb(arg, scratch);
    PQclear(res);
    return r;
}

static int pg_token_load(struct store *base, store_token_cb cb, void *arg)
{
    struct token_rec rec;
    int r;

    WITH_CONN(PG(base), each_row(PG(base)->conn, "SELECT " TOKEN_COLUMNS " FROM admin_tokens ORDER BY id", 0, NULL, map_token, &rec,
                                 (int (*)(void *, const void *))cb, arg));
    return r;
}

static int pg_account_get(struct store *base, int64_t id, struct account_rec *ret)
{
    int r;

    WITH_CONN(PG(base), pg_account_read(base, id, ret));
    return r;
}

static int pg_account_list(struct store *base, const struct account_query *q, store_account_cb cb, void *arg)
{
    struct account_rec *rec = malloc(sizeof(*rec));
    bool by_external = q->external_id != NULL && q->external_id[0] != '\0', by_name = !by_external && q->name_like != NULL;
    char after[24], limit[24];
    const char *p[] = {after, limit, by_external ? q->external_id : q->name_like};
    int r;

    if (rec == NULL)
        return AK_ERR_NOMEM;
    fmt_i64(after, sizeof(after), q->after);
    fmt_i64(limit, sizeof(limit), q->limit);
    WITH_CONN(PG(base), each_row(PG(base)->conn,
                                 by_external ? "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id > $1 AND external_id = $3"
                                               " ORDER BY id LIMIT $2"
                                 : by_name ? "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id > $1 AND name ILIKE $3 ESCAPE '\\'"
                                             " ORDER BY id LIMIT $2"
                                           : "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id > $1 ORDER BY id LIMIT $2",
                                 by_external || by_name ? 3 : 2, p, map_account, rec, (int (*)(void *, const void *))cb, arg));
    free(rec);
    return r;
}

/* An event row; `changes` points into the result (valid during the callback). */
static int map_event(const PGresult *res, int row, void *arg)
{
    struct audit_event *ev = arg;

    if (copy_text(res, row, 3, ev->actor_type, sizeof(ev->actor_type)) != 0 ||
        copy_text(res, row, 5, ev->actor_prefix, sizeof(ev->actor_prefix)) != 0 ||
        copy_text(res, row, 6, ev->action, sizeof(ev->action)) != 0 ||
        copy_text(res, row, 7, ev->target_type, sizeof(ev->target_type)) != 0 ||
        copy_text(res, row, 10, ev->client_ip, sizeof(ev->client_ip)) != 0 ||
        copy_text(res, row, 11, ev->request_id, sizeof(ev->request_id)) != 0)
        return AK_ERR_STORE;
    ev->id = get_i64(res, row, 0);
    ev->at = get_i64(res, row, 1);
    ev->account_id = get_i64(res, row, 2);
    ev->actor_id = get_i64(res, row, 4);
    ev->target_id = get_i64(res, row, 8);
    ev->changes = PQgetisnull(res, row, 9) ? NULL : PQgetvalue(res, row, 9);
    ev->details = PQgetisnull(res, row, 12) ? NULL : PQgetvalue(res, row, 12);
    return 0;
}

static int pg_event_list(struct store *base, const struct event_query *q, store_event_cb cb, void *arg)
{
    struct audit_event *ev = malloc(sizeof(*ev));
    bool by_key = q->account_id != 0 && q->key_id != 0, by_action = !by_key && q->action != NULL && q->action[0] != '\0';
    char before[24], limit[24], account[24], key[24];
    const char *p[] = {before, limit, account, by_action ? q->action : NULL, key};
    int r;

    if (ev == NULL)
        return AK_ERR_NOMEM;
    fmt_i64(before, sizeof(before), q->before != 0 ? q->before : INT64_MAX);
    fmt_i64(limit, sizeof(limit), q->limit);
    fmt_i64(account, sizeof(account), q->account_id);
    fmt_i64(key, sizeof(key), q->key_id);
    /*
     * The filters as constant conditions, so that the planner picks the matching index. A
     * filtered page first takes its ids from the filter's own index (an index-only scan,
     * from the cursor down), then reads those rows: asked for the rows directly, the planner
     * prefers walking the primary key backwards and filtering whenever the value is common
     * (an account or action with a few per cent of the events), reading every newer event
     * of the others on the way (make bench [g], 1,000,000 events: 5,342 rows read and
     * dropped for one page of an account with 2.6 % of them, 3,245 for account.suspended).
     */
#define EVENTS_BY(cond)                                                                                                            \
    "SELECT " EVENT_COLUMNS " FROM audit_events WHERE id = ANY (ARRAY (SELECT id FROM audit_events WHERE " cond                    \
    " AND id < $1 ORDER BY id DESC LIMIT $2)) ORDER BY id DESC"
    WITH_CONN(PG(base), each_row(PG(base)->conn,
                                 by_key ? EVENTS_BY("account_id = $3 AND target_type = 'key' AND target_id = $5::bigint"
                                                    " AND $4::text IS NULL")
                                 : q->account_id != 0
                                     ? (by_action ? EVENTS_BY("account_id = $3 AND action = $4 AND $5::bigint = $5::bigint")
                                                  : EVENTS_BY("account_id = $3 AND $4::text IS NULL AND $5::bigint = $5::bigint"))
                                     : (by_action ? EVENTS_BY("action = $4 AND $3::bigint = 0 AND $5::bigint = $5::bigint")
                                                  : "SELECT " EVENT_COLUMNS " FROM audit_events WHERE id < $1"
                                                    " AND $3::bigint = 0 AND $4::text IS NULL AND $5::bigint = $5::bigint"
                                                    " ORDER BY id DESC LIMIT $2"),
                                 5, p, map_event, ev, (int (*)(void *, const void *))cb, arg));
#undef EVENTS_BY
    free(ev);
    return r;
}

struct usage_scratch {
    int64_t group;
    uint64_t n[USAGE_NCOUNTS];
};

static int map_usage(const PGresult *res, int row, void *arg)
{
    struct usage_scratch *u = arg;

    u->group = get_i64(res, row, 0);
    for (int c = 0; c < USAGE_NCOUNTS; c++)
        u->n[c] = (uint64_t)get_i64(res, row, 1 + c);
    return 0;
}

struct usage_relay {
    usage_sum_cb cb;
    void *arg;
};

static int relay_usage(void *arg, const void *row)
{
    const struct usage_relay *rl = arg;
    const struct usage_scratch *u = row;

    return rl->cb(rl->arg, u->group, u->n);
}

static int pg_usage_sum(struct store *base, const struct usage_query *q, usage_sum_cb cb, void *arg)
{
    char account[24], key[24], from[24], to[24], bucket[24];
    const char *p[] = {account, key, from, to, q->sandbox_only ? "t" : "f", bucket};
    struct usage_relay rl = {cb, arg};
    struct usage_scratch u;
    int r;

    fmt_i64(account, sizeof(account), q->account_id);
    fmt_i64(key, sizeof(key), q->key_id);
    fmt_i64(from, sizeof(from), q->from);
    fmt_i64(to, sizeof(to), q->to);
    fmt_i64(bucket, sizeof(bucket), q->bucket_s);
#define USAGE_SUMS                                                                                                                 \
    "sum(verified)::bigint, sum(inactive)::bigint, sum(expired)::bigint, sum(suspended)::bigint, sum(scope)::bigint,"              \
    " sum(ip)::bigint, sum(rate_limited)::bigint, sum(quota_exhausted)::bigint"
#define USAGE_WHERE                                                                                                                \
    "account_id = $1 AND ($2::bigint = 0 OR key_id = $2) AND hour >= $3 AND hour < $4 AND (sandbox OR NOT $5::boolean)"
    WITH_CONN(PG(base), each_row(PG(base)->conn,
                                 q->by_key ? "SELECT key_id, " USAGE_SUMS " FROM key_usage WHERE " USAGE_WHERE
                                             " AND $6::bigint = $6::bigint GROUP BY key_id ORDER BY key_id"
                                           : "SELECT hour - hour % $6 AS b, " USAGE_SUMS " FROM key_usage WHERE " USAGE_WHERE
                                             " GROUP BY b ORDER BY b",
                                 6, p, map_usage, &u, relay_usage, &rl));
#undef USAGE_SUMS
#undef USAGE_WHERE
    return r;
}

static int pg_poll_changed(struct store *base, bool *ret_changed)
{
    (void)base;
    *ret_changed = false; /* changes arrive through watch */
    return 0;
}

/* ---- the watcher ---- */

/*
 * What the watcher gathers from the notifications it has read and not yet
 * acted on: the ids of keys to re-read, and of keys whose last_used to
 * re-read. The payloads decide nothing else.
 */
struct watch_state {
    struct notify_msg msg; /* parse scratch */
    int64_t keys[NOTIFY_IDS_MAX];
    size_t nkeys;
    int64_t uses[NOTIFY_IDS_MAX];
    size_t nuses;
    bool accounts; /* re-read the suspended accounts */
    bool tokens;   /* reload the admin tokens */
    struct key_rec recs[NOTIFY_IDS_MAX];
    int64_t gone[NOTIFY_IDS_MAX];
    struct key_use usev[NOTIFY_IDS_MAX];
    char list[NOTIFY_IDS_MAX * 21 + 3]; /* "{id,id,...}" */
};

/* Writes `ids` as a PostgreSQL array literal into ws->list. */
static void id_list(struct watch_state *ws, const int64_t *ids, size_t n)
{
    size_t len = 0, cap = sizeof(ws->list);

    len += (size_t)snprintf(ws->list + len, cap - len, "{");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(ws->list + len, cap - len, "%s%" PRId64, i != 0 ? "," : "", ids[i]);
    snprintf(ws->list + len, cap - len, "}");
}

/* Whether `id` is in the ascending `ids`. */
static bool has_id(const int64_t *ids, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo] == id;
}

/*
 * Takes the `*nids` ids gathered in `ids` (folded, and the batch emptied)
 * and runs `sql` over them as $1. On 0, *ret_n is how many there were and,
 * when any, *ret the result (caller PQclear()s it).
 */
static int query_ids(PGconn *conn, struct watch_state *ws, int64_t *ids, size_t *nids, const char *sql, size_t *ret_n,
                     PGresult **ret)
{
    const char *p[] = {ws->list};
    size_t n = notify_ids_unique(ids, *nids);

    *nids = 0;
    *ret_n = n;
    if (n == 0)
        return 0;
    id_list(ws, ids, n);
    return exec(conn, sql, 1, p, ret);
}

/*
 * Re-reads the keys gathered, in one statement (one snapshot, so that the
 * two rows of a primary move are applied together), and reports the rows
 * that exist and the ids that do not. Returns non-zero when the connection
 * failed (the reconnect's resync catches up).
 */
static int flush_keys(struct pg_store *s, PGconn *conn, struct watch_state *ws)
{
    size_t n, nrecs = 0, ngone = 0;
    PGresult *res;
    int r;

    if ((r = query_ids(conn, ws, ws->keys, &ws->nkeys,
                       "SELECT " KEY_COLUMNS " FROM " KEY_TABLE " WHERE id = ANY($1::bigint[]) ORDER BY id", &n, &res)) != 0 ||
        n == 0)
        return r;
    for (int row = 0; row < PQntuples(res) && nrecs < NOTIFY_IDS_MAX; row++)
        if (row_to_rec(res, row, &ws->recs[nrecs]) == 0 && has_id(ws->keys, n, ws->recs[nrecs].id))
            nrecs++;
    PQclear(res);
    /* Both lists ascending: the ids with no row are gone. */
    for (size_t i = 0, j = 0; i < n; i++) {
        while (j < nrecs && ws->recs[j].id < ws->keys[i])
            j++;
        if (j == nrecs || ws->recs[j].id != ws->keys[i])
            ws->gone[ngone++] = ws->keys[i];
    }
    s->watch_ops->changed(s->watch_arg, ws->recs, nrecs, ws->gone, ngone);
    return 0;
}

/* Re-reads last_used of the keys gathered and reports it (the catalog only ever raises it, within clock skew). */
static int flush_uses(struct pg_store *s, PGconn *conn, struct watch_state *ws)
{
    size_t n, m = 0;
    PGresult *res;
    int r;

    if ((r = query_ids(conn, ws, ws->uses, &ws->nuses,
                       "SELECT id, last_used FROM api_keys WHERE id = ANY($1::bigint[]) AND last_used IS NOT NULL", &n, &res)) !=
            0 ||
        n == 0)
        return r;
    for (int row = 0; row < PQntuples(res) && m < NOTIFY_IDS_MAX; row++) {
        ws->usev[m].id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
        ws->usev[m].at = strtoll(PQgetvalue(res, row, 1), NULL, 10);
        m++;
    }
    PQclear(res);
    if (m != 0)
        s->watch_ops->used(s->watch_arg, ws->usev, m);
    return 0;
}

/* Re-reads the suspended accounts and reports the whole set. */
static int flush_accounts(struct pg_store *s, PGconn *conn, struct watch_state *ws)
{
    int64_t *ids = NULL;
    size_t n = 0;
    int r;

    ws->accounts = false;
    if ((r = suspended_ids(conn, &ids, &n)) == 0)
        s->watch_ops->suspended(s->watch_arg, ids, n);
    free(ids);
    return r == AK_ERR_NOMEM ? 0 : r;
}

/*
 * Takes one notification: strangers may send anything on the channel, so a
 * payload that is not exactly one of ours is dropped, and one that is only
 * adds ids to re-read. A batch that would overflow is flushed first, so the
 * ids of one payload are always read together.
 */
static int take_notification(struct pg_store *s, PGconn *conn, struct watch_state *ws, const PGnotify *n)
{
    int r = 0;

    if (n->be_pid == atomic_load(&s->writer_pid))
        return 0; /* our own write: already applied */
    if (notify_parse(n->extra, strnlen(n->extra, NOTIFY_PAYLOAD_MAX + 1), &ws->msg) != 0)
        return 0;
    if (ws->msg.kind == NOTIFY_ACCOUNTS) {
        ws->accounts = true;
    } else if (ws->msg.kind == NOTIFY_TOKENS) {
        ws->tokens = true;
    } else if (ws->msg.kind == NOTIFY_KEYS) {
        if (ws->nkeys + ws->msg.n > NOTIFY_IDS_MAX)
            r = flush_keys(s, conn, ws);
        memcpy(ws->keys + ws->nkeys, ws->msg.ids, ws->msg.n * sizeof(ws->keys[0]));
        ws->nkeys += ws->msg.n;
    } else {
        if (ws->nuses + ws->msg.n > NOTIFY_IDS_MAX)
            r = flush_uses(s, conn, ws);
        memcpy(ws->uses + ws->nuses, ws->msg.ids, ws->msg.n * sizeof(ws->uses[0]));
        ws->nuses += ws->msg.n;
    }
    return r;
}

/*
 * Follows the channel on `conn` until the link fails or the store stops.
 * Every HEARTBEAT_MS a query goes out and must be answered within DEAD_MS,
 * else the link is dead, even one that never closes (a silent partition).
 * Its answer proves that every notification sent before it has arrived;
 * once those are applied, the store is reported as heard.
 */
static void follow(struct pg_store *s, PGconn *conn, struct watch_state *ws)
{
    int64_t last_beat = 0;

    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        bool beat = false;
        PGnotify *n;
        if (pfd.fd < 0 || (poll(&pfd, 1, 100) < 0 && errno != EINTR))
            return;
        if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK)
            return;
        if (timefmt_mono_ms() - last_beat >= HEARTBEAT_MS) {
            if (exec_ms(conn, "SELECT 1", 0, NULL, NULL, DEAD_MS) != 0)
                return;
            last_beat = timefmt_mono_ms();
            beat = true;
        }
        while ((n = PQnotifies(conn)) != NULL) {
            int r = take_notification(s, conn, ws, n);
            PQfreemem(n);
            if (r != 0)
                return;
        }
        if ((ws->nkeys != 0 && flush_keys(s, conn, ws) != 0) || (ws->nuses != 0 && flush_uses(s, conn, ws) != 0) ||
            (ws->accounts && flush_accounts(s, conn, ws) != 0))
            return;
        if (ws->tokens) {
            ws->tokens = false;
            s->watch_ops->tokens(s->watch_arg);
        }
        if (beat)
            s->watch_ops->heard(s->watch_arg);
    }
}

static void *watch_main(void *arg)
{
    struct pg_store *s = arg;
    struct watch_state *ws = calloc(1, sizeof(*ws));
    PGconn *conn = NULL;

    while (ws != NULL && !atomic_load(&s->stop)) {
        conn = connect_db(s->uri);
        if (PQstatus(conn) != CONNECTION_OK || exec(conn, "LISTEN " CHANNEL, 0, NULL, NULL) != 0) {
            PQfinish(conn);
            conn = NULL;
            sleep_ms(RECONNECT_MS);
            continue;
        }
        /*
         * Listening first, then reloading: nothing committed in between is
         * missed. The reload goes through the write connection, which may
         * only now find out that the server it knew is gone: retry until it
         * succeeds (notifications queue up on this connection meanwhile).
         * Whatever was gathered before is covered by the reload.
         */
        ws->nkeys = ws->nuses = 0;
        ws->accounts = ws->tokens = false;
        while (!atomic_load(&s->stop) && s->watch_ops->resync(s->watch_arg) != 0)
            sleep_ms(RECONNECT_MS);
        follow(s, conn, ws);
        PQfinish(conn);
        conn = NULL;
        if (!atomic_load(&s->stop))
            sleep_ms(RECONNECT_MS);
    }
    free(ws);
    return NULL;
}

static int pg_watch(struct store *base, const struct store_watch_ops *ops, void *arg)
{
    struct pg_store *s = (struct pg_store *)base;

    if (s->watching)
        return AK_ERR_ARG;
    s->watch_ops = ops;
    s->watch_arg = arg;
    if (pthread_create(&s->watch_tid, NULL, watch_main, s) != 0)
        return AK_ERR_NOMEM;
    s->watching = true;
    return 0;
}

static void pg_free(struct store *base)
{
    struct pg_store *s = (struct pg_store *)base;

    if (s->watching) {
        atomic_store(&s->stop, 1);
        pthread_join(s->watch_tid, NULL);
    }
    if (s->conn != NULL)
        PQfinish(s->conn);
    if (s->rate_conn != NULL)
        PQfinish(s->rate_conn);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->rate_lock);
    free(s->uri);
    free(s);
}

static int pg_quota_read(struct store *base, int64_t id, struct quota_row *ret)
{
    char i[24];
    const char *p[] = {i};
    PGresult *res;
    int r;

    fmt_i64(i, sizeof(i), id);
    if ((r = exec(PG(base)->conn, "SELECT " QUOTA_COLUMNS " FROM key_quotas WHERE quota_id = $1 FOR UPDATE", 1, p, &res)) != 0)
        return r;
    r = PQntuples(res) == 1 ? row_to_quota(res, 0, ret) : AK_ERR_NOT_FOUND;
    PQclear(res);
    return r;
}

static int pg_quota_balance(struct store *base, const struct quota_row *row)
{
    char i[24], remaining[24], period[24];
    const char *p[] = {i, remaining, period};

    fmt_i64(i, sizeof(i), row->id);
    fmt_i64(remaining, sizeof(remaining), row->remaining);
    fmt_i64(period, sizeof(period), row->period);
    return returns_one(PG(base)->conn,
                       "UPDATE key_quotas SET remaining = $2, refill_period = $3 WHERE quota_id = $1 RETURNING quota_id", 3, p,
                       AK_ERR_NOT_FOUND);
}

/* The rate exchange's connection, up (reconnecting if it dropped); under rate_lock. */
static int rate_conn(struct pg_store *s)
{
    if (s->rate_conn != NULL && PQstatus(s->rate_conn) == CONNECTION_OK)
        return 0;
    if (s->rate_conn != NULL)
        PQfinish(s->rate_conn);
    s->rate_conn = connect_db(s->uri);
    return PQstatus(s->rate_conn) == CONNECTION_OK ? 0 : AK_ERR_UNAVAILABLE;
}

static int cmp_ask(const void *a, const void *b)
{
    const struct rate_ask *x = a, *y = b;

    if (x->key_id != y->key_id)
        return x->key_id < y->key_id ? -1 : 1;
    return x->window_start < y->window_start ? -1 : x->window_start > y->window_start;
}

/*
 * One upsert for every ask. The row of a window holds the slots leased in
 * it; each ask adds what it owes, then takes what it wants as far as the
 * limit allows. The SET expressions all read the row as it was, under its
 * lock, so that last_grant is exactly what this ask got. The asks go in
 * (key, window) order, as every instance sends them: two exchanges never
 * lock the same rows in opposite orders.
 */
static int pg_rate_lease(struct store *base, struct rate_ask *asks, size_t n)
{
    static const char *const SQL =
        "INSERT INTO rate_windows AS r (key_id, window_s, window_start, ends_at, lim, owed, want, granted, last_grant)"
        " SELECT k, ws, st, st + ws, lim, ow, wa, GREATEST(ow, LEAST(lim, ow + wa)), GREATEST(0, LEAST(lim - ow, wa))"
        " FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])"
        "   AS a(k, ws, st, lim, ow, wa) ORDER BY k, st"
        " ON CONFLICT (key_id, window_s, window_start) DO UPDATE SET lim = excluded.lim, owed = excluded.owed,"
        "   want = excluded.want,"
        "   granted = GREATEST(r.granted + excluded.owed, LEAST(excluded.lim, r.granted + excluded.owed + excluded.want)),"
        "   last_grant = GREATEST(0, LEAST(excluded.lim - r.granted - excluded.owed, excluded.want))"
        " RETURNING key_id, window_start, granted, last_grant";
    struct pg_store *s = PG(base);
    char *arr[6] = {NULL};
    const size_t off[6] = {offsetof(struct rate_ask, key_id),       offsetof(struct rate_ask, window_s),
                           offsetof(struct rate_ask, window_start), offsetof(struct rate_ask, limit),
                           offsetof(struct rate_ask, owed),         offsetof(struct rate_ask, want)};
    PGresult *res = NULL;
    int r = 0;

    if (n == 0)
        return 0;
    qsort(asks, n, sizeof(*asks), cmp_ask);
    for (int i = 0; i < 6; i++)
        if ((arr[i] = int64_array_literal((const int64_t *)((const char *)asks + off[i]), n, sizeof(*asks))) == NULL)
            r = AK_ERR_NOMEM;
    pthread_mutex_lock(&s->rate_lock);
    if (r == 0 && (r = rate_conn(s)) == 0 && (r = exec_ms(s->rate_conn, SQL, 6, (const char *const *)arr, &res, RATE_MS)) == 0) {
        for (int i = 0; i < PQntuples(res); i++) {
            struct rate_ask key = {.key_id = get_i64(res, i, 0), .window_start = get_i64(res, i, 1)};
            struct rate_ask *a = bsearch(&key, asks, n, sizeof(*asks), cmp_ask);
            if (a != NULL) {
                a->total = get_i64(res, i, 2);
                a->granted = get_i64(res, i, 3);
            }
        }
        PQclear(res);
    }
    pthread_mutex_unlock(&s->rate_lock);
    for (int i = 0; i < 6; i++)
        free(arr[i]);
    return r;
}

/* The database's clock judges who is alive, so that instances' clocks need not agree. */
static int pg_rate_beat(struct store *base, int64_t instance_id, int64_t now, unsigned *ret_live)
{
    struct pg_store *s = PG(base);
    char id[24], before[24];
    const char *p[] = {id};
    const char *pp[] = {before};
    PGresult *res = NULL;
    int r;

    fmt_i64(id, sizeof(id), instance_id);
    fmt_i64(before, sizeof(before), now - 3600);
    pthread_mutex_lock(&s->rate_lock);
    if ((r = rate_conn(s)) == 0 &&
        (r = exec_ms(s->rate_conn,
                     "WITH beat AS (INSERT INTO rate_instances (id, seen_at) VALUES ($1::bigint, now())"
                     "  ON CONFLICT (id) DO UPDATE SET seen_at = now())"
                     " SELECT 1 + count(*) FROM rate_instances WHERE id <> $1::bigint AND seen_at > now() - interval '3 seconds'",
                     1, p, &res, RATE_MS)) == 0) {
        int64_t live = get_i64(res, 0, 0);
        *ret_live = live < 1 ? 1 : live > 65535 ? 65535 : (unsigned)live;
        PQclear(res);
        if (++s->beats % RATE_PRUNE_EVERY == 0) /* failures: the next prune retries */
            exec_ms(s->rate_conn,
                    "WITH w AS (DELETE FROM rate_windows WHERE ends_at < $1::bigint)"
                    " DELETE FROM rate_instances WHERE seen_at < now() - interval '1 hour'",
                    1, pp, NULL, RATE_MS);
    }
    pthread_mutex_unlock(&s->rate_lock);
    return r;
}

static int pg_rate_leave(struct store *base, int64_t instance_id)
{
    struct pg_store *s = PG(base);
    char id[24];
    const char *p[] = {id};
    int r;

    fmt_i64(id, sizeof(id), instance_id);
    pthread_mutex_lock(&s->rate_lock);
    if ((r = rate_conn(s)) == 0)
        r = exec_ms(s->rate_conn, "DELETE FROM rate_instances WHERE id = $1::bigint", 1, p, NULL, RATE_MS);
    pthread_mutex_unlock(&s->rate_lock);
    return r;
}

static const struct store_ops POSTGRES_OPS = {
    .name = "postgresql",
    .free = pg_free,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .settle = pg_settle,
    .account_insert = pg_account_insert,
    .account_lock = pg_account_lock,
    .account_read = pg_account_read,
    .account_find_external = pg_account_find_external,
    .account_write = pg_account_write,
    .account_remove = pg_account_remove,
    .account_take_key = pg_account_take_key,
    .account_return_key = pg_account_return_key,
    .account_add_key = pg_account_add_key,
    .expiry_seen = pg_expiry_seen,
    .keys_lock = pg_keys_lock,
    .sweep_claim = pg_sweep_claim,
    .key_insert = pg_key_insert,
    .key_read = pg_key_read,
    .key_read_digest = pg_key_read_digest,
    .key_primary = pg_key_primary,
    .key_write = pg_key_write,
    .key_remove = pg_key_remove,
    .uses_raise = pg_uses_raise,
    .token_insert = pg_token_insert,
    .token_read = pg_token_read,
    .token_remove = pg_token_remove,
    .event_append = pg_event_append,
    .usage_add = pg_usage_add,
    .usage_prune = pg_usage_prune,
    .usage_sum = pg_usage_sum,
    .events_prune = pg_events_prune,
    .announce = pg_announce,
    .announce_uses = pg_announce_uses,
    .key_get = pg_key_get,
    .key_load = pg_key_load,
    .suspended_load = pg_suspended_load,
    .token_load = pg_token_load,
    .account_get = pg_account_get,
    .account_list = pg_account_list,
    .event_list = pg_event_list,
    .poll_changed = pg_poll_changed,
    .quota_read = pg_quota_read,
    .quota_balance = pg_quota_balance,
    .rate_lease = pg_rate_lease,
    .rate_beat = pg_rate_beat,
    .rate_leave = pg_rate_leave,
    .watch = pg_watch,
};

/* Brings the schema to the newest version; an advisory lock keeps instances starting together from racing. */
static int migrate(struct pg_store *s, char *err, size_t errlen)
{
    const int latest = (int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]));
    char sql[80];
    PGresult *res = NULL;
    int version = 0, r;

    if ((r = begin(s)) != 0 || (r = exec(s->conn, "SELECT pg_advisory_xact_lock(7370616269)", 0, NULL, NULL)) != 0 ||
        (r = exec(s->conn, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", 0, NULL, NULL)) != 0 ||
        (r = exec(s->conn, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL, &res)) != 0) {
        snprintf(err, errlen, "cannot read schema version: %s", PQerrorMessage(s->conn));
        return finish(s, r != 0 ? r : AK_ERR_STORE);
    }
    version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (version > latest) {
        snprintf(err, errlen, "database schema version %d is newer than this apikeyd (%d)", version, latest);
        return finish(s, AK_ERR_STORE);
    }
    for (; version < latest && r == 0; version++) {
        snprintf(sql, sizeof(sql), "INSERT INTO schema_version (version) VALUES (%d)", version + 1);
        if ((r = exec_ms(s->conn, MIGRATIONS[version], 0, NULL, NULL, MIGRATION_MS)) == 0)
            r = exec(s->conn, sql, 0, NULL, NULL);
    }
    if (r != 0)
        snprintf(err, errlen, "cannot migrate schema: %s", PQerrorMessage(s->conn));
    return finish(s, r);
}

/* Removes newlines from libpq's messages so that every error is one line. */
static void one_line(char *msg)
{
    for (char *p = msg; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = p[1] != '\0' ? ' ' : '\0';
}

int store_postgres_schema_latest(void)
{
    return (int)(sizeof(MIGRATIONS) / sizeof(MIGRATIONS[0]));
}

int store_postgres_open(const char *uri, struct store **ret, char *err, size_t errlen)
{
    struct pg_store *s;
    int r;

    if ((s = calloc(1, sizeof(*s))) == NULL || (s->uri = strdup(uri)) == NULL) {
        free(s);
        return AK_ERR_NOMEM;
    }
    s->super.ops = &POSTGRES_OPS;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->rate_lock, NULL);
    atomic_init(&s->stop, 0);
    s->conn = connect_db(uri);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        /* never echo the URI: it may hold a password */
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(s->conn));
        one_line(err);
        pg_free(&s->super);
        return AK_ERR_UNAVAILABLE;
    }
    atomic_store(&s->writer_pid, PQbackendPID(s->conn));
    if ((r = migrate(s, err, errlen)) != 0) {
        one_line(err);
        pg_free(&s->super);
        return r;
    }
    *ret = &s->super;
    return 0;
}
