/*
 * Concurrency tests for core/catalog: lock-free readers (catalog_authenticate,
 * catalog_get, catalog_list_views, catalog_account_keys) against one writer
 * (the main thread) that updates keys (active toggled, names that need JSON
 * escaping or hold multibyte UTF-8, the primary moved), inserts keys (the
 * tables grow several times), removes them (tombstones), replays late
 * changes (an older version, a removed key: both ignored), and against
 * catalog_load swapping whole worlds from two SQLite stores.
 *
 * What a reader may assert, whatever it races with:
 *   - every entry is one whole version: its name (which encodes id, version,
 *     is_active and is_primary) parses with jansson and agrees with the
 *     view's other fields;
 *   - the writer publishes each key's state around its calls (inserting,
 *     present, removing, removed; ids are never reused), so a key present
 *     before and after a reader's call is found by it, one removed before
 *     the call began is not, one whose insertion had not begun by the end
 *     of the call is not;
 *   - a list comes from one moment: ids ascending, all of the account, the
 *     keys present throughout all there (after catalog_load: all from one
 *     store).
 * Readers never call cmocka (its asserts jump on the main thread's stack):
 * they count failures and keep the first message; the main thread asserts.
 * After the readers are joined, the catalog must equal the writer's model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/catalog.h"
#include "core/error.h"
#include "iterations.h"
#include "origin.h"
#include "store/store.h"

#define NREADERS 4
#define NSTABLE 16      /* ids 1..NSTABLE: account 1, never removed */
#define CHURN_FIRST 101 /* ids handed out to inserted keys, in order, never reused */
#define MAX_IDS 8192
#define NOW 1700000000 /* what readers record as last use */
#define CREATED 1600000000

enum { ST_ABSENT, ST_INSERTING, ST_PRESENT, ST_REMOVING, ST_REMOVED };

/* ---- what a key must look like, from its id ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t pick(uint64_t *rng, size_t n)
{
    return (size_t)(splitmix(rng) % n);
}

/* Distinct ids give distinct digests, and distinct first 8 bytes (the catalog's index key): splitmix is a bijection. */
static void id_digest(int64_t id, uint8_t d[DIGEST_LEN])
{
    uint64_t s = (uint64_t)id;

    for (size_t i = 0; i < DIGEST_LEN; i += 8) {
        uint64_t v = splitmix(&s);
        memcpy(d + i, &v, 8);
    }
}

static enum key_type id_type(int64_t id)
{
    return id % 3 == 0 ? KEY_TYPE_SANDBOX : KEY_TYPE_PRODUCTION;
}

static int64_t id_account(int64_t id)
{
    return id <= NSTABLE ? 1 : 1 + id % 2;
}

static void id_prefix(int64_t id, char out[KEYFMT_PREFIX_LEN + 1])
{
    snprintf(out, KEYFMT_PREFIX_LEN + 1, "ck_%09u", (unsigned)((uint64_t)id % 1000000000u));
}

/* The name of version `ver` of key `id`: it states the version's flags; some need escaping, some hold multibyte UTF-8. */
static void make_name(char *out, size_t sz, int64_t id, unsigned ver, bool active, bool primary)
{
    static const char *const tails[] = {
        "plain name",
        "\"quoted\" back\\slash",
        "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x94\x91",
        "\\\" \xf0\x9f\x98\x80\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb / \xe2\x80\xa8 end",
    };

    snprintf(out, sz, "k%" PRId64 " v%u a%d p%d %s", id, ver, active, primary, tails[ver % 4]);
}

/* ---- failures seen by reader threads ---- */

static atomic_ulong failures;
static char first_failure[512];
static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;

static void __attribute__((format(printf, 1, 2))) fail_rec(const char *fmt, ...)
{
    va_list ap;

    if (atomic_fetch_add(&failures, 1) != 0)
        return;
    pthread_mutex_lock(&failure_lock);
    va_start(ap, fmt);
    vsnprintf(first_failure, sizeof(first_failure), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&failure_lock);
}

static void assert_no_failures(void)
{
    unsigned long n = atomic_load(&failures);

    if (n != 0) {
        pthread_mutex_lock(&failure_lock);
        fail_msg("%lu reader check(s) failed; the first: %s", n, first_failure);
        pthread_mutex_unlock(&failure_lock);
    }
}

static void reset_failures(void)
{
    atomic_store(&failures, 0);
    first_failure[0] = '\0';
}

/*
 * Checks a decoded name against the fields of the same entry, and its
 * version (name version + 1) when `version` is not -1. Returns 0 or -1 (recorded).
 */
static int check_name(const char *where, const char *name, int64_t id, bool active, bool primary, int64_t version)
{
    int64_t nid;
    unsigned ver;
    int a, p;
    char want[KEY_NAME_MAX_BYTES + 1];

    if (sscanf(name, "k%" SCNd64 " v%u a%d p%d", &nid, &ver, &a, &p) != 4) {
        fail_rec("%s: key %" PRId64 ": name \"%s\" is not one the writer wrote", where, id, name);
        return -1;
    }
    make_name(want, sizeof(want), nid, ver, a != 0, p != 0);
    if (strcmp(name, want) != 0 || nid != id || (a != 0) != active || (p != 0) != primary ||
        (version != -1 && version != (int64_t)ver + 1)) {
        fail_rec("%s: key %" PRId64 " (active %d, primary %d, version %" PRId64 ") carries the name \"%s\"", where, id, active,
                 primary, version, name);
        return -1;
    }
    return 0;
}

/* The same for a name as a JSON string literal (a view's name_json). */
static int check_name_json(const char *where, const char *json, size_t len, int64_t id, bool active, bool primary)
{
    json_error_t err;
    json_t *s = json_loadb(json, len, JSON_DECODE_ANY, &err);
    int r;

    if (!json_is_string(s)) {
        fail_rec("%s: key %" PRId64 ": name_json %.*s is not a JSON string (%s)", where, id, (int)len, json, err.text);
        json_decref(s);
        return -1;
    }
    r = check_name(where, json_string_value(s), id, active, primary, -1);
    json_decref(s);
    return r;
}

/* ---- the shared state of one run ---- */

struct run {
    struct catalog *cat;
    _Atomic int state[MAX_IDS];           /* ST_*, stored by the writer around each call */
    _Atomic uint64_t removed_at[MAX_IDS]; /* the removal number of a removed key, 0 if none */
    _Atomic uint64_t removals_done;       /* the number of removals that have returned */
    _Atomic int64_t max_id;               /* the highest id handed out */
    atomic_bool stop;
    atomic_uint ready;
    atomic_ulong calls[5], stable_unknown;
    unsigned seed;
};

static void run_init(struct run *r)
{
    assert_non_null(r->cat = catalog_new());
    for (size_t i = 0; i < MAX_IDS; i++) {
        atomic_init(&r->state[i], ST_ABSENT);
        atomic_init(&r->removed_at[i], 0);
    }
    atomic_init(&r->removals_done, 0);
    atomic_init(&r->max_id, NSTABLE);
    atomic_init(&r->stop, false);
    atomic_init(&r->ready, 0);
    for (size_t i = 0; i < 5; i++)
        atomic_init(&r->calls[i], 0);
    atomic_init(&r->stable_unknown, 0);
    r->seed = 0;
    reset_failures();
}

static struct run *run_new(void)
{
    struct run *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    run_init(r);
    return r;
}

static void run_free(struct run *r)
{
    catalog_free(r->cat);
    free(r);
}

/* A key id to look up: any handed out so far, or a few not yet. */
static int64_t random_id(struct run *r, uint64_t *rng)
{
    int64_t id = 1 + (int64_t)pick(rng, (size_t)atomic_load(&r->max_id) + 3);

    return id < MAX_IDS ? id : MAX_IDS - 1;
}

/* Whether a lookup's result agrees with the key's state before (s0) and after (s1) the call. */
static void check_presence(const char *where, int64_t id, bool found, int s0, int s1)
{
    if (!found && s0 == ST_PRESENT && s1 == ST_PRESENT)
        fail_rec("%s: key %" PRId64 ", present before and after the call, was not found", where, id);
    if (found && s0 == ST_REMOVED)
        fail_rec("%s: key %" PRId64 ", removed before the call, was found", where, id);
    if (found && s1 == ST_ABSENT)
        fail_rec("%s: key %" PRId64 " was found before its insertion began", where, id);
}

static void read_authenticate(struct run *r, int64_t id)
{
    uint8_t d[DIGEST_LEN];
    char prefix[KEYFMT_PREFIX_LEN + 1];
    struct principal p;
    int s0, s1, rc;

    id_digest(id, d);
    memset(&p, 0, sizeof(p));
    s0 = atomic_load(&r->state[id]);
    rc = catalog_authenticate(r->cat, d, NOW, NULL, &p);
    s1 = atomic_load(&r->state[id]);
    atomic_fetch_add_explicit(&r->calls[0], 1, memory_order_relaxed);
    if (rc != 0 && rc != AK_ERR_KEY_INACTIVE && rc != AK_ERR_KEY_UNKNOWN) {
        fail_rec("catalog_authenticate: key %" PRId64 ": unexpected %d", id, rc);
        return;
    }
    if (rc == AK_ERR_KEY_UNKNOWN && id <= NSTABLE)
        atomic_fetch_add(&r->stable_unknown, 1);
    check_presence("catalog_authenticate", id, rc != AK_ERR_KEY_UNKNOWN, s0, s1);
    if (rc != 0)
        return;
    id_prefix(id, prefix);
    if (p.key_id != id || p.account_id != id_account(id) || p.type != id_type(id) || strcmp(p.prefix, prefix) != 0)
        fail_rec("catalog_authenticate: key %" PRId64 ": principal {id %" PRId64 ", account %" PRId64 ", type %d, prefix %.12s}",
                 id, p.key_id, p.account_id, p.type, p.prefix);
}

static void read_get(struct run *r, int64_t id)
{
    struct key_rec *rec = malloc(sizeof(*rec));
    uint8_t d[DIGEST_LEN];
    char prefix[KEYFMT_PREFIX_LEN + 1];
    int s0, s1, rc;

    if (rec == NULL) {
        fail_rec("out of memory");
        return;
    }
    s0 = atomic_load(&r->state[id]);
    rc = catalog_get(r->cat, id, rec);
    s1 = atomic_load(&r->state[id]);
    atomic_fetch_add_explicit(&r->calls[1], 1, memory_order_relaxed);
    if (rc != 0 && rc != AK_ERR_NOT_FOUND) {
        fail_rec("catalog_get: key %" PRId64 ": unexpected %d", id, rc);
    } else {
        check_presence("catalog_get", id, rc == 0, s0, s1);
        if (rc == 0) {
            id_digest(id, d);
            id_prefix(id, prefix);
            if (rec->id != id || rec->account_id != id_account(id) || rec->type != id_type(id) ||
                strcmp(rec->prefix, prefix) != 0 || memcmp(rec->digest, d, DIGEST_LEN) != 0 || rec->created_at != CREATED + id ||
                (rec->last_used != 0 && rec->last_used != NOW))
                fail_rec("catalog_get: key %" PRId64 ": record fields of another key or garbage", id);
            else
                check_name("catalog_get", rec->name, id, rec->active, rec->primary, rec->version);
        }
    }
    free(rec);
}

struct list_ctx {
    struct run *run;
    int64_t account;
    bool sandbox_only;
    uint64_t removals_before;
    int64_t prev;
    size_t stable_seen, stable_sandbox_seen, n;
    bool bad;
};

static void list_visit(void *arg, const struct key_view *v)
{
    struct list_ctx *c = arg;
    char prefix[KEYFMT_PREFIX_LEN + 1];
    uint64_t removed;

    c->n++;
    if (c->bad)
        return;
    if (v->id <= c->prev || v->id < 1 || v->id >= MAX_IDS) {
        fail_rec("catalog_list_views: account %" PRId64 ": id %" PRId64 " after %" PRId64, c->account, v->id, c->prev);
        c->bad = true;
        return;
    }
    c->prev = v->id;
    id_prefix(v->id, prefix);
    if (id_account(v->id) != c->account || v->type != id_type(v->id) || (c->sandbox_only && v->type != KEY_TYPE_SANDBOX) ||
        strcmp(v->prefix, prefix) != 0 || v->created_at != CREATED + v->id || (v->last_used != 0 && v->last_used != NOW)) {
        fail_rec("catalog_list_views: account %" PRId64 ": key %" PRId64 ": fields of another key or garbage", c->account, v->id);
        c->bad = true;
        return;
    }
    removed = atomic_load(&c->run->removed_at[v->id]);
    if (removed != 0 && removed <= c->removals_before)
        fail_rec("catalog_list_views: key %" PRId64 " listed, removed (removal #%" PRIu64 ") before the call began (after #%" PRIu64
                 ")",
                 v->id, removed, c->removals_before);
    if (atomic_load(&c->run->state[v->id]) == ST_ABSENT)
        fail_rec("catalog_list_views: key %" PRId64 " listed before its insertion began", v->id);
    if (check_name_json("catalog_list_views", v->name_json, v->name_json_len, v->id, v->active, v->primary) != 0)
        c->bad = true;
    if (v->id <= NSTABLE) {
        c->stable_seen++;
        c->stable_sandbox_seen += v->type == KEY_TYPE_SANDBOX;
    }
}

static size_t stable_sandbox_count(void)
{
    size_t n = 0;

    for (int64_t id = 1; id <= NSTABLE; id++)
        n += id_type(id) == KEY_TYPE_SANDBOX;
    return n;
}

static void read_list(struct run *r, int64_t account, bool sandbox_only)
{
    struct list_ctx c = {.run = r, .account = account, .sandbox_only = sandbox_only};

    c.removals_before = atomic_load(&r->removals_done);
    catalog_list_views(r->cat, account, sandbox_only, list_visit, &c);
    atomic_fetch_add_explicit(&r->calls[2], 1, memory_order_relaxed);
    if (account == 1 && !c.bad) {
        size_t want = sandbox_only ? stable_sandbox_count() : NSTABLE;
        size_t got = sandbox_only ? c.stable_sandbox_seen : c.stable_seen;
        if (got != want)
            fail_rec("catalog_list_views: account 1%s lists %zu of its %zu never-removed keys", sandbox_only ? " (sandbox)" : "",
                     got, want);
    }
}

static void read_account_keys(struct run *r)
{
    int64_t primary = -1;
    size_t n = catalog_account_keys(r->cat, 1, &primary);

    atomic_fetch_add_explicit(&r->calls[3], 1, memory_order_relaxed);
    if (n < NSTABLE || primary < 0 || primary >= MAX_IDS || (primary != 0 && id_account(primary) != 1))
        fail_rec("catalog_account_keys: account 1: %zu keys, primary %" PRId64, n, primary);
}

static void *reader_main(void *arg)
{
    struct run *r = arg;
    uint64_t rng = atomic_fetch_add(&r->ready, 1) * 7919u + r->seed;

    while (!atomic_load(&r->stop)) {
        int64_t id = random_id(r, &rng);
        switch (pick(&rng, 8)) {
        case 0:
        case 1:
            read_authenticate(r, id);
            break;
        case 2:
            read_authenticate(r, 1 + (int64_t)pick(&rng, NSTABLE));
            break;
        case 3:
        case 4:
            read_get(r, id);
            break;
        case 5:
            read_list(r, 1, pick(&rng, 4) == 0);
            break;
        case 6:
            read_list(r, 2, pick(&rng, 4) == 0);
            break;
        default:
            read_account_keys(r);
        }
    }
    return NULL;
}

/* ---- the writer and its model ---- */

struct model {
    unsigned ver;
    bool active, primary;
};

struct writer {
    struct run *run;
    struct model m[MAX_IDS];
    int64_t live[MAX_IDS]; /* inserted keys present now */
    size_t nlive;
    int64_t next_id, primary;
    uint64_t removals;
    uint64_t rng;
};

static void model_rec(const struct writer *w, int64_t id, struct key_rec *rec)
{
    const struct model *m = &w->m[id];

    memset(rec, 0, sizeof(*rec));
    rec->id = id;
    rec->account_id = id_account(id);
    make_name(rec->name, sizeof(rec->name), id, m->ver, m->active, m->primary);
    rec->type = id_type(id);
    id_prefix(id, rec->prefix);
    id_digest(id, rec->digest);
    rec->active = m->active;
    rec->primary = m->primary;
    rec->created_at = CREATED + id;
    rec->version = (int64_t)m->ver + 1; /* never 0: every put is ordered */
}

static void writer_put(struct writer *w, int64_t id)
{
    struct key_rec rec;

    model_rec(w, id, &rec);
    assert_int_equal(catalog_put(w->run->cat, &rec), 0);
}

static void writer_insert(struct writer *w)
{
    int64_t id = w->next_id++;

    assert_true(id < MAX_IDS);
    w->m[id] = (struct model){.ver = (unsigned)pick(&w->rng, 4), .active = pick(&w->rng, 4) != 0};
    atomic_store(&w->run->max_id, id);
    atomic_store(&w->run->state[id], ST_INSERTING);
    writer_put(w, id);
    atomic_store(&w->run->state[id], ST_PRESENT);
    w->live[w->nlive++] = id;
}

static void writer_remove(struct writer *w)
{
    size_t i;
    int64_t id;

    if (w->nlive == 0)
        return;
    i = pick(&w->rng, w->nlive);
    id = w->live[i];
    w->live[i] = w->live[--w->nlive];
    atomic_store(&w->run->state[id], ST_REMOVING);
    catalog_remove(w->run->cat, id);
    w->removals++;
    atomic_store(&w->run->removed_at[id], w->removals);
    atomic_store(&w->run->removals_done, w->removals);
    atomic_store(&w->run->state[id], ST_REMOVED);
}

/* A new version: the active flag toggled and a new name. */
static void writer_update(struct writer *w, int64_t id)
{
    w->m[id].ver++;
    w->m[id].active = !w->m[id].active;
    writer_put(w, id);
}

/* The writer's own read: key `id` is exactly the model's. */
static void writer_check(struct writer *w, int64_t id)
{
    struct key_rec got, want;

    model_rec(w, id, &want);
    assert_int_equal(catalog_get(w->run->cat, id, &got), 0);
    assert_int_equal(got.version, want.version);
    assert_string_equal(got.name, want.name);
    assert_int_equal(got.active, want.active);
    assert_int_equal(got.primary, want.primary);
}

/* A late, older version of a present key (as from another instance): ignored. */
static void writer_put_stale(struct writer *w, int64_t id)
{
    struct model keep = w->m[id];
    struct key_rec rec;

    if (keep.ver == 0)
        return;
    w->m[id].ver--;
    w->m[id].active = !keep.active;
    model_rec(w, id, &rec);
    w->m[id] = keep;
    assert_int_equal(catalog_put(w->run->cat, &rec), 0);
    writer_check(w, id);
}

/* A late put of a removed key (ids are never reused): ignored, the key stays gone. */
static void writer_put_removed(struct writer *w)
{
    struct key_rec rec, got;
    struct principal p;
    int64_t id = CHURN_FIRST + (int64_t)pick(&w->rng, (size_t)(w->next_id - CHURN_FIRST));

    if (atomic_load(&w->run->state[id]) != ST_REMOVED)
        return;
    w->m[id].ver++;
    model_rec(w, id, &rec);
    assert_int_equal(catalog_put(w->run->cat, &rec), 0);
    assert_int_equal(catalog_get(w->run->cat, id, &got), AK_ERR_NOT_FOUND);
    assert_int_equal(catalog_authenticate(w->run->cat, rec.digest, NOW, NULL, &p), AK_ERR_KEY_UNKNOWN);
}

/* The primary moves to another never-removed key of account 1 (demote, then promote: two versions). */
static void writer_move_primary(struct writer *w)
{
    int64_t to = 1 + (int64_t)pick(&w->rng, NSTABLE);

    if (to == w->primary)
        return;
    w->m[w->primary].ver++;
    w->m[w->primary].primary = false;
    writer_put(w, w->primary);
    w->m[to].ver++;
    w->m[to].primary = true;
    w->m[to].active = true;
    writer_put(w, to);
    w->primary = to;
}

static struct writer *writer_new(struct run *r, uint64_t seed)
{
    struct writer *w = calloc(1, sizeof(*w));

    assert_non_null(w);
    w->run = r;
    w->next_id = CHURN_FIRST;
    w->primary = 1;
    w->rng = seed;
    for (int64_t id = 1; id <= NSTABLE; id++) {
        w->m[id] = (struct model){.ver = (unsigned)id, .active = true, .primary = id == 1};
        writer_put(w, id);
        atomic_store(&r->state[id], ST_PRESENT);
    }
    return w;
}

static void start_readers(struct run *r, pthread_t th[NREADERS], void *(*fn)(void *))
{
    for (size_t i = 0; i < NREADERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fn, r), 0);
    while (atomic_load(&r->ready) < NREADERS)
        sched_yield();
}

static unsigned long reader_calls(struct run *r)
{
    unsigned long n = 0;

    for (size_t i = 0; i < 4; i++)
        n += atomic_load_explicit(&r->calls[i], memory_order_relaxed);
    return n;
}

/* Lets the readers make `n` more calls, so that writes and reads interleave however the threads are scheduled. */
static void let_readers_run(struct run *r, unsigned long n)
{
    unsigned long target = reader_calls(r) + n;

    while (reader_calls(r) < target)
        sched_yield();
}

static void stop_readers(struct run *r, pthread_t th[NREADERS])
{
    atomic_store(&r->stop, true);
    for (size_t i = 0; i < NREADERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
}

struct final_ctx {
    const struct writer *w;
    int64_t account;
    int64_t ids[MAX_IDS];
    size_t n;
};

static void final_visit(void *arg, const struct key_view *v)
{
    struct final_ctx *c = arg;
    const struct model *m;
    char name[KEY_NAME_MAX_BYTES + 1];
    json_t *s;
    char *want;

    assert_true(c->n < MAX_IDS);
    assert_true(v->id > 0 && v->id < MAX_IDS);
    c->ids[c->n++] = v->id;
    m = &c->w->m[v->id];
    assert_int_equal(v->active, m->active);
    assert_int_equal(v->primary, m->primary);
    /* Byte for byte what jansson makes of the model's name. */
    make_name(name, sizeof(name), v->id, m->ver, m->active, m->primary);
    assert_non_null(s = json_string(name));
    assert_non_null(want = json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT));
    assert_int_equal(v->name_json_len, strlen(want));
    assert_memory_equal(v->name_json, want, v->name_json_len);
    free(want);
    json_decref(s);
}

/* After the readers are gone: the catalog holds exactly what the writer left. */
static void check_final(const struct writer *w)
{
    struct catalog *cat = w->run->cat;
    struct key_rec got, want;
    struct principal p;
    size_t present = 0;
    struct final_ctx *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    for (int64_t id = 1; id < w->next_id + 3 && id < MAX_IDS; id++) {
        int st = atomic_load(&w->run->state[id]);
        uint8_t d[DIGEST_LEN];
        int rc;

        id_digest(id, d);
        if (st != ST_PRESENT) {
            assert_int_equal(catalog_get(cat, id, &got), AK_ERR_NOT_FOUND);
            assert_int_equal(catalog_authenticate(cat, d, NOW, NULL, &p), AK_ERR_KEY_UNKNOWN);
            assert_false(catalog_digest_taken(cat, d));
            continue;
        }
        present++;
        assert_int_equal(catalog_get(cat, id, &got), 0);
        model_rec(w, id, &want);
        assert_int_equal(got.id, want.id);
        assert_int_equal(got.account_id, want.account_id);
        assert_string_equal(got.name, want.name);
        assert_int_equal(got.type, want.type);
        assert_string_equal(got.prefix, want.prefix);
        assert_memory_equal(got.digest, want.digest, DIGEST_LEN);
        assert_int_equal(got.active, want.active);
        assert_int_equal(got.primary, want.primary);
        assert_int_equal(got.created_at, want.created_at);
        assert_int_equal(got.version, want.version);
        assert_true(got.last_used == 0 || got.last_used == NOW);
        rc = catalog_authenticate(cat, d, NOW, NULL, &p);
        assert_int_equal(rc, want.active ? 0 : AK_ERR_KEY_INACTIVE);
    }
    assert_int_equal(catalog_size(cat), present);
    for (int64_t account = 1; account <= 2; account++) {
        size_t k = 0;
        int64_t primary = -1;

        c->w = w;
        c->account = account;
        c->n = 0;
        catalog_list_views(cat, account, false, final_visit, c);
        for (int64_t id = 1; id < w->next_id && id < MAX_IDS; id++) {
            if (atomic_load(&w->run->state[id]) != ST_PRESENT || id_account(id) != account)
                continue;
            assert_true(k < c->n);
            assert_int_equal(c->ids[k], id);
            k++;
        }
        assert_int_equal(k, c->n);
        assert_int_equal(catalog_account_keys(cat, account, &primary), c->n);
        assert_int_equal(primary, account == 1 ? w->primary : 0);
    }
    free(c);
}

static void report(const char *test, struct run *r)
{
    print_message("%s: %lu authenticate, %lu get, %lu list, %lu account_keys, %lu loads by the writer\n", test,
                  atomic_load(&r->calls[0]), atomic_load(&r->calls[1]), atomic_load(&r->calls[2]), atomic_load(&r->calls[3]),
                  atomic_load(&r->calls[4]));
}

/*
 * Updates, inserts (growing the tables from 16 slots to 2048), removals and
 * moves of the primary, in three phases: mostly inserts, a balanced churn
 * (tombstones reused, tables rebuilt), mostly removals.
 */
static void test_readers_vs_writer(void **state)
{
    const int ITER = (int)test_iterations(3000, 500);
    struct run *r = run_new();
    struct writer *w;
    pthread_t th[NREADERS];

    (void)state;
    r->seed = 1;
    w = writer_new(r, 99);
    start_readers(r, th, reader_main);
    for (int it = 0; it < ITER; it++) {
        /* percentages of insert / remove; the rest updates */
        int ins = it < ITER * 2 / 5 ? 60 : it < ITER * 4 / 5 ? 35 : 10;
        int rem = it < ITER * 2 / 5 ? 15 : it < ITER * 4 / 5 ? 35 : 60;
        int dice = (int)pick(&w->rng, 100);

        if (it % 40 == 0)
            writer_move_primary(w);
        if (it % 16 == 5)
            writer_put_stale(w, w->nlive > 0 && pick(&w->rng, 2) == 0 ? w->live[pick(&w->rng, w->nlive)]
                                                                      : 1 + (int64_t)pick(&w->rng, NSTABLE));
        if (it % 16 == 13 && w->next_id > CHURN_FIRST)
            writer_put_removed(w);
        if (dice < ins)
            writer_insert(w);
        else if (dice < ins + rem)
            writer_remove(w);
        else if (w->nlive > 0 && pick(&w->rng, 2) == 0)
            writer_update(w, w->live[pick(&w->rng, w->nlive)]);
        else
            writer_update(w, 1 + (int64_t)pick(&w->rng, NSTABLE));
        if (it % 64 == 0)
            let_readers_run(r, 50);
    }
    stop_readers(r, th);
    report("readers_vs_writer", r);
    assert_no_failures();
    assert_int_equal(atomic_load(&r->stable_unknown), 0);
    assert_true(atomic_load(&r->calls[0]) > 0 && atomic_load(&r->calls[2]) > 0);
    check_final(w);
    free(w);
    run_free(r);
}

/* Readers that only authenticate: every key present before and after the call is found, through waves of inserts and removals. */
static void *auth_reader_main(void *arg)
{
    struct run *r = arg;
    uint64_t rng = atomic_fetch_add(&r->ready, 1) * 104729u + r->seed;

    for (unsigned n = 1; !atomic_load(&r->stop); n++) {
        read_authenticate(r, random_id(r, &rng));
        if (n % 256 == 0)
            sched_yield(); /* four tight loops would starve the writer on two cores */
    }
    return NULL;
}

/*
 * Waves: 300 keys in (the tables grow), 280 out (tombstones everywhere), and
 * again, so that inserts land on tombstones and tables are rebuilt while
 * readers probe past them. Then a steady churn over a few keys, one in and
 * one out, that keeps filling the tables with tombstones: they are rebuilt
 * (and the old ones retired) every dozen writes or so.
 */
static void test_present_keys_survive_churn(void **state)
{
    enum { WAVES = 3, IN = 300, OUT = 280 };
    const int STEADY = (int)test_iterations(4000, 500);
    struct run *r = run_new();
    struct writer *w;
    pthread_t th[NREADERS];

    (void)state;
    r->seed = 2;
    w = writer_new(r, 7);
    start_readers(r, th, auth_reader_main);
    for (int wave = 0; wave < WAVES; wave++) {
        for (int i = 0; i < IN; i++) {
            writer_insert(w);
            if (i % 32 == 0)
                let_readers_run(r, 500);
        }
        for (int i = 0; i < OUT; i++) {
            writer_remove(w);
            if (i % 32 == 0)
                let_readers_run(r, 500);
        }
    }
    while (w->nlive > 4)
        writer_remove(w);
    for (int i = 0; i < STEADY; i++) {
        writer_insert(w);
        writer_remove(w);
        if (i % 2 == 0)
            let_readers_run(r, 20);
    }
    stop_readers(r, th);
    report("present_keys_survive_churn", r);
    assert_no_failures();
    assert_int_equal(atomic_load(&r->stable_unknown), 0);
    check_final(w);
    free(w);
    run_free(r);
}

/* ---- catalog_load: whole worlds swapped under readers ---- */

#define LOAD_STABLE 12 /* seeds 1..LOAD_STABLE: in both stores, same ids */
#define LOAD_ONLY_A 40
#define LOAD_ONLY_B 90

struct load_fixture {
    char dir[64];
    struct store *store[2]; /* 'A', 'B' */
    int64_t account;
    int64_t stable_id[LOAD_STABLE + 1];
};

struct load_run {
    struct run base; /* first: readers get a struct run * */
    struct load_fixture *f;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int seed_of_id(const struct load_fixture *f, int64_t id)
{
    for (int s = 1; s <= LOAD_STABLE; s++)
        if (f->stable_id[s] == id)
            return s;
    return 0;
}

static void load_name(char *out, size_t sz, char letter, int seed)
{
    snprintf(out, sz, "%c s%d %s", letter, seed, seed % 2 == 0 ? "\"esc\" \\ \xc3\xa9" : "plain \xf0\x9f\x94\x91");
}

/* Fills store `letter` with the stable keys then `extra` keys of its own (seeds from `first_extra`). */
static void fill_store(struct load_fixture *f, struct store *st, char letter, int first_extra, int extra)
{
    struct key_rec rec;
    int64_t account = 0;

    for (int seed = 1; seed <= LOAD_STABLE + extra; seed++) {
        int s = seed <= LOAD_STABLE ? seed : first_extra + seed - LOAD_STABLE;
        memset(&rec, 0, sizeof(rec));
        load_name(rec.name, sizeof(rec.name), letter, s);
        rec.type = s == 1 ? KEY_TYPE_PRODUCTION : id_type(s);
        id_prefix(s, rec.prefix);
        id_digest(s, rec.digest);
        rec.active = true;
        rec.primary = s == 1;
        rec.created_at = CREATED + s;
        if (s == 1) {
            assert_int_equal(t_store_account_create(st, "acme", CREATED, &rec, &account), 0);
            if (f->account == 0)
                f->account = account;
            assert_int_equal(account, f->account);
        } else {
            rec.account_id = f->account;
            assert_int_equal(store_key_insert(st, &T_ORIGIN, &rec, 1000, NULL), 0);
        }
        if (s <= LOAD_STABLE) {
            if (f->stable_id[s] == 0)
                f->stable_id[s] = rec.id;
            assert_int_equal(rec.id, f->stable_id[s]); /* both stores give the stable keys the same ids */
        }
    }
}

static int load_setup(void **state)
{
    struct load_fixture *f = calloc(1, sizeof(*f));
    char path[128], err[256] = "";

    if (f == NULL)
        return -1;
    /* In memory when the system has a tmpfs there: the store syncs every write. */
    snprintf(f->dir, sizeof(f->dir), "/dev/shm/test_catalog_concurrency.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        snprintf(f->dir, sizeof(f->dir), "/tmp/test_catalog_concurrency.XXXXXX");
        if (mkdtemp(f->dir) == NULL)
            return -1;
    }
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%c.db", f->dir, 'a' + i);
        if (store_open(path, &f->store[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "store_open: %s\n", err);
            return -1;
        }
    }
    fill_store(f, f->store[0], 'A', 1000, LOAD_ONLY_A);
    fill_store(f, f->store[1], 'B', 2000, LOAD_ONLY_B);
    *state = f;
    return 0;
}

static int load_teardown(void **state)
{
    struct load_fixture *f = *state;
    int r;

    for (int i = 0; i < 2; i++)
        store_free(f->store[i]);
    r = nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return r;
}

struct world_ctx {
    const struct load_fixture *f;
    char letter; /* of the first key listed */
    int64_t prev;
    size_t n, stable;
    bool bad;
};

static void world_visit(void *arg, const struct key_view *v)
{
    struct world_ctx *c = arg;
    json_t *s;
    char letter = 0, want[KEY_NAME_MAX_BYTES + 1], prefix[KEYFMT_PREFIX_LEN + 1];
    int seed = 0;

    c->n++;
    if (c->bad)
        return;
    s = json_loadb(v->name_json, v->name_json_len, JSON_DECODE_ANY, NULL);
    if (!json_is_string(s) || sscanf(json_string_value(s), "%c s%d", &letter, &seed) != 2) {
        fail_rec("catalog_list_views after load: key %" PRId64 ": name_json %.*s", v->id, (int)v->name_json_len, v->name_json);
        c->bad = true;
        json_decref(s);
        return;
    }
    load_name(want, sizeof(want), letter, seed);
    id_prefix(seed, prefix);
    if (c->letter == 0)
        c->letter = letter;
    if (strcmp(json_string_value(s), want) != 0 || letter != c->letter || v->id <= c->prev || strcmp(v->prefix, prefix) != 0 ||
        v->created_at != CREATED + seed || !v->active || v->primary != (seed == 1)) {
        fail_rec("catalog_list_views after load: key %" PRId64 " \"%s\" after %" PRId64 " in a list of store %c", v->id,
                 json_string_value(s), c->prev, c->letter);
        c->bad = true;
    }
    if (seed <= LOAD_STABLE)
        c->stable++;
    c->prev = v->id;
    json_decref(s);
}

static void *load_reader_main(void *arg)
{
    struct load_run *lr = arg;
    struct run *r = &lr->base;
    const struct load_fixture *f = lr->f;
    uint64_t rng = atomic_fetch_add(&r->ready, 1) * 31u + 5;
    struct key_rec *rec = malloc(sizeof(*rec));

    if (rec == NULL) {
        fail_rec("out of memory");
        return NULL;
    }
    while (!atomic_load(&r->stop)) {
        int seed = 1 + (int)pick(&rng, LOAD_STABLE);
        uint8_t d[DIGEST_LEN];
        struct principal p;
        int rc;

        switch (pick(&rng, 4)) {
        case 0: { /* a key in both stores is always there */
            id_digest(seed, d);
            rc = catalog_authenticate(r->cat, d, NOW, NULL, &p);
            if (rc != 0 || p.key_id != f->stable_id[seed] || p.account_id != f->account)
                fail_rec("catalog_authenticate during loads: key of seed %d: %d, id %" PRId64, seed, rc, p.key_id);
            atomic_fetch_add_explicit(&r->calls[0], 1, memory_order_relaxed);
            break;
        }
        case 1: { /* a key of one store only: there or not, never garbage */
            int s = pick(&rng, 2) == 0 ? 1001 + (int)pick(&rng, LOAD_ONLY_A) : 2001 + (int)pick(&rng, LOAD_ONLY_B);
            id_digest(s, d);
            rc = catalog_authenticate(r->cat, d, NOW, NULL, &p);
            if ((rc != 0 && rc != AK_ERR_KEY_UNKNOWN) || (rc == 0 && (p.account_id != f->account || seed_of_id(f, p.key_id) != 0)))
                fail_rec("catalog_authenticate during loads: key of seed %d: %d", s, rc);
            atomic_fetch_add_explicit(&r->calls[0], 1, memory_order_relaxed);
            break;
        }
        case 2: {
            char want[KEY_NAME_MAX_BYTES + 1];
            rc = catalog_get(r->cat, f->stable_id[seed], rec);
            load_name(want, sizeof(want), rc == 0 ? rec->name[0] : 'A', seed);
            id_digest(seed, d);
            if (rc != 0 || (rec->name[0] != 'A' && rec->name[0] != 'B') || strcmp(rec->name, want) != 0 ||
                memcmp(rec->digest, d, DIGEST_LEN) != 0 || rec->id != f->stable_id[seed])
                fail_rec("catalog_get during loads: key of seed %d: %d", seed, rc);
            atomic_fetch_add_explicit(&r->calls[1], 1, memory_order_relaxed);
            break;
        }
        default: {
            struct world_ctx c = {.f = f};
            catalog_list_views(r->cat, f->account, false, world_visit, &c);
            if (!c.bad && (c.stable != LOAD_STABLE || c.n != LOAD_STABLE + (c.letter == 'A' ? LOAD_ONLY_A : LOAD_ONLY_B)))
                fail_rec("catalog_list_views during loads: %zu keys, %zu of them in both stores, first from store %c", c.n,
                         c.stable, c.letter);
            atomic_fetch_add_explicit(&r->calls[2], 1, memory_order_relaxed);
        }
        }
    }
    free(rec);
    return NULL;
}

struct collect {
    struct key_rec *recs;
    size_t n;
};

static int collect_one(void *arg, const struct key_rec *rec)
{
    struct collect *c = arg;

    c->recs[c->n++] = *rec;
    return 0;
}

/* catalog_load alternates between two stores while readers read: each read sees one world or the other, whole. */
static void test_load_swaps_worlds_under_readers(void **state)
{
    const int LOADS = (int)test_iterations(200, 20) & ~1; /* even */
    struct load_fixture *f = *state;
    struct load_run *lr = calloc(1, sizeof(*lr));
    struct run *r;
    struct collect c = {0};
    struct key_rec got;
    pthread_t th[NREADERS];

    assert_non_null(lr);
    r = &lr->base;
    run_init(r);
    lr->f = f;
    assert_int_equal(catalog_load(r->cat, f->store[0]), 0);
    start_readers(r, th, load_reader_main);
    for (int i = 0; i < LOADS; i++) {
        assert_int_equal(catalog_load(r->cat, f->store[(i + 1) % 2]), 0);
        atomic_fetch_add(&r->calls[4], 1);
        if (i % 4 == 0)
            let_readers_run(r, 20);
    }
    stop_readers(r, th);
    report("load_swaps_worlds", r);
    assert_no_failures();

    /* The last load was store A's (LOADS is even): the catalog is that store. */
    assert_non_null(c.recs = calloc(LOAD_STABLE + LOAD_ONLY_B, sizeof(*c.recs)));
    assert_int_equal(f->store[0]->ops->key_load(f->store[0], collect_one, &c), 0);
    assert_int_equal(c.n, LOAD_STABLE + LOAD_ONLY_A);
    assert_int_equal(catalog_size(r->cat), c.n);
    for (size_t i = 0; i < c.n; i++) {
        assert_int_equal(catalog_get(r->cat, c.recs[i].id, &got), 0);
        assert_string_equal(got.name, c.recs[i].name);
        assert_memory_equal(got.digest, c.recs[i].digest, DIGEST_LEN);
        assert_int_equal(got.active, c.recs[i].active);
        assert_int_equal(got.primary, c.recs[i].primary);
        assert_true(got.last_used == c.recs[i].last_used || got.last_used == NOW);
    }
    for (int s = 2001; s <= 2000 + LOAD_ONLY_B; s++) {
        uint8_t d[DIGEST_LEN];
        id_digest(s, d);
        assert_false(catalog_digest_taken(r->cat, d));
    }
    free(c.recs);
    catalog_free(r->cat);
    free(lr);
}

/* ---- suspension under readers (issue 9) ---- */

#define SUSP_ACCOUNTS 6

/* The writer's side: per account, an even sequence while its state is settled, odd while it changes. */
struct susp {
    struct catalog *cat;
    uint8_t digests[SUSP_ACCOUNTS + 1][DIGEST_LEN];
    _Atomic unsigned long seq[SUSP_ACCOUNTS + 1];
    atomic_bool suspended[SUSP_ACCOUNTS + 1];
    atomic_int stop;
};

static void *susp_reader(void *arg)
{
    struct susp *s = arg;
    uint64_t rng = (uint64_t)(uintptr_t)&rng;
    int64_t now = NOW;

    while (!atomic_load(&s->stop)) {
        int64_t a = 1 + (int64_t)pick(&rng, SUSP_ACCOUNTS);
        unsigned long g1 = atomic_load(&s->seq[a]), g2;
        bool want = atomic_load(&s->suspended[a]), is;
        struct principal p;
        int r = catalog_authenticate(s->cat, s->digests[a], ++now, NULL, &p);

        is = catalog_is_suspended(s->cat, a);
        g2 = atomic_load(&s->seq[a]);
        if (r != 0 && r != AK_ERR_SUSPENDED) {
            fail_rec("account %" PRId64 ": authenticate gave %d", a, r);
            continue;
        }
        if (r == 0 && (p.account_id != a || p.key_id != a))
            fail_rec("account %" PRId64 ": authenticated as key %" PRId64 " of %" PRId64, a, p.key_id, p.account_id);
        /* Settled throughout the calls: the answer is exact. */
        if (g1 == g2 && g1 % 2 == 0 && ((r == AK_ERR_SUSPENDED) != want || is != want))
            fail_rec("account %" PRId64 ": suspended %d, authenticate %d, is_suspended %d", a, want, r, is);
    }
    return NULL;
}

/*
 * One writer suspends and reactivates accounts (one at a time, and whole
 * sets with catalog_set_suspended) while readers authenticate their keys:
 * every answer is 0 or AK_ERR_SUSPENDED, exact whenever the account's
 * state was settled throughout the call, and the sets a reader may still
 * hold are retired safely (ASan, valgrind).
 */
static void test_suspension_under_readers(void **state)
{
    struct susp *s = calloc(1, sizeof(*s));
    const int ITER = (int)test_iterations(20000, 2000);
    pthread_t tids[NREADERS];
    uint64_t rng = 0x9e3779b97f4a7c15ULL;

    (void)state;
    assert_non_null(s);
    assert_non_null(s->cat = catalog_new());
    reset_failures();
    for (int64_t a = 1; a <= SUSP_ACCOUNTS; a++) {
        struct key_rec rec;
        memset(&rec, 0, sizeof(rec));
        rec.id = a;
        rec.account_id = a;
        snprintf(rec.name, sizeof(rec.name), "key of %" PRId64, a);
        rec.type = KEY_TYPE_PRODUCTION;
        id_prefix(a, rec.prefix);
        id_digest(a, rec.digest);
        memcpy(s->digests[a], rec.digest, DIGEST_LEN);
        rec.active = rec.primary = true;
        rec.created_at = CREATED;
        assert_int_equal(catalog_put(s->cat, &rec), 0);
    }
    for (int i = 0; i < NREADERS; i++)
        assert_int_equal(pthread_create(&tids[i], NULL, susp_reader, s), 0);
    for (int i = 0; i < ITER; i++) {
        if (pick(&rng, 50) == 0) {
            /* A whole set at once, as a reload does: every account changes at once. */
            int64_t ids[SUSP_ACCOUNTS];
            bool next[SUSP_ACCOUNTS + 1];
            size_t n = 0;
            for (int64_t a = 1; a <= SUSP_ACCOUNTS; a++) {
                next[a] = pick(&rng, 2) == 0;
                if (next[a])
                    ids[n++] = a;
                atomic_fetch_add(&s->seq[a], 1);
                atomic_store(&s->suspended[a], next[a]);
            }
            assert_int_equal(catalog_set_suspended(s->cat, ids, n), 0);
            for (int64_t a = 1; a <= SUSP_ACCOUNTS; a++)
                atomic_fetch_add(&s->seq[a], 1);
        } else {
            int64_t a = 1 + (int64_t)pick(&rng, SUSP_ACCOUNTS);
            bool on = pick(&rng, 2) == 0;
            atomic_fetch_add(&s->seq[a], 1);
            atomic_store(&s->suspended[a], on);
            assert_int_equal(catalog_suspend(s->cat, a, on), 0);
            atomic_fetch_add(&s->seq[a], 1);
        }
        if (i % 64 == 0)
            sched_yield();
    }
    atomic_store(&s->stop, 1);
    for (int i = 0; i < NREADERS; i++)
        pthread_join(tids[i], NULL);
    assert_no_failures();
    for (int64_t a = 1; a <= SUSP_ACCOUNTS; a++)
        assert_int_equal(catalog_is_suspended(s->cat, a), atomic_load(&s->suspended[a]));
    catalog_free(s->cat);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_vs_writer),
        cmocka_unit_test(test_present_keys_survive_churn),
        cmocka_unit_test_setup_teardown(test_load_swaps_worlds_under_readers, load_setup, load_teardown),
        cmocka_unit_test(test_suspension_under_readers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
