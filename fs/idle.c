/* The idle watcher: a thread that looks at the mount's counters once a second. */
#include "idle.h"
#include "bufpool.h"
#include "frame_cache.h"
#include "vidfs.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define IDLE_S 1

struct idle {
    struct vidfs *fs;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t stop_cond;
    int stop;
};

/* What changes while the mount works: files opened and bytes served. */
static uint64_t activity(const struct vidfs *fs)
{
    return __atomic_load_n(&fs->files_opened, __ATOMIC_RELAXED) +
           __atomic_load_n(&fs->bytes_served, __ATOMIC_RELAXED);
}

static void *idle_main(void *arg)
{
    struct idle *id = arg;
    uint64_t seen = activity(id->fs);
    int trimmed = 1; /* nothing to give back before the first request */
    pthread_mutex_lock(&id->lock);
    while (!id->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += IDLE_S;
        if (pthread_cond_timedwait(&id->stop_cond, &id->lock, &until) != ETIMEDOUT)
            continue;
        uint64_t now = activity(id->fs);
        if (now != seen) {
            seen = now;
            trimmed = 0;
        } else if (!trimmed) {
            bufpool_trim(id->fs->bufs);
            frame_cache_trim(id->fs->cache);
            malloc_trim(0);
            trimmed = 1;
        }
    }
    pthread_mutex_unlock(&id->lock);
    return NULL;
}

int idle_new(struct vidfs *fs, struct idle **out)
{
    struct idle *id = calloc(1, sizeof(*id));
    if (!id)
        return -ENOMEM;
    id->fs = fs;
    pthread_mutex_init(&id->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&id->stop_cond, &ca);
    pthread_condattr_destroy(&ca);
    int ret = pthread_create(&id->thread, NULL, idle_main, id);
    if (ret) {
        pthread_cond_destroy(&id->stop_cond);
        pthread_mutex_destroy(&id->lock);
        free(id);
        return -ret;
    }
    *out = id;
    return 0;
}

void idle_free(struct idle **idp)
{
    struct idle *id = *idp;
    if (!id)
        return;
    pthread_mutex_lock(&id->lock);
    id->stop = 1;
    pthread_cond_signal(&id->stop_cond);
    pthread_mutex_unlock(&id->lock);
    pthread_join(id->thread, NULL);
    pthread_cond_destroy(&id->stop_cond);
    pthread_mutex_destroy(&id->lock);
    free(id);
    *idp = NULL;
}
