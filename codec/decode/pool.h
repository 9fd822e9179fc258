/* Decoder pool: decoders are leased for one whole request (a frame file, a batch, a
 * segment) and returned with their position, so the next request for the following frame
 * continues without seeking. Idle decoders are reused for other files with fitting
 * parameters (reconfigured, as PyNvVideoCodec's decoder cache does) and evicted LRU.
 * Bounded by what keeps the machine busy (cores, or NVDEC engines); requests that find no
 * decoder wait in the order they came. */
#ifndef VIDFS_POOL_H
#define VIDFS_POOL_H

#include <stdint.h>

#include "decode.h"

struct media;
struct decoder;

#define POOL_MAX_SIZE 256

struct pool_opts {
    /* Decoders at most (busy + idle). 0: from the machine: one per core for CPU
     * decoding; with GPUs, two per NVDEC engine (one decodes while the other's frame is
     * converted and copied out), and never fewer than the cores. */
    int size;
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

/* Spreads GPU decoders made from now on over gpus[0..n-1] (as opts.gpus), each with
 * `engines` NVDEC engines (sizes an automatic pool). Call before the first pool_acquire. */
void pool_spread(struct pool *p, const int *gpus, int n, int engines);

/* The backend for m: the first allowed backend after `after` (NULL: from the first) that
 * supports m's stream; NULL when none is left. */
const struct decode_backend *pool_backend(struct pool *p, const struct media *m,
                                          const struct decode_backend *after);

/* Leases a decoder of backend be (from pool_backend) attached to m, the best placed for
 * frame n: one already in m just before n, else a new one while under the bound (in a
 * CPU pool parked decoders not counted; twice the bound at most in all), else an idle one
 * reattached (the LRU). Blocks while the bound's count are busy, or every other is parked; waiting requests are
 * served in the order they came, except that one that an idle decoder reaches by
 * continuing takes it at once. ticket (may be NULL) is the request's place in line: 0 on
 * its first acquire, set then; a request that comes back with it for a later frame
 * waits behind no request that came after it. */
int pool_acquire(struct pool *p, struct media *m, int n, const struct decode_backend *be,
                 uint64_t *ticket, struct decoder **out);
/* Returns a leased decoder (keeps its position for the next request). */
void pool_release(struct pool *p, struct decoder *d);

/* How long a parked decoder waits for its request's next read, in ms. Far above the gap
 * between the reads of one file (microseconds), far below what a waiting reader notices. */
#define POOL_PARK_MS 100

/* A request's claim on the decoder it parked between two of its reads. */
struct pool_claim {
    int slot; /* -1: none */
    uint64_t gen;
};

/* Returns a leased decoder but keeps it for the same request's next read for a short
 * while (POOL_PARK_MS): no other request takes it in that time (in a CPU pool they get
 * another while fewer than the bound decode). c names it. */
void pool_park(struct pool *p, struct decoder *d, struct pool_claim *c);
/* The parked decoder back, leased again: 0 with *out; -EAGAIN when it was given to
 * another request meanwhile (acquire anew then). Uses up the claim. */
int pool_unpark(struct pool *p, struct pool_claim *c, struct decoder **out);
/* Gives a claim up: the decoder is free to any request at once. */
void pool_unclaim(struct pool *p, struct pool_claim *c);

/* The bound on decoders decoding at once (the setting or what the machine was found to
 * take); in a CPU pool parked ones may add as many again. */
int pool_size(struct pool *p);

/* Counts a frame that a GPU decoder failed to give and the next backend was asked for. */
void pool_count_fallback(struct pool *p);

struct pool_stats {
    uint64_t created, reused, continued, seeks, frames_cpu, frames_gpu, gpu_fallbacks;
    uint64_t frames_by_gpu[DECODE_MAX_GPUS]; /* frames_gpu, per GPU gpus[i] */
    int gpus[DECODE_MAX_GPUS], ngpus;
    uint64_t waits;    /* acquires that had to wait */
    uint64_t unparked; /* parked decoders taken back by their request */
    int busy, idle, waiting, size, parked;
};
void pool_stats(struct pool *p, struct pool_stats *st);

#endif
