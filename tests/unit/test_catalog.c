/*
 * Unit tests for core/catalog, filled directly (catalog_put) and from a real
 * SQLite store on a temporary file: put/get/remove, digest collisions, list
 * order and the sandbox filter, authentication (unknown, inactive, ok, and
 * last_used that never goes backward), the collect_uses / mark_flushed
 * cycle, per-account counts and primary, and catalog_load (replaces the
 * content, keeps newer in-memory last_used, keeps the old content when the
 * store fails).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The module itself, so that a test can look at what it retires (tests may include the .c: STYLE.md). */
#include "../../src/core/catalog.c"
#include "core/digest.h"
#include "core/error.h"
#include "iterations.h"
#include "origin.h"
#include "store/store.h"

struct fixture {
    char dir[64];
    char db[128];
    struct store *store;
    struct catalog *cat;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256] = "";

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_catalog.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->db, sizeof(f->db), "%s/keys.db", f->dir);
    if (store_open(f->db, &f->store, err, sizeof(err)) != 0) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    if ((f->cat = catalog_new()) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int r;

    catalog_free(f->cat);
    store_free(f->store);
    r = nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return r;
}

/* A digest that depends only on `seed` (HMAC under a fixed secret). */
static void make_digest(int seed, uint8_t out[DIGEST_LEN])
{
    struct digest_secret s;
    char text[32];

    memset(&s, 0x11, sizeof(s));
    snprintf(text, sizeof(text), "seed-%d", seed);
    assert_int_equal(digest_compute(&s, text, strlen(text), out), 0);
}

/* The last_used part of a flush's collect (usage counts dropped). */
static int collect_uses(struct catalog *cat, struct key_use **ret, size_t *ret_n)
{
    struct catalog_flush f;
    int r = catalog_collect(cat, 0, &f);

    if (r == 0) {
        free(f.rows);
        *ret = f.uses;
        *ret_n = f.nuses;
    }
    return r;
}

static struct key_rec make_rec(int64_t id, int64_t account, enum key_type type, bool active, bool primary, const char *name)
{
    struct key_rec r;

    memset(&r, 0, sizeof(r));
    r.id = id;
    r.account_id = account;
    snprintf(r.name, sizeof(r.name), "%s", name);
    r.type = type;
    snprintf(r.prefix, sizeof(r.prefix), "ml_%s_%04u", type == KEY_TYPE_SANDBOX ? "sand" : "prod", (unsigned)id % 10000u);
    make_digest((int)id, r.digest);
    r.active = active;
    r.primary = primary;
    r.created_at = 1705312800 + id;
    r.last_used = 0;
    return r;
}

static void assert_rec_equal(const struct key_rec *a, const struct key_rec *b)
{
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->account_id, b->account_id);
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->type, b->type);
    assert_string_equal(a->prefix, b->prefix);
    assert_memory_equal(a->digest, b->digest, DIGEST_LEN);
    assert_int_equal(a->active, b->active);
    assert_int_equal(a->primary, b->primary);
    assert_int_equal(a->created_at, b->created_at);
    assert_int_equal(a->last_used, b->last_used);
}

struct seen {
    size_t n;
    struct key_rec recs[128];
};

static void visit(void *arg, const struct key_rec *rec)
{
    struct seen *s = arg;

    assert_true(s->n < 128);
    s->recs[s->n++] = *rec;
}

static struct seen *list(struct catalog *cat, int64_t account, bool sandbox_only)
{
    static struct seen s;

    memset(&s, 0, sizeof(s));
    catalog_list(cat, account, sandbox_only, visit, &s);
    return &s;
}

/* Creates an account with a primary production key in the store; returns the key's record. */
static struct key_rec store_account(struct store *st, const char *name, int seed)
{
    struct key_rec rec = make_rec(0, 0, KEY_TYPE_PRODUCTION, true, true, "Production Key");
    int64_t account = 0;

    make_digest(seed, rec.digest);
    assert_int_equal(t_store_account_create(st, name, rec.created_at, &rec, &account), 0);
    assert_true(account > 0);
    assert_int_equal(rec.account_id, account);
    assert_true(rec.id > 0);
    return rec;
}

static struct key_rec store_key(struct store *st, int64_t account, enum key_type type, const char *name, int seed)
{
    struct key_rec rec = make_rec(0, account, type, true, false, name);

    make_digest(seed, rec.digest);
    assert_int_equal(store_key_insert(st, &T_ORIGIN, &rec, 100, NULL), 0);
    assert_true(rec.id > 0);
    return rec;
}

static int allow_delete(void *arg, const struct key_rec *cur)
{
    (void)arg;
    (void)cur;
    return 0;
}

static void test_new_is_empty(void **state)
{
    struct fixture *f = *state;
    struct key_rec r;
    struct principal p;
    uint8_t d[DIGEST_LEN];
    int64_t primary = -1;

    make_digest(1, d);
    assert_int_equal(catalog_size(f->cat), 0);
    assert_int_equal(catalog_get(f->cat, 1, &r), AK_ERR_NOT_FOUND);
    assert_false(catalog_digest_taken(f->cat, d));
    assert_int_equal(catalog_authenticate(f->cat, d, 100, NULL, &p), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(catalog_account_keys(f->cat, 1, &primary), 0);
    assert_int_equal(primary, 0);
    assert_int_equal(list(f->cat, 1, false)->n, 0);
    catalog_free(NULL);
}

/* Changes from other instances may arrive late: an older version never replaces a newer one. */
static void test_put_keeps_newest_version(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = make_rec(1, 7, KEY_TYPE_PRODUCTION, true, false, "v5");
    struct key_rec got;

    a.version = 5;
    assert_int_equal(catalog_put(f->cat, &a), 0);
    strcpy(a.name, "v3");
    a.version = 3;
    a.active = false;
    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_string_equal(got.name, "v5");
    assert_true(got.active);
    assert_int_equal(got.version, 5);
    strcpy(a.name, "v9");
    a.version = 9;
    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_string_equal(got.name, "v9");
    assert_false(got.active);
    /* Version 0 (a store without versions) always applies. */
    strcpy(a.name, "v0");
    a.version = 0;
    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_string_equal(got.name, "v0");
}

static void test_put_get_remove(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = make_rec(1, 7, KEY_TYPE_PRODUCTION, true, true, "Production Key");
    struct key_rec b = make_rec(2, 7, KEY_TYPE_SANDBOX, true, false, "Dev \xc3\xa9");
    struct key_rec got;

    a.last_used = 1705400000;
    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_put(f->cat, &b), 0);
    assert_int_equal(catalog_size(f->cat), 2);
    memset(&got, 0, sizeof(got));
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_rec_equal(&got, &a);
    assert_int_equal(catalog_get(f->cat, 2, &got), 0);
    assert_rec_equal(&got, &b);
    assert_true(catalog_digest_taken(f->cat, a.digest));
    assert_true(catalog_digest_taken(f->cat, b.digest));

    catalog_remove(f->cat, 2);
    assert_int_equal(catalog_size(f->cat), 1);
    assert_int_equal(catalog_get(f->cat, 2, &got), AK_ERR_NOT_FOUND);
    assert_false(catalog_digest_taken(f->cat, b.digest));
    assert_int_equal(list(f->cat, 7, false)->n, 1);
    catalog_remove(f->cat, 2);  /* absent: no-op */
    catalog_remove(f->cat, 99); /* never there */
    assert_int_equal(catalog_size(f->cat), 1);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_rec_equal(&got, &a);

    /* A removed key never comes back: ids are never reused, so a late change about it is stale. */
    assert_int_equal(catalog_put(f->cat, &b), 0);
    assert_int_equal(catalog_get(f->cat, 2, &got), AK_ERR_NOT_FOUND);
    assert_false(catalog_digest_taken(f->cat, b.digest));
}

static void test_put_replaces_by_id(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = make_rec(3, 1, KEY_TYPE_PRODUCTION, true, false, "old name");
    struct key_rec got;
    struct seen *s;

    assert_int_equal(catalog_put(f->cat, &a), 0);
    snprintf(a.name, sizeof(a.name), "a much longer new name than before");
    a.active = false;
    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_size(f->cat), 1);
    assert_int_equal(catalog_get(f->cat, 3, &got), 0);
    assert_string_equal(got.name, "a much longer new name than before");
    assert_false(got.active);
    a.active = true;
    a.primary = true;
    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_get(f->cat, 3, &got), 0);
    assert_true(got.active);
    assert_true(got.primary);
    s = list(f->cat, 1, false);
    assert_int_equal(s->n, 1);
    assert_string_equal(s->recs[0].name, "a much longer new name than before");
    assert_true(s->recs[0].primary);
}

static void test_put_digest_collision(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = make_rec(1, 1, KEY_TYPE_PRODUCTION, true, true, "a");
    struct key_rec b = make_rec(2, 1, KEY_TYPE_PRODUCTION, true, false, "b");
    struct key_rec got;

    memcpy(b.digest, a.digest, DIGEST_LEN);
    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_put(f->cat, &b), AK_ERR_COLLISION);
    assert_int_equal(catalog_size(f->cat), 1);
    assert_int_equal(catalog_get(f->cat, 2, &got), AK_ERR_NOT_FOUND);
    assert_int_equal(list(f->cat, 1, false)->n, 1);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_string_equal(got.name, "a");
}

static void test_list_order_and_filter(void **state)
{
    struct fixture *f = *state;
    static const int64_t ids[] = {5, 2, 9, 3, 7};
    static const enum key_type types[] = {KEY_TYPE_SANDBOX, KEY_TYPE_PRODUCTION, KEY_TYPE_SANDBOX, KEY_TYPE_SANDBOX,
                                          KEY_TYPE_PRODUCTION};
    struct key_rec other = make_rec(4, 2, KEY_TYPE_SANDBOX, true, false, "other account");
    struct seen *s;

    for (size_t i = 0; i < 5; i++) {
        struct key_rec r = make_rec(ids[i], 1, types[i], true, ids[i] == 2, "k");
        snprintf(r.name, sizeof(r.name), "key %lld", (long long)ids[i]);
        assert_int_equal(catalog_put(f->cat, &r), 0);
    }
    assert_int_equal(catalog_put(f->cat, &other), 0);

    s = list(f->cat, 1, false);
    assert_int_equal(s->n, 5);
    assert_int_equal(s->recs[0].id, 2);
    assert_int_equal(s->recs[1].id, 3);
    assert_int_equal(s->recs[2].id, 5);
    assert_int_equal(s->recs[3].id, 7);
    assert_int_equal(s->recs[4].id, 9);
    assert_string_equal(s->recs[2].name, "key 5");
    for (size_t i = 0; i < s->n; i++)
        assert_int_equal(s->recs[i].account_id, 1);

    s = list(f->cat, 1, true);
    assert_int_equal(s->n, 3);
    assert_int_equal(s->recs[0].id, 3);
    assert_int_equal(s->recs[1].id, 5);
    assert_int_equal(s->recs[2].id, 9);
    for (size_t i = 0; i < s->n; i++)
        assert_int_equal(s->recs[i].type, KEY_TYPE_SANDBOX);

    s = list(f->cat, 2, false);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->recs[0].id, 4);
    assert_int_equal(list(f->cat, 3, false)->n, 0);
    assert_int_equal(list(f->cat, 0, false)->n, 0);

    /* Removing from the middle keeps the order. */
    catalog_remove(f->cat, 5);
    s = list(f->cat, 1, false);
    assert_int_equal(s->n, 4);
    assert_int_equal(s->recs[0].id, 2);
    assert_int_equal(s->recs[1].id, 3);
    assert_int_equal(s->recs[2].id, 7);
    assert_int_equal(s->recs[3].id, 9);
}

static void test_authenticate(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = make_rec(1, 7, KEY_TYPE_PRODUCTION, true, true, "a");
    struct key_rec b = make_rec(2, 7, KEY_TYPE_SANDBOX, false, false, "b");
    struct key_rec c = make_rec(3, 8, KEY_TYPE_SANDBOX, true, false, "c");
    struct principal p;
    struct key_rec got;
    uint8_t unknown[DIGEST_LEN], near[DIGEST_LEN];

    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_put(f->cat, &b), 0);
    assert_int_equal(catalog_put(f->cat, &c), 0);

    make_digest(1000, unknown);
    memset(&p, 0x5a, sizeof(p));
    assert_int_equal(catalog_authenticate(f->cat, unknown, 100, NULL, &p), AK_ERR_KEY_UNKNOWN);
    /* Same first bytes, different last byte: still unknown (the whole digest is compared). */
    memcpy(near, a.digest, DIGEST_LEN);
    near[DIGEST_LEN - 1] ^= 1;
    assert_int_equal(catalog_authenticate(f->cat, near, 100, NULL, &p), AK_ERR_KEY_UNKNOWN);
    memcpy(near, a.digest, DIGEST_LEN);
    near[8] ^= 0x80;
    assert_int_equal(catalog_authenticate(f->cat, near, 100, NULL, &p), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_int_equal(got.last_used, 0);

    /* Inactive: refused, and not recorded as a use. */
    assert_int_equal(catalog_authenticate(f->cat, b.digest, 100, NULL, &p), AK_ERR_KEY_INACTIVE);
    assert_int_equal(catalog_get(f->cat, 2, &got), 0);
    assert_int_equal(got.last_used, 0);

    memset(&p, 0, sizeof(p));
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 1000, NULL, &p), 0);
    assert_int_equal(p.key_id, 1);
    assert_int_equal(p.account_id, 7);
    assert_int_equal(p.type, KEY_TYPE_PRODUCTION);
    assert_string_equal(p.prefix, a.prefix);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_int_equal(got.last_used, 1000);
    assert_int_equal(list(f->cat, 7, false)->recs[0].last_used, 1000);

    assert_int_equal(catalog_authenticate(f->cat, c.digest, 500, NULL, &p), 0);
    assert_int_equal(p.key_id, 3);
    assert_int_equal(p.account_id, 8);
    assert_int_equal(p.type, KEY_TYPE_SANDBOX);
    assert_string_equal(p.prefix, c.prefix);

    /* last_used never goes backward. */
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 900, NULL, &p), 0);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_int_equal(got.last_used, 1000);
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 1000, NULL, &p), 0);
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 1001, NULL, &p), 0);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_int_equal(got.last_used, 1001);
    /* Nor below a value that came with the record. */
    c.last_used = 5000;
    c.id = 4;
    make_digest(4, c.digest);
    assert_int_equal(catalog_put(f->cat, &c), 0);
    assert_int_equal(catalog_authenticate(f->cat, c.digest, 4000, NULL, &p), 0);
    assert_int_equal(catalog_get(f->cat, 4, &got), 0);
    assert_int_equal(got.last_used, 5000);

    /* A reactivated key authenticates again; a removed one is unknown. */
    b.active = true;
    assert_int_equal(catalog_put(f->cat, &b), 0);
    assert_int_equal(catalog_authenticate(f->cat, b.digest, 2000, NULL, &p), 0);
    assert_int_equal(p.key_id, 2);
    catalog_remove(f->cat, 2);
    assert_int_equal(catalog_authenticate(f->cat, b.digest, 2000, NULL, &p), AK_ERR_KEY_UNKNOWN);
}

static int cmp_use(const void *x, const void *y)
{
    const struct key_use *a = x, *b = y;

    return a->id < b->id ? -1 : a->id > b->id;
}

static void test_collect_and_mark_flushed(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = make_rec(1, 1, KEY_TYPE_PRODUCTION, true, true, "a");
    struct key_rec b = make_rec(2, 1, KEY_TYPE_SANDBOX, true, false, "b");
    struct key_use *uses = (struct key_use *)&uses;
    struct principal p;
    size_t n = 99;

    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_put(f->cat, &b), 0);
    assert_int_equal(collect_uses(f->cat, &uses, &n), 0);
    assert_int_equal(n, 0);
    free(uses);

    assert_int_equal(catalog_authenticate(f->cat, a.digest, 100, NULL, &p), 0);
    assert_int_equal(catalog_authenticate(f->cat, b.digest, 200, NULL, &p), 0);
    assert_int_equal(collect_uses(f->cat, &uses, &n), 0);
    assert_int_equal(n, 2);
    assert_non_null(uses);
    qsort(uses, n, sizeof(*uses), cmp_use);
    assert_int_equal(uses[0].id, 1);
    assert_int_equal(uses[0].at, 100);
    assert_int_equal(uses[1].id, 2);
    assert_int_equal(uses[1].at, 200);

    /* Not marked yet: collected again. */
    {
        struct key_use *again = NULL;
        size_t m = 0;
        assert_int_equal(collect_uses(f->cat, &again, &m), 0);
        assert_int_equal(m, 2);
        free(again);
    }
    catalog_mark_flushed(f->cat, uses, n);
    free(uses);
    uses = NULL;
    assert_int_equal(collect_uses(f->cat, &uses, &n), 0);
    assert_int_equal(n, 0);
    free(uses);

    /* The same second again is no news; a later one is. */
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 100, NULL, &p), 0);
    assert_int_equal(collect_uses(f->cat, &uses, &n), 0);
    assert_int_equal(n, 0);
    free(uses);
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 150, NULL, &p), 0);
    assert_int_equal(collect_uses(f->cat, &uses, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(uses[0].id, 1);
    assert_int_equal(uses[0].at, 150);

    /* A use newer than what was flushed stays pending. */
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 160, NULL, &p), 0);
    catalog_mark_flushed(f->cat, uses, n); /* marks 150 */
    free(uses);
    assert_int_equal(collect_uses(f->cat, &uses, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(uses[0].at, 160);
    /* Marking an older value does not undo a newer mark; marking unknown ids is harmless. */
    {
        struct key_use old[2] = {{1, 160}, {99, 5}};
        catalog_mark_flushed(f->cat, old, 2);
        old[0].at = 120;
        catalog_mark_flushed(f->cat, old, 1);
    }
    free(uses);
    assert_int_equal(collect_uses(f->cat, &uses, &n), 0);
    assert_int_equal(n, 0);
    free(uses);
}

static void test_account_keys(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = make_rec(1, 1, KEY_TYPE_PRODUCTION, true, true, "a");
    struct key_rec b = make_rec(2, 1, KEY_TYPE_SANDBOX, false, false, "b");
    struct key_rec c = make_rec(3, 1, KEY_TYPE_PRODUCTION, true, false, "c");
    struct key_rec d = make_rec(4, 2, KEY_TYPE_PRODUCTION, true, true, "d");
    int64_t primary = -1;

    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_put(f->cat, &b), 0);
    assert_int_equal(catalog_put(f->cat, &c), 0);
    assert_int_equal(catalog_put(f->cat, &d), 0);
    assert_int_equal(catalog_account_keys(f->cat, 1, &primary), 3); /* inactive keys count */
    assert_int_equal(primary, 1);
    assert_int_equal(catalog_account_keys(f->cat, 2, &primary), 1);
    assert_int_equal(primary, 4);
    primary = -1;
    assert_int_equal(catalog_account_keys(f->cat, 3, &primary), 0);
    assert_int_equal(primary, 0);
    /* The primary moves. */
    a.primary = false;
    c.primary = true;
    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_put(f->cat, &c), 0);
    assert_int_equal(catalog_account_keys(f->cat, 1, &primary), 3);
    assert_int_equal(primary, 3);
    catalog_remove(f->cat, 3);
    assert_int_equal(catalog_account_keys(f->cat, 1, &primary), 2);
    assert_int_equal(primary, 0);
    catalog_remove(f->cat, 1);
    catalog_remove(f->cat, 2);
    assert_int_equal(catalog_account_keys(f->cat, 1, &primary), 0);
    assert_int_equal(primary, 0);
    assert_int_equal(list(f->cat, 1, false)->n, 0);
    assert_int_equal(catalog_account_keys(f->cat, 2, &primary), 1);
    /* An account emptied of keys can get keys again (under a new id). */
    c.id = 33;
    assert_int_equal(catalog_put(f->cat, &c), 0);
    assert_int_equal(catalog_account_keys(f->cat, 1, &primary), 1);
    assert_int_equal(primary, 33);
    assert_int_equal(list(f->cat, 1, false)->n, 1);
}

static void test_load_from_store(void **state)
{
    struct fixture *f = *state;
    struct key_rec p1 = store_account(f->store, "acme", 1);
    struct key_rec k2 = store_key(f->store, p1.account_id, KEY_TYPE_SANDBOX, "Dev", 2);
    struct key_rec p3 = store_account(f->store, "other", 3);
    struct key_rec k4 = store_key(f->store, p1.account_id, KEY_TYPE_PRODUCTION, "CI \xe5\x90\x8d", 4);
    struct key_rec got;
    struct principal pr;
    int64_t primary;
    struct seen *s;

    assert_int_equal(catalog_load(f->cat, f->store), 0);
    assert_int_equal(catalog_size(f->cat), 4);
    assert_int_equal(catalog_get(f->cat, p1.id, &got), 0);
    assert_rec_equal(&got, &p1);
    assert_int_equal(catalog_get(f->cat, k2.id, &got), 0);
    assert_rec_equal(&got, &k2);
    assert_int_equal(catalog_get(f->cat, k4.id, &got), 0);
    assert_rec_equal(&got, &k4);
    assert_int_equal(catalog_get(f->cat, p3.id, &got), 0);
    assert_rec_equal(&got, &p3);

    s = list(f->cat, p1.account_id, false);
    assert_int_equal(s->n, 3);
    assert_int_equal(s->recs[0].id, p1.id);
    assert_int_equal(s->recs[1].id, k2.id);
    assert_int_equal(s->recs[2].id, k4.id);
    s = list(f->cat, p1.account_id, true);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->recs[0].id, k2.id);
    assert_int_equal(catalog_account_keys(f->cat, p1.account_id, &primary), 3);
    assert_int_equal(primary, p1.id);
    assert_int_equal(catalog_account_keys(f->cat, p3.account_id, &primary), 1);
    assert_int_equal(primary, p3.id);
    assert_int_equal(catalog_authenticate(f->cat, k4.digest, 10, NULL, &pr), 0);
    assert_int_equal(pr.key_id, k4.id);
    assert_int_equal(pr.account_id, p1.account_id);
}

/* Many keys of two accounts, interleaved: each key list grows in place while loading; edits after it copy as usual. */
static void test_load_many_keys_per_account(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = store_account(f->store, "a", 1), b = store_account(f->store, "b", 2), k;
    int64_t ids[2][41] = {{a.id}, {b.id}};
    size_t n[2] = {1, 1};
    struct seen *s;

    for (int i = 0; i < 80; i++) {
        int which = i % 3 == 0; /* a gets two of every three */
        char name[16];
        snprintf(name, sizeof(name), "k%d", i);
        k = store_key(f->store, which ? b.account_id : a.account_id, KEY_TYPE_PRODUCTION, name, 100 + i);
        if (n[which] < 41)
            ids[which][n[which]++] = k.id;
    }
    assert_int_equal(catalog_load(f->cat, f->store), 0);
    assert_int_equal(catalog_size(f->cat), 82);
    s = list(f->cat, a.account_id, false);
    assert_int_equal(s->n, 54);
    for (size_t i = 1; i < s->n; i++)
        assert_true(s->recs[i - 1].id < s->recs[i].id);
    for (size_t i = 0; i < n[0]; i++)
        assert_int_equal(s->recs[i].id, ids[0][i]);
    s = list(f->cat, b.account_id, false);
    assert_int_equal(s->n, 28);
    for (size_t i = 0; i < n[1] && i < s->n; i++)
        assert_int_equal(s->recs[i].id, ids[1][i]);
    /* An edit after the load, and a removal: the lists behave as any other. */
    k = s->recs[5];
    snprintf(k.name, sizeof(k.name), "renamed");
    k.version++;
    assert_int_equal(catalog_put(f->cat, &k), 0);
    assert_int_equal(catalog_remove(f->cat, s->recs[6].id), 0);
    s = list(f->cat, b.account_id, false);
    assert_int_equal(s->n, 27);
    assert_string_equal(s->recs[5].name, "renamed");
    assert_int_equal(catalog_account_keys(f->cat, a.account_id, NULL), 54);
}

static void test_load_replaces_content(void **state)
{
    struct fixture *f = *state;
    struct key_rec p1 = store_account(f->store, "acme", 1);
    struct key_rec k2 = store_key(f->store, p1.account_id, KEY_TYPE_SANDBOX, "Dev", 2);
    struct key_rec stray = make_rec(999, p1.account_id, KEY_TYPE_SANDBOX, true, false, "stray");
    struct key_rec got;
    struct principal pr;

    make_digest(999, stray.digest);
    assert_int_equal(catalog_put(f->cat, &stray), 0);
    /* An in-memory name that the store does not hold is replaced too. */
    got = p1;
    snprintf(got.name, sizeof(got.name), "not in the store");
    assert_int_equal(catalog_put(f->cat, &got), 0);

    assert_int_equal(catalog_load(f->cat, f->store), 0);
    assert_int_equal(catalog_size(f->cat), 2);
    assert_int_equal(catalog_get(f->cat, 999, &got), AK_ERR_NOT_FOUND);
    assert_false(catalog_digest_taken(f->cat, stray.digest));
    assert_int_equal(catalog_authenticate(f->cat, stray.digest, 10, NULL, &pr), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(catalog_get(f->cat, p1.id, &got), 0);
    assert_string_equal(got.name, "Production Key");
    assert_int_equal(list(f->cat, p1.account_id, false)->n, 2);

    /* A key deleted in the store disappears on the next load. */
    assert_int_equal(store_key_delete(f->store, &T_ORIGIN, p1.account_id, k2.id, allow_delete, NULL), 0);
    assert_int_equal(catalog_load(f->cat, f->store), 0);
    assert_int_equal(catalog_size(f->cat), 1);
    assert_int_equal(catalog_get(f->cat, k2.id, &got), AK_ERR_NOT_FOUND);
    assert_int_equal(catalog_authenticate(f->cat, k2.digest, 10, NULL, &pr), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(list(f->cat, p1.account_id, false)->n, 1);
}

static void test_load_keeps_newer_last_used(void **state)
{
    struct fixture *f = *state;
    struct key_rec p1 = store_account(f->store, "acme", 1);
    struct key_rec k2 = store_key(f->store, p1.account_id, KEY_TYPE_SANDBOX, "Dev", 2);
    struct key_use *uses = NULL;
    struct key_use flush = {k2.id, 3000};
    struct principal pr;
    struct key_rec got;
    size_t n = 0;

    assert_int_equal(catalog_load(f->cat, f->store), 0);
    assert_int_equal(catalog_authenticate(f->cat, p1.digest, 2000, NULL, &pr), 0);
    assert_int_equal(catalog_authenticate(f->cat, k2.digest, 2000, NULL, &pr), 0);
    /* The store has seen neither use; k2 gets a newer one in the store. */
    assert_int_equal(store_uses_flush(f->store, &flush, 1, NULL, 0), 0);
    assert_int_equal(catalog_load(f->cat, f->store), 0);
    assert_int_equal(catalog_get(f->cat, p1.id, &got), 0);
    assert_int_equal(got.last_used, 2000); /* memory newer: kept */
    assert_int_equal(catalog_get(f->cat, k2.id, &got), 0);
    assert_int_equal(got.last_used, 3000); /* store newer: taken */
    /* The kept use is still pending for the store; k2's is already there. */
    assert_int_equal(collect_uses(f->cat, &uses, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(uses[0].id, p1.id);
    assert_int_equal(uses[0].at, 2000);
    catalog_mark_flushed(f->cat, uses, n);
    free(uses);
    uses = NULL;
    assert_int_equal(collect_uses(f->cat, &uses, &n), 0);
    assert_int_equal(n, 0);
    free(uses);
    /* And last_used does not go backward through a load either. */
    assert_int_equal(catalog_authenticate(f->cat, k2.digest, 2500, NULL, &pr), 0);
    assert_int_equal(catalog_get(f->cat, k2.id, &got), 0);
    assert_int_equal(got.last_used, 3000);
}

/* A store whose key_load hands over one key and then fails. */
struct failing_store {
    struct store super;
    struct key_rec rec;
};

static int failing_load(struct store *s, store_key_cb cb, void *arg)
{
    struct failing_store *fs = (struct failing_store *)s;
    int r = cb(arg, &fs->rec);

    return r != 0 ? r : AK_ERR_STORE;
}

static const struct store_ops FAILING_OPS = {.name = "failing", .key_load = failing_load};

static void test_load_failure_keeps_content(void **state)
{
    struct fixture *f = *state;
    struct failing_store fs = {.super = {.ops = &FAILING_OPS}};
    struct key_rec a = make_rec(1, 1, KEY_TYPE_PRODUCTION, true, true, "a");
    struct key_rec got;

    fs.rec = make_rec(50, 5, KEY_TYPE_PRODUCTION, true, true, "from the failing store");
    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_load(f->cat, &fs.super), AK_ERR_STORE);
    assert_int_equal(catalog_size(f->cat), 1);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_rec_equal(&got, &a);
    assert_int_equal(catalog_get(f->cat, 50, &got), AK_ERR_NOT_FOUND);
}

/*
 * A store of `n` keys in 7 accounts (ids 1..n, in order, as key_load hands
 * them) that then ends with `end`; with `dup` non-zero, key `dup` carries key
 * 1's digest. Enough keys for several of the loader's batches.
 */
struct many_store {
    struct store super;
    int n, dup, end;
};

static int many_load(struct store *s, store_key_cb cb, void *arg)
{
    struct many_store *ms = (struct many_store *)s;
    int r = 0;

    for (int id = 1; id <= ms->n && r == 0; id++) {
        struct key_rec rec = make_rec(id, 1 + id % 7, KEY_TYPE_PRODUCTION, true, id <= 7, "many");
        if (id == ms->dup)
            make_digest(1, rec.digest);
        r = cb(arg, &rec);
    }
    return r != 0 ? r : ms->end;
}

static const struct store_ops MANY_OPS = {.name = "many", .key_load = many_load};

static void test_load_in_batches(void **state)
{
    struct fixture *f = *state;
    struct many_store ms = {.super = {.ops = &MANY_OPS}, .n = 5000};
    struct key_rec got;
    struct principal pr;
    uint8_t d[DIGEST_LEN];

    assert_int_equal(catalog_load(f->cat, &ms.super), 0);
    assert_int_equal(catalog_size(f->cat), 5000);
    for (int id = 1; id <= 5000; id += 499) {
        assert_int_equal(catalog_get(f->cat, id, &got), 0);
        assert_int_equal(got.account_id, 1 + id % 7);
        make_digest(id, d);
        assert_int_equal(catalog_authenticate(f->cat, d, 10, NULL, &pr), 0);
        assert_int_equal(pr.key_id, id);
    }
    assert_int_equal(catalog_account_keys(f->cat, 1, NULL), 714);
    /* Loaded again over itself: usage records are adopted, the content is the same. */
    assert_int_equal(catalog_load(f->cat, &ms.super), 0);
    assert_int_equal(catalog_size(f->cat), 5000);
}

/* A failure after several batches (the store's, or a digest seen twice) leaves the catalog as it was, nothing leaked. */
static void test_load_in_batches_failing_keeps_content(void **state)
{
    struct fixture *f = *state;
    struct many_store ms = {.super = {.ops = &MANY_OPS}, .n = 3000, .end = AK_ERR_STORE};
    struct key_rec a = make_rec(9999, 1, KEY_TYPE_PRODUCTION, true, true, "a"), got;

    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_load(f->cat, &ms.super), AK_ERR_STORE);
    assert_int_equal(catalog_size(f->cat), 1);
    ms.end = 0;
    ms.dup = 2500;
    assert_int_equal(catalog_load(f->cat, &ms.super), AK_ERR_COLLISION);
    assert_int_equal(catalog_size(f->cat), 1);
    assert_int_equal(catalog_get(f->cat, 9999, &got), 0);
    assert_rec_equal(&got, &a);
    assert_int_equal(catalog_get(f->cat, 1, &got), AK_ERR_NOT_FOUND);
}

/* Issue 8: a batch naming one id twice (a hostile NOTIFY did it) was applied twice and retired one version twice. */
static void test_put_many_merges_repeated_ids(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = make_rec(1, 7, KEY_TYPE_PRODUCTION, true, false, "v10"), batch[4], got;

    a.version = 10;
    assert_int_equal(catalog_put(f->cat, &a), 0);
    for (int i = 0; i < 4; i++)
        batch[i] = a;
    batch[0].version = 11;
    snprintf(batch[0].name, sizeof(batch[0].name), "v11");
    batch[1].version = 12;
    snprintf(batch[1].name, sizeof(batch[1].name), "v12");
    batch[2].version = 11;
    snprintf(batch[2].name, sizeof(batch[2].name), "v11 again");
    batch[3].version = 12;
    snprintf(batch[3].name, sizeof(batch[3].name), "v12 later");
    assert_int_equal(catalog_put_many(f->cat, batch, 4), 0);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_string_equal(got.name, "v12 later"); /* the newest, the later of equals */
    assert_int_equal(list(f->cat, 7, false)->n, 1);
    assert_int_equal(catalog_size(f->cat), 1);
    /* A new key named twice in one batch is added once. */
    struct key_rec b = make_rec(2, 7, KEY_TYPE_SANDBOX, true, false, "b");
    batch[0] = b;
    batch[1] = b;
    assert_int_equal(catalog_put_many(f->cat, batch, 2), 0);
    assert_int_equal(list(f->cat, 7, false)->n, 2);
    assert_int_equal(catalog_size(f->cat), 2);
}

/* Issue 8: removing an id the catalog never held (a stranger's future id) must not hide that key when it is created. */
static void test_remove_unknown_is_not_remembered(void **state)
{
    struct fixture *f = *state;
    struct key_rec c = make_rec(99, 7, KEY_TYPE_SANDBOX, true, false, "c"), got;

    assert_int_equal(catalog_remove(f->cat, 99), 0);
    assert_int_equal(catalog_put(f->cat, &c), 0);
    assert_int_equal(catalog_get(f->cat, 99, &got), 0);
    assert_true(catalog_digest_taken(f->cat, c.digest));
}

struct hammer {
    struct catalog *cat;
    _Atomic int stop;
    _Atomic int64_t last_now; /* the last use recorded */
    uint8_t digest[DIGEST_LEN];
    int64_t ids[64];
    size_t nids;
};

/* A reader: looks keys up and uses one, all the time, while the writer fails allocations or reloads. */
static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    struct key_rec *rec = malloc(sizeof(*rec));
    struct principal p;
    int64_t now = 1000;

    while (rec != NULL && !atomic_load(&h->stop)) {
        for (size_t i = 0; i < h->nids; i++)
            catalog_get(h->cat, h->ids[i], rec);
        if (catalog_authenticate(h->cat, h->digest, ++now, NULL, &p) == 0)
            atomic_store(&h->last_now, now);
    }
    free(rec);
    return NULL;
}

/* Consistency after any failure: a key is either wholly there (by id, digest and list) or wholly absent. */
static void assert_whole_or_absent(struct catalog *cat, const struct key_rec *rec)
{
    struct key_rec got;
    bool by_id = catalog_get(cat, rec->id, &got) == 0, by_digest = catalog_digest_taken(cat, rec->digest);

    assert_int_equal(by_id, by_digest);
}

/*
 * Issue 8: every allocation of put, put_many, remove and load fails in turn
 * (catalog_fault_inject), with a reader running: each call answers 0 or
 * AK_ERR_NOMEM, leaves every key whole or absent, frees nothing a reader
 * may hold (ASan) and leaks nothing (valgrind).
 */
static void test_allocation_failures(void **state)
{
    struct fixture *f = *state;
    struct key_rec p1 = store_account(f->store, "acme", 1), k2 = store_key(f->store, p1.account_id, KEY_TYPE_SANDBOX, "Dev", 2);
    struct hammer h = {.cat = f->cat};
    pthread_t tid;
    int failures = 0;

    assert_int_equal(catalog_load(f->cat, f->store), 0);
    memcpy(h.digest, p1.digest, DIGEST_LEN);
    h.ids[h.nids++] = p1.id;
    h.ids[h.nids++] = k2.id;
    for (int64_t id = 1000; id < 1040; id++)
        h.ids[h.nids++] = id;
    atomic_init(&h.stop, 0);
    atomic_init(&h.last_now, 0);
    assert_int_equal(pthread_create(&tid, NULL, hammer_main, &h), 0);
    for (long after = 0; after < 40; after++) {
        struct key_rec n = make_rec(1000 + after, p1.account_id, KEY_TYPE_SANDBOX, true, false, "new \xe5\x90\x8d \"q\"");
        struct key_rec upd[2];
        int r;

        catalog_fault_inject(after);
        r = catalog_put(f->cat, &n);
        catalog_fault_inject(-1);
        assert_true(r == 0 || r == AK_ERR_NOMEM);
        failures += r != 0;
        assert_whole_or_absent(f->cat, &n);

        upd[0] = k2;
        upd[1] = n;
        snprintf(upd[0].name, sizeof(upd[0].name), "renamed %ld", after);
        catalog_fault_inject(after);
        r = catalog_put_many(f->cat, upd, 2);
        catalog_fault_inject(-1);
        assert_true(r == 0 || r == AK_ERR_NOMEM);
        assert_whole_or_absent(f->cat, &k2);
        assert_whole_or_absent(f->cat, &n);

        catalog_fault_inject(after);
        r = catalog_remove(f->cat, n.id);
        catalog_fault_inject(-1);
        assert_true(r == 0 || r == AK_ERR_NOMEM);
        assert_whole_or_absent(f->cat, &n);

        catalog_fault_inject(after);
        r = catalog_load(f->cat, f->store);
        catalog_fault_inject(-1);
        assert_true(r == 0 || r == AK_ERR_NOMEM);
        assert_whole_or_absent(f->cat, &p1);
        assert_whole_or_absent(f->cat, &k2);
    }
    atomic_store(&h.stop, 1);
    pthread_join(tid, NULL);
    assert_true(failures > 0); /* the hook did fail allocations */
    /* After all that, a reload restores exactly the store's content. */
    assert_int_equal(catalog_load(f->cat, f->store), 0);
    assert_int_equal(catalog_size(f->cat), 2);
}

/*
 * Issue 8: uses recorded while the catalog reloads (by readers still in the
 * replaced world) are kept: the reloaded key shares their usage record.
 */
static void test_load_keeps_uses_during_reload(void **state)
{
    struct fixture *f = *state;
    struct key_rec p1 = store_account(f->store, "acme", 1), got;
    struct hammer h = {.cat = f->cat};
    pthread_t tid;

    assert_int_equal(catalog_load(f->cat, f->store), 0);
    memcpy(h.digest, p1.digest, DIGEST_LEN);
    for (int round = 0; round < 50; round++) {
        atomic_init(&h.stop, 0);
        atomic_init(&h.last_now, 0);
        assert_int_equal(pthread_create(&tid, NULL, hammer_main, &h), 0);
        for (int i = 0; i < 4 + round % 5; i++)
            assert_int_equal(catalog_load(f->cat, f->store), 0);
        atomic_store(&h.stop, 1);
        pthread_join(tid, NULL);
        assert_int_equal(catalog_get(f->cat, p1.id, &got), 0);
        assert_true(got.last_used >= atomic_load(&h.last_now));
    }
}

/*
 * Issue 8: when the digest table cannot grow, the key was already published
 * by id, where a reader may have found it: it must be retired through ebr,
 * not freed at once (it was freed at once before).
 */
static void test_half_published_key_is_retired(void **state)
{
    struct fixture *f = *state;
    struct world *w;
    size_t before, retired = 0;
    int64_t id = 1;
    int r = 0;

    /* Fill until the next insert grows both tables (the id table first, then the digest table). */
    w = atomic_load(&f->cat->world);
    for (;;) {
        struct ptable *t = atomic_load(&w->by_digest);
        if (t != NULL && (t->used + 1 + 1) * 2 > t->mask + 1)
            break;
        struct key_rec rec = make_rec(id, 7, KEY_TYPE_SANDBOX, true, false, "k");
        assert_int_equal(catalog_put(f->cat, &rec), 0);
        id++;
    }
    struct key_rec rec = make_rec(id, 7, KEY_TYPE_SANDBOX, true, false, "k");
    assert_int_equal(catalog_put(f->cat, &rec), 0); /* now at the edge: the next one grows */
    id++;
    before = f->cat->ebr.ngarbage;
    assert_int_equal(ebr_enter(&f->cat->ebr), 0); /* a reader inside: nothing retired from now on may be freed */
    struct key_rec last = make_rec(id, 7, KEY_TYPE_SANDBOX, true, false, "k");
    /* a put allocates: its three batch arrays, the usage record, the entry, the key list, the id table, the digest table */
    catalog_fault_inject(7);
    r = catalog_put(f->cat, &last);
    catalog_fault_inject(-1);
    for (size_t i = before; i < f->cat->ebr.ngarbage; i++)
        if (f->cat->ebr.garbage[i].free_fn == entry_free_key)
            retired++;
    ebr_exit(&f->cat->ebr);
    assert_int_equal(r, AK_ERR_NOMEM);
    assert_int_equal(retired, 1);
    assert_int_equal(catalog_get(f->cat, id, &rec), AK_ERR_NOT_FOUND);
    assert_false(catalog_digest_taken(f->cat, last.digest));
}

/*
 * Issue 8: a reader that found a key in the world a reload replaces may
 * record a use on it after the reload: the reloaded key shows that use
 * (it was lost before: the reload copied last_used once, then parted).
 */
static void test_load_keeps_a_use_recorded_in_the_old_world(void **state)
{
    struct fixture *f = *state;
    struct key_rec p1 = store_account(f->store, "acme", 1), got;
    struct entry *old;

    assert_int_equal(catalog_load(f->cat, f->store), 0);
    assert_int_equal(ebr_enter(&f->cat->ebr), 0); /* the reader: inside before the reload */
    old = ptable_find(TABLE(f->cat, by_id), (uint64_t)p1.id, entry_id_key);
    assert_non_null(old);
    assert_int_equal(catalog_load(f->cat, f->store), 0);
    /* what catalog_authenticate does on the entry it found, after the new world is published */
    atomic_store(&old->usage->last_used, 1705312999);
    ebr_exit(&f->cat->ebr);
    assert_int_equal(catalog_get(f->cat, p1.id, &got), 0);
    assert_int_equal(got.last_used, 1705312999);
}

/* ---- suspension (issue 9) ---- */

/* The published set, checked whole: strictly ascending and equal to the model's suspended ids. */
static void assert_suspended_set(struct catalog *cat, const bool *model, int64_t max_id)
{
    const struct idset *set = atomic_load(&cat->suspended);
    size_t n = 0;

    for (int64_t id = 1; id <= max_id; id++) {
        if (catalog_is_suspended(cat, id) != model[id])
            fail_msg("account %lld: suspended %d, expected %d", (long long)id, !model[id], model[id]);
        n += model[id];
    }
    if (n == 0) {
        assert_null(set); /* an empty set is no set: readers pay one load */
        return;
    }
    assert_non_null(set);
    assert_int_equal(set->n, n);
    for (size_t i = 0; i < set->n; i++) {
        assert_true(set->ids[i] >= 1 && set->ids[i] <= max_id);
        assert_true(model[set->ids[i]]);
        assert_true(i == 0 || set->ids[i - 1] < set->ids[i]);
    }
}

/* catalog_suspend over a random sequence (repeats, first, last, middle, emptying) agrees with a plain model. */
static void test_suspend_matches_model(void **state)
{
    struct fixture *f = *state;
    enum { MAX_ID = 40 };
    bool model[MAX_ID + 1] = {false};
    uint64_t rng = 0x243f6a8885a308d3ULL;

    assert_false(catalog_is_suspended(f->cat, 1));
    assert_false(catalog_is_suspended(f->cat, 0));
    for (int step = 0; step < 3000; step++) {
        int64_t id;
        bool on;
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        id = 1 + (int64_t)((rng >> 33) % MAX_ID);
        /* lean towards emptying now and then, so that the set is often small, empty, or one id */
        on = ((rng >> 20) % 100) < (step / 500 % 2 == 0 ? 60u : 25u);
        assert_int_equal(catalog_suspend(f->cat, id, on), 0);
        model[id] = on;
        assert_suspended_set(f->cat, model, MAX_ID);
    }
    /* Ids at the ends of the range. */
    assert_int_equal(catalog_suspend(f->cat, INT64_MAX, true), 0);
    assert_int_equal(catalog_suspend(f->cat, -5, true), 0);
    assert_true(catalog_is_suspended(f->cat, INT64_MAX));
    assert_true(catalog_is_suspended(f->cat, -5));
    assert_false(catalog_is_suspended(f->cat, INT64_MAX - 1));
    assert_int_equal(catalog_suspend(f->cat, INT64_MAX, false), 0);
    assert_int_equal(catalog_suspend(f->cat, -5, false), 0);
    assert_suspended_set(f->cat, model, MAX_ID);
}

static void test_set_suspended_replaces(void **state)
{
    struct fixture *f = *state;
    static const int64_t first[] = {3, 5, 9}, second[] = {1, 9, 12};
    bool model[16] = {false};

    assert_int_equal(catalog_set_suspended(f->cat, first, 3), 0);
    model[3] = model[5] = model[9] = true;
    assert_suspended_set(f->cat, model, 15);
    assert_int_equal(catalog_set_suspended(f->cat, second, 3), 0);
    memset(model, 0, sizeof(model));
    model[1] = model[9] = model[12] = true;
    assert_suspended_set(f->cat, model, 15);
    /* Then single changes work on the new set. */
    assert_int_equal(catalog_suspend(f->cat, 4, true), 0);
    assert_int_equal(catalog_suspend(f->cat, 9, false), 0);
    model[4] = true;
    model[9] = false;
    assert_suspended_set(f->cat, model, 15);
    /* Out of memory: refused, the old set kept (a suspension must never be lost). */
    catalog_fault_inject(0);
    assert_int_equal(catalog_set_suspended(f->cat, first, 3), AK_ERR_NOMEM);
    catalog_fault_inject(0);
    assert_int_equal(catalog_suspend(f->cat, 7, true), AK_ERR_NOMEM);
    catalog_fault_inject(0);
    assert_int_equal(catalog_suspend(f->cat, 4, false), AK_ERR_NOMEM);
    catalog_fault_inject(-1);
    assert_suspended_set(f->cat, model, 15);
    /* Empty replaces everything. */
    assert_int_equal(catalog_set_suspended(f->cat, NULL, 0), 0);
    memset(model, 0, sizeof(model));
    assert_suspended_set(f->cat, model, 15);
    assert_int_equal(catalog_suspend(f->cat, 2, false), 0); /* not suspended: nothing to do */
    assert_suspended_set(f->cat, model, 15);
}

/* A suspended account's key: refused after the inactive check, before the use is recorded. */
static void test_authenticate_suspended(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = make_rec(1, 10, KEY_TYPE_PRODUCTION, true, true, "a"),
                   off = make_rec(2, 10, KEY_TYPE_SANDBOX, false, false, "off"),
                   b = make_rec(3, 11, KEY_TYPE_PRODUCTION, true, true, "b"), got;
    struct principal p;

    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_put(f->cat, &off), 0);
    assert_int_equal(catalog_put(f->cat, &b), 0);
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 100, NULL, &p), 0);
    assert_int_equal(catalog_suspend(f->cat, 10, true), 0);
    memset(&p, 0x5a, sizeof(p));
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 200, NULL, &p), AK_ERR_SUSPENDED);
    assert_int_equal(p.key_id, (int64_t)0x5a5a5a5a5a5a5a5aLL); /* nothing handed out */
    assert_int_equal(catalog_authenticate(f->cat, off.digest, 200, NULL, &p), AK_ERR_KEY_INACTIVE);
    assert_int_equal(catalog_authenticate(f->cat, b.digest, 200, NULL, &p), 0);
    assert_int_equal(catalog_get(f->cat, a.id, &got), 0);
    assert_int_equal(got.last_used, 100);
    assert_int_equal(catalog_suspend(f->cat, 10, false), 0);
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 300, NULL, &p), 0);
    assert_int_equal(p.key_id, a.id);
    assert_int_equal(catalog_get(f->cat, a.id, &got), 0);
    assert_int_equal(got.last_used, 300);
}

struct primary_watch {
    struct catalog *cat;
    int64_t account;
    atomic_int stop;
    atomic_long lists, bad;
};

static void count_primary(void *arg, const struct key_rec *rec)
{
    *(int *)arg += rec->primary;
}

/* Reader: every list of the account has exactly one primary (no cmocka here: it counts). */
static void *primary_watch_main(void *arg)
{
    struct primary_watch *w = arg;

    while (!atomic_load(&w->stop)) {
        int n = 0;
        catalog_list(w->cat, w->account, false, count_primary, &n);
        atomic_fetch_add(&w->lists, 1);
        if (n != 1)
            atomic_fetch_add(&w->bad, 1);
        sched_yield(); /* under valgrind, which runs one thread at a time, the writer must get its turn */
    }
    return NULL;
}

/*
 * A new primary key and the old one's demotion, put together (an operator's
 * make_primary, or that change heard from another instance), are published
 * in one step: a reader never lists two primaries, or none.
 */
static void test_new_primary_with_demotion(void **state)
{
    struct fixture *f = *state;
    struct primary_watch w = {.cat = f->cat, .account = 7};
    struct key_rec cur = make_rec(1, 7, KEY_TYPE_PRODUCTION, true, true, "first"), batch[2], got;
    const long rounds = test_iterations(3000, 300);
    pthread_t tid;

    assert_int_equal(catalog_put(f->cat, &cur), 0);
    assert_int_equal(pthread_create(&tid, NULL, primary_watch_main, &w), 0);
    for (long i = 0; i < rounds; i++) {
        long seen = atomic_load(&w.lists);
        /* the reader lists between every two writes, so that it is running while the next one publishes */
        while (atomic_load(&w.lists) == seen)
            sched_yield();
        batch[0] = cur;
        batch[0].primary = false;
        batch[1] = make_rec(cur.id + 1, 7, KEY_TYPE_PRODUCTION, true, true, "next");
        assert_int_equal(catalog_put_many(f->cat, batch, 2), 0);
        /* keep the list short: the demoted key goes */
        assert_int_equal(catalog_remove(f->cat, cur.id), 0);
        cur = batch[1];
    }
    atomic_store(&w.stop, 1);
    pthread_join(tid, NULL);
    assert_true(atomic_load(&w.lists) > 0);
    if (atomic_load(&w.bad) != 0)
        fail_msg("%ld of %ld lists had no primary or two", atomic_load(&w.bad), atomic_load(&w.lists));
    assert_int_equal(catalog_get(f->cat, cur.id, &got), 0);
    assert_true(got.primary);
}

/* ---- restrictions and usage per key (issue 12) ---- */

#define HOUR_A 1705309200 /* 2024-01-15T09:00:00Z */
#define HOUR_B (HOUR_A + USAGE_HOUR_S)

/* A client address callback: `ctx` is the address's text; counts its calls. */
struct client_stub {
    const char *text;
    int calls;
};

static void stub_client(void *ctx, struct netaddr *ret)
{
    struct client_stub *c = ctx;

    c->calls++;
    if (netaddr_parse(c->text, strlen(c->text), ret) != 0)
        fail_msg("stub client \"%s\" does not parse", c->text);
}

/* One collect's usage rows (the last_used part dropped), sorted by key id. */
struct rows {
    struct usage_row *v;
    size_t n;
};

static int cmp_row(const void *x, const void *y)
{
    const struct usage_row *a = x, *b = y;

    return a->key_id < b->key_id ? -1 : a->key_id > b->key_id;
}

static struct rows collect_rows(struct catalog *cat, int64_t hour)
{
    struct catalog_flush fl;
    struct rows r;

    memset(&fl, 0x5a, sizeof(fl));
    assert_int_equal(catalog_collect(cat, hour, &fl), 0);
    free(fl.uses);
    r.v = fl.rows;
    r.n = fl.nrows;
    assert_true(r.n == 0 || r.v != NULL);
    if (r.n > 1)
        qsort(r.v, r.n, sizeof(*r.v), cmp_row);
    return r;
}

static const struct usage_row *row_of(const struct rows *r, int64_t key_id)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].key_id == key_id)
            return &r->v[i];
    return NULL;
}

/* Checks the row of `key_id`: its labels and every count (verified, inactive, expired, suspended, scope, ip). */
static void expect_row(const struct rows *r, int64_t key_id, int64_t account_id, bool sandbox, int64_t hour,
                       const uint64_t want[USAGE_NCOUNTS])
{
    const struct usage_row *row = row_of(r, key_id);

    if (row == NULL)
        fail_msg("no usage row for key %lld", (long long)key_id);
    assert_int_equal(row->account_id, account_id);
    assert_int_equal(row->sandbox, sandbox);
    assert_int_equal(row->hour, hour);
    for (int c = 0; c < USAGE_NCOUNTS; c++)
        if (row->n[c] != want[c])
            fail_msg("key %lld: %s is %llu, want %llu", (long long)key_id, usage_count_name(c), (unsigned long long)row->n[c],
                     (unsigned long long)want[c]);
}

/* A known key's every outcome is counted under its reason; unknown keys and unused keys have no row. */
static void test_usage_counted_by_reason(void **state)
{
    struct fixture *f = *state;
    struct key_rec ok = make_rec(1, 1, KEY_TYPE_PRODUCTION, true, true, "ok"),
                   off = make_rec(2, 1, KEY_TYPE_SANDBOX, false, false, "off"),
                   leaked = make_rec(3, 1, KEY_TYPE_PRODUCTION, false, false, "leaked"),
                   old = make_rec(4, 1, KEY_TYPE_SANDBOX, true, false, "expired"),
                   susp = make_rec(5, 2, KEY_TYPE_PRODUCTION, true, true, "suspended"),
                   scoped = make_rec(6, 1, KEY_TYPE_PRODUCTION, true, false, "scoped"),
                   fenced = make_rec(7, 1, KEY_TYPE_SANDBOX, true, false, "fenced"),
                   idle = make_rec(8, 1, KEY_TYPE_PRODUCTION, true, false, "idle"), got;
    struct client_stub outside = {"192.0.2.1", 0}, inside = {"10.1.2.3", 0};
    struct auth_req need_write = {.builtin = SCOPE_KEYS_WRITE}, need_posts = {.required = "posts:read", .required_len = 10},
                    from_outside = {.client = stub_client, .client_ctx = &outside},
                    from_inside = {.client = stub_client, .client_ctx = &inside};
    struct principal p;
    uint8_t unknown[DIGEST_LEN];
    struct rows r;

    leaked.leaked_at = 50;
    old.expires_at = 1000;
    scoped.has_scopes = true;
    snprintf(scoped.scopes, sizeof(scoped.scopes), "posts:*");
    fenced.has_ips = true;
    snprintf(fenced.allowed_ips, sizeof(fenced.allowed_ips), "10.0.0.0/8");
    assert_int_equal(catalog_put_many(f->cat, (struct key_rec[]){ok, off, leaked, old, susp, scoped, fenced, idle}, 8), 0);
    assert_int_equal(catalog_suspend(f->cat, 2, true), 0);
    make_digest(999, unknown);

    for (int i = 0; i < 3; i++)
        assert_int_equal(catalog_authenticate(f->cat, ok.digest, 2000, NULL, &p), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(catalog_authenticate(f->cat, off.digest, 2000, NULL, &p), AK_ERR_KEY_INACTIVE);
    assert_int_equal(catalog_authenticate(f->cat, leaked.digest, 2000, NULL, &p), AK_ERR_LEAKED);
    for (int i = 0; i < 4; i++)
        assert_int_equal(catalog_authenticate(f->cat, old.digest, 2000, NULL, &p), AK_ERR_EXPIRED);
    assert_int_equal(catalog_authenticate(f->cat, susp.digest, 2000, NULL, &p), AK_ERR_SUSPENDED);
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 2000, &need_write, &p), AK_ERR_SCOPE);
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 2000, &need_write, &p), AK_ERR_SCOPE);
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 2000, &need_posts, &p), 0);
    assert_int_equal(catalog_authenticate(f->cat, fenced.digest, 2000, &from_outside, &p), AK_ERR_IP);
    assert_int_equal(catalog_authenticate(f->cat, fenced.digest, 2000, &from_inside, &p), 0);
    assert_int_equal(catalog_authenticate(f->cat, fenced.digest, 2000, &from_inside, &p), 0);
    assert_int_equal(catalog_authenticate(f->cat, unknown, 2000, NULL, &p), AK_ERR_KEY_UNKNOWN);

    r = collect_rows(f->cat, HOUR_A);
    assert_int_equal(r.n, 7); /* not the idle key, not the unknown one */
    assert_null(row_of(&r, idle.id));
    expect_row(&r, ok.id, 1, false, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 3});
    expect_row(&r, off.id, 1, true, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_INACTIVE] = 2});
    expect_row(&r, leaked.id, 1, false, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_INACTIVE] = 1});
    expect_row(&r, old.id, 1, true, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_EXPIRED] = 4});
    expect_row(&r, susp.id, 2, false, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_SUSPENDED] = 1});
    expect_row(&r, scoped.id, 1, false, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 1, [USAGE_SCOPE] = 2});
    expect_row(&r, fenced.id, 1, true, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 2, [USAGE_IP] = 1});
    free(r.v);
    /* Refusals are not uses. */
    assert_int_equal(catalog_get(f->cat, off.id, &got), 0);
    assert_int_equal(got.last_used, 0);
    assert_int_equal(catalog_get(f->cat, old.id, &got), 0);
    assert_int_equal(got.last_used, 0);
    assert_int_equal(catalog_get(f->cat, susp.id, &got), 0);
    assert_int_equal(got.last_used, 0);

    /* Taken: a second collect has none; new counts are labelled with the hour of their collect. */
    r = collect_rows(f->cat, HOUR_A);
    assert_int_equal(r.n, 0);
    free(r.v); /* may be room made for rows, none filled */
    assert_int_equal(catalog_authenticate(f->cat, ok.digest, 5000, NULL, &p), 0);
    assert_int_equal(catalog_authenticate(f->cat, off.digest, 5000, NULL, &p), AK_ERR_KEY_INACTIVE);
    r = collect_rows(f->cat, HOUR_B);
    assert_int_equal(r.n, 2);
    expect_row(&r, ok.id, 1, false, HOUR_B, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 1});
    expect_row(&r, off.id, 1, true, HOUR_B, (uint64_t[USAGE_NCOUNTS]){[USAGE_INACTIVE] = 1});
    free(r.v);
    r = collect_rows(f->cat, HOUR_B);
    assert_int_equal(r.n, 0);
    free(r.v); /* may be room made for rows, none filled */
}

/* A key's counts survive a new version of it (a PATCH) and its removal before the flush (then as a leftover, once). */
static void test_usage_survives_update_and_remove(void **state)
{
    struct fixture *f = *state;
    struct key_rec a = make_rec(1, 3, KEY_TYPE_SANDBOX, true, false, "a"), b = make_rec(2, 3, KEY_TYPE_PRODUCTION, true, true, "b"),
                   c = make_rec(3, 3, KEY_TYPE_PRODUCTION, true, false, "c");
    struct principal p;
    struct rows r;

    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_put(f->cat, &b), 0);
    assert_int_equal(catalog_put(f->cat, &c), 0);
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 100, NULL, &p), 0);
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 101, NULL, &p), 0);
    /* a new version, deactivated: the counts so far stay, the next is a refusal */
    a.active = false;
    assert_int_equal(catalog_put(f->cat, &a), 0);
    assert_int_equal(catalog_authenticate(f->cat, a.digest, 102, NULL, &p), AK_ERR_KEY_INACTIVE);
    assert_int_equal(catalog_authenticate(f->cat, b.digest, 102, NULL, &p), 0);
    assert_int_equal(catalog_remove(f->cat, a.id), 0);
    assert_int_equal(catalog_remove(f->cat, c.id), 0); /* never used: leaves nothing */
    r = collect_rows(f->cat, HOUR_B);
    assert_int_equal(r.n, 2);
    expect_row(&r, a.id, 3, true, HOUR_B, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 2, [USAGE_INACTIVE] = 1});
    expect_row(&r, b.id, 3, false, HOUR_B, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 1});
    free(r.v);
    r = collect_rows(f->cat, HOUR_B);
    assert_int_equal(r.n, 0);
    free(r.v); /* may be room made for rows, none filled */
    /* Collected, then removed: nothing left over to count twice. */
    assert_int_equal(catalog_authenticate(f->cat, b.digest, 103, NULL, &p), 0);
    r = collect_rows(f->cat, HOUR_A);
    assert_int_equal(r.n, 1);
    free(r.v);
    assert_int_equal(catalog_remove(f->cat, b.id), 0);
    r = collect_rows(f->cat, HOUR_A);
    assert_int_equal(r.n, 0);
    free(r.v); /* may be room made for rows, none filled */
}

struct usage_race {
    struct catalog *cat;
    const uint8_t *good, *off;
    long rounds;
    atomic_int ready;
    atomic_int go;
    atomic_int finished;
    atomic_long bad;
};

/* One reader: `rounds` verifications of one key and as many refusals of another (no cmocka here: it counts). */
static void *usage_race_main(void *arg)
{
    struct usage_race *u = arg;
    struct principal p;

    atomic_fetch_add(&u->ready, 1);
    while (!atomic_load(&u->go))
        sched_yield();
    for (long i = 0; i < u->rounds; i++) {
        if (catalog_authenticate(u->cat, u->good, 1000 + i % 7, NULL, &p) != 0)
            atomic_fetch_add(&u->bad, 1);
        if (catalog_authenticate(u->cat, u->off, 1000, NULL, &p) != AK_ERR_KEY_INACTIVE)
            atomic_fetch_add(&u->bad, 1);
    }
    atomic_fetch_add(&u->finished, 1);
    return NULL;
}

/*
 * N threads count on the same two keys at once (the refusals' counters are
 * made by whichever thread refuses first) while the flush collects
 * again and again: every count arrives exactly once.
 */
static void test_usage_concurrent_counts(void **state)
{
    enum { N = 4 };
    struct fixture *f = *state;
    struct key_rec good = make_rec(1, 1, KEY_TYPE_PRODUCTION, true, true, "good"),
                   off = make_rec(2, 1, KEY_TYPE_PRODUCTION, false, false, "off");
    struct usage_race u = {.cat = f->cat, .good = good.digest, .off = off.digest, .rounds = test_iterations(20000, 2000)};
    pthread_t tid[N];
    uint64_t verified = 0, inactive = 0, other = 0;
    long collects = 0;

    assert_int_equal(catalog_put(f->cat, &good), 0);
    assert_int_equal(catalog_put(f->cat, &off), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&tid[i], NULL, usage_race_main, &u), 0);
    while (atomic_load(&u.ready) != N)
        sched_yield();
    atomic_store(&u.go, 1);
    /* The flush collects while the readers run, then once more after they are done. */
    for (bool last = false; !last; collects++) {
        struct rows r;
        last = atomic_load(&u.finished) == N;
        r = collect_rows(f->cat, HOUR_A);
        for (size_t i = 0; i < r.n; i++) {
            if (r.v[i].key_id != good.id && r.v[i].key_id != off.id)
                fail_msg("a row for key %lld", (long long)r.v[i].key_id);
            verified += r.v[i].n[USAGE_VERIFIED];
            inactive += r.v[i].n[USAGE_INACTIVE];
            other += r.v[i].n[USAGE_EXPIRED] + r.v[i].n[USAGE_SUSPENDED] + r.v[i].n[USAGE_SCOPE] + r.v[i].n[USAGE_IP];
            if (r.v[i].key_id == good.id && r.v[i].n[USAGE_INACTIVE] != 0)
                fail_msg("the good key counted as inactive");
            if (r.v[i].key_id == off.id && r.v[i].n[USAGE_VERIFIED] != 0)
                fail_msg("the inactive key counted as verified");
        }
        free(r.v);
        sched_yield(); /* under valgrind, which runs one thread at a time, the readers must get their turn */
    }
    for (int i = 0; i < N; i++)
        pthread_join(tid[i], NULL);
    assert_int_equal(atomic_load(&u.bad), 0);
    assert_int_equal(verified, (uint64_t)N * (uint64_t)u.rounds);
    assert_int_equal(inactive, (uint64_t)N * (uint64_t)u.rounds);
    assert_int_equal(other, 0);
    assert_true(collects >= 1);
    /* nothing more to come */
    {
        struct rows r = collect_rows(f->cat, HOUR_A);
        assert_int_equal(r.n, 0);
        free(r.v); /* may be room made for rows, none filled */
    }
}

/* An allowlist refusal: AK_ERR_IP, not a use, counted; the client is asked only of keys with an allowlist. */
static void test_authenticate_allowlist(void **state)
{
    struct fixture *f = *state;
    struct key_rec fenced = make_rec(1, 1, KEY_TYPE_PRODUCTION, true, false, "fenced"),
                   plain = make_rec(2, 1, KEY_TYPE_PRODUCTION, true, true, "plain"),
                   off = make_rec(3, 1, KEY_TYPE_PRODUCTION, false, false, "off"),
                   both = make_rec(4, 1, KEY_TYPE_PRODUCTION, true, false, "both"), got;
    struct client_stub stub = {"192.0.2.1", 0};
    struct auth_req req = {.client = stub_client, .client_ctx = &stub};
    struct principal p, untouched;
    struct rows r;

    fenced.has_ips = off.has_ips = both.has_ips = true;
    snprintf(fenced.allowed_ips, sizeof(fenced.allowed_ips), "10.0.0.0/8,::1/128");
    snprintf(off.allowed_ips, sizeof(off.allowed_ips), "10.0.0.0/8");
    snprintf(both.allowed_ips, sizeof(both.allowed_ips), "10.0.0.0/8");
    both.has_scopes = true;
    snprintf(both.scopes, sizeof(both.scopes), "keys:read");
    fenced.last_used = 500;
    assert_int_equal(catalog_put_many(f->cat, (struct key_rec[]){fenced, plain, off, both}, 4), 0);

    memset(&p, 0x5a, sizeof(p));
    untouched = p;
    assert_int_equal(catalog_authenticate(f->cat, fenced.digest, 1000, &req, &p), AK_ERR_IP);
    assert_int_equal(stub.calls, 1);
    assert_memory_equal(&p, &untouched, sizeof(p));
    assert_int_equal(catalog_get(f->cat, fenced.id, &got), 0);
    assert_int_equal(got.last_used, 500);
    assert_true(got.has_ips);
    assert_string_equal(got.allowed_ips, "10.0.0.0/8,::1/128");
    assert_false(got.has_scopes);
    stub.text = "2001:db8::1";
    assert_int_equal(catalog_authenticate(f->cat, fenced.digest, 1000, &req, &p), AK_ERR_IP);
    stub.text = "::ffff:11.0.0.1";
    assert_int_equal(catalog_authenticate(f->cat, fenced.digest, 1000, &req, &p), AK_ERR_IP);
    /* Inside: a use. */
    stub.text = "10.200.0.1";
    assert_int_equal(catalog_authenticate(f->cat, fenced.digest, 1000, &req, &p), 0);
    assert_int_equal(p.key_id, fenced.id);
    assert_true(p.has_ips);
    assert_false(p.restricted);
    assert_int_equal(p.scopes_len, 0);
    assert_int_equal(catalog_get(f->cat, fenced.id, &got), 0);
    assert_int_equal(got.last_used, 1000);
    stub.text = "::1";
    assert_int_equal(catalog_authenticate(f->cat, fenced.digest, 1001, &req, &p), 0);
    assert_int_equal(stub.calls, 5);

    /* A key without an allowlist never asks for the client. */
    stub.text = "192.0.2.1";
    assert_int_equal(catalog_authenticate(f->cat, plain.digest, 1000, &req, &p), 0);
    assert_int_equal(stub.calls, 5);
    assert_false(p.has_ips);
    /* An inactive key is refused as inactive first; an allowlist refusal comes before a scope refusal. */
    assert_int_equal(catalog_authenticate(f->cat, off.digest, 1000, &req, &p), AK_ERR_KEY_INACTIVE);
    req.builtin = SCOPE_KEYS_WRITE;
    assert_int_equal(catalog_authenticate(f->cat, both.digest, 1000, &req, &p), AK_ERR_IP);
    stub.text = "10.0.0.1";
    assert_int_equal(catalog_authenticate(f->cat, both.digest, 1000, &req, &p), AK_ERR_SCOPE);
    req.builtin = SCOPE_KEYS_READ;
    assert_int_equal(catalog_authenticate(f->cat, both.digest, 1000, &req, &p), 0);
    assert_true(p.restricted);
    assert_true(p.has_ips);

    r = collect_rows(f->cat, HOUR_A);
    expect_row(&r, fenced.id, 1, false, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 2, [USAGE_IP] = 3});
    expect_row(&r, off.id, 1, false, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_INACTIVE] = 1});
    expect_row(&r, both.id, 1, false, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 1, [USAGE_IP] = 1, [USAGE_SCOPE] = 1});
    free(r.v);
}

/* Scopes at verification: the route's built-in scope and a gateway's required ones; the principal carries the list. */
static void test_authenticate_scopes(void **state)
{
    struct fixture *f = *state;
    struct key_rec scoped = make_rec(1, 1, KEY_TYPE_PRODUCTION, true, false, "scoped"),
                   plain = make_rec(2, 1, KEY_TYPE_PRODUCTION, true, true, "plain"), got;
    struct auth_req req = {0};
    struct principal p;

    scoped.has_scopes = true;
    snprintf(scoped.scopes, sizeof(scoped.scopes), "keys:read posts:*");
    assert_int_equal(catalog_put(f->cat, &scoped), 0);
    assert_int_equal(catalog_put(f->cat, &plain), 0);

    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 100, &req, &p), 0);
    assert_true(p.restricted);
    assert_false(p.has_ips);
    assert_int_equal(p.scopes_len, strlen("keys:read posts:*"));
    assert_string_equal(p.scopes, "keys:read posts:*");
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 100, NULL, &p), 0);
    req.builtin = SCOPE_KEYS_READ;
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 100, &req, &p), 0);
    req.builtin = SCOPE_KEYS_WRITE;
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 200, &req, &p), AK_ERR_SCOPE);
    assert_int_equal(catalog_get(f->cat, scoped.id, &got), 0);
    assert_int_equal(got.last_used, 100); /* a refusal is not a use */
    assert_true(got.has_scopes);
    assert_string_equal(got.scopes, "keys:read posts:*");
    req.builtin = SCOPE_AUDIT_READ;
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 200, &req, &p), AK_ERR_SCOPE);
    req.builtin = NULL;
    req.required = "posts:a,posts:b:c\tkeys:read";
    req.required_len = strlen(req.required);
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 200, &req, &p), 0);
    req.required = "posts:a billing:read";
    req.required_len = strlen(req.required);
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 300, &req, &p), AK_ERR_SCOPE);
    /* only required_len bytes count */
    req.required_len = strlen("posts:a");
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 300, &req, &p), 0);
    /* both at once: each must hold */
    req.builtin = SCOPE_KEYS_WRITE;
    assert_int_equal(catalog_authenticate(f->cat, scoped.digest, 300, &req, &p), AK_ERR_SCOPE);

    /* An unrestricted key passes whatever is asked, and says so. */
    req.builtin = SCOPE_AUDIT_READ;
    req.required = "anything:at:all other";
    req.required_len = strlen(req.required);
    memset(&p, 0x5a, sizeof(p));
    assert_int_equal(catalog_authenticate(f->cat, plain.digest, 300, &req, &p), 0);
    assert_false(p.restricted);
    assert_false(p.has_ips);
    assert_int_equal(p.scopes_len, 0);
    assert_string_equal(p.scopes, "");
}

/* Issue 13: a rate-limited key is admitted `limit` times a window, then refused (counted, not a use); the report says where it
 * stands. */
static void test_rate_limit(void **state)
{
    struct fixture *f = *state;
    struct key_rec k = make_rec(1, 1, KEY_TYPE_PRODUCTION, true, true, "limited"), got;
    struct rate_report rate;
    struct auth_req req = {.rate = &rate};
    struct principal p, untouched;
    struct rows r;

    k.rate_limit = 3;
    k.rate_window = 60;
    assert_int_equal(catalog_put(f->cat, &k), 0);
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_int_equal(got.rate_limit, 3);
    assert_int_equal(got.rate_window, 60);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(catalog_authenticate(f->cat, k.digest, 6000 + i, &req, &p), 0);
        assert_int_equal(p.rate_limit, 3);
        assert_int_equal(p.rate_window, 60);
        assert_int_equal(rate.limit, 3);
        assert_int_equal(rate.window, 60);
        assert_int_equal(rate.left, 2 - i);
        assert_int_equal(rate.reset, 60 - i);
    }
    memset(&p, 0x5a, sizeof(p));
    untouched = p;
    assert_int_equal(catalog_authenticate(f->cat, k.digest, 6010, &req, &p), AK_ERR_RATE_LIMITED);
    assert_memory_equal(&p, &untouched, sizeof(p)); /* a refusal fills no principal */
    assert_int_equal(rate.left, 0);
    assert_int_equal(rate.reset, 50);
    assert_int_equal(catalog_authenticate(f->cat, k.digest, 6059, NULL, &p), AK_ERR_RATE_LIMITED); /* no report asked */
    assert_int_equal(catalog_get(f->cat, 1, &got), 0);
    assert_int_equal(got.last_used, 6002); /* refusals are not uses */
    r = collect_rows(f->cat, HOUR_A);
    expect_row(&r, k.id, 1, false, HOUR_A, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 3, [USAGE_RATE_LIMITED] = 2});
    free(r.v);
    /* The next window; a new version of the key (a PATCH) keeps the counts, with its new limit. */
    assert_int_equal(catalog_authenticate(f->cat, k.digest, 6060, &req, &p), 0);
    k.rate_limit = 2;
    k.version = 2;
    assert_int_equal(catalog_put(f->cat, &k), 0);
    assert_int_equal(catalog_authenticate(f->cat, k.digest, 6061, &req, &p), 0);
    assert_int_equal(rate.left, 0);
    assert_int_equal(catalog_authenticate(f->cat, k.digest, 6062, &req, &p), AK_ERR_RATE_LIMITED);
    /* Unlimited again: no count, no report. */
    k.rate_limit = 0;
    k.rate_window = 0;
    k.version = 3;
    assert_int_equal(catalog_put(f->cat, &k), 0);
    assert_int_equal(catalog_authenticate(f->cat, k.digest, 6063, &req, &p), 0);
    assert_int_equal(p.rate_limit, 0);
    assert_int_equal(rate.limit, 0);
    /* A refusal before the rate limit takes no slot but reports it; an unknown key reports none. */
    k.rate_limit = 1;
    k.rate_window = 60;
    k.active = false;
    k.primary = false;
    k.version = 4;
    assert_int_equal(catalog_put(f->cat, &k), 0);
    assert_int_equal(catalog_authenticate(f->cat, k.digest, 6120, &req, &p), AK_ERR_KEY_INACTIVE);
    assert_int_equal(rate.limit, 1);
    assert_int_equal(rate.left, 1);
    make_digest(4242, k.digest);
    assert_int_equal(catalog_authenticate(f->cat, k.digest, 6120, &req, &p), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(rate.limit, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_is_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_get_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_keeps_newest_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_replaces_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_digest_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_order_and_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authenticate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collect_and_mark_flushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_from_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_many_keys_per_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_in_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_in_batches_failing_keeps_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_replaces_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_keeps_newer_last_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_failure_keeps_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_many_merges_repeated_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_unknown_is_not_remembered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_published_key_is_retired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_keeps_a_use_recorded_in_the_old_world, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_keeps_uses_during_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suspend_matches_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_suspended_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authenticate_suspended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_primary_with_demotion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_counted_by_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_survives_update_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_concurrent_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authenticate_allowlist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authenticate_scopes, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
