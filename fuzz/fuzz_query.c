/*
 * fuzz_query: a listing's query string through query_parse, and the
 * operator API's bodies through validate_account_create,
 * validate_account_patch and validate_issue.
 *
 * Input: one control byte, then the text. Control byte & 3 picks the
 * parser: 0 the query string (with the admin audit log's four names), 1-3
 * the bodies. The query string is checked against an oracle written apart
 * from query.c: the same pieces, names and decoded values, or an error
 * exactly when a piece is unknown, repeated, lacks '=' or has a bad %XX.
 * A body accepted by a validator has a valid name, external_id and cap.
 */
#include <stdbool.h>

#include "core/error.h"
#include "core/validate.h"
#include "fuzz.h"
#include "http/query.h"

static const char *const NAMES[] = {"limit", "after", "account_id", "action"};
#define NNAMES 4

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The oracle: the expected error, and the decoded value of each name (into vals, lens). */
static int oracle(const char *q, size_t len, char vals[NNAMES][4096], size_t lens[NNAMES], bool seen[NNAMES])
{
    size_t start = 0;

    while (start <= len) {
        size_t stop = start, eq = SIZE_MAX, k;
        int which = -1;
        while (stop < len && q[stop] != '&')
            stop++;
        if (stop == start) {
            start = stop + 1;
            continue;
        }
        for (k = start; k < stop; k++)
            if (q[k] == '=') {
                eq = k;
                break;
            }
        for (int i = 0; i < NNAMES; i++)
            if (strlen(NAMES[i]) == (eq != SIZE_MAX ? eq : stop) - start && memcmp(NAMES[i], q + start, strlen(NAMES[i])) == 0)
                which = i;
        if (which < 0)
            return QUERY_UNKNOWN;
        if (seen[which])
            return QUERY_REPEATED;
        if (eq == SIZE_MAX)
            return QUERY_MALFORMED;
        lens[which] = 0;
        for (k = eq + 1; k < stop; k++) {
            if (q[k] == '%') {
                if (k + 2 >= stop || hexval(q[k + 1]) < 0 || hexval(q[k + 2]) < 0)
                    return QUERY_MALFORMED;
                vals[which][lens[which]++] = (char)(hexval(q[k + 1]) * 16 + hexval(q[k + 2]));
                k += 2;
            } else {
                vals[which][lens[which]++] = q[k] == '+' ? ' ' : q[k];
            }
        }
        seen[which] = true;
        start = stop + 1;
    }
    return QUERY_OK;
}

static void check_query(const char *q, size_t len)
{
    static char vals[NNAMES][4096];
    size_t lens[NNAMES] = {0};
    bool seen[NNAMES] = {false};
    struct query_param p[NNAMES];
    char *buf = malloc(len + NNAMES);
    int r, want;

    if (buf == NULL || len > 4000)
        goto out;
    for (int i = 0; i < NNAMES; i++)
        p[i] = (struct query_param){.name = NAMES[i]};
    r = query_parse(q, len, p, NNAMES, buf, len + NNAMES);
    want = oracle(q, len, vals, lens, seen);
    FUZZ_CHECK(r == want);
    if (r == QUERY_OK) {
        for (int i = 0; i < NNAMES; i++) {
            FUZZ_CHECK(p[i].seen == seen[i]);
            if (!seen[i])
                continue;
            FUZZ_CHECK(p[i].len == lens[i] && memcmp(p[i].value, vals[i], lens[i]) == 0 && p[i].value[p[i].len] == '\0');
            FUZZ_CHECK(p[i].value >= buf && p[i].value + p[i].len < buf + len + NNAMES);
        }
    }
    FUZZ_CHECK(strlen(query_strerror(r)) > 0);
out:
    free(buf);
}

static void check_bodies(int which, const char *body, size_t len)
{
    char msg[VALIDATE_MSG_MAX];
    struct account_create_req c;
    struct account_patch_req p;
    struct issue_req i;
    int r;

    msg[0] = '\0';
    if (which == 1) {
        if ((r = validate_account_create(body, len, &c, msg, sizeof(msg))) == 0) {
            FUZZ_CHECK(validate_name(c.name, strlen(c.name), msg, sizeof(msg)) == 0);
            FUZZ_CHECK(c.external_id[0] == '\0' ||
                       validate_external_id(c.external_id, strlen(c.external_id), msg, sizeof(msg)) == 0);
            FUZZ_CHECK(c.max_keys <= ACCOUNT_MAX_KEYS_MAX);
        }
    } else if (which == 2) {
        if ((r = validate_account_patch(body, len, &p, msg, sizeof(msg))) == 0) {
            FUZZ_CHECK(p.has_name || p.has_status || p.has_max_keys);
            FUZZ_CHECK(!p.has_name || validate_name(p.name, strlen(p.name), msg, sizeof(msg)) == 0);
            FUZZ_CHECK(p.max_keys <= ACCOUNT_MAX_KEYS_MAX);
        }
    } else {
        if ((r = validate_issue(body, len, &i, msg, sizeof(msg))) == 0) {
            FUZZ_CHECK(validate_name(i.key.name, strlen(i.key.name), msg, sizeof(msg)) == 0);
            FUZZ_CHECK(!i.make_primary || i.key.type == KEY_TYPE_PRODUCTION);
        }
    }
    FUZZ_CHECK(r == 0 || r == AK_ERR_JSON || r == AK_ERR_INVALID);
    FUZZ_CHECK(r == 0 || (msg[0] != '\0' && strchr(msg, '\n') == NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;

    if (size == 0)
        return 0;
    text = fuzz_dup(data + 1, size - 1);
    if ((data[0] & 3) == 0)
        check_query(text, size - 1);
    else
        check_bodies(data[0] & 3, text, size - 1);
    free(text);
    return 0;
}
