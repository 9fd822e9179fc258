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
/* Slots a key may take (a set): frames 15 apart in png and jpg shared the one slot of a
 * weak hash, so a size was forgotten between the stat and the open and encoded again. */
#define SIZE_WAYS 4
/* A lookup and its open come one after the other; KEPT of them at once (loader workers),
 * and KEPT_BYTES, which holds two 4K frames as png (under 25 MiB each). */
#define KEPT 32
#define KEPT_BYTES (64u << 20)
#define SIZE_LOCKS 64 /* slot i is under lock i % SIZE_LOCKS */
#define MAX_CLAIMS 64 /* encodes under way at once (request threads) */

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
    pthread_mutex_t lock; /* the ring of kept bytes, and the claims */
    struct kept kept[KEPT];
    int next;           /* the ring's oldest entry, replaced next */
    size_t kept_bytes;
    /* Files being encoded by a lookup now: another lookup of one waits for it. */
    struct size_key claims[MAX_CLAIMS];
    int nclaims;
    pthread_cond_t made; /* a claim was released */
};

int size_table_new(struct size_table **out)
{
    struct size_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (int i = 0; i < SIZE_LOCKS; i++)
        pthread_mutex_init(&t->locks[i], NULL);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->made, NULL);
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
    pthread_cond_destroy(&t->made);
    free(t);
    *tp = NULL;
}

static int same(const struct size_key *a, const struct size_key *b)
{
    return a->media == b->media && a->frame == b->frame && a->w == b->w && a->h == b->h &&
           a->format == b->format;
}

static uint64_t key_hash(const struct size_key *k)
{
    uint64_t h = k->media * 0x9e3779b97f4a7c15ull;
    h ^= ((uint64_t)(unsigned)k->frame << 32 | (uint64_t)(unsigned)k->format) * 0xff51afd7ed558ccdull;
    h ^= ((uint64_t)(unsigned)k->w << 32 | (uint64_t)(unsigned)k->h) * 0xc4ceb9fe1a85ec53ull;
    return h ^ h >> 29;
}

/* The first slot of k's set, the set's stripe locked (set_unlock drops it). */
static struct size_slot *set_lock(struct size_table *t, const struct size_key *k, uint64_t *h)
{
    *h = key_hash(k);
    size_t set = (size_t)(*h % (SIZE_SLOTS / SIZE_WAYS));
    pthread_mutex_lock(&t->locks[set % SIZE_LOCKS]);
    return &t->slots[set * SIZE_WAYS];
}

static void set_unlock(struct size_table *t, const struct size_slot *set)
{
    pthread_mutex_unlock(&t->locks[(size_t)(set - t->slots) / SIZE_WAYS % SIZE_LOCKS]);
}

int size_table_get(struct size_table *t, const struct size_key *k, uint64_t *size)
{
    uint64_t h;
    struct size_slot *set = set_lock(t, k, &h);
    int hit = 0;
    for (int i = 0; i < SIZE_WAYS && !hit; i++)
        if ((hit = set[i].size && same(&set[i].key, k)))
            *size = set[i].size;
    set_unlock(t, set);
    return hit;
}

void size_table_put(struct size_table *t, const struct size_key *k, uint64_t size)
{
    uint64_t h;
    struct size_slot *set = set_lock(t, k, &h);
    /* k's own slot, else a free one, else one picked by the hash's high bits. */
    int way = -1;
    for (int i = 0; i < SIZE_WAYS && way < 0; i++)
        if (set[i].size && same(&set[i].key, k))
            way = i;
    for (int i = 0; i < SIZE_WAYS && way < 0; i++)
        if (!set[i].size)
            way = i;
    if (way < 0)
        way = (int)(h >> 60) % SIZE_WAYS;
    set[way] = (struct size_slot){.key = *k, .size = size};
    set_unlock(t, set);
}

/* Index of k among the claims, -1 if none. Under t->lock. */
static int claim_of(const struct size_table *t, const struct size_key *k)
{
    for (int i = 0; i < t->nclaims; i++)
        if (same(&t->claims[i], k))
            return i;
    return -1;
}

/* Under t->lock. */
static void release_claim(struct size_table *t, const struct size_key *k)
{
    int i = claim_of(t, k);
    if (i < 0)
        return;
    t->claims[i] = t->claims[--t->nclaims];
    pthread_cond_broadcast(&t->made);
}

int size_table_claim(struct size_table *t, const struct size_key *k, uint64_t *size)
{
    pthread_mutex_lock(&t->lock);
    int known;
    while (!(known = size_table_get(t, k, size)) && claim_of(t, k) >= 0)
        pthread_cond_wait(&t->made, &t->lock);
    if (!known && t->nclaims < MAX_CLAIMS)
        t->claims[t->nclaims++] = *k;
    pthread_mutex_unlock(&t->lock);
    return !known;
}

void size_table_abandon(struct size_table *t, const struct size_key *k)
{
    pthread_mutex_lock(&t->lock);
    release_claim(t, k);
    pthread_mutex_unlock(&t->lock);
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
    release_claim(t, k);
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
