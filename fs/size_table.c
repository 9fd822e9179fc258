/* Sizes of encoded frame files already produced: a direct-mapped table (a collision only
 * forgets a size, which the next open makes again). Slots are locked in stripes, so stats
 * of different frames seldom wait on each other. */
#include "size_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define SIZE_SLOTS 4096
#define SIZE_LOCKS 64 /* slot i is under lock i % SIZE_LOCKS */

struct size_slot {
    uint64_t media;
    int frame, w, h;
    enum format format;
    uint64_t size;
};

struct size_table {
    pthread_mutex_t locks[SIZE_LOCKS];
    struct size_slot slots[SIZE_SLOTS];
};

int size_table_new(struct size_table **out)
{
    struct size_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (int i = 0; i < SIZE_LOCKS; i++)
        pthread_mutex_init(&t->locks[i], NULL);
    *out = t;
    return 0;
}

void size_table_free(struct size_table **tp)
{
    struct size_table *t = *tp;
    if (!t)
        return;
    for (int i = 0; i < SIZE_LOCKS; i++)
        pthread_mutex_destroy(&t->locks[i]);
    free(t);
    *tp = NULL;
}

/* The slot of a file, its stripe locked (size_slot_unlock drops it). */
static struct size_slot *size_slot_lock(struct size_table *t, uint64_t media, int frame, int w,
                                        int h, enum format f)
{
    uint64_t k = media * 31 + (uint64_t)frame * 7919 + (uint64_t)w * 131 + (uint64_t)h * 17 + f;
    pthread_mutex_lock(&t->locks[k % SIZE_SLOTS % SIZE_LOCKS]);
    return &t->slots[k % SIZE_SLOTS];
}

static void size_slot_unlock(struct size_table *t, const struct size_slot *s)
{
    pthread_mutex_unlock(&t->locks[(size_t)(s - t->slots) % SIZE_LOCKS]);
}

int size_table_get(struct size_table *t, uint64_t media, int frame, int w, int h, enum format f,
                   uint64_t *size)
{
    struct size_slot *s = size_slot_lock(t, media, frame, w, h, f);
    int hit = s->media == media && s->frame == frame && s->w == w && s->h == h &&
              s->format == f && s->size;
    if (hit)
        *size = s->size;
    size_slot_unlock(t, s);
    return hit;
}

void size_table_put(struct size_table *t, uint64_t media, int frame, int w, int h, enum format f,
                    uint64_t size)
{
    struct size_slot *s = size_slot_lock(t, media, frame, w, h, f);
    *s = (struct size_slot){.media = media, .frame = frame, .w = w, .h = h, .format = f,
                            .size = size};
    size_slot_unlock(t, s);
}
