/* What vpath_parse promises for any string, checked from outside the parser: shared by the
 * bounded fuzzer that runs in CI (fuzz_vpath.c) and the libFuzzer target (tests/fuzz/). */
#ifndef VIDFS_VPATH_CHECK_H
#define VIDFS_VPATH_CHECK_H

#include <stddef.h>

#include "vpath.h"

/* Parses path and checks the result: 0 or -ENOENT; every number within its range; src_len
 * and ext_off inside the path at a video component (the skip+1-th one) or, for a plain
 * path, no unskipped video component at all; and, for a path shaped as FUSE passes them
 * (one leading '/', no empty component, no trailing '/'), a name that parses is the name
 * vpath_check_spell writes back from the result (one spelling). Prints the path and each
 * broken promise to stderr. Returns the number of broken promises; *ret gets the parse's
 * return value and *vp its result. */
int vpath_check(const char *path, const char *exts, int skip, int *ret, struct vpath *vp);

/* Writes the one spelling of the name vp describes into buf (size bytes), taking the
 * source prefix, path[0..src_len), from path. -ENAMETOOLONG if it does not fit. */
int vpath_check_spell(const struct vpath *vp, const char *path, char *buf, size_t size);

#endif
