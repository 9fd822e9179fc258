/* Decoder pool. Choosing a decoder for (media, frame), in order of cost:
 *   1. an idle decoder in this media that can continue to the frame without seeking;
 *   1b. wait, when a busy decoder in this media is on its way to an earlier frame from
 *      which it can continue to this one (read-ahead right behind a reader): a second
 *      decoder would decode the same GOP again from its start;
 *   2. a new decoder, while the pool is below its bound (keeps other positions intact);
 *   3. an idle decoder in this media, which seeks;
 *   4. the least recently used idle decoder, reattached (reconfigured where it fits);
 *   5. otherwise wait for a release.
 * Opening and attaching run outside the lock: the slot is marked busy first. */
#include "pool.h"
#include "decoder.h"
#include "log.h"
#include "index.h"
#include "media.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    struct decoder *d; /* NULL: free slot */
    int busy;
    const struct media *media; /* what the lease is for (compared, not dereferenced) */
    int target;                /* frame the lease is for */
    uint64_t used;     /* LRU tick */
    unsigned long counted; /* frames_decoded already added to the stats */
};

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t released;
    struct pool_opts opts;
    struct slot *slots;
    uint64_t tick;
    struct pool_stats st;
};

/* For now a fixed number: the pool is where it will be derived from the machine. */
int pool_size_auto(void)
{
    return 8;
}

int pool_new(const struct pool_opts *opts, struct pool **out)
{
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->opts = *opts;
    if (p->opts.size < 1)
        p->opts.size = 1;
    if (p->opts.ngpus < 1 || p->opts.ngpus > POOL_MAX_GPUS) {
        p->opts.gpus[0] = p->opts.decode.gpu;
        p->opts.ngpus = 1;
    }
    p->slots = calloc((size_t)p->opts.size, sizeof(*p->slots));
    if (!p->slots) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->released, NULL);
    *out = p;
    return 0;
}

void pool_spread(struct pool *p, const int *gpus, int n)
{
    if (n < 1 || n > POOL_MAX_GPUS)
        return;
    pthread_mutex_lock(&p->lock);
    memcpy(p->opts.gpus, gpus, (size_t)n * sizeof(*gpus));
    p->opts.ngpus = n;
    p->opts.decode.gpu = gpus[0];
    pthread_mutex_unlock(&p->lock);
}

void pool_free(struct pool **pp)
{
    struct pool *p = *pp;
    if (!p)
        return;
    for (int i = 0; i < p->opts.size; i++)
        decoder_free(&p->slots[i].d);
    pthread_cond_destroy(&p->released);
    pthread_mutex_destroy(&p->lock);
    free(p->slots);
    free(p);
    *pp = NULL;
}

static const struct decode_backend *backend_for(struct pool *p, const struct media *m)
{
#if VIDFS_HAVE_NVDEC
    if (p->opts.use_gpu >= 0 && m->par &&
        decode_nvdec.supports(m->par, &p->opts.decode) == 0)
        return &decode_nvdec;
#endif
    (void)p;
    (void)m;
    return &decode_cpu;
}

const char *pool_backend_for(struct pool *p, const struct media *m)
{
    return backend_for(p, m)->name;
}

/* 1 when a decoder that outputs frame t of m can go on to frame n without seeking. */
static int continues_to(const struct media *m, int t, int n)
{
    const struct index *ix = m->index;
    return t < n && n < ix->nb_frames && index_start_packet(ix, n) <= ix->frames[t].packet;
}

/* Chooses a slot following the order at the top of the file; -1 to wait. */
static int choose(struct pool *p, const struct media *m, int n, const struct decode_backend *be)
{
    int best = -1, best_dist = INT_MAX, empty = -1, lru = -1, behind = 0;
    for (int i = 0; i < p->opts.size; i++) {
        struct slot *s = &p->slots[i];
        /* Busy first: a slot whose decoder is being created has no decoder yet. */
        if (s->busy) {
            behind |= s->media == m && continues_to(m, s->target, n);
            continue;
        }
        if (!s->d) {
            empty = empty < 0 ? i : empty;
            continue;
        }
        if (s->d->media == m && s->d->backend == be) {
            int dist = decoder_distance(s->d, n);
            if (dist < best_dist)
                best = i, best_dist = dist;
        }
        if (lru < 0 || s->used < p->slots[lru].used)
            lru = i;
    }
    if (best >= 0 && best_dist < INT_MAX && decoder_can_continue(p->slots[best].d, n))
        return best;
    if (behind)
        return -1;
    if (empty >= 0)
        return empty;
    return best >= 0 ? best : lru;
}

/* Index into opts.gpus of the GPU slot s decodes on. */
static int slot_gpu(const struct pool *p, const struct slot *s)
{
    return (int)(s - p->slots) % p->opts.ngpus;
}

static void count_frames(struct pool *p, struct slot *s)
{
    unsigned long now = s->d->frames_decoded;
    uint64_t delta = now - s->counted;
    s->counted = now;
    if (strcmp(s->d->backend->name, "cpu")) {
        p->st.frames_gpu += delta;
        p->st.frames_by_gpu[slot_gpu(p, s)] += delta;
    } else
        p->st.frames_cpu += delta;
}

/* Makes slot i's decoder fit backend be, outside the lock (the slot is busy). */
static int prepare(struct pool *p, struct slot *s, const struct decode_backend *be)
{
    if (s->d && s->d->backend != be)
        decoder_free(&s->d);
    if (s->d)
        return 0;
    s->counted = 0;
    struct decode_opts o = p->opts.decode;
    o.gpu = p->opts.gpus[slot_gpu(p, s)];
    return decoder_new(be, &o, &s->d);
}

int pool_acquire(struct pool *p, struct media *m, int n, int cpu, struct decoder **out)
{
    if (m->error)
        return -EIO;
    const struct decode_backend *be = cpu ? &decode_cpu : backend_for(p, m);
    pthread_mutex_lock(&p->lock);
    int i;
    while ((i = choose(p, m, n, be)) < 0)
        pthread_cond_wait(&p->released, &p->lock);
    struct slot *s = &p->slots[i];
    s->busy = 1;
    s->media = m;
    s->target = n;
    s->used = ++p->tick;
    int same = s->d && s->d->media == m && s->d->backend == be;
    if (same && decoder_can_continue(s->d, n))
        p->st.continued++;
    else if (same)
        p->st.seeks++;
    else if (s->d && s->d->backend == be)
        p->st.reused++;
    else
        p->st.created++;
    pthread_mutex_unlock(&p->lock);

    int ret = prepare(p, s, be);
    if (ret == 0)
        ret = decoder_attach(s->d, m);
    if (ret < 0) {
        log_error("%s: no %s decoder: %s", m->path, be->name, strerror(-ret));
        pthread_mutex_lock(&p->lock);
        decoder_free(&s->d);
        s->busy = 0;
        pthread_cond_broadcast(&p->released);
        pthread_mutex_unlock(&p->lock);
        return ret;
    }
    *out = s->d;
    return 0;
}

void pool_release(struct pool *p, struct decoder *d)
{
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->opts.size; i++) {
        struct slot *s = &p->slots[i];
        if (s->d != d)
            continue;
        count_frames(p, s);
        s->busy = 0;
        s->media = NULL;
        s->used = ++p->tick;
        break;
    }
    pthread_cond_broadcast(&p->released); /* waiters behind it and waiters for a slot */
    pthread_mutex_unlock(&p->lock);
}

void pool_count_fallback(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->st.gpu_fallbacks++;
    pthread_mutex_unlock(&p->lock);
}

void pool_stats(struct pool *p, struct pool_stats *st)
{
    pthread_mutex_lock(&p->lock);
    *st = p->st;
    memcpy(st->gpus, p->opts.gpus, sizeof(st->gpus));
    st->ngpus = p->opts.ngpus;
    st->busy = st->idle = 0;
    for (int i = 0; i < p->opts.size; i++) {
        if (!p->slots[i].d)
            continue;
        if (p->slots[i].busy)
            st->busy++;
        else
            st->idle++;
    }
    pthread_mutex_unlock(&p->lock);
}
