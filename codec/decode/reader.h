/* The door to decoded frames: frame cache first, then a decoder leased from the pool;
 * frames passed on the way are cached, and sequential readers trigger read-ahead. */
#ifndef VIDFS_READER_H
#define VIDFS_READER_H

#include <libavutil/frame.h>

#include "pool.h"

struct media;
struct pool;
struct frame_cache;

struct reader;

struct reader_opts {
    int readahead; /* frames decoded ahead of a sequential reader, 0 = off */
    int workers;   /* read-ahead threads: media read ahead at once; 0: the pool's bound */
};

/* A request's hold on one decoder (a batch, a segment): the frames it decodes come from
 * that decoder from the first to the last, so no other request takes it half-way and the
 * request never decodes a GOP twice. Between calls the decoder is parked (pool_park): a
 * request that stops reading gives it up after a moment, so an open file never holds one.
 * Initialise with READER_LEASE_INIT; end with reader_lease_end. */
struct reader_lease {
    struct pool_claim claim;
    uint64_t ticket; /* the request's place in the pool's line, from its first frame on */
    int handed; /* the decoder went to read-ahead (reader_get_leased) */
    int keep;   /* read-ahead lost frames to the cache's bound: decode for ourselves */
};
#define READER_LEASE_INIT {.claim = {.slot = -1}}

/* The reader borrows pool and cache, which must outlive it. */
int reader_new(struct pool *pool, struct frame_cache *cache, const struct reader_opts *opts,
               struct reader **out);
void reader_free(struct reader **r);

/* Display frame n of m: *out is a new reference (av_frame_free it). -ENOENT past the
 * end, -EIO when the source cannot give it. */
int reader_get(struct reader *r, struct media *m, int n, AVFrame **out);

/* reader_get for a reader that will stop before frame end (the end of a batch or a
 * segment): read-ahead does not go past it. */
int reader_get_until(struct reader *r, struct media *m, int n, int end, AVFrame **out);

/* reader_get_until through lease l (NULL: a lease for this frame alone). A leased request
 * read in order hands its decoder to a read-ahead job when a read-ahead worker is free (the
 * job decodes its next frames while it converts or encodes this one, and gives the
 * decoder up when it ends); else it decodes in its own order. */
int reader_get_leased(struct reader *r, struct media *m, int n, int end,
                      struct reader_lease *l, AVFrame **out);
/* Gives the lease's decoder back to the pool (keeping its position); l may be unused. */
void reader_lease_end(struct reader *r, struct reader_lease *l);

struct reader_stats {
    uint64_t frames_served, readahead_frames, readahead_hits;
};
void reader_stats(struct reader *r, struct reader_stats *st);

#endif
