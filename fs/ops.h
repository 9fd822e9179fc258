/* The mounted filesystem's libfuse (high-level) operations. */
#ifndef VIDFS_OPS_H
#define VIDFS_OPS_H

/* 3.12: fuse_loop_mt takes the config of fuse_loop_cfg_create (with 35 it reads that as
 * the 3.2 struct: no idle threads kept, libfuse's 10 threads at most). */
#define FUSE_USE_VERSION 312
#include <fuse.h>

/* The operations; private data (fuse_get_context) is the struct vidfs. */
extern const struct fuse_operations vidfs_ops;

#endif
