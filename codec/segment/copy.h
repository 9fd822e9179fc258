/* Stream-copy segments (NAME.copy.EXT): fast and lossless, from a keyframe. */
#ifndef VIDFS_COPY_H
#define VIDFS_COPY_H

#include "audio.h"
#include "output.h"
#include "range.h"

struct media;

/* Writes the packets of range r of m (and its audio as `audio` says) into path. */
int copy_write(enum audio_mode audio, struct media *m, const struct range *r,
               const struct output_container *c, const char *path);

#endif
