/* Decoder pool: decoders are leased for one request and returned with their position, so
 * the next request for the following frame continues without seeking. Idle decoders are
 * reused for other files with fitting parameters (reconfigured, as PyNvVideoCodec's
 * decoder cache does) and evicted LRU. Bounded; acquire waits while all are busy. */
#ifndef VIDFS_POOL_H
#define VIDFS_POOL_H

#include <stdint.h>

#include "../codec/decode.h"

struct media;
struct decoder;

#define POOL_MAX_GPUS 16

struct pool_opts {
    int size;                 /* decoders at most (busy + idle) */
    struct decode_opts decode;
    int use_gpu;              /* -1: never, 0: where supported (auto), 1: always (nvdec) */
    /* GPU decoders are spread over these ordinals: slot i decodes on gpus[i % ngpus], so
     * parallel readers (each leasing its own slot) land on different GPUs. */
    int gpus[POOL_MAX_GPUS];
    int ngpus; /* 0: GPU decode.gpu only */
};

struct pool;

int pool_new(const struct pool_opts *opts, struct pool **out);

/* The decoders a pool holds when the size is "auto" (pool_size=auto). */
int pool_size_auto(void);
void pool_free(struct pool **p);

/* Spreads GPU decoders made from now on over gpus[0..n-1] (as opts.gpus). Call before
 * the first pool_acquire. */
void pool_spread(struct pool *p, const int *gpus, int n);

/* Leases a decoder attached to m, the best placed for frame n: one already in m just
 * before n, else an idle one reattached, else a new one (evicting the LRU idle one).
 * Blocks while every decoder is busy. cpu: a CPU decoder whatever the backend setting
 * (the fallback for a frame a GPU decoder failed to give). */
int pool_acquire(struct pool *p, struct media *m, int n, int cpu, struct decoder **out);
/* Returns a leased decoder (keeps its position for the next request). */
void pool_release(struct pool *p, struct decoder *d);

/* Counts a frame that a GPU decoder failed to give and the CPU was asked for. */
void pool_count_fallback(struct pool *p);

struct pool_stats {
    uint64_t created, reused, continued, seeks, frames_cpu, frames_gpu, gpu_fallbacks;
    uint64_t frames_by_gpu[POOL_MAX_GPUS]; /* frames_gpu, per GPU gpus[i] */
    int gpus[POOL_MAX_GPUS], ngpus;
    int busy, idle;
};
void pool_stats(struct pool *p, struct pool_stats *st);

/* Name of the backend the pool would use for m ("cpu", "nvdec"). */
const char *pool_backend_for(struct pool *p, const struct media *m);

#endif
