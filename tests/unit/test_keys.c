/*
 * Unit tests for core/keys: the whole service over a temporary SQLite store
 * (store_open + digest_secret_load + keys_new + keys_load). Covers account
 * creation, key creation per type, what a sandbox key may do, isolation
 * between accounts, the key cap, the one-primary invariant, authentication
 * outcomes, last_used flushing, persistence across a reopen and keys_sync
 * picking up writes made through a second store handle. Every refused
 * request is checked to change nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/catalog.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/keyfmt.h"
#include "core/keys.h"
#include "core/timefmt.h"
#include "origin.h"
#include "store/store.h"

#define KEYBUF (KEYFMT_MAX_LEN + 1)

struct fixture {
    char dir[64];
    char db[128];
    char secret_path[128];
    unsigned max_keys;
    struct store *store;
    struct digest_secret secret;
    struct keys *k;
};

/* An account and its primary key, as the tests use them. */
struct account {
    int64_t id;
    struct key_rec primary;
    char key[KEYBUF];
    struct principal who;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int service_open(struct fixture *f)
{
    struct keys_config cfg = {.brand = "ml", .max_keys = f->max_keys};
    char err[256] = "";

    if (store_open(f->db, &f->store, err, sizeof(err)) != 0 ||
        digest_secret_load(f->secret_path, &f->secret, err, sizeof(err)) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    if (keys_new(f->store, &f->secret, &cfg, &f->k) != 0 || keys_load(f->k) != 0)
        return -1;
    return 0;
}

static void service_close(struct fixture *f)
{
    keys_free(f->k);
    store_free(f->store);
    f->k = NULL;
    f->store = NULL;
}

static void service_reopen(struct fixture *f)
{
    service_close(f);
    assert_int_equal(service_open(f), 0);
}

static int setup_with(void **state, unsigned max_keys)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_keys.XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->db, sizeof(f->db), "%s/keys.db", f->dir);
    snprintf(f->secret_path, sizeof(f->secret_path), "%s/keys.db.secret", f->dir);
    f->max_keys = max_keys;
    *state = f;
    return service_open(f);
}

static int setup(void **state)
{
    return setup_with(state, KEYS_DEFAULT_MAX);
}

static int setup_cap3(void **state)
{
    return setup_with(state, 3);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int r;

    service_close(f);
    r = nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return r;
}

static int auth(struct keys *k, const char *key, int64_t now, struct principal *ret)
{
    char hdr[KEYBUF + 16];

    snprintf(hdr, sizeof(hdr), "Bearer %s", key);
    return keys_authenticate(k, hdr, strlen(hdr), now, NULL, ret);
}

static void new_account(struct keys *k, const char *name, struct account *a)
{
    memset(a, 0, sizeof(*a));
    assert_int_equal(t_account_create(k, name, &a->id, &a->primary, a->key, sizeof(a->key)), 0);
    assert_int_equal(auth(k, a->key, 1, &a->who), 0);
}

static int create(struct keys *k, const struct principal *who, const char *name, enum key_type type, struct key_rec *ret, char *key)
{
    struct create_req req;

    memset(&req, 0, sizeof(req));
    snprintf(req.name, sizeof(req.name), "%s", name);
    req.type = type;
    return keys_create(k, &T_ORIGIN, who, &req, ret, key, KEYBUF);
}

/* Creates a key that must succeed. */
static struct key_rec must_create(struct keys *k, const struct principal *who, const char *name, enum key_type type, char *key)
{
    struct key_rec rec;

    assert_int_equal(create(k, who, name, type, &rec, key), 0);
    return rec;
}

static const struct patch_req *p_active(bool v)
{
    static struct patch_req r;

    memset(&r, 0, sizeof(r));
    r.has_active = true;
    r.active = v;
    return &r;
}

static const struct patch_req *p_primary(bool v)
{
    static struct patch_req r;

    memset(&r, 0, sizeof(r));
    r.has_primary = true;
    r.primary = v;
    return &r;
}

static const struct patch_req *p_both(bool active, bool primary)
{
    static struct patch_req r;

    memset(&r, 0, sizeof(r));
    r.has_active = true;
    r.active = active;
    r.has_primary = true;
    r.primary = primary;
    return &r;
}

static const struct patch_req *p_name(const char *name)
{
    static struct patch_req r;

    memset(&r, 0, sizeof(r));
    r.has_name = true;
    snprintf(r.name, sizeof(r.name), "%s", name);
    return &r;
}

struct snapshot {
    size_t n;
    struct key_rec recs[32];
};

static void visit(void *arg, const struct key_rec *rec)
{
    struct snapshot *s = arg;

    assert_true(s->n < 32);
    s->recs[s->n++] = *rec;
}

static void snap(struct keys *k, const struct principal *who, struct snapshot *s)
{
    memset(s, 0, sizeof(*s));
    keys_list(k, who, visit, s);
    for (size_t i = 1; i < s->n; i++)
        assert_true(s->recs[i - 1].id < s->recs[i].id);
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

static void assert_snap_equal(const struct snapshot *a, const struct snapshot *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        assert_rec_equal(&a->recs[i], &b->recs[i]);
}

static const struct key_rec *find(const struct snapshot *s, int64_t id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->recs[i].id == id)
            return &s->recs[i];
    return NULL;
}

static const struct key_rec *must_find(const struct snapshot *s, int64_t id)
{
    const struct key_rec *r = find(s, id);

    if (r == NULL)
        fail_msg("key %lld is not in the list", (long long)id);
    return r;
}

/* The account's invariant: exactly one primary, active and production; returns its id. */
static int64_t one_primary(struct keys *k, const struct principal *who)
{
    struct snapshot s;
    int64_t id = 0;
    size_t n = 0;

    snap(k, who, &s);
    for (size_t i = 0; i < s.n; i++) {
        if (s.recs[i].primary) {
            n++;
            id = s.recs[i].id;
            assert_true(s.recs[i].active);
            assert_int_equal(s.recs[i].type, KEY_TYPE_PRODUCTION);
        }
    }
    assert_int_equal(n, 1);
    return id;
}

static void check_new_key(const struct fixture *f, const struct key_rec *rec, const char *key, enum key_type type)
{
    enum key_type parsed;
    uint8_t digest[DIGEST_LEN];

    assert_int_equal(strlen(key), keyfmt_key_len("ml", KEY_TYPE_PRODUCTION));
    assert_int_equal(keyfmt_parse("ml", key, strlen(key), &parsed), 0);
    assert_int_equal(parsed, type);
    assert_int_equal(rec->type, type);
    assert_int_equal(strlen(rec->prefix), KEYFMT_PREFIX_LEN);
    assert_memory_equal(rec->prefix, key, KEYFMT_PREFIX_LEN);
    /* Only the digest is kept, and it is HMAC(secret, key). */
    assert_int_equal(digest_compute(&f->secret, key, strlen(key), digest), 0);
    assert_memory_equal(rec->digest, digest, DIGEST_LEN);
    assert_true(rec->id > 0);
    assert_int_equal(rec->last_used, 0);
}

/* ---------------------------------------------------------------- tests */

static void test_new_refuses_bad_config(void **state)
{
    struct fixture *f = *state;
    struct keys *k = NULL;
    struct keys_config bad_brand = {.brand = "ML", .max_keys = 10};
    struct keys_config no_brand = {.brand = "", .max_keys = 10};
    struct keys_config zero = {.brand = "ml", .max_keys = 0};

    assert_int_equal(keys_new(f->store, &f->secret, &bad_brand, &k), AK_ERR_ARG);
    assert_int_equal(keys_new(f->store, &f->secret, &no_brand, &k), AK_ERR_ARG);
    assert_int_equal(keys_new(f->store, &f->secret, &zero, &k), AK_ERR_ARG);
    assert_null(k);
    keys_free(NULL);
}

static void test_account_create(void **state)
{
    struct fixture *f = *state;
    int64_t before = timefmt_now(), account = 0;
    struct key_rec rec;
    char key[KEYBUF];
    struct principal who;
    struct snapshot s;

    assert_int_equal(t_account_create(f->k, "acme", &account, &rec, key, sizeof(key)), 0);
    assert_true(account > 0);
    assert_int_equal(rec.account_id, account);
    check_new_key(f, &rec, key, KEY_TYPE_PRODUCTION);
    assert_memory_equal(key, "ml_prod_", 8);
    assert_string_equal(rec.name, KEYS_PRIMARY_NAME);
    assert_true(rec.active);
    assert_true(rec.primary);
    assert_true(rec.created_at >= before && rec.created_at <= timefmt_now());

    memset(&who, 0, sizeof(who));
    assert_int_equal(auth(f->k, key, 1700000000, &who), 0);
    assert_int_equal(who.key_id, rec.id);
    assert_int_equal(who.account_id, account);
    assert_int_equal(who.type, KEY_TYPE_PRODUCTION);
    assert_string_equal(who.prefix, rec.prefix);

    snap(f->k, &who, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.recs[0].id, rec.id);
    assert_int_equal(s.recs[0].last_used, 1700000000);
    assert_int_equal(one_primary(f->k, &who), rec.id);
}

static void test_accounts_are_separate(void **state)
{
    struct fixture *f = *state;
    struct account a, b;
    struct snapshot sa, sb, after;
    struct key_rec rec, ka;
    char key[KEYBUF];

    new_account(f->k, "a", &a);
    new_account(f->k, "b", &b);
    assert_true(a.id != b.id);
    assert_true(a.primary.id != b.primary.id);
    assert_string_not_equal(a.key, b.key);
    ka = must_create(f->k, &a.who, "a's sandbox", KEY_TYPE_SANDBOX, key);
    snap(f->k, &a.who, &sa);
    snap(f->k, &b.who, &sb);
    assert_int_equal(sa.n, 2);
    assert_int_equal(sb.n, 1);
    assert_int_equal(sb.recs[0].id, b.primary.id);

    /* b cannot see or touch a's keys: they do not exist for b. */
    assert_int_equal(keys_target(f->k, &b.who, a.primary.id, &rec), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_target(f->k, &b.who, ka.id, &rec), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &b.who, ka.id, p_name("stolen"), &rec), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &b.who, ka.id, p_active(false), &rec), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &b.who, a.primary.id, p_active(false), &rec), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &b.who, ka.id), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &b.who, a.primary.id), AK_ERR_NOT_FOUND);
    snap(f->k, &a.who, &after);
    assert_snap_equal(&sa, &after);

    /* Ids that do not exist at all. */
    assert_int_equal(keys_target(f->k, &a.who, 0, &rec), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_target(f->k, &a.who, -1, &rec), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_target(f->k, &a.who, INT64_MAX, &rec), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, 999999, p_name("x"), &rec), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, 999999), AK_ERR_NOT_FOUND);

    /* Its own key is found. */
    assert_int_equal(keys_target(f->k, &a.who, ka.id, &rec), 0);
    assert_rec_equal(&rec, &ka);
}

static void test_create_keys(void **state)
{
    struct fixture *f = *state;
    struct account a;
    struct key_rec sand, prod;
    char ksand[KEYBUF], kprod[KEYBUF];
    struct principal who;
    struct snapshot s;

    new_account(f->k, "acme", &a);
    sand = must_create(f->k, &a.who, "Staging Environment", KEY_TYPE_SANDBOX, ksand);
    check_new_key(f, &sand, ksand, KEY_TYPE_SANDBOX);
    assert_memory_equal(ksand, "ml_sand_", 8);
    assert_string_equal(sand.name, "Staging Environment");
    assert_int_equal(sand.account_id, a.id);
    assert_true(sand.active);
    assert_false(sand.primary);

    prod = must_create(f->k, &a.who, "CI/CD Pipeline", KEY_TYPE_PRODUCTION, kprod);
    check_new_key(f, &prod, kprod, KEY_TYPE_PRODUCTION);
    assert_string_equal(prod.name, "CI/CD Pipeline");
    assert_true(prod.active);
    assert_false(prod.primary);
    assert_true(prod.id > sand.id);

    assert_int_equal(auth(f->k, ksand, 10, &who), 0);
    assert_int_equal(who.key_id, sand.id);
    assert_int_equal(who.account_id, a.id);
    assert_int_equal(who.type, KEY_TYPE_SANDBOX);
    assert_int_equal(auth(f->k, kprod, 10, &who), 0);
    assert_int_equal(who.key_id, prod.id);
    assert_int_equal(who.type, KEY_TYPE_PRODUCTION);

    snap(f->k, &a.who, &s);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.recs[0].id, a.primary.id);
    assert_int_equal(s.recs[1].id, sand.id);
    assert_int_equal(s.recs[2].id, prod.id);
    assert_int_equal(one_primary(f->k, &a.who), a.primary.id);
}

static void test_sandbox_principal(void **state)
{
    struct fixture *f = *state;
    struct account a;
    struct key_rec sand, sand2, prod, rec;
    char ksand[KEYBUF], key[KEYBUF];
    struct principal sw;
    struct snapshot all, mine, after;

    new_account(f->k, "acme", &a);
    sand = must_create(f->k, &a.who, "sandbox", KEY_TYPE_SANDBOX, ksand);
    prod = must_create(f->k, &a.who, "prod", KEY_TYPE_PRODUCTION, key);
    assert_int_equal(auth(f->k, ksand, 10, &sw), 0);
    assert_int_equal(sw.type, KEY_TYPE_SANDBOX);

    snap(f->k, &a.who, &all);
    assert_int_equal(create(f->k, &sw, "nope", KEY_TYPE_PRODUCTION, &rec, key), AK_ERR_FORBIDDEN);
    assert_int_equal(keys_target(f->k, &sw, prod.id, &rec), AK_ERR_FORBIDDEN);
    assert_int_equal(keys_target(f->k, &sw, a.primary.id, &rec), AK_ERR_FORBIDDEN);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &sw, prod.id, p_name("renamed"), &rec), AK_ERR_FORBIDDEN);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &sw, prod.id, p_active(false), &rec), AK_ERR_FORBIDDEN);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &sw, prod.id), AK_ERR_FORBIDDEN);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &sw, a.primary.id), AK_ERR_FORBIDDEN);
    snap(f->k, &a.who, &after);
    assert_snap_equal(&all, &after);

    /* Another account's key is not found (404 before 403), even a production one. */
    {
        struct account b;
        new_account(f->k, "other", &b);
        assert_int_equal(keys_target(f->k, &sw, b.primary.id, &rec), AK_ERR_NOT_FOUND);
        assert_int_equal(keys_update(f->k, &T_ORIGIN, &sw, b.primary.id, p_name("x"), &rec), AK_ERR_NOT_FOUND);
        assert_int_equal(keys_delete(f->k, &T_ORIGIN, &sw, b.primary.id), AK_ERR_NOT_FOUND);
    }

    /* Sandbox keys are its to see and change. */
    snap(f->k, &sw, &mine);
    assert_int_equal(mine.n, 1);
    assert_int_equal(mine.recs[0].id, sand.id);
    sand2 = must_create(f->k, &sw, "from sandbox", KEY_TYPE_SANDBOX, key);
    assert_int_equal(sand2.type, KEY_TYPE_SANDBOX);
    assert_int_equal(sand2.account_id, a.id);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &sw, sand2.id, p_name("renamed"), &rec), 0);
    assert_string_equal(rec.name, "renamed");
    assert_int_equal(keys_target(f->k, &sw, sand2.id, &rec), 0);
    snap(f->k, &sw, &mine);
    assert_int_equal(mine.n, 2);
    for (size_t i = 0; i < mine.n; i++)
        assert_int_equal(mine.recs[i].type, KEY_TYPE_SANDBOX);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &sw, sand2.id), 0);
    snap(f->k, &sw, &mine);
    assert_int_equal(mine.n, 1);
    /* A sandbox key cannot become primary. */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &sw, sand.id, p_primary(true), &rec), AK_ERR_PRIMARY_INVALID);
    assert_int_equal(one_primary(f->k, &a.who), a.primary.id);
}

static void test_key_limit(void **state)
{
    struct fixture *f = *state;
    struct account a, b;
    struct key_rec k2, k3, rec;
    char key[KEYBUF], ksand[KEYBUF];
    struct principal sw;
    struct snapshot before, after;

    new_account(f->k, "acme", &a);
    k2 = must_create(f->k, &a.who, "two", KEY_TYPE_SANDBOX, ksand);
    k3 = must_create(f->k, &a.who, "three", KEY_TYPE_PRODUCTION, key);
    snap(f->k, &a.who, &before);
    assert_int_equal(before.n, 3);
    memset(key, 'Z', sizeof(key));
    assert_int_equal(create(f->k, &a.who, "four", KEY_TYPE_SANDBOX, &rec, key), AK_ERR_LIMIT);
    assert_int_equal(create(f->k, &a.who, "four", KEY_TYPE_PRODUCTION, &rec, key), AK_ERR_LIMIT);
    /* 403 comes before 409: a sandbox key asking for production is forbidden, not limited. */
    assert_int_equal(auth(f->k, ksand, 10, &sw), 0);
    assert_int_equal(create(f->k, &sw, "four", KEY_TYPE_PRODUCTION, &rec, key), AK_ERR_FORBIDDEN);
    assert_int_equal(create(f->k, &sw, "four", KEY_TYPE_SANDBOX, &rec, key), AK_ERR_LIMIT);
    snap(f->k, &a.who, &after);
    assert_int_equal(after.n, 3);

    /* Inactive keys count. */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, k3.id, p_active(false), &rec), 0);
    assert_int_equal(create(f->k, &a.who, "four", KEY_TYPE_SANDBOX, &rec, key), AK_ERR_LIMIT);

    /* The cap is per account. */
    new_account(f->k, "other", &b);
    must_create(f->k, &b.who, "b two", KEY_TYPE_SANDBOX, key);

    /* Deleting makes room again. */
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, k2.id), 0);
    rec = must_create(f->k, &a.who, "four", KEY_TYPE_SANDBOX, key);
    assert_int_equal(auth(f->k, key, 10, &sw), 0);
    assert_int_equal(sw.key_id, rec.id);
    assert_int_equal(create(f->k, &a.who, "five", KEY_TYPE_SANDBOX, &rec, key), AK_ERR_LIMIT);

    /* The cap holds after a reopen. */
    service_reopen(f);
    assert_int_equal(auth(f->k, a.key, 10, &a.who), 0);
    assert_int_equal(create(f->k, &a.who, "five", KEY_TYPE_SANDBOX, &rec, key), AK_ERR_LIMIT);
    snap(f->k, &a.who, &after);
    assert_int_equal(after.n, 3);
}

static void test_primary_rules(void **state)
{
    struct fixture *f = *state;
    struct account a;
    struct key_rec q, s, i, rec;
    char key[KEYBUF];
    struct snapshot before, after;

    new_account(f->k, "acme", &a);
    q = must_create(f->k, &a.who, "q", KEY_TYPE_PRODUCTION, key);
    s = must_create(f->k, &a.who, "s", KEY_TYPE_SANDBOX, key);
    i = must_create(f->k, &a.who, "i", KEY_TYPE_PRODUCTION, key);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, i.id, p_active(false), &rec), 0);
    assert_false(rec.active);
    snap(f->k, &a.who, &before);

    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, a.primary.id), AK_ERR_PRIMARY_PROTECTED);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, a.primary.id, p_active(false), &rec), AK_ERR_PRIMARY_PROTECTED);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, a.primary.id, p_primary(false), &rec), AK_ERR_PRIMARY_PROTECTED);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, a.primary.id, p_both(false, false), &rec), AK_ERR_PRIMARY_PROTECTED);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, a.primary.id, p_both(false, true), &rec), AK_ERR_PRIMARY_PROTECTED);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, s.id, p_primary(true), &rec), AK_ERR_PRIMARY_INVALID);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, s.id, p_both(true, true), &rec), AK_ERR_PRIMARY_INVALID);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, i.id, p_primary(true), &rec), AK_ERR_PRIMARY_INVALID);
    /* Judged after applying the PATCH's is_active. */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, q.id, p_both(false, true), &rec), AK_ERR_PRIMARY_INVALID);
    snap(f->k, &a.who, &after);
    assert_snap_equal(&before, &after);
    assert_int_equal(one_primary(f->k, &a.who), a.primary.id);

    /* Harmless changes to the primary are fine. */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, a.primary.id, p_primary(true), &rec), 0);
    assert_true(rec.primary);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, a.primary.id, p_active(true), &rec), 0);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, a.primary.id, p_name("Main"), &rec), 0);
    assert_string_equal(rec.name, "Main");
    assert_true(rec.primary);
    assert_true(rec.active);
    /* Demoting or deactivating a key that is not primary is fine. */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, q.id, p_primary(false), &rec), 0);
    assert_false(rec.primary);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, s.id, p_active(false), &rec), 0);
    assert_int_equal(one_primary(f->k, &a.who), a.primary.id);

    /* Still refused after a reopen (the rules come from the reloaded state). */
    service_reopen(f);
    assert_int_equal(auth(f->k, a.key, 10, &a.who), 0);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, a.primary.id), AK_ERR_PRIMARY_PROTECTED);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, a.primary.id, p_active(false), &rec), AK_ERR_PRIMARY_PROTECTED);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, i.id, p_primary(true), &rec), AK_ERR_PRIMARY_INVALID);
    assert_int_equal(one_primary(f->k, &a.who), a.primary.id);
}

static void test_move_primary(void **state)
{
    struct fixture *f = *state;
    struct account a;
    struct key_rec q, i, rec;
    char kq[KEYBUF], key[KEYBUF];
    struct snapshot s;

    new_account(f->k, "acme", &a);
    q = must_create(f->k, &a.who, "q", KEY_TYPE_PRODUCTION, kq);
    i = must_create(f->k, &a.who, "i", KEY_TYPE_PRODUCTION, key);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, i.id, p_active(false), &rec), 0);

    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, q.id, p_primary(true), &rec), 0);
    assert_int_equal(rec.id, q.id);
    assert_true(rec.primary);
    assert_true(rec.active);
    assert_int_equal(one_primary(f->k, &a.who), q.id);
    snap(f->k, &a.who, &s);
    assert_false(must_find(&s, a.primary.id)->primary);
    assert_true(must_find(&s, a.primary.id)->active);

    /* The old primary is an ordinary key now; the new one is protected. */
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, q.id), AK_ERR_PRIMARY_PROTECTED);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, q.id, p_active(false), &rec), AK_ERR_PRIMARY_PROTECTED);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, a.primary.id, p_active(false), &rec), 0);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, a.primary.id), 0);
    assert_int_equal(auth(f->k, a.key, 10, &a.who), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(auth(f->k, kq, 10, &a.who), 0);

    /* Reactivating and promoting in one PATCH. */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, i.id, p_both(true, true), &rec), 0);
    assert_true(rec.primary);
    assert_true(rec.active);
    assert_int_equal(one_primary(f->k, &a.who), i.id);
    snap(f->k, &a.who, &s);
    assert_int_equal(s.n, 2);
    assert_false(must_find(&s, q.id)->primary);

    /* Durable: the store agrees after a reopen. */
    service_reopen(f);
    assert_int_equal(auth(f->k, kq, 10, &a.who), 0);
    assert_int_equal(one_primary(f->k, &a.who), i.id);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, i.id), AK_ERR_PRIMARY_PROTECTED);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, q.id), 0);
}

static void test_authenticate_outcomes(void **state)
{
    struct fixture *f = *state;
    struct account a;
    struct key_rec sand, rec;
    char ksand[KEYBUF], bad[KEYBUF], fresh[KEYBUF];
    struct principal who, before;
    size_t len;

    new_account(f->k, "acme", &a);
    sand = must_create(f->k, &a.who, "sandbox", KEY_TYPE_SANDBOX, ksand);
    len = strlen(ksand);

    memset(&who, 0x5a, sizeof(who));
    before = who;
    assert_int_equal(keys_authenticate(f->k, NULL, 0, 10, NULL, &who), AK_ERR_MISSING_KEY);
    assert_int_equal(keys_authenticate(f->k, "", 0, 10, NULL, &who), AK_ERR_MISSING_KEY);
    assert_int_equal(keys_authenticate(f->k, "Bearer ", 7, 10, NULL, &who), AK_ERR_MISSING_KEY);
    assert_int_equal(keys_authenticate(f->k, "Basic abc", 9, 10, NULL, &who), AK_ERR_KEY_FORMAT);
    assert_int_equal(keys_authenticate(f->k, ksand, len, 10, NULL, &who), AK_ERR_KEY_FORMAT); /* no scheme */
    assert_int_equal(auth(f->k, "ml_prod_abc", 10, &who), AK_ERR_KEY_FORMAT);
    /* Tampered checksum. */
    memcpy(bad, ksand, len + 1);
    bad[len - 1] = bad[len - 1] == 'a' ? 'b' : 'a';
    assert_int_equal(auth(f->k, bad, 10, &who), AK_ERR_KEY_FORMAT);
    /* Tampered random part. */
    memcpy(bad, ksand, len + 1);
    bad[10] = bad[10] == 'a' ? 'b' : 'a';
    assert_int_equal(auth(f->k, bad, 10, &who), AK_ERR_KEY_FORMAT);
    /* Another brand. */
    assert_int_equal(keyfmt_generate("acme", KEY_TYPE_SANDBOX, fresh, sizeof(fresh)), 0);
    assert_int_equal(auth(f->k, fresh, 10, &who), AK_ERR_KEY_FORMAT);
    /* Well-formed but never issued. */
    assert_int_equal(keyfmt_generate("ml", KEY_TYPE_PRODUCTION, fresh, sizeof(fresh)), 0);
    assert_int_equal(auth(f->k, fresh, 10, &who), AK_ERR_KEY_UNKNOWN);
    assert_memory_equal(&who, &before, sizeof(who));

    /* Deactivated, reactivated, deleted. */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, sand.id, p_active(false), &rec), 0);
    assert_int_equal(auth(f->k, ksand, 20, &who), AK_ERR_KEY_INACTIVE);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, sand.id, p_active(true), &rec), 0);
    assert_int_equal(auth(f->k, ksand, 30, &who), 0);
    assert_int_equal(who.key_id, sand.id);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, sand.id, p_active(false), &rec), 0);
    assert_int_equal(rec.last_used, 30); /* the inactive attempt at 20 was not a use */
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, sand.id), 0);
    assert_int_equal(auth(f->k, ksand, 40, &who), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(keys_target(f->k, &a.who, sand.id, &rec), AK_ERR_NOT_FOUND);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, sand.id), AK_ERR_NOT_FOUND);

    /* Surrounding whitespace and scheme case do not matter. */
    {
        char hdr[KEYBUF + 32];
        snprintf(hdr, sizeof(hdr), "  bearer \t%s  ", a.key);
        assert_int_equal(keys_authenticate(f->k, hdr, strlen(hdr), 50, NULL, &who), 0);
        assert_int_equal(who.key_id, a.primary.id);
    }
}

static void test_last_used(void **state)
{
    struct fixture *f = *state;
    struct account a;
    struct key_rec sand;
    char ksand[KEYBUF];
    struct principal who;
    struct snapshot s;

    new_account(f->k, "acme", &a); /* authenticates at 1 */
    sand = must_create(f->k, &a.who, "sandbox", KEY_TYPE_SANDBOX, ksand);
    snap(f->k, &a.who, &s);
    assert_int_equal(must_find(&s, sand.id)->last_used, 0);

    assert_int_equal(auth(f->k, ksand, 1800000000, &who), 0);
    snap(f->k, &a.who, &s);
    assert_int_equal(must_find(&s, sand.id)->last_used, 1800000000);
    assert_int_equal(must_find(&s, a.primary.id)->last_used, 1);
    /* Never backward. */
    assert_int_equal(auth(f->k, ksand, 1700000000, &who), 0);
    snap(f->k, &a.who, &s);
    assert_int_equal(must_find(&s, sand.id)->last_used, 1800000000);

    /* Flushed, then read back by a fresh service. */
    assert_int_equal(keys_flush_uses(f->k), 0);
    assert_int_equal(keys_flush_uses(f->k), 0); /* nothing pending */
    service_reopen(f);
    assert_int_equal(auth(f->k, a.key, 6, &a.who), 0);
    snap(f->k, &a.who, &s);
    assert_int_equal(must_find(&s, sand.id)->last_used, 1800000000);
    assert_int_equal(must_find(&s, a.primary.id)->last_used, 6);

    /* An older use changes nothing; later ones keep being persisted. */
    assert_int_equal(auth(f->k, ksand, 1700000000, &who), 0);
    assert_int_equal(keys_flush_uses(f->k), 0);
    assert_int_equal(auth(f->k, ksand, 1800000100, &who), 0);
    assert_int_equal(keys_flush_uses(f->k), 0);
    service_reopen(f);
    assert_int_equal(auth(f->k, a.key, 7, &a.who), 0);
    snap(f->k, &a.who, &s);
    assert_int_equal(must_find(&s, sand.id)->last_used, 1800000100);
}

static void test_persistence(void **state)
{
    struct fixture *f = *state;
    struct account a, b;
    struct key_rec sand, prod, gone, rec;
    char ksand[KEYBUF], kprod[KEYBUF], kgone[KEYBUF];
    struct snapshot sa, sb, after;
    struct principal who;

    new_account(f->k, "acme", &a);
    new_account(f->k, "other", &b);
    sand = must_create(f->k, &a.who, "sandbox", KEY_TYPE_SANDBOX, ksand);
    prod = must_create(f->k, &a.who, "prod \xe5\x90\x8d", KEY_TYPE_PRODUCTION, kprod);
    gone = must_create(f->k, &a.who, "gone", KEY_TYPE_SANDBOX, kgone);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, sand.id, p_name("renamed sandbox"), &rec), 0);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, prod.id, p_active(false), &rec), 0);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, gone.id), 0);
    assert_int_equal(keys_flush_uses(f->k), 0);
    snap(f->k, &a.who, &sa);
    snap(f->k, &b.who, &sb);
    assert_int_equal(sa.n, 3);

    service_reopen(f);
    assert_int_equal(auth(f->k, a.key, 1, &who), 0); /* same second as before: last_used unchanged */
    snap(f->k, &who, &after);
    assert_snap_equal(&sa, &after);
    assert_int_equal(auth(f->k, b.key, 1, &who), 0);
    snap(f->k, &who, &after);
    assert_snap_equal(&sb, &after);
    assert_string_equal(must_find(&sa, sand.id)->name, "renamed sandbox");
    assert_false(must_find(&sa, prod.id)->active);
    assert_null(find(&sa, gone.id));

    assert_int_equal(auth(f->k, ksand, 2, &who), 0);
    assert_int_equal(who.key_id, sand.id);
    assert_int_equal(auth(f->k, kprod, 2, &who), AK_ERR_KEY_INACTIVE);
    assert_int_equal(auth(f->k, kgone, 2, &who), AK_ERR_KEY_UNKNOWN);

    /* Ids are not reused after a delete. */
    rec = must_create(f->k, &a.who, "new", KEY_TYPE_SANDBOX, kgone);
    assert_true(rec.id > gone.id);
}

static void test_sync_second_handle(void **state)
{
    struct fixture *f = *state;
    struct keys_config cfg = {.brand = "ml", .max_keys = KEYS_DEFAULT_MAX};
    struct store *s2 = NULL;
    struct keys *k2 = NULL;
    struct account a, c;
    struct key_rec rec, extra;
    struct principal who, who2;
    struct snapshot s;
    char err[256] = "", key[KEYBUF];
    bool reloaded = true;

    new_account(f->k, "acme", &a);
    assert_int_equal(auth(f->k, a.key, 1800000000, &a.who), 0); /* a use not yet flushed */
    assert_int_equal(keys_sync(f->k, &reloaded), 0);
    assert_false(reloaded); /* nobody else wrote */

    assert_int_equal(store_open(f->db, &s2, err, sizeof(err)), 0);
    assert_int_equal(keys_new(s2, &f->secret, &cfg, &k2), 0);
    assert_int_equal(keys_load(k2), 0);
    new_account(k2, "created elsewhere", &c);
    assert_int_equal(auth(k2, a.key, 5, &who2), 0);
    extra = must_create(k2, &who2, "added elsewhere", KEY_TYPE_SANDBOX, key);

    assert_int_equal(auth(f->k, c.key, 10, &who), AK_ERR_KEY_UNKNOWN);
    reloaded = false;
    assert_int_equal(keys_sync(f->k, &reloaded), 0);
    assert_true(reloaded);
    assert_int_equal(auth(f->k, c.key, 10, &who), 0);
    assert_int_equal(who.account_id, c.id);
    assert_int_equal(who.key_id, c.primary.id);
    assert_int_equal(auth(f->k, key, 10, &who), 0);
    assert_int_equal(who.key_id, extra.id);
    snap(f->k, &a.who, &s);
    assert_int_equal(s.n, 2);
    assert_non_null(find(&s, extra.id));
    /* The pending in-memory use survived the reload. */
    assert_int_equal(must_find(&s, a.primary.id)->last_used, 1800000000);

    assert_int_equal(keys_sync(f->k, &reloaded), 0);
    assert_false(reloaded);

    /* A delete elsewhere shows up too, and the cap counts what the store holds. */
    assert_int_equal(keys_delete(k2, &T_ORIGIN, &who2, extra.id), 0);
    assert_int_equal(keys_sync(f->k, &reloaded), 0);
    assert_true(reloaded);
    assert_int_equal(auth(f->k, key, 11, &who), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(keys_target(f->k, &a.who, extra.id, &rec), AK_ERR_NOT_FOUND);

    /*
     * Both services flush a use of the same key; k2's is older and lands
     * last. The store keeps the newest, and both services see it.
     */
    assert_int_equal(auth(k2, a.key, 1700000000, &who2), 0);
    assert_int_equal(keys_flush_uses(f->k), 0);
    assert_int_equal(keys_flush_uses(k2), 0);
    assert_int_equal(keys_sync(k2, &reloaded), 0);
    assert_true(reloaded);
    snap(k2, &who2, &s);
    assert_int_equal(must_find(&s, a.primary.id)->last_used, 1800000000);
    service_reopen(f);
    assert_int_equal(auth(f->k, c.key, 12, &who), 0);
    snap(f->k, &a.who, &s);
    assert_int_equal(must_find(&s, a.primary.id)->last_used, 1800000000);

    keys_free(k2);
    store_free(s2);
}

/* ---- failure injection (issue 8): a store whose commits lose their answer, and catalog allocation failures ---- */

enum commit_fault {
    CF_NONE,
    CF_COMMITTED,     /* the write commits, but its answer is lost and the store cannot tell */
    CF_NOT_COMMITTED, /* nothing is written, and the store cannot tell */
};

/* The fixture's real store with some of its ops replaced (one store per test, so the state is global). */
static struct {
    const struct store_ops *real;
    struct store_ops ops;
    enum commit_fault fault;
    bool load_fails;
    const struct store_watch_ops *wops;
    void *warg;
} fs;

static int fs_commit(struct store *s)
{
    int r;

    switch (fs.fault) {
    case CF_COMMITTED:
        r = fs.real->commit(s);
        return r == 0 ? AK_ERR_OUTCOME_UNKNOWN : r;
    case CF_NOT_COMMITTED:
        fs.real->rollback(s);
        return AK_ERR_OUTCOME_UNKNOWN;
    case CF_NONE:
        break;
    }
    return fs.real->commit(s);
}

static int fs_settle(struct store *s)
{
    (void)s;
    return AK_ERR_OUTCOME_UNKNOWN; /* the database cannot be reached to tell */
}

static int fs_key_load(struct store *s, store_key_cb cb, void *arg)
{
    return fs.load_fails ? AK_ERR_UNAVAILABLE : fs.real->key_load(s, cb, arg);
}

static int fs_poll_changed(struct store *s, bool *ret)
{
    (void)s;
    *ret = false; /* only what the keys service asks for itself */
    return 0;
}

/* A shared store's watch: keeps the ops for the test to call, and loads at once. */
static int fs_watch(struct store *s, const struct store_watch_ops *ops, void *arg)
{
    (void)s;
    fs.wops = ops;
    fs.warg = arg;
    return ops->resync(arg);
}

/* A keys service over the fixture's store with the faulty ops (a shared store, with watch, when `watched`). */
static struct keys *faulty_service(struct fixture *f, bool watched, unsigned staleness)
{
    struct keys_config cfg = {.brand = "ml", .max_keys = f->max_keys, .max_staleness_s = staleness};
    struct keys *k;

    if (f->store->ops != &fs.ops) {
        fs.real = f->store->ops;
        fs.ops = *fs.real;
        fs.ops.commit = fs_commit;
        fs.ops.settle = fs_settle;
        fs.ops.key_load = fs_key_load;
        fs.ops.poll_changed = fs_poll_changed;
        f->store->ops = &fs.ops;
    }
    fs.ops.watch = watched ? fs_watch : NULL;
    fs.fault = CF_NONE;
    fs.load_fails = false;
    assert_int_equal(keys_new(f->store, &f->secret, &cfg, &k), 0);
    if (watched)
        assert_int_equal(keys_watch(k, 1000), 0);
    else
        assert_int_equal(keys_load(k), 0);
    return k;
}

static void faulty_done(struct fixture *f)
{
    f->store->ops = fs.real;
}

/* A COMMIT that may have happened: never answered as success or as "nothing changed"; the catalog follows the store. */
static void test_outcome_unknown_writes(void **state)
{
    struct fixture *f = *state;
    struct keys *k = faulty_service(f, false, 0);
    struct account a;
    struct key_rec rec, k1;
    struct principal p;
    char key1[KEYBUF], key2[KEYBUF];
    bool reloaded;

    new_account(k, "acme", &a);
    k1 = must_create(k, &a.who, "one", KEY_TYPE_SANDBOX, key1);

    /* Committed, unconfirmed: 503 outcome_unknown, and the catalog already serves the change (reloaded at once). */
    fs.fault = CF_COMMITTED;
    assert_int_equal(keys_update(k, &T_ORIGIN, &a.who, k1.id, p_active(false), &rec), AK_ERR_OUTCOME_UNKNOWN);
    assert_int_equal(auth(k, key1, 2, &p), AK_ERR_KEY_INACTIVE);

    /* Committed, unconfirmed, and the reload fails too: the catalog catches up on the next sync. */
    fs.load_fails = true;
    assert_int_equal(keys_update(k, &T_ORIGIN, &a.who, k1.id, p_active(true), &rec), AK_ERR_OUTCOME_UNKNOWN);
    assert_int_equal(auth(k, key1, 3, &p), AK_ERR_KEY_INACTIVE); /* still the old state here... */
    fs.load_fails = false;
    assert_int_equal(keys_sync(k, &reloaded), 0);
    assert_true(reloaded);
    assert_int_equal(auth(k, key1, 4, &p), 0); /* ...until the store answers again */

    /* A delete and a create, committed but unconfirmed. */
    assert_int_equal(keys_delete(k, &T_ORIGIN, &a.who, k1.id), AK_ERR_OUTCOME_UNKNOWN);
    assert_int_equal(auth(k, key1, 5, &p), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(create(k, &a.who, "two", KEY_TYPE_SANDBOX, &rec, key2), AK_ERR_OUTCOME_UNKNOWN);
    assert_true(key2[0] == '\0'); /* the key is wiped: the caller shows nothing */

    /* Not committed, unconfirmed: still outcome_unknown (the store could not tell); nothing changes. */
    fs.fault = CF_NOT_COMMITTED;
    assert_int_equal(keys_update(k, &T_ORIGIN, &a.who, a.primary.id, p_name("renamed"), &rec), AK_ERR_OUTCOME_UNKNOWN);
    assert_int_equal(auth(k, a.key, 6, &p), 0);
    fs.fault = CF_NONE;
    assert_int_equal(keys_sync(k, &reloaded), 0);
    assert_false(reloaded); /* nothing left to catch up */
    keys_free(k);
    faulty_done(f);
}

/* A change the store committed but the catalog could not take (out of memory) is served after a reload, never answered stale. */
static void test_catalog_failure_after_commit(void **state)
{
    struct fixture *f = *state;
    struct account a;
    struct key_rec rec, k1;
    struct principal p;
    char key1[KEYBUF], key2[KEYBUF];

    new_account(f->k, "acme", &a);
    k1 = must_create(f->k, &a.who, "one", KEY_TYPE_SANDBOX, key1);

    catalog_fault_inject(0); /* the catalog's next allocation fails */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, k1.id, p_active(false), &rec), 0);
    catalog_fault_inject(-1);
    assert_false(rec.active);
    assert_int_equal(auth(f->k, key1, 2, &p), AK_ERR_KEY_INACTIVE);

    catalog_fault_inject(0);
    assert_int_equal(create(f->k, &a.who, "two", KEY_TYPE_SANDBOX, &rec, key2), 0);
    catalog_fault_inject(-1);
    assert_int_equal(auth(f->k, key2, 3, &p), 0);

    catalog_fault_inject(0);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, k1.id), 0);
    catalog_fault_inject(-1);
    assert_int_equal(auth(f->k, key1, 4, &p), AK_ERR_KEY_UNKNOWN);
}

/* A shared store silent for longer than max_staleness: verification fails closed until it is heard from again. */
static void test_staleness_fails_closed(void **state)
{
    struct fixture *f = *state;
    struct keys *k = faulty_service(f, true, 1), *k0;
    const struct store_watch_ops *wops = fs.wops;
    void *warg = fs.warg;
    struct account a;
    struct principal p;
    struct timespec wait = {.tv_sec = 1, .tv_nsec = 300000000L};

    new_account(k, "acme", &a);
    assert_int_equal(auth(k, a.key, 2, &p), 0);
    k0 = faulty_service(f, true, 0); /* 0: never refuse (fail open) */
    nanosleep(&wait, NULL);          /* past the 1 s bound, with nothing heard */
    assert_int_equal(auth(k, a.key, 3, &p), AK_ERR_STALE);
    assert_int_equal(auth(k0, a.key, 3, &p), 0);
    wops->heard(warg);
    assert_int_equal(auth(k, a.key, 4, &p), 0);
    keys_free(k0);
    keys_free(k);
    faulty_done(f);
}

/* Uses reported from the store are believed only within clock skew: a far-future last_used would stop real uses being recorded. */
static void test_watch_uses_within_skew(void **state)
{
    struct fixture *f = *state;
    struct keys *k = faulty_service(f, true, 0);
    struct account a;
    struct snapshot s;
    int64_t now = timefmt_now();
    struct key_use future = {.id = 0, .at = 4102444800}, recent = {.id = 0, .at = now};

    new_account(k, "acme", &a);
    future.id = recent.id = a.primary.id;
    fs.wops->used(fs.warg, &future, 1);
    snap(k, &a.who, &s);
    assert_true(must_find(&s, a.primary.id)->last_used < now + 10);
    fs.wops->used(fs.warg, &recent, 1);
    snap(k, &a.who, &s);
    assert_int_equal(must_find(&s, a.primary.id)->last_used, now);
    keys_free(k);
    faulty_done(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_refuses_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outcome_unknown_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_failure_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staleness_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_uses_within_skew, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accounts_are_separate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sandbox_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_limit, setup_cap3, teardown),
        cmocka_unit_test_setup_teardown(test_primary_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authenticate_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_second_handle, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
