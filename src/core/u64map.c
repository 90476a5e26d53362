/*
 * u64map: open addressing with linear probing. Load factor is kept at or
 * below 1/2 so probes stay short even with clustered keys.
 */
#include "core/u64map.h"

#include <stdlib.h>

#include "core/error.h"

static size_t slot_of(uint64_t key, size_t cap)
{
    /* splitmix64 finalizer: ids are sequential, digests are already random */
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebULL;
    key ^= key >> 31;
    return (size_t)key & (cap - 1);
}

void u64map_init(struct u64map *m)
{
    m->keys = NULL;
    m->vals = NULL;
    m->cap = 0;
    m->len = 0;
}

void u64map_release(struct u64map *m)
{
    free(m->keys);
    free(m->vals);
    u64map_init(m);
}

void *u64map_get(const struct u64map *m, uint64_t key)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->vals[i] == NULL)
            return NULL;
        if (m->keys[i] == key)
            return m->vals[i];
    }
}

static void insert_fresh(struct u64map *m, uint64_t key, void *val)
{
    size_t i = slot_of(key, m->cap);

    while (m->vals[i] != NULL)
        i = (i + 1) & (m->cap - 1);
    m->keys[i] = key;
    m->vals[i] = val;
    m->len++;
}

static int resize(struct u64map *m, size_t cap)
{
    struct u64map n;

    n.keys = malloc(cap * sizeof(*n.keys));
    n.vals = calloc(cap, sizeof(*n.vals));
    if (n.keys == NULL || n.vals == NULL) {
        free(n.keys);
        free(n.vals);
        return AK_ERR_NOMEM;
    }
    n.cap = cap;
    n.len = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->vals[i] != NULL)
            insert_fresh(&n, m->keys[i], m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = n;
    return 0;
}

int u64map_reserve(struct u64map *m, size_t n)
{
    size_t cap = m->cap != 0 ? m->cap : 16;

    while (cap / 2 < n) {
        if (cap > SIZE_MAX / 4)
            return AK_ERR_NOMEM;
        cap *= 2;
    }
    return cap != m->cap ? resize(m, cap) : 0;
}

int u64map_put(struct u64map *m, uint64_t key, void *val)
{
    int r;

    if (val == NULL)
        return AK_ERR_ARG;
    if (m->cap != 0) {
        for (size_t i = slot_of(key, m->cap); m->vals[i] != NULL; i = (i + 1) & (m->cap - 1)) {
            if (m->keys[i] == key) {
                m->vals[i] = val;
                return 0;
            }
        }
    }
    if ((r = u64map_reserve(m, m->len + 1)) != 0)
        return r;
    insert_fresh(m, key, val);
    return 0;
}

void *u64map_del(struct u64map *m, uint64_t key)
{
    size_t i, j, mask;
    void *val;

    if (m->cap == 0)
        return NULL;
    mask = m->cap - 1;
    for (i = slot_of(key, m->cap);; i = (i + 1) & mask) {
        if (m->vals[i] == NULL)
            return NULL;
        if (m->keys[i] == key)
            break;
    }
    val = m->vals[i];
    m->vals[i] = NULL;
    m->len--;
    /* Backward shift: pull later members of the cluster into the hole when their home allows it. */
    for (j = (i + 1) & mask; m->vals[j] != NULL; j = (j + 1) & mask) {
        size_t home = slot_of(m->keys[j], m->cap);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->vals[j] = NULL;
            i = j;
        }
    }
    return val;
}
