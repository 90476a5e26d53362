/*
 * fuzz_validate: a request body (POST and PATCH /v1/account/api-keys, POST
 * .../rotate) through validate_json_depth, validate_create, validate_patch
 * and validate_rotate; and the same bytes as a timestamp through
 * timefmt_parse.
 *
 * Beyond "no crash", each result is checked against an oracle built on
 * jansson with the flags validate.c uses: invalid_json exactly when the body
 * does not parse or nests too deep (and the pre-scan's depth is the parsed
 * tree's), else 0 exactly when the object holds the allowed fields with
 * valid values; a returned name passes validate_name and equals the JSON
 * string; outputs are untouched on error; messages are printable one-liners.
 */
#include <jansson.h>
#include <stdbool.h>

#include <time.h>

#include "core/error.h"
#include "core/timefmt.h"
#include "core/validate.h"
#include "fuzz.h"

#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL)

/* Nesting depth of a parsed value: 0 for a scalar. jansson bounds its own recursion (JSON_PARSER_MAX_DEPTH). */
static int tree_depth(const json_t *v)
{
    int max = 0, d;
    const char *field;
    json_t *child;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, field, child)
        {
            if ((d = tree_depth(child)) > max)
                max = d;
        }
        return max + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            if ((d = tree_depth(child)) > max)
                max = d;
        }
        return max + 1;
    }
    return 0;
}

static bool name_ok(const json_t *v)
{
    return json_is_string(v) &&
           fuzz_name_ok((const unsigned char *)json_string_value(v), json_string_length(v), KEY_NAME_MAX_CHARS);
}

static bool same_string(const json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s) && memcmp(json_string_value(v), s, strlen(s)) == 0;
}

static bool is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/*
 * The oracle for RFC 3339: the shape checked character by character, the
 * date and time by libc (timegm, then gmtime_r must give the same fields
 * back), the offset applied; *ret the seconds since the epoch.
 */
static bool oracle_time(const char *s, size_t n, int64_t *ret)
{
    struct tm tm = {0}, back;
    size_t pos = 19;
    int64_t off = 0;
    time_t t;

    if (n < 20 || !is_digits(s, 4) || s[4] != '-' || !is_digits(s + 5, 2) || s[7] != '-' || !is_digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't') || !is_digits(s + 11, 2) || s[13] != ':' || !is_digits(s + 14, 2) || s[16] != ':' ||
        !is_digits(s + 17, 2))
        return false;
    if (s[pos] == '.') {
        size_t start = ++pos;
        while (pos < n && s[pos] >= '0' && s[pos] <= '9')
            pos++;
        if (pos == start)
            return false;
    }
    if (pos < n && (s[pos] == 'Z' || s[pos] == 'z')) {
        pos++;
    } else if (pos + 6 <= n && (s[pos] == '+' || s[pos] == '-') && is_digits(s + pos + 1, 2) && s[pos + 3] == ':' &&
               is_digits(s + pos + 4, 2)) {
        int oh = (s[pos + 1] - '0') * 10 + (s[pos + 2] - '0'), om = (s[pos + 4] - '0') * 10 + (s[pos + 5] - '0');
        if (oh > 23 || om > 59)
            return false;
        off = (s[pos] == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
        pos += 6;
    } else {
        return false;
    }
    if (pos != n)
        return false;
    tm.tm_year = atoi((char[]){s[0], s[1], s[2], s[3], 0}) - 1900;
    tm.tm_mon = atoi((char[]){s[5], s[6], 0}) - 1;
    tm.tm_mday = atoi((char[]){s[8], s[9], 0});
    tm.tm_hour = atoi((char[]){s[11], s[12], 0});
    tm.tm_min = atoi((char[]){s[14], s[15], 0});
    tm.tm_sec = atoi((char[]){s[17], s[18], 0});
    if (tm.tm_sec == 60)
        tm.tm_sec = 59; /* a leap second: the last second of its minute */
    back = tm;
    t = timegm(&back);
    if (back.tm_year != tm.tm_year || back.tm_mon != tm.tm_mon || back.tm_mday != tm.tm_mday || back.tm_hour != tm.tm_hour ||
        back.tm_min != tm.tm_min || back.tm_sec != tm.tm_sec || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1)
        return false;
    *ret = (int64_t)t - off;
    return *ret >= 0 && *ret <= 253402300799;
}

/* An expires_at member: absent, null, or a timestamp the oracle reads; *ret its value (0 for null). */
static bool expires_ok(const json_t *v, int64_t *ret)
{
    *ret = 0;
    return v == NULL || json_is_null(v) || (json_is_string(v) && oracle_time(json_string_value(v), json_string_length(v), ret));
}

static void check_time(const char *s, size_t n)
{
    int64_t got = -1, want = 0;
    bool ok = oracle_time(s, n, &want);
    char buf[TIMEFMT_LEN + 1];
    int r = timefmt_parse(s, n, &got);

    FUZZ_CHECK(r == (ok ? 0 : AK_ERR_INVALID));
    if (r != 0) {
        FUZZ_CHECK(got == -1);
        return;
    }
    FUZZ_CHECK(got == want);
    /* What it reads, it writes back as the same instant. */
    FUZZ_CHECK(timefmt_format(got, buf, sizeof(buf)) == 0);
    FUZZ_CHECK(timefmt_parse(buf, TIMEFMT_LEN, &want) == 0 && want == got);
}

static void check_rotate(const char *body, size_t len, const json_t *root)
{
    char msg[VALIDATE_MSG_MAX];
    int64_t grace = -1;
    bool want_ok = false;
    int r = validate_rotate(body, len, &grace, msg, sizeof(msg));

    if (len == 0) {
        FUZZ_CHECK(r == 0 && grace == VALIDATE_GRACE_DEFAULT_S);
        return;
    }
    if (json_is_object(root)) {
        const json_t *g = json_object_get(root, "grace_period_seconds");
        want_ok =
            json_object_size(root) == (g != NULL ? 1u : 0u) &&
            (g == NULL || (json_is_integer(g) && json_integer_value(g) >= 0 && json_integer_value(g) <= VALIDATE_GRACE_MAX_S));
        if (want_ok && g != NULL)
            FUZZ_CHECK(r != 0 || grace == json_integer_value(g));
        if (want_ok && g == NULL)
            FUZZ_CHECK(r != 0 || grace == VALIDATE_GRACE_DEFAULT_S);
    }
    if (root == NULL)
        FUZZ_CHECK(r == AK_ERR_JSON);
    else
        FUZZ_CHECK(r == (want_ok ? 0 : AK_ERR_INVALID));
    if (r != 0)
        fuzz_check_msg(msg, sizeof(msg));
}

/*
 * The model of rate_limit (absent: true, nothing set): null, or an object of exactly "limit" (1..10^9) and
 * "window_seconds" (1..86400), both integers. *ret_limit 0 for null.
 */
static bool rate_ok(const json_t *v, int64_t *ret_limit, int64_t *ret_window)
{
    const json_t *l, *w;

    *ret_limit = *ret_window = 0;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_object(v) || json_object_size(v) != 2 || (l = json_object_get(v, "limit")) == NULL ||
        (w = json_object_get(v, "window_seconds")) == NULL || !json_is_integer(l) || !json_is_integer(w) ||
        json_integer_value(l) < 1 || json_integer_value(l) > 1000000000 || json_integer_value(w) < 1 ||
        json_integer_value(w) > 86400)
        return false;
    *ret_limit = json_integer_value(l);
    *ret_window = json_integer_value(w);
    return true;
}

static void check_create(const char *body, size_t len, const json_t *root)
{
    struct create_req req, poison;
    char msg[VALIDATE_MSG_MAX], nmsg[VALIDATE_MSG_MAX];
    bool want_ok = false;
    int r;

    memset(&poison, 0xa5, sizeof(poison));
    req = poison;
    memset(msg, 0x55, sizeof(msg));
    r = validate_create(body, len, &req, msg, sizeof(msg));
    int64_t expires = 0, limit = 0, window = 0;
    const json_t *rate = NULL;

    if (json_is_object(root)) {
        const json_t *name = json_object_get(root, "name"), *type = json_object_get(root, "key_type"),
                     *exp = json_object_get(root, "expires_at");
        rate = json_object_get(root, "rate_limit");
        want_ok = json_object_size(root) == 2u + (exp != NULL) + (rate != NULL) && name_ok(name) &&
                  (same_string(type, "production") || same_string(type, "sandbox")) && expires_ok(exp, &expires) &&
                  rate_ok(rate, &limit, &window);
    }
    if (root == NULL) {
        FUZZ_CHECK(r == AK_ERR_JSON);
    } else {
        FUZZ_CHECK(r == (want_ok ? 0 : AK_ERR_INVALID));
    }
    if (r != 0) {
        fuzz_check_msg(msg, sizeof(msg));
        FUZZ_CHECK(memcmp(&req, &poison, sizeof(req)) == 0);
        return;
    }
    FUZZ_CHECK(strnlen(req.name, sizeof(req.name)) < sizeof(req.name));
    FUZZ_CHECK(validate_name(req.name, strlen(req.name), nmsg, sizeof(nmsg)) == 0);
    FUZZ_CHECK(same_string(json_object_get(root, "name"), req.name));
    FUZZ_CHECK(req.type == KEY_TYPE_PRODUCTION || req.type == KEY_TYPE_SANDBOX);
    FUZZ_CHECK(same_string(json_object_get(root, "key_type"), key_type_name(req.type)));
    FUZZ_CHECK(req.expires_at == expires);
    FUZZ_CHECK(req.policy.set_rate == (rate != NULL));
    FUZZ_CHECK(req.policy.has_rate == (limit != 0));
    FUZZ_CHECK(!req.policy.has_rate || (req.policy.rate_limit == limit && req.policy.rate_window == window));
}

static void check_patch(const char *body, size_t len, const json_t *root)
{
    struct patch_req req, poison;
    char msg[VALIDATE_MSG_MAX], nmsg[VALIDATE_MSG_MAX];
    const json_t *name = NULL, *active = NULL, *primary = NULL, *exp = NULL, *rate = NULL;
    bool want_ok = false;
    int64_t expires = 0, limit = 0, window = 0;
    int r;

    memset(&poison, 0xa5, sizeof(poison));
    req = poison;
    memset(msg, 0x55, sizeof(msg));
    r = validate_patch(body, len, &req, msg, sizeof(msg));
    if (json_is_object(root)) {
        size_t known;
        name = json_object_get(root, "name");
        active = json_object_get(root, "is_active");
        primary = json_object_get(root, "is_primary");
        exp = json_object_get(root, "expires_at");
        rate = json_object_get(root, "rate_limit");
        known = (size_t)(name != NULL) + (size_t)(active != NULL) + (size_t)(primary != NULL) + (size_t)(exp != NULL) +
                (size_t)(rate != NULL);
        want_ok = known > 0 && known == json_object_size(root) && (name == NULL || name_ok(name)) &&
                  (active == NULL || json_is_boolean(active)) && (primary == NULL || json_is_boolean(primary)) &&
                  expires_ok(exp, &expires) && rate_ok(rate, &limit, &window);
    }
    if (root == NULL) {
        FUZZ_CHECK(r == AK_ERR_JSON);
    } else {
        FUZZ_CHECK(r == (want_ok ? 0 : AK_ERR_INVALID));
    }
    if (r != 0) {
        fuzz_check_msg(msg, sizeof(msg));
        FUZZ_CHECK(memcmp(&req, &poison, sizeof(req)) == 0);
        return;
    }
    FUZZ_CHECK(req.has_name == (name != NULL));
    FUZZ_CHECK(req.has_active == (active != NULL));
    FUZZ_CHECK(req.has_primary == (primary != NULL));
    if (req.has_name) {
        FUZZ_CHECK(strnlen(req.name, sizeof(req.name)) < sizeof(req.name));
        FUZZ_CHECK(validate_name(req.name, strlen(req.name), nmsg, sizeof(nmsg)) == 0);
        FUZZ_CHECK(same_string(name, req.name));
    }
    if (req.has_active)
        FUZZ_CHECK(req.active == json_is_true(active));
    if (req.has_primary)
        FUZZ_CHECK(req.primary == json_is_true(primary));
    FUZZ_CHECK(req.has_expires_at == (exp != NULL));
    if (req.has_expires_at)
        FUZZ_CHECK(req.expires_at == expires);
    FUZZ_CHECK(req.policy.set_rate == (rate != NULL));
    FUZZ_CHECK(req.policy.has_rate == (limit != 0));
    FUZZ_CHECK(!req.policy.has_rate || (req.policy.rate_limit == limit && req.policy.rate_window == window));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fuzz_dup(data, size);
    json_error_t jerr;
    json_t *root = NULL;
    int shallow, deep;

    shallow = validate_json_depth(body, size, 2);
    deep = validate_json_depth(body, size, VALIDATE_DEPTH_MAX);
    FUZZ_CHECK(shallow == 0 || shallow == AK_ERR_JSON);
    FUZZ_CHECK(deep == 0 || deep == AK_ERR_JSON);
    FUZZ_CHECK(shallow != 0 || deep == 0); /* a lower limit never lets more through */

    if (size > VALIDATE_BODY_MAX) {
        /* Refused before parsing (the fuzzer's -max_len stays below; the corpus has one). */
        struct create_req c;
        struct patch_req p;
        char msg[VALIDATE_MSG_MAX];
        FUZZ_CHECK(validate_create(body, size, &c, msg, sizeof(msg)) == AK_ERR_INVALID);
        fuzz_check_msg(msg, sizeof(msg));
        FUZZ_CHECK(validate_patch(body, size, &p, msg, sizeof(msg)) == AK_ERR_INVALID);
        fuzz_check_msg(msg, sizeof(msg));
        goto out;
    }
    if (size > 0 && (root = json_loadb(body, size, LOAD_FLAGS, &jerr)) == NULL &&
        json_error_code(&jerr) == json_error_numeric_overflow) {
        /* Valid JSON (it parses with integers as doubles) whose integer is out of range: 422 unless too deep. */
        json_t *loose = json_loadb(body, size, LOAD_FLAGS | JSON_DECODE_INT_AS_REAL, &jerr);
        if (loose != NULL && tree_depth(loose) <= VALIDATE_DEPTH_MAX) {
            struct create_req c;
            struct patch_req p;
            char msg[VALIDATE_MSG_MAX];
            json_decref(loose);
            FUZZ_CHECK(validate_create(body, size, &c, msg, sizeof(msg)) == AK_ERR_INVALID);
            fuzz_check_msg(msg, sizeof(msg));
            FUZZ_CHECK(validate_patch(body, size, &p, msg, sizeof(msg)) == AK_ERR_INVALID);
            fuzz_check_msg(msg, sizeof(msg));
            goto out;
        }
        json_decref(loose);
    }
    if (root != NULL) {
        /* On a whole JSON text the pre-scan counts exactly the parser's nesting. */
        int d = tree_depth(root);
        FUZZ_CHECK((shallow == 0) == (d <= 2));
        FUZZ_CHECK((deep == 0) == (d <= VALIDATE_DEPTH_MAX));
        if (deep != 0) {
            json_decref(root);
            root = NULL; /* validate must answer invalid_json */
        }
    }
    check_create(body, size, root);
    check_patch(body, size, root);
    check_rotate(body, size, root);
out:
    check_time(body, size);
    json_decref(root);
    free(body);
    return 0;
}
