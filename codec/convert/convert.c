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

void convert_view_size(int src_w, int src_h, int want_w, int want_h, int *w, int *h)
{
    if (!want_w && !want_h) {
        *w = src_w, *h = src_h;
    } else if (want_w && want_h) {
        *w = want_w, *h = want_h;
    } else if (want_w) {
        *w = want_w;
        *h = (int)(((int64_t)src_h * want_w + src_w) / (2 * (int64_t)src_w)) * 2;
    } else {
        *h = want_h;
        *w = (int)(((int64_t)src_w * want_h + src_h) / (2 * (int64_t)src_h)) * 2;
    }
    if (*w < 2)
        *w = 2;
    if (*h < 2)
        *h = 2;
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
