/* Stream-copy segments (NAME.copy.EXT): fast and lossless, from a keyframe. */
#ifndef VIDFS_COPY_H
#define VIDFS_COPY_H

#include "audio.h"
#include "output.h"
#include "range.h"

struct media;
struct progress;

/* Writes the packets of range r of m (and its audio as `audio` says) into path; counts in
 * progress (may be NULL) the packets of [r->start_packet, r->end_packet) passed. */
int copy_write(enum audio_mode audio, struct media *m, const struct range *r,
               const struct output_container *c, const char *path, struct progress *progress);

#endif
