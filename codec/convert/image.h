/* png and jpg frame files, encoded with libavcodec's encoders. */
#ifndef VIDFS_IMAGE_H
#define VIDFS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <libavutil/frame.h>

#include "format.h"

struct image_opts {
    int jpeg_q;   /* qscale of jpg, 2 is best */
    int jpeg_444; /* jpg in full-range 4:4:4 from the .rgb file's pixels, else 4:2:0 */
};

/* Encodes f scaled to w x h as FORMAT_PNG (from rgb24, lossless against the .rgb file) or
 * FORMAT_JPG: 4:2:0 as `ffmpeg -i V -q:v Q F.jpg` writes it (the .yuv420p file's pixels,
 * range-expanded: ffmpeg's own bytes for an 8-bit 4:2:0 source at its size), or 4:4:4
 * from the .rgb file's pixels for sources whose chroma is whole and with jpeg_444. *out
 * is malloc'd. */
int image_encode(const AVFrame *f, enum format format, int w, int h,
                 const struct image_opts *opts, uint8_t **out, size_t *size);

#endif
