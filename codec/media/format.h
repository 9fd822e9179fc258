/* Output formats of frame files: names, extensions and exact byte sizes. Pure: no I/O,
 * so the path grammar and `stat` use it without decoding. */
#ifndef VIDFS_FORMAT_H
#define VIDFS_FORMAT_H

#include <stdint.h>

enum format {
    FORMAT_NV12,
    FORMAT_YUV420P,
    FORMAT_GRAY,
    FORMAT_RGB,
    FORMAT_RGBP,
    FORMAT_P010,
    FORMAT_PNG,
    FORMAT_JPG,
    FORMAT_COUNT
};

/* FORMAT_COUNT for an unknown extension. */
enum format format_from_ext(const char *ext, int len);
const char *format_ext(enum format f);

/* 1 for formats whose size follows from the dimensions (raw), 0 for encoded images. */
int format_is_raw(enum format f);

/* Exact bytes of one raw frame of w x h (0 for encoded formats). */
uint64_t format_frame_size(enum format f, int w, int h);

#endif
