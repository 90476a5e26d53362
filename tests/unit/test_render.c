/*
 * Unit tests for http/render: one key object byte for byte (a fixed case),
 * then many generated views (ids 1 and INT64_MAX, both types, every flag,
 * times from 0 to 9999-12-31 and last_used 0 = null, names with quotes,
 * backslashes, unicode, emoji, 100 characters, encoded by jansson as the
 * catalog does) whose output must parse as exactly the documented members
 * in order and equal jansson's own compact serialization of the same object;
 * `extra` members land right after key_type; and render_buf growth across
 * pool blocks (many keys into one buffer from a small hint equal the
 * concatenation of each rendered alone); render_key_max bounds every output,
 * so that a buffer sized with it never moves. Keys with restrictions carry
 * "scopes" and "allowed_ips" last (null when unrestricted, arrays of the
 * canonical names and blocks otherwise, [] for damaged text), the largest
 * lists included, built with guard_new as the catalog builds them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <h2o.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/guard.h"
#include "core/scope.h"
#include "http/render.h"

#define TIME_MAX 253402300799 /* 9999-12-31T23:59:59Z */

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t pick(uint64_t *s, size_t n)
{
    return (size_t)(next_rand(s) % n);
}

/* The reference timestamp, from the C library. */
static void ref_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;

    assert_non_null(gmtime_r(&tt, &tm));
    assert_int_equal(strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm), 20);
}

/* A view and what it points to. */
struct sample {
    struct key_view v;
    char name[512]; /* UTF-8, what the name_json literal decodes to */
    char prefix[KEYFMT_PREFIX_LEN + 1];
    char *name_json; /* from jansson, as the catalog keeps it */
    const char *extra;
    /* What the guard was made from (NULL: none), and whether the allowlist text is damaged (shown as []). */
    const char *scopes;
    const char *ips;
    bool ips_damaged;
    struct guard *guard;
};

static void sample_set_name(struct sample *s, const char *name)
{
    json_t *j = json_string(name);

    assert_non_null(j);
    snprintf(s->name, sizeof(s->name), "%s", name);
    free(s->name_json);
    s->name_json = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(j);
    assert_non_null(s->name_json);
    s->v.name_json = s->name_json;
    s->v.name_json_len = strlen(s->name_json);
}

/* Gives the sample a guard made from these texts (NULL: absent), as the catalog makes one. */
static void sample_set_guard(struct sample *s, const char *scopes, const char *ips, bool damaged)
{
    guard_free(s->guard);
    s->guard = NULL;
    assert_int_equal(guard_new(scopes, ips, &s->guard), 0);
    assert_true((s->guard == NULL) == (scopes == NULL && ips == NULL));
    s->scopes = scopes;
    s->ips = ips;
    s->ips_damaged = damaged;
    s->v.guard = s->guard;
}

static void sample_release(struct sample *s)
{
    free(s->name_json);
    s->name_json = NULL;
    guard_free(s->guard);
    s->guard = NULL;
    s->v.guard = NULL;
}

/* The longest canonical scope list: 50 names of 64 characters and ":*". */
static const char *longest_scopes(void)
{
    static char text[SCOPE_TEXT_MAX];
    size_t o = 0;

    if (text[0] != '\0')
        return text;
    for (int i = 0; i < SCOPE_LIST_MAX; i++) {
        if (i != 0)
            text[o++] = ' ';
        text[o++] = (char)('0' + i / 26);
        memset(text + o, 'a' + i % 26, 63);
        o += 63;
        memcpy(text + o, ":*", 2);
        o += 2;
    }
    text[o] = '\0';
    return text;
}

/* The longest allowlist: 32 IPv6 blocks of the longest canonical text. */
static const char *longest_ips(void)
{
    static char text[GUARD_IPS_TEXT_MAX];
    size_t o = 0;

    if (text[0] != '\0')
        return text;
    for (int i = 0; i < GUARD_IPS_MAX; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o, "%sffff:ffff:ffff:ffff:ffff:ffff:ffff:ff%02x/128", i != 0 ? "," : "", i);
    return text;
}

/* One of the restrictions a key may carry. */
static void random_guard(uint64_t *rng, struct sample *s)
{
    switch (pick(rng, 10)) {
    case 0:
        sample_set_guard(s, "billing:read keys:read posts:*", NULL, false);
        break;
    case 1:
        sample_set_guard(s, NULL, "10.0.0.0/8,::1/128", false);
        break;
    case 2:
        sample_set_guard(s, "billing:read keys:read posts:*", "10.0.0.0/8,::1/128", false);
        break;
    case 3:
        sample_set_guard(s, "a", "::/0", false);
        break;
    case 4:
        sample_set_guard(s, longest_scopes(), longest_ips(), false);
        break;
    case 5:
        sample_set_guard(s, "keys:write", "garbage", true); /* damaged in the store: allows nothing */
        break;
    case 6:
        sample_set_guard(s, "", "2001:db8::/32,0.0.0.0/0,203.0.113.7/32", false); /* damaged scopes: grant nothing */
        break;
    default:
        sample_set_guard(s, NULL, NULL, false);
    }
}

/* Characters a name may hold: one code point each, printable, no control characters. */
static const char *const name_chars[] = {
    "a",
    "Z",
    "7",
    " ",
    "\"",
    "\\",
    "/",
    "'",
    "<",
    "&",
    "{",
    "}",
    ":",
    ",",
    "\xc3\xa9",         /* é */
    "\xc3\x9f",         /* ß */
    "\xe4\xb8\xad",     /* 中 */
    "\xe2\x82\xac",     /* € */
    "\xe2\x80\xa8",     /* U+2028 LINE SEPARATOR (not a control character) */
    "\xef\xbb\xbf",     /* U+FEFF */
    "\xf0\x9f\x94\x91", /* 🔑 */
    "\xf0\x9f\x98\x80", /* 😀 */
    "\xf0\x9f\x8f\xb3", /* 🏳 */
    "\xe2\x80\x8d",     /* ZWJ */
    "\xf0\x90\x80\x80", /* U+10000 */
    "\xf4\x8f\xbf\xbd", /* U+10FFFD */
};

#define NCHARS (sizeof(name_chars) / sizeof(name_chars[0]))

/* A name of `n` code points drawn from name_chars. */
static void random_name(uint64_t *rng, size_t n, char *out, size_t outsz)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *c = name_chars[pick(rng, NCHARS)];
        size_t cl = strlen(c);
        assert_true(len + cl < outsz);
        memcpy(out + len, c, cl + 1);
        len += cl;
    }
}

static int64_t random_time(uint64_t *rng, bool allow_zero)
{
    switch (pick(rng, 6)) {
    case 0:
        return allow_zero ? 0 : 1;
    case 1:
        return 1;
    case 2:
        return TIME_MAX;
    case 3:
        return 1705312800; /* 2024-01-15T10:00:00Z */
    default:
        return (int64_t)(next_rand(rng) % (uint64_t)(TIME_MAX + 1));
    }
}

static void random_sample(uint64_t *rng, struct sample *s)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static const char *const extras[] = {
        NULL,
        ",\"api_key\":\"ml_prod_Ab3dEf6hIj9lMn2pQr5tUv8xYz1B4d7G0a1b2c\",\"message\":\"Store this key securely. It will not "
        "be shown again.\"",
        ",\"n\":-1",
    };
    char name[512];
    size_t n;

    memset(&s->v, 0, sizeof(s->v));
    switch (pick(rng, 4)) {
    case 0:
        s->v.id = 1;
        break;
    case 1:
        s->v.id = INT64_MAX;
        break;
    default:
        s->v.id = (int64_t)((next_rand(rng) >> 1) >> pick(rng, 63));
        if (s->v.id == 0)
            s->v.id = 1;
    }
    s->v.type = pick(rng, 2) == 0 ? KEY_TYPE_PRODUCTION : KEY_TYPE_SANDBOX;
    s->v.active = pick(rng, 2) == 0;
    s->v.primary = pick(rng, 2) == 0;
    s->v.created_at = random_time(rng, false);
    s->v.last_used = pick(rng, 3) == 0 ? 0 : random_time(rng, true);
    s->v.expires_at = pick(rng, 2) == 0 ? 0 : random_time(rng, true);
    s->v.rotated_from = pick(rng, 2) == 0 ? 0 : pick(rng, 2) == 0 ? INT64_MAX : 1 + (int64_t)pick(rng, 1000000);
    s->v.rotated_to = pick(rng, 2) == 0 ? 0 : pick(rng, 2) == 0 ? INT64_MAX : 1 + (int64_t)pick(rng, 1000000);
    s->v.leaked_at = pick(rng, 3) == 0 ? random_time(rng, true) : 0;
    snprintf(s->prefix, sizeof(s->prefix), "ml_%s_", s->v.type == KEY_TYPE_SANDBOX ? "sand" : "prod");
    for (size_t i = 8; i < KEYFMT_PREFIX_LEN; i++)
        s->prefix[i] = b62[pick(rng, sizeof(b62) - 1)];
    s->prefix[KEYFMT_PREFIX_LEN] = '\0';
    s->v.prefix = s->prefix;
    n = pick(rng, 3) == 0 ? KEY_NAME_MAX_CHARS : 1 + pick(rng, KEY_NAME_MAX_CHARS);
    random_name(rng, n, name, sizeof(name));
    sample_set_name(s, name);
    s->extra = extras[pick(rng, sizeof(extras) / sizeof(extras[0]))];
    random_guard(rng, s);
}

static void ref_time_or_null(json_t *o, const char *field, int64_t t)
{
    char buf[32];

    if (t == 0) {
        assert_int_equal(json_object_set_new(o, field, json_null()), 0);
        return;
    }
    ref_time(t, buf);
    assert_int_equal(json_object_set_new(o, field, json_string(buf)), 0);
}

/* `text` split at `sep` as a JSON array of strings; NULL: null; "" or damaged: []. */
static json_t *ref_list(const char *text, char sep, bool damaged)
{
    json_t *a;
    const char *p;

    if (text == NULL)
        return json_null();
    assert_non_null(a = json_array());
    for (p = text; !damaged && *p != '\0';) {
        const char *e = strchr(p, sep);
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        assert_int_equal(json_array_append_new(a, json_stringn(p, n)), 0);
        p += n + (e != NULL);
    }
    return a;
}

/* The same object built with jansson, member by member in the documented order, then serialized compactly. */
static char *reference(const struct sample *s)
{
    json_t *o = json_object(), *extra = NULL;
    char t[32];
    char *out;

    assert_non_null(o);
    assert_int_equal(json_object_set_new(o, "id", json_integer(s->v.id)), 0);
    assert_int_equal(json_object_set_new(o, "name", json_string(s->name)), 0);
    assert_int_equal(json_object_set_new(o, "key_type", json_string(s->v.type == KEY_TYPE_SANDBOX ? "sandbox" : "production")), 0);
    if (s->extra != NULL) {
        /* "{" + ",a:..,b:.." without its leading comma + "}" */
        char *wrapped = malloc(strlen(s->extra) + 2);
        const char *k;
        json_t *val;

        assert_non_null(wrapped);
        snprintf(wrapped, strlen(s->extra) + 2, "{%s}", s->extra + 1);
        assert_non_null(extra = json_loads(wrapped, 0, NULL));
        free(wrapped);
        json_object_foreach(extra, k, val)
        {
            assert_int_equal(json_object_set(o, k, val), 0);
        }
        json_decref(extra);
    }
    assert_int_equal(json_object_set_new(o, "key_prefix", json_string(s->v.prefix)), 0);
    assert_int_equal(json_object_set_new(o, "is_active", json_boolean(s->v.active)), 0);
    assert_int_equal(json_object_set_new(o, "is_primary", json_boolean(s->v.primary)), 0);
    ref_time(s->v.created_at, t);
    assert_int_equal(json_object_set_new(o, "created_at", json_string(t)), 0);
    if (s->v.last_used != 0) {
        ref_time(s->v.last_used, t);
        assert_int_equal(json_object_set_new(o, "last_used", json_string(t)), 0);
    } else {
        assert_int_equal(json_object_set_new(o, "last_used", json_null()), 0);
    }
    ref_time_or_null(o, "expires_at", s->v.expires_at);
    assert_int_equal(json_object_set_new(o, "rotated_from", s->v.rotated_from != 0 ? json_integer(s->v.rotated_from) : json_null()),
                     0);
    assert_int_equal(json_object_set_new(o, "rotated_to", s->v.rotated_to != 0 ? json_integer(s->v.rotated_to) : json_null()), 0);
    ref_time_or_null(o, "leaked_at", s->v.leaked_at);
    assert_int_equal(json_object_set_new(o, "scopes", ref_list(s->scopes, ' ', false)), 0);
    assert_int_equal(json_object_set_new(o, "allowed_ips", ref_list(s->ips, ',', s->ips_damaged)), 0);
    assert_int_equal(json_object_set_new(o, "rate_limit",
                                         s->v.rate_limit != 0 ? json_pack("{s:I,s:i}", "limit", (json_int_t)s->v.rate_limit,
                                                                          "window_seconds", (int)s->v.rate_window)
                                                              : json_null()),
                     0);
    assert_int_equal(json_object_set_new(o, "remaining", s->v.has_quota ? json_integer(s->v.remaining) : json_null()), 0);
    assert_int_equal(json_object_set_new(o, "refill",
                                         s->v.has_quota && s->v.refill_amount != 0
                                             ? json_pack("{s:I,s:s}", "amount", (json_int_t)s->v.refill_amount, "interval",
                                                         refill_interval_name(s->v.refill_interval))
                                             : json_null()),
                     0);
    out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    assert_non_null(out);
    return out;
}

/* Parses `out` and checks each member, in order, against the sample. */
static void check_parsed(const struct sample *s, const char *out, size_t len)
{
    static const char *const before[] = {"id", "name", "key_type"};
    static const char *const after[] = {"key_prefix",  "is_active",    "is_primary", "created_at", "last_used",
                                        "expires_at",  "rotated_from", "rotated_to", "leaked_at",  "scopes",
                                        "allowed_ips", "rate_limit",   "remaining",  "refill"};
    json_error_t err;
    json_t *o = json_loadb(out, len, JSON_REJECT_DUPLICATES, &err), *extra = NULL;
    const char *want[24];
    size_t nwant = 0, i = 0;
    char t[32];
    void *it;

    if (o == NULL)
        fail_msg("render_key output does not parse (%s at %d): %.*s", err.text, err.position, (int)len, out);
    assert_true(json_is_object(o));
    for (size_t k = 0; k < 3; k++)
        want[nwant++] = before[k];
    if (s->extra != NULL) {
        char wrapped[256];
        const char *k;
        json_t *val;

        snprintf(wrapped, sizeof(wrapped), "{%s}", s->extra + 1);
        assert_non_null(extra = json_loads(wrapped, 0, NULL));
        json_object_foreach(extra, k, val)
        {
            assert_true(nwant < 24);
            want[nwant++] = k;
            assert_true(json_equal(json_object_get(o, k), val));
        }
    }
    for (size_t k = 0; k < sizeof(after) / sizeof(after[0]); k++)
        want[nwant++] = after[k];
    assert_int_equal(json_object_size(o), nwant);
    for (it = json_object_iter(o); it != NULL; it = json_object_iter_next(o, it), i++)
        assert_string_equal(json_object_iter_key(it), want[i]);
    assert_int_equal(i, nwant);

    assert_true(json_is_integer(json_object_get(o, "id")));
    assert_int_equal(json_integer_value(json_object_get(o, "id")), s->v.id);
    assert_true(json_is_string(json_object_get(o, "name")));
    assert_int_equal(json_string_length(json_object_get(o, "name")), strlen(s->name));
    assert_string_equal(json_string_value(json_object_get(o, "name")), s->name);
    assert_string_equal(json_string_value(json_object_get(o, "key_type")),
                        s->v.type == KEY_TYPE_SANDBOX ? "sandbox" : "production");
    assert_string_equal(json_string_value(json_object_get(o, "key_prefix")), s->v.prefix);
    assert_true(json_is_boolean(json_object_get(o, "is_active")));
    assert_int_equal(json_is_true(json_object_get(o, "is_active")), s->v.active);
    assert_true(json_is_boolean(json_object_get(o, "is_primary")));
    assert_int_equal(json_is_true(json_object_get(o, "is_primary")), s->v.primary);
    ref_time(s->v.created_at, t);
    assert_string_equal(json_string_value(json_object_get(o, "created_at")), t);
    if (s->v.last_used == 0) {
        assert_true(json_is_null(json_object_get(o, "last_used")));
    } else {
        ref_time(s->v.last_used, t);
        assert_string_equal(json_string_value(json_object_get(o, "last_used")), t);
    }
    {
        json_t *scopes = ref_list(s->scopes, ' ', false), *ips = ref_list(s->ips, ',', s->ips_damaged);
        if (!json_equal(json_object_get(o, "scopes"), scopes) || !json_equal(json_object_get(o, "allowed_ips"), ips))
            fail_msg("scopes / allowed_ips of %.*s", (int)len, out);
        json_decref(scopes);
        json_decref(ips);
    }
    json_decref(extra);
    json_decref(o);
}

/*
 * Renders one key, and checks render_key_max: the output never exceeds it,
 * and a buffer started with that much room is never moved (a move would
 * leave a copy of a created key behind in the pool).
 */
static void render_one(h2o_mem_pool_t *pool, const struct sample *s, size_t hint, struct render_buf *b)
{
    size_t extra_len = s->extra != NULL ? strlen(s->extra) : 0, max = render_key_max(&s->v, extra_len);
    struct render_buf sized;
    char *start;

    render_init(b, pool, hint);
    render_key(b, &s->v, s->extra, extra_len);
    assert_true(b->len <= b->cap);
    assert_true(b->len <= max);
    render_init(&sized, pool, max);
    start = sized.p;
    render_key(&sized, &s->v, s->extra, extra_len);
    assert_ptr_equal(sized.p, start);
    assert_int_equal(sized.len, b->len);
}

static void assert_same(const char *got, size_t got_len, const char *want, size_t want_len)
{
    if (got_len != want_len || memcmp(got, want, want_len) != 0)
        fail_msg("rendered:\n%.*s\nwant:\n%.*s", (int)got_len, got, (int)want_len, want);
}

/* The documented shape, written out by hand. */
static void test_fixed_key(void **state)
{
    static const char want[] = "{\"id\":1,\"name\":\"Production \\\"Key\\\" \\\\ \xc3\xa9\xf0\x9f\x94\x91\","
                               "\"key_type\":\"production\",\"key_prefix\":\"ml_prod_a1B2\",\"is_active\":true,"
                               "\"is_primary\":true,\"created_at\":\"2024-01-15T10:00:00Z\",\"last_used\":null,"
                               "\"expires_at\":null,\"rotated_from\":null,\"rotated_to\":null,\"leaked_at\":null,"
                               "\"scopes\":null,\"allowed_ips\":null,\"rate_limit\":null,\"remaining\":null,\"refill\":null}";
    static const char want_extra[] = "{\"id\":9223372036854775807,\"name\":\"x\",\"key_type\":\"sandbox\","
                                     "\"api_key\":\"k\",\"message\":\"m\",\"key_prefix\":\"ml_sand_Zz09\",\"is_active\":false,"
                                     "\"is_primary\":false,\"created_at\":\"1970-01-01T00:00:01Z\","
                                     "\"last_used\":\"9999-12-31T23:59:59Z\",\"expires_at\":\"9999-12-31T23:59:59Z\","
                                     "\"rotated_from\":9223372036854775807,\"rotated_to\":1,\"leaked_at\":\"2024-01-15T10:00:00Z\","
                                     "\"scopes\":null,\"allowed_ips\":null,"
                                     "\"rate_limit\":{\"limit\":1000000000,\"window_seconds\":86400},\"remaining\":"
                                     "9007199254740991,\"refill\":{\"amount\":9007199254740991,\"interval\":\"month\"}}";
    struct sample s = {0};
    struct render_buf b;
    h2o_mem_pool_t pool;

    (void)state;
    h2o_mem_init_pool(&pool);
    s.v = (struct key_view){.id = 1, .type = KEY_TYPE_PRODUCTION, .active = true, .primary = true, .created_at = 1705312800};
    snprintf(s.prefix, sizeof(s.prefix), "ml_prod_a1B2");
    s.v.prefix = s.prefix;
    sample_set_name(&s, "Production \"Key\" \\ \xc3\xa9\xf0\x9f\x94\x91");
    render_one(&pool, &s, 0, &b);
    assert_same(b.p, b.len, want, sizeof(want) - 1);

    s.v = (struct key_view){.rate_limit = 1000000000,
                            .rate_window = 86400,
                            .has_quota = true,
                            .remaining = QUOTA_MAX,
                            .refill_amount = QUOTA_MAX,
                            .refill_interval = REFILL_MONTH,
                            .id = INT64_MAX,
                            .type = KEY_TYPE_SANDBOX,
                            .created_at = 1,
                            .last_used = TIME_MAX,
                            .expires_at = TIME_MAX,
                            .rotated_from = INT64_MAX,
                            .rotated_to = 1,
                            .leaked_at = 1705312800};
    snprintf(s.prefix, sizeof(s.prefix), "ml_sand_Zz09");
    s.v.prefix = s.prefix;
    sample_set_name(&s, "x");
    s.extra = ",\"api_key\":\"k\",\"message\":\"m\"";
    render_one(&pool, &s, 0, &b);
    assert_same(b.p, b.len, want_extra, sizeof(want_extra) - 1);
    check_parsed(&s, b.p, b.len);
    sample_release(&s);
    h2o_mem_clear_pool(&pool);
}

/* The restrictions, written out by hand: last, after leaked_at; null, arrays in canonical order, [] for damaged text. */
static void test_fixed_restricted_key(void **state)
{
    static const char head[] = "{\"id\":2,\"name\":\"r\",\"key_type\":\"production\",\"key_prefix\":\"ml_prod_r2D2\","
                               "\"is_active\":true,\"is_primary\":false,\"created_at\":\"2024-01-15T10:00:00Z\","
                               "\"last_used\":null,\"expires_at\":null,\"rotated_from\":null,\"rotated_to\":null,"
                               "\"leaked_at\":null,";
    static const struct {
        const char *scopes, *ips;
        bool damaged;
        const char *scopes_json, *ips_json;
    } cases[] = {
        {"billing:read keys:read posts:*", "10.0.0.0/8,::1/128", false, "[\"billing:read\",\"keys:read\",\"posts:*\"]",
         "[\"10.0.0.0/8\",\"::1/128\"]"},
        {"billing:read keys:read posts:*", NULL, false, "[\"billing:read\",\"keys:read\",\"posts:*\"]", "null"},
        {NULL, "::1/128,10.0.0.0/8", false, "null", "[\"::1/128\",\"10.0.0.0/8\"]"},
        {"a", "::/0", false, "[\"a\"]", "[\"::/0\"]"},
        {"keys:write", "garbage", true, "[\"keys:write\"]", "[]"},
        {"keys:write", "10.0.0.0/40", true, "[\"keys:write\"]", "[]"},
        {"", NULL, false, "[]", "null"},
        {NULL, NULL, false, "null", "null"},
    };
    struct sample s = {0};
    struct render_buf b;
    h2o_mem_pool_t pool;
    char want[1024];

    (void)state;
    h2o_mem_init_pool(&pool);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s.v = (struct key_view){.id = 2, .type = KEY_TYPE_PRODUCTION, .active = true, .created_at = 1705312800};
        snprintf(s.prefix, sizeof(s.prefix), "ml_prod_r2D2");
        s.v.prefix = s.prefix;
        sample_set_name(&s, "r");
        sample_set_guard(&s, cases[i].scopes, cases[i].ips, cases[i].damaged);
        snprintf(want, sizeof(want), "%s\"scopes\":%s,\"allowed_ips\":%s,\"rate_limit\":null,\"remaining\":null,\"refill\":null}",
                 head, cases[i].scopes_json, cases[i].ips_json);
        render_one(&pool, &s, 0, &b);
        assert_same(b.p, b.len, want, strlen(want));
        check_parsed(&s, b.p, b.len);
        /* the pieces alone */
        render_init(&b, &pool, 0);
        render_scopes(&b, s.guard);
        render_raw(&b, "|", 1);
        render_allowed_ips(&b, s.guard);
        snprintf(want, sizeof(want), "%s|%s", cases[i].scopes_json, cases[i].ips_json);
        assert_same(b.p, b.len, want, strlen(want));
    }
    sample_release(&s);
    h2o_mem_clear_pool(&pool);
}

/*
 * The largest key there is: the longest name of the widest escapes, extra
 * members, 50 scopes of 66 characters and 32 of the longest IPv6 blocks.
 * render_key_max still bounds it, and a buffer of that size never moves.
 */
static void test_largest_key(void **state)
{
    static const char *const fill[] = {"\"", "\xf0\x9f\x94\x91", "\\"};
    h2o_mem_pool_t pool;
    struct sample s = {0};

    (void)state;
    h2o_mem_init_pool(&pool);
    for (size_t f = 0; f < sizeof(fill) / sizeof(fill[0]); f++) {
        char name[KEY_NAME_MAX_BYTES + 1] = "";
        struct render_buf b;
        char *want;

        for (size_t i = 0; i < KEY_NAME_MAX_CHARS; i++)
            strcat(name, fill[f]);
        s.v = (struct key_view){.rate_limit = 1000000000,
                                .rate_window = 86400,
                                .has_quota = true,
                                .remaining = QUOTA_MAX,
                                .refill_amount = QUOTA_MAX,
                                .refill_interval = REFILL_MONTH,
                                .id = INT64_MIN,
                                .type = KEY_TYPE_PRODUCTION,
                                .created_at = TIME_MAX,
                                .last_used = TIME_MAX,
                                .expires_at = TIME_MAX,
                                .rotated_from = INT64_MAX,
                                .rotated_to = INT64_MAX,
                                .leaked_at = TIME_MAX};
        snprintf(s.prefix, sizeof(s.prefix), "ml_prod_ZZZZ");
        s.v.prefix = s.prefix;
        s.extra = ",\"api_key\":\"ml_prod_Ab3dEf6hIj9lMn2pQr5tUv8xYz1B4d7G0a1b2c\",\"message\":\"Store this key securely.\"";
        sample_set_name(&s, name);
        sample_set_guard(&s, longest_scopes(), longest_ips(), false);
        assert_int_equal(strlen(longest_scopes()), SCOPE_LIST_MAX * SCOPE_NAME_MAX + SCOPE_LIST_MAX - 1);
        render_one(&pool, &s, 0, &b);
        assert_true(b.len > strlen(longest_scopes()) + strlen(longest_ips())); /* the lists are there */
        assert_true(b.len <= render_key_max(&s.v, strlen(s.extra)));
        if (f == 0) {
            /* id INT64_MIN is no key's, but the bound holds for it too; jansson agrees on the rest */
            s.v.id = INT64_MAX;
            render_one(&pool, &s, 0, &b);
        }
        check_parsed(&s, b.p, b.len);
        want = reference(&s);
        assert_same(b.p, b.len, want, strlen(want));
        free(want);
    }
    sample_release(&s);
    h2o_mem_clear_pool(&pool);
}

/* Many generated views: parsed member by member, and byte for byte against jansson. */
static void test_generated_keys(void **state)
{
    uint64_t rng = 20240115;
    h2o_mem_pool_t pool;
    struct sample s = {0};

    (void)state;
    h2o_mem_init_pool(&pool);
    for (int i = 0; i < 3000; i++) {
        struct render_buf b;
        char *want;

        random_sample(&rng, &s);
        render_one(&pool, &s, pick(&rng, 2) == 0 ? 0 : 4096, &b);
        check_parsed(&s, b.p, b.len);
        want = reference(&s);
        assert_same(b.p, b.len, want, strlen(want));
        free(want);
        if (i % 100 == 99)
            h2o_mem_clear_pool(&pool);
    }
    sample_release(&s);
    h2o_mem_clear_pool(&pool);
}

/* The longest names, all of the widest characters, with every character escaped or not. */
static void test_long_names(void **state)
{
    static const char *const fill[] = {"\xf0\x9f\x94\x91", "\"", "\\", "\xe4\xb8\xad", "a"};
    h2o_mem_pool_t pool;
    struct sample s = {0};

    (void)state;
    h2o_mem_init_pool(&pool);
    for (size_t f = 0; f < sizeof(fill) / sizeof(fill[0]); f++) {
        char name[KEY_NAME_MAX_BYTES + 1] = "";
        struct render_buf b;
        char *want;

        for (size_t i = 0; i < KEY_NAME_MAX_CHARS; i++)
            strcat(name, fill[f]);
        s.v = (struct key_view){.id = (int64_t)f + 1, .type = KEY_TYPE_SANDBOX, .created_at = 1705312800, .last_used = 1705312801};
        snprintf(s.prefix, sizeof(s.prefix), "ml_sand_0000");
        s.v.prefix = s.prefix;
        s.extra = NULL;
        sample_set_name(&s, name);
        render_one(&pool, &s, 0, &b);
        check_parsed(&s, b.p, b.len);
        want = reference(&s);
        assert_same(b.p, b.len, want, strlen(want));
        free(want);
    }
    sample_release(&s);
    h2o_mem_clear_pool(&pool);
}

/*
 * A list: many keys into one buffer that starts small, so that it moves to
 * new pool blocks many times, must equal the keys rendered one by one and
 * joined.
 */
static void test_buffer_growth(void **state)
{
    enum { N = 600 };
    uint64_t rng = 7;
    h2o_mem_pool_t pool;
    struct sample s = {0};
    struct render_buf list, one;
    char *joined = NULL, *big;
    size_t jlen = 0, moves = 0;
    const char *last_p;

    (void)state;
    h2o_mem_init_pool(&pool);
    render_init(&list, &pool, 1);
    assert_non_null(list.p);
    assert_int_equal(list.len, 0);
    last_p = list.p;
    render_raw(&list, "{\"api_keys\":[", 13);
    for (int i = 0; i < N; i++) {
        random_sample(&rng, &s);
        if (i != 0)
            render_raw(&list, ",", 1);
        render_key(&list, &s.v, s.extra, s.extra != NULL ? strlen(s.extra) : 0);
        assert_true(list.len <= list.cap);
        if (list.p != last_p) {
            moves++;
            last_p = list.p;
        }
        render_one(&pool, &s, 1 << 16, &one);
        joined = realloc(joined, jlen + one.len + 2);
        assert_non_null(joined);
        if (i != 0)
            joined[jlen++] = ',';
        memcpy(joined + jlen, one.p, one.len);
        jlen += one.len;
    }
    render_raw(&list, "]}", 2);
    assert_true(moves >= 5);
    assert_int_equal(list.len, 13 + jlen + 2);
    assert_memory_equal(list.p, "{\"api_keys\":[", 13);
    assert_same(list.p + 13, list.len - 15, joined, jlen);
    assert_memory_equal(list.p + list.len - 2, "]}", 2);
    {
        json_t *doc = json_loadb(list.p, list.len, 0, NULL);
        assert_non_null(doc);
        assert_int_equal(json_array_size(json_object_get(doc, "api_keys")), N);
        json_decref(doc);
    }

    /* One append far larger than the room left (several doublings at once). */
    big = malloc(300000);
    assert_non_null(big);
    for (size_t i = 0; i < 300000; i++)
        big[i] = (char)('a' + i % 26);
    render_init(&one, &pool, 0);
    render_raw(&one, "[", 1);
    render_raw(&one, big, 300000);
    render_raw(&one, "]", 1);
    assert_int_equal(one.len, 300002);
    assert_true(one.cap >= one.len);
    assert_int_equal(one.p[0], '[');
    assert_memory_equal(one.p + 1, big, 300000);
    assert_int_equal(one.p[300001], ']');

    free(big);
    free(joined);
    sample_release(&s);
    h2o_mem_clear_pool(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_key),      cmocka_unit_test(test_fixed_restricted_key), cmocka_unit_test(test_largest_key),
        cmocka_unit_test(test_generated_keys), cmocka_unit_test(test_long_names),           cmocka_unit_test(test_buffer_growth),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
