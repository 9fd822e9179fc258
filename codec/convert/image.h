/* png and jpg frame files, encoded with libavcodec's encoders. */
#ifndef VIDFS_IMAGE_H
#define VIDFS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <libavutil/frame.h>

#include "format.h"

/* Encodes f scaled to w x h as FORMAT_PNG (from rgb24, lossless against the .rgb file) or
 * FORMAT_JPG (full-range 4:4:4, qscale jpeg_q). *out is malloc'd. */
int image_encode(const AVFrame *f, enum format format, int w, int h, int jpeg_q, uint8_t **out,
                 size_t *size);

#endif
