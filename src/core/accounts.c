/*
 * accounts: accounts, operator-issued keys, the audit log and cursors, over
 * the store's writes (txn.c) and the catalog.
 */
#include "core/accounts.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/keys_impl.h"
#include "core/policy.h"
#include "core/timefmt.h"
#include "store/store.h"

unsigned accounts_max_keys(const struct keys *k, const struct account_rec *rec)
{
    return rec->max_keys != 0 ? rec->max_keys : k->max_keys;
}

int accounts_create(struct keys *k, const struct audit_origin *origin, const struct account_create_req *req,
                    struct account_rec *ret, struct key_rec *ret_key, char *key, size_t keysz)
{
    struct key_rec *rec = calloc(1, sizeof(*rec));
    struct account_rec *acct = calloc(1, sizeof(*acct));
    int r = AK_ERR_NOMEM;

    if (rec == NULL || acct == NULL)
        goto out_free;
    strcpy(acct->name, req->name);
    strcpy(acct->external_id, req->external_id);
    acct->max_keys = req->max_keys;
    acct->created_at = timefmt_now();
    strcpy(rec->name, KEYS_PRIMARY_NAME);
    rec->type = KEY_TYPE_PRODUCTION;
    rec->created_at = acct->created_at;
    pthread_mutex_lock(&k->write_lock);
    /* A collision is a fresh key's digest already in use (here or, unseen yet, elsewhere), or a racing external_id: retry. */
    for (int attempt = 0; attempt < 4; attempt++) {
        if ((r = mint(k, KEY_TYPE_PRODUCTION, rec, key, keysz)) != 0)
            break;
        if ((r = store_account_create(k->store, origin, acct, rec)) != AK_ERR_COLLISION)
            break;
    }
    if (r == AK_ERR_EXISTS) {
        ret->id = acct->id;
        OPENSSL_cleanse(key, keysz);
    } else if ((r = settle(k, r, r == 0 ? catalog_put(k->cat, rec) : 0)) == 0) {
        *ret = *acct;
        *ret_key = *rec;
    } else {
        OPENSSL_cleanse(key, keysz);
    }
    pthread_mutex_unlock(&k->write_lock);
out_free:
    if (rec != NULL)
        OPENSSL_cleanse(rec->digest, sizeof(rec->digest));
    free(rec);
    free(acct);
    return r;
}

int accounts_get(struct keys *k, int64_t id, struct account_rec *ret)
{
    return k->store->ops->account_get(k->store, id, ret);
}

/* `%name%` with LIKE's own characters escaped: a substring match, whatever the name holds. Caller frees. */
static char *like_pattern(const char *name)
{
    size_t n = strlen(name);
    char *p = malloc(2 * n + 3), *o = p;

    if (p == NULL)
        return NULL;
    *o++ = '%';
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '%' || name[i] == '_' || name[i] == '\\')
            *o++ = '\\';
        *o++ = name[i];
    }
    *o++ = '%';
    *o = '\0';
    return p;
}

int accounts_list(struct keys *k, int64_t after, unsigned limit, const char *external_id, const char *name, accounts_account_cb cb,
                  void *arg)
{
    struct account_query q = {.after = after, .limit = limit, .external_id = external_id};
    char *pattern = NULL;
    int r;

    if (name != NULL && (q.name_like = pattern = like_pattern(name)) == NULL) /* the store prefers external_id */
        return AK_ERR_NOMEM;
    r = k->store->ops->account_list(k->store, &q, cb, arg);
    free(pattern);
    return r;
}

/* The rules of an account change, run inside its transaction on the current row. */
static int apply_account_patch(void *arg, const struct account_rec *cur, struct account_rec *next)
{
    const struct account_patch_req *req = arg;

    *next = *cur;
    if (req->has_name)
        strcpy(next->name, req->name);
    if (req->has_status)
        next->suspended = req->suspended;
    if (req->has_max_keys) {
        /* An explicit cap below the keys the account has would strand them: refused (null, the default, always applies). */
        if (req->max_keys != 0 && req->max_keys < cur->key_count)
            return AK_ERR_BELOW_COUNT;
        next->max_keys = req->max_keys;
    }
    return 0;
}

int accounts_update(struct keys *k, const struct audit_origin *origin, int64_t id, const struct account_patch_req *req,
                    struct account_rec *ret)
{
    int r, cr = 0;

    pthread_mutex_lock(&k->write_lock);
    r = store_account_update(k->store, origin, id, apply_account_patch, (void *)req, ret);
    if (r == 0)
        cr = catalog_suspend(k->cat, id, ret->suspended);
    r = settle(k, r, cr);
    pthread_mutex_unlock(&k->write_lock);
    return r;
}

int accounts_delete(struct keys *k, const struct audit_origin *origin, int64_t id)
{
    int64_t *ids = NULL;
    size_t n = 0;
    int r, cr = 0;

    pthread_mutex_lock(&k->write_lock);
    r = store_account_delete(k->store, origin, id, &ids, &n);
    for (size_t i = 0; r == 0 && i < n; i++)
        if (catalog_remove(k->cat, ids[i]) != 0)
            cr = AK_ERR_NOMEM;
    if (r == 0 && cr == 0)
        cr = catalog_suspend(k->cat, id, false);
    r = settle(k, r, cr);
    pthread_mutex_unlock(&k->write_lock);
    free(ids);
    return r;
}

int accounts_issue_key(struct keys *k, const struct audit_origin *origin, int64_t id, const struct issue_req *req,
                       struct key_rec *ret, char *key, size_t keysz)
{
    struct key_rec *rec = calloc(1, sizeof(*rec)), *demoted = calloc(1, sizeof(*demoted));
    int r = AK_ERR_NOMEM;

    if (rec == NULL || demoted == NULL)
        goto out_free;
    rec->account_id = id;
    strcpy(rec->name, req->key.name);
    rec->type = req->key.type;
    rec->active = true;
    rec->primary = req->make_primary;
    rec->created_at = timefmt_now();
    rec->expires_at = req->key.expires_at;
    policy_apply(NULL, NULL, &req->key.policy, true, rec->created_at, rec); /* the operator: never refused */
    if (rec->primary && rec->expires_at != 0) {
        r = AK_ERR_PRIMARY_INVALID; /* a primary never expires but through rotation */
        goto out_free;
    }
    pthread_mutex_lock(&k->write_lock);
    if ((r = mint(k, req->key.type, rec, key, keysz)) == 0) {
        r = store_key_insert(k->store, origin, rec, k->max_keys, demoted);
        r = settle(k, r, r == 0 ? apply_update(k, rec, demoted) : 0);
        if (r == 0)
            *ret = *rec;
        else
            OPENSSL_cleanse(key, keysz);
    }
    pthread_mutex_unlock(&k->write_lock);
out_free:
    if (rec != NULL)
        OPENSSL_cleanse(rec->digest, sizeof(rec->digest));
    free(rec);
    free(demoted);
    return r;
}

int accounts_events(struct keys *k, int64_t before, unsigned limit, int64_t account_id, const char *action, int64_t key_id,
                    accounts_event_cb cb, void *arg)
{
    struct event_query q = {.before = before, .limit = limit, .account_id = account_id, .action = action, .key_id = key_id};

    return k->store->ops->event_list(k->store, &q, cb, arg);
}

int accounts_prune_events(struct keys *k, unsigned retention_days, bool *ret_more)
{
    int64_t n = 0;
    int r = store_events_prune(k->store, timefmt_now() - (int64_t)retention_days * 86400, ACCOUNTS_PRUNE_BATCH, &n);

    *ret_more = r == 0 && n == ACCOUNTS_PRUNE_BATCH;
    return r;
}

/* The cursor's check: HMAC of the listing and position under the server's secret ("cursor" + NUL: never a key's input). */
static void cursor_mac(struct keys *k, const char *listing, int64_t pos, char out[17])
{
    static const char HEX[] = "0123456789abcdef";
    uint8_t mac[DIGEST_LEN];
    char *msg;
    int n = snprintf(NULL, 0, "cursor%c%s%c%" PRId64, 0, listing, 0, pos);

    memset(out, '0', 16);
    out[16] = '\0';
    if (n < 0 || (msg = malloc((size_t)n + 1)) == NULL)
        return;
    snprintf(msg, (size_t)n + 1, "cursor%c%s%c%" PRId64, 0, listing, 0, pos);
    if (digest_compute(&k->secret, msg, (size_t)n, mac) == 0)
        for (int i = 0; i < 8; i++) {
            out[2 * i] = HEX[mac[i] >> 4];
            out[2 * i + 1] = HEX[mac[i] & 15];
        }
    free(msg);
}

void accounts_listing_name(const char *external_id, const char *name, char *out)
{
    snprintf(out, ACCOUNTS_LISTING_MAX, "accounts\x1f%s\x1f%s", external_id != NULL ? external_id : "", name != NULL ? name : "");
}

void accounts_events_listing_name(bool own, int64_t account_id, const char *action, int64_t key_id, char *out)
{
    snprintf(out, ACCOUNTS_LISTING_MAX, "%s\x1f%" PRId64 "\x1f%s\x1f%" PRId64, own ? "audit" : "admin-audit", account_id,
             action != NULL ? action : "", key_id);
}

void accounts_cursor_encode(struct keys *k, const char *listing, int64_t pos, char *out)
{
    char mac[17];

    cursor_mac(k, listing, pos, mac);
    snprintf(out, CURSOR_MAX + 1, "%" PRId64 ".%s", pos, mac);
}

int accounts_cursor_decode(struct keys *k, const char *listing, const char *s, size_t len, int64_t *ret_pos)
{
    char mac[17];
    int64_t pos = 0;
    size_t i = 0;

    /* "<position>.<16 hex>": a canonical decimal in 1..INT64_MAX, a dot, the check. */
    if (len > CURSOR_MAX || len < 18 || s[0] < '1' || s[0] > '9')
        return AK_ERR_INVALID;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (pos > (INT64_MAX - (s[i] - '0')) / 10)
            return AK_ERR_INVALID;
        pos = pos * 10 + (s[i] - '0');
    }
    if (i + 17 != len || s[i] != '.')
        return AK_ERR_INVALID;
    cursor_mac(k, listing, pos, mac);
    if (CRYPTO_memcmp(mac, s + i + 1, 16) != 0)
        return AK_ERR_INVALID;
    *ret_pos = pos;
    return 0;
}
