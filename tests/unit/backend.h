/*
 * backend: the two stores that unit tests of the store and of core's
 * writes run against, one fixture for both (test_txn.c, test_accounts.c).
 *
 * SQLite is a file in the test's temporary directory. PostgreSQL is a
 * throwaway cluster that the first test needing one starts, as
 * tests/api/conftest.py does: initdb'd into a temporary directory (as the
 * `postgres` user, through runuser, when the tests run as root), reachable
 * only on a unix socket in that directory (no TCP port, so concurrent test
 * binaries never collide), stopped and removed at exit. Every test gets a
 * database of its own. APIKEYD_PG_BINDIR names the server's binaries
 * (default /usr/lib/postgresql/15/bin). When the cluster cannot start, every
 * PostgreSQL test fails saying so: none is skipped.
 */
#ifndef APIKEYD_TESTS_BACKEND_H
#define APIKEYD_TESTS_BACKEND_H

#include <ftw.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/digest.h"
#include "core/keys.h"
#include "store/store.h"

enum backend { BACKEND_SQLITE, BACKEND_POSTGRES };

struct fixture {
    enum backend backend;
    char dir[64];
    char uri[256];
    char secret_path[128];
    unsigned max_keys;
    struct store *store;
    struct digest_secret secret;
    struct keys *k;
};

static struct {
    bool tried, up;
    char root[64];
    char log[128];
    int ndb;
} pg_cluster;

static int backend_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static const char *pg_bindir(void)
{
    const char *d = getenv("APIKEYD_PG_BINDIR");

    return d != NULL && *d != '\0' ? d : "/usr/lib/postgresql/15/bin";
}

/* Runs a PostgreSQL program line `cmd` (as `postgres` when root), its output appended to the cluster's log. */
static int pg_run(const char *cmd)
{
    char line[1024];

    snprintf(line, sizeof(line), "cd %s && %s%s >>%s 2>&1", pg_cluster.root, geteuid() == 0 ? "runuser -u postgres -- " : "", cmd,
             pg_cluster.log);
    return system(line);
}

static void pg_cluster_stop(void)
{
    char cmd[512];

    if (pg_cluster.root[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "%s/pg_ctl -D %s/data -m immediate -w stop", pg_bindir(), pg_cluster.root);
    pg_run(cmd);
    nftw(pg_cluster.root, backend_rm_one, 8, FTW_DEPTH | FTW_PHYS);
    pg_cluster.root[0] = '\0';
}

/* Starts the cluster once per process; false (with the reason on stderr) when it cannot. */
static bool pg_cluster_up(void)
{
    char cmd[768];

    if (pg_cluster.tried)
        return pg_cluster.up;
    pg_cluster.tried = true;
    snprintf(pg_cluster.root, sizeof(pg_cluster.root), "/tmp/apikeyd-unit-pg.XXXXXX");
    if (mkdtemp(pg_cluster.root) == NULL) {
        pg_cluster.root[0] = '\0';
        return false;
    }
    snprintf(pg_cluster.log, sizeof(pg_cluster.log), "%s/commands.log", pg_cluster.root);
    atexit(pg_cluster_stop);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL || chown(pg_cluster.root, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "PostgreSQL is unavailable: no `postgres` user (scripts/deps.sh installs it)\n");
            return false;
        }
    }
    snprintf(cmd, sizeof(cmd), "%s/initdb -D %s/data -A trust -U postgres -E UTF8 --locale=C --no-sync", pg_bindir(),
             pg_cluster.root);
    if (pg_run(cmd) != 0) {
        fprintf(stderr, "PostgreSQL is unavailable: initdb failed (APIKEYD_PG_BINDIR=%s):\n", pg_bindir());
        snprintf(cmd, sizeof(cmd), "tail -n 20 %s >&2", pg_cluster.log);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
        return false;
    }
    /* The server's own log is the postgres user's file (the commands' output is ours). */
    snprintf(
        cmd, sizeof(cmd),
        "%s/pg_ctl -D %s/data -l %s/server.log -w -t 60 -o \"-c listen_addresses='' -k %s -c fsync=off -c full_page_writes=off\""
        " start",
        pg_bindir(), pg_cluster.root, pg_cluster.root, pg_cluster.root);
    if (pg_run(cmd) != 0) {
        fprintf(stderr, "PostgreSQL is unavailable: pg_ctl start failed:\n");
        snprintf(cmd, sizeof(cmd), "tail -n 20 %s %s/server.log >&2", pg_cluster.log, pg_cluster.root);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
        return false;
    }
    pg_cluster.up = true;
    return true;
}

/* A new, empty database in the cluster: its URI into `uri`. */
static int pg_database_new(char *uri, size_t urisz)
{
    char conninfo[256], sql[64], name[32];
    PGconn *conn;
    PGresult *res;
    int r = -1;

    if (!pg_cluster_up())
        return -1;
    snprintf(name, sizeof(name), "unit_%d", ++pg_cluster.ndb);
    snprintf(conninfo, sizeof(conninfo), "host=%s user=postgres dbname=postgres", pg_cluster.root);
    conn = PQconnectdb(conninfo);
    if (PQstatus(conn) == CONNECTION_OK) {
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
        res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_COMMAND_OK)
            r = 0;
        else
            fprintf(stderr, "CREATE DATABASE: %s", PQerrorMessage(conn));
        PQclear(res);
    } else {
        fprintf(stderr, "PostgreSQL: %s", PQerrorMessage(conn));
    }
    PQfinish(conn);
    snprintf(uri, urisz, "postgresql://postgres@/%s?host=%s", name, pg_cluster.root);
    return r;
}

/* Opens the fixture's store and a keys service over it. */
static int backend_open(struct fixture *f)
{
    struct keys_config cfg = {.brand = "ml", .max_keys = f->max_keys};
    char err[256] = "";

    if (store_open(f->uri, &f->store, err, sizeof(err)) != 0 ||
        digest_secret_load(f->secret_path, &f->secret, err, sizeof(err)) != 0) {
        fprintf(stderr, "open %s: %s\n", f->uri, err);
        return -1;
    }
    if (keys_new(f->store, &f->secret, &cfg, &f->k) != 0 || keys_load(f->k) != 0)
        return -1;
    return 0;
}

static void backend_close(struct fixture *f)
{
    keys_free(f->k);
    store_free(f->store);
    f->k = NULL;
    f->store = NULL;
}

static int backend_teardown(void **state)
{
    struct fixture *f = *state;
    int r = 0;

    if (f == NULL)
        return 0;
    backend_close(f);
    if (f->dir[0] != '\0')
        r = nftw(f->dir, backend_rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return r;
}

static int backend_setup(void **state, enum backend b, unsigned max_keys)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    *state = f;
    f->backend = b;
    f->max_keys = max_keys;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_backend.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        f->dir[0] = '\0';
        goto fail;
    }
    snprintf(f->secret_path, sizeof(f->secret_path), "%s/secret", f->dir);
    if (b == BACKEND_SQLITE)
        snprintf(f->uri, sizeof(f->uri), "%s/keys.db", f->dir);
    else if (pg_database_new(f->uri, sizeof(f->uri)) != 0)
        goto fail;
    if (backend_open(f) == 0)
        return 0;
fail:
    /* cmocka runs no teardown after a failed setup */
    backend_teardown(state);
    *state = NULL;
    return -1;
}

#endif
