/* CPU conversion. Layout-only cases (planes copied or interleaved) are done by hand, so
 * nv12/yuv420p/gray of 8-bit 4:2:0 sources are bit-identical to FFmpeg's; everything else
 * goes through swscale with the flags the ffmpeg CLI uses (bicubic), the stream's matrix
 * (BT.601 when untagged) and range. */
#include "convert.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

static void copy_plane(uint8_t *dst, int dst_stride, const uint8_t *src, int src_stride,
                       int row_bytes, int rows)
{
    for (int y = 0; y < rows; y++)
        memcpy(dst + (size_t)y * (size_t)dst_stride, src + (ptrdiff_t)y * src_stride,
               (size_t)row_bytes);
}

static void interleave_uv(uint8_t *dst, const AVFrame *f, int cw, int ch)
{
    for (int y = 0; y < ch; y++) {
        const uint8_t *u = f->data[1] + (ptrdiff_t)y * f->linesize[1];
        const uint8_t *v = f->data[2] + (ptrdiff_t)y * f->linesize[2];
        uint8_t *d = dst + (size_t)y * (size_t)cw * 2;
        for (int x = 0; x < cw; x++) {
            d[2 * x] = u[x];
            d[2 * x + 1] = v[x];
        }
    }
}

static void shift_plane10(uint16_t *dst, const AVFrame *f, int plane, int w, int h)
{
    for (int y = 0; y < h; y++) {
        const uint16_t *s =
            (const uint16_t *)(const void *)(f->data[plane] + (ptrdiff_t)y * f->linesize[plane]);
        for (int x = 0; x < w; x++)
            dst[(size_t)y * (size_t)w + (size_t)x] = (uint16_t)(s[x] << 6);
    }
}

static void interleave_uv10(uint16_t *dst, const AVFrame *f, int cw, int ch)
{
    for (int y = 0; y < ch; y++) {
        const uint16_t *u =
            (const uint16_t *)(const void *)(f->data[1] + (ptrdiff_t)y * f->linesize[1]);
        const uint16_t *v =
            (const uint16_t *)(const void *)(f->data[2] + (ptrdiff_t)y * f->linesize[2]);
        uint16_t *d = dst + (size_t)y * (size_t)cw * 2;
        for (int x = 0; x < cw; x++) {
            d[2 * x] = (uint16_t)(u[x] << 6);
            d[2 * x + 1] = (uint16_t)(v[x] << 6);
        }
    }
}

/* 1 for 8-bit YUV formats whose first plane is the luma, one byte a sample. */
static int has_luma8(enum AVPixelFormat fmt)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt);
    return d && !(d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_HWACCEL)) &&
           d->comp[0].depth == 8 && d->comp[0].plane == 0 && d->comp[0].step == 1;
}

/* The layout-only cases: 0 when done, 1 when swscale must do it (as copy_layout in
 * convert_cuda.c). Gray is the Y plane of the nv12 file (DESIGN.md), not ffmpeg's
 * -pix_fmt gray, which stretches it to full range. */
static int convert_copy(const AVFrame *f, const struct convert_req *req, uint8_t *dst)
{
    int w = f->width, h = f->height, cw = (w + 1) / 2, ch = (h + 1) / 2;
    if (req->width != w || req->height != h || convert_changes_range(f, req->format))
        return 1;
    int yuv8 = f->format == AV_PIX_FMT_YUV420P || f->format == AV_PIX_FMT_YUVJ420P;
    int yuv10 = f->format == AV_PIX_FMT_YUV420P10LE;
    size_t luma = (size_t)w * (size_t)h;
    switch (req->format) {
    case FORMAT_GRAY:
        if (!has_luma8(f->format))
            return 1;
        copy_plane(dst, w, f->data[0], f->linesize[0], w, h);
        return 0;
    case FORMAT_YUV420P:
        if (!yuv8)
            return 1;
        copy_plane(dst, w, f->data[0], f->linesize[0], w, h);
        copy_plane(dst + luma, cw, f->data[1], f->linesize[1], cw, ch);
        copy_plane(dst + luma + (size_t)cw * (size_t)ch, cw, f->data[2], f->linesize[2], cw, ch);
        return 0;
    case FORMAT_NV12:
        if (!yuv8 && f->format != AV_PIX_FMT_NV12)
            return 1;
        copy_plane(dst, w, f->data[0], f->linesize[0], w, h);
        if (yuv8)
            interleave_uv(dst + luma, f, cw, ch);
        else
            copy_plane(dst + luma, 2 * cw, f->data[1], f->linesize[1], 2 * cw, ch);
        return 0;
    case FORMAT_P010:
        if (!yuv10)
            return 1;
        shift_plane10((uint16_t *)(void *)dst, f, 0, w, h);
        interleave_uv10((uint16_t *)(void *)(dst + 2 * luma), f, cw, ch);
        return 0;
    default:
        return 1;
    }
}

/* Two formats are derived from another so that files agree with each other: rgbp is the
 * rgb file split into planes (swscale's GBRP interpolates chroma differently), gray is the
 * nv12 file's Y plane (swscale's GRAY8 would stretch it to full range). */
static const enum format via[FORMAT_COUNT] = {
    [FORMAT_NV12] = FORMAT_NV12, [FORMAT_YUV420P] = FORMAT_YUV420P,
    [FORMAT_GRAY] = FORMAT_NV12, [FORMAT_RGB] = FORMAT_RGB,
    [FORMAT_RGBP] = FORMAT_RGB,  [FORMAT_P010] = FORMAT_P010,
};

static const enum AVPixelFormat sws_format[FORMAT_COUNT] = {
    [FORMAT_NV12] = AV_PIX_FMT_NV12, [FORMAT_YUV420P] = AV_PIX_FMT_YUV420P,
    [FORMAT_RGB] = AV_PIX_FMT_RGB24, [FORMAT_P010] = AV_PIX_FMT_P010LE,
};

/* swscale's scaled packed-RGB output has SIMD (x86) only for BGR24: 0.41 against 0.73 ms
 * a 640x360 frame to 224x224 RGB24 here. Scaled RGB is therefore made as BGR24 and R and
 * B swapped back; unscaled RGB24 has its own SIMD converter and stays as it is. */
static enum AVPixelFormat out_format(const AVFrame *f, const struct convert_req *req)
{
    if (req->format == FORMAT_RGB && (req->width != f->width || req->height != f->height))
        return AV_PIX_FMT_BGR24;
    return sws_format[req->format];
}

static void swap_rb(uint8_t *p, size_t pixels)
{
    for (size_t i = 0; i < pixels; i++) {
        uint8_t b = p[3 * i];
        p[3 * i] = p[3 * i + 2];
        p[3 * i + 2] = b;
    }
}

/* One cached swscale context a thread: contexts are not thread-safe, and rebuilding one
 * per frame costs more than converting a small frame. */
struct sws_slot {
    struct SwsContext *ctx;
    struct convert_sws params;
};

static pthread_key_t sws_key;
static pthread_once_t sws_once = PTHREAD_ONCE_INIT;

static void sws_destroy(void *opaque)
{
    struct sws_slot *slot = opaque;
    sws_freeContext(slot->ctx);
    free(slot);
}

static void sws_key_init(void)
{
    pthread_key_create(&sws_key, sws_destroy);
}

/* The ranges are given before init, so that a range change is never skipped by an
 * unscaled shortcut that copies planes (a yuv420p frame tagged full range into nv12). */
struct SwsContext *convert_sws_new(const struct convert_sws *k)
{
    const struct {
        const char *name;
        int value;
    } opts[] = {
        {"srcw", k->src_w},         {"srch", k->src_h},         {"src_format", k->src_format},
        {"dstw", k->dst_w},         {"dsth", k->dst_h},         {"dst_format", k->dst_format},
        {"sws_flags", SWS_BICUBIC}, {"src_range", k->src_full},     {"dst_range", k->dst_full},
    };
    struct SwsContext *s = sws_alloc_context();
    if (!s)
        return NULL;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (av_opt_set_int(s, opts[i].name, opts[i].value, 0) < 0)
            goto fail;
    if (sws_init_context(s, NULL, NULL) < 0)
        goto fail;
    return s;
fail:
    sws_freeContext(s);
    return NULL;
}

/* This thread's context for converting f as req asks, or NULL. */
static struct SwsContext *sws_get(const AVFrame *f, const struct convert_req *req)
{
    pthread_once(&sws_once, sws_key_init);
    struct sws_slot *slot = pthread_getspecific(sws_key);
    if (!slot) {
        if (!(slot = calloc(1, sizeof(*slot))))
            return NULL;
        pthread_setspecific(sws_key, slot);
    }
    /* All ints: no padding for memcmp to trip on. */
    struct convert_sws key = {
        .src_w = f->width, .src_h = f->height, .src_format = f->format,
        .dst_w = req->width, .dst_h = req->height, .dst_format = out_format(f, req),
        .src_full = f->color_range == AVCOL_RANGE_JPEG,
    };
    if (slot->ctx && !memcmp(&key, &slot->params, sizeof(key)))
        return slot->ctx;
    sws_freeContext(slot->ctx);
    slot->ctx = convert_sws_new(&key);
    slot->params = key;
    return slot->ctx;
}

static void dst_planes(const struct convert_req *req, uint8_t *dst, uint8_t *planes[4],
                       int strides[4])
{
    int w = req->width, h = req->height, cw = (w + 1) / 2;
    size_t luma = (size_t)w * (size_t)h;
    memset(planes, 0, 4 * sizeof(*planes));
    memset(strides, 0, 4 * sizeof(*strides));
    switch (req->format) {
    case FORMAT_RGB:
        planes[0] = dst, strides[0] = 3 * w;
        break;
    case FORMAT_P010:
        planes[0] = dst, planes[1] = dst + 2 * luma;
        strides[0] = 2 * w, strides[1] = 4 * cw;
        break;
    case FORMAT_NV12:
        planes[0] = dst, planes[1] = dst + luma;
        strides[0] = w, strides[1] = 2 * cw;
        break;
    case FORMAT_YUV420P:
        planes[0] = dst, planes[1] = dst + luma;
        planes[2] = dst + luma + (size_t)cw * (size_t)((h + 1) / 2);
        strides[0] = w, strides[1] = strides[2] = cw;
        break;
    default:
        planes[0] = dst, strides[0] = w;
        break;
    }
}

/* 1 when swscale may write the planes where they are. Its unscaled planar converters
 * store with SIMD that needs 16-byte aligned planes and strides (nv12 to yuv420p faults
 * at 8x6 or 854x480 otherwise); its RGB output does not, and stays in place. */
static int aligned(uint8_t *const planes[4], const int strides[4])
{
    for (int i = 0; i < 4; i++)
        if (planes[i] && (((uintptr_t)planes[i] | (uintptr_t)strides[i]) & 15))
            return 0;
    return 1;
}

/* Scales into an aligned frame, then copies its planes into place. */
static int scale_aligned(struct SwsContext *sws, const AVFrame *f,
                         const struct convert_req *req, uint8_t *planes[4], int strides[4])
{
    AVFrame *tmp;
    int ret = convert_frame_new(out_format(f, req), req->width, req->height, 64, &tmp);
    if (ret < 0)
        return ret;
    /* What swscale leaves unwritten (the last chroma pair of odd widths) reads as zero. */
    for (int i = 0; i < AV_NUM_DATA_POINTERS && tmp->buf[i]; i++)
        memset(tmp->buf[i]->data, 0, tmp->buf[i]->size);
    ret = sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, tmp->data,
                    tmp->linesize) > 0 ? 0 : -EIO;
    if (ret == 0)
        av_image_copy(planes, strides, (const uint8_t **)tmp->data, tmp->linesize, tmp->format,
                      req->width, req->height);
    av_frame_free(&tmp);
    return ret;
}

static int convert_sws_to(const AVFrame *f, const struct convert_req *req, uint8_t *dst)
{
    struct SwsContext *sws = sws_get(f, req);
    if (!sws) {
        log_error("convert: swscale cannot convert %s to %s",
                  av_get_pix_fmt_name(f->format), format_ext(req->format));
        return -EINVAL;
    }
    /* As FFmpeg's scale filter does: the frame's matrix, its range where tagged, and
     * swscale's own defaults elsewhere (RGB is full range, yuvj too). */
    int *inv, *table, src_full, dst_full, bri, con, sat;
    sws_getColorspaceDetails(sws, &inv, &src_full, &table, &dst_full, &bri, &con, &sat);
    if (f->color_range != AVCOL_RANGE_UNSPECIFIED)
        src_full = f->color_range == AVCOL_RANGE_JPEG;
    int cs = f->colorspace == AVCOL_SPC_UNSPECIFIED || f->colorspace == AVCOL_SPC_RGB
                 ? SWS_CS_DEFAULT
                 : (int)f->colorspace;
    const int *coefs = sws_getCoefficients(cs);
    sws_setColorspaceDetails(sws, coefs, src_full, coefs, dst_full, bri, con, sat);
    uint8_t *planes[4];
    int strides[4];
    dst_planes(req, dst, planes, strides);
    if (planes[1] && !aligned(planes, strides))
        return scale_aligned(sws, f, req, planes, strides);
    /* swscale leaves the last chroma pair of odd widths unwritten in semi-planar output:
     * zero it so that the bytes never depend on what the buffer held. */
    if ((req->width | req->height) & 1)
        memset(dst, 0, format_frame_size(req->format, req->width, req->height));
    int ret = sws_scale(sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height,
                        planes, strides);
    return ret > 0 ? 0 : -EIO;
}

/* Packed RGB (BGR when bgr) to planar R, G, B. */
static void split_rgb(uint8_t *dst, const uint8_t *rgb, size_t pixels, int bgr)
{
    /* The planes that a pixel's bytes 0, 1 and 2 go to. */
    uint8_t *c0 = dst + (bgr ? 2 * pixels : 0), *c1 = dst + pixels;
    uint8_t *c2 = dst + (bgr ? 0 : 2 * pixels);
    for (size_t i = 0; i < pixels; i++) {
        c0[i] = rgb[3 * i];
        c1[i] = rgb[3 * i + 1];
        c2[i] = rgb[3 * i + 2];
    }
}

static int convert_sws(const AVFrame *f, const struct convert_req *req, uint8_t *dst)
{
    size_t pixels = (size_t)req->width * (size_t)req->height;
    if (via[req->format] == req->format) {
        int ret = convert_sws_to(f, req, dst);
        if (ret == 0 && out_format(f, req) == AV_PIX_FMT_BGR24)
            swap_rb(dst, pixels);
        return ret;
    }
    struct convert_req base = *req;
    base.format = via[req->format];
    uint8_t *tmp =
        av_malloc(format_frame_size(base.format, req->width, req->height) + CONVERT_PAD);
    if (!tmp)
        return -ENOMEM;
    int ret = convert_sws_to(f, &base, tmp);
    if (ret == 0 && req->format == FORMAT_RGBP)
        split_rgb(dst, tmp, pixels, out_format(f, &base) == AV_PIX_FMT_BGR24);
    else if (ret == 0)
        memcpy(dst, tmp, pixels); /* gray: the luma plane comes first */
    av_free(tmp);
    return ret;
}

static int cpu_accepts(const AVFrame *src)
{
    return src->format != AV_PIX_FMT_CUDA;
}

static int cpu_run(const AVFrame *src, const struct convert_req *req, uint8_t *dst)
{
    if (convert_copy(src, req, dst) == 0)
        return 0;
    return convert_sws(src, req, dst);
}

const struct converter convert_cpu = {
    .name = "cpu",
    .accepts = cpu_accepts,
    .run = cpu_run,
};
