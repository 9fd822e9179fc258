/* Sizes of encoded frame files already produced: a direct-mapped table (a collision only
 * forgets a size, which the next open makes again). */
#include "size_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define SIZE_SLOTS 4096

struct size_slot {
    uint64_t media;
    int frame, w, h;
    enum format format;
    uint64_t size;
};

struct size_table {
    pthread_mutex_t lock;
    struct size_slot slots[SIZE_SLOTS];
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
    pthread_mutex_destroy(&t->lock);
    free(t);
    *tp = NULL;
}

static struct size_slot *size_slot(struct size_table *t, uint64_t media, int frame, int w, int h,
                                   enum format f)
{
    uint64_t k = media * 31 + (uint64_t)frame * 7919 + (uint64_t)w * 131 + (uint64_t)h * 17 + f;
    return &t->slots[k % SIZE_SLOTS];
}

int size_table_get(struct size_table *t, uint64_t media, int frame, int w, int h, enum format f,
                   uint64_t *size)
{
    pthread_mutex_lock(&t->lock);
    struct size_slot *s = size_slot(t, media, frame, w, h, f);
    int hit = s->media == media && s->frame == frame && s->w == w && s->h == h &&
              s->format == f && s->size;
    if (hit)
        *size = s->size;
    pthread_mutex_unlock(&t->lock);
    return hit;
}

void size_table_put(struct size_table *t, uint64_t media, int frame, int w, int h, enum format f,
                    uint64_t size)
{
    pthread_mutex_lock(&t->lock);
    *size_slot(t, media, frame, w, h, f) =
        (struct size_slot){.media = media, .frame = frame, .w = w, .h = h, .format = f,
                           .size = size};
    pthread_mutex_unlock(&t->lock);
}
