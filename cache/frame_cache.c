/* Frame cache: shards of a hash table over an LRU list, each with its own mutex, so
 * readers of different frames rarely meet on a lock. The byte bound is global (one
 * atomic count): an insert evicts the entry used longest ago of all, found at the
 * shards' LRU ends, so the frames put last survive however the keys spread (read-ahead
 * puts frames that a reader takes a few frames later). A lock is held only to move
 * pointers and refcounts, never while copying pixels.
 *
 * Host frames live in buffers the cache recycles (CPU decoders decode into them): a buffer
 * whose last reference goes (its entry evicted or dropped, a decoder done with it) waits
 * on a short idle list for the next frame of its size, so a cache that turns over never
 * writes to fresh pages (the kernel zeroes each one first: a fifth of the daemon's time
 * reading 1080p frames in order). The idle list is outside the bound, small and capped:
 * an evicted buffer must wait there for the frame that evicted it.
 *
 * Two segments (a segmented LRU): frames put on the way (decoded past, read ahead) start on
 * probation; a frame a reader asked for out of order (frame_cache_protect) is protected,
 * and goes only once no probation frame is left, or when the protected ones pass their
 * share and the oldest is sent back to probation. Otherwise the pictures a seek decodes on its way (36
 * a frame at GOP 100) pushed out the frames readers had asked for: 30 random 1080p frames
 * read again took 3.9 s instead of 0.1. */
#include "frame_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <libavutil/imgutils.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>

#define NSHARDS 16
#define NBUCKETS 1024 /* per shard */
#define IDLE_MAX 4    /* buffers kept for reuse: a few frame sizes at once */
#define IDLE_MAX_BYTES (64u << 20)
#define LINE_ALIGN 64 /* the widest SIMD load of the converters */
#define BUF_PAD 64    /* read past the last line by SIMD tails */
/* Protected frames' share of the bound, in quarters: probation keeps room for read-ahead. */
#define PROTECTED_QUARTERS 3
/* Added to a protected tail's age when shards compare victims: probation goes first. */
#define PROTECTED_BIAS (1ull << 62)

/* One recycled host buffer; the opaque of the AVBufferRefs made over it. */
struct hostbuf {
    struct frame_cache *fc;
    uint8_t *data;
    size_t size;
    struct hostbuf *next; /* idle list */
};

struct entry {
    uint64_t media;
    int n;
    AVFrame *frame;
    size_t bytes;
    uint64_t used;             /* fc->tick at its last put or get */
    int prot;                  /* in the protected segment */
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* its segment's LRU list, most recent first */
};

struct lru {
    struct entry *head, *tail;
};

struct shard {
    pthread_mutex_t lock;
    struct entry *buckets[NBUCKETS];
    struct lru lru[2]; /* probation, protected */
    /* Read unlocked (atomic), UINT64_MAX when none: the age of the entry an eviction would
     * take (protected ones biased), and of the oldest protected one. */
    uint64_t victim_used, prot_used;
    struct frame_cache_stats st; /* all but bytes and max_bytes */
};

struct frame_cache {
    size_t max_bytes;
    size_t bytes; /* atomic: all shards together */
    size_t prot_bytes, prot_max; /* atomic: protected entries of all shards; their share */
    uint64_t tick; /* atomic */
    int refs;      /* atomic: the owner's, and one per hostbuf alive */
    uint64_t allocs; /* atomic: hostbufs allocated */
    pthread_mutex_t idle_lock;
    struct hostbuf *idle; /* most recently freed first */
    int nidle;
    size_t idle_bytes;
    int closing; /* under idle_lock: frame_cache_free ran, buffers are freed as they go */
    AVBufferRef *tag; /* the opaque_ref of frames in the cache's buffers */
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
        fc->shards[i].victim_used = fc->shards[i].prot_used = UINT64_MAX;
    }
    pthread_mutex_init(&fc->idle_lock, NULL);
    fc->refs = 1;
    if (!(fc->tag = av_buffer_allocz(1))) {
        frame_cache_free(&fc);
        return -ENOMEM;
    }
    fc->max_bytes = max_bytes;
    fc->prot_max = max_bytes / 4 * PROTECTED_QUARTERS;
    *out = fc;
    return 0;
}

/* The entry an eviction takes from s: probation's oldest, else the protected oldest. */
static struct entry *victim(struct shard *s)
{
    return s->lru[0].tail ? s->lru[0].tail : s->lru[1].tail;
}

static void tail_changed(struct shard *s)
{
    struct entry *v = victim(s), *p = s->lru[1].tail;
    __atomic_store_n(&s->victim_used, !v ? UINT64_MAX : v->used + (v->prot ? PROTECTED_BIAS : 0),
                     __ATOMIC_RELAXED);
    __atomic_store_n(&s->prot_used, p ? p->used : UINT64_MAX, __ATOMIC_RELAXED);
}

static void list_unlink(struct shard *s, struct entry *e)
{
    struct lru *l = &s->lru[e->prot];
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    tail_changed(s);
}

static void list_push(struct shard *s, struct entry *e)
{
    struct lru *l = &s->lru[e->prot];
    e->next = l->head;
    e->prev = NULL;
    if (l->head)
        l->head->prev = e;
    l->head = e;
    if (!l->tail)
        l->tail = e;
    tail_changed(s);
}

/* Moves e (linked in s) to the head of segment prot, as used now. */
static void move_to(struct frame_cache *fc, struct shard *s, struct entry *e, int prot)
{
    list_unlink(s, e);
    if (prot && !e->prot)
        __atomic_add_fetch(&fc->prot_bytes, e->bytes, __ATOMIC_RELAXED);
    else if (!prot && e->prot)
        __atomic_sub_fetch(&fc->prot_bytes, e->bytes, __ATOMIC_RELAXED);
    e->prot = prot;
    e->used = __atomic_add_fetch(&fc->tick, 1, __ATOMIC_RELAXED);
    list_push(s, e);
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
    if (e->prot)
        __atomic_sub_fetch(&fc->prot_bytes, e->bytes, __ATOMIC_RELAXED);
    s->st.frames--;
}

static void entry_free(struct entry *e)
{
    av_frame_free(&e->frame);
    free(e);
}

/* Frees the cache once its owner and every buffer handed out are gone. */
static void cache_unref(struct frame_cache *fc)
{
    if (__atomic_sub_fetch(&fc->refs, 1, __ATOMIC_ACQ_REL))
        return;
    for (int i = 0; i < NSHARDS; i++)
        pthread_mutex_destroy(&fc->shards[i].lock);
    pthread_mutex_destroy(&fc->idle_lock);
    av_buffer_unref(&fc->tag);
    free(fc);
}

static void hostbuf_free(struct hostbuf *hb)
{
    struct frame_cache *fc = hb->fc;
    av_free(hb->data);
    free(hb);
    cache_unref(fc);
}

/* Unlinks *pp from the idle list. Under idle_lock. */
static struct hostbuf *idle_unlink(struct frame_cache *fc, struct hostbuf **pp)
{
    struct hostbuf *hb = *pp;
    *pp = hb->next;
    fc->nidle--;
    fc->idle_bytes -= hb->size;
    return hb;
}

/* The idle buffer freed longest ago, unlinked, when the list is over its caps (all: when
 * not empty); else NULL. Under idle_lock. */
static struct hostbuf *idle_excess(struct frame_cache *fc, int all)
{
    if (!fc->idle || (!all && fc->nidle <= IDLE_MAX && fc->idle_bytes <= IDLE_MAX_BYTES))
        return NULL;
    struct hostbuf **pp = &fc->idle;
    while ((*pp)->next)
        pp = &(*pp)->next;
    return idle_unlink(fc, pp);
}

/* Frees idle buffers, oldest first, until the list is within its caps (all: empty). */
static void idle_trim(struct frame_cache *fc, int all)
{
    for (;;) {
        pthread_mutex_lock(&fc->idle_lock);
        struct hostbuf *hb = idle_excess(fc, all);
        pthread_mutex_unlock(&fc->idle_lock);
        if (!hb)
            return;
        hostbuf_free(hb);
    }
}

void frame_cache_free(struct frame_cache **fcp)
{
    struct frame_cache *fc = *fcp;
    if (!fc)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *s = &fc->shards[i];
        for (struct entry *e; (e = victim(s));) {
            entry_unlink(fc, s, e);
            entry_free(e);
        }
    }
    pthread_mutex_lock(&fc->idle_lock);
    fc->closing = 1;
    pthread_mutex_unlock(&fc->idle_lock);
    idle_trim(fc, 1);
    cache_unref(fc); /* references handed out keep it until they go */
    *fcp = NULL;
}

/* The last reference to a buffer went: it waits for the next frame of its size, and the
 * buffer freed longest ago goes when the list is over its caps. */
static void hostbuf_release(void *opaque, uint8_t *data)
{
    (void)data;
    struct hostbuf *hb = opaque;
    struct frame_cache *fc = hb->fc;
    pthread_mutex_lock(&fc->idle_lock);
    int keep = !fc->closing;
    if (keep) {
        hb->next = fc->idle;
        fc->idle = hb;
        fc->nidle++;
        fc->idle_bytes += hb->size;
    }
    pthread_mutex_unlock(&fc->idle_lock);
    if (keep)
        idle_trim(fc, 0);
    else
        hostbuf_free(hb);
}

/* An idle buffer of exactly size bytes taken off the list, or NULL. */
static struct hostbuf *idle_take(struct frame_cache *fc, size_t size)
{
    pthread_mutex_lock(&fc->idle_lock);
    struct hostbuf **pp = &fc->idle;
    while (*pp && (*pp)->size != size)
        pp = &(*pp)->next;
    struct hostbuf *hb = *pp ? idle_unlink(fc, pp) : NULL;
    pthread_mutex_unlock(&fc->idle_lock);
    return hb;
}

/* A buffer of size bytes over a recycled or new host buffer. */
static AVBufferRef *hostbuf_get(struct frame_cache *fc, size_t size)
{
    struct hostbuf *hb = idle_take(fc, size);
    if (!hb) {
        if (!(hb = calloc(1, sizeof(*hb))) || !(hb->data = av_malloc(size))) {
            free(hb);
            return NULL;
        }
        hb->fc = fc;
        hb->size = size;
        __atomic_add_fetch(&fc->refs, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&fc->allocs, 1, __ATOMIC_RELAXED);
    }
    AVBufferRef *ref = av_buffer_create(hb->data, size, hostbuf_release, hb, 0);
    if (!ref)
        hostbuf_release(hb, hb->data);
    return ref;
}

static struct entry *find(struct shard *s, uint64_t media, int n)
{
    for (struct entry *e = s->buckets[bucket(media, n)]; e; e = e->hnext)
        if (e->media == media && e->n == n)
            return e;
    return NULL;
}

/* Sends the oldest protected entries back to probation while they pass their share. */
static void demote(struct frame_cache *fc)
{
    for (int tries = 0; __atomic_load_n(&fc->prot_bytes, __ATOMIC_RELAXED) > fc->prot_max &&
                        tries < 2 * NSHARDS;
         tries++) {
        struct shard *oldest = NULL;
        uint64_t min = UINT64_MAX;
        for (int i = 0; i < NSHARDS; i++) {
            uint64_t u = __atomic_load_n(&fc->shards[i].prot_used, __ATOMIC_RELAXED);
            if (u < min)
                min = u, oldest = &fc->shards[i];
        }
        if (!oldest)
            return;
        pthread_mutex_lock(&oldest->lock);
        if (oldest->lru[1].tail)
            move_to(fc, oldest, oldest->lru[1].tail, 0);
        pthread_mutex_unlock(&oldest->lock);
    }
}

AVFrame *frame_cache_get(struct frame_cache *fc, uint64_t media, int n)
{
    AVFrame *f = NULL;
    struct shard *s = shard_of(fc, media, n);
    pthread_mutex_lock(&s->lock);
    struct entry *e = find(s, media, n);
    if (e) {
        move_to(fc, s, e, e->prot);
        f = av_frame_clone(e->frame);
        s->st.hits++;
    } else {
        s->st.misses++;
    }
    pthread_mutex_unlock(&s->lock);
    return f;
}

void frame_cache_protect(struct frame_cache *fc, uint64_t media, int n)
{
    struct shard *s = shard_of(fc, media, n);
    pthread_mutex_lock(&s->lock);
    struct entry *e = find(s, media, n);
    if (e)
        move_to(fc, s, e, 1);
    pthread_mutex_unlock(&s->lock);
    if (e)
        demote(fc);
}

int frame_cache_has(struct frame_cache *fc, uint64_t media, int n)
{
    struct shard *s = shard_of(fc, media, n);
    pthread_mutex_lock(&s->lock);
    int has = find(s, media, n) != NULL;
    pthread_mutex_unlock(&s->lock);
    return has;
}

/* Removes the entry of (media, n) from shard s when drop, else (an eviction) its least
 * recently used one; 0 when there is none. */
static int remove_one(struct frame_cache *fc, struct shard *s, int drop, uint64_t media, int n)
{
    pthread_mutex_lock(&s->lock);
    struct entry *e = drop ? find(s, media, n) : victim(s);
    if (e) {
        entry_unlink(fc, s, e);
        if (drop)
            s->st.dropped++;
        else
            s->st.evictions++;
    }
    pthread_mutex_unlock(&s->lock);
    if (e)
        entry_free(e);
    return e != NULL;
}

static int evict_one(struct frame_cache *fc, struct shard *s)
{
    return remove_one(fc, s, 0, 0, 0);
}

/* The shard whose victim was used longest ago (probation before protected), read without
 * locks (a stale answer evicts a frame a little younger); NULL when all look empty. */
static struct shard *oldest_shard(struct frame_cache *fc)
{
    struct shard *oldest = NULL;
    uint64_t min = UINT64_MAX;
    for (int i = 0; i < NSHARDS; i++) {
        uint64_t u = __atomic_load_n(&fc->shards[i].victim_used, __ATOMIC_RELAXED);
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

/* 1 when f is in host memory (the cache copies it). */
static int is_host(const AVFrame *f)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
    return d && !(d->flags & AV_PIX_FMT_FLAG_HWACCEL);
}

/* Line sizes of a w x h picture in format fmt, lines aligned to LINE_ALIGN, and the bytes
 * of its buffer; 0 when fmt has no such layout. */
static size_t layout(enum AVPixelFormat fmt, int w, int h, int linesize[4], size_t plane[4])
{
    ptrdiff_t ls[4];
    if (av_image_fill_linesizes(linesize, fmt, FFALIGN(w, LINE_ALIGN)) < 0)
        return 0;
    for (int i = 0; i < 4; i++)
        ls[i] = linesize[i] = FFALIGN(linesize[i], LINE_ALIGN);
    if (av_image_fill_plane_sizes(plane, fmt, h, ls) < 0)
        return 0;
    return plane[0] + plane[1] + plane[2] + plane[3] + BUF_PAD;
}

int frame_cache_frame_buffer(struct frame_cache *fc, AVFrame *f, int width, int height)
{
    int linesize[4] = {0};
    size_t plane[4] = {0}, size = layout(f->format, width, height, linesize, plane);
    if (!size)
        return -EINVAL;
    if (!(f->buf[0] = hostbuf_get(fc, size)) || av_buffer_replace(&f->opaque_ref, fc->tag) < 0) {
        av_buffer_unref(&f->buf[0]);
        return -ENOMEM;
    }
    uint8_t *p = f->buf[0]->data;
    for (int i = 0; i < 4 && plane[i]; i++) {
        f->data[i] = p;
        f->linesize[i] = linesize[i];
        p += plane[i];
    }
    f->extended_data = f->data;
    return 0;
}

/* 1 when f's pixels are in a buffer of the cache's (frame_cache_frame_buffer). */
static int in_own_buffer(const struct frame_cache *fc, const AVFrame *f)
{
    return f->opaque_ref && f->opaque_ref->buffer == fc->tag->buffer && f->buf[0] &&
           !f->buf[1];
}

/* The cache's own copy of a host frame, in a recycled buffer: a reference to a
 * libavcodec-pooled buffer would keep it from going back to the decoder, whose pool would
 * grow by every frame the cache holds, outside cache_mb. Frames in device memory or in
 * the cache's buffers already are kept by reference. */
static AVFrame *own_copy(struct frame_cache *fc, const AVFrame *f)
{
    if (!is_host(f) || in_own_buffer(fc, f))
        return av_frame_clone(f);
    AVFrame *c = av_frame_alloc();
    if (!c)
        return NULL;
    c->format = f->format;
    c->width = f->width;
    c->height = f->height;
    if (av_frame_copy_props(c, f) < 0 || frame_cache_frame_buffer(fc, c, f->width, f->height) < 0 ||
        av_frame_copy(c, f) < 0)
        av_frame_free(&c);
    return c;
}

void frame_cache_put(struct frame_cache *fc, uint64_t media, int n, const AVFrame *f)
{
    int linesize[4];
    size_t plane[4], copy = 0;
    if (is_host(f) && !in_own_buffer(fc, f) &&
        !(copy = layout(f->format, f->width, f->height, linesize, plane)))
        return;
    size_t need = copy ? copy + sizeof(struct entry) : frame_bytes(f);
    if (need > fc->max_bytes)
        return;
    struct shard *s = shard_of(fc, media, n);
    if (frame_cache_has(fc, media, n))
        return;
    make_room(fc, need); /* first: an evicted frame's buffer takes the copy */
    AVFrame *ref = own_copy(fc, f);
    struct entry *e = calloc(1, sizeof(*e));
    if (!ref || !e) {
        av_frame_free(&ref);
        free(e);
        return;
    }
    size_t bytes = frame_bytes(ref);
    *e = (struct entry){.media = media, .n = n, .frame = ref, .bytes = bytes,
                        .used = __atomic_add_fetch(&fc->tick, 1, __ATOMIC_RELAXED)};
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

void frame_cache_drop(struct frame_cache *fc, uint64_t media, int n)
{
    remove_one(fc, shard_of(fc, media, n), 1, media, n);
}

void frame_cache_trim(struct frame_cache *fc)
{
    idle_trim(fc, 1);
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
        st->dropped += s->st.dropped;
        st->frames += s->st.frames;
        pthread_mutex_unlock(&s->lock);
    }
    st->bytes = __atomic_load_n(&fc->bytes, __ATOMIC_RELAXED);
    st->max_bytes = fc->max_bytes;
    st->allocs = __atomic_load_n(&fc->allocs, __ATOMIC_RELAXED);
}
