/* The mounted filesystem's state: the source directory and the layers that serve it. The
 * FUSE ops (ops.c) read it through fuse_get_context()->private_data. */
#ifndef VIDFS_VIDFS_H
#define VIDFS_VIDFS_H

#include <stdint.h>

#include "config.h"
#include "format.h"

struct vidfs {
    struct config cfg;
    int src_fd;
    char *source;
    char *mountpoint;
    struct source *src;
    enum format list_format;
    struct store *store;
    struct pool *pool;
    struct frame_cache *cache;
    struct reader *reader;
    struct segmenter *segmenter;
    struct media_table *media;
    struct size_table *sizes;
    struct bufpool *bufs; /* frames of the raw frame files being read */
    struct idle *idle;    /* started with the daemon (vidfs_start) */
    struct image_ahead *images;
    uint64_t bytes_served, files_opened;
};

/* Builds the stores, caches and pool from cfg (taken over: freed by vidfs_free) for the
 * source directory, to be mounted at mountpoint (NULL: unknown), which source lookups
 * never enter. */
int vidfs_new(const char *source, const char *mountpoint, struct config *cfg,
              struct vidfs **out);
void vidfs_free(struct vidfs **fs);

/* What must wait until the daemon has forked (CUDA does not survive a fork): called from
 * the FUSE init op. */
void vidfs_start(struct vidfs *fs);

#endif
