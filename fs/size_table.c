/* Sizes of encoded frame files: a direct-mapped table (a collision only forgets a size,
 * which the next lookup makes again), its slots locked in stripes so that stats of
 * different frames seldom wait on each other; their bytes: a ring of the newest, bounded in
 * bytes, under a lock of its own. */
#include "size_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SIZE_SLOTS 4096
/* A lookup and its open come one after the other; KEPT of them at once (loader workers),
 * and KEPT_BYTES, which holds two 4K frames as png (under 25 MiB each). */
#define KEPT 32
#define KEPT_BYTES (64u << 20)
#define SIZE_LOCKS 64 /* slot i is under lock i % SIZE_LOCKS */

struct size_slot {
    struct size_key key;
    uint64_t size;
};

struct kept {
    struct size_key key;
    uint8_t *bytes; /* NULL: free */
    size_t size;
};

struct size_table {
    pthread_mutex_t locks[SIZE_LOCKS];
    struct size_slot slots[SIZE_SLOTS];
    pthread_mutex_t lock; /* the ring of kept bytes */
    struct kept kept[KEPT];
    int next;           /* the ring's oldest entry, replaced next */
    size_t kept_bytes;
};

int size_table_new(struct size_table **out)
{
    struct size_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (int i = 0; i < SIZE_LOCKS; i++)
        pthread_mutex_init(&t->locks[i], NULL);
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return 0;
}

void size_table_free(struct size_table **tp)
{
    struct size_table *t = *tp;
    if (!t)
        return;
    for (int i = 0; i < KEPT; i++)
        free(t->kept[i].bytes);
    for (int i = 0; i < SIZE_LOCKS; i++)
        pthread_mutex_destroy(&t->locks[i]);
    pthread_mutex_destroy(&t->lock);
    free(t);
    *tp = NULL;
}

static int same(const struct size_key *a, const struct size_key *b)
{
    return a->media == b->media && a->frame == b->frame && a->w == b->w && a->h == b->h &&
           a->format == b->format;
}

/* The slot of k, its stripe locked (size_slot_unlock drops it). */
static struct size_slot *size_slot_lock(struct size_table *t, const struct size_key *k)
{
    uint64_t h = k->media * 31 + (uint64_t)k->frame * 7919 + (uint64_t)k->w * 131 +
                 (uint64_t)k->h * 17 + k->format;
    pthread_mutex_lock(&t->locks[h % SIZE_SLOTS % SIZE_LOCKS]);
    return &t->slots[h % SIZE_SLOTS];
}

static void size_slot_unlock(struct size_table *t, const struct size_slot *s)
{
    pthread_mutex_unlock(&t->locks[(size_t)(s - t->slots) % SIZE_LOCKS]);
}

int size_table_get(struct size_table *t, const struct size_key *k, uint64_t *size)
{
    struct size_slot *s = size_slot_lock(t, k);
    int hit = s->size && same(&s->key, k);
    if (hit)
        *size = s->size;
    size_slot_unlock(t, s);
    return hit;
}

void size_table_put(struct size_table *t, const struct size_key *k, uint64_t size)
{
    struct size_slot *s = size_slot_lock(t, k);
    *s = (struct size_slot){.key = *k, .size = size};
    size_slot_unlock(t, s);
}

static void drop(struct size_table *t, struct kept *e)
{
    t->kept_bytes -= e->size;
    free(e->bytes);
    *e = (struct kept){0};
}

void size_table_keep(struct size_table *t, const struct size_key *k, uint8_t *bytes,
                     size_t size)
{
    size_table_put(t, k, size);
    pthread_mutex_lock(&t->lock);
    if (size > KEPT_BYTES) {
        pthread_mutex_unlock(&t->lock);
        free(bytes);
        return;
    }
    /* The oldest go until the new one fits, then it takes the oldest's place. */
    for (int i = 0; i < KEPT && (t->kept[t->next].bytes || t->kept_bytes + size > KEPT_BYTES);
         i++) {
        struct kept *e = &t->kept[(t->next + i) % KEPT];
        if (e->bytes)
            drop(t, e);
    }
    t->kept[t->next] = (struct kept){.key = *k, .bytes = bytes, .size = size};
    t->kept_bytes += size;
    t->next = (t->next + 1) % KEPT;
    pthread_mutex_unlock(&t->lock);
}

int size_table_take(struct size_table *t, const struct size_key *k, uint8_t **bytes,
                    size_t *size)
{
    int hit = 0;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < KEPT && !hit; i++) {
        struct kept *e = &t->kept[i];
        if (!e->bytes || !same(&e->key, k))
            continue;
        *bytes = e->bytes;
        *size = e->size;
        t->kept_bytes -= e->size;
        *e = (struct kept){0};
        hit = 1;
    }
    pthread_mutex_unlock(&t->lock);
    return hit;
}
