/*
 * audit: names and change sets of audit events (jansson builds the JSON).
 */
#include "core/audit.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/timefmt.h"

static const char *const ACTIONS[AUDIT_ACTION_COUNT] = {
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
    ev->details = (char *)origin->details; /* borrowed: the event is written before the origin goes */
}

/* A change set being built; `failed` once an allocation failed (the set is then worthless). */
struct changes {
    json_t *set;
    bool failed;
};

/*
 * Adds {"old": o, "new": n} under `field` when the two differ. Takes o and
 * n; NULL stands for JSON null when `absent` says the record was absent,
 * else it is an allocation that failed.
 */
static void change(struct changes *c, const char *field, json_t *o, bool o_absent, json_t *n, bool n_absent)
{
    json_t *pair;

    if ((o == NULL && !o_absent) || (n == NULL && !n_absent))
        c->failed = true;
    if (o == NULL)
        o = json_null();
    if (n == NULL)
        n = json_null();
    if (c->failed || json_equal(o, n)) {
        json_decref(o);
        json_decref(n);
        return;
    }
    if ((pair = json_pack("{s:o,s:o}", "old", o, "new", n)) == NULL || json_object_set_new(c->set, field, pair) != 0)
        c->failed = true;
}

/* The change set as text into *ret (NULL when nothing changed). Frees the set. */
static int finish(struct changes *c, char **ret)
{
    json_t *back = NULL;
    int r = 0;

    *ret = NULL;
    if (c->failed || (json_object_size(c->set) != 0 && (*ret = json_dumps(c->set, JSON_COMPACT)) == NULL))
        r = AK_ERR_NOMEM;
    /*
     * jansson 2.14's encoder can drop a byte when an allocation fails inside
     * it and still return text (seen: `"new:null`): what goes into the audit
     * log is read back and must be the set itself.
     */
    if (*ret != NULL && ((back = json_loads(*ret, JSON_REJECT_DUPLICATES, NULL)) == NULL || !json_equal(back, c->set))) {
        free(*ret);
        *ret = NULL;
        r = AK_ERR_NOMEM;
    }
    json_decref(back);
    json_decref(c->set);
    return r;
}

static int start_changes(struct changes *c, char **ret)
{
    *ret = NULL;
    c->failed = false;
    return (c->set = json_object()) == NULL ? AK_ERR_NOMEM : 0;
}

/* A field of a record that may be absent (NULL record: JSON null, not a failure). */
#define FIELD(c, name, old, new, make)                                                                                             \
    change((c), (name), (old) != NULL ? make(old) : NULL, (old) == NULL, (new) != NULL ? make(new) : NULL, (new) == NULL)

#define KEY_NAME(r) json_string((r)->name)
#define KEY_TYPE(r) json_string(key_type_name((r)->type))
#define KEY_ACTIVE(r) json_boolean((r)->active)
#define KEY_PRIMARY(r) json_boolean((r)->primary)
#define KEY_EXPIRES(r) time_or_null((r)->expires_at)
#define KEY_ROTATED_FROM(r) id_or_null((r)->rotated_from)
#define KEY_ROTATED_TO(r) id_or_null((r)->rotated_to)
#define KEY_LEAKED(r) time_or_null((r)->leaked_at)

/* A time as the API shows it, 0 as null (json_null never fails: NULL means out of memory). */
static json_t *time_or_null(int64_t t)
{
    char buf[TIMEFMT_LEN + 1];

    if (t == 0)
        return json_null();
    return timefmt_format(t, buf, sizeof(buf)) == 0 ? json_string(buf) : json_null();
}

static json_t *id_or_null(int64_t id)
{
    return id != 0 ? json_integer(id) : json_null();
}

/* A canonical list (names separated by `sep`) as a JSON array of strings, or null when absent. */
static json_t *list_or_null(bool has, const char *text, char sep)
{
    json_t *a;
    const char *p = text, *e;

    if (!has)
        return json_null();
    if ((a = json_array()) == NULL)
        return NULL;
    while (*p != '\0') {
        e = strchr(p, sep);
        if (e == NULL)
            e = p + strlen(p);
        if (json_array_append_new(a, json_stringn(p, (size_t)(e - p))) != 0) {
            json_decref(a);
            return NULL;
        }
        p = *e != '\0' ? e + 1 : e;
    }
    return a;
}

#define KEY_SCOPES(r) list_or_null((r)->has_scopes, (r)->scopes, ' ')
#define KEY_ALLOWED_IPS(r) list_or_null((r)->has_ips, (r)->allowed_ips, ',')
#define KEY_RATE_LIMIT(r)                                                                                                          \
    ((r)->rate_limit != 0 ? json_pack("{s:I,s:i}", "limit", (json_int_t)(r)->rate_limit, "window_seconds", (int)(r)->rate_window)  \
                          : json_null())

#define KEY_REMAINING(r) ((r)->has_quota ? json_integer((json_int_t)(r)->remaining) : json_null())
#define KEY_REFILL(r)                                                                                                              \
    ((r)->has_quota && (r)->refill_amount != 0 ? json_pack("{s:I,s:s}", "amount", (json_int_t)(r)->refill_amount, "interval",      \
                                                           refill_interval_name((enum refill_interval)(r)->refill_interval))       \
                                               : json_null())

int audit_key_changes(const struct key_rec *old, const struct key_rec *new, char **ret)
{
    struct changes c;

    if (start_changes(&c, ret) != 0)
        return AK_ERR_NOMEM;
    FIELD(&c, "name", old, new, KEY_NAME);
    FIELD(&c, "key_type", old, new, KEY_TYPE);
    FIELD(&c, "is_active", old, new, KEY_ACTIVE);
    FIELD(&c, "is_primary", old, new, KEY_PRIMARY);
    FIELD(&c, "expires_at", old, new, KEY_EXPIRES);
    FIELD(&c, "rotated_from", old, new, KEY_ROTATED_FROM);
    FIELD(&c, "rotated_to", old, new, KEY_ROTATED_TO);
    FIELD(&c, "leaked_at", old, new, KEY_LEAKED);
    FIELD(&c, "scopes", old, new, KEY_SCOPES);
    FIELD(&c, "allowed_ips", old, new, KEY_ALLOWED_IPS);
    FIELD(&c, "rate_limit", old, new, KEY_RATE_LIMIT);
    FIELD(&c, "remaining", old, new, KEY_REMAINING);
    FIELD(&c, "refill", old, new, KEY_REFILL);
    return finish(&c, ret);
}

/* Fields that may be unset in a present record: absent then means JSON null too. */
static void optional(struct changes *c, const char *field, const struct account_rec *old, const struct account_rec *new,
                     json_t *(*make)(const struct account_rec *), bool (*set)(const struct account_rec *))
{
    bool o_null = old == NULL || !set(old), n_null = new == NULL || !set(new);

    change(c, field, o_null ? NULL : make(old), o_null, n_null ? NULL : make(new), n_null);
}

static bool has_external_id(const struct account_rec *a)
{
    return a->external_id[0] != '\0';
}

static json_t *external_id(const struct account_rec *a)
{
    return json_string(a->external_id);
}

static bool has_max_keys(const struct account_rec *a)
{
    return a->max_keys != 0;
}

static json_t *max_keys(const struct account_rec *a)
{
    return json_integer(a->max_keys);
}

#define ACCOUNT_NAME(r) json_string((r)->name)
#define ACCOUNT_STATUS(r) json_string((r)->suspended ? "suspended" : "active")

int audit_account_changes(const struct account_rec *old, const struct account_rec *new, char **ret)
{
    struct changes c;

    if (start_changes(&c, ret) != 0)
        return AK_ERR_NOMEM;
    FIELD(&c, "name", old, new, ACCOUNT_NAME);
    optional(&c, "external_id", old, new, external_id, has_external_id);
    FIELD(&c, "status", old, new, ACCOUNT_STATUS);
    optional(&c, "max_keys", old, new, max_keys, has_max_keys);
    return finish(&c, ret);
}

#define TOKEN_NAME(r) json_string((r)->name)
#define TOKEN_PREFIX(r) json_string((r)->prefix)

int audit_token_changes(const struct token_rec *old, const struct token_rec *new, char **ret)
{
    struct changes c;

    if (start_changes(&c, ret) != 0)
        return AK_ERR_NOMEM;
    FIELD(&c, "name", old, new, TOKEN_NAME);
    FIELD(&c, "prefix", old, new, TOKEN_PREFIX);
    return finish(&c, ret);
}
