/* Frame cache: shards of a hash table over an LRU list, each with its own mutex, so
 * readers of different frames rarely meet on a lock. The byte bound is global (one
 * atomic count): an insert evicts the entry used longest ago of all, found at the
 * shards' LRU ends, so the frames put last survive however the keys spread (read-ahead
 * puts frames that a reader takes a few frames later). A lock is held only to move
 * pointers and refcounts, never while copying pixels. */
#include "frame_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <libavutil/pixdesc.h>

#define NSHARDS 16
#define NBUCKETS 1024 /* per shard */

struct entry {
    uint64_t media;
    int n;
    AVFrame *frame;
    size_t bytes;
    uint64_t used;             /* fc->tick at its last put or get */
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* LRU list, most recent first */
};

struct shard {
    pthread_mutex_t lock;
    struct entry *buckets[NBUCKETS];
    struct entry *head, *tail;
    uint64_t tail_used; /* atomic: tail->used, UINT64_MAX when empty, read unlocked */
    struct frame_cache_stats st; /* hits, misses, inserts, evictions, frames */
};

struct frame_cache {
    size_t max_bytes;
    size_t bytes; /* atomic: all shards together */
    uint64_t tick; /* atomic */
    struct shard shards[NSHARDS];
};

static uint64_t key_hash(uint64_t media, int n)
{
    return (media * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)(unsigned)n * 0xff51afd7ed558ccdull);
}

static struct shard *shard_of(struct frame_cache *fc, uint64_t media, int n)
{
    return &fc->shards[(key_hash(media, n) >> 20) % NSHARDS];
}

static unsigned bucket(uint64_t media, int n)
{
    return (unsigned)(key_hash(media, n) >> 32) % NBUCKETS;
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
    for (int i = 0; i < NSHARDS; i++) {
        pthread_mutex_init(&fc->shards[i].lock, NULL);
        fc->shards[i].tail_used = UINT64_MAX;
    }
    fc->max_bytes = max_bytes;
    *out = fc;
    return 0;
}

static void tail_changed(struct shard *s)
{
    __atomic_store_n(&s->tail_used, s->tail ? s->tail->used : UINT64_MAX, __ATOMIC_RELAXED);
}

static void list_unlink(struct shard *s, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
    tail_changed(s);
}

static void list_push(struct shard *s, struct entry *e)
{
    e->next = s->head;
    e->prev = NULL;
    if (s->head)
        s->head->prev = e;
    s->head = e;
    if (!s->tail)
        s->tail = e;
    tail_changed(s);
}

/* Unlinks e from its shard (under the shard's lock); the caller frees it unlocked. */
static void entry_unlink(struct frame_cache *fc, struct shard *s, struct entry *e)
{
    struct entry **pp = &s->buckets[bucket(e->media, e->n)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    list_unlink(s, e);
    __atomic_sub_fetch(&fc->bytes, e->bytes, __ATOMIC_RELAXED);
    s->st.frames--;
}

static void entry_free(struct entry *e)
{
    av_frame_free(&e->frame);
    free(e);
}

void frame_cache_free(struct frame_cache **fcp)
{
    struct frame_cache *fc = *fcp;
    if (!fc)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *s = &fc->shards[i];
        while (s->tail) {
            struct entry *e = s->tail;
            entry_unlink(fc, s, e);
            entry_free(e);
        }
        pthread_mutex_destroy(&s->lock);
    }
    free(fc);
    *fcp = NULL;
}

static struct entry *find(struct shard *s, uint64_t media, int n)
{
    for (struct entry *e = s->buckets[bucket(media, n)]; e; e = e->hnext)
        if (e->media == media && e->n == n)
            return e;
    return NULL;
}

AVFrame *frame_cache_get(struct frame_cache *fc, uint64_t media, int n)
{
    AVFrame *f = NULL;
    struct shard *s = shard_of(fc, media, n);
    pthread_mutex_lock(&s->lock);
    struct entry *e = find(s, media, n);
    if (e) {
        list_unlink(s, e);
        e->used = __atomic_add_fetch(&fc->tick, 1, __ATOMIC_RELAXED);
        list_push(s, e);
        f = av_frame_clone(e->frame);
        s->st.hits++;
    } else {
        s->st.misses++;
    }
    pthread_mutex_unlock(&s->lock);
    return f;
}

int frame_cache_has(struct frame_cache *fc, uint64_t media, int n)
{
    struct shard *s = shard_of(fc, media, n);
    pthread_mutex_lock(&s->lock);
    int has = find(s, media, n) != NULL;
    pthread_mutex_unlock(&s->lock);
    return has;
}

/* Evicts the least recently used entry of shard s; 0 when it is empty. */
static int evict_one(struct frame_cache *fc, struct shard *s)
{
    pthread_mutex_lock(&s->lock);
    struct entry *e = s->tail;
    if (e) {
        entry_unlink(fc, s, e);
        s->st.evictions++;
    }
    pthread_mutex_unlock(&s->lock);
    if (e)
        entry_free(e);
    return e != NULL;
}

/* The shard whose LRU end was used longest ago, read without locks (a stale answer
 * evicts a frame a little younger); NULL when all look empty. */
static struct shard *oldest_shard(struct frame_cache *fc)
{
    struct shard *oldest = NULL;
    uint64_t min = UINT64_MAX;
    for (int i = 0; i < NSHARDS; i++) {
        uint64_t u = __atomic_load_n(&fc->shards[i].tail_used, __ATOMIC_RELAXED);
        if (u < min) {
            min = u;
            oldest = &fc->shards[i];
        }
    }
    return oldest;
}

/* Brings the total under max_bytes - need, oldest entries first; when the oldest shard
 * turns out empty (a race), the shards in turn, so the bound holds. */
static void make_room(struct frame_cache *fc, size_t need)
{
    int next = 0, empty = 0;
    while (__atomic_load_n(&fc->bytes, __ATOMIC_RELAXED) + need > fc->max_bytes &&
           empty < NSHARDS) {
        struct shard *s = oldest_shard(fc);
        if (s && evict_one(fc, s)) {
            empty = 0;
            continue;
        }
        if (evict_one(fc, &fc->shards[next = (next + 1) % NSHARDS]))
            empty = 0;
        else
            empty++;
    }
}

/* The cache's own copy of a frame in host memory: a reference would keep the decoder's
 * pooled buffer from going back to it, and the decoder's pool would grow by every frame the
 * cache holds, outside cache_mb. Frames in device memory are kept by reference. */
static AVFrame *own_copy(const AVFrame *f)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
    if (!d || (d->flags & AV_PIX_FMT_FLAG_HWACCEL))
        return av_frame_clone(f);
    AVFrame *c = av_frame_alloc();
    if (!c)
        return NULL;
    c->format = f->format;
    c->width = f->width;
    c->height = f->height;
    if (av_frame_get_buffer(c, 0) < 0 || av_frame_copy(c, f) < 0 || av_frame_copy_props(c, f) < 0)
        av_frame_free(&c);
    return c;
}

void frame_cache_put(struct frame_cache *fc, uint64_t media, int n, const AVFrame *f)
{
    if (frame_bytes(f) > fc->max_bytes)
        return;
    struct shard *s = shard_of(fc, media, n);
    if (frame_cache_has(fc, media, n))
        return;
    AVFrame *ref = own_copy(f);
    struct entry *e = calloc(1, sizeof(*e));
    if (!ref || !e) {
        av_frame_free(&ref);
        free(e);
        return;
    }
    size_t bytes = frame_bytes(ref);
    *e = (struct entry){.media = media, .n = n, .frame = ref, .bytes = bytes,
                        .used = __atomic_add_fetch(&fc->tick, 1, __ATOMIC_RELAXED)};
    make_room(fc, bytes);
    pthread_mutex_lock(&s->lock);
    if (find(s, media, n)) {
        pthread_mutex_unlock(&s->lock);
        entry_free(e);
        return;
    }
    unsigned b = bucket(media, n);
    e->hnext = s->buckets[b];
    s->buckets[b] = e;
    list_push(s, e);
    __atomic_add_fetch(&fc->bytes, bytes, __ATOMIC_RELAXED);
    s->st.frames++;
    s->st.inserts++;
    pthread_mutex_unlock(&s->lock);
    make_room(fc, 0); /* puts racing past the first check: the bound still holds */
}

void frame_cache_stats(struct frame_cache *fc, struct frame_cache_stats *st)
{
    *st = (struct frame_cache_stats){0};
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *s = &fc->shards[i];
        pthread_mutex_lock(&s->lock);
        st->hits += s->st.hits;
        st->misses += s->st.misses;
        st->inserts += s->st.inserts;
        st->evictions += s->st.evictions;
        st->frames += s->st.frames;
        pthread_mutex_unlock(&s->lock);
    }
    st->bytes = __atomic_load_n(&fc->bytes, __ATOMIC_RELAXED);
    st->max_bytes = fc->max_bytes;
}
