/* Reader: frame cache, then the pool. Read-ahead: when a media's frames are asked for in
 * order, one background job per media decodes the next `readahead` frames into the cache;
 * a reader missing a frame that job is about to produce waits for it instead of taking a
 * second decoder to the same place. */
#include "reader.h"
#include "decoder.h"
#include "frame_cache.h"
#include "log.h"
#include "media.h"
#include "pool.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NTRACK 64   /* media whose access pattern is followed */
/* Frames an in-order reader passed this far back are dropped from the cache: it will not
 * come back, and their buffers take the next frames, where keeping every frame made each
 * decode write fresh pages (15% of the time of 1080p frame files). */
#define DROP_BEHIND 16
#define MAX_WORKERS 64
#define WAIT_MS 5000

struct track {
    uint64_t media;
    struct media *m;  /* reference while a job is queued or running */
    int last;         /* last frame asked for */
    int horizon;      /* frames up to here were or are being read ahead */
    int run_from;     /* first frame of the reader's current in-order run */
    int job_from, job_to; /* queued or running job: frames [from, to]; to < from: none */
    int running;
    /* A leased request's decoder, handed to the queued job that continues it. */
    struct pool_claim claim;
    uint64_t used;
};

struct reader {
    struct pool *pool;
    struct frame_cache *cache;
    struct reader_opts opts;
    pthread_mutex_t lock;
    pthread_cond_t work, progress;
    struct track tracks[NTRACK];
    uint64_t tick;
    int stop;
    pthread_t workers[MAX_WORKERS];
    int nworkers;
    int started; /* workers start on first use: the mount may fork to daemonize first */
    struct reader_stats st;
};

/* Decodes frame n through the lease's decoder (taken from the pool on first use), or one
 * leased for this frame alone; frames on the way go to the cache. A frame a GPU decoder
 * fails to give is asked of the next backend allowed (the CPU under backend=auto): the
 * bytes are the same by the codec's specification, so a reader gets the frame instead of
 * EIO. */
static int decode(struct reader *r, struct media *m, int n, AVFrame *out,
                  struct reader_lease *l)
{
    struct decoder *d = NULL;
    if (l && pool_unpark(r->pool, &l->claim, &d) == 0 && d->media != m) {
        pool_release(r->pool, d);
        d = NULL;
    }
    const struct decode_backend *be = d ? d->backend : pool_backend(r->pool, m, NULL), *next;
    if (!be) {
        log_error("%s: no decoder allowed by the backend setting can decode its %s stream",
                  m->path, m->par ? avcodec_get_name(m->par->codec_id) : "video");
        return -EIO;
    }
    for (;; be = next) {
        int ret;
        if (!d && (ret = pool_acquire(r->pool, m, n, be, l ? &l->ticket : NULL, &d)) < 0)
            return ret;
        ret = decoder_get(d, n, out, r->cache, !l);
        next = ret == -EIO ? pool_backend(r->pool, m, be) : NULL;
        if (l && !next)
            pool_park(r->pool, d, &l->claim);
        else
            pool_release(r->pool, d);
        d = NULL;
        if (!next)
            return ret;
        /* Once per file and backend: a damaged stream can fail on every frame. */
        char cause[64];
        snprintf(cause, sizeof(cause), "the %s decoder gave no frame", be->name);
        log_once(LOG_LEVEL_WARN, m->path, cause, "frame %d, maybe more; decoding with %s", n,
                 next->name);
        pool_count_fallback(r->pool);
    }
}

/* The track of media id; else, with create, the least recently used idle track taken over
 * (one with a job queued or running holds its media, wherever it is); else NULL. */
static struct track *find_track(struct reader *r, uint64_t id, int create)
{
    struct track *lru = NULL;
    for (int i = 0; i < NTRACK; i++) {
        struct track *t = &r->tracks[i];
        if (t->media == id)
            return t;
        if (!t->running && t->job_to < t->job_from && (!lru || t->used < lru->used))
            lru = t;
    }
    if (!create || !lru)
        return NULL;
    media_unref(&lru->m);
    pool_unclaim(r->pool, &lru->claim);
    *lru = (struct track){.media = id, .last = -2, .horizon = -1, .job_to = -1,
                          .claim = {.slot = -1}};
    return lru;
}

static void *worker_main(void *arg)
{
    struct reader *r = arg;
    AVFrame *f = NULL;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        struct track *t = NULL;
        for (int i = 0; i < NTRACK && !t; i++)
            if (!r->tracks[i].running && r->tracks[i].job_from <= r->tracks[i].job_to)
                t = &r->tracks[i];
        if (!t) {
            pthread_cond_wait(&r->work, &r->lock);
            continue;
        }
        /* Without a frame the job is dropped, not left queued for this loop to find again:
         * read-ahead is optional, the readers waiting on it decode for themselves. */
        if (!f && !(f = av_frame_alloc())) {
            log_error("read-ahead: out of memory; frames %d-%d not read ahead", t->job_from,
                      t->job_to);
            t->job_from = t->job_to + 1;
            pool_unclaim(r->pool, &t->claim);
            pthread_cond_broadcast(&r->progress);
            continue;
        }
        t->running = 1;
        /* A job is one request: it keeps its decoder from its first frame to its last
         * (a per-frame lease lets a waiting reader take it between two frames). */
        struct reader_lease lease = {.claim = t->claim};
        t->claim = (struct pool_claim){.slot = -1};
        struct media *m = media_ref(t->m);
        while (t->job_from <= t->job_to && !r->stop) {
            int n = t->job_from;
            pthread_mutex_unlock(&r->lock);
            int ret = frame_cache_has(r->cache, m->id, n) ? 0 : decode(r, m, n, f, &lease);
            if (ret == 0 && f->buf[0]) {
                frame_cache_put(r->cache, m->id, n, f);
                __atomic_add_fetch(&r->st.readahead_frames, 1, __ATOMIC_RELAXED);
            }
            av_frame_unref(f);
            pthread_mutex_lock(&r->lock);
            t->job_from = ret < 0 ? t->job_to + 1 : n + 1;
            pthread_cond_broadcast(&r->progress);
        }
        t->running = 0;
        /* The decoder stays parked for the track's next job a moment (its reader may be
         * converting the frames just made), then it is free to others. */
        if (t->claim.slot < 0) {
            t->claim = lease.claim;
            lease.claim.slot = -1;
        }
        reader_lease_end(r, &lease);
        media_unref(&m);
        pthread_cond_broadcast(&r->progress);
    }
    pthread_mutex_unlock(&r->lock);
    av_frame_free(&f);
    return NULL;
}

int reader_new(struct pool *pool, struct frame_cache *cache, const struct reader_opts *opts,
               struct reader **out)
{
    struct reader *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->pool = pool;
    r->cache = cache;
    r->opts = *opts;
    r->opts.workers = FFMIN(FFMAX(opts->workers, 0), MAX_WORKERS);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->work, NULL);
    pthread_cond_init(&r->progress, NULL);
    for (int i = 0; i < NTRACK; i++)
        r->tracks[i] = (struct track){.job_to = -1, .claim = {.slot = -1}};
    *out = r;
    return 0;
}

void reader_free(struct reader **rp)
{
    struct reader *r = *rp;
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_cond_broadcast(&r->work);
    pthread_mutex_unlock(&r->lock);
    for (int i = 0; i < r->nworkers; i++)
        pthread_join(r->workers[i], NULL);
    for (int i = 0; i < NTRACK; i++) {
        media_unref(&r->tracks[i].m);
        pool_unclaim(r->pool, &r->tracks[i].claim);
    }
    pthread_cond_destroy(&r->work);
    pthread_cond_destroy(&r->progress);
    pthread_mutex_destroy(&r->lock);
    free(r);
    *rp = NULL;
}

/* Started on first use: the mount may fork to daemonize first. */
static void start_workers(struct reader *r)
{
    r->started = 1;
    /* As many files read ahead at once as can be decoded at once. */
    if (!r->opts.workers)
        r->opts.workers = FFMIN(pool_size(r->pool), MAX_WORKERS);
    for (int i = 0; r->opts.readahead > 0 && i < r->opts.workers; i++)
        if (pthread_create(&r->workers[i], NULL, worker_main, r) == 0)
            r->nworkers++;
}

/* Workers that would start a job queued now. Under the lock. */
static int idle_workers(const struct reader *r)
{
    int busy = 0;
    for (int i = 0; i < NTRACK; i++)
        busy += r->tracks[i].running || r->tracks[i].job_from <= r->tracks[i].job_to;
    return r->nworkers - busy;
}

/* 1 when frame n of m is part of a running or queued job. Under the lock. */
static int job_has(struct reader *r, const struct media *m, int n)
{
    struct track *t = find_track(r, m->id, 0);
    return t && t->job_from <= n && n <= t->job_to;
}

/* 1 when read-ahead went past frame n of m (so a miss means the cache dropped it). Under
 * the lock. */
static int passed(struct reader *r, const struct media *m, int n)
{
    struct track *t = find_track(r, m->id, 0);
    return t && n <= t->horizon && !(t->job_from <= n && n <= t->job_to);
}

/* Notes the access and queues read-ahead for sequential ones (*in_order, when given, says
 * whether this one is). Returns 1 when frame n is part of a running or queued job (so the
 * caller may wait for it). Under the lock. */
static int note_access(struct reader *r, struct media *m, int n, int end, int *in_order)
{
    if (!r->started)
        start_workers(r);
    struct track *t = find_track(r, m->id, 1);
    if (!t)
        return 0;
    t->used = ++r->tick;
    int sequential = n == t->last + 1 || (n > t->last && n <= t->horizon);
    if (in_order)
        *in_order = sequential;
    if (!sequential && n != t->last) /* the same frame again (another format) goes on */
        t->run_from = n;
    t->last = n;
    if (sequential && n - DROP_BEHIND >= t->run_from)
        frame_cache_drop(r->cache, m->id, n - DROP_BEHIND);
    int pending = t->job_from <= n && n <= t->job_to;
    if (!sequential || !r->nworkers)
        return pending;
    int want = n + r->opts.readahead;
    if (want >= end)
        want = end - 1;
    if (want >= media_nb_frames(m))
        want = media_nb_frames(m) - 1;
    if (want > t->horizon) {
        if (t->job_to < t->job_from)
            t->job_from = t->horizon >= n + 1 ? t->horizon + 1 : n + 1;
        t->job_to = want;
        t->horizon = want;
        if (!t->m)
            t->m = media_ref(m);
        pthread_cond_signal(&r->work);
    }
    return pending;
}

/* Waits until frame n is cached or the job that would make it ends. Under the lock. */
static AVFrame *wait_for(struct reader *r, struct media *m, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    for (;;) {
        AVFrame *f = frame_cache_get(r->cache, m->id, n);
        struct track *t = find_track(r, m->id, 0);
        if (f || !t || !(t->job_from <= n && n <= t->job_to))
            return f;
        if (pthread_cond_timedwait(&r->progress, &r->lock, &until) == ETIMEDOUT)
            return NULL;
    }
}

/* A leased request read in order gives its decoder to a read-ahead job when a worker
 * starts it at once: the job decodes the next frames while the request converts this one,
 * from the same decoder, so no GOP is decoded twice. With every worker busy the request
 * keeps its decoder (waiting for a job that has not started would only stall it). */
static void hand_over(struct reader *r, struct media *m, int n, int end, struct reader_lease *l)
{
    pthread_mutex_lock(&r->lock);
    if (!r->started)
        start_workers(r);
    struct track *t = find_track(r, m->id, 0);
    int running = t && t->running;
    if (running || idle_workers(r) > 0) {
        note_access(r, m, n, end, NULL);
        t = find_track(r, m->id, 0);
        if (t && !t->running && t->job_from <= t->job_to && l->claim.slot >= 0) {
            /* An earlier request's decoder left parked on the track is elsewhere in the
             * file: this one is where the job starts. */
            pool_unclaim(r->pool, &t->claim);
            t->claim = l->claim;
            l->claim.slot = -1;
            l->handed = 1;
        }
    } else if ((t = find_track(r, m->id, 1))) {
        t->last = n; /* still in order next time */
        t->used = ++r->tick;
    }
    pthread_mutex_unlock(&r->lock);
}

int reader_get(struct reader *r, struct media *m, int n, AVFrame **out)
{
    return reader_get_until(r, m, n, INT_MAX, out);
}

int reader_get_until(struct reader *r, struct media *m, int n, int end, AVFrame **out)
{
    return reader_get_leased(r, m, n, end, NULL, out);
}

int reader_get_leased(struct reader *r, struct media *m, int n, int end,
                      struct reader_lease *l, AVFrame **out)
{
    if (m->error)
        return -EIO;
    if (n < 0 || n >= media_nb_frames(m))
        return -ENOENT;
    __atomic_add_fetch(&r->st.frames_served, 1, __ATOMIC_RELAXED);
    AVFrame *f = frame_cache_get(r->cache, m->id, n);
    int pending = 0, in_order = 0, ahead = l && !l->keep && r->opts.readahead > 0;
    if (!l || ahead) {
        pthread_mutex_lock(&r->lock);
        pending = l ? job_has(r, m, n) : note_access(r, m, n, end, &in_order);
        if (!f && pending)
            f = wait_for(r, m, n);
        if (!f && l && l->handed && passed(r, m, n))
            l->keep = 1; /* and this frame is decoded again, once */
        ahead = ahead && !l->keep;
        pthread_mutex_unlock(&r->lock);
    }
    if (pending && f)
        __atomic_add_fetch(&r->st.readahead_hits, 1, __ATOMIC_RELAXED);
    int ret = 0;
    if (!f && (ret = (f = av_frame_alloc()) ? decode(r, m, n, f, l) : -ENOMEM) == 0)
        frame_cache_put(r->cache, m->id, n, f);
    if (ret < 0) {
        av_frame_free(&f);
        return ret;
    }
    /* Asked for (a request's frames, a lone frame out of order): it outlives the frames
     * decoded on the way. A reader of lone frames in order will not come back to them, and
     * protected they pushed out the frames read ahead for it (cache_mb=64: 1080p frame
     * files in order decoded 1.8 frames a frame). */
    if (!in_order)
        frame_cache_protect(r->cache, m->id, n);
    if (ahead)
        hand_over(r, m, n, end, l);
    *out = f;
    return 0;
}

void reader_lease_end(struct reader *r, struct reader_lease *l)
{
    pool_unclaim(r->pool, &l->claim);
}

void reader_stats(struct reader *r, struct reader_stats *st)
{
    pthread_mutex_lock(&r->lock);
    *st = r->st;
    pthread_mutex_unlock(&r->lock);
}
