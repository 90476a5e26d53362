/*
 * Unit tests for core/policy: which keys a caller may make, change or
 * delete. The operator (who NULL) and unrestricted keys are never refused
 * and pass nothing on. A key with scopes: cannot make a key unrestricted
 * (explicit null), passes its scopes on to a key created without them,
 * cannot give more than it has, cannot touch a key with broader or null
 * scopes, cannot make a key primary. A key with an allowlist: passes it
 * on, cannot widen it, can narrow it, cannot touch a key allowed from more
 * places (or from anywhere). Both limits at once, each on its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/policy.h"

/* ---- helpers ---- */

/* A caller: `scopes` NULL is unrestricted; `ips` NULL has no allowlist (its own record gets it). */
struct caller {
    struct principal who;
    struct key_rec self;
};

static struct caller *caller_new(const char *scopes, const char *ips)
{
    struct caller *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    c->who.key_id = c->self.id = 5;
    c->who.account_id = c->self.account_id = 1;
    c->who.type = c->self.type = KEY_TYPE_PRODUCTION;
    c->self.active = true;
    if (scopes != NULL) {
        c->who.restricted = c->self.has_scopes = true;
        c->who.scopes_len = strlen(scopes);
        snprintf(c->who.scopes, sizeof(c->who.scopes), "%s", scopes);
        snprintf(c->self.scopes, sizeof(c->self.scopes), "%s", scopes);
    }
    if (ips != NULL) {
        c->who.has_ips = c->self.has_ips = true;
        snprintf(c->self.allowed_ips, sizeof(c->self.allowed_ips), "%s", ips);
    }
    return c;
}

/* A key (not primary unless said): `scopes` / `ips` NULL for none. */
static struct key_rec *key_new(const char *scopes, const char *ips)
{
    struct key_rec *k = calloc(1, sizeof(*k));

    assert_non_null(k);
    k->id = 9;
    k->account_id = 1;
    k->type = KEY_TYPE_PRODUCTION;
    k->active = true;
    snprintf(k->name, sizeof(k->name), "target");
    if (scopes != NULL) {
        k->has_scopes = true;
        snprintf(k->scopes, sizeof(k->scopes), "%s", scopes);
    }
    if (ips != NULL) {
        k->has_ips = true;
        snprintf(k->allowed_ips, sizeof(k->allowed_ips), "%s", ips);
    }
    return k;
}

/* What a request body sets. UNSENT: the field is absent; NULL: sent as null; else the canonical text. */
static const char UNSENT[] = "(unsent)";

static struct policy_req *req_new(const char *scopes, const char *ips)
{
    struct policy_req *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    if (scopes != UNSENT) {
        r->set_scopes = true;
        r->has_scopes = scopes != NULL;
        snprintf(r->scopes, sizeof(r->scopes), "%s", scopes != NULL ? scopes : "");
    }
    if (ips != UNSENT) {
        r->set_ips = true;
        r->has_ips = ips != NULL;
        snprintf(r->allowed_ips, sizeof(r->allowed_ips), "%s", ips != NULL ? ips : "");
    }
    return r;
}

/* policy_apply on a fresh key (creating) from `req`; the result code, the key in *ret (caller frees). */
static int create_as(const struct caller *c, const char *scopes, const char *ips, struct key_rec **ret)
{
    struct policy_req *r = req_new(scopes, ips);
    struct key_rec *k = key_new(NULL, NULL);
    int rc = policy_apply(c != NULL ? &c->who : NULL, c != NULL ? &c->self : NULL, r, true, 0, k);

    free(r);
    *ret = k;
    return rc;
}

static int create_rc(const struct caller *c, const char *scopes, const char *ips)
{
    struct key_rec *k;
    int rc = create_as(c, scopes, ips, &k);

    free(k);
    return rc;
}

/* policy_apply on the existing key `k` (a PATCH). */
static int patch_as(const struct caller *c, const char *scopes, const char *ips, struct key_rec *k)
{
    struct policy_req *r = req_new(scopes, ips);
    int rc = policy_apply(c != NULL ? &c->who : NULL, c != NULL ? &c->self : NULL, r, false, 0, k);

    free(r);
    return rc;
}

static int manage_rc(const struct caller *c, const char *scopes, const char *ips)
{
    struct key_rec *k = key_new(scopes, ips);
    int rc = policy_may_manage(&c->who, &c->self, k);

    free(k);
    return rc;
}

/* ---- the operator and unrestricted keys ---- */

static void test_operator_never_refused(void **state)
{
    struct key_rec *k = key_new(NULL, NULL);

    (void)state;
    assert_int_equal(policy_may_manage(NULL, NULL, k), 0);
    k->primary = true;
    assert_int_equal(policy_may_manage(NULL, NULL, k), 0);
    free(k);
    k = key_new("a", "10.0.0.0/8");
    assert_int_equal(policy_may_manage(NULL, NULL, k), 0);
    free(k);

    /* Sets what is sent, inherits nothing. */
    assert_int_equal(create_as(NULL, UNSENT, UNSENT, &k), 0);
    assert_false(k->has_scopes);
    assert_false(k->has_ips);
    free(k);
    assert_int_equal(create_as(NULL, "posts:*", "10.0.0.0/8", &k), 0);
    assert_true(k->has_scopes);
    assert_string_equal(k->scopes, "posts:*");
    assert_true(k->has_ips);
    assert_string_equal(k->allowed_ips, "10.0.0.0/8");
    /* ...and clears on null */
    assert_int_equal(patch_as(NULL, NULL, NULL, k), 0);
    assert_false(k->has_scopes);
    assert_string_equal(k->scopes, "");
    assert_false(k->has_ips);
    assert_string_equal(k->allowed_ips, "");
    /* a primary too */
    k->primary = true;
    assert_int_equal(patch_as(NULL, UNSENT, "::/0", k), 0);
    assert_true(k->has_ips);
    free(k);
}

static void test_unrestricted_caller(void **state)
{
    struct caller *c = caller_new(NULL, NULL);
    struct key_rec *k;

    (void)state;
    assert_int_equal(manage_rc(c, NULL, NULL), 0);
    assert_int_equal(manage_rc(c, "anything:*", "::/0"), 0);
    assert_int_equal(create_as(c, UNSENT, UNSENT, &k), 0);
    assert_false(k->has_scopes);
    assert_false(k->has_ips);
    free(k);
    assert_int_equal(create_rc(c, "billing:*", "0.0.0.0/0"), 0);
    assert_int_equal(create_rc(c, NULL, NULL), 0);
    k = key_new("a", NULL);
    k->primary = true;
    assert_int_equal(patch_as(c, UNSENT, UNSENT, k), 0);
    free(k);
    free(c);
}

/* ---- a caller with scopes ---- */

static void test_scoped_create(void **state)
{
    struct caller *c = caller_new("keys:read keys:write posts:*", NULL);
    struct key_rec *k;

    (void)state;
    /* Not sent: the caller's scopes. */
    assert_int_equal(create_as(c, UNSENT, UNSENT, &k), 0);
    assert_true(k->has_scopes);
    assert_string_equal(k->scopes, "keys:read keys:write posts:*");
    assert_false(k->has_ips);
    free(k);
    /* Within: fine, and what was sent is what the key gets. */
    assert_int_equal(create_as(c, "posts:read", UNSENT, &k), 0);
    assert_true(k->has_scopes);
    assert_string_equal(k->scopes, "posts:read");
    free(k);
    assert_int_equal(create_rc(c, "posts:*", UNSENT), 0);
    assert_int_equal(create_rc(c, "posts:a:*", UNSENT), 0);
    assert_int_equal(create_rc(c, "keys:read posts:a", UNSENT), 0);
    assert_int_equal(create_rc(c, "keys:read keys:write posts:*", UNSENT), 0);
    /* Beyond: refused. */
    assert_int_equal(create_rc(c, "billing:read", UNSENT), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, "keys:*", UNSENT), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, "audit:read keys:read", UNSENT), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, "posts", UNSENT), AK_ERR_SCOPE);
    /* Unrestricted (explicit null): refused. */
    assert_int_equal(create_rc(c, NULL, UNSENT), AK_ERR_SCOPE);
    /* An allowlist is the caller's to give when it has none itself. */
    assert_int_equal(create_as(c, UNSENT, "10.0.0.0/8", &k), 0);
    assert_true(k->has_ips);
    assert_string_equal(k->allowed_ips, "10.0.0.0/8");
    free(k);
    assert_int_equal(create_rc(c, UNSENT, NULL), 0);
    free(c);
}

static void test_scoped_manage(void **state)
{
    struct caller *c = caller_new("keys:write posts:*", NULL);
    struct key_rec *k;

    (void)state;
    assert_int_equal(manage_rc(c, "posts:read", NULL), 0);
    assert_int_equal(manage_rc(c, "keys:write posts:*", NULL), 0);
    assert_int_equal(manage_rc(c, "posts:read", "10.0.0.0/8"), 0);
    assert_int_equal(manage_rc(c, NULL, NULL), AK_ERR_SCOPE);
    assert_int_equal(manage_rc(c, "billing:read", NULL), AK_ERR_SCOPE);
    assert_int_equal(manage_rc(c, "posts:read billing:read", NULL), AK_ERR_SCOPE);
    assert_int_equal(manage_rc(c, "keys:*", NULL), AK_ERR_SCOPE);
    /* A primary key: never, whatever it holds. */
    k = key_new("posts:read", NULL);
    k->primary = true;
    assert_int_equal(policy_may_manage(&c->who, &c->self, k), AK_ERR_SCOPE);
    free(k);
    free(c);
}

static void test_scoped_patch(void **state)
{
    struct caller *c = caller_new("keys:write posts:*", NULL);
    struct key_rec *k = key_new("posts:read", NULL);

    (void)state;
    /* Nothing sent on a key within: fine, unchanged (no inheritance on a change). */
    assert_int_equal(patch_as(c, UNSENT, UNSENT, k), 0);
    assert_string_equal(k->scopes, "posts:read");
    assert_int_equal(patch_as(c, "posts:write", UNSENT, k), 0);
    assert_string_equal(k->scopes, "posts:write");
    assert_int_equal(patch_as(c, "billing:read", UNSENT, k), AK_ERR_SCOPE);
    free(k);
    k = key_new("posts:read", NULL);
    assert_int_equal(patch_as(c, NULL, UNSENT, k), AK_ERR_SCOPE);
    free(k);
    /* A key with null scopes stays out of reach even when nothing about scopes is sent. */
    k = key_new(NULL, NULL);
    assert_int_equal(patch_as(c, UNSENT, UNSENT, k), AK_ERR_SCOPE);
    free(k);
    /* Making a key primary (the change already on the record): refused. */
    k = key_new("posts:read", NULL);
    k->primary = true;
    assert_int_equal(patch_as(c, UNSENT, UNSENT, k), AK_ERR_SCOPE);
    free(k);
    free(c);
}

/* ---- a caller with an allowlist ---- */

static void test_allowlisted_create(void **state)
{
    struct caller *c = caller_new(NULL, "10.0.0.0/8,2001:db8::/32");
    struct key_rec *k;

    (void)state;
    /* Not sent: the caller's allowlist, as its text. */
    assert_int_equal(create_as(c, UNSENT, UNSENT, &k), 0);
    assert_true(k->has_ips);
    assert_string_equal(k->allowed_ips, "10.0.0.0/8,2001:db8::/32");
    assert_false(k->has_scopes); /* scopes are not this caller's limit */
    free(k);
    /* Narrower: fine. */
    assert_int_equal(create_as(c, UNSENT, "10.1.0.0/16", &k), 0);
    assert_string_equal(k->allowed_ips, "10.1.0.0/16");
    free(k);
    assert_int_equal(create_rc(c, UNSENT, "2001:db8:1::/48,10.2.3.4/32"), 0);
    assert_int_equal(create_rc(c, UNSENT, "10.0.0.0/8"), 0);
    /* Wider, or elsewhere, or anywhere: refused. */
    assert_int_equal(create_rc(c, UNSENT, "0.0.0.0/0"), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, UNSENT, "::/0"), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, UNSENT, "10.0.0.0/7"), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, UNSENT, "10.0.0.0/8,192.168.0.0/16"), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, UNSENT, "2001:db8::/31"), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, UNSENT, NULL), AK_ERR_SCOPE);
    /* Any scopes, even none: not this caller's limit. */
    assert_int_equal(create_rc(c, NULL, UNSENT), 0);
    assert_int_equal(create_rc(c, "billing:*", "10.9.0.0/16"), 0);
    free(c);
}

static void test_allowlisted_manage(void **state)
{
    struct caller *c = caller_new(NULL, "10.0.0.0/8");
    struct key_rec *k;

    (void)state;
    assert_int_equal(manage_rc(c, NULL, "10.1.0.0/16"), 0);
    assert_int_equal(manage_rc(c, "a", "10.0.0.0/8"), 0);
    assert_int_equal(manage_rc(c, NULL, NULL), AK_ERR_SCOPE);
    assert_int_equal(manage_rc(c, NULL, "10.0.0.0/8,11.0.0.0/8"), AK_ERR_SCOPE);
    assert_int_equal(manage_rc(c, NULL, "::/0"), AK_ERR_SCOPE);
    /* A patch may narrow, never widen nor lift. */
    k = key_new(NULL, "10.1.0.0/16");
    assert_int_equal(patch_as(c, UNSENT, "10.1.2.0/24", k), 0);
    assert_string_equal(k->allowed_ips, "10.1.2.0/24");
    assert_int_equal(patch_as(c, UNSENT, "10.0.0.0/8", k), 0);
    assert_int_equal(patch_as(c, UNSENT, "0.0.0.0/0", k), AK_ERR_SCOPE);
    free(k);
    k = key_new(NULL, "10.1.0.0/16");
    assert_int_equal(patch_as(c, UNSENT, NULL, k), AK_ERR_SCOPE);
    free(k);
    /* Without its own record the allowlist cannot be judged: refused, not waved through. */
    k = key_new(NULL, "10.1.0.0/16");
    assert_int_equal(policy_may_manage(&c->who, NULL, k), AK_ERR_SCOPE);
    free(k);
    /* An own allowlist that is damaged text holds nothing. */
    snprintf(c->self.allowed_ips, sizeof(c->self.allowed_ips), "garbage");
    assert_int_equal(manage_rc(c, NULL, "10.1.0.0/16"), AK_ERR_SCOPE);
    free(c);
}

/* ---- both ---- */

static void test_both_limits(void **state)
{
    struct caller *c = caller_new("posts:*", "10.0.0.0/8");
    struct key_rec *k;

    (void)state;
    assert_int_equal(create_as(c, UNSENT, UNSENT, &k), 0);
    assert_string_equal(k->scopes, "posts:*");
    assert_string_equal(k->allowed_ips, "10.0.0.0/8");
    free(k);
    assert_int_equal(create_rc(c, "posts:read", "10.1.0.0/16"), 0);
    assert_int_equal(create_rc(c, "posts:read", "11.0.0.0/8"), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, "keys:read", "10.1.0.0/16"), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, "posts:read", NULL), AK_ERR_SCOPE);
    assert_int_equal(create_rc(c, NULL, "10.1.0.0/16"), AK_ERR_SCOPE);
    assert_int_equal(manage_rc(c, "posts:a", "10.2.0.0/16"), 0);
    assert_int_equal(manage_rc(c, "posts:a", NULL), AK_ERR_SCOPE);
    assert_int_equal(manage_rc(c, NULL, "10.2.0.0/16"), AK_ERR_SCOPE);
    free(c);
}

/* ---- a caller with a rate limit (issue 13) ---- */

/* policy_apply of a request that sets rate_limit to `limit`/`window` (limit 0: null; -1: unsent) on a new key. */
static int rate_create(const struct caller *c, int64_t limit, int32_t window, struct key_rec *ret)
{
    struct policy_req *r = req_new(UNSENT, UNSENT);
    struct key_rec *k = key_new(NULL, NULL);
    int rc;

    if (limit >= 0) {
        r->set_rate = true;
        r->has_rate = limit > 0;
        r->rate_limit = limit;
        r->rate_window = limit > 0 ? window : 0;
    }
    rc = policy_apply(c != NULL ? &c->who : NULL, c != NULL ? &c->self : NULL, r, true, 0, k);
    if (ret != NULL)
        *ret = *k;
    free(r);
    free(k);
    return rc;
}

static void test_rate_limited_caller(void **state)
{
    struct caller *c = caller_new(NULL, NULL);
    struct key_rec *k = malloc(sizeof(*k)), *t;

    (void)state;
    assert_non_null(k);
    c->who.rate_limit = c->self.rate_limit = 600;
    c->who.rate_window = c->self.rate_window = 60; /* 10 a second, bursts of 600 */
    /* Inherited when unsent; tighter ones given as asked. */
    assert_int_equal(rate_create(c, -1, 0, k), 0);
    assert_int_equal(k->rate_limit, 600);
    assert_int_equal(k->rate_window, 60);
    assert_int_equal(rate_create(c, 600, 60, k), 0);
    assert_int_equal(rate_create(c, 10, 1, k), 0); /* same rate, smaller burst */
    assert_int_equal(k->rate_limit, 10);
    assert_int_equal(k->rate_window, 1);
    assert_int_equal(rate_create(c, 1, 86400, k), 0);
    /* Looser: none at all, a bigger burst, a higher rate. */
    assert_int_equal(rate_create(c, 0, 0, NULL), AK_ERR_SCOPE);
    assert_int_equal(rate_create(c, 601, 60, NULL), AK_ERR_SCOPE);
    assert_int_equal(rate_create(c, 11, 1, NULL), AK_ERR_SCOPE);
    assert_int_equal(rate_create(c, 600, 59, NULL), AK_ERR_SCOPE);
    assert_int_equal(rate_create(c, 1000, 3600, NULL), AK_ERR_SCOPE);
    /* Managing: only keys no looser than itself. */
    t = key_new(NULL, NULL);
    assert_int_equal(policy_may_manage(&c->who, &c->self, t), AK_ERR_SCOPE);
    t->rate_limit = 600;
    t->rate_window = 60;
    assert_int_equal(policy_may_manage(&c->who, &c->self, t), 0);
    t->rate_limit = 1000000000;
    t->rate_window = 86400;
    assert_int_equal(policy_may_manage(&c->who, &c->self, t), AK_ERR_SCOPE);
    free(t);
    /* The largest values do not overflow the comparison. */
    c->who.rate_limit = 1000000000;
    c->who.rate_window = 1;
    assert_int_equal(rate_create(c, 1000000000, 86400, k), 0);
    c->who.rate_window = 86400;
    assert_int_equal(rate_create(c, 1000000000, 1, NULL), AK_ERR_SCOPE);
    /* A caller without a rate limit gives any, null included; the operator too. */
    c->who.rate_limit = c->who.rate_window = 0;
    assert_int_equal(rate_create(c, 0, 0, k), 0);
    assert_int_equal(k->rate_limit, 0);
    assert_int_equal(rate_create(c, -1, 0, k), 0);
    assert_int_equal(k->rate_limit, 0);
    assert_int_equal(rate_create(NULL, 5, 5, k), 0);
    assert_int_equal(k->rate_limit, 5);
    free(k);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operator_never_refused), cmocka_unit_test(test_unrestricted_caller),
        cmocka_unit_test(test_scoped_create),          cmocka_unit_test(test_scoped_manage),
        cmocka_unit_test(test_scoped_patch),           cmocka_unit_test(test_allowlisted_create),
        cmocka_unit_test(test_allowlisted_manage),     cmocka_unit_test(test_both_limits),
        cmocka_unit_test(test_rate_limited_caller),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
