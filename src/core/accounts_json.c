/*
 * accounts_json: see accounts_json.h. Pages are collected one row past the
 * page: that row's presence is what makes a next cursor.
 */
#include "core/accounts_json.h"

#include <stdbool.h>

#include "core/accounts.h"
#include "core/error.h"
#include "core/timefmt.h"

static json_t *time_or_null(int64_t t)
{
    char buf[TIMEFMT_LEN + 1];

    return t > 0 && timefmt_format(t, buf, sizeof(buf)) == 0 ? json_string(buf) : json_null();
}

static json_t *text_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *id_or_null(int64_t id)
{
    return id != 0 ? json_integer(id) : json_null();
}

json_t *accounts_json_account(struct keys *k, const struct account_rec *a)
{
    return json_pack("{s:I,s:s,s:o,s:s,s:I,s:I,s:o}", "id", (json_int_t)a->id, "name", a->name, "external_id",
                     text_or_null(a->external_id), "status", a->suspended ? "suspended" : "active", "max_keys",
                     (json_int_t)accounts_max_keys(k, a), "key_count", (json_int_t)a->key_count, "created_at",
                     time_or_null(a->created_at));
}

/* Stored JSON text as an object, or JSON null when absent or not an object. */
static json_t *object_or_null(const char *text)
{
    json_t *o = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;

    if (o != NULL && !json_is_object(o)) {
        json_decref(o);
        o = NULL;
    }
    return o != NULL ? o : json_null();
}

/* An event object; `changes` and `details` are stored JSON text, shown only when they parse as objects. */
static json_t *event_json(const struct audit_event *ev)
{
    json_t *changes = object_or_null(ev->changes);

    return json_pack("{s:I,s:o,s:o,s:{s:s,s:o,s:o},s:s,s:{s:s,s:I},s:o,s:o,s:o,s:o}", "id", (json_int_t)ev->id, "at",
                     time_or_null(ev->at), "account_id", id_or_null(ev->account_id), "actor", "type", ev->actor_type, "id",
                     id_or_null(ev->actor_id), "prefix", text_or_null(ev->actor_prefix), "action", ev->action, "target", "type",
                     ev->target_type, "id", (json_int_t)ev->target_id, "changes", changes, "details", object_or_null(ev->details),
                     "client_ip", text_or_null(ev->client_ip), "request_id", text_or_null(ev->request_id));
}

/* A page being collected: up to `limit` items, and whether there is one more. */
struct page {
    struct keys *keys;
    json_t *items;
    unsigned limit, n;
    int64_t last;
    bool more;
};

/* Takes the next row's id; false when the page is full (and so there is more). */
static bool page_room(struct page *p, int64_t id)
{
    if (p->n == p->limit) {
        p->more = true;
        return false;
    }
    p->n++;
    p->last = id;
    return true;
}

static int page_account(void *arg, const struct account_rec *rec)
{
    struct page *p = arg;

    if (!page_room(p, rec->id))
        return 0;
    return json_array_append_new(p->items, accounts_json_account(p->keys, rec)) == 0 ? 0 : AK_ERR_NOMEM;
}

static int page_event(void *arg, const struct audit_event *ev)
{
    struct page *p = arg;

    if (!page_room(p, ev->id))
        return 0;
    return json_array_append_new(p->items, event_json(ev)) == 0 ? 0 : AK_ERR_NOMEM;
}

/* {"<name>": items, "next_cursor": ...} into *ret, after the store's answer `r`; releases the items. */
static int page_finish(struct page *p, int r, const char *name, const char *listing, json_t **ret)
{
    char cursor[CURSOR_MAX + 1];
    json_t *o = NULL;

    if (r == 0 && p->more)
        accounts_cursor_encode(p->keys, listing, p->last, cursor);
    if (r == 0 && (o = json_pack("{s:O,s:o}", name, p->items, "next_cursor", p->more ? json_string(cursor) : json_null())) == NULL)
        r = AK_ERR_NOMEM;
    json_decref(p->items);
    if (r == 0)
        *ret = o;
    return r;
}

int accounts_json_list(struct keys *k, const char *listing, int64_t after, unsigned limit, const char *external_id,
                       const char *name, json_t **ret)
{
    struct page p = {.keys = k, .limit = limit};

    if ((p.items = json_array()) == NULL)
        return AK_ERR_NOMEM;
    return page_finish(&p, accounts_list(k, after, limit + 1, external_id, name, page_account, &p), "accounts", listing, ret);
}

int accounts_json_events(struct keys *k, const char *listing, int64_t before, unsigned limit, int64_t account_id,
                         const char *action, int64_t key_id, json_t **ret)
{
    struct page p = {.keys = k, .limit = limit};

    if ((p.items = json_array()) == NULL)
        return AK_ERR_NOMEM;
    return page_finish(&p, accounts_events(k, before, limit + 1, account_id, action, key_id, page_event, &p), "events", listing,
                       ret);
}
