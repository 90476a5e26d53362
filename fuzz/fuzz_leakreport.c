/*
 * fuzz_leakreport: a secret-scanning report body through leak_report_parse,
 * and an accepted report through leak_report_answer.
 *
 * A refused body has an error of the two kinds and a one-line message. An
 * accepted one has at most LEAK_REPORT_MAX_TOKENS tokens of 1 to
 * LEAK_FIELD_MAX bytes and fields of at most LEAK_FIELD_MAX, all valid
 * UTF-8 without NUL, each token the same as the body's (read again with
 * jansson). The answer, with alternating labels, is JSON: an array of one
 * entry per token, in order, with the token, its type and its label.
 */
#include <jansson.h>
#include <openssl/crypto.h>

#include "core/error.h"
#include "core/leakreport.h"
#include "fuzz.h"

static void check_string(const char *s, size_t len, size_t max)
{
    FUZZ_CHECK(s != NULL && len <= max && strlen(s) == len);
    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)s, len));
}

static void check_answer(const struct leak_report *rep)
{
    enum leak_label *labels = malloc((rep->n + 1) * sizeof(*labels));
    json_t *root, *e;
    char *text = NULL;
    size_t len = 0, i;

    if (labels == NULL)
        fuzz_fail("malloc", __FILE__, __LINE__);
    for (i = 0; i < rep->n; i++)
        labels[i] = i % 2 == 0 ? LEAK_TRUE_POSITIVE : LEAK_FALSE_POSITIVE;
    FUZZ_CHECK(leak_report_answer(rep, labels, &text, &len) == 0);
    FUZZ_CHECK(text != NULL && strlen(text) == len);
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_is_array(root) && json_array_size(root) == rep->n);
    json_array_foreach(root, i, e)
    {
        json_t *raw = json_object_get(e, "token_raw"), *type = json_object_get(e, "token_type");
        const char *label = json_string_value(json_object_get(e, "label"));

        FUZZ_CHECK(json_object_size(e) == 3 && json_is_string(raw) && json_is_string(type) && label != NULL);
        FUZZ_CHECK(json_string_length(raw) == rep->v[i].token_len &&
                   memcmp(json_string_value(raw), rep->v[i].token, rep->v[i].token_len) == 0);
        FUZZ_CHECK(strcmp(json_string_value(type), rep->v[i].type) == 0);
        FUZZ_CHECK(strcmp(label, i % 2 == 0 ? "true_positive" : "false_positive") == 0);
    }
    json_decref(root);
    OPENSSL_cleanse(text, len);
    free(text);
    free(labels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct leak_report rep = {0, NULL};
    char msg[LEAK_MSG_MAX];
    char *text = fuzz_dup(data, size);
    json_t *again;
    int r;

    msg[0] = '\0';
    r = leak_report_parse(text, size, &rep, msg, sizeof(msg));
    FUZZ_CHECK(r == 0 || r == AK_ERR_JSON || r == AK_ERR_INVALID);
    if (r != 0) {
        fuzz_check_msg(msg, sizeof(msg));
        FUZZ_CHECK(rep.n == 0 && rep.v == NULL);
        goto out;
    }
    FUZZ_CHECK(rep.n <= LEAK_REPORT_MAX_TOKENS && (rep.n == 0) == (rep.v == NULL));
    /* The body is valid JSON then: the tokens are the array's, one for one. */
    again = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, NULL);
    FUZZ_CHECK(json_is_array(again) && json_array_size(again) == rep.n);
    for (size_t i = 0; i < rep.n; i++) {
        const struct leak_token *t = &rep.v[i];
        json_t *tok = json_object_get(json_array_get(again, i), "token");

        FUZZ_CHECK(t->token_len >= 1);
        check_string(t->token, t->token_len, LEAK_FIELD_MAX);
        check_string(t->type, strlen(t->type), LEAK_FIELD_MAX);
        check_string(t->url, strlen(t->url), LEAK_FIELD_MAX);
        check_string(t->source, strlen(t->source), LEAK_FIELD_MAX);
        FUZZ_CHECK(leak_token_matchable(t) == (t->token_len <= LEAK_TOKEN_MAX));
        FUZZ_CHECK(json_string_length(tok) == t->token_len && memcmp(json_string_value(tok), t->token, t->token_len) == 0);
    }
    json_decref(again);
    check_answer(&rep);
out:
    leak_report_free(&rep);
    free(text);
    return 0;
}
