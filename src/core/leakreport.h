/*
 * leakreport: GitHub's secret-scanning partner program, the pure part.
 * GitHub finds tokens in public code and POSTs them here as a JSON array,
 * signed (ECDSA P-256, SHA-256) with one of the keys it publishes; we answer
 * with a label for each token. This module checks the signature against the
 * operator's copy of GitHub's key document, parses the report and writes the
 * answer.
 *
 * Everything here may come from a stranger (the body and both headers reach
 * us before any check) or from a file an operator downloaded: inputs are
 * pointers and lengths, every size is bounded, and nothing crashes on any
 * bytes. Tokens are secrets: they are wiped before their memory is freed.
 * No I/O other than leak_keyring_load's one file, no logging, no store.
 */
#ifndef APIKEYD_CORE_LEAKREPORT_H
#define APIKEYD_CORE_LEAKREPORT_H

#include <stdbool.h>
#include <stddef.h>

#define LEAK_REPORT_MAX_TOKENS 1000     /* GitHub sends at most 1,000 per request */
#define LEAK_REPORT_BODY_MAX (1u << 20) /* bytes: the server's limit for any body */
#define LEAK_TOKEN_MAX 256              /* longest token that can be ours (longer: kept, but unmatchable) */
#define LEAK_FIELD_MAX 2048             /* longest url/source/type kept; also the longest token accepted at all */
#define LEAK_KEYRING_MAX 64             /* keys in one document */
#define LEAK_KEYRING_DOC_MAX (1u << 20) /* bytes in one key document */
#define LEAK_KEY_ID_MAX 128             /* bytes in a key_identifier (GitHub's are 64 hex digits) */
#define LEAK_MSG_MAX 160                /* enough for any message written to `err` / `msg` */

struct leak_keyring; /* opaque: the public keys, by identifier */

/*
 * Parses a key document (JSON text, `len` bytes, at most
 * LEAK_KEYRING_DOC_MAX): {"public_keys": [{"key_identifier": "...", "key":
 * "-----BEGIN PUBLIC KEY-----...", "is_current": ...}, ...]}, 1 to
 * LEAK_KEYRING_MAX keys, identifiers of printable ASCII (1 to
 * LEAK_KEY_ID_MAX bytes), all different. Every key counts, current or not:
 * GitHub may still sign with a key it is retiring. Other members are ignored.
 * A key that is not a P-256 EC public key makes the whole document invalid:
 * a partial ring would fail later, in a request, for no visible reason.
 * Returns 0 and a new ring in *ret (free with leak_keyring_free), or
 * AK_ERR_INVALID (AK_ERR_NOMEM) with one line in `err`.
 */
int leak_keyring_parse(const char *json, size_t len, struct leak_keyring **ret, char *err, size_t errlen);

/* Reads and parses the file at `path` (at most LEAK_KEYRING_DOC_MAX bytes). AK_ERR_IO / AK_ERR_INVALID with one line in `err`. */
int leak_keyring_load(const char *path, struct leak_keyring **ret, char *err, size_t errlen);

void leak_keyring_free(struct leak_keyring *kr); /* accepts NULL */
size_t leak_keyring_size(const struct leak_keyring *kr);

/*
 * Verifies `sig_b64` (base64 of a DER ECDSA signature, the
 * Github-Public-Key-Signature header value, `siglen` bytes; surrounding
 * white space tolerated) over `body` (`len` bytes, exactly as received) with
 * the key named `key_id` (`idlen` bytes, the Github-Public-Key-Identifier
 * header, exact match). Returns 0 if valid; AK_ERR_SIGNATURE for anything
 * else (unknown id, bad base64, bad DER, wrong signature, NULL or empty
 * inputs). Never crashes on any bytes. Safe to call from several threads on
 * one ring.
 */
int leak_keyring_verify(const struct leak_keyring *kr, const char *key_id, size_t idlen, const char *sig_b64, size_t siglen,
                        const void *body, size_t len);

struct leak_token {
    char *token; /* NUL-terminated; as sent */
    size_t token_len;
    char *type;   /* "" when absent or null */
    char *url;    /* "" when absent or null */
    char *source; /* "" when absent or null */
};

struct leak_report {
    size_t n;
    struct leak_token *v;
};

/*
 * Parses a report body (at most LEAK_REPORT_BODY_MAX bytes): a JSON array
 * (0..LEAK_REPORT_MAX_TOKENS) of objects with a string `token` (required,
 * 1..LEAK_FIELD_MAX bytes; one longer than LEAK_TOKEN_MAX is kept so that
 * it can be answered, but leak_token_matchable says it cannot be ours) and
 * optional string-or-null `type`, `url`, `source` (each cut to at most
 * LEAK_FIELD_MAX bytes, on a character boundary; unknown members ignored:
 * GitHub may add fields). All strings are valid UTF-8 without NUL.
 * Returns 0 and fills *ret (free with leak_report_free); AK_ERR_JSON (not
 * JSON, nesting deeper than 32) or AK_ERR_INVALID (too large, not an array,
 * too many, a member of the wrong type, a token missing, empty or too long,
 * a string with a NUL byte) with a one-line reason in `msg`; AK_ERR_NOMEM.
 * *ret is untouched on error.
 */
int leak_report_parse(const char *body, size_t len, struct leak_report *ret, char *msg, size_t msglen);

/* Whether `t` could be one of our tokens at all: not longer than LEAK_TOKEN_MAX. Others are false positives. */
bool leak_token_matchable(const struct leak_token *t);

/* Frees the report, wiping every token with OPENSSL_cleanse first (tokens are secrets); accepts an empty one, leaves it empty. */
void leak_report_free(struct leak_report *r);

enum leak_label { LEAK_FALSE_POSITIVE, LEAK_TRUE_POSITIVE };

/*
 * The answer in GitHub's format, [{"token_raw": ..., "token_type": ...,
 * "label": "true_positive"|"false_positive"}, ...], one entry per token in
 * report order (`labels` has r->n entries), as malloc'd, NUL-terminated
 * JSON text of *ret_len bytes. The caller wipes it with OPENSSL_cleanse and
 * frees it: it holds the tokens. The report's strings must be valid UTF-8,
 * as leak_report_parse leaves them. Returns 0, or AK_ERR_NOMEM.
 */
int leak_report_answer(const struct leak_report *r, const enum leak_label *labels, char **ret, size_t *ret_len);

#endif
