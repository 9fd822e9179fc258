/* The mounted filesystem: its state and its libfuse (high-level) operations. */
#ifndef VIDFS_OPS_H
#define VIDFS_OPS_H

#define FUSE_USE_VERSION 35
#include <fuse.h>

#include "config.h"

struct vidfs;

/* Builds the stores, caches and pool from cfg (taken over: freed by vidfs_free) for the
 * source directory, to be mounted at mountpoint (NULL: unknown), which source lookups
 * never enter. */
int vidfs_new(const char *source, const char *mountpoint, struct config *cfg,
              struct vidfs **out);
void vidfs_free(struct vidfs **fs);

/* The operations; private data (fuse_get_context) is the struct vidfs. */
extern const struct fuse_operations vidfs_ops;

#endif
