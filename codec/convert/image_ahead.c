/* Image read-ahead. A view (media, format, size, quality) read in order gets its next
 * `depth` frames queued; each thread takes the oldest queued image and makes it with
 * render_image, so the bytes are the same whoever makes them. An open takes its image
 * when it is done, waits when it is being made, and makes it itself otherwise (a queued
 * one it takes back from the queue). Done images nobody took are dropped first when the
 * slots run out. */
#include "image_ahead.h"
#include "log.h"
#include "media.h"
#include "render.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DEPTH 16
#define NTRACK 16

enum state { FREE, QUEUED, RUNNING, DONE };

struct view {
    uint64_t media;
    struct convert_req req;
    struct image_opts opts;
};

struct slot {
    struct view v;
    int n;
    enum state state;
    struct media *m; /* reference while queued or running */
    int ret;
    uint8_t *out;
    size_t size;
    uint64_t used;
};

/* An in-order view's position: frames up to horizon were queued. */
struct track {
    struct view v;
    int last, horizon;
    uint64_t used;
};

struct image_ahead {
    struct reader *reader;
    int depth;
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    struct slot slots[2 * MAX_DEPTH];
    struct track tracks[NTRACK];
    uint64_t tick;
    pthread_t threads[MAX_DEPTH];
    int nthreads, started, stop;
    struct image_ahead_stats st;
};

static int same_view(const struct view *a, const struct view *b)
{
    return a->media == b->media && a->req.format == b->req.format &&
           a->req.width == b->req.width && a->req.height == b->req.height &&
           a->opts.jpeg_q == b->opts.jpeg_q && a->opts.jpeg_444 == b->opts.jpeg_444;
}

static int nslots(const struct image_ahead *ia)
{
    return 2 * ia->depth;
}

static void slot_clear(struct slot *s)
{
    media_unref(&s->m);
    free(s->out);
    *s = (struct slot){.state = FREE};
}

static struct slot *find_slot(struct image_ahead *ia, const struct view *v, int n)
{
    for (int i = 0; i < nslots(ia); i++) {
        struct slot *s = &ia->slots[i];
        if (s->state != FREE && s->n == n && same_view(&s->v, v))
            return s;
    }
    return NULL;
}

/* A free slot, else the least recently used done one (cleared); NULL when all are queued
 * or being made. */
static struct slot *free_slot(struct image_ahead *ia)
{
    struct slot *lru = NULL;
    for (int i = 0; i < nslots(ia); i++) {
        struct slot *s = &ia->slots[i];
        if (s->state == FREE)
            return s;
        if (s->state == DONE && (!lru || s->used < lru->used))
            lru = s;
    }
    if (lru)
        slot_clear(lru);
    return lru;
}

static void *thread_main(void *arg)
{
    struct image_ahead *ia = arg;
    pthread_mutex_lock(&ia->lock);
    while (!ia->stop) {
        struct slot *s = NULL;
        for (int i = 0; i < nslots(ia); i++)
            if (ia->slots[i].state == QUEUED && (!s || ia->slots[i].used < s->used))
                s = &ia->slots[i];
        if (!s) {
            pthread_cond_wait(&ia->work, &ia->lock);
            continue;
        }
        s->state = RUNNING;
        struct slot job = *s;
        pthread_mutex_unlock(&ia->lock);
        uint8_t *out = NULL;
        size_t size = 0;
        int ret = render_image(ia->reader, job.m, job.n, &job.v.req, &job.v.opts, &out, &size);
        pthread_mutex_lock(&ia->lock);
        /* Nobody else frees or reuses a running slot. */
        s->ret = ret;
        s->out = out;
        s->size = size;
        s->state = DONE;
        s->used = ++ia->tick;
        media_unref(&s->m);
        ia->st.ahead++;
        pthread_cond_broadcast(&ia->done);
    }
    pthread_mutex_unlock(&ia->lock);
    return NULL;
}

/* Started on first use: the mount may fork to daemonize first. Under the lock. */
static void start_threads(struct image_ahead *ia)
{
    ia->started = 1;
    for (int i = 0; i < ia->depth; i++)
        if (pthread_create(&ia->threads[i], NULL, thread_main, ia) == 0)
            ia->nthreads++;
    if (ia->nthreads < ia->depth)
        log_warn("image read-ahead: %d of %d threads started", ia->nthreads, ia->depth);
}

static struct track *find_track(struct image_ahead *ia, const struct view *v)
{
    struct track *lru = &ia->tracks[0];
    for (int i = 0; i < NTRACK; i++) {
        struct track *t = &ia->tracks[i];
        if (t->used && same_view(&t->v, v))
            return t;
        if (t->used < lru->used)
            lru = t;
    }
    *lru = (struct track){.v = *v, .last = -2, .horizon = -1};
    return lru;
}

/* Notes that frame n of view v is opened; queues the next frames when v is read in
 * order. Under the lock. */
static void note_access(struct image_ahead *ia, struct media *m, const struct view *v, int n)
{
    if (!ia->started)
        start_threads(ia);
    struct track *t = find_track(ia, v);
    t->used = ++ia->tick;
    int in_order = n == t->last + 1 || (n > t->last && n <= t->horizon);
    t->last = n;
    if (!in_order || !ia->nthreads)
        return;
    int want = FFMIN(n + ia->depth, media_nb_frames(m) - 1);
    for (int k = FFMAX(t->horizon + 1, n + 1); k <= want; k++) {
        struct slot *s = NULL;
        if (!find_slot(ia, v, k)) {
            if (!(s = free_slot(ia)))
                break;
            *s = (struct slot){.v = *v, .n = k, .state = QUEUED, .m = media_ref(m),
                               .used = ++ia->tick};
            pthread_cond_signal(&ia->work);
        }
        t->horizon = k;
    }
}

/* Takes frame n of v made ahead: 1 with *out set, 0 when the caller makes it. Under the
 * lock. */
static int take(struct image_ahead *ia, const struct view *v, int n, uint8_t **out,
                size_t *size)
{
    struct slot *s;
    while ((s = find_slot(ia, v, n)) && s->state == RUNNING)
        pthread_cond_wait(&ia->done, &ia->lock);
    if (!s)
        return 0;
    int ok = s->state == DONE && s->ret == 0;
    if (ok) {
        *out = s->out;
        *size = s->size;
        s->out = NULL;
        ia->st.hits++;
    }
    /* A queued one is made by the caller now; a failed one again, to log its error. */
    slot_clear(s);
    return ok;
}

int image_ahead_get(struct image_ahead *ia, struct media *m, int n, const struct convert_req *req,
                    const struct image_opts *opts, uint8_t **out, size_t *size)
{
    if (!ia->depth)
        return render_image(ia->reader, m, n, req, opts, out, size);
    struct view v = {.media = m->id, .req = *req, .opts = *opts};
    pthread_mutex_lock(&ia->lock);
    note_access(ia, m, &v, n);
    int ok = take(ia, &v, n, out, size);
    pthread_mutex_unlock(&ia->lock);
    return ok ? 0 : render_image(ia->reader, m, n, req, opts, out, size);
}

int image_ahead_new(struct reader *r, int readahead, struct image_ahead **out)
{
    struct image_ahead *ia = calloc(1, sizeof(*ia));
    if (!ia)
        return -ENOMEM;
    ia->reader = r;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ia->depth = FFMIN(FFMAX(readahead, 0), FFMIN(cores > 0 ? (int)cores : 1, MAX_DEPTH));
    pthread_mutex_init(&ia->lock, NULL);
    pthread_cond_init(&ia->work, NULL);
    pthread_cond_init(&ia->done, NULL);
    *out = ia;
    return 0;
}

void image_ahead_free(struct image_ahead **iap)
{
    struct image_ahead *ia = *iap;
    if (!ia)
        return;
    pthread_mutex_lock(&ia->lock);
    ia->stop = 1;
    pthread_cond_broadcast(&ia->work);
    pthread_mutex_unlock(&ia->lock);
    for (int i = 0; i < ia->nthreads; i++)
        pthread_join(ia->threads[i], NULL);
    for (int i = 0; i < nslots(ia); i++)
        slot_clear(&ia->slots[i]);
    pthread_cond_destroy(&ia->work);
    pthread_cond_destroy(&ia->done);
    pthread_mutex_destroy(&ia->lock);
    free(ia);
    *iap = NULL;
}

void image_ahead_stats(struct image_ahead *ia, struct image_ahead_stats *st)
{
    pthread_mutex_lock(&ia->lock);
    *st = ia->st;
    pthread_mutex_unlock(&ia->lock);
}
