/* What a segment request covers, in frames and packets of the media's index. */
#ifndef VIDFS_RANGE_H
#define VIDFS_RANGE_H

#include <stdint.h>

#include "segment.h"

struct media;

/* Frames and packets a request covers. */
struct range {
    int first, last;  /* display frames [first, last) named by the request */
    int start_packet; /* copy: the decode-order packet at the keyframe */
    int end_packet;   /* copy: one past the last packet needed */
    int base;         /* display frame whose pts becomes 0 */
    int64_t t0, t1;   /* [t0, t1): the output's span, source stream time base */
};

/* The range of req in m: 0, or -ENOENT when no frame has start <= t < end. */
int range_find(const struct media *m, const struct segment_req *req, struct range *r);

#endif
