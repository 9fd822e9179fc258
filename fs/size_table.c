/* Sizes of encoded frame files: a direct-mapped table (a collision only forgets a size,
 * which the next lookup makes again); their bytes: a short ring of the newest. */
#include "size_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SIZE_SLOTS 4096
/* A lookup and its open come one after the other, so a few suffice; images larger than
 * KEPT_MAX (4K png) are encoded again rather than held: at most 32 MiB kept. */
#define KEPT 8
#define KEPT_MAX (4u << 20)

struct size_slot {
    struct size_key key;
    uint64_t size;
};

struct kept {
    struct size_key key;
    uint8_t *bytes;
    size_t size;
};

struct size_table {
    pthread_mutex_t lock;
    struct size_slot slots[SIZE_SLOTS];
    struct kept kept[KEPT];
    int next; /* the ring's oldest entry, replaced next */
};

int size_table_new(struct size_table **out)
{
    struct size_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
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
    pthread_mutex_destroy(&t->lock);
    free(t);
    *tp = NULL;
}

static int same(const struct size_key *a, const struct size_key *b)
{
    return a->media == b->media && a->frame == b->frame && a->w == b->w && a->h == b->h &&
           a->format == b->format;
}

static struct size_slot *size_slot(struct size_table *t, const struct size_key *k)
{
    uint64_t h = k->media * 31 + (uint64_t)k->frame * 7919 + (uint64_t)k->w * 131 +
                 (uint64_t)k->h * 17 + k->format;
    return &t->slots[h % SIZE_SLOTS];
}

int size_table_get(struct size_table *t, const struct size_key *k, uint64_t *size)
{
    pthread_mutex_lock(&t->lock);
    struct size_slot *s = size_slot(t, k);
    int hit = s->size && same(&s->key, k);
    if (hit)
        *size = s->size;
    pthread_mutex_unlock(&t->lock);
    return hit;
}

void size_table_put(struct size_table *t, const struct size_key *k, const uint8_t *bytes,
                    size_t size)
{
    uint8_t *copy = size <= KEPT_MAX ? malloc(size ? size : 1) : NULL;
    if (copy)
        memcpy(copy, bytes, size);
    pthread_mutex_lock(&t->lock);
    *size_slot(t, k) = (struct size_slot){.key = *k, .size = size};
    struct kept *e = &t->kept[t->next];
    uint8_t *old = copy ? e->bytes : NULL;
    if (copy) {
        *e = (struct kept){.key = *k, .bytes = copy, .size = size};
        t->next = (t->next + 1) % KEPT;
    }
    pthread_mutex_unlock(&t->lock);
    free(old);
}

int size_table_bytes(struct size_table *t, const struct size_key *k, uint8_t **bytes,
                     size_t *size)
{
    int ret = 0;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < KEPT && !ret; i++) {
        const struct kept *e = &t->kept[i];
        if (!e->bytes || !same(&e->key, k))
            continue;
        *bytes = malloc(e->size ? e->size : 1);
        ret = *bytes ? 1 : -ENOMEM;
        if (*bytes) {
            memcpy(*bytes, e->bytes, e->size);
            *size = e->size;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return ret;
}
