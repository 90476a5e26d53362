/*
 * Unit tests for core/audit: the change sets of keys, accounts and admin
 * tokens (only the fields that differ, "old" before "new", a creation's old
 * and a deletion's new null, NULL when nothing changed), the closed list of
 * actions (every name parses back, near-misses do not), and events that
 * carry their origin whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit.h"
#include "core/error.h"

static struct key_rec key(void)
{
    struct key_rec k;

    memset(&k, 0, sizeof(k));
    k.id = 12;
    k.account_id = 3;
    snprintf(k.name, sizeof(k.name), "CI key");
    k.type = KEY_TYPE_PRODUCTION;
    snprintf(k.prefix, sizeof(k.prefix), "ml_prod_AbCd");
    memset(k.digest, 0x42, sizeof(k.digest));
    k.active = true;
    k.primary = false;
    k.created_at = 1700000000;
    return k;
}

static struct account_rec account(void)
{
    struct account_rec a;

    memset(&a, 0, sizeof(a));
    a.id = 3;
    snprintf(a.name, sizeof(a.name), "acme");
    a.key_count = 2;
    a.created_at = 1700000000;
    return a;
}

static struct token_rec token(void)
{
    struct token_rec t;

    memset(&t, 0, sizeof(t));
    t.id = 4;
    snprintf(t.name, sizeof(t.name), "ops");
    snprintf(t.prefix, sizeof(t.prefix), "ml_admin_WxYz");
    memset(t.digest, 0x17, sizeof(t.digest));
    t.created_at = 1700000000;
    return t;
}

/* Asserts that `got` (freed here) is exactly `want`: the fields, their order, and old before new. */
static void expect(char *got, const char *want)
{
    if (want == NULL) {
        if (got != NULL)
            fail_msg("expected no changes, got %s", got);
        return;
    }
    if (got == NULL)
        fail_msg("expected %s, got NULL", want);
    if (strcmp(got, want) != 0) {
        char copy[1024];
        snprintf(copy, sizeof(copy), "%s", got);
        free(got);
        fail_msg("expected %s\n      got %s", want, copy);
    }
    free(got);
}

/* The change sets as text, asserting that building them succeeded. */
static char *key_changes(const struct key_rec *old, const struct key_rec *new)
{
    char *text = NULL;

    assert_int_equal(audit_key_changes(old, new, &text), 0);
    return text;
}

static char *account_changes(const struct account_rec *old, const struct account_rec *new)
{
    char *text = NULL;

    assert_int_equal(audit_account_changes(old, new, &text), 0);
    return text;
}

static char *token_changes(const struct token_rec *old, const struct token_rec *new)
{
    char *text = NULL;

    assert_int_equal(audit_token_changes(old, new, &text), 0);
    return text;
}

static void test_key_changes(void **state)
{
    struct key_rec a = key(), b;

    (void)state;
    expect(key_changes(NULL, &a), "{\"name\":{\"old\":null,\"new\":\"CI key\"},\"key_type\":{\"old\":null,\"new\":\"production\"},"
                                  "\"is_active\":{\"old\":null,\"new\":true},\"is_primary\":{\"old\":null,\"new\":false}}");
    expect(key_changes(&a, NULL), "{\"name\":{\"old\":\"CI key\",\"new\":null},\"key_type\":{\"old\":\"production\",\"new\":null},"
                                  "\"is_active\":{\"old\":true,\"new\":null},\"is_primary\":{\"old\":false,\"new\":null}}");
    b = a;
    expect(key_changes(&a, &b), NULL);
    /* What is not a field of the log changes nothing: id, prefix, digest, times, version. */
    b.last_used = 1800000000;
    b.version = 99;
    b.created_at = 1;
    b.digest[0] ^= 1;
    b.prefix[9] = 'Z';
    expect(key_changes(&a, &b), NULL);
    b = a;
    snprintf(b.name, sizeof(b.name), "renamed \"quoted\"");
    expect(key_changes(&a, &b), "{\"name\":{\"old\":\"CI key\",\"new\":\"renamed \\\"quoted\\\"\"}}");
    b = a;
    b.active = false;
    expect(key_changes(&a, &b), "{\"is_active\":{\"old\":true,\"new\":false}}");
    b = a;
    b.primary = true;
    expect(key_changes(&a, &b), "{\"is_primary\":{\"old\":false,\"new\":true}}");
    expect(key_changes(&b, &a), "{\"is_primary\":{\"old\":true,\"new\":false}}");
    b = a;
    b.type = KEY_TYPE_SANDBOX;
    b.active = false;
    expect(key_changes(&a, &b),
           "{\"key_type\":{\"old\":\"production\",\"new\":\"sandbox\"},\"is_active\":{\"old\":true,\"new\":false}}");
    /* A name in UTF-8 stays itself. */
    b = a;
    snprintf(b.name, sizeof(b.name), "cl\xc3\xa9");
    expect(key_changes(&a, &b), "{\"name\":{\"old\":\"CI key\",\"new\":\"cl\xc3\xa9\"}}");
}

static void test_account_changes(void **state)
{
    struct account_rec a = account(), b;

    (void)state;
    /* No external_id and no cap of its own: null on both sides, so not a change. */
    expect(account_changes(NULL, &a), "{\"name\":{\"old\":null,\"new\":\"acme\"},\"status\":{\"old\":null,\"new\":\"active\"}}");
    expect(account_changes(&a, NULL), "{\"name\":{\"old\":\"acme\",\"new\":null},\"status\":{\"old\":\"active\",\"new\":null}}");
    b = a;
    snprintf(b.external_id, sizeof(b.external_id), "cust_42");
    b.max_keys = 10;
    b.suspended = true;
    expect(account_changes(NULL, &b),
           "{\"name\":{\"old\":null,\"new\":\"acme\"},\"external_id\":{\"old\":null,\"new\":\"cust_42\"},"
           "\"status\":{\"old\":null,\"new\":\"suspended\"},\"max_keys\":{\"old\":null,\"new\":10}}");
    expect(account_changes(&b, NULL),
           "{\"name\":{\"old\":\"acme\",\"new\":null},\"external_id\":{\"old\":\"cust_42\",\"new\":null},"
           "\"status\":{\"old\":\"suspended\",\"new\":null},\"max_keys\":{\"old\":10,\"new\":null}}");
    b = a;
    expect(account_changes(&a, &b), NULL);
    b.key_count = 7; /* not a field of the log */
    b.created_at = 5;
    expect(account_changes(&a, &b), NULL);
    b = a;
    b.suspended = true;
    expect(account_changes(&a, &b), "{\"status\":{\"old\":\"active\",\"new\":\"suspended\"}}");
    expect(account_changes(&b, &a), "{\"status\":{\"old\":\"suspended\",\"new\":\"active\"}}");
    b = a;
    b.max_keys = 5;
    expect(account_changes(&a, &b), "{\"max_keys\":{\"old\":null,\"new\":5}}");
    expect(account_changes(&b, &a), "{\"max_keys\":{\"old\":5,\"new\":null}}");
    a.max_keys = 6;
    expect(account_changes(&a, &b), "{\"max_keys\":{\"old\":6,\"new\":5}}");
    a.max_keys = 0;
    b = a;
    snprintf(b.name, sizeof(b.name), "Acme Inc");
    b.suspended = true;
    expect(account_changes(&a, &b),
           "{\"name\":{\"old\":\"acme\",\"new\":\"Acme Inc\"},\"status\":{\"old\":\"active\",\"new\":\"suspended\"}}");
}

static void test_token_changes(void **state)
{
    struct token_rec a = token(), b;

    (void)state;
    expect(token_changes(NULL, &a),
           "{\"name\":{\"old\":null,\"new\":\"ops\"},\"prefix\":{\"old\":null,\"new\":\"ml_admin_WxYz\"}}");
    expect(token_changes(&a, NULL),
           "{\"name\":{\"old\":\"ops\",\"new\":null},\"prefix\":{\"old\":\"ml_admin_WxYz\",\"new\":null}}");
    b = a;
    expect(token_changes(&a, &b), NULL);
    b.digest[3] ^= 0xff; /* never in the log */
    b.created_at = 2;
    expect(token_changes(&a, &b), NULL);
    snprintf(b.name, sizeof(b.name), "ops-2");
    expect(token_changes(&a, &b), "{\"name\":{\"old\":\"ops\",\"new\":\"ops-2\"}}");
    /* Nothing at all on either side: nothing changed. */
    expect(token_changes(NULL, NULL), NULL);
    expect(key_changes(NULL, NULL), NULL);
    expect(account_changes(NULL, NULL), NULL);
}

/* jansson's allocations, failing the one numbered `fail_at` (counting from 0). */
static long alloc_count, fail_at = -1;

static void *failing_malloc(size_t n)
{
    return alloc_count++ == fail_at ? NULL : malloc(n);
}

/*
 * Out of memory anywhere while a change set is built is an error, never a
 * shorter set or "nothing changed" (which would let a change commit without
 * its event: it did before, when allocation failures were dropped fields).
 */
static void test_changes_out_of_memory_is_an_error(void **state)
{
    struct key_rec k = key();
    struct account_rec a = account();
    char *want_k = key_changes(NULL, &k), *want_a = account_changes(&a, NULL);
    bool done_k = false, done_a = false;

    (void)state;
    for (fail_at = 0; fail_at < 200 && !(done_k && done_a); fail_at++) {
        int rk, ra;
        char *gk = NULL, *ga = NULL;
        json_set_alloc_funcs(failing_malloc, free);
        alloc_count = 0;
        rk = audit_key_changes(NULL, &k, &gk);
        alloc_count = 0;
        ra = audit_account_changes(&a, NULL, &ga);
        json_set_alloc_funcs(malloc, free);
        assert_true(rk == 0 || rk == AK_ERR_NOMEM);
        assert_true(ra == 0 || ra == AK_ERR_NOMEM);
        if (rk == 0) {
            assert_non_null(gk);
            assert_string_equal(gk, want_k);
            done_k = true;
        } else {
            assert_null(gk);
        }
        if (ra == 0) {
            assert_non_null(ga);
            assert_string_equal(ga, want_a);
            done_a = true;
        } else {
            assert_null(ga);
        }
        free(gk);
        free(ga);
    }
    fail_at = -1;
    assert_true(done_k && done_a);
    free(want_k);
    free(want_a);
}

/* The changes of a record never hold its digest, in any form. */
static void test_changes_hold_no_digest(void **state)
{
    struct key_rec k = key();
    struct token_rec t = token();
    char *a = key_changes(NULL, &k), *b = token_changes(&t, NULL);

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_null(strstr(a, "digest"));
    assert_null(strstr(a, "4242"));
    assert_null(strstr(a, "ml_prod_AbCd")); /* a key's prefix is not one of its logged fields */
    assert_null(strstr(b, "digest"));
    assert_null(strstr(b, "1717"));
    free(a);
    free(b);
}

static void test_action_names(void **state)
{
    static const char *const names[AUDIT_ACTION_COUNT] = {
        [AUDIT_KEY_CREATED] = "key.created",
        [AUDIT_KEY_UPDATED] = "key.updated",
        [AUDIT_KEY_DELETED] = "key.deleted",
        [AUDIT_KEY_ROTATED] = "key.rotated",
        [AUDIT_KEY_LEAKED] = "key.leaked",
        [AUDIT_ACCOUNT_CREATED] = "account.created",
        [AUDIT_ACCOUNT_UPDATED] = "account.updated",
        [AUDIT_ACCOUNT_SUSPENDED] = "account.suspended",
        [AUDIT_ACCOUNT_REACTIVATED] = "account.reactivated",
        [AUDIT_ACCOUNT_DELETED] = "account.deleted",
        [AUDIT_TOKEN_CREATED] = "admin_token.created",
        [AUDIT_TOKEN_REVOKED] = "admin_token.revoked",
    };
    enum audit_action got;

    (void)state;
    for (int a = 0; a < AUDIT_ACTION_COUNT; a++) {
        assert_string_equal(audit_action_name((enum audit_action)a), names[a]);
        got = (enum audit_action) - 1;
        assert_int_equal(audit_action_parse(names[a], strlen(names[a]), &got), 0);
        assert_int_equal(got, a);
        assert_true(strlen(names[a]) <= AUDIT_NAME_MAX);
    }
    assert_string_equal(audit_action_name(AUDIT_ACTION_COUNT), "unknown");
    assert_string_equal(audit_action_name((enum audit_action) - 1), "unknown");
}

static void test_action_near_misses(void **state)
{
    static const char *const bad[] = {
        "",
        "key",
        "key.",
        "key.create",
        "key.createds",
        "Key.created",
        "KEY.CREATED",
        "key.Created",
        " key.created",
        "key.created ",
        "key_created",
        "key-created",
        "keys.created",
        "account.suspend",
        "account.reactivate",
        "account.activated",
        "admin_token.deleted",
        "admin-token.created",
        "admin_token",
        "token.created",
        "token.revoked",
        "unknown",
        ".created",
        "key..created",
    };
    enum audit_action got = AUDIT_KEY_DELETED;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (audit_action_parse(bad[i], strlen(bad[i]), &got) != AK_ERR_INVALID)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(got, AUDIT_KEY_DELETED); /* untouched on error */
    /* Exactly `len` bytes: a prefix of a name, or a name with more after it, is not that name. */
    assert_int_equal(audit_action_parse("key.created", 10, &got), AK_ERR_INVALID);
    assert_int_equal(audit_action_parse("key.createdX", 11, &got), 0);
    assert_int_equal(got, AUDIT_KEY_CREATED);
    assert_int_equal(audit_action_parse("key.created\0", 12, &got), AK_ERR_INVALID);
    assert_int_equal(audit_action_parse("key.deleted", 0, &got), AK_ERR_INVALID);
}

static void test_event_init(void **state)
{
    struct audit_origin o;
    struct audit_event ev;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.actor = ACTOR_ADMIN_TOKEN;
    o.actor_id = 77;
    snprintf(o.actor_prefix, sizeof(o.actor_prefix), "ml_admin_QrSt");
    snprintf(o.client_ip, sizeof(o.client_ip), "2001:db8::1");
    memset(o.request_id, 'r', AUDIT_REQUEST_ID_MAX); /* the longest request id */
    memset(&ev, 0x5a, sizeof(ev));
    audit_event_init(&ev, &o, 1700000123, AUDIT_ACCOUNT_SUSPENDED, 9, TARGET_ACCOUNT, 9);
    assert_int_equal(ev.at, 1700000123);
    assert_int_equal(ev.account_id, 9);
    assert_string_equal(ev.actor_type, "admin_token");
    assert_int_equal(ev.actor_id, 77);
    assert_string_equal(ev.actor_prefix, "ml_admin_QrSt");
    assert_string_equal(ev.action, "account.suspended");
    assert_string_equal(ev.target_type, "account");
    assert_int_equal(ev.target_id, 9);
    assert_null(ev.changes);
    assert_string_equal(ev.client_ip, "2001:db8::1");
    assert_int_equal(strlen(ev.request_id), AUDIT_REQUEST_ID_MAX);
    assert_memory_equal(ev.request_id, o.request_id, AUDIT_REQUEST_ID_MAX);
    assert_int_equal(ev.id, 0);

    /* Each actor and target by name; a CLI origin has no id, prefix, address or request. */
    o.actor = ACTOR_KEY;
    audit_event_init(&ev, &o, 1, AUDIT_KEY_CREATED, 1, TARGET_KEY, 2);
    assert_string_equal(ev.actor_type, "key");
    assert_string_equal(ev.target_type, "key");
    o.actor = ACTOR_SYSTEM;
    audit_event_init(&ev, &o, 1, AUDIT_TOKEN_REVOKED, 0, TARGET_ADMIN_TOKEN, 3);
    assert_string_equal(ev.actor_type, "system");
    assert_string_equal(ev.target_type, "admin_token");
    assert_string_equal(ev.action, "admin_token.revoked");
    assert_int_equal(ev.account_id, 0);
    memset(&o, 0x5a, sizeof(o));
    audit_origin_cli(&o);
    audit_event_init(&ev, &o, 1, AUDIT_KEY_DELETED, 1, TARGET_KEY, 2);
    assert_string_equal(ev.actor_type, "cli");
    assert_int_equal(ev.actor_id, 0);
    assert_string_equal(ev.actor_prefix, "");
    assert_string_equal(ev.client_ip, "");
    assert_string_equal(ev.request_id, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_changes),   cmocka_unit_test(test_account_changes),
        cmocka_unit_test(test_token_changes), cmocka_unit_test(test_changes_hold_no_digest),
        cmocka_unit_test(test_action_names),  cmocka_unit_test(test_action_near_misses),
        cmocka_unit_test(test_event_init),    cmocka_unit_test(test_changes_out_of_memory_is_an_error),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
