/* Decoded frames shared by all readers: a segmented LRU bounded in bytes, keyed by (media id,
 * display index), in shards with a lock each (the LRU order is kept per shard). Frames are refcounted AVFrames: get returns a new reference, so a
 * reader never copies a frame it only reads, and eviction never frees one in use. The
 * cache holds its own copy of a frame in host memory, so that what it holds is what it
 * counts: a decoder's frame goes back to the decoder's pool at once, unless it is in a
 * buffer of the cache's already (frame_cache_frame_buffer). Those buffers are recycled:
 * one freed by eviction or a drop takes the next frame of its size. */
#ifndef VIDFS_FRAME_CACHE_H
#define VIDFS_FRAME_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <libavutil/frame.h>

struct frame_cache;

int frame_cache_new(size_t max_bytes, struct frame_cache **out);
void frame_cache_free(struct frame_cache **fc);

/* A new reference to the cached frame (caller av_frame_free's it), or NULL on a miss. A
 * hit renews the frame's place in its segment; it protects nothing. */
AVFrame *frame_cache_get(struct frame_cache *fc, uint64_t media, int n);
/* Keeps a copy of f, or a reference to f when it is in device memory (no-op when present
 * or when f alone exceeds the bound), on probation: evicted before the frames readers
 * asked for (frame_cache_protect). */
void frame_cache_put(struct frame_cache *fc, uint64_t media, int n, const AVFrame *f);
/* Marks frame (media, n), if present, as asked for by a reader out of order: protected. */
void frame_cache_protect(struct frame_cache *fc, uint64_t media, int n);
/* Gives f (format set) a buffer of the cache's for a picture of width x height (lines
 * aligned to 64 bytes, padded after the last), as a decoder's get_buffer2 does: put then
 * keeps f by reference instead of copying it, and the buffer comes back for reuse when
 * the last reference goes. 0, -EINVAL (no such layout) or -ENOMEM. */
int frame_cache_frame_buffer(struct frame_cache *fc, AVFrame *f, int width, int height);
/* 1 when present, without touching the LRU order. */
int frame_cache_has(struct frame_cache *fc, uint64_t media, int n);
/* Removes the frame if present (a reader that passed it will not come back), so that its
 * buffer takes the next copy instead of fresh memory. */
void frame_cache_drop(struct frame_cache *fc, uint64_t media, int n);
/* Frees the buffers kept for reuse (memory returned when idle). */
void frame_cache_trim(struct frame_cache *fc);

struct frame_cache_stats {
    uint64_t hits, misses, inserts, evictions, dropped, bytes, max_bytes, frames;
    uint64_t allocs; /* buffers allocated, not recycled */
};
void frame_cache_stats(struct frame_cache *fc, struct frame_cache_stats *st);

#endif
