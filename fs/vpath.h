/* Path grammar of the mount: what a path names, parsed without any I/O so that it can be
 * unit-tested and fuzzed alone. The caller checks the parts that need the source (that
 * the video prefix is a regular file, frame numbers within the count). */
#ifndef VIDFS_VPATH_H
#define VIDFS_VPATH_H

#include <stddef.h>

#include "format.h"

enum vpath_kind {
    VPATH_PLAIN,        /* outside any video: a mirrored directory or passthrough file */
    VPATH_CTL_DIR,      /* /.vidfs */
    VPATH_STATS,        /* /.vidfs/stats.json */
    VPATH_VIDEO_DIR,    /* clip.mp4/ (or clip.mp4/streams/S/) */
    VPATH_META,         /* meta.json */
    VPATH_SOURCE,       /* source.EXT */
    VPATH_FRAMES_CSV,   /* frames.csv */
    VPATH_FRAMES_DIR,   /* frames/ or frames_WxH/ */
    VPATH_FRAME,        /* frames/N.FMT */
    VPATH_BATCH,        /* frames/A-B.FMT, frames/A-B~S.FMT */
    VPATH_SEGMENTS_DIR, /* segments/ */
    VPATH_SEGMENT,      /* segments/S-E.EXT, segments/S-E.copy.EXT */
    VPATH_STREAMS_DIR,  /* streams/ */
};

struct vpath {
    enum vpath_kind kind;
    size_t src_len;   /* path[0..src_len) names the source (file or directory) */
    size_t ext_off;   /* offset of the video's extension within path (after the dot) */
    int stream;       /* FFmpeg stream index, -1 for the default stream */
    int view_w, view_h; /* frames_WxH: 0 where not given; both 0 for frames/ */
    enum format format;
    int first, last, step; /* frames first..last-1 every step (FRAME: last = first + 1) */
    double seg_start, seg_end;
    int seg_copy;
    char container[8];
};

/* Parses path (relative to the mount root, leading '/' optional). exts is the comma-
 * separated list of video extensions (case-insensitive). skip: how many leading components
 * with a video extension are directories in the source and so not videos (the caller
 * retries with skip + 1 when it finds one). 0, or -ENOENT for a name that cannot exist. */
int vpath_parse(const char *path, const char *exts, int skip, struct vpath *out);

/* Number of frames a FRAME or BATCH path names. */
int vpath_count(const struct vpath *vp);

/* 1 when ext (len bytes) is in the comma-separated list exts, case-insensitive. */
int vpath_ext_match(const char *exts, const char *ext, size_t len);

#endif
