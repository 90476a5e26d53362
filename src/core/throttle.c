/*
 * throttle: see throttle.h. Open addressing over a fixed table with a short
 * probe; an entry whose window is over is free for reuse.
 */
#include "core/throttle.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PROBE 8

struct slot {
    uint8_t addr[THROTTLE_ADDR_MAX];
    uint8_t len;
    int64_t window; /* start of the window, 0: free */
    unsigned count;
};

struct throttle {
    pthread_mutex_t lock;
    unsigned limit;
    size_t mask;
    struct slot *slots;
};

struct throttle *throttle_new(unsigned limit, size_t slots)
{
    struct throttle *t = calloc(1, sizeof(*t));
    size_t n = 16;

    while (n < slots)
        n *= 2;
    if (t == NULL || (t->slots = calloc(n, sizeof(*t->slots))) == NULL) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->limit = limit;
    t->mask = n - 1;
    return t;
}

void throttle_free(struct throttle *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
}

static size_t hash(const uint8_t *addr, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++)
        h = (h ^ addr[i]) * 0x100000001b3ULL;
    return (size_t)(h ^ (h >> 29));
}

unsigned throttle_fail(struct throttle *t, const uint8_t *addr, size_t len, int64_t now)
{
    struct slot *s = NULL, *victim = NULL;
    bool victim_live = false;
    size_t h;
    unsigned wait = 0;

    if (len > THROTTLE_ADDR_MAX)
        len = THROTTLE_ADDR_MAX;
    h = hash(addr, len);
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < PROBE; i++) {
        struct slot *c = &t->slots[(h + i) & t->mask];
        bool live = c->window != 0 && now < c->window + THROTTLE_WINDOW;
        if (live && c->len == len && memcmp(c->addr, addr, len) == 0) {
            s = c;
            break;
        }
        /* Reuse a free or expired slot first; if all are live, the stalest. */
        if (!live) {
            if (victim == NULL || victim_live) {
                victim = c;
                victim_live = false;
            }
        } else if (victim == NULL || (victim_live && c->window < victim->window)) {
            victim = c;
            victim_live = true;
        }
    }
    if (s == NULL) {
        s = victim;
        memcpy(s->addr, addr, len);
        s->len = (uint8_t)len;
        s->window = now;
        s->count = 0;
    }
    if (++s->count > t->limit) {
        int64_t left = s->window + THROTTLE_WINDOW - now;
        wait = left > 0 ? (unsigned)left : 1;
    }
    pthread_mutex_unlock(&t->lock);
    return wait;
}

unsigned throttle_blocked(struct throttle *t, int64_t now)
{
    unsigned n = 0;

    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i <= t->mask; i++) {
        const struct slot *c = &t->slots[i];
        if (c->window != 0 && now < c->window + THROTTLE_WINDOW && c->count > t->limit)
            n++;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}
