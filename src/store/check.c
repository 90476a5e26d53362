/*
 * check: verifies a database without changing it (`apikeyd check`): the
 * file's integrity (SQLite), that its schema is the version this binary
 * writes, and the invariants that the rules keep but the schema alone does
 * not enforce (one valid primary per account, key counts, quotas). Opens a
 * connection of its own, read-only, and reads one snapshot; never migrates,
 * never writes, never reads a digest.
 */
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "store/store.h"

#define COLUMNS_MAX 8                               /* of a rule's rows */
#define MESSAGE_MAX 512                             /* bytes of one problem's message */
#define CHECK_LIMIT " LIMIT 101"                    /* STORE_CHECK_MAX + 1: one more row says there are more */
#define INTEGRITY_SQL "PRAGMA integrity_check(100)" /* at most STORE_CHECK_MAX rows */

/* One row of a query: its columns as text (NULL for SQL NULL). */
typedef int (*row_fn)(void *arg, const char *const *v, int n);

/* A read-only snapshot of one database, in its dialect. */
struct reader {
    /* Calls `fn` for each row of `sql`. 0, or an error with one line in err. */
    int (*query)(struct reader *rd, const char *sql, row_fn fn, void *arg, char *err, size_t errlen);
    /* One row, one column: 1 when the schema_version table exists, else 0. */
    const char *has_version_sql;
    int latest; /* the schema version this binary writes */
    sqlite3 *db;
    PGconn *conn;
};

/* A rule over the current schema: the rows that break it, and what to say about each. */
struct rule {
    const char *check;   /* the problem's name (stable, for scripts) */
    const char *sql;     /* the rows that break it, at most STORE_CHECK_MAX + 1; the same SQL in both dialects */
    const char *message; /* $1..$9 are the row's columns */
};

static const struct rule RULES[] = {
    {"primary_count",
     "SELECT a.id, count(k.id) FROM accounts a LEFT JOIN api_keys k ON k.account_id = a.id AND k.is_primary"
     " GROUP BY a.id HAVING count(k.id) <> 1 ORDER BY a.id" CHECK_LIMIT,
     "account $1: $2 primary keys (exactly one expected)"},
    /* A primary is production, has no expiry and no scopes, and is active unless it was reported leaked (contract). */
    {"primary_rule",
     "SELECT id, account_id, CASE WHEN key_type <> 'production' THEN 'is not a production key'"
     " WHEN expires_at IS NOT NULL THEN 'has an expiry' WHEN scopes IS NOT NULL THEN 'has scopes'"
     " ELSE 'is inactive but was not reported leaked' END FROM api_keys"
     " WHERE is_primary AND NOT (key_type = 'production' AND expires_at IS NULL AND scopes IS NULL"
     " AND (is_active OR leaked_at IS NOT NULL)) ORDER BY id" CHECK_LIMIT,
     "primary key $1 of account $2 $3"},
    {"key_count",
     "SELECT a.id, a.key_count, count(k.id) FROM accounts a LEFT JOIN api_keys k ON k.account_id = a.id"
     " GROUP BY a.id, a.key_count HAVING a.key_count <> count(k.id) ORDER BY a.id" CHECK_LIMIT,
     "account $1: key_count $2, keys counted $3"},
    {"key_account",
     "SELECT k.id, k.account_id FROM api_keys k WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = k.account_id)"
     " ORDER BY k.id" CHECK_LIMIT,
     "key $1 belongs to account $2, which does not exist"},
    {"key_quota",
     "SELECT k.id, k.quota_id FROM api_keys k WHERE k.quota_id IS NOT NULL"
     " AND NOT EXISTS (SELECT 1 FROM key_quotas q WHERE q.quota_id = k.quota_id) ORDER BY k.id" CHECK_LIMIT,
     "key $1 has quota $2, which does not exist"},
    {"quota_unused",
     "SELECT q.quota_id FROM key_quotas q WHERE NOT EXISTS (SELECT 1 FROM api_keys k WHERE k.quota_id = q.quota_id)"
     " ORDER BY q.quota_id" CHECK_LIMIT,
     "quota $1 belongs to no key"},
    /* A quota is shared by the keys of one rotation, which are one account's. */
    {"quota_accounts",
     "SELECT quota_id, count(DISTINCT account_id) FROM api_keys WHERE quota_id IS NOT NULL GROUP BY quota_id"
     " HAVING count(DISTINCT account_id) > 1 ORDER BY quota_id" CHECK_LIMIT,
     "quota $1: shared by keys of $2 accounts (one expected)"},
};

/* ---- SQLite ---- */

/* reader.query for SQLite: steps one statement, columns as text. */
static int sq_query(struct reader *rd, const char *sql, row_fn fn, void *arg, char *err, size_t errlen)
{
    const char *v[COLUMNS_MAX];
    sqlite3_stmt *st = NULL;
    int rc, n, r = 0;

    if ((rc = sqlite3_prepare_v2(rd->db, sql, -1, &st, NULL)) != SQLITE_OK)
        goto fail;
    n = sqlite3_column_count(st) < COLUMNS_MAX ? sqlite3_column_count(st) : COLUMNS_MAX;
    while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++)
            v[i] = (const char *)sqlite3_column_text(st, i);
        r = fn(arg, v, n);
    }
    if (r == 0 && rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    return r;
fail:
    snprintf(err, errlen, "cannot read the database: %s", sqlite3_errmsg(rd->db));
    sqlite3_finalize(st);
    return rc == SQLITE_NOMEM ? AK_ERR_NOMEM : AK_ERR_STORE;
}

/* Opens `path` read-only (never creating it) and takes the snapshot the checks read. */
static int sq_open(const char *path, struct reader *rd, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(path, &rd->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);

    rd->query = sq_query;
    rd->has_version_sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'";
    rd->latest = store_sqlite_schema_latest();
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(rd->db, 5000);
        rc = sqlite3_exec(rd->db, "PRAGMA query_only = 1; BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot read database %s: %s", path, rd->db != NULL ? sqlite3_errmsg(rd->db) : "out of memory");
        return AK_ERR_STORE;
    }
    return 0;
}

/* ---- PostgreSQL ---- */

/* Removes newlines from libpq's messages so that every error is one line. */
static void one_line(char *msg)
{
    for (char *p = msg; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = p[1] != '\0' ? ' ' : '\0';
}

/* reader.query for PostgreSQL: one statement, its rows as libpq returns them (text). */
static int pg_query(struct reader *rd, const char *sql, row_fn fn, void *arg, char *err, size_t errlen)
{
    const char *v[COLUMNS_MAX];
    PGresult *res = PQexec(rd->conn, sql);
    int r = 0, n;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "cannot read the database: %s", res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(rd->conn));
        one_line(err);
        PQclear(res);
        return AK_ERR_STORE;
    }
    n = PQnfields(res) < COLUMNS_MAX ? PQnfields(res) : COLUMNS_MAX;
    for (int row = 0; r == 0 && row < PQntuples(res); row++) {
        for (int i = 0; i < n; i++)
            v[i] = PQgetisnull(res, row, i) ? NULL : PQgetvalue(res, row, i);
        r = fn(arg, v, n);
    }
    PQclear(res);
    return r;
}

/* Connects to `uri` and opens the read-only, repeatable-read transaction the checks read. */
static int pg_open(const char *uri, struct reader *rd, char *err, size_t errlen)
{
    /* The URI comes last, so that what it says wins over these defaults. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"10", "apikeyd-check", uri, NULL};
    PGresult *res = NULL;

    rd->query = pg_query;
    rd->has_version_sql = "SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'schema_version'"
                          " AND schemaname = current_schema()";
    rd->latest = store_postgres_schema_latest();
    rd->conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(rd->conn) != CONNECTION_OK) {
        /* never echo the URI: it may hold a password */
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(rd->conn));
        one_line(err);
        return AK_ERR_UNAVAILABLE;
    }
    res = PQexec(rd->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(err, errlen, "cannot read the database: %s", PQerrorMessage(rd->conn));
        one_line(err);
        PQclear(res);
        return AK_ERR_STORE;
    }
    PQclear(res);
    return 0;
}

/* ---- the checks ---- */

/* Where the rows of one rule go. */
struct report {
    store_problem_cb cb;
    void *arg;
    const char *check;
    const char *message;
    unsigned n;
};

/* Writes `tmpl` into `buf` with $1..$9 replaced by the row's columns (NULL as "null"). */
static void expand(const char *tmpl, const char *const *v, int n, char *buf, size_t size)
{
    size_t len = 0;

    for (const char *p = tmpl; *p != '\0' && len + 1 < size; p++) {
        if (p[0] == '$' && p[1] >= '1' && p[1] <= '9' && p[1] - '1' < n) {
            const char *s = v[p[1] - '1'] != NULL ? v[p[1] - '1'] : "null";
            for (; *s != '\0' && len + 1 < size; s++)
                buf[len++] = *s == '\n' || *s == '\r' ? ' ' : *s;
            p++;
        } else {
            buf[len++] = *p == '\n' || *p == '\r' ? ' ' : *p;
        }
    }
    buf[len] = '\0';
}

/* One row that breaks a rule: a problem, or past STORE_CHECK_MAX, one that says there are more. */
static int report_row(void *arg, const char *const *v, int n)
{
    struct report *rep = arg;
    char msg[MESSAGE_MAX];

    if (++rep->n > STORE_CHECK_MAX + 1)
        return 0;
    if (rep->n > STORE_CHECK_MAX) {
        snprintf(msg, sizeof(msg), "more problems of this kind (the first %d are listed)", STORE_CHECK_MAX);
        return rep->cb(rep->arg, rep->check, msg);
    }
    expand(rep->message, v, n, msg, sizeof(msg));
    return rep->cb(rep->arg, rep->check, msg);
}

/* PRAGMA integrity_check's rows: one "ok", or the problems. */
static int integrity_row(void *arg, const char *const *v, int n)
{
    if (n < 1 || v[0] == NULL || strcmp(v[0], "ok") == 0)
        return 0;
    return report_row(arg, v, n);
}

/* One integer of a one-row answer. */
static int int_row(void *arg, const char *const *v, int n)
{
    *(int *)arg = n >= 1 && v[0] != NULL ? atoi(v[0]) : 0;
    return 0;
}

/* The schema version (0 when none), and a problem when it is not the one this binary writes. */
static int check_schema(struct reader *rd, store_problem_cb cb, void *arg, int *ret_version, char *err, size_t errlen)
{
    char msg[MESSAGE_MAX];
    int has = 0, version = 0, r;

    if ((r = rd->query(rd, rd->has_version_sql, int_row, &has, err, errlen)) != 0)
        return r;
    if (has && (r = rd->query(rd, "SELECT coalesce(max(version), 0) FROM schema_version", int_row, &version, err, errlen)) != 0)
        return r;
    *ret_version = version;
    if (version == rd->latest)
        return 0;
    if (version > rd->latest)
        snprintf(msg, sizeof(msg), "schema version %d is newer than this apikeyd's (%d): check it with a newer apikeyd", version,
                 rd->latest);
    else if (version == 0)
        snprintf(msg, sizeof(msg), "no apikeyd schema (version 0, this apikeyd's is %d): needs migration (serve migrates on start)",
                 rd->latest);
    else
        snprintf(msg, sizeof(msg), "schema version %d is older than this apikeyd's (%d): needs migration (serve migrates on start)",
                 version, rd->latest);
    return cb(arg, "schema_version", msg);
}

int store_check(const char *uri, store_problem_cb cb, void *arg, int *ret_version, char *err, size_t errlen)
{
    struct reader rd = {0};
    struct report rep = {.cb = cb, .arg = arg};
    bool sqlite = !store_is_postgres(uri);
    int version = 0, r;

    if ((r = sqlite ? sq_open(uri, &rd, err, errlen) : pg_open(uri, &rd, err, errlen)) != 0)
        goto out;
    if (sqlite) {
        rep.check = "integrity";
        rep.message = "$1";
        if ((r = sq_query(&rd, INTEGRITY_SQL, integrity_row, &rep, err, errlen)) != 0)
            goto out;
    }
    if (rep.n > 0) {
        /* A damaged file: what integrity_check found is the report; the rules' answers would not be worth reading. */
        *ret_version = check_schema(&rd, cb, arg, &version, err, errlen) == 0 ? version : -1;
        goto out;
    }
    if ((r = check_schema(&rd, cb, arg, &version, err, errlen)) != 0)
        goto out;
    /* The rules read the current schema's tables: an older or newer one is reported above, and that is all. */
    for (size_t i = 0; version == rd.latest && i < sizeof(RULES) / sizeof(RULES[0]); i++) {
        rep.check = RULES[i].check;
        rep.message = RULES[i].message;
        rep.n = 0;
        if ((r = rd.query(&rd, RULES[i].sql, report_row, &rep, err, errlen)) != 0)
            goto out;
    }
    *ret_version = version;
out:
    if (rd.db != NULL) {
        sqlite3_exec(rd.db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(rd.db);
    }
    if (rd.conn != NULL)
        PQfinish(rd.conn);
    return r;
}
