/*
 * audit: the events that record every change, who made it and from where.
 *
 * An event is written by the store in the same transaction as the change
 * it records (txn.c), so that neither exists without the other. Events
 * never hold a key, a digest or a secret: a key appears by id and display
 * prefix only. This module names the closed lists (actors, actions,
 * targets) and turns two versions of a record into the `changes` object.
 */
#ifndef APIKEYD_CORE_AUDIT_H
#define APIKEYD_CORE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/account.h"
#include "core/key.h"

#define AUDIT_IP_MAX 63          /* an address in text (an IPv6 one takes 45) */
#define AUDIT_REQUEST_ID_MAX 128 /* the longest request id a client may give */
#define AUDIT_PREFIX_MAX KEYFMT_ADMIN_PREFIX_LEN
#define AUDIT_NAME_MAX 32 /* the longest action, actor or target name, with room */

enum actor_type { ACTOR_KEY, ACTOR_ADMIN_TOKEN, ACTOR_CLI, ACTOR_SYSTEM };

enum audit_action {
    AUDIT_KEY_CREATED,
    AUDIT_KEY_UPDATED,
    AUDIT_KEY_DELETED,
    AUDIT_KEY_ROTATED,
    AUDIT_KEY_LEAKED,
    AUDIT_ACCOUNT_CREATED,
    AUDIT_ACCOUNT_UPDATED,
    AUDIT_ACCOUNT_SUSPENDED,
    AUDIT_ACCOUNT_REACTIVATED,
    AUDIT_ACCOUNT_DELETED,
    AUDIT_TOKEN_CREATED,
    AUDIT_TOKEN_REVOKED,
    AUDIT_ACTION_COUNT
};

enum audit_target { TARGET_KEY, TARGET_ACCOUNT, TARGET_ADMIN_TOKEN };

/* Who made a change, and from where: handed down with every write. */
struct audit_origin {
    enum actor_type actor;
    int64_t actor_id;                          /* 0: none (cli, system) */
    char actor_prefix[AUDIT_PREFIX_MAX + 1];   /* "" when none */
    char client_ip[AUDIT_IP_MAX + 1];          /* "" when none */
    char request_id[AUDIT_REQUEST_ID_MAX + 1]; /* "" when none */
    const char *details;                       /* JSON object text for the event's `details`, or NULL */
};

/* One event, as the store writes and reads it: names as text, so that rows read back never fail to map. */
struct audit_event {
    int64_t id; /* set by the store */
    int64_t at;
    int64_t account_id; /* 0: none (an admin token's event) */
    char actor_type[AUDIT_NAME_MAX + 1];
    int64_t actor_id; /* 0: none */
    char actor_prefix[AUDIT_PREFIX_MAX + 1];
    char action[AUDIT_NAME_MAX + 1];
    char target_type[AUDIT_NAME_MAX + 1];
    int64_t target_id;
    char *changes; /* JSON object text, or NULL; owned by whoever filled the event */
    char *details; /* JSON object text (why an automatic change was made, a leak report's source), or NULL; likewise */
    char client_ip[AUDIT_IP_MAX + 1];
    char request_id[AUDIT_REQUEST_ID_MAX + 1];
};

/* A CLI origin (actor "cli", no address, no request). */
void audit_origin_cli(struct audit_origin *ret);

/* "key.created", ... Never NULL for a valid action. */
const char *audit_action_name(enum audit_action a);

/* Parses an action name (exact, `len` bytes). Returns 0 or AK_ERR_INVALID. */
int audit_action_parse(const char *s, size_t len, enum audit_action *ret);

/*
 * Starts event `action` on `target` `target_id` of `account_id` (0: none)
 * by `origin` at `at`, with no changes yet.
 */
void audit_event_init(struct audit_event *ev, const struct audit_origin *origin, int64_t at, enum audit_action action,
                      int64_t account_id, enum audit_target target, int64_t target_id);

/*
 * The changes between two versions of a record as a JSON object text, into
 * *ret (malloc'd, caller frees), {"field": {"old": v, "new": v}, ...}, for
 * each field that differs: `old` NULL for a creation, `new` NULL for a
 * deletion. *ret is NULL when nothing changed. Returns 0, or AK_ERR_NOMEM
 * (never a partial set: a change must not be recorded short of a field).
 */
int audit_key_changes(const struct key_rec *old, const struct key_rec *new, char **ret);
int audit_account_changes(const struct account_rec *old, const struct account_rec *new, char **ret);
int audit_token_changes(const struct token_rec *old, const struct token_rec *new, char **ret);

#endif
