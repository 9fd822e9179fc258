/* Decoder pool: decoders are leased for one request and returned with their position, so
 * the next request for the following frame continues without seeking. Idle decoders are
 * reused for other files with fitting parameters (reconfigured, as PyNvVideoCodec's
 * decoder cache does) and evicted LRU. Bounded; acquire waits while all are busy. */
#ifndef VIDFS_POOL_H
#define VIDFS_POOL_H

#include <stdint.h>

#include "decode.h"

struct media;
struct decoder;

struct pool_opts {
    int size;                 /* decoders at most (busy + idle) */
    struct decode_opts decode;
    /* The backends allowed, in order of preference, NULL-terminated (decode_backends_allowed):
     * the pool knows backends only through this list, so a test may give its own. */
    const struct decode_backend *backends[DECODE_MAX_BACKENDS + 1];
    /* GPU decoders are spread over these ordinals: slot i decodes on gpus[i % ngpus], so
     * parallel readers (each leasing its own slot) land on different GPUs. */
    int gpus[DECODE_MAX_GPUS];
    int ngpus; /* 0: GPU decode.gpu only */
};

struct pool;

int pool_new(const struct pool_opts *opts, struct pool **out);
void pool_free(struct pool **p);

/* Spreads GPU decoders made from now on over gpus[0..n-1] (as opts.gpus). Call before
 * the first pool_acquire. */
void pool_spread(struct pool *p, const int *gpus, int n);

/* The backend for m: the first allowed backend after `after` (NULL: from the first) that
 * supports m's stream; NULL when none is left. */
const struct decode_backend *pool_backend(struct pool *p, const struct media *m,
                                          const struct decode_backend *after);

/* Leases a decoder of backend be (from pool_backend) attached to m, the best placed for
 * frame n: one already in m just before n, else an idle one reattached, else a new one
 * (evicting the LRU idle one). Blocks while every decoder is busy. */
int pool_acquire(struct pool *p, struct media *m, int n, const struct decode_backend *be,
                 struct decoder **out);
/* Returns a leased decoder (keeps its position for the next request). */
void pool_release(struct pool *p, struct decoder *d);

/* Counts a frame that a GPU decoder failed to give and the next backend was asked for. */
void pool_count_fallback(struct pool *p);

struct pool_stats {
    uint64_t created, reused, continued, seeks, frames_cpu, frames_gpu, gpu_fallbacks;
    uint64_t frames_by_gpu[DECODE_MAX_GPUS]; /* frames_gpu, per GPU gpus[i] */
    int gpus[DECODE_MAX_GPUS], ngpus;
    int busy, idle;
};
void pool_stats(struct pool *p, struct pool_stats *st);

#endif
