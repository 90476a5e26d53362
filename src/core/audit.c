/*
 * audit: names and change sets of audit events (jansson builds the JSON).
 */
#include "core/audit.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

static const char *const ACTIONS[AUDIT_ACTION_COUNT] = {
    [AUDIT_KEY_CREATED] = "key.created",
    [AUDIT_KEY_UPDATED] = "key.updated",
    [AUDIT_KEY_DELETED] = "key.deleted",
    [AUDIT_ACCOUNT_CREATED] = "account.created",
    [AUDIT_ACCOUNT_UPDATED] = "account.updated",
    [AUDIT_ACCOUNT_SUSPENDED] = "account.suspended",
    [AUDIT_ACCOUNT_REACTIVATED] = "account.reactivated",
    [AUDIT_ACCOUNT_DELETED] = "account.deleted",
    [AUDIT_TOKEN_CREATED] = "admin_token.created",
    [AUDIT_TOKEN_REVOKED] = "admin_token.revoked",
};

static const char *const ACTORS[] = {
    [ACTOR_KEY] = "key",
    [ACTOR_ADMIN_TOKEN] = "admin_token",
    [ACTOR_CLI] = "cli",
    [ACTOR_SYSTEM] = "system",
};

static const char *const TARGETS[] = {
    [TARGET_KEY] = "key",
    [TARGET_ACCOUNT] = "account",
    [TARGET_ADMIN_TOKEN] = "admin_token",
};

void audit_origin_cli(struct audit_origin *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->actor = ACTOR_CLI;
}

const char *audit_action_name(enum audit_action a)
{
    return (unsigned)a < AUDIT_ACTION_COUNT ? ACTIONS[a] : "unknown";
}

int audit_action_parse(const char *s, size_t len, enum audit_action *ret)
{
    for (int a = 0; a < AUDIT_ACTION_COUNT; a++) {
        if (strlen(ACTIONS[a]) == len && memcmp(ACTIONS[a], s, len) == 0) {
            *ret = (enum audit_action)a;
            return 0;
        }
    }
    return AK_ERR_INVALID;
}

void audit_event_init(struct audit_event *ev, const struct audit_origin *origin, int64_t at, enum audit_action action,
                      int64_t account_id, enum audit_target target, int64_t target_id)
{
    memset(ev, 0, sizeof(*ev));
    ev->at = at;
    ev->account_id = account_id;
    snprintf(ev->actor_type, sizeof(ev->actor_type), "%s", ACTORS[origin->actor]);
    ev->actor_id = origin->actor_id;
    snprintf(ev->actor_prefix, sizeof(ev->actor_prefix), "%s", origin->actor_prefix);
    snprintf(ev->action, sizeof(ev->action), "%s", audit_action_name(action));
    snprintf(ev->target_type, sizeof(ev->target_type), "%s", TARGETS[target]);
    ev->target_id = target_id;
    snprintf(ev->client_ip, sizeof(ev->client_ip), "%s", origin->client_ip);
    snprintf(ev->request_id, sizeof(ev->request_id), "%s", origin->request_id);
}

/* Adds {"old": o, "new": n} under `field` when the two differ (each may be NULL: JSON null). Steals o and n. */
static void change(json_t *set, const char *field, json_t *o, json_t *n)
{
    json_t *pair;

    if (o == NULL)
        o = json_null();
    if (n == NULL)
        n = json_null();
    if (json_equal(o, n) || (pair = json_pack("{s:o,s:o}", "old", o, "new", n)) == NULL) {
        json_decref(o);
        json_decref(n);
        return;
    }
    json_object_set_new(set, field, pair);
}

/* The change set as text, or NULL when empty. Frees `set`. */
static char *finish(json_t *set)
{
    char *text = json_object_size(set) != 0 ? json_dumps(set, JSON_COMPACT) : NULL;

    json_decref(set);
    return text;
}

/* A field of a record that may be absent (NULL record): JSON null. */
#define STR(r, f) ((r) != NULL ? json_string((r)->f) : NULL)
#define BOOL(r, f) ((r) != NULL ? json_boolean((r)->f) : NULL)

char *audit_key_changes(const struct key_rec *old, const struct key_rec *new)
{
    json_t *set = json_object();

    if (set == NULL)
        return NULL;
    change(set, "name", STR(old, name), STR(new, name));
    change(set, "key_type", old != NULL ? json_string(key_type_name(old->type)) : NULL,
           new != NULL ? json_string(key_type_name(new->type)) : NULL);
    change(set, "is_active", BOOL(old, active), BOOL(new, active));
    change(set, "is_primary", BOOL(old, primary), BOOL(new, primary));
    return finish(set);
}

static json_t *external_id(const struct account_rec *a)
{
    return a != NULL && a->external_id[0] != '\0' ? json_string(a->external_id) : NULL;
}

static json_t *max_keys(const struct account_rec *a)
{
    return a != NULL && a->max_keys != 0 ? json_integer(a->max_keys) : NULL;
}

static json_t *status(const struct account_rec *a)
{
    return a != NULL ? json_string(a->suspended ? "suspended" : "active") : NULL;
}

char *audit_account_changes(const struct account_rec *old, const struct account_rec *new)
{
    json_t *set = json_object();

    if (set == NULL)
        return NULL;
    change(set, "name", STR(old, name), STR(new, name));
    change(set, "external_id", external_id(old), external_id(new));
    change(set, "status", status(old), status(new));
    change(set, "max_keys", max_keys(old), max_keys(new));
    return finish(set);
}

char *audit_token_changes(const struct token_rec *old, const struct token_rec *new)
{
    json_t *set = json_object();

    if (set == NULL)
        return NULL;
    change(set, "name", STR(old, name), STR(new, name));
    change(set, "prefix", STR(old, prefix), STR(new, prefix));
    return finish(set);
}
