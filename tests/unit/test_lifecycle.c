/*
 * Unit tests for core/lifecycle and the lifecycle rules of core/keys, on
 * SQLite and PostgreSQL (tests/unit/backend.h): expiry on the hot path and
 * its stickiness (a clock stepped back, a flush, a reload), the expiry
 * rules of PATCH for the primary and for expired keys, rotation (links,
 * expiry never extended, the primary's move, at the cap, twice refused),
 * leak reports (deactivated and marked once, labels, a leaked primary,
 * delete and reactivation refused), and the sweeps (idle keys, long
 * expired keys, one claim per period).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "core/accounts.h"
#include "core/admin.h"
#include "core/catalog.h"
#include "core/error.h"
#include "core/keys_impl.h"
#include "core/lifecycle.h"
#include "core/timefmt.h"
#include "origin.h"

#define KEYBUF (KEYFMT_MAX_LEN + 1)
#define DAY 86400

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
    timefmt_set_offset(0);
    return backend_teardown(state);
}

static int auth(struct keys *k, const char *key, int64_t now, struct principal *ret)
{
    char hdr[KEYBUF + 16];

    snprintf(hdr, sizeof(hdr), "Bearer %s", key);
    return keys_authenticate(k, hdr, strlen(hdr), now, NULL, ret);
}

/* An account with its primary key (`primary`, in clear) and the principal of that key. */
struct acct {
    int64_t id;
    struct key_rec primary;
    char key[KEYBUF];
    struct principal who;
};

static void new_account(struct fixture *f, const char *name, struct acct *a)
{
    assert_int_equal(t_account_create(f->k, name, &a->id, &a->primary, a->key, sizeof(a->key)), 0);
    assert_int_equal(auth(f->k, a->key, timefmt_now(), &a->who), 0);
}

/* Creates a key of `a` (production), expiring at `expires_at` (0: never). */
static void new_key(struct fixture *f, struct acct *a, int64_t expires_at, struct key_rec *ret, char *key)
{
    struct create_req req = {.type = KEY_TYPE_PRODUCTION, .expires_at = expires_at};

    snprintf(req.name, sizeof(req.name), "k");
    assert_int_equal(keys_create(f->k, &T_ORIGIN, &a->who, &req, ret, key, KEYBUF), 0);
}

static void get(struct fixture *f, int64_t id, struct key_rec *ret)
{
    assert_int_equal(catalog_get(f->k->cat, id, ret), 0);
}

/* The number of events of `action` about key `id`. */
struct count_ctx {
    const char *action;
    int64_t id;
    int n;
    char details[256];
};

static int count_event(void *arg, const struct audit_event *ev)
{
    struct count_ctx *c = arg;

    if (strcmp(ev->action, c->action) == 0 && ev->target_id == c->id) {
        c->n++;
        snprintf(c->details, sizeof(c->details), "%s", ev->details != NULL ? ev->details : "");
    }
    return 0;
}

static int events(struct fixture *f, const char *action, int64_t id, char *details)
{
    struct count_ctx c = {.action = action, .id = id};

    assert_int_equal(accounts_events(f->k, 0, 1000, 0, NULL, 0, count_event, &c), 0);
    if (details != NULL)
        strcpy(details, c.details);
    return c.n;
}

/* Expired from that second on; refused once, refused for good: an earlier clock, a flush and a reload do not revive it. */
static void test_expiry_is_sticky(void **state)
{
    struct fixture *f = *state;
    int64_t now = timefmt_now();
    struct principal p;
    struct key_rec rec;
    struct acct a;
    char key[KEYBUF];

    new_account(f, "a", &a);
    new_key(f, &a, now + 100, &rec, key);
    assert_int_equal(auth(f->k, key, now + 99, &p), 0);
    assert_int_equal(p.expires_at, now + 100);
    assert_int_equal(auth(f->k, key, now + 100, &p), AK_ERR_EXPIRED);
    assert_int_equal(auth(f->k, key, now + 50, &p), AK_ERR_EXPIRED); /* the clock stepped back */
    get(f, rec.id, &rec);
    assert_int_equal(rec.last_used, now + 99); /* a refusal is not a use */
    assert_true(rec.expiry_seen);
    assert_int_equal(keys_flush_uses(f->k), 0);
    backend_close(f);
    assert_int_equal(backend_open(f), 0);
    assert_int_equal(auth(f->k, key, now + 50, &p), AK_ERR_EXPIRED);
    /* A key never refused is judged by the clock alone. */
    new_key(f, &a, now + 100, &rec, key);
    assert_int_equal(auth(f->k, key, now + 50, &p), 0);
}

/* The primary never gets an expiry by PATCH; a key with one cannot become primary; an expired key's expiry is final. */
static void test_patch_expiry_rules(void **state)
{
    struct fixture *f = *state;
    int64_t now = timefmt_now();
    struct patch_req req = {.has_expires_at = true, .expires_at = now + DAY};
    struct principal p;
    struct key_rec rec, out;
    struct acct a;
    char key[KEYBUF];

    new_account(f, "a", &a);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, a.primary.id, &req, &out), AK_ERR_PRIMARY_PROTECTED);
    new_key(f, &a, now + DAY, &rec, key);
    req = (struct patch_req){.has_primary = true, .primary = true};
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, rec.id, &req, &out), AK_ERR_PRIMARY_INVALID);
    /* Cleared, it can. */
    req = (struct patch_req){.has_expires_at = true, .expires_at = 0};
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, rec.id, &req, &out), 0);
    assert_int_equal(out.expires_at, 0);
    /* Expired: the expiry cannot move, even to null; other changes still can. */
    new_key(f, &a, now + 2, &rec, key);
    assert_int_equal(auth(f->k, key, now + 3, &p), AK_ERR_EXPIRED);
    req = (struct patch_req){.has_expires_at = true, .expires_at = 0};
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, rec.id, &req, &out), AK_ERR_EXPIRED);
    req = (struct patch_req){.has_name = true, .name = "renamed"};
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, rec.id, &req, &out), 0);
    assert_int_equal(out.expires_at, now + 2);
}

/* A rotation links the two keys, never extends the old key's life, and keeps a lifetime for the new one. */
static void test_rotate(void **state)
{
    struct fixture *f = *state;
    int64_t now = timefmt_now();
    struct key_rec rec, fresh, old;
    struct principal p;
    struct acct a;
    char key[KEYBUF], key2[KEYBUF];

    new_account(f, "a", &a);
    new_key(f, &a, now + 10 * DAY, &rec, key);
    assert_int_equal(lifecycle_rotate(f->k, &T_ORIGIN, &a.who, a.id, rec.id, DAY, &fresh, key2, sizeof(key2), &old), 0);
    assert_int_equal(fresh.rotated_from, rec.id);
    assert_int_equal(old.rotated_to, fresh.id);
    assert_true(old.expires_at >= now + DAY && old.expires_at <= timefmt_now() + DAY);
    assert_true(fresh.expires_at >= now + 10 * DAY && fresh.expires_at <= timefmt_now() + 10 * DAY);
    assert_string_equal(fresh.name, rec.name);
    assert_true(fresh.active && !fresh.primary);
    assert_int_equal(auth(f->k, key, now + 1, &p), 0); /* the grace */
    assert_int_equal(auth(f->k, key2, now + 1, &p), 0);
    assert_int_equal(auth(f->k, key, now + DAY + 10, &p), AK_ERR_EXPIRED);
    assert_int_equal(lifecycle_rotate(f->k, &T_ORIGIN, &a.who, a.id, rec.id, DAY, &fresh, key2, sizeof(key2), &old),
                     AK_ERR_ROTATED);
    /* A grace longer than the life left does not extend it. */
    new_key(f, &a, now + 100, &rec, key);
    assert_int_equal(lifecycle_rotate(f->k, &T_ORIGIN, &a.who, a.id, rec.id, DAY, &fresh, key2, sizeof(key2), &old), 0);
    assert_int_equal(old.expires_at, now + 100);
    assert_int_equal(events(f, "key.rotated", rec.id, NULL), 1);
    assert_int_equal(events(f, "key.created", fresh.id, NULL), 1);
}

/* Rotating the primary moves the primary in the same step; the old one works through its grace. Works at the cap. */
static void test_rotate_primary_at_cap(void **state)
{
    struct fixture *f = *state;
    int64_t now = timefmt_now();
    struct key_rec rec, fresh, old;
    struct principal p;
    struct acct a;
    char key[KEYBUF], key2[KEYBUF];
    size_t n;
    int64_t primary;

    new_account(f, "a", &a);
    for (int i = 0; i < 4; i++)
        new_key(f, &a, 0, &rec, key); /* 5 keys: the cap */
    assert_int_equal(lifecycle_rotate(f->k, &T_ORIGIN, &a.who, a.id, a.primary.id, 0, &fresh, key2, sizeof(key2), &old), 0);
    assert_true(fresh.primary && !old.primary);
    n = catalog_account_keys(f->k->cat, a.id, &primary);
    assert_int_equal(n, 6);
    assert_int_equal(primary, fresh.id);
    assert_int_equal(auth(f->k, a.key, timefmt_now(), &p), AK_ERR_EXPIRED); /* grace 0 */
    assert_int_equal(auth(f->k, key2, now, &p), 0);
    /* The store agrees, across a reload. */
    backend_close(f);
    assert_int_equal(backend_open(f), 0);
    n = catalog_account_keys(f->k->cat, a.id, &primary);
    assert_int_equal(primary, fresh.id);
    get(f, old.id, &rec);
    assert_int_equal(rec.rotated_to, fresh.id);
    assert_int_equal(rec.expires_at, old.expires_at);
}

/* The operator's rotation finds the key only in its account. */
static void test_rotate_operator(void **state)
{
    struct fixture *f = *state;
    struct key_rec fresh, old;
    struct acct a, b;
    char key2[KEYBUF];

    new_account(f, "a", &a);
    new_account(f, "b", &b);
    assert_int_equal(lifecycle_rotate(f->k, &T_ORIGIN, NULL, b.id, a.primary.id, 0, &fresh, key2, sizeof(key2), &old),
                     AK_ERR_NOT_FOUND);
    assert_int_equal(lifecycle_rotate(f->k, &T_ORIGIN, &b.who, b.id, a.primary.id, 0, &fresh, key2, sizeof(key2), &old),
                     AK_ERR_NOT_FOUND);
    assert_int_equal(lifecycle_rotate(f->k, &T_ORIGIN, NULL, a.id, a.primary.id, 60, &fresh, key2, sizeof(key2), &old), 0);
    assert_true(fresh.primary);
}

static void leak(struct lifecycle_leak *l, const char *token)
{
    *l = (struct lifecycle_leak){.token = token, .len = strlen(token), .url = "https://example.com/x", .source = "commit"};
}

/* A report deactivates and marks a key once, labels what is this server's, and keeps a leaked key's row. */
static void test_leaks(void **state)
{
    struct fixture *f = *state;
    struct lifecycle_leak v[5];
    struct key_rec rec, gone, out;
    struct principal p;
    struct acct a, b;
    struct patch_req req = {.has_active = true, .active = true};
    char key[KEYBUF], key_gone[KEYBUF], details[256];

    new_account(f, "a", &a);
    new_account(f, "b", &b);
    new_key(f, &a, 0, &rec, key);
    new_key(f, &b, 0, &gone, key_gone);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &b.who, gone.id), 0);
    leak(&v[0], key);
    leak(&v[1], key_gone);
    leak(&v[2], "ml_prod_notakeyatall");
    leak(&v[3], b.key);
    leak(&v[4], key); /* twice in one report */
    assert_int_equal(lifecycle_report_leaks(f->k, &T_ORIGIN, v, 5), 0);
    assert_true(v[0].true_positive && !v[1].true_positive && !v[2].true_positive && v[3].true_positive && v[4].true_positive);
    assert_int_equal(auth(f->k, key, timefmt_now(), &p), AK_ERR_LEAKED);
    get(f, rec.id, &out);
    assert_true(!out.active && out.leaked_at != 0);
    assert_int_equal(events(f, "key.leaked", rec.id, details), 1);
    assert_non_null(strstr(details, "\"url\":\"https://example.com/x\""));
    /* b's primary: still primary, refused; b recovers by an operator's rotation. */
    get(f, b.primary.id, &out);
    assert_true(out.primary && !out.active && out.leaked_at != 0);
    assert_int_equal(auth(f->k, b.key, timefmt_now(), &p), AK_ERR_LEAKED);
    /* Reported again: true, unchanged, no second event. */
    leak(&v[0], key);
    assert_int_equal(lifecycle_report_leaks(f->k, &T_ORIGIN, v, 1), 0);
    assert_true(v[0].true_positive);
    assert_int_equal(events(f, "key.leaked", rec.id, NULL), 1);
    /* Never reactivated, never deleted. */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, rec.id, &req, &out), AK_ERR_LEAKED);
    assert_int_equal(keys_delete(f->k, &T_ORIGIN, &a.who, rec.id), AK_ERR_LEAKED);
    {
        struct key_rec fresh, old;
        char key2[KEYBUF];
        assert_int_equal(lifecycle_rotate(f->k, &T_ORIGIN, NULL, b.id, b.primary.id, 0, &fresh, key2, sizeof(key2), &old), 0);
        assert_true(fresh.primary && fresh.active);
        assert_int_equal(auth(f->k, key2, timefmt_now(), &p), 0);
    }
    /* Across a reload. */
    backend_close(f);
    assert_int_equal(backend_open(f), 0);
    assert_int_equal(auth(f->k, key, timefmt_now(), &p), AK_ERR_LEAKED);
}

/* Idle keys are deactivated (never the primary, never a recently used key), once, by whoever claims the period. */
static void test_sweep_idle(void **state)
{
    struct fixture *f = *state;
    struct lifecycle_policy pol = {.idle_days = 3, .expired_retention_days = 30};
    struct key_rec idle, used, out;
    struct principal p;
    struct acct a;
    char key_idle[KEYBUF], key_used[KEYBUF], details[256];

    new_account(f, "a", &a);
    new_key(f, &a, 0, &idle, key_idle);
    new_key(f, &a, 0, &used, key_used);
    assert_int_equal(lifecycle_sweep(f->k, &pol), 0);
    get(f, idle.id, &out);
    assert_true(out.active); /* not due yet */
    timefmt_set_offset(3 * DAY + 60);
    assert_int_equal(auth(f->k, key_used, timefmt_now(), &p), 0);
    assert_int_equal(keys_flush_uses(f->k), 0);
    assert_int_equal(lifecycle_sweep(f->k, &pol), 0);
    get(f, idle.id, &out);
    assert_false(out.active);
    get(f, used.id, &out);
    assert_true(out.active);
    get(f, a.primary.id, &out);
    assert_true(out.active);
    assert_int_equal(events(f, "key.updated", idle.id, details), 1);
    assert_non_null(strstr(details, "\"reason\":\"idle\""));
    /* The same period is not claimed twice. */
    timefmt_set_offset(7 * DAY);
    {
        bool mine = true;
        assert_int_equal(store_sweep_claim(f->k->store, "idle-keys", timefmt_now(), 30, &mine), 0);
        assert_true(mine);
        assert_int_equal(store_sweep_claim(f->k->store, "idle-keys", timefmt_now(), 30, &mine), 0);
        assert_false(mine);
    }
    assert_int_equal(lifecycle_sweep(f->k, &pol), 0);
    get(f, used.id, &out);
    assert_true(out.active); /* due now, but the period was taken */
}

/* Store rules for test_expiry_mark_is_tied_to_its_expiry: rename only; move the expiry a day later. */
static int keep_row(void *arg, const struct key_rec *cur, int64_t primary_id, struct key_rec *next)
{
    (void)arg;
    (void)primary_id;
    *next = *cur;
    snprintf(next->name, sizeof(next->name), "renamed");
    return 0;
}

static int later_expiry(void *arg, const struct key_rec *cur, int64_t primary_id, struct key_rec *next)
{
    (void)arg;
    (void)primary_id;
    *next = *cur;
    next->expires_at += DAY;
    return 0;
}

/* A key its owner reactivates starts its idle time again: not switched off by the next sweep. */
static void test_idle_reactivated(void **state)
{
    struct fixture *f = *state;
    struct lifecycle_policy pol = {.idle_days = 3, .expired_retention_days = 30};
    struct patch_req on = {.has_active = true, .active = true};
    struct key_rec rec, out;
    struct acct a;
    char key[KEYBUF];

    new_account(f, "a", &a);
    new_key(f, &a, 0, &rec, key);
    timefmt_set_offset(3 * DAY + 60);
    assert_int_equal(lifecycle_sweep(f->k, &pol), 0);
    get(f, rec.id, &out);
    assert_false(out.active);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, rec.id, &on, &out), 0);
    assert_true(out.active && out.activated_at >= timefmt_now() - 5);
    timefmt_set_offset(3 * DAY + 60 + LIFECYCLE_SWEEP_INTERVAL_S + 1); /* the next period */
    assert_int_equal(lifecycle_sweep(f->k, &pol), 0);
    get(f, rec.id, &out);
    assert_true(out.active);
    /* Across a reload too (the store keeps when), and due again three days later. */
    backend_close(f);
    assert_int_equal(backend_open(f), 0);
    assert_int_equal(lifecycle_sweep(f->k, &pol), 0);
    get(f, rec.id, &out);
    assert_true(out.active);
    timefmt_set_offset(6 * DAY + 600);
    assert_int_equal(lifecycle_sweep(f->k, &pol), 0);
    get(f, rec.id, &out);
    assert_false(out.active);
    assert_int_equal(events(f, "key.updated", rec.id, NULL), 3); /* off, on (by its owner), off */
}

/* Keys expired longer than the retention are deleted and give their place back; leaked ones stay. */
static void test_sweep_expired(void **state)
{
    struct fixture *f = *state;
    struct lifecycle_policy pol = {.expired_retention_days = 2};
    int64_t now = timefmt_now();
    struct key_rec soon, later, leaked, out;
    struct lifecycle_leak v;
    struct acct a;
    char k1[KEYBUF], k2[KEYBUF], k3[KEYBUF], details[256];

    new_account(f, "a", &a);
    new_key(f, &a, now + 60, &soon, k1);
    new_key(f, &a, now + 5 * DAY, &later, k2);
    new_key(f, &a, now + 60, &leaked, k3);
    leak(&v, k3);
    assert_int_equal(lifecycle_report_leaks(f->k, &T_ORIGIN, &v, 1), 0);
    timefmt_set_offset(2 * DAY + 120);
    assert_int_equal(lifecycle_sweep(f->k, &pol), 0);
    assert_int_equal(catalog_get(f->k->cat, soon.id, &out), AK_ERR_NOT_FOUND);
    get(f, later.id, &out);
    get(f, leaked.id, &out);
    assert_int_equal(events(f, "key.deleted", soon.id, details), 1);
    assert_non_null(strstr(details, "\"reason\":\"expired\""));
    assert_int_equal(catalog_account_keys(f->k->cat, a.id, NULL), 3);
    /* The place under the cap came back (5): two more fit. */
    new_key(f, &a, 0, &out, k1);
    new_key(f, &a, 0, &out, k1);
}

/* A rotated key only winds down: no later expiry, no null, no return to primary; its rotations stop at twice the cap. */
static void test_rotated_key_winds_down(void **state)
{
    struct fixture *f = *state;
    struct key_rec fresh, old, out;
    struct patch_req req = {.has_expires_at = true, .expires_at = 0};
    struct acct a;
    char key2[KEYBUF];
    int r = 0, rotations = 0;

    new_account(f, "a", &a);
    assert_int_equal(lifecycle_rotate(f->k, &T_ORIGIN, &a.who, a.id, a.primary.id, DAY, &fresh, key2, sizeof(key2), &old), 0);
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, old.id, &req, &out), AK_ERR_ROTATED);
    req.expires_at = old.expires_at + 60;
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, old.id, &req, &out), AK_ERR_ROTATED);
    req.expires_at = old.expires_at - 60; /* sooner: fine */
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, old.id, &req, &out), 0);
    req = (struct patch_req){.has_primary = true, .primary = true};
    assert_int_equal(keys_update(f->k, &T_ORIGIN, &a.who, old.id, &req, &out), AK_ERR_ROTATED);
    /* The cap is 5: rotation passes it, up to 10 keys. */
    while (r == 0 && rotations < 20) {
        int64_t last = fresh.id;
        if ((r = lifecycle_rotate(f->k, &T_ORIGIN, NULL, a.id, last, 0, &fresh, key2, sizeof(key2), &old)) == 0)
            rotations++;
    }
    assert_int_equal(r, AK_ERR_LIMIT);
    assert_int_equal(catalog_account_keys(f->k->cat, a.id, NULL), 10);
}

/* A key this instance's memory does not hold yet (made elsewhere a moment ago) is found in the store and deactivated. */
static void test_leak_of_a_key_not_in_memory(void **state)
{
    struct fixture *f = *state;
    struct key_rec rec = {0}, out;
    struct lifecycle_leak v;
    struct principal p;
    struct acct a;
    char key[KEYBUF];

    new_account(f, "a", &a);
    rec.account_id = a.id;
    rec.type = KEY_TYPE_PRODUCTION;
    rec.active = true;
    rec.created_at = timefmt_now();
    snprintf(rec.name, sizeof(rec.name), "elsewhere");
    assert_int_equal(mint(f->k, KEY_TYPE_PRODUCTION, &rec, key, sizeof(key)), 0);
    assert_int_equal(store_key_insert(f->store, &T_ORIGIN, &rec, 100, NULL), 0);
    assert_int_equal(catalog_get(f->k->cat, rec.id, &out), AK_ERR_NOT_FOUND);
    leak(&v, key);
    assert_int_equal(lifecycle_report_leaks(f->k, &T_ORIGIN, &v, 1), 0);
    assert_true(v.true_positive);
    get(f, rec.id, &out);
    assert_true(!out.active && out.leaked_at != 0);
    assert_int_equal(auth(f->k, key, timefmt_now(), &p), AK_ERR_LEAKED);
}

/* A reported admin token is revoked (and recorded), and labelled as ours. */
static void test_leaked_admin_token_is_revoked(void **state)
{
    struct fixture *f = *state;
    struct lifecycle_leak v;
    struct token_rec t;
    struct audit_origin who;
    char token[KEYBUF], hdr[KEYBUF + 16];

    assert_int_equal(admin_token_create(f->k, &T_ORIGIN, "ops", &t, token, sizeof(token)), 0);
    leak(&v, token);
    assert_int_equal(lifecycle_report_leaks(f->k, &T_ORIGIN, &v, 1), 0);
    assert_true(v.true_positive);
    snprintf(hdr, sizeof(hdr), "Bearer %s", token);
    assert_int_equal(admin_authenticate(f->k, hdr, strlen(hdr), &who), AK_ERR_KEY_UNKNOWN);
    assert_int_equal(events(f, "admin_token.revoked", t.id, NULL), 1);
    /* Reported again: gone, so not ours any more. */
    assert_int_equal(lifecycle_report_leaks(f->k, &T_ORIGIN, &v, 1), 0);
    assert_false(v.true_positive);
}

/* The store's mark holds for the expiry it was seen at: a stale mark is not written, and a new expiry clears it. */
static void test_expiry_mark_is_tied_to_its_expiry(void **state)
{
    struct fixture *f = *state;
    int64_t now = timefmt_now();
    struct key_rec rec, row, demoted;
    struct key_use stale, right;
    struct acct a;
    char key[KEYBUF];

    new_account(f, "a", &a);
    new_key(f, &a, now + 100, &rec, key);
    stale = (struct key_use){.id = rec.id, .at = now + 50};
    assert_int_equal(store_expiry_seen(f->store, &stale, 1), 0);
    assert_int_equal(f->store->ops->key_get(f->store, rec.id, &row), 0);
    assert_false(row.expiry_seen);
    right = (struct key_use){.id = rec.id, .at = now + 100};
    assert_int_equal(store_expiry_seen(f->store, &right, 1), 0);
    assert_int_equal(f->store->ops->key_get(f->store, rec.id, &row), 0);
    assert_true(row.expiry_seen);
    /* A write that keeps the expiry keeps the mark; one that changes it clears it. */
    assert_int_equal(store_key_update(f->store, &T_ORIGIN, a.id, rec.id, keep_row, NULL, &row, &demoted), 0);
    assert_int_equal(f->store->ops->key_get(f->store, rec.id, &row), 0);
    assert_true(row.expiry_seen);
    assert_int_equal(store_key_update(f->store, &T_ORIGIN, a.id, rec.id, later_expiry, NULL, &row, &demoted), 0);
    assert_int_equal(f->store->ops->key_get(f->store, rec.id, &row), 0);
    assert_false(row.expiry_seen);
}

#define TESTS(setup)                                                                                                               \
    cmocka_unit_test_setup_teardown(test_expiry_is_sticky, setup, teardown),                                                       \
        cmocka_unit_test_setup_teardown(test_patch_expiry_rules, setup, teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_rotate, setup, teardown),                                                             \
        cmocka_unit_test_setup_teardown(test_rotate_primary_at_cap, setup, teardown),                                              \
        cmocka_unit_test_setup_teardown(test_rotate_operator, setup, teardown),                                                    \
        cmocka_unit_test_setup_teardown(test_leaks, setup, teardown),                                                              \
        cmocka_unit_test_setup_teardown(test_sweep_idle, setup, teardown),                                                         \
        cmocka_unit_test_setup_teardown(test_idle_reactivated, setup, teardown),                                                   \
        cmocka_unit_test_setup_teardown(test_sweep_expired, setup, teardown),                                                      \
        cmocka_unit_test_setup_teardown(test_rotated_key_winds_down, setup, teardown),                                             \
        cmocka_unit_test_setup_teardown(test_leak_of_a_key_not_in_memory, setup, teardown),                                        \
        cmocka_unit_test_setup_teardown(test_leaked_admin_token_is_revoked, setup, teardown),                                      \
        cmocka_unit_test_setup_teardown(test_expiry_mark_is_tied_to_its_expiry, setup, teardown)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {TESTS(setup_sq)};
    const struct CMUnitTest postgres_tests[] = {TESTS(setup_pg)};
    int failed = cmocka_run_group_tests_name("sqlite", sqlite_tests, NULL, NULL);

    return failed + cmocka_run_group_tests_name("postgres", postgres_tests, NULL, NULL);
}
