/*
 * fuzz_validate: a request body (POST and PATCH /v1/account/api-keys) through
 * validate_json_depth, validate_create and validate_patch.
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

#include "core/error.h"
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
    if (json_is_object(root)) {
        const json_t *name = json_object_get(root, "name"), *type = json_object_get(root, "key_type");
        want_ok = json_object_size(root) == 2 && name_ok(name) && (same_string(type, "production") || same_string(type, "sandbox"));
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
}

static void check_patch(const char *body, size_t len, const json_t *root)
{
    struct patch_req req, poison;
    char msg[VALIDATE_MSG_MAX], nmsg[VALIDATE_MSG_MAX];
    const json_t *name = NULL, *active = NULL, *primary = NULL;
    bool want_ok = false;
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
        known = (size_t)(name != NULL) + (size_t)(active != NULL) + (size_t)(primary != NULL);
        want_ok = known > 0 && known == json_object_size(root) && (name == NULL || name_ok(name)) &&
                  (active == NULL || json_is_boolean(active)) && (primary == NULL || json_is_boolean(primary));
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
out:
    json_decref(root);
    free(body);
    return 0;
}
