/* Frame cache: a hash table of (media, frame) keys over an LRU list, one mutex. The lock
 * is held only to move pointers and refcounts, never while copying pixels. */
#include "frame_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define NBUCKETS 16384

struct entry {
    uint64_t media;
    int n;
    AVFrame *frame;
    size_t bytes;
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* LRU list, most recent first */
};

struct frame_cache {
    pthread_mutex_t lock;
    struct entry *buckets[NBUCKETS];
    struct entry *head, *tail;
    size_t bytes, max_bytes;
    struct frame_cache_stats st;
};

static unsigned bucket(uint64_t media, int n)
{
    uint64_t h = (media * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)(unsigned)n * 0xff51afd7ed558ccdull);
    return (unsigned)(h >> 32) % NBUCKETS;
}

static size_t frame_bytes(const AVFrame *f)
{
    size_t n = 0;
    for (int i = 0; i < AV_NUM_DATA_POINTERS && f->buf[i]; i++)
        n += f->buf[i]->size;
    return n + sizeof(struct entry);
}

int frame_cache_new(size_t max_bytes, struct frame_cache **out)
{
    struct frame_cache *fc = calloc(1, sizeof(*fc));
    if (!fc)
        return -ENOMEM;
    pthread_mutex_init(&fc->lock, NULL);
    fc->max_bytes = max_bytes;
    *out = fc;
    return 0;
}

static void list_unlink(struct frame_cache *fc, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        fc->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        fc->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push(struct frame_cache *fc, struct entry *e)
{
    e->next = fc->head;
    e->prev = NULL;
    if (fc->head)
        fc->head->prev = e;
    fc->head = e;
    if (!fc->tail)
        fc->tail = e;
}

static void entry_remove(struct frame_cache *fc, struct entry *e)
{
    struct entry **pp = &fc->buckets[bucket(e->media, e->n)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    list_unlink(fc, e);
    fc->bytes -= e->bytes;
    fc->st.frames--;
    av_frame_free(&e->frame);
    free(e);
}

void frame_cache_free(struct frame_cache **fcp)
{
    struct frame_cache *fc = *fcp;
    if (!fc)
        return;
    while (fc->tail)
        entry_remove(fc, fc->tail);
    pthread_mutex_destroy(&fc->lock);
    free(fc);
    *fcp = NULL;
}

static struct entry *find(struct frame_cache *fc, uint64_t media, int n)
{
    for (struct entry *e = fc->buckets[bucket(media, n)]; e; e = e->hnext)
        if (e->media == media && e->n == n)
            return e;
    return NULL;
}

AVFrame *frame_cache_get(struct frame_cache *fc, uint64_t media, int n)
{
    AVFrame *f = NULL;
    pthread_mutex_lock(&fc->lock);
    struct entry *e = find(fc, media, n);
    if (e) {
        list_unlink(fc, e);
        list_push(fc, e);
        f = av_frame_clone(e->frame);
        fc->st.hits++;
    } else {
        fc->st.misses++;
    }
    pthread_mutex_unlock(&fc->lock);
    return f;
}

int frame_cache_has(struct frame_cache *fc, uint64_t media, int n)
{
    pthread_mutex_lock(&fc->lock);
    int has = find(fc, media, n) != NULL;
    pthread_mutex_unlock(&fc->lock);
    return has;
}

void frame_cache_put(struct frame_cache *fc, uint64_t media, int n, const AVFrame *f)
{
    size_t bytes = frame_bytes(f);
    if (bytes > fc->max_bytes)
        return;
    AVFrame *ref = av_frame_clone(f);
    struct entry *e = calloc(1, sizeof(*e));
    if (!ref || !e) {
        av_frame_free(&ref);
        free(e);
        return;
    }
    *e = (struct entry){.media = media, .n = n, .frame = ref, .bytes = bytes};
    pthread_mutex_lock(&fc->lock);
    if (find(fc, media, n)) {
        pthread_mutex_unlock(&fc->lock);
        av_frame_free(&e->frame);
        free(e);
        return;
    }
    while (fc->tail && fc->bytes + bytes > fc->max_bytes) {
        entry_remove(fc, fc->tail);
        fc->st.evictions++;
    }
    unsigned b = bucket(media, n);
    e->hnext = fc->buckets[b];
    fc->buckets[b] = e;
    list_push(fc, e);
    fc->bytes += bytes;
    fc->st.frames++;
    fc->st.inserts++;
    pthread_mutex_unlock(&fc->lock);
}

void frame_cache_stats(struct frame_cache *fc, struct frame_cache_stats *st)
{
    pthread_mutex_lock(&fc->lock);
    *st = fc->st;
    st->bytes = fc->bytes;
    st->max_bytes = fc->max_bytes;
    pthread_mutex_unlock(&fc->lock);
}
