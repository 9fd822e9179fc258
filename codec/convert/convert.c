/* Conversion: the converters in order of preference; the first that accepts a frame
 * converts it (convert_cuda.c for NVDEC frames, convert_cpu.c for host frames). */
#include "convert.h"

#include <errno.h>

static const struct converter *const converters[] = {
#if VIDFS_HAVE_NVDEC
    &convert_cuda,
#endif
    &convert_cpu,
};

/* other * want / side, rounded to the nearest even number, at least 2 (as ffmpeg's
 * scale=W:-2 does); 64-bit, so that nothing overflows before the bounds are checked. */
static int64_t keep_aspect(int64_t other, int64_t want, int64_t side)
{
    int64_t v = (other * want + side) / (2 * side) * 2;
    return v < 2 ? 2 : v;
}

int convert_view_size(int src_w, int src_h, int want_w, int want_h, int *w, int *h)
{
    if (src_w <= 0 || src_h <= 0 || want_w < 0 || want_h < 0)
        return -ENOENT;
    if (!want_w && !want_h) {
        *w = src_w, *h = src_h;
        return 0;
    }
    int64_t vw = want_w ? want_w : keep_aspect(src_w, want_h, src_h);
    int64_t vh = want_h ? want_h : keep_aspect(src_h, want_w, src_w);
    if (vw > CONVERT_VIEW_MAX_SIDE || vh > CONVERT_VIEW_MAX_SIDE ||
        vw > CONVERT_VIEW_MAX_UPSCALE * (int64_t)src_w ||
        vh > CONVERT_VIEW_MAX_UPSCALE * (int64_t)src_h || vw * vh > CONVERT_VIEW_MAX_PIXELS)
        return -ENOENT;
    /* Stretch: (vw / src_w) / (vh / src_h), both ways. */
    if (vw * src_h > CONVERT_VIEW_MAX_STRETCH * vh * src_w ||
        vh * src_w > CONVERT_VIEW_MAX_STRETCH * vw * src_h)
        return -ENOENT;
    *w = (int)vw, *h = (int)vh;
    return 0;
}

int convert_changes_range(const AVFrame *src, enum format f)
{
    if (f != FORMAT_NV12 && f != FORMAT_YUV420P && f != FORMAT_GRAY && f != FORMAT_P010)
        return 0;
    switch (src->format) {
    case AV_PIX_FMT_YUVJ420P:
    case AV_PIX_FMT_YUVJ422P:
    case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ411P:
        return 1;
    default:
        return src->color_range == AVCOL_RANGE_JPEG;
    }
}

/* The first converter that accepts src, or NULL. */
static const struct converter *converter_for(const AVFrame *src)
{
    for (size_t i = 0; i < sizeof(converters) / sizeof(converters[0]); i++)
        if (converters[i]->accepts(src))
            return converters[i];
    return NULL;
}

int convert_frame(const AVFrame *src, const struct convert_req *req, uint8_t *dst, size_t size)
{
    if (!format_is_raw(req->format) ||
        size != format_frame_size(req->format, req->width, req->height))
        return -EINVAL;
    const struct converter *c = converter_for(src);
    return c ? c->run(src, req, dst) : -EINVAL;
}

int convert_frame_new(int pix_fmt, int w, int h, int align, AVFrame **out)
{
    AVFrame *f = av_frame_alloc();
    if (!f)
        return -ENOMEM;
    f->format = pix_fmt;
    f->width = w;
    f->height = h;
    if (av_frame_get_buffer(f, align) < 0) {
        av_frame_free(&f);
        return -ENOMEM;
    }
    *out = f;
    return 0;
}

int convert_to_host(const AVFrame *src, AVFrame **out)
{
    const struct converter *c = converter_for(src);
    AVFrame *f = c && c->download ? av_frame_alloc() : av_frame_clone(src);
    if (!f)
        return -ENOMEM;
    int ret = c && c->download ? c->download(src, f) : 0;
    if (ret < 0)
        av_frame_free(&f);
    *out = f;
    return ret;
}
