/* The mounted filesystem's libfuse (high-level) operations. */
#ifndef VIDFS_OPS_H
#define VIDFS_OPS_H

#define FUSE_USE_VERSION 35
#include <fuse.h>

/* The operations; private data (fuse_get_context) is the struct vidfs. */
extern const struct fuse_operations vidfs_ops;

#endif
