/*
 * validate: turns an untrusted request body into a checked request, or into
 * a precise reason why not. Pure functions: no I/O, no logging, no state.
 */
#ifndef APIKEYD_CORE_VALIDATE_H
#define APIKEYD_CORE_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/key.h"

#define VALIDATE_BODY_MAX (64 * 1024)
#define VALIDATE_DEPTH_MAX 32
#define VALIDATE_MSG_MAX 160

struct create_req {
    char name[KEY_NAME_MAX_BYTES + 1];
    enum key_type type;
};

struct patch_req {
    bool has_name, has_active, has_primary;
    char name[KEY_NAME_MAX_BYTES + 1];
    bool active, primary;
};

/*
 * Returns 0 if `s` (`len` bytes of valid UTF-8) is an acceptable key name:
 * strict UTF-8, 1 to KEY_NAME_MAX_CHARS code points, not only white space
 * (Unicode's), no control characters. Otherwise AK_ERR_INVALID with a reason in `msg`.
 */
int validate_name(const char *s, size_t len, char *msg, size_t msglen);

/*
 * Returns 0 if the JSON text nests arrays and objects at most `max` deep,
 * AK_ERR_JSON otherwise. Runs before the parser so that no input can make it
 * recurse deeply.
 */
int validate_json_depth(const char *body, size_t len, int max);

/*
 * Parses a create body ({"name", "key_type"}). Returns 0 and fills `ret`, or
 * AK_ERR_JSON (not parseable JSON) / AK_ERR_INVALID (breaks a rule), with a
 * one-line reason in `msg`.
 */
int validate_create(const char *body, size_t len, struct create_req *ret, char *msg, size_t msglen);

/* Same for an update body ({"name", "is_active", "is_primary"}, at least one). */
int validate_patch(const char *body, size_t len, struct patch_req *ret, char *msg, size_t msglen);

#endif
