/*
 * Unit tests for core/accounts and core/admin, on SQLite and PostgreSQL
 * (tests/unit/backend.h): an account's cap against its key count,
 * suspension (refused, not a use, restored by reactivation, kept across a
 * reload), deletion taking every key out of the catalog, a key issued as
 * the new primary (the old one demoted in the same step, as readers see
 * it), the listing cursors (round trip; anything altered, another
 * listing's, garbage: refused), and admin tokens (accepted where they
 * belong, refused after revocation, never an account key and vice versa).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "core/accounts.h"
#include "core/admin.h"
#include "core/catalog.h"
#include "core/error.h"
#include "core/keys_impl.h"
#include "iterations.h"
#include "origin.h"

#define KEYBUF (KEYFMT_MAX_LEN + 1)

static int setup_sq(void **state)
{
    return backend_setup(state, BACKEND_SQLITE, 5);
}

static int setup_pg(void **state)
{
    return backend_setup(state, BACKEND_POSTGRES, 5);
}

static int teardown(void **state)
{
    return backend_teardown(state);
}

static int auth(struct keys *k, const char *key, int64_t now, struct principal *ret)
{
    char hdr[KEYBUF + 16];

    snprintf(hdr, sizeof(hdr), "Bearer %s", key);
    return keys_authenticate(k, hdr, strlen(hdr), now, NULL, ret);
}

static int admin_auth(struct keys *k, const char *token, struct audit_origin *ret)
{
    char hdr[KEYBUF + 16];

    snprintf(hdr, sizeof(hdr), "Bearer %s", token);
    return admin_authenticate(k, hdr, strlen(hdr), ret);
}

struct acct {
    int64_t id;
    struct key_rec primary;
    char key[KEYBUF];
};

static void new_account(struct fixture *f, const char *name, unsigned max_keys, struct acct *a)
{
    struct account_create_req req = {.max_keys = max_keys};
    struct account_rec rec;

    memset(a, 0, sizeof(*a));
    snprintf(req.name, sizeof(req.name), "%s", name);
    assert_int_equal(accounts_create(f->k, &T_ORIGIN, &req, &rec, &a->primary, a->key, sizeof(a->key)), 0);
    a->id = rec.id;
}

static int issue(struct fixture *f, int64_t account, const char *name, enum key_type type, bool make_primary, struct key_rec *ret,
                 char *key)
{
    struct issue_req req = {.make_primary = make_primary};

    snprintf(req.key.name, sizeof(req.key.name), "%s", name);
    req.key.type = type;
    return accounts_issue_key(f->k, &T_ORIGIN, account, &req, ret, key, KEYBUF);
}

static struct account_patch_req patch_max(unsigned max_keys)
{
    struct account_patch_req p = {.has_max_keys = true, .max_keys = max_keys};

    return p;
}

static struct account_patch_req patch_status(bool suspended)
{
    struct account_patch_req p = {.has_status = true, .suspended = suspended};

    return p;
}

static int64_t last_used(struct fixture *f, int64_t key_id)
{
    struct key_rec r;

    assert_int_equal(catalog_get(f->k->cat, key_id, &r), 0);
    return r.last_used;
}

static int count_event(void *arg, const struct audit_event *ev)
{
    (void)ev;
    (*(size_t *)arg)++;
    return 0;
}

static size_t events_of(struct fixture *f, int64_t account)
{
    size_t n = 0;

    assert_int_equal(accounts_events(f->k, 0, 1000, account, NULL, 0, count_event, &n), 0);
    return n;
}

/* ---------------------------------------------------------------- tests */

/* max_keys below the account's key count is refused and changes nothing; equal, above and null are fine. */
static void test_max_keys_below_count(void **state)
{
    struct fixture *f = *state;
    struct account_patch_req p;
    struct account_rec r;
    struct key_rec k;
    struct acct a;
    char key[KEYBUF];
    size_t before;

    new_account(f, "acme", 0, &a);
    assert_int_equal(issue(f, a.id, "two", KEY_TYPE_SANDBOX, false, &k, key), 0);
    assert_int_equal(issue(f, a.id, "three", KEY_TYPE_PRODUCTION, false, &k, key), 0);
    before = events_of(f, a.id);
    p = patch_max(2);
    assert_int_equal(accounts_update(f->k, &T_ORIGIN, a.id, &p, &r), AK_ERR_BELOW_COUNT);
    p = patch_max(1);
    assert_int_equal(accounts_update(f->k, &T_ORIGIN, a.id, &p, &r), AK_ERR_BELOW_COUNT);
    assert_int_equal(accounts_get(f->k, a.id, &r), 0);
    assert_int_equal(r.max_keys, 0);
    assert_int_equal(r.key_count, 3);
    assert_int_equal(events_of(f, a.id), before);

    p = patch_max(3);
    assert_int_equal(accounts_update(f->k, &T_ORIGIN, a.id, &p, &r), 0);
    assert_int_equal(r.max_keys, 3);
    assert_int_equal(accounts_max_keys(f->k, &r), 3);
    /* Its own cap applies, not the server's 5. */
    assert_int_equal(issue(f, a.id, "four", KEY_TYPE_SANDBOX, false, &k, key), AK_ERR_LIMIT);
    /* null: back to the server's --max-keys, even below the count. */
    p = patch_max(0);
    assert_int_equal(accounts_update(f->k, &T_ORIGIN, a.id, &p, &r), 0);
    assert_int_equal(r.max_keys, 0);
    assert_int_equal(accounts_max_keys(f->k, &r), 5);
    assert_int_equal(issue(f, a.id, "four", KEY_TYPE_SANDBOX, false, &k, key), 0);
    p = patch_max(1000000);
    assert_int_equal(accounts_update(f->k, &T_ORIGIN, a.id, &p, &r), 0);
    assert_int_equal(r.key_count, 4);
    assert_int_equal(accounts_update(f->k, &T_ORIGIN, 999999, &p, &r), AK_ERR_NOT_FOUND);
}

/* A suspended account's keys are refused, and that is not a use; reactivation restores them as they were. */
static void test_suspension(void **state)
{
    struct fixture *f = *state;
    struct account_patch_req p;
    struct account_rec r;
    struct principal who;
    struct key_rec off, rec;
    struct acct a, b;
    char koff[KEYBUF];

    new_account(f, "acme", 0, &a);
    new_account(f, "bystander", 0, &b);
    assert_int_equal(issue(f, a.id, "off", KEY_TYPE_SANDBOX, false, &off, koff), 0);
    assert_int_equal(auth(f->k, a.key, 100, &who), 0);
    assert_int_equal(last_used(f, a.primary.id), 100);

    p = patch_status(true);
    assert_int_equal(accounts_update(f->k, &T_ORIGIN, a.id, &p, &r), 0);
    assert_true(r.suspended);
    assert_true(catalog_is_suspended(f->k->cat, a.id));
    assert_int_equal(auth(f->k, a.key, 200, &who), AK_ERR_SUSPENDED);
    assert_int_equal(auth(f->k, koff, 200, &who), AK_ERR_SUSPENDED);
    assert_int_equal(last_used(f, a.primary.id), 100);
    assert_int_equal(last_used(f, off.id), 0);
    assert_int_equal(auth(f->k, b.key, 200, &who), 0);
    /* Suspending again changes nothing. */
    assert_int_equal(accounts_update(f->k, &T_ORIGIN, a.id, &p, &r), 0);
    assert_int_equal(auth(f->k, a.key, 210, &who), AK_ERR_SUSPENDED);

    /* Still manageable while suspended; a deactivated key still says so first. */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &(struct principal){.account_id = a.id, .type = KEY_TYPE_PRODUCTION}, off.id,
                                 &(struct patch_req){.has_active = true, .active = false}, &rec),
                     0);
    assert_int_equal(auth(f->k, koff, 220, &who), AK_ERR_KEY_INACTIVE);

    /* Kept across a reload from the store. */
    assert_int_equal(keys_flush_uses(f->k), 0);
    backend_close(f);
    assert_int_equal(backend_open(f), 0);
    assert_int_equal(auth(f->k, a.key, 300, &who), AK_ERR_SUSPENDED);
    assert_int_equal(last_used(f, a.primary.id), 100);

    p = patch_status(false);
    assert_int_equal(accounts_update(f->k, &T_ORIGIN, a.id, &p, &r), 0);
    assert_false(r.suspended);
    assert_false(catalog_is_suspended(f->k->cat, a.id));
    assert_int_equal(auth(f->k, a.key, 400, &who), 0);
    assert_int_equal(who.key_id, a.primary.id);
    assert_int_equal(last_used(f, a.primary.id), 400);
    assert_int_equal(auth(f->k, koff, 400, &who), AK_ERR_KEY_INACTIVE);
    assert_int_equal(auth(f->k, b.key, 400, &who), 0);
}

/* Deleting an account takes every one of its keys out of the catalog, and only its keys. */
static void test_delete(void **state)
{
    struct fixture *f = *state;
    struct account_patch_req p = patch_status(true);
    struct account_rec r;
    struct principal who;
    struct key_rec k2, k3;
    struct acct a, b;
    char key2[KEYBUF], key3[KEYBUF];

    new_account(f, "acme", 0, &a);
    new_account(f, "bystander", 0, &b);
    assert_int_equal(issue(f, a.id, "two", KEY_TYPE_SANDBOX, false, &k2, key2), 0);
    assert_int_equal(issue(f, a.id, "three", KEY_TYPE_PRODUCTION, true, &k3, key3), 0);
    assert_int_equal(accounts_update(f->k, &T_ORIGIN, a.id, &p, &r), 0); /* a suspended account can be deleted */

    assert_int_equal(accounts_delete(f->k, &T_ORIGIN, a.id), 0);
    assert_int_equal(auth(f->k, a.key, 10, &who), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(auth(f->k, key2, 10, &who), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(auth(f->k, key3, 10, &who), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(catalog_get(f->k->cat, a.primary.id, &k2), AK_ERR_NOT_FOUND);
    assert_int_equal(catalog_get(f->k->cat, k3.id, &k2), AK_ERR_NOT_FOUND);
    assert_false(catalog_is_suspended(f->k->cat, a.id));
    assert_int_equal(accounts_get(f->k, a.id, &r), AK_ERR_NOT_FOUND);
    assert_int_equal(auth(f->k, b.key, 10, &who), 0);
    assert_int_equal(accounts_delete(f->k, &T_ORIGIN, a.id), AK_ERR_NOT_FOUND);
    /* Its events stay (until retention). */
    assert_true(events_of(f, a.id) >= 5);

    /* And after a reload too. */
    backend_close(f);
    assert_int_equal(backend_open(f), 0);
    assert_int_equal(auth(f->k, key3, 11, &who), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(auth(f->k, b.key, 11, &who), 0);
}

struct primaries {
    struct keys *k;
    int64_t account;
    atomic_int stop;
    long snapshots, bad;
};

static void count_primary(void *arg, const struct key_rec *rec)
{
    if (rec->primary)
        (*(int *)arg)++;
}

/* Reader: every view of the account it gets has exactly one primary. */
static void *watch_primaries(void *arg)
{
    struct primaries *p = arg;
    struct principal who = {.account_id = p->account, .type = KEY_TYPE_PRODUCTION};

    while (!atomic_load(&p->stop)) {
        int n = 0;
        keys_list(p->k, &who, count_primary, &n);
        p->snapshots++;
        if (n != 1)
            p->bad++;
        sched_yield(); /* under valgrind, which runs one thread at a time, the writer must get its turn */
    }
    return NULL;
}

/* A key issued with make_primary demotes the old primary in the same step, in the store and in the catalog. */
static void test_issue_make_primary(void **state)
{
    struct fixture *f = *state;
    struct primaries p = {.k = f->k};
    struct principal who;
    struct key_rec k, old, prev;
    struct acct a;
    char key[KEYBUF];
    pthread_t t;
    long rounds;

    new_account(f, "acme", 60, &a);
    assert_int_equal(issue(f, a.id, "new primary", KEY_TYPE_PRODUCTION, true, &k, key), 0);
    assert_true(k.primary);
    assert_true(k.active);
    assert_int_equal(k.account_id, a.id);
    assert_int_equal(catalog_get(f->k->cat, a.primary.id, &old), 0);
    assert_false(old.primary);
    assert_true(old.active);
    assert_int_equal(auth(f->k, a.key, 5, &who), 0); /* the old primary still works */
    assert_int_equal(auth(f->k, key, 5, &who), 0);
    assert_int_equal(who.key_id, k.id);
    assert_int_equal(catalog_get(f->k->cat, k.id, &old), 0);
    assert_true(old.primary);

    /* Not primary: nothing else moves. A sandbox key cannot be made primary (validation), and is not here either. */
    assert_int_equal(issue(f, a.id, "plain", KEY_TYPE_SANDBOX, false, &old, key), 0);
    assert_false(old.primary);
    assert_int_equal(catalog_get(f->k->cat, k.id, &old), 0);
    assert_true(old.primary);
    assert_int_equal(issue(f, 999999, "nobody", KEY_TYPE_PRODUCTION, true, &old, key), AK_ERR_NOT_FOUND);

    /* Readers never see zero or two primaries while the primary moves. */
    p.account = a.id;
    prev = k;
    assert_int_equal(pthread_create(&t, NULL, watch_primaries, &p), 0);
    rounds = test_iterations(20, 4);
    for (long i = 0; i < rounds; i++) {
        assert_int_equal(issue(f, a.id, "rotated", KEY_TYPE_PRODUCTION, true, &k, key), 0);
        assert_int_equal(catalog_get(f->k->cat, prev.id, &old), 0);
        assert_false(old.primary);
        prev = k;
    }
    atomic_store(&p.stop, 1);
    pthread_join(t, NULL);
    assert_int_equal(p.bad, 0);
    assert_true(p.snapshots > 0);
    /* The account's cap counts issued keys: 3 + the rotations, of 60. */
    {
        struct account_rec r;
        assert_int_equal(accounts_get(f->k, a.id, &r), 0);
        assert_int_equal(r.key_count, 3 + rounds);
    }
}

static void test_issue_cap(void **state)
{
    struct fixture *f = *state;
    struct key_rec k;
    struct acct a;
    char key[KEYBUF];

    new_account(f, "acme", 0, &a); /* the server's cap: 5 */
    for (int i = 0; i < 4; i++)
        assert_int_equal(issue(f, a.id, "k", KEY_TYPE_SANDBOX, false, &k, key), 0);
    memset(key, 'Z', sizeof(key));
    assert_int_equal(issue(f, a.id, "k", KEY_TYPE_PRODUCTION, true, &k, key), AK_ERR_LIMIT);
    assert_true(key[0] == '\0' || key[0] == 'Z'); /* nothing shown */
    assert_int_equal(catalog_get(f->k->cat, a.primary.id, &k), 0);
    assert_true(k.primary); /* the failed issue demoted nothing */
}

static void test_cursors(void **state)
{
    struct fixture *f = *state;
    static const int64_t positions[] = {1, 9, 10, 12345, 1000000007, INT64_MAX};
    char c[CURSOR_MAX + 1], t[CURSOR_MAX + 8];
    int64_t pos;
    size_t len, dot;

    for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
        accounts_cursor_encode(f->k, "accounts", positions[i], c);
        len = strlen(c);
        assert_true(len <= CURSOR_MAX);
        pos = -1;
        assert_int_equal(accounts_cursor_decode(f->k, "accounts", c, len, &pos), 0);
        assert_int_equal(pos, positions[i]);
        /* Another listing's (or another filter's) cursor. */
        assert_int_equal(accounts_cursor_decode(f->k, "events", c, len, &pos), AK_ERR_INVALID);
        assert_int_equal(accounts_cursor_decode(f->k, "accounts?external_id=x", c, len, &pos), AK_ERR_INVALID);
        /* Every single byte altered. */
        for (size_t j = 0; j < len; j++) {
            static const char subst[] = "0123456789abcdefA.Z";
            for (size_t s = 0; subst[s] != '\0'; s++) {
                if (subst[s] == c[j])
                    continue;
                memcpy(t, c, len);
                t[j] = subst[s];
                if (accounts_cursor_decode(f->k, "accounts", t, len, &pos) != AK_ERR_INVALID)
                    fail_msg("accepted %.*s (from %s)", (int)len, t, c);
            }
        }
        /* Cut short, or with more after it. */
        for (size_t j = 0; j < len; j++)
            assert_int_equal(accounts_cursor_decode(f->k, "accounts", c, j, &pos), AK_ERR_INVALID);
        memcpy(t, c, len);
        t[len] = '0';
        assert_int_equal(accounts_cursor_decode(f->k, "accounts", t, len + 1, &pos), AK_ERR_INVALID);
        /* A leading zero or a sign: the same position, not the same cursor. */
        t[0] = '0';
        memcpy(t + 1, c, len);
        assert_int_equal(accounts_cursor_decode(f->k, "accounts", t, len + 1, &pos), AK_ERR_INVALID);
        t[0] = '+';
        assert_int_equal(accounts_cursor_decode(f->k, "accounts", t, len + 1, &pos), AK_ERR_INVALID);
    }
    /* Another secret's cursor: a second service with its own secret file. */
    {
        struct digest_secret other;
        struct keys *k2;
        struct keys_config cfg = {.brand = "ml", .max_keys = 5};
        char path[160], err[128];
        snprintf(path, sizeof(path), "%s/other.secret", f->dir);
        assert_int_equal(digest_secret_load(path, &other, err, sizeof(err)), 0);
        assert_int_equal(keys_new(f->store, &other, &cfg, &k2), 0);
        accounts_cursor_encode(k2, "accounts", 42, c);
        assert_int_equal(accounts_cursor_decode(f->k, "accounts", c, strlen(c), &pos), AK_ERR_INVALID);
        assert_int_equal(accounts_cursor_decode(k2, "accounts", c, strlen(c), &pos), 0);
        keys_free(k2);
        digest_secret_wipe(&other);
    }
    /* Garbage. */
    {
        static const char *const bad[] = {
            "",
            "1",
            "1.",
            "abc",
            "0.0000000000000000",
            "-1.0000000000000000",
            "1.000000000000000g",
            "1 .0000000000000000",
            "9223372036854775808.0000000000000000",
            "99999999999999999999999.0000000000000000",
            "1.00000000000000000000000000000000000000000000000000000000000000000",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            if (accounts_cursor_decode(f->k, "accounts", bad[i], strlen(bad[i]), &pos) != AK_ERR_INVALID)
                fail_msg("accepted \"%s\"", bad[i]);
        memset(t, '1', sizeof(t));
        assert_int_equal(accounts_cursor_decode(f->k, "accounts", t, sizeof(t), &pos), AK_ERR_INVALID);
    }
    /* A valid cursor with a NUL or another byte in its check. */
    accounts_cursor_encode(f->k, "accounts", 77, c);
    len = strlen(c);
    dot = (size_t)(strchr(c, '.') - c);
    memcpy(t, c, len);
    t[dot + 5] = '\0';
    assert_int_equal(accounts_cursor_decode(f->k, "accounts", t, len, &pos), AK_ERR_INVALID);
    t[dot + 5] = (char)toupper((unsigned char)c[dot + 5]);
    if (t[dot + 5] != c[dot + 5])
        assert_int_equal(accounts_cursor_decode(f->k, "accounts", t, len, &pos), AK_ERR_INVALID);
}

static void test_admin_tokens(void **state)
{
    struct fixture *f = *state;
    struct audit_origin who, o;
    struct principal p;
    struct token_rec t, t2;
    struct acct a;
    char token[KEYBUF], token2[KEYBUF], sand[KEYBUF];
    struct key_rec sk;

    new_account(f, "acme", 0, &a);
    assert_int_equal(issue(f, a.id, "sand", KEY_TYPE_SANDBOX, false, &sk, sand), 0);
    audit_origin_cli(&o);
    assert_int_equal(admin_token_create(f->k, &o, "ops", &t, token, sizeof(token)), 0);
    assert_int_equal(admin_token_create(f->k, &o, "ops 2", &t2, token2, sizeof(token2)), 0);
    assert_memory_equal(token, "ml_admin_", 9);
    assert_int_equal(strlen(t.prefix), KEYFMT_ADMIN_PREFIX_LEN);
    assert_memory_equal(t.prefix, token, KEYFMT_ADMIN_PREFIX_LEN);

    memset(&who, 0, sizeof(who));
    assert_int_equal(admin_auth(f->k, token, &who), 0);
    assert_int_equal(who.actor, ACTOR_ADMIN_TOKEN);
    assert_int_equal(who.actor_id, t.id);
    assert_string_equal(who.actor_prefix, t.prefix);
    assert_int_equal(admin_auth(f->k, token2, &who), 0);
    assert_int_equal(who.actor_id, t2.id);

    /* An account's keys are never admin tokens, and admin tokens never account keys. */
    assert_int_equal(admin_auth(f->k, a.key, &who), AK_ERR_KEY_FORMAT);
    assert_int_equal(admin_auth(f->k, sand, &who), AK_ERR_KEY_FORMAT);
    assert_int_equal(auth(f->k, token, 10, &p), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(admin_authenticate(f->k, NULL, 0, &who), AK_ERR_MISSING_KEY);
    /* A well-formed token nobody made. */
    {
        char made[KEYBUF];
        assert_int_equal(keyfmt_generate("ml", KEY_TYPE_ADMIN, made, sizeof(made)), 0);
        assert_int_equal(admin_auth(f->k, made, &who), AK_ERR_KEY_UNKNOWN);
        token[20] = token[20] == 'a' ? 'b' : 'a'; /* its checksum no longer holds */
        assert_int_equal(admin_auth(f->k, token, &who), AK_ERR_KEY_FORMAT);
    }

    assert_int_equal(admin_token_revoke(f->k, &o, t.id), 0);
    assert_int_equal(admin_auth(f->k, token2, &who), 0); /* the other one still works */
    assert_int_equal(admin_token_revoke(f->k, &o, t.id), AK_ERR_NOT_FOUND);
    assert_int_equal(admin_token_revoke(f->k, &o, t2.id), 0);
    assert_int_equal(admin_auth(f->k, token2, &who), AK_ERR_KEY_UNKNOWN);
    /* Across a reload too. */
    backend_close(f);
    assert_int_equal(backend_open(f), 0);
    assert_int_equal(admin_auth(f->k, token2, &who), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(auth(f->k, a.key, 10, &p), 0);
}

/* A token survives a reload; the service's list follows the store. */
static void test_admin_token_reload(void **state)
{
    struct fixture *f = *state;
    struct audit_origin who, o;
    struct token_rec t;
    char token[KEYBUF];

    audit_origin_cli(&o);
    assert_int_equal(admin_token_create(f->k, &o, "ops", &t, token, sizeof(token)), 0);
    backend_close(f);
    assert_int_equal(backend_open(f), 0);
    assert_int_equal(admin_auth(f->k, token, &who), 0);
    assert_int_equal(who.actor_id, t.id);
}

#define TESTS(setup)                                                                                                               \
    cmocka_unit_test_setup_teardown(test_max_keys_below_count, setup, teardown),                                                   \
        cmocka_unit_test_setup_teardown(test_suspension, setup, teardown),                                                         \
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),                                                             \
        cmocka_unit_test_setup_teardown(test_issue_make_primary, setup, teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_issue_cap, setup, teardown),                                                          \
        cmocka_unit_test_setup_teardown(test_cursors, setup, teardown),                                                            \
        cmocka_unit_test_setup_teardown(test_admin_tokens, setup, teardown),                                                       \
        cmocka_unit_test_setup_teardown(test_admin_token_reload, setup, teardown)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {TESTS(setup_sq)};
    const struct CMUnitTest postgres_tests[] = {TESTS(setup_pg)};
    int failed = cmocka_run_group_tests_name("sqlite", sqlite_tests, NULL, NULL);

    return failed + cmocka_run_group_tests_name("postgres", postgres_tests, NULL, NULL);
}
