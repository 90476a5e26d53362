/*
 * u64map: an open-addressing hash map from 64-bit integers to non-NULL
 * pointers (linear probing, backward-shift deletion, power-of-two capacity).
 * Not thread-safe: the owner serializes access. The map owns only its
 * arrays, never the values.
 */
#ifndef APIKEYD_CORE_U64MAP_H
#define APIKEYD_CORE_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct u64map {
    uint64_t *keys;
    void **vals; /* NULL marks an empty slot */
    size_t cap;  /* 0 or a power of two */
    size_t len;
};

/* Initializes an empty map; allocates nothing. */
void u64map_init(struct u64map *m);

/* Frees the arrays (not the values) and leaves the map empty. */
void u64map_release(struct u64map *m);

/* The value stored under `key`, or NULL. */
void *u64map_get(const struct u64map *m, uint64_t key);

/* Stores `val` (non-NULL) under `key`, replacing any previous value. Returns 0 or AK_ERR_NOMEM / AK_ERR_ARG. */
int u64map_put(struct u64map *m, uint64_t key, void *val);

/* Removes `key`; returns the value it held, or NULL. */
void *u64map_del(struct u64map *m, uint64_t key);

/* Makes room for `n` entries in total. Returns 0 or AK_ERR_NOMEM. */
int u64map_reserve(struct u64map *m, size_t n);

#endif
