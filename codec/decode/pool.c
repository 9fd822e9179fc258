/* Decoder pool. Choosing a decoder for (media, frame), in order of cost:
 *   1. an idle decoder in this media that can continue to the frame without seeking;
 *   1b. wait, when a busy decoder in this media is on its way to an earlier frame from
 *      which it can continue to this one (read-ahead right behind a reader): a second
 *      decoder would decode the same GOP again from its start;
 *   2. a new decoder, while the pool is below its bound (keeps other positions intact);
 *      in a CPU pool parked decoders do not count (they decode nothing), up to twice the
 *      bound in all;
 *   3. an idle decoder in this media, which seeks;
 *   4. the least recently used idle decoder, reattached (reconfigured where it fits);
 *   5. otherwise wait for a release.
 * At most the bound decode at once: a request waits while that many are busy. Parked
 * CPU decoders used to count against it: with two readers on two cores, each request's
 * decoder parked for the next read kept the other reader waiting (41 clips/s, not 28).
 * NVDEC pools keep them counted: with spare slots (up to 32 sessions on an H200) the
 * loader got 10-20% fewer clips/s in one run.
 * Requests that wait for 2-5 queue in arrival order: only the oldest may take a slot, so
 * a request never waits behind later ones (under 64 readers, unordered wake-ups let some
 * wait a minute). Rule 1 bypasses the queue: nobody else gains as much from that decoder.
 * Opening and attaching run outside the lock: the slot is marked busy first. */
#include "pool.h"
#include "decoder.h"
#include "fifo.h"
#include "log.h"
#include "media.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct slot {
    struct decoder *d; /* NULL: free slot */
    int busy;
    const struct media *media; /* what the lease is for (compared, not dereferenced) */
    int target;                /* frame the lease is for */
    uint64_t used;     /* LRU tick */
    unsigned long counted; /* frames_decoded already added to the stats */
    uint64_t gen;          /* leases so far: a claim on a parked decoder names one */
    int64_t parked_until;  /* ms (monotonic) while parked for its claim, else 0 */
};

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t released;
    struct pool_opts opts;
    int size;  /* decoders decoding at once: opts.size, or derived from the machine */
    int spare; /* slots beyond size for parked decoders (CPU pools; 0 with NVDEC) */
    int cores;
    struct slot *slots; /* POOL_MAX_SIZE */
    struct fifo queue; /* requests waiting for a slot by rules 2-5 */
    int recent[32]; /* requests active at the last acquires, for cpu_threads */
    uint64_t tick;
    struct pool_stats st;
};

/* Slots looked at: the bound, and the spare ones for decoders parked meanwhile. */
static int nslots(const struct pool *p)
{
    return FFMIN(p->size + p->spare, POOL_MAX_SIZE);
}

/* 1 while slot s is parked for a claim (not free to others); *wake is lowered to when
 * that ends. */
static int parked(const struct slot *s, int64_t now, int64_t *wake)
{
    if (!s->parked_until || s->parked_until <= now)
        return 0;
    if (!*wake || s->parked_until < *wake)
        *wake = s->parked_until;
    return 1;
}

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > POOL_MAX_SIZE ? POOL_MAX_SIZE : (int)n;
}

/* The bound: the setting, else cores, or two decoders per NVDEC engine when more. */
static int pool_bound(const struct pool *p, int engines)
{
    int n = p->opts.size > 0 ? p->opts.size : FFMAX(p->cores, 2 * engines);
    return FFMIN(FFMAX(n, 1), POOL_MAX_SIZE);
}

int pool_new(const struct pool_opts *opts, struct pool **out)
{
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->opts = *opts;
    if (p->opts.ngpus < 1 || p->opts.ngpus > DECODE_MAX_GPUS) {
        p->opts.gpus[0] = p->opts.decode.gpu;
        p->opts.ngpus = 1;
    }
    p->cores = online_cores();
    p->size = p->spare = pool_bound(p, 0);
    fifo_init(&p->queue);
    p->slots = calloc(POOL_MAX_SIZE, sizeof(*p->slots));
    if (!p->slots) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* for the end of a park */
    pthread_cond_init(&p->released, &ca);
    pthread_condattr_destroy(&ca);
    *out = p;
    return 0;
}

void pool_spread(struct pool *p, const int *gpus, int n, int engines)
{
    if (n < 1 || n > DECODE_MAX_GPUS)
        return;
    pthread_mutex_lock(&p->lock);
    memcpy(p->opts.gpus, gpus, (size_t)n * sizeof(*gpus));
    p->opts.ngpus = n;
    p->opts.decode.gpu = gpus[0];
    p->size = pool_bound(p, n * engines);
    p->spare = engines > 0 ? 0 : p->size;
    pthread_mutex_unlock(&p->lock);
}

void pool_free(struct pool **pp)
{
    struct pool *p = *pp;
    if (!p)
        return;
    for (int i = 0; i < POOL_MAX_SIZE; i++)
        decoder_free(&p->slots[i].d);
    pthread_cond_destroy(&p->released);
    pthread_mutex_destroy(&p->lock);
    free(p->slots);
    free(p);
    *pp = NULL;
}

const struct decode_backend *pool_backend(struct pool *p, const struct media *m,
                                          const struct decode_backend *after)
{
    const struct decode_backend *const *be = p->opts.backends;
    if (after)
        while (*be && *be++ != after)
            ;
    for (; *be; be++)
        if (m->par && (*be)->supports(m->par, &p->opts.decode) == 0)
            return *be;
    return NULL;
}

/* Chooses a slot following the order at the top of the file; -1 to wait (until *wake, in
 * ms, when a parked decoder comes free then; 0: a release). *cont is set when the slot
 * continues (rule 1) or the wait is for a busy decoder (1b): no queueing then. */
static int choose(struct pool *p, const struct media *m, int n, const struct decode_backend *be,
                  int *cont, int64_t *wake)
{
    int best = -1, best_dist = INT_MAX, empty = -1, lru = -1, behind = 0, busy = 0, live = 0;
    int64_t now = fifo_now_ms();
    *cont = 1;
    *wake = 0;
    for (int i = 0; i < nslots(p); i++) {
        struct slot *s = &p->slots[i];
        /* Busy first: a slot whose decoder is being created has no decoder yet. */
        if (s->busy) {
            busy++, live++;
            behind |= s->media == m && decoder_reaches(m, s->target, n);
            continue;
        }
        if (parked(s, now, wake))
            continue;
        if (!s->d) {
            empty = empty < 0 ? i : empty;
            continue;
        }
        live++;
        if (s->d->media == m && s->d->backend == be) {
            int dist = decoder_distance(s->d, n);
            if (dist < best_dist)
                best = i, best_dist = dist;
        }
        if (lru < 0 || s->used < p->slots[lru].used)
            lru = i;
    }
    if (busy >= p->size) {
        *cont = behind; /* a wait for that decoder, else a turn in the queue */
        return -1;
    }
    if (best >= 0 && best_dist < INT_MAX && decoder_can_continue(p->slots[best].d, n))
        return best;
    if (behind)
        return -1;
    *cont = 0;
    if (empty >= 0 && live < p->size)
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
    if (s->d->backend->gpu) {
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

/* Codec threads for a CPU decoder opened now: the setting, else the cores shared among
 * the requests decoding or waiting lately (one reader: all cores and one more, as
 * libavcodec's automatic count, since the thread that feeds packets and takes frames leaves
 * a core idle otherwise: 1080p H.264 on 2 cores goes 41 -> 59 fps; 16 on 16 cores: one
 * each). The peak of the last acquires, not the count now: readers between two requests
 * are still readers, and frame threads decode ahead, which a random reader throws away.
 * Under the lock. */
static int cpu_threads(struct pool *p)
{
    int active = 0, peak = 0;
    for (int i = 0; i < nslots(p); i++)
        active += p->slots[i].busy;
    active += fifo_count(&p->queue);
    int n = (int)(sizeof(p->recent) / sizeof(p->recent[0]));
    p->recent[p->tick % (uint64_t)n] = active;
    for (int i = 0; i < n; i++)
        peak = FFMAX(peak, p->recent[i]);
    if (p->opts.decode.threads > 0)
        return p->opts.decode.threads;
    int share = p->cores / FFMAX(peak, 1);
    return share > 1 ? share + 1 : 1;
}

/* Waits for a slot by the rules above, in arrival order. Under the lock. */
static int wait_slot(struct pool *p, const struct media *m, int n,
                     const struct decode_backend *be, uint64_t *ticket)
{
    struct fifo_waiter w = {0};
    if (ticket && !*ticket)
        *ticket = fifo_ticket(&p->queue);
    w.ticket = ticket ? *ticket : 0;
    int cont, i;
    int64_t wake;
    for (;;) {
        i = choose(p, m, n, be, &cont, &wake);
        if (i >= 0 && (cont || fifo_turn(&p->queue, &w)))
            break;
        if (!cont && !w.queued) {
            fifo_join(&p->queue, &w);
            p->st.waits++;
            continue; /* an older ticket is in line before the rest: maybe first now */
        }
        fifo_sleep(&p->released, &p->lock, wake);
    }
    fifo_leave(&p->queue, &w, &p->released);
    return i;
}

int pool_acquire(struct pool *p, struct media *m, int n, const struct decode_backend *be,
                 uint64_t *ticket, struct decoder **out)
{
    if (m->error)
        return -EIO;
    pthread_mutex_lock(&p->lock);
    int i = wait_slot(p, m, n, be, ticket);
    struct slot *s = &p->slots[i];
    s->busy = 1;
    s->media = m;
    s->target = n;
    s->used = ++p->tick;
    s->gen++; /* a claim on it while it was parked is void now */
    s->parked_until = 0;
    int same = s->d && s->d->media == m && s->d->backend == be;
    if (same && decoder_can_continue(s->d, n))
        p->st.continued++;
    else if (same)
        p->st.seeks++;
    else if (s->d && s->d->backend == be)
        p->st.reused++;
    else
        p->st.created++;
    int threads = cpu_threads(p);
    pthread_mutex_unlock(&p->lock);

    int ret = prepare(p, s, be);
    if (ret == 0 && s->d->media != m)
        s->d->opts.threads = threads; /* opened anew for another file (the CPU backend is) */
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
    for (int i = 0; i < nslots(p); i++) {
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

static struct slot *slot_of(struct pool *p, const struct decoder *d)
{
    for (int i = 0; i < nslots(p); i++)
        if (p->slots[i].d == d)
            return &p->slots[i];
    return NULL;
}

void pool_park(struct pool *p, struct decoder *d, struct pool_claim *c)
{
    pthread_mutex_lock(&p->lock);
    struct slot *s = slot_of(p, d);
    c->slot = -1;
    if (s) {
        count_frames(p, s);
        s->busy = 0;
        s->used = ++p->tick;
        s->parked_until = fifo_now_ms() + POOL_PARK_MS;
        c->slot = (int)(s - p->slots);
        c->gen = s->gen;
    }
    pthread_cond_broadcast(&p->released); /* waiters learn when it comes free */
    pthread_mutex_unlock(&p->lock);
}

/* The claimed slot while its claim holds, else NULL; the claim is used up. Under the lock. */
static struct slot *claimed(struct pool *p, struct pool_claim *c)
{
    struct slot *s = c->slot >= 0 ? &p->slots[c->slot] : NULL;
    c->slot = -1;
    return s && s->gen == c->gen && s->parked_until && !s->busy && s->d ? s : NULL;
}

int pool_unpark(struct pool *p, struct pool_claim *c, struct decoder **out)
{
    pthread_mutex_lock(&p->lock);
    struct slot *s = claimed(p, c);
    if (s) {
        s->busy = 1;
        s->parked_until = 0;
        s->used = ++p->tick;
        p->st.unparked++;
        *out = s->d;
    }
    pthread_mutex_unlock(&p->lock);
    return s ? 0 : -EAGAIN;
}

void pool_unclaim(struct pool *p, struct pool_claim *c)
{
    pthread_mutex_lock(&p->lock);
    struct slot *s = claimed(p, c);
    if (s) {
        s->parked_until = 0;
        s->media = NULL;
        pthread_cond_broadcast(&p->released);
    }
    pthread_mutex_unlock(&p->lock);
}

int pool_size(struct pool *p)
{
    pthread_mutex_lock(&p->lock);
    int n = p->size;
    pthread_mutex_unlock(&p->lock);
    return n;
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
    st->busy = st->idle = st->waiting = st->parked = 0;
    st->size = p->size;
    int64_t now = fifo_now_ms(), wake = 0;
    st->waiting = fifo_count(&p->queue);
    for (int i = 0; i < nslots(p); i++) {
        if (!p->slots[i].d)
            continue;
        if (p->slots[i].busy)
            st->busy++;
        else if (parked(&p->slots[i], now, &wake))
            st->parked++;
        else
            st->idle++;
    }
    pthread_mutex_unlock(&p->lock);
}
