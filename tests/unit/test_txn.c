/*
 * Unit tests for store/txn: every write and its audit event are one
 * transaction, on SQLite and on PostgreSQL (tests/unit/backend.h; each test
 * runs once per backend). A fault store (the real store with some row
 * primitives replaced, as in test_keys.c) makes one step of a write fail:
 * a failing event_append must roll the change back, a failing change must
 * leave no event. Every successful write leaves its events (one; two for a
 * primary move; account.created + key.created for a new account) with the
 * right action, target, changes and actor. Also: pruning deletes only older
 * events, in batches; an external_id that is taken creates nothing; the
 * key cap is the account's own or the default. Restrictions (scopes,
 * allowed_ips) are kept and cleared as written; usage rows flushed with
 * last_used (in one transaction: a failing usage write raises no
 * last_used) add up per key and hour, read back per hour, per day and per
 * key, within a window, for one key or only sandbox keys, and are pruned
 * by age in batches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "core/audit.h"
#include "core/error.h"
#include "store/store.h"

/* Who makes the changes in these tests: every event must carry it whole. */
static const struct audit_origin OP = {
    .actor = ACTOR_ADMIN_TOKEN,
    .actor_id = 7,
    .actor_prefix = "ml_admin_AbCd",
    .client_ip = "192.0.2.7",
    .request_id = "req-txn-1",
};

/* ---- the fault store ---- */

enum fault {
    F_NONE,
    F_EVENT_APPEND,
    F_ACCOUNT_INSERT,
    F_ACCOUNT_WRITE,
    F_ACCOUNT_REMOVE,
    F_KEY_INSERT,
    F_KEY_WRITE,
    F_KEY_REMOVE,
    F_TOKEN_INSERT,
    F_TOKEN_REMOVE,
    F_USAGE_ADD,
};

static struct {
    const struct store_ops *real;
    struct store_ops ops;
    enum fault fault;
    int fail_at; /* the faulty op's call that fails (1: the first since arm) */
    int calls;
    int prunes;          /* events_prune calls */
    unsigned prune_max;  /* the largest batch asked for */
    int64_t prune_first; /* what the first call deleted */
} fs;

/* Makes the `at`-th call of `f`'s op from now on fail. */
static void arm(enum fault f, int at)
{
    fs.fault = f;
    fs.fail_at = at;
    fs.calls = 0;
}

static bool strike(enum fault f)
{
    return fs.fault == f && ++fs.calls == fs.fail_at;
}

static int fs_event_append(struct store *s, struct audit_event *ev)
{
    return strike(F_EVENT_APPEND) ? AK_ERR_STORE : fs.real->event_append(s, ev);
}

static int fs_account_insert(struct store *s, struct account_rec *rec)
{
    return strike(F_ACCOUNT_INSERT) ? AK_ERR_STORE : fs.real->account_insert(s, rec);
}

static int fs_account_write(struct store *s, const struct account_rec *rec)
{
    return strike(F_ACCOUNT_WRITE) ? AK_ERR_STORE : fs.real->account_write(s, rec);
}

static int fs_account_remove(struct store *s, int64_t id, int64_t **ret_ids, size_t *ret_n)
{
    return strike(F_ACCOUNT_REMOVE) ? AK_ERR_STORE : fs.real->account_remove(s, id, ret_ids, ret_n);
}

static int fs_key_insert(struct store *s, struct key_rec *rec)
{
    return strike(F_KEY_INSERT) ? AK_ERR_STORE : fs.real->key_insert(s, rec);
}

static int fs_key_write(struct store *s, struct key_rec *rec)
{
    return strike(F_KEY_WRITE) ? AK_ERR_STORE : fs.real->key_write(s, rec);
}

static int fs_key_remove(struct store *s, int64_t account_id, int64_t id)
{
    return strike(F_KEY_REMOVE) ? AK_ERR_STORE : fs.real->key_remove(s, account_id, id);
}

static int fs_token_insert(struct store *s, struct token_rec *rec)
{
    return strike(F_TOKEN_INSERT) ? AK_ERR_STORE : fs.real->token_insert(s, rec);
}

static int fs_token_remove(struct store *s, int64_t id)
{
    return strike(F_TOKEN_REMOVE) ? AK_ERR_STORE : fs.real->token_remove(s, id);
}

static int fs_usage_add(struct store *s, const struct usage_row *rows, size_t n)
{
    return strike(F_USAGE_ADD) ? AK_ERR_STORE : fs.real->usage_add(s, rows, n);
}

static int fs_events_prune(struct store *s, int64_t before, unsigned max, int64_t *ret_n)
{
    int r = fs.real->events_prune(s, before, max, ret_n);

    if (fs.prunes++ == 0)
        fs.prune_first = r == 0 ? *ret_n : -1;
    if (max > fs.prune_max)
        fs.prune_max = max;
    return r;
}

static int setup_faulty(void **state, enum backend b)
{
    struct fixture *f;
    int r = backend_setup(state, b, KEYS_DEFAULT_MAX);

    if (r != 0)
        return r;
    f = *state;
    memset(&fs, 0, sizeof(fs));
    fs.real = f->store->ops;
    fs.ops = *fs.real;
    fs.ops.event_append = fs_event_append;
    fs.ops.account_insert = fs_account_insert;
    fs.ops.account_write = fs_account_write;
    fs.ops.account_remove = fs_account_remove;
    fs.ops.key_insert = fs_key_insert;
    fs.ops.key_write = fs_key_write;
    fs.ops.key_remove = fs_key_remove;
    fs.ops.token_insert = fs_token_insert;
    fs.ops.token_remove = fs_token_remove;
    fs.ops.events_prune = fs_events_prune;
    fs.ops.usage_add = fs_usage_add;
    f->store->ops = &fs.ops;
    return 0;
}

static int setup_sq(void **state)
{
    return setup_faulty(state, BACKEND_SQLITE);
}

static int setup_pg(void **state)
{
    return setup_faulty(state, BACKEND_POSTGRES);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    if (f != NULL && f->store != NULL && fs.real != NULL)
        f->store->ops = fs.real;
    return backend_teardown(state);
}

/* ---- reading the store back ---- */

#define EVENTS_MAX 64

struct events {
    size_t n;
    struct audit_event ev[EVENTS_MAX];
    char changes[EVENTS_MAX][1024];
};

static int collect_event(void *arg, const struct audit_event *ev)
{
    struct events *e = arg;

    assert_true(e->n < EVENTS_MAX);
    e->ev[e->n] = *ev;
    snprintf(e->changes[e->n], sizeof(e->changes[0]), "%s", ev->changes != NULL ? ev->changes : "");
    e->ev[e->n].changes = ev->changes != NULL ? e->changes[e->n] : NULL;
    e->n++;
    return 0;
}

/* Every event, oldest first (the store lists newest first). */
static void events(struct fixture *f, struct events *e)
{
    struct event_query q = {.limit = 1000};

    memset(e, 0, sizeof(*e));
    assert_int_equal(f->store->ops->event_list(f->store, &q, collect_event, e), 0);
    for (size_t i = 0; i < e->n / 2; i++) {
        struct audit_event t = e->ev[i];
        char c[sizeof(e->changes[0])];
        e->ev[i] = e->ev[e->n - 1 - i];
        e->ev[e->n - 1 - i] = t;
        memcpy(c, e->changes[i], sizeof(c));
        memcpy(e->changes[i], e->changes[e->n - 1 - i], sizeof(c));
        memcpy(e->changes[e->n - 1 - i], c, sizeof(c));
    }
    for (size_t i = 0; i < e->n; i++) {
        e->ev[i].changes = e->changes[i][0] != '\0' ? e->changes[i] : NULL;
        assert_true(i == 0 || e->ev[i - 1].id < e->ev[i].id);
    }
}

static size_t event_count(struct fixture *f)
{
    struct events *e = malloc(sizeof(*e));
    size_t n;

    assert_non_null(e);
    events(f, e);
    n = e->n;
    free(e);
    return n;
}

/* Checks an event: by OP, `action` on `target` `target_id` of `account_id`, with exactly the changes `changes` (JSON). */
static void assert_event(const struct audit_event *ev, const char *action, int64_t account_id, const char *target,
                         int64_t target_id, const char *changes)
{
    json_t *want = json_loads(changes, 0, NULL), *got;

    assert_non_null(want);
    assert_string_equal(ev->action, action);
    assert_int_equal(ev->account_id, account_id);
    assert_string_equal(ev->target_type, target);
    assert_int_equal(ev->target_id, target_id);
    assert_string_equal(ev->actor_type, "admin_token");
    assert_int_equal(ev->actor_id, OP.actor_id);
    assert_string_equal(ev->actor_prefix, OP.actor_prefix);
    assert_string_equal(ev->client_ip, OP.client_ip);
    assert_string_equal(ev->request_id, OP.request_id);
    assert_true(ev->at > 1600000000);
    assert_non_null(ev->changes);
    got = json_loads(ev->changes, 0, NULL);
    if (got == NULL || !json_equal(got, want))
        fail_msg("%s changes %s, expected %s", action, ev->changes, changes);
    json_decref(got);
    json_decref(want);
}

static int count_key(void *arg, const struct key_rec *rec)
{
    (void)rec;
    (*(size_t *)arg)++;
    return 0;
}

static size_t key_count_all(struct fixture *f)
{
    size_t n = 0;

    assert_int_equal(f->store->ops->key_load(f->store, count_key, &n), 0);
    return n;
}

static int count_account(void *arg, const struct account_rec *rec)
{
    (void)rec;
    (*(size_t *)arg)++;
    return 0;
}

static size_t account_count_all(struct fixture *f)
{
    struct account_query q = {.limit = 1000};
    size_t n = 0;

    assert_int_equal(f->store->ops->account_list(f->store, &q, count_account, &n), 0);
    return n;
}

static int count_token(void *arg, const struct token_rec *rec)
{
    (void)rec;
    (*(size_t *)arg)++;
    return 0;
}

static size_t token_count_all(struct fixture *f)
{
    size_t n = 0;

    assert_int_equal(f->store->ops->token_load(f->store, count_token, &n), 0);
    return n;
}

static struct account_rec account_get(struct fixture *f, int64_t id)
{
    struct account_rec a;

    assert_int_equal(f->store->ops->account_get(f->store, id, &a), 0);
    return a;
}

static struct key_rec key_get(struct fixture *f, int64_t id)
{
    struct key_rec k;

    assert_int_equal(f->store->ops->key_get(f->store, id, &k), 0);
    return k;
}

static bool key_exists(struct fixture *f, int64_t id)
{
    struct key_rec k;
    int r = f->store->ops->key_get(f->store, id, &k);

    assert_true(r == 0 || r == AK_ERR_NOT_FOUND);
    return r == 0;
}

/* A key record with a digest of its own (the store never sees the key). */
static struct key_rec new_key(int64_t account_id, const char *name, enum key_type type, bool primary)
{
    static unsigned seq;
    struct key_rec k;

    memset(&k, 0, sizeof(k));
    k.account_id = account_id;
    snprintf(k.name, sizeof(k.name), "%s", name);
    k.type = type;
    k.active = true;
    k.primary = primary;
    k.created_at = 1700000000;
    seq++;
    snprintf(k.prefix, sizeof(k.prefix), "ml_%s_%04u", type == KEY_TYPE_PRODUCTION ? "prod" : "sand", seq % 10000);
    for (size_t i = 0; i < DIGEST_LEN; i++)
        k.digest[i] = (uint8_t)(seq * 31u + i * 7u + (seq >> 8));
    memcpy(k.digest, &seq, sizeof(seq));
    return k;
}

/* Creates an account (and its primary key) that must succeed. */
static int64_t must_account(struct fixture *f, const char *name, const char *external_id, unsigned max_keys, struct key_rec *ret)
{
    struct account_rec a = {.max_keys = max_keys, .created_at = 1700000000};
    struct key_rec k = new_key(0, "Production Key", KEY_TYPE_PRODUCTION, true);

    snprintf(a.name, sizeof(a.name), "%s", name);
    snprintf(a.external_id, sizeof(a.external_id), "%s", external_id);
    assert_int_equal(store_account_create(f->store, &OP, &a, &k), 0);
    assert_true(a.id > 0);
    assert_int_equal(k.account_id, a.id);
    if (ret != NULL)
        *ret = k;
    return a.id;
}

static int64_t must_insert(struct fixture *f, int64_t account, const char *name, enum key_type type)
{
    struct key_rec k = new_key(account, name, type, false);

    assert_int_equal(store_key_insert(f->store, &OP, &k, KEYS_DEFAULT_MAX, NULL), 0);
    return k.id;
}

/* What store_account_update's rules callback applies in these tests. */
struct acct_change {
    const char *name; /* NULL: unchanged */
    int suspended;    /* -1: unchanged */
    int64_t max_keys; /* -1: unchanged */
};

static int apply_acct_change(void *arg, const struct account_rec *cur, struct account_rec *next)
{
    const struct acct_change *c = arg;

    *next = *cur;
    if (c->name != NULL)
        snprintf(next->name, sizeof(next->name), "%s", c->name);
    if (c->suspended >= 0)
        next->suspended = c->suspended != 0;
    if (c->max_keys >= 0)
        next->max_keys = (unsigned)c->max_keys;
    return 0;
}

static int acct_update(struct fixture *f, int64_t id, const char *name, int suspended, int64_t max_keys, struct account_rec *ret)
{
    struct acct_change c = {.name = name, .suspended = suspended, .max_keys = max_keys};

    return store_account_update(f->store, &OP, id, apply_acct_change, &c, ret);
}

/* What store_key_update's rules callback applies in these tests. */
struct key_change {
    const char *name;
    int active, primary; /* -1: unchanged */
};

static int apply_key_change(void *arg, const struct key_rec *cur, int64_t primary_id, struct key_rec *next)
{
    const struct key_change *c = arg;

    (void)primary_id;
    *next = *cur;
    if (c->name != NULL)
        snprintf(next->name, sizeof(next->name), "%s", c->name);
    if (c->active >= 0)
        next->active = c->active != 0;
    if (c->primary >= 0)
        next->primary = c->primary != 0;
    return 0;
}

static int key_update(struct fixture *f, int64_t account, int64_t id, const char *name, int active, int primary,
                      struct key_rec *ret, struct key_rec *ret_demoted)
{
    struct key_change c = {.name = name, .active = active, .primary = primary};

    return store_key_update(f->store, &OP, account, id, apply_key_change, &c, ret, ret_demoted);
}

static int allow_delete(void *arg, const struct key_rec *cur)
{
    (void)arg;
    (void)cur;
    return 0;
}

/* ---------------------------------------------------------------- tests */

static void test_account_create_events(void **state)
{
    struct fixture *f = *state;
    struct events *e = malloc(sizeof(*e));
    struct key_rec k;
    char want[256];
    int64_t a, b;

    assert_non_null(e);
    a = must_account(f, "acme", "cust-1", 5, &k);
    events(f, e);
    assert_int_equal(e->n, 2);
    assert_event(&e->ev[0], "account.created", a, "account", a,
                 "{\"name\":{\"old\":null,\"new\":\"acme\"},\"external_id\":{\"old\":null,\"new\":\"cust-1\"},"
                 "\"status\":{\"old\":null,\"new\":\"active\"},\"max_keys\":{\"old\":null,\"new\":5}}");
    assert_event(&e->ev[1], "key.created", a, "key", k.id,
                 "{\"name\":{\"old\":null,\"new\":\"Production Key\"},\"key_type\":{\"old\":null,\"new\":\"production\"},"
                 "\"is_active\":{\"old\":null,\"new\":true},\"is_primary\":{\"old\":null,\"new\":true}}");
    /* An account with neither external_id nor a cap of its own: those stay out of its changes. */
    b = must_account(f, "plain", "", 0, NULL);
    events(f, e);
    assert_int_equal(e->n, 4);
    snprintf(want, sizeof(want), "{\"name\":{\"old\":null,\"new\":\"plain\"},\"status\":{\"old\":null,\"new\":\"active\"}}");
    assert_event(&e->ev[2], "account.created", b, "account", b, want);
    assert_int_equal(account_get(f, a).key_count, 1);
    assert_int_equal(account_get(f, a).max_keys, 5);
    assert_string_equal(account_get(f, a).external_id, "cust-1");
    free(e);
}

/* Any step of an account's creation failing: no account, no key, no event. */
static void test_account_create_atomic(void **state)
{
    struct fixture *f = *state;
    static const struct {
        enum fault f;
        int at;
    } faults[] = {{F_EVENT_APPEND, 1}, {F_EVENT_APPEND, 2}, {F_KEY_INSERT, 1}, {F_ACCOUNT_INSERT, 1}};

    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
        struct account_rec a = {.created_at = 1700000000, .max_keys = 3};
        struct key_rec k = new_key(0, "Production Key", KEY_TYPE_PRODUCTION, true);

        snprintf(a.name, sizeof(a.name), "doomed");
        snprintf(a.external_id, sizeof(a.external_id), "ext-%zu", i);
        arm(faults[i].f, faults[i].at);
        assert_int_equal(store_account_create(f->store, &OP, &a, &k), AK_ERR_STORE);
        arm(F_NONE, 0);
        assert_int_equal(account_count_all(f), 0);
        assert_int_equal(key_count_all(f), 0);
        assert_int_equal(event_count(f), 0);
    }
    /* ...and the external_id the failed creations tried is still free. */
    must_account(f, "fine", "ext-0", 0, NULL);
    assert_int_equal(event_count(f), 2);
}

/* An external_id that is taken: AK_ERR_EXISTS with the holder's id; no account, no key, no event. */
static void test_account_create_external_taken(void **state)
{
    struct fixture *f = *state;
    struct account_rec a = {.created_at = 1700000000};
    struct key_rec k = new_key(0, "Production Key", KEY_TYPE_PRODUCTION, true);
    int64_t first = must_account(f, "first", "cust-9", 0, NULL);

    must_account(f, "other", "cust-10", 0, NULL);
    snprintf(a.name, sizeof(a.name), "retry");
    snprintf(a.external_id, sizeof(a.external_id), "cust-9");
    assert_int_equal(store_account_create(f->store, &OP, &a, &k), AK_ERR_EXISTS);
    assert_int_equal(a.id, first);
    assert_int_equal(account_count_all(f), 2);
    assert_int_equal(key_count_all(f), 2);
    assert_int_equal(event_count(f), 4);
    /* No external_id is no conflict, however often. */
    must_account(f, "anon1", "", 0, NULL);
    must_account(f, "anon2", "", 0, NULL);
    assert_int_equal(account_count_all(f), 4);
}

static void test_account_update_events(void **state)
{
    struct fixture *f = *state;
    struct events *e = malloc(sizeof(*e));
    struct account_rec r;
    int64_t a;

    assert_non_null(e);
    a = must_account(f, "acme", "", 0, NULL);
    assert_int_equal(acct_update(f, a, NULL, 1, -1, &r), 0);
    assert_true(r.suspended);
    assert_int_equal(r.key_count, 1);
    assert_int_equal(acct_update(f, a, NULL, 0, -1, &r), 0);
    assert_false(r.suspended);
    assert_int_equal(acct_update(f, a, "Acme Inc", -1, -1, &r), 0);
    assert_string_equal(r.name, "Acme Inc");
    assert_int_equal(acct_update(f, a, NULL, -1, 7, &r), 0);
    assert_int_equal(r.max_keys, 7);
    assert_int_equal(acct_update(f, a, NULL, -1, 0, &r), 0);
    assert_int_equal(r.max_keys, 0);
    /* Status and name at once: one event, its action chosen by the status. */
    assert_int_equal(acct_update(f, a, "Acme", 1, -1, &r), 0);
    events(f, e);
    assert_int_equal(e->n, 2 + 6);
    assert_event(&e->ev[2], "account.suspended", a, "account", a, "{\"status\":{\"old\":\"active\",\"new\":\"suspended\"}}");
    assert_event(&e->ev[3], "account.reactivated", a, "account", a, "{\"status\":{\"old\":\"suspended\",\"new\":\"active\"}}");
    assert_event(&e->ev[4], "account.updated", a, "account", a, "{\"name\":{\"old\":\"acme\",\"new\":\"Acme Inc\"}}");
    assert_event(&e->ev[5], "account.updated", a, "account", a, "{\"max_keys\":{\"old\":null,\"new\":7}}");
    assert_event(&e->ev[6], "account.updated", a, "account", a, "{\"max_keys\":{\"old\":7,\"new\":null}}");
    assert_event(&e->ev[7], "account.suspended", a, "account", a,
                 "{\"name\":{\"old\":\"Acme Inc\",\"new\":\"Acme\"},\"status\":{\"old\":\"active\",\"new\":\"suspended\"}}");
    /* A change that changes nothing records nothing. */
    assert_int_equal(acct_update(f, a, "Acme", 1, -1, &r), 0);
    assert_int_equal(event_count(f), 8);
    /* No such account. */
    assert_int_equal(acct_update(f, 999999, "x", -1, -1, &r), AK_ERR_NOT_FOUND);
    assert_int_equal(event_count(f), 8);
    free(e);
}

static void test_account_update_atomic(void **state)
{
    struct fixture *f = *state;
    struct account_rec r, before;
    int64_t a = must_account(f, "acme", "", 0, NULL);

    before = account_get(f, a);
    arm(F_EVENT_APPEND, 1);
    assert_int_equal(acct_update(f, a, "renamed", 1, 9, &r), AK_ERR_STORE);
    arm(F_ACCOUNT_WRITE, 1);
    assert_int_equal(acct_update(f, a, "renamed", 1, 9, &r), AK_ERR_STORE);
    arm(F_NONE, 0);
    r = account_get(f, a);
    assert_false(r.suspended);
    assert_string_equal(r.name, before.name);
    assert_int_equal(r.max_keys, 0);
    assert_int_equal(event_count(f), 2);
    {
        int64_t *ids = NULL;
        size_t n = 0;
        assert_int_equal(f->store->ops->suspended_load(f->store, &ids, &n), 0);
        assert_int_equal(n, 0);
        free(ids);
    }
}

static void test_account_delete(void **state)
{
    struct fixture *f = *state;
    struct events *e = malloc(sizeof(*e));
    struct key_rec primary;
    int64_t a, other, k2, k3, *ids = NULL;
    size_t n = 0, before;

    assert_non_null(e);
    a = must_account(f, "acme", "cust-1", 4, &primary);
    other = must_account(f, "other", "", 0, NULL);
    k2 = must_insert(f, a, "two", KEY_TYPE_SANDBOX);
    k3 = must_insert(f, a, "three", KEY_TYPE_PRODUCTION);
    before = event_count(f);

    /* A failure anywhere: the account, its keys and the log stay as they were. */
    arm(F_EVENT_APPEND, 1);
    assert_int_equal(store_account_delete(f->store, &OP, a, &ids, &n), AK_ERR_STORE);
    assert_null(ids);
    arm(F_ACCOUNT_REMOVE, 1);
    assert_int_equal(store_account_delete(f->store, &OP, a, &ids, &n), AK_ERR_STORE);
    arm(F_NONE, 0);
    assert_int_equal(account_get(f, a).key_count, 3);
    assert_true(key_exists(f, primary.id) && key_exists(f, k2) && key_exists(f, k3));
    assert_int_equal(event_count(f), before);

    assert_int_equal(store_account_delete(f->store, &OP, a, &ids, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_true(ids[i] == primary.id || ids[i] == k2 || ids[i] == k3);
    free(ids);
    assert_false(key_exists(f, primary.id) || key_exists(f, k2) || key_exists(f, k3));
    {
        struct account_rec r;
        assert_int_equal(f->store->ops->account_get(f->store, a, &r), AK_ERR_NOT_FOUND);
    }
    assert_int_equal(account_get(f, other).key_count, 1);
    events(f, e);
    assert_int_equal(e->n, before + 1);
    assert_event(&e->ev[e->n - 1], "account.deleted", a, "account", a,
                 "{\"name\":{\"old\":\"acme\",\"new\":null},\"external_id\":{\"old\":\"cust-1\",\"new\":null},"
                 "\"status\":{\"old\":\"active\",\"new\":null},\"max_keys\":{\"old\":4,\"new\":null}}");
    /* Gone is gone. */
    assert_int_equal(store_account_delete(f->store, &OP, a, &ids, &n), AK_ERR_NOT_FOUND);
    assert_int_equal(event_count(f), before + 1);
    free(e);
}

static void test_key_insert(void **state)
{
    struct fixture *f = *state;
    struct events *e = malloc(sizeof(*e));
    struct key_rec primary, k, demoted;
    int64_t a;
    size_t before;

    assert_non_null(e);
    a = must_account(f, "acme", "", 0, &primary);
    before = event_count(f);

    k = new_key(a, "sandbox one", KEY_TYPE_SANDBOX, false);
    assert_int_equal(store_key_insert(f->store, &OP, &k, KEYS_DEFAULT_MAX, NULL), 0);
    events(f, e);
    assert_int_equal(e->n, before + 1);
    assert_event(&e->ev[before], "key.created", a, "key", k.id,
                 "{\"name\":{\"old\":null,\"new\":\"sandbox one\"},\"key_type\":{\"old\":null,\"new\":\"sandbox\"},"
                 "\"is_active\":{\"old\":null,\"new\":true},\"is_primary\":{\"old\":null,\"new\":false}}");
    assert_int_equal(account_get(f, a).key_count, 2);

    /* A failing event or insert, with or without a primary move: nothing changes. */
    for (int primary_move = 0; primary_move < 2; primary_move++) {
        for (int at = 1; at <= 1 + primary_move; at++) {
            struct key_rec x = new_key(a, "doomed", KEY_TYPE_PRODUCTION, primary_move != 0);
            arm(F_EVENT_APPEND, at);
            assert_int_equal(store_key_insert(f->store, &OP, &x, KEYS_DEFAULT_MAX, &demoted), AK_ERR_STORE);
            arm(F_KEY_INSERT, 1);
            x = new_key(a, "doomed", KEY_TYPE_PRODUCTION, primary_move != 0);
            assert_int_equal(store_key_insert(f->store, &OP, &x, KEYS_DEFAULT_MAX, &demoted), AK_ERR_STORE);
            arm(F_NONE, 0);
            assert_true(key_get(f, primary.id).primary);
            assert_int_equal(account_get(f, a).key_count, 2);
            assert_int_equal(key_count_all(f), 2);
            assert_int_equal(event_count(f), before + 1);
        }
    }

    /* A new primary demotes the old one in the same transaction: two events, the demotion first. */
    k = new_key(a, "new primary", KEY_TYPE_PRODUCTION, true);
    memset(&demoted, 0x5a, sizeof(demoted));
    assert_int_equal(store_key_insert(f->store, &OP, &k, KEYS_DEFAULT_MAX, &demoted), 0);
    assert_int_equal(demoted.id, primary.id);
    assert_false(demoted.primary);
    assert_true(demoted.active);
    assert_false(key_get(f, primary.id).primary);
    assert_true(key_get(f, primary.id).active);
    assert_true(key_get(f, k.id).primary);
    events(f, e);
    assert_int_equal(e->n, before + 3);
    assert_event(&e->ev[before + 1], "key.updated", a, "key", primary.id, "{\"is_primary\":{\"old\":true,\"new\":false}}");
    assert_event(&e->ev[before + 2], "key.created", a, "key", k.id,
                 "{\"name\":{\"old\":null,\"new\":\"new primary\"},\"key_type\":{\"old\":null,\"new\":\"production\"},"
                 "\"is_active\":{\"old\":null,\"new\":true},\"is_primary\":{\"old\":null,\"new\":true}}");
    /* No such account. */
    k = new_key(999999, "orphan", KEY_TYPE_SANDBOX, false);
    assert_int_equal(store_key_insert(f->store, &OP, &k, KEYS_DEFAULT_MAX, NULL), AK_ERR_NOT_FOUND);
    assert_int_equal(event_count(f), before + 3);
    free(e);
}

static void test_key_update(void **state)
{
    struct fixture *f = *state;
    struct events *e = malloc(sizeof(*e));
    struct key_rec primary, r, demoted;
    int64_t a, q;
    size_t before;

    assert_non_null(e);
    a = must_account(f, "acme", "", 0, &primary);
    q = must_insert(f, a, "q", KEY_TYPE_PRODUCTION);
    before = event_count(f);

    assert_int_equal(key_update(f, a, q, "renamed", -1, -1, &r, &demoted), 0);
    assert_int_equal(demoted.id, 0);
    assert_int_equal(key_update(f, a, q, NULL, 0, -1, &r, &demoted), 0);
    assert_int_equal(key_update(f, a, q, NULL, 1, -1, &r, &demoted), 0);
    events(f, e);
    assert_int_equal(e->n, before + 3);
    assert_event(&e->ev[before], "key.updated", a, "key", q, "{\"name\":{\"old\":\"q\",\"new\":\"renamed\"}}");
    assert_event(&e->ev[before + 1], "key.updated", a, "key", q, "{\"is_active\":{\"old\":true,\"new\":false}}");
    assert_event(&e->ev[before + 2], "key.updated", a, "key", q, "{\"is_active\":{\"old\":false,\"new\":true}}");
    before += 3;

    /* A failure in any step of a primary move: neither key changes, no event. */
    for (int at = 1; at <= 2; at++) {
        arm(F_EVENT_APPEND, at);
        assert_int_equal(key_update(f, a, q, "moved", -1, 1, &r, &demoted), AK_ERR_STORE);
    }
    arm(F_KEY_WRITE, 1); /* the demotion */
    assert_int_equal(key_update(f, a, q, "moved", -1, 1, &r, &demoted), AK_ERR_STORE);
    arm(F_KEY_WRITE, 2); /* the key itself, after the demotion and its event */
    assert_int_equal(key_update(f, a, q, "moved", -1, 1, &r, &demoted), AK_ERR_STORE);
    arm(F_NONE, 0);
    assert_true(key_get(f, primary.id).primary);
    assert_false(key_get(f, q).primary);
    assert_string_equal(key_get(f, q).name, "renamed");
    assert_int_equal(event_count(f), before);

    /* The move: two key.updated events, the old primary's first. */
    assert_int_equal(key_update(f, a, q, NULL, -1, 1, &r, &demoted), 0);
    assert_true(r.primary);
    assert_int_equal(demoted.id, primary.id);
    assert_false(demoted.primary);
    assert_false(key_get(f, primary.id).primary);
    events(f, e);
    assert_int_equal(e->n, before + 2);
    assert_event(&e->ev[before], "key.updated", a, "key", primary.id, "{\"is_primary\":{\"old\":true,\"new\":false}}");
    assert_event(&e->ev[before + 1], "key.updated", a, "key", q, "{\"is_primary\":{\"old\":false,\"new\":true}}");
    /* A change that changes nothing records nothing. */
    assert_int_equal(key_update(f, a, q, "renamed", -1, -1, &r, &demoted), 0);
    assert_int_equal(event_count(f), before + 2);
    free(e);
}

static void test_key_delete(void **state)
{
    struct fixture *f = *state;
    struct events *e = malloc(sizeof(*e));
    int64_t a, s;
    size_t before;

    assert_non_null(e);
    a = must_account(f, "acme", "", 0, NULL);
    s = must_insert(f, a, "gone soon", KEY_TYPE_SANDBOX);
    before = event_count(f);

    arm(F_EVENT_APPEND, 1);
    assert_int_equal(store_key_delete(f->store, &OP, a, s, allow_delete, NULL), AK_ERR_STORE);
    arm(F_KEY_REMOVE, 1);
    assert_int_equal(store_key_delete(f->store, &OP, a, s, allow_delete, NULL), AK_ERR_STORE);
    arm(F_NONE, 0);
    assert_true(key_exists(f, s));
    assert_int_equal(account_get(f, a).key_count, 2);
    assert_int_equal(event_count(f), before);

    assert_int_equal(store_key_delete(f->store, &OP, a, s, allow_delete, NULL), 0);
    assert_false(key_exists(f, s));
    assert_int_equal(account_get(f, a).key_count, 1);
    events(f, e);
    assert_int_equal(e->n, before + 1);
    assert_event(&e->ev[before], "key.deleted", a, "key", s,
                 "{\"name\":{\"old\":\"gone soon\",\"new\":null},\"key_type\":{\"old\":\"sandbox\",\"new\":null},"
                 "\"is_active\":{\"old\":true,\"new\":null},\"is_primary\":{\"old\":false,\"new\":null}}");
    assert_int_equal(store_key_delete(f->store, &OP, a, s, allow_delete, NULL), AK_ERR_NOT_FOUND);
    assert_int_equal(event_count(f), before + 1);
    free(e);
}

static void test_tokens(void **state)
{
    struct fixture *f = *state;
    struct events *e = malloc(sizeof(*e));
    struct token_rec t = {.created_at = 1700000000};

    assert_non_null(e);
    snprintf(t.name, sizeof(t.name), "ops");
    snprintf(t.prefix, sizeof(t.prefix), "ml_admin_Wxyz");
    memset(t.digest, 0xa5, sizeof(t.digest));

    arm(F_EVENT_APPEND, 1);
    assert_int_equal(store_token_create(f->store, &OP, &t), AK_ERR_STORE);
    arm(F_TOKEN_INSERT, 1);
    assert_int_equal(store_token_create(f->store, &OP, &t), AK_ERR_STORE);
    arm(F_NONE, 0);
    assert_int_equal(token_count_all(f), 0);
    assert_int_equal(event_count(f), 0);

    assert_int_equal(store_token_create(f->store, &OP, &t), 0);
    assert_true(t.id > 0);
    assert_int_equal(token_count_all(f), 1);
    arm(F_EVENT_APPEND, 1);
    assert_int_equal(store_token_revoke(f->store, &OP, t.id), AK_ERR_STORE);
    arm(F_TOKEN_REMOVE, 1);
    assert_int_equal(store_token_revoke(f->store, &OP, t.id), AK_ERR_STORE);
    arm(F_NONE, 0);
    assert_int_equal(token_count_all(f), 1);
    assert_int_equal(event_count(f), 1);

    assert_int_equal(store_token_revoke(f->store, &OP, t.id), 0);
    assert_int_equal(token_count_all(f), 0);
    assert_int_equal(store_token_revoke(f->store, &OP, t.id), AK_ERR_NOT_FOUND);
    events(f, e);
    assert_int_equal(e->n, 2);
    assert_event(&e->ev[0], "admin_token.created", 0, "admin_token", t.id,
                 "{\"name\":{\"old\":null,\"new\":\"ops\"},\"prefix\":{\"old\":null,\"new\":\"ml_admin_Wxyz\"}}");
    assert_event(&e->ev[1], "admin_token.revoked", 0, "admin_token", t.id,
                 "{\"name\":{\"old\":\"ops\",\"new\":null},\"prefix\":{\"old\":\"ml_admin_Wxyz\",\"new\":null}}");
    free(e);
}

/* Appends `n` events at time `at`, in one transaction, through the real primitives. */
static void append_events(struct fixture *f, int64_t at, int n)
{
    struct audit_event ev;

    assert_int_equal(fs.real->begin(f->store), 0);
    for (int i = 0; i < n; i++) {
        audit_event_init(&ev, &OP, at, AUDIT_KEY_UPDATED, 1, TARGET_KEY, i + 1);
        assert_int_equal(fs.real->event_append(f->store, &ev), 0);
    }
    assert_int_equal(fs.real->commit(f->store), 0);
}

struct at_range {
    int64_t min, max;
    size_t n;
};

static int event_at(void *arg, const struct audit_event *ev)
{
    struct at_range *r = arg;

    if (r->n++ == 0 || ev->at < r->min)
        r->min = ev->at;
    if (ev->at > r->max)
        r->max = ev->at;
    return 0;
}

/* Pruning deletes the events older than the bound, and no other, a bounded batch per call (the maintenance thread calls again while
 * a batch was full). */
static void test_events_prune(void **state)
{
    struct fixture *f = *state;
    struct event_query q = {.limit = 1000};
    struct at_range left = {0};
    int64_t n = -1;

    append_events(f, 1000, 10003); /* more than one batch */
    append_events(f, 2000, 2);     /* at the bound: not older */
    append_events(f, 3000, 3);
    fs.prunes = 0;
    assert_int_equal(store_events_prune(f->store, 2000, 10000, &n), 0);
    assert_int_equal(n, 10000); /* a full batch: there may be more */
    assert_int_equal(store_events_prune(f->store, 2000, 10000, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(fs.prunes, 2);
    assert_int_equal(fs.prune_first, 10000);
    assert_int_equal(f->store->ops->event_list(f->store, &q, event_at, &left), 0);
    assert_int_equal(left.n, 5);
    assert_int_equal(left.min, 2000);
    assert_int_equal(left.max, 3000);
    /* Nothing older left: nothing deleted. */
    assert_int_equal(store_events_prune(f->store, 2000, 10000, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_events_prune(f->store, 3001, 10000, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(event_count(f), 0);
}

/* account_take_key: the account's own cap when it has one (above or below the default), else the default. */
static void test_take_key_caps(void **state)
{
    struct fixture *f = *state;
    int64_t own2 = must_account(f, "own 2", "", 2, NULL);
    int64_t own4 = must_account(f, "own 4", "", 4, NULL);
    int64_t none = must_account(f, "none", "", 0, NULL);
    struct account_rec r;
    struct key_rec k;
    size_t before;

    /* default 3: own2 holds 2, own4 holds 4, none holds 3 */
    for (int i = 0; i < 3; i++) {
        k = new_key(own2, "k", KEY_TYPE_SANDBOX, false);
        assert_int_equal(store_key_insert(f->store, &OP, &k, 3, NULL), i < 1 ? 0 : AK_ERR_LIMIT);
        k = new_key(own4, "k", KEY_TYPE_SANDBOX, false);
        assert_int_equal(store_key_insert(f->store, &OP, &k, 3, NULL), 0);
        k = new_key(none, "k", KEY_TYPE_SANDBOX, false);
        assert_int_equal(store_key_insert(f->store, &OP, &k, 3, NULL), i < 2 ? 0 : AK_ERR_LIMIT);
    }
    k = new_key(own4, "k", KEY_TYPE_SANDBOX, false);
    assert_int_equal(store_key_insert(f->store, &OP, &k, 3, NULL), AK_ERR_LIMIT);
    assert_int_equal(account_get(f, own2).key_count, 2);
    assert_int_equal(account_get(f, own4).key_count, 4);
    assert_int_equal(account_get(f, none).key_count, 3);

    /* A refused insert records nothing. */
    before = event_count(f);
    k = new_key(none, "k", KEY_TYPE_SANDBOX, false);
    assert_int_equal(store_key_insert(f->store, &OP, &k, 3, NULL), AK_ERR_LIMIT);
    assert_int_equal(event_count(f), before);
    /* The default moves with the caller; the account's own cap does not. */
    k = new_key(none, "k", KEY_TYPE_SANDBOX, false);
    assert_int_equal(store_key_insert(f->store, &OP, &k, 4, NULL), 0);
    k = new_key(own2, "k", KEY_TYPE_SANDBOX, false);
    assert_int_equal(store_key_insert(f->store, &OP, &k, 100, NULL), AK_ERR_LIMIT);
    /* Back to the default once the cap is removed. */
    assert_int_equal(acct_update(f, own2, NULL, -1, 0, &r), 0);
    k = new_key(own2, "k", KEY_TYPE_SANDBOX, false);
    assert_int_equal(store_key_insert(f->store, &OP, &k, 3, NULL), 0);
    k = new_key(own2, "k", KEY_TYPE_SANDBOX, false);
    assert_int_equal(store_key_insert(f->store, &OP, &k, 3, NULL), AK_ERR_LIMIT);
    assert_int_equal(account_get(f, own2).key_count, 3);
}

/* What store_key_update's rules callback applies: the restrictions of a policy_req (as policy_apply sets them). */
static int apply_restrictions(void *arg, const struct key_rec *cur, int64_t primary_id, struct key_rec *next)
{
    const struct policy_req *p = arg;

    (void)primary_id;
    *next = *cur;
    if (p->set_scopes) {
        next->has_scopes = p->has_scopes;
        snprintf(next->scopes, sizeof(next->scopes), "%s", p->has_scopes ? p->scopes : "");
    }
    if (p->set_ips) {
        next->has_ips = p->has_ips;
        snprintf(next->allowed_ips, sizeof(next->allowed_ips), "%s", p->has_ips ? p->allowed_ips : "");
    }
    return 0;
}

struct found_key {
    int64_t id;
    bool found;
    struct key_rec rec;
};

static int find_key(void *arg, const struct key_rec *rec)
{
    struct found_key *fk = arg;

    if (rec->id == fk->id) {
        fk->found = true;
        fk->rec = *rec;
    }
    return 0;
}

/* Scopes and allowed_ips as written, through key_get and key_load; null kept apart from a value. */
static void test_key_restrictions(void **state)
{
    struct fixture *f = *state;
    struct key_rec *k = calloc(1, sizeof(*k)), *got = calloc(1, sizeof(*got)), *demoted = calloc(1, sizeof(*demoted));
    struct policy_req *p = calloc(1, sizeof(*p));
    struct found_key *fk = calloc(1, sizeof(*fk));
    int64_t a;

    assert_non_null(k);
    assert_non_null(got);
    assert_non_null(demoted);
    assert_non_null(p);
    assert_non_null(fk);
    a = must_account(f, "restricted", "", 0, NULL);
    *k = new_key(a, "scoped", KEY_TYPE_SANDBOX, false);
    k->has_scopes = true;
    snprintf(k->scopes, sizeof(k->scopes), "keys:read posts:*");
    k->has_ips = true;
    snprintf(k->allowed_ips, sizeof(k->allowed_ips), "10.0.0.0/8,::1/128");
    assert_int_equal(store_key_insert(f->store, &OP, k, KEYS_DEFAULT_MAX, NULL), 0);
    *got = key_get(f, k->id);
    assert_true(got->has_scopes);
    assert_string_equal(got->scopes, "keys:read posts:*");
    assert_true(got->has_ips);
    assert_string_equal(got->allowed_ips, "10.0.0.0/8,::1/128");
    fk->id = k->id;
    assert_int_equal(f->store->ops->key_load(f->store, find_key, fk), 0);
    assert_true(fk->found);
    assert_string_equal(fk->rec.scopes, "keys:read posts:*");
    assert_string_equal(fk->rec.allowed_ips, "10.0.0.0/8,::1/128");

    /* Cleared: null, not "". */
    p->set_scopes = true;
    assert_int_equal(store_key_update(f->store, &OP, a, k->id, apply_restrictions, p, got, demoted), 0);
    *got = key_get(f, k->id);
    assert_false(got->has_scopes);
    assert_string_equal(got->scopes, "");
    assert_true(got->has_ips);
    /* Set again, the other one cleared. */
    memset(p, 0, sizeof(*p));
    p->set_scopes = p->has_scopes = true;
    snprintf(p->scopes, sizeof(p->scopes), "a");
    p->set_ips = true;
    assert_int_equal(store_key_update(f->store, &OP, a, k->id, apply_restrictions, p, got, demoted), 0);
    *got = key_get(f, k->id);
    assert_true(got->has_scopes);
    assert_string_equal(got->scopes, "a");
    assert_false(got->has_ips);
    assert_string_equal(got->allowed_ips, "");
    /* A plain key has neither. */
    *k = new_key(a, "plain", KEY_TYPE_SANDBOX, false);
    assert_int_equal(store_key_insert(f->store, &OP, k, KEYS_DEFAULT_MAX, NULL), 0);
    *got = key_get(f, k->id);
    assert_false(got->has_scopes);
    assert_false(got->has_ips);
    free(k);
    free(got);
    free(demoted);
    free(p);
    free(fk);
}

#define SUMS_MAX 16

struct sums {
    size_t n;
    int64_t group[SUMS_MAX];
    uint64_t v[SUMS_MAX][USAGE_NCOUNTS];
};

static int collect_sum(void *arg, int64_t group, const uint64_t n[USAGE_NCOUNTS])
{
    struct sums *s = arg;

    assert_true(s->n < SUMS_MAX);
    assert_true(s->n == 0 || s->group[s->n - 1] < group); /* ascending */
    s->group[s->n] = group;
    memcpy(s->v[s->n], n, sizeof(s->v[0]));
    s->n++;
    return 0;
}

static struct sums *usage_sums(struct fixture *f, const struct usage_query *q)
{
    static struct sums s;

    memset(&s, 0, sizeof(s));
    assert_int_equal(f->store->ops->usage_sum(f->store, q, collect_sum, &s), 0);
    return &s;
}

/* Checks group `i` of `s`: its start (or key id) and every count. */
static void expect_sum(const struct sums *s, size_t i, int64_t group, const uint64_t want[USAGE_NCOUNTS])
{
    if (i >= s->n)
        fail_msg("%zu groups, no group %zu", s->n, i);
    assert_int_equal(s->group[i], group);
    for (int c = 0; c < USAGE_NCOUNTS; c++)
        if (s->v[i][c] != want[c])
            fail_msg("group %lld: %s is %llu, want %llu", (long long)group, usage_count_name(c), (unsigned long long)s->v[i][c],
                     (unsigned long long)want[c]);
}

#define DAY0 1705276800 /* 2024-01-15T00:00:00Z */
#define H(n) (DAY0 + (n)*USAGE_HOUR_S)
#define BIG 5000000000ULL /* past 32 bits */

/*
 * Usage rows written with the flush add up per key and hour (twice the
 * same row: the sum), and read back per hour, per day, per key, in a
 * window [from, to), for one key, or only sandbox keys, never another
 * account's. A flush is one transaction: when the rows fail, last_used
 * does not move either. Pruning deletes rows older than the bound, a batch
 * at a time.
 */
static void test_usage_flush_sum_prune(void **state)
{
    struct fixture *f = *state;
    struct key_rec k1, k3;
    int64_t a1 = must_account(f, "usage one", "", 0, &k1), a2 = must_account(f, "usage two", "", 0, &k3);
    int64_t k2 = must_insert(f, a1, "sandbox", KEY_TYPE_SANDBOX);
    const struct usage_row rows[] = {
        {.key_id = k1.id, .account_id = a1, .hour = H(0), .n = {[USAGE_VERIFIED] = 5, [USAGE_INACTIVE] = 1}},
        {.key_id = k2, .account_id = a1, .hour = H(0), .sandbox = true, .n = {[USAGE_VERIFIED] = 2, [USAGE_IP] = 3}},
        {.key_id = k1.id, .account_id = a1, .hour = H(1), .n = {[USAGE_VERIFIED] = 7, [USAGE_SCOPE] = 2}},
        {.key_id = k3.id, .account_id = a2, .hour = H(0), .n = {[USAGE_VERIFIED] = 100}},
        {.key_id = k2, .account_id = a1, .hour = H(25), .sandbox = true, .n = {[USAGE_EXPIRED] = 4, [USAGE_SUSPENDED] = 1}},
        {.key_id = k2, .account_id = a1, .hour = H(1), .sandbox = true, .n = {[USAGE_VERIFIED] = BIG}},
    };
    const struct usage_row again = {.key_id = k1.id, .account_id = a1, .hour = H(0), .n = {[USAGE_VERIFIED] = 1}};
    struct key_use use = {.id = k1.id, .at = 1700001000};
    struct usage_query q = {.account_id = a1, .from = H(0), .to = H(48), .bucket_s = USAGE_HOUR_S};
    struct sums *s;
    int64_t n = -1;

    assert_int_equal(store_uses_flush(f->store, &use, 1, rows, sizeof(rows) / sizeof(rows[0])), 0);
    assert_int_equal(key_get(f, k1.id).last_used, 1700001000);
    assert_int_equal(store_uses_flush(f->store, NULL, 0, &again, 1), 0); /* rows alone */
    /* Nothing at all: nothing to do. */
    assert_int_equal(store_uses_flush(f->store, NULL, 0, NULL, 0), 0);

    /* One transaction: a failing usage write leaves last_used where it was. */
    use.at = 1700009999;
    arm(F_USAGE_ADD, 1);
    assert_int_equal(store_uses_flush(f->store, &use, 1, &again, 1), AK_ERR_STORE);
    arm(F_NONE, 0);
    assert_int_equal(key_get(f, k1.id).last_used, 1700001000);

    /* Per hour. */
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 3);
    expect_sum(s, 0, H(0), (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 8, [USAGE_INACTIVE] = 1, [USAGE_IP] = 3});
    expect_sum(s, 1, H(1), (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 7 + BIG, [USAGE_SCOPE] = 2});
    expect_sum(s, 2, H(25), (uint64_t[USAGE_NCOUNTS]){[USAGE_EXPIRED] = 4, [USAGE_SUSPENDED] = 1});
    /* Per day. */
    q.bucket_s = USAGE_DAY_S;
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 2);
    expect_sum(s, 0, DAY0,
               (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 15 + BIG, [USAGE_INACTIVE] = 1, [USAGE_SCOPE] = 2, [USAGE_IP] = 3});
    expect_sum(s, 1, DAY0 + USAGE_DAY_S, (uint64_t[USAGE_NCOUNTS]){[USAGE_EXPIRED] = 4, [USAGE_SUSPENDED] = 1});
    /* Per key, ascending id; the other account's key is not there. */
    q.by_key = true;
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 2);
    expect_sum(s, 0, k1.id, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 13, [USAGE_INACTIVE] = 1, [USAGE_SCOPE] = 2});
    expect_sum(s, 1, k2,
               (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 2 + BIG, [USAGE_EXPIRED] = 4, [USAGE_SUSPENDED] = 1, [USAGE_IP] = 3});
    /* Only sandbox keys. */
    q.sandbox_only = true;
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->group[0], k2);
    q.by_key = false;
    q.bucket_s = USAGE_HOUR_S;
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 3);
    expect_sum(s, 0, H(0), (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 2, [USAGE_IP] = 3});
    q.sandbox_only = false;
    /* One key. */
    q.key_id = k1.id;
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 2);
    expect_sum(s, 0, H(0), (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 6, [USAGE_INACTIVE] = 1});
    expect_sum(s, 1, H(1), (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 7, [USAGE_SCOPE] = 2});
    q.key_id = 0;
    /* The window: from inclusive, to exclusive. */
    q.from = H(1);
    q.to = H(2);
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->group[0], H(1));
    q.from = H(0);
    q.to = H(1);
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->group[0], H(0));
    q.from = H(2);
    q.to = H(25);
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 0);
    /* The other account sees its own only. */
    q = (struct usage_query){.account_id = a2, .from = H(0), .to = H(48), .by_key = true};
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 1);
    expect_sum(s, 0, k3.id, (uint64_t[USAGE_NCOUNTS]){[USAGE_VERIFIED] = 100});

    /* Pruning: rows of hours before the bound, a batch at a time. */
    assert_int_equal(store_usage_prune(f->store, H(1), 2, &n), 0);
    assert_int_equal(n, 2); /* a full batch: there may be more */
    assert_int_equal(store_usage_prune(f->store, H(1), 2, &n), 0);
    assert_int_equal(n, 1); /* (k1, 0), (k2, 0), (k3, 0) */
    assert_int_equal(store_usage_prune(f->store, H(1), 2, &n), 0);
    assert_int_equal(n, 0);
    q = (struct usage_query){.account_id = a1, .from = H(0), .to = H(48), .bucket_s = USAGE_HOUR_S};
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 2);
    assert_int_equal(s->group[0], H(1));
    assert_int_equal(s->group[1], H(25));
    q.account_id = a2;
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 0);
    assert_int_equal(store_usage_prune(f->store, H(25) + 1, 1000, &n), 0);
    assert_int_equal(n, 3);
    q.account_id = a1;
    s = usage_sums(f, &q);
    assert_int_equal(s->n, 0);
}

#define TESTS(setup)                                                                                                               \
    cmocka_unit_test_setup_teardown(test_account_create_events, setup, teardown),                                                  \
        cmocka_unit_test_setup_teardown(test_account_create_atomic, setup, teardown),                                              \
        cmocka_unit_test_setup_teardown(test_account_create_external_taken, setup, teardown),                                      \
        cmocka_unit_test_setup_teardown(test_account_update_events, setup, teardown),                                              \
        cmocka_unit_test_setup_teardown(test_account_update_atomic, setup, teardown),                                              \
        cmocka_unit_test_setup_teardown(test_account_delete, setup, teardown),                                                     \
        cmocka_unit_test_setup_teardown(test_key_insert, setup, teardown),                                                         \
        cmocka_unit_test_setup_teardown(test_key_update, setup, teardown),                                                         \
        cmocka_unit_test_setup_teardown(test_key_delete, setup, teardown),                                                         \
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),                                                             \
        cmocka_unit_test_setup_teardown(test_events_prune, setup, teardown),                                                       \
        cmocka_unit_test_setup_teardown(test_take_key_caps, setup, teardown),                                                      \
        cmocka_unit_test_setup_teardown(test_key_restrictions, setup, teardown),                                                   \
        cmocka_unit_test_setup_teardown(test_usage_flush_sum_prune, setup, teardown)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {TESTS(setup_sq)};
    const struct CMUnitTest postgres_tests[] = {TESTS(setup_pg)};
    int failed = cmocka_run_group_tests_name("sqlite", sqlite_tests, NULL, NULL);

    return failed + cmocka_run_group_tests_name("postgres", postgres_tests, NULL, NULL);
}
