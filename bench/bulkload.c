/*
 * bulkload: fills a database with many accounts and keys for the benchmark
 * (`make bench`), fast, and writes every key in clear to a file so that a
 * load generator can present them.
 *
 *   bulkload --db PATH --accounts N --keys-per-account M --out KEYS.txt
 *            [--secret-file PATH] [--brand NAME]
 *
 * The schema is the product's: the database is created and migrated by
 * store_open, keys come from keyfmt_generate and their digests from
 * digest_compute under the secret that digest_secret_load reads (or creates)
 * at <db>.secret, exactly as `apikeyd serve` will read it. Only the inserts
 * bypass the store, in large transactions with synchronous=OFF, because the
 * store's one-commit-per-key path would take hours for a million keys.
 *
 * Each account gets one primary production key ("Production Key") and M-1
 * more keys, alternately sandbox and production, all active, never used.
 *
 * This is a benchmark tool only: the key file it writes holds live keys in
 * clear (mode 0600). It must never be pointed at a production database.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/digest.h"
#include "core/error.h"
#include "core/keyfmt.h"
#include "core/timefmt.h"
#include "store/store.h"

#define KEYS_PER_TXN 100000
#define MAX_ACCOUNTS 10000000UL
#define MAX_KEYS_PER_ACCOUNT 1000000UL
#define MAX_TOTAL_KEYS 100000000UL

struct options {
    const char *db;
    const char *out;
    const char *secret_file;
    const char *brand;
    unsigned long accounts;
    unsigned long keys_per_account;
    unsigned long restricted_pct; /* this per cent of the non-primary keys get BENCH_SCOPES and BENCH_IPS */
};

struct loader {
    sqlite3 *db;
    sqlite3_stmt *account_insert;
    sqlite3_stmt *key_insert;
    FILE *out;
    struct digest_secret secret;
    const char *brand;
    int64_t now;
    unsigned long keys_in_txn;
    unsigned long restricted_pct;
    unsigned long seen; /* non-primary keys so far */
};

/*
 * The restriction of a restricted key (issue 12's benchmark): 20 scopes in
 * canonical form (sorted) and 32 CIDRs, the loopback block last, so that a
 * request from 127.0.0.1 is checked against every block before it passes.
 */
#define BENCH_SCOPES                                                                                                               \
    "api:a api:b api:c api:d api:e audit:read billing:read billing:write keys:read posts:read posts:write s0:read s1:read "        \
    "s2:read s3:read s4:read s5:read s6:read s7:read users:*"
#define BENCH_IPS                                                                                                                  \
    "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,198.51.100.0/24,203.0.113.0/24,100.64.0.0/10,192.0.2.0/24,198.18.0.0/15,"             \
    "2001:db8::/32,2001:db8:1::/48,fd00::/8,fe80::/10,11.0.0.0/8,12.0.0.0/8,13.0.0.0/8,14.0.0.0/8,15.0.0.0/8,16.0.0.0/8,"          \
    "17.0.0.0/8,18.0.0.0/8,19.0.0.0/8,20.0.0.0/8,21.0.0.0/8,22.0.0.0/8,23.0.0.0/8,24.0.0.0/8,25.0.0.0/8,26.0.0.0/8,"               \
    "27.0.0.0/8,28.0.0.0/8,29.0.0.0/8,127.0.0.0/8"

static void usage(FILE *f)
{
    fputs("usage: bulkload --db PATH --accounts N --keys-per-account M --out KEYS.txt\n"
          "                [--secret-file PATH] [--brand NAME] [--restricted-percent P]\n"
          "\n"
          "Creates (or extends) an apikeyd SQLite database with N accounts of M active keys\n"
          "each (one primary production key, the rest alternately sandbox and production)\n"
          "and writes every key in clear to KEYS.txt, one per line. With --restricted-percent,\n"
          "P per cent of the non-primary keys get 20 scopes and 32 CIDRs (127.0.0.0/8 last).\n"
          "Benchmark data only.\n",
          f);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_count(const char *s, unsigned long max, unsigned long *ret)
{
    char *end;
    unsigned long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > max)
        return -1;
    *ret = v;
    return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"accounts", required_argument, NULL, 'a'},
        {"keys-per-account", required_argument, NULL, 'k'},
        {"out", required_argument, NULL, 'o'},
        {"secret-file", required_argument, NULL, 's'},
        {"brand", required_argument, NULL, 'b'},
        {"restricted-percent", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd':
            o->db = optarg;
            break;
        case 'a':
            if (parse_count(optarg, MAX_ACCOUNTS, &o->accounts) != 0) {
                fprintf(stderr, "bulkload: --accounts takes a number from 1 to %lu\n", MAX_ACCOUNTS);
                return 2;
            }
            break;
        case 'k':
            if (parse_count(optarg, MAX_KEYS_PER_ACCOUNT, &o->keys_per_account) != 0) {
                fprintf(stderr, "bulkload: --keys-per-account takes a number from 1 to %lu\n", MAX_KEYS_PER_ACCOUNT);
                return 2;
            }
            break;
        case 'o':
            o->out = optarg;
            break;
        case 's':
            o->secret_file = optarg;
            break;
        case 'b':
            o->brand = optarg;
            break;
        case 'r':
            if (parse_count(optarg, 100, &o->restricted_pct) != 0) {
                fprintf(stderr, "bulkload: --restricted-percent takes a number from 1 to 100\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "bulkload: unknown option or missing value: %s\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || o->db == NULL || o->out == NULL || o->accounts == 0 || o->keys_per_account == 0) {
        fprintf(stderr, "bulkload: --db, --accounts, --keys-per-account and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (o->accounts > MAX_TOTAL_KEYS / o->keys_per_account) {
        fprintf(stderr, "bulkload: at most %lu keys in all\n", MAX_TOTAL_KEYS);
        return 2;
    }
    if (keyfmt_brand_check(o->brand) != 0) {
        fprintf(stderr, "bulkload: --brand must be 1 to %d characters of a-z and 0-9\n", KEYFMT_BRAND_MAX);
        return 2;
    }
    return 0;
}

static int sql_fail(struct loader *l, const char *what)
{
    fprintf(stderr, "bulkload: %s: %s\n", what, sqlite3_errmsg(l->db));
    return -1;
}

static int exec_sql(struct loader *l, const char *sql)
{
    return sqlite3_exec(l->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : sql_fail(l, sql);
}

/* Commits the open transaction and opens the next one every KEYS_PER_TXN keys. */
static int maybe_commit(struct loader *l)
{
    if (++l->keys_in_txn < KEYS_PER_TXN)
        return 0;
    l->keys_in_txn = 0;
    if (exec_sql(l, "COMMIT") != 0 || exec_sql(l, "BEGIN") != 0)
        return -1;
    return 0;
}

static int insert_key(struct loader *l, int64_t account_id, unsigned long n, enum key_type type, int primary)
{
    char key[KEYFMT_MAX_LEN + 1], name[32], prefix[KEYFMT_PREFIX_LEN + 1];
    uint8_t digest[DIGEST_LEN];
    sqlite3_stmt *st = l->key_insert;
    size_t len;
    int r = -1;

    if (keyfmt_generate(l->brand, type, key, sizeof(key)) != 0) {
        fprintf(stderr, "bulkload: cannot generate a key (CSPRNG)\n");
        return -1;
    }
    len = strlen(key);
    if (digest_compute(&l->secret, key, len, digest) != 0) {
        fprintf(stderr, "bulkload: HMAC failed\n");
        goto out;
    }
    memcpy(prefix, key, KEYFMT_PREFIX_LEN);
    prefix[KEYFMT_PREFIX_LEN] = '\0';
    if (primary)
        snprintf(name, sizeof(name), "Production Key");
    else
        snprintf(name, sizeof(name), "Bench Key %lu", n);
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, key_type_name(type), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, prefix, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, digest, DIGEST_LEN, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, primary);
    sqlite3_bind_int64(st, 7, l->now);
    /* Spread evenly: key n of every 100 non-primary keys is restricted while n < the percentage. */
    if (!primary && l->restricted_pct != 0 && (l->seen++ % 100) < l->restricted_pct) {
        sqlite3_bind_text(st, 8, BENCH_SCOPES, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 9, BENCH_IPS, -1, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 8);
        sqlite3_bind_null(st, 9);
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        sql_fail(l, "insert key");
        goto out;
    }
    key[len] = '\n';
    if (fwrite(key, 1, len + 1, l->out) != len + 1) {
        fprintf(stderr, "bulkload: cannot write the key file: %s\n", strerror(errno));
        goto out;
    }
    r = maybe_commit(l);
out:
    OPENSSL_cleanse(key, sizeof(key));
    return r;
}

static int load(struct loader *l, const struct options *o)
{
    sqlite3_stmt *st = l->account_insert;
    char name[48];

    if (exec_sql(l, "BEGIN") != 0)
        return -1;
    for (unsigned long a = 0; a < o->accounts; a++) {
        int64_t account_id;

        snprintf(name, sizeof(name), "bench-%lu", a + 1);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, l->now);
        if (sqlite3_step(st) != SQLITE_DONE)
            return sql_fail(l, "insert account");
        account_id = sqlite3_last_insert_rowid(l->db);
        if (insert_key(l, account_id, 1, KEY_TYPE_PRODUCTION, 1) != 0)
            return -1;
        for (unsigned long k = 2; k <= o->keys_per_account; k++) {
            if (insert_key(l, account_id, k, k % 2 == 0 ? KEY_TYPE_SANDBOX : KEY_TYPE_PRODUCTION, 0) != 0)
                return -1;
        }
    }
    return exec_sql(l, "COMMIT");
}

/* Opens the key file for writing, mode 0600, truncated. */
static FILE *open_out(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f;

    if (fd < 0)
        return NULL;
    if ((f = fdopen(fd, "w")) == NULL) {
        close(fd);
        return NULL;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    return f;
}

int main(int argc, char **argv)
{
    struct options o = {.brand = "ml"};
    struct loader l = {0};
    struct store *store = NULL;
    char err[512], *secret_path = NULL;
    double t0 = now_s(), t1;
    int r;

    if ((r = parse_options(argc, argv, &o)) != 0)
        return r;
    l.brand = o.brand;
    l.now = timefmt_now();
    l.restricted_pct = o.restricted_pct;
    /* The product creates and migrates the schema; we only add rows to it. */
    if (store_open(o.db, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "bulkload: %s\n", err);
        return 1;
    }
    store_free(store);
    if (o.secret_file == NULL) {
        size_t n = strlen(o.db) + sizeof(".secret");

        if ((secret_path = malloc(n)) == NULL) {
            fprintf(stderr, "bulkload: out of memory\n");
            return 1;
        }
        snprintf(secret_path, n, "%s.secret", o.db);
    }
    if (digest_secret_load(o.secret_file != NULL ? o.secret_file : secret_path, &l.secret, err, sizeof(err)) != 0) {
        fprintf(stderr, "bulkload: %s\n", err);
        free(secret_path);
        return 1;
    }
    free(secret_path);
    r = 1;
    if ((l.out = open_out(o.out)) == NULL) {
        fprintf(stderr, "bulkload: cannot create %s: %s\n", o.out, strerror(errno));
        goto out;
    }
    if (sqlite3_open_v2(o.db, &l.db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(stderr, "bulkload: cannot open %s: %s\n", o.db, l.db != NULL ? sqlite3_errmsg(l.db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(l.db, 5000);
    /* Bench data: a crash mid-load just means loading again. The schema's WAL mode stays. */
    if (exec_sql(&l, "PRAGMA synchronous=OFF; PRAGMA foreign_keys=ON; PRAGMA cache_size=-524288") != 0)
        goto out;
    if (sqlite3_prepare_v2(l.db, "INSERT INTO accounts (name, created_at) VALUES (?1, ?2)", -1, &l.account_insert, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(l.db,
                           "INSERT INTO api_keys (account_id, name, key_type, key_prefix, digest, is_active, is_primary,"
                           " created_at, scopes, allowed_ips) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?9)",
                           -1, &l.key_insert, NULL) != SQLITE_OK) {
        sql_fail(&l, "prepare");
        goto out;
    }
    if (load(&l, &o) != 0) {
        sqlite3_exec(l.db, "ROLLBACK", NULL, NULL, NULL);
        goto out;
    }
    if (exec_sql(&l, "PRAGMA wal_checkpoint(TRUNCATE)") != 0)
        goto out;
    if (fflush(l.out) != 0 || fsync(fileno(l.out)) != 0) {
        fprintf(stderr, "bulkload: cannot write %s: %s\n", o.out, strerror(errno));
        goto out;
    }
    t1 = now_s();
    printf("bulkload: %lu accounts, %lu keys in %.2f s (%.0f keys/s)\n", o.accounts, o.accounts * o.keys_per_account, t1 - t0,
           (double)(o.accounts * o.keys_per_account) / (t1 - t0));
    r = 0;
out:
    sqlite3_finalize(l.account_insert);
    sqlite3_finalize(l.key_insert);
    sqlite3_close(l.db);
    if (l.out != NULL && fclose(l.out) != 0 && r == 0) {
        fprintf(stderr, "bulkload: cannot write %s: %s\n", o.out, strerror(errno));
        r = 1;
    }
    digest_secret_wipe(&l.secret);
    return r;
}
