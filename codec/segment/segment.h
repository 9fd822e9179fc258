/* Segments: clips of a source cut by time, either re-encoded frame-accurately (frames with
 * start <= t < end) or stream-copied from the keyframe at or before start. Materialized
 * into the disk store on first open; concurrent opens of one name share one encode. */
#ifndef VIDFS_SEGMENT_H
#define VIDFS_SEGMENT_H

#include <stdint.h>

#include "audio.h"
#include "encode.h"

struct media;
struct reader;
struct store;

/* What the [segments] settings ask for. */
struct segment_opts {
    struct encode_settings enc;
    enum audio_mode audio;
    int max_nvenc_sessions; /* NVENC sessions at most (the limiter may lower it) */
    int nvenc_wait_ms;      /* how long a request waits for a session before the CPU */
};

struct segment_req {
    double start, end;     /* seconds from frame 0; end may pass the end (clamped) */
    const char *container; /* extension: mp4, mkv, mov, ts, ... */
    int copy;              /* stream copy instead of transcode */
};

struct segmenter;

/* Borrows reader and store, which must outlive it. */
int segmenter_new(struct reader *reader, struct store *store, const struct segment_opts *opts,
                  struct segmenter **out);
void segmenter_free(struct segmenter **sg);

/* 1 when the name can exist for m with sg's settings (container known and able to hold
 * the segment's codec, start < end, start before the last frame), else 0; no encoding. */
int segment_valid(const struct segmenter *sg, const struct media *m, const struct segment_req *req);

/* Produces the segment (or finds it in the store) and opens it: the first *size bytes of
 * *fd (read-only, caller closes; never serve what follows). -ENOENT for a request
 * segment_valid rejects, -EIO when the source fails. */
int segment_open(struct segmenter *sg, struct media *m, const struct segment_req *req,
                 int *fd, uint64_t *size);

/* Exact size when already produced, -ENOENT when not (yet). */
int segment_size(struct segmenter *sg, const struct media *m, const struct segment_req *req,
                 uint64_t *size);

struct segment_stats {
    uint64_t produced, store_hits, copies, nvenc_encodes, cpu_encodes, nvenc_fallbacks;
};
void segment_stats(struct segmenter *sg, struct segment_stats *st);

#endif
