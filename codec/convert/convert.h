/* Conversion of decoded frames to the byte layouts of frame files (DESIGN.md: raw formats
 * equal `ffmpeg -f rawvideo -pix_fmt X`), with optional scaling for the frames_WxH views. */
#ifndef VIDFS_CONVERT_H
#define VIDFS_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include <libavutil/frame.h>

#include "format.h"

/* Bytes past a frame's end that a conversion may write (swscale runs over the last row,
 * by 42 bytes at most measured on small frames): a destination holds that much more. */
#define CONVERT_PAD 64

struct convert_req {
    enum format format; /* a raw format */
    int width, height;  /* output size; the frame's own size when no view scales it */
};

/* A converter for frames of some kind (host frames with swscale; CUDA frames with
 * kernels). Converters are tried in order; the first that accepts the frame runs. */
struct converter {
    const char *name;
    int (*accepts)(const AVFrame *src);
    /* Writes format_frame_size(req) bytes to dst, and may write CONVERT_PAD beyond. */
    int (*run)(const AVFrame *src, const struct convert_req *req, uint8_t *dst);
    /* The frame in host memory as libavcodec would have decoded it (planar YUV) into a
     * blank frame; NULL for converters of host frames. */
    int (*download)(const AVFrame *src, AVFrame *host);
};

extern const struct converter convert_cpu;
#if VIDFS_HAVE_NVDEC
extern const struct converter convert_cuda;
#endif

/* Converts src into dst (size must be format_frame_size(req); dst holds CONVERT_PAD bytes
 * more, which it may overwrite). -EINVAL for a format this frame cannot give (p010 from
 * 8-bit sources is allowed: upshifted). */
int convert_frame(const AVFrame *src, const struct convert_req *req, uint8_t *dst, size_t size);

/* 1 when src's samples must be range-converted to give format f: a full-range frame (yuvj,
 * or tagged JPEG range) into a YUV format, whose files are limited range as ffmpeg writes
 * them (DESIGN.md); such frames are not layout-only copies. */
int convert_changes_range(const AVFrame *src, enum format f);

/* A swscale context made as FFmpeg's scale filter makes it (bicubic, the ranges set
 * before init); NULL on failure. The caller frees it (sws_freeContext). */
struct convert_sws {
    int src_w, src_h, src_format, dst_w, dst_h, dst_format, src_full, dst_full;
};
struct SwsContext;
struct SwsContext *convert_sws_new(const struct convert_sws *p);

/* *out = a new host frame of pix_fmt at w x h with its buffers (lines aligned to align,
 * 0: FFmpeg's choice): 0 or -ENOMEM. */
int convert_frame_new(int pix_fmt, int w, int h, int align, AVFrame **out);

/* *out = src in host memory, as libavcodec's own decode would give it (for encoders): a
 * new reference to src itself when it is in host memory already. */
int convert_to_host(const AVFrame *src, AVFrame **out);

/* Bounds of a view (README, formats), so that no name makes a handle allocate
 * gigabytes or asks swscale for a size it cannot make (stretched far, such as 320x240
 * to 2x16384, or a few pixels to thousands): each side at most CONVERT_VIEW_MAX_SIDE and
 * at most CONVERT_VIEW_MAX_UPSCALE times the source's, at most CONVERT_VIEW_MAX_PIXELS
 * in all (8K UHD fits), the aspect ratio changed at most CONVERT_VIEW_MAX_STRETCH times. */
#define CONVERT_VIEW_MAX_SIDE 16384
#define CONVERT_VIEW_MAX_UPSCALE 1024
#define CONVERT_VIEW_MAX_PIXELS (1 << 25)
#define CONVERT_VIEW_MAX_STRETCH 16

/* Output size of a view: want_w/want_h of 0 keep the aspect ratio (rounded to even, at
 * least 2); both 0 means unscaled. Uses the sample aspect ratio of nothing: pixels, as
 * ffmpeg's scale filter does. 0, or -ENOENT for a view out of bounds (or a source with
 * no pixels). */
int convert_view_size(int src_w, int src_h, int want_w, int want_h, int *w, int *h);

#endif
