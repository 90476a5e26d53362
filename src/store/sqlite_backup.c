/*
 * sqlite_backup: a consistent copy of a SQLite database that a server is
 * serving and writing, with SQLite's online backup API. The copy is one
 * read snapshot of the source (in WAL mode the server's writes go on
 * meanwhile), written to OUT.tmp, synced and renamed to OUT, so that OUT is
 * either the whole copy or absent. Never writes the source, never replaces
 * an existing file, never touches the secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "store/store.h"

#define STEP_PAGES 128       /* pages copied per step: 512 KB with 4 KB pages (tests/api/test_backup.py knows it) */
#define STEP_PAUSE_MS 5      /* between steps, so that the copy never hogs the disk */
#define BUSY_PAUSE_MS 50     /* after a step found the database busy or locked */
#define BUSY_MAX_MS 60000    /* how long a busy or locked database is waited for, in all */
#define BUSY_TIMEOUT_MS 5000 /* each connection's own busy handler */

/* Opens the source read-only and starts the read transaction that the whole copy is taken from. */
static int open_source(const char *path, sqlite3 **ret, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
        /* BEGIN is deferred: the first read takes the snapshot, and holds it until the end. */
        rc = sqlite3_exec(db, "BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot read database %s: %s", path, db != NULL ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc == SQLITE_NOMEM ? AK_ERR_NOMEM : AK_ERR_STORE;
    }
    *ret = db;
    return 0;
}

/*
 * Copies `src` into the empty database file `tmp` in steps, pausing between
 * them and waiting out a busy or locked database. The source's read
 * transaction stays open across the steps, so that every step reads the
 * same snapshot and a write elsewhere never restarts the copy.
 */
static int copy(sqlite3 *src, const char *tmp, int *ret_pages, char *err, size_t errlen)
{
    sqlite3 *dst = NULL;
    sqlite3_backup *b = NULL;
    int rc, busy_ms = 0, r = AK_ERR_STORE;

    if ((rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL)) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", tmp, dst != NULL ? sqlite3_errmsg(dst) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(dst, BUSY_TIMEOUT_MS);
    /* No journal and no syncs of its own: a failed copy is deleted whole, and a finished one is synced below. */
    if (sqlite3_exec(dst, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", NULL, NULL, NULL) != SQLITE_OK ||
        (b = sqlite3_backup_init(dst, "main", src, "main")) == NULL) {
        snprintf(err, errlen, "cannot start the backup: %s", sqlite3_errmsg(dst));
        goto out;
    }
    for (;;) {
        rc = sqlite3_backup_step(b, STEP_PAGES);
        if (rc == SQLITE_DONE)
            break;
        if (rc == SQLITE_OK) {
            sqlite3_sleep(STEP_PAUSE_MS);
            continue;
        }
        if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && busy_ms < BUSY_MAX_MS) {
            sqlite3_sleep(BUSY_PAUSE_MS);
            busy_ms += BUSY_PAUSE_MS;
            continue;
        }
        snprintf(err, errlen, "backup failed: %s", sqlite3_errstr(rc));
        goto out;
    }
    *ret_pages = sqlite3_backup_pagecount(b);
    r = 0;
out:
    if (b != NULL && (rc = sqlite3_backup_finish(b)) != SQLITE_OK && r == 0) {
        snprintf(err, errlen, "backup failed: %s", sqlite3_errstr(rc));
        r = AK_ERR_STORE;
    }
    if (sqlite3_close(dst) != SQLITE_OK && r == 0) {
        snprintf(err, errlen, "cannot close %s", tmp);
        r = AK_ERR_IO;
    }
    return r;
}

/* Renames `tmp` to `out` unless `out` exists (atomically), then syncs the directory that holds them. */
static int publish(const char *tmp, const char *out, char *err, size_t errlen)
{
    char *dir = strdup(out);
    int fd, r = 0;

    if (dir == NULL)
        return AK_ERR_NOMEM;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_NOREPLACE) != 0) {
        /* A file system without RENAME_NOREPLACE: link() never replaces either. */
        if ((errno != EINVAL && errno != ENOSYS) || link(tmp, out) != 0 || unlink(tmp) != 0) {
            int e = errno;
            if (e == EEXIST) {
                snprintf(err, errlen, "%s exists already: not replaced", out);
                r = AK_ERR_ARG;
            } else {
                snprintf(err, errlen, "cannot rename the copy to %s: %s", out, strerror(e));
                r = AK_ERR_IO;
            }
            goto out;
        }
    }
    if ((fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot sync the directory of %s: %s", out, strerror(errno));
        r = AK_ERR_IO;
    }
    if (fd >= 0)
        close(fd);
out:
    free(dir);
    return r;
}

int store_sqlite_backup(const char *path, const char *out, struct store_backup_stats *ret, char *err, size_t errlen)
{
    size_t n = strlen(out) + sizeof(".tmp");
    char *tmp = malloc(n);
    sqlite3 *src = NULL;
    struct stat st;
    int fd = -1, pages = 0, r;

    if (tmp == NULL)
        return AK_ERR_NOMEM;
    snprintf(tmp, n, "%s.tmp", out);
    if (lstat(out, &st) == 0) {
        snprintf(err, errlen, "%s exists already: not replaced", out);
        r = AK_ERR_ARG;
        goto out;
    }
    if ((r = open_source(path, &src, err, errlen)) != 0)
        goto out;
    /* Created here, exclusively and 0600 (the copy holds what the database holds); SQLite opens it as an empty database. */
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        int e = errno;
        if (e == EEXIST) {
            snprintf(err, errlen, "%s exists (another backup is running, or one was killed): remove it first", tmp);
            r = AK_ERR_ARG;
        } else {
            snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(e));
            r = AK_ERR_IO;
        }
        goto out;
    }
    if ((r = copy(src, tmp, &pages, err, errlen)) != 0)
        goto fail;
    if (fsync(fd) != 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
        r = AK_ERR_IO;
        goto fail;
    }
    if ((r = publish(tmp, out, err, errlen)) != 0)
        goto fail;
    ret->bytes = (int64_t)st.st_size;
    ret->pages = pages;
    goto out;
fail:
    unlink(tmp);
out:
    if (fd >= 0)
        close(fd);
    if (src != NULL) {
        sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(src);
    }
    free(tmp);
    return r;
}
