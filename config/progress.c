/* Progress of long work: a fixed table under one lock, taken at the begin and end of a work
 * and by stats.json; the counts in between are atomic stores, never locked. */
#include "progress.h"
#include "log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

/* Work that takes longer than this says so in the log when it starts, not only at its end. */
#define ANNOUNCE_S 1.0

struct progress {
    int used; /* under lock, as is everything up to done */
    enum progress_kind kind;
    char name[PROGRESS_NAME_MAX];
    const char *unit;
    uint64_t total;
    time_t started;
    struct timespec t0; /* CLOCK_MONOTONIC_COARSE: a few ms of resolution is plenty */
    atomic_uint_fast64_t done;
    atomic_int announced;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct progress slots[PROGRESS_SLOTS];
static const char *const kind_names[] = {[PROGRESS_INDEX] = "index",
                                         [PROGRESS_SEGMENT] = "segment"};
static const char *const verbs[] = {[PROGRESS_INDEX] = "indexing",
                                    [PROGRESS_SEGMENT] = "making"};

const char *progress_kind_name(enum progress_kind kind)
{
    return kind_names[kind];
}

static double since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The one line a long work gets when it starts (the caller logs its end). */
static void announce(struct progress *p)
{
    if (atomic_exchange(&p->announced, 1))
        return;
    log_info("%s: %s: over %g s so far, %" PRIu64 " of %" PRIu64 " %s", p->name,
             verbs[p->kind], ANNOUNCE_S, (uint64_t)atomic_load(&p->done), p->total, p->unit);
}

struct progress *progress_begin(enum progress_kind kind, const char *name, uint64_t total,
                                const char *unit)
{
    struct progress *p = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < PROGRESS_SLOTS && !p; i++)
        if (!slots[i].used)
            p = &slots[i];
    if (p) {
        p->used = 1;
        p->kind = kind;
        snprintf(p->name, sizeof(p->name), "%s", name);
        p->unit = unit;
        p->total = total;
        p->started = time(NULL);
        clock_gettime(CLOCK_MONOTONIC_COARSE, &p->t0);
        atomic_store(&p->done, 0);
        atomic_store(&p->announced, 0);
    }
    pthread_mutex_unlock(&lock);
    return p;
}

void progress_update(struct progress *p, uint64_t done)
{
    if (!p)
        return;
    atomic_store_explicit(&p->done, done, memory_order_relaxed);
    if (!atomic_load_explicit(&p->announced, memory_order_relaxed) && since(&p->t0) >= ANNOUNCE_S)
        announce(p);
}

void progress_end(struct progress **pp)
{
    struct progress *p = *pp;
    if (!p)
        return;
    pthread_mutex_lock(&lock);
    p->used = 0;
    pthread_mutex_unlock(&lock);
    *pp = NULL;
}

int progress_list(struct progress_info *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < PROGRESS_SLOTS && n < max; i++) {
        struct progress *p = &slots[i];
        if (!p->used)
            continue;
        struct progress_info *o = &out[n++];
        o->kind = p->kind;
        snprintf(o->name, sizeof(o->name), "%s", p->name);
        o->unit = p->unit;
        o->done = atomic_load(&p->done);
        o->total = p->total;
        o->started = p->started;
        o->seconds = since(&p->t0);
        if (o->seconds >= ANNOUNCE_S)
            announce(p);
    }
    pthread_mutex_unlock(&lock);
    return n;
}
