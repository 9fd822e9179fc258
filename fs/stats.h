/* The mount's counters as the JSON text of /.vidfs/stats.json. */
#ifndef VIDFS_STATS_H
#define VIDFS_STATS_H

#include <stdint.h>

struct stats_sources {
    struct frame_cache *cache;
    struct pool *pool;
    struct reader *reader;
    struct segmenter *segmenter;
    struct bufpool *bufs;
    struct image_ahead *images;
    uint64_t bytes_served, files_opened;
};

/* A malloc'd, newline-terminated JSON object; NULL when out of memory. */
char *stats_json(const struct stats_sources *src);

#endif
