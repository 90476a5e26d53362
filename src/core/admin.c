/*
 * admin: admin tokens, over the store and a small list in memory.
 */
#include "core/admin.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/keys_impl.h"
#include "core/timefmt.h"
#include "store/store.h"

struct token_list {
    struct token_rec *v;
    size_t n, cap;
};

static int collect_token(void *arg, const struct token_rec *rec)
{
    struct token_list *l = arg;

    if (l->n == l->cap) {
        size_t cap = l->cap != 0 ? l->cap * 2 : 8;
        struct token_rec *nv = realloc(l->v, cap * sizeof(*nv));
        if (nv == NULL)
            return AK_ERR_NOMEM;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = *rec;
    return 0;
}

int admin_tokens_load(struct keys *k)
{
    struct token_list l = {0};
    struct token_rec *old;
    int r;

    if ((r = k->store->ops->token_load(k->store, collect_token, &l)) != 0) {
        free(l.v);
        return r;
    }
    pthread_mutex_lock(&k->tokens.lock);
    old = k->tokens.v;
    k->tokens.v = l.v;
    k->tokens.n = l.n;
    pthread_mutex_unlock(&k->tokens.lock);
    free(old);
    return 0;
}

/* Whether a token with `digest` is held (constant time in the digest), and its record. */
static bool find_token(struct keys *k, const uint8_t digest[DIGEST_LEN], struct token_rec *ret)
{
    bool found = false;

    pthread_mutex_lock(&k->tokens.lock);
    for (size_t i = 0; i < k->tokens.n && !found; i++) {
        if (CRYPTO_memcmp(k->tokens.v[i].digest, digest, DIGEST_LEN) == 0) {
            *ret = k->tokens.v[i];
            found = true;
        }
    }
    pthread_mutex_unlock(&k->tokens.lock);
    return found;
}

int admin_token_find(struct keys *k, const uint8_t digest[DIGEST_LEN], int64_t *ret_id)
{
    struct token_rec rec;
    bool found = find_token(k, digest, &rec);

    OPENSSL_cleanse(rec.digest, sizeof(rec.digest));
    if (!found)
        return AK_ERR_NOT_FOUND;
    *ret_id = rec.id;
    return 0;
}

int admin_authenticate(struct keys *k, const char *hdr, size_t len, struct audit_origin *ret)
{
    uint8_t digest[DIGEST_LEN];
    struct token_rec rec;
    enum key_type type;
    int r;

    /* An account's key is never an admin token (AK_ERR_KEY_FORMAT). */
    if ((r = credential_digest(k, hdr, len, true, AK_ERR_KEY_FORMAT, &type, digest)) != 0)
        return r;
    r = find_token(k, digest, &rec) ? 0 : AK_ERR_KEY_UNKNOWN;
    OPENSSL_cleanse(digest, sizeof(digest));
    if (r == 0) {
        ret->actor = ACTOR_ADMIN_TOKEN;
        ret->actor_id = rec.id;
        memcpy(ret->actor_prefix, rec.prefix, sizeof(rec.prefix));
    }
    OPENSSL_cleanse(&rec, sizeof(rec));
    return r;
}

int admin_token_create(struct keys *k, const struct audit_origin *origin, const char *name, struct token_rec *ret, char *ret_token,
                       size_t tokensz)
{
    struct token_rec rec = {.created_at = timefmt_now()};
    struct token_rec probe;
    int r = AK_ERR_COLLISION;

    if (strlen(name) > KEY_NAME_MAX_BYTES)
        return AK_ERR_ARG;
    strcpy(rec.name, name);
    pthread_mutex_lock(&k->write_lock);
    for (int attempt = 0; attempt < 4 && r == AK_ERR_COLLISION; attempt++) {
        if ((r = keyfmt_generate(k->brand, KEY_TYPE_ADMIN, ret_token, tokensz)) != 0)
            break;
        if ((r = digest_compute(&k->secret, ret_token, strlen(ret_token), rec.digest)) != 0)
            break;
        if (find_token(k, rec.digest, &probe)) {
            r = AK_ERR_COLLISION;
            continue;
        }
        memcpy(rec.prefix, ret_token, KEYFMT_ADMIN_PREFIX_LEN);
        rec.prefix[KEYFMT_ADMIN_PREFIX_LEN] = '\0';
        r = store_token_create(k->store, origin, &rec);
    }
    /* The list in memory follows the store; if it cannot, the next sync reloads it. */
    if (r == 0 || r == AK_ERR_OUTCOME_UNKNOWN) {
        int lr = admin_tokens_load(k);
        if (lr != 0)
            atomic_store(&k->reload_wanted, 1);
        if (r == 0 && lr != 0)
            r = AK_ERR_OUTCOME_UNKNOWN;
    }
    pthread_mutex_unlock(&k->write_lock);
    if (r == 0)
        *ret = rec;
    else
        OPENSSL_cleanse(ret_token, tokensz);
    OPENSSL_cleanse(rec.digest, sizeof(rec.digest));
    OPENSSL_cleanse(probe.digest, sizeof(probe.digest));
    return r;
}

int admin_token_revoke(struct keys *k, const struct audit_origin *origin, int64_t id)
{
    int r;

    pthread_mutex_lock(&k->write_lock);
    r = store_token_revoke(k->store, origin, id);
    /* Whatever the answer, the list must not keep a token the store may have dropped. */
    if (r != AK_ERR_UNAVAILABLE && admin_tokens_load(k) != 0) {
        atomic_store(&k->reload_wanted, 1);
        if (r == 0)
            r = AK_ERR_OUTCOME_UNKNOWN;
    }
    pthread_mutex_unlock(&k->write_lock);
    return r;
}

int admin_token_list(struct keys *k, admin_token_cb cb, void *arg)
{
    return k->store->ops->token_load(k->store, cb, arg);
}
