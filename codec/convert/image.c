/* Image encoding: the frame goes through convert_frame first (so png pixels are exactly
 * the .rgb file's, jpg's the .yuv420p file's, and GPU frames work too), then through the
 * png or mjpeg encoder. A host 4:2:0 frame at its size goes to jpg as it is. */
#include "image.h"
#include "convert.h"
#include "averror.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <stdlib.h>
#include <string.h>

/* A new frame of pix_fmt with f converted to `format` (the file's exact bytes), its planes
 * laid out as the file has them. */
static int make_converted(const AVFrame *f, enum format format, enum AVPixelFormat pix_fmt,
                          int w, int h, AVFrame **out)
{
    AVFrame *in = av_frame_alloc();
    if (!in)
        return -ENOMEM;
    in->format = pix_fmt;
    in->width = w;
    in->height = h;
    size_t size = format_frame_size(format, w, h);
    AVBufferRef *buf = av_buffer_allocz(size + CONVERT_PAD);
    if (!buf) {
        av_frame_free(&in);
        return -ENOMEM;
    }
    in->buf[0] = buf;
    av_image_fill_arrays(in->data, in->linesize, buf->data, pix_fmt, w, h, 1);
    struct convert_req req = {.format = format, .width = w, .height = h};
    int ret = convert_frame(f, &req, buf->data, size);
    if (ret < 0) {
        av_frame_free(&in);
        return ret;
    }
    *out = in;
    return 0;
}

/* swscale's conversion of src into dst (same size) as full range, as ffmpeg's scale
 * filter makes it; src's range is its own (a yuv420p frame may say full range). dst is a
 * non-J format (the J ones only warn), set to `as` afterwards for the encoder. */
static int sws_full(const AVFrame *src, AVFrame *dst, enum AVPixelFormat as)
{
    struct convert_sws p = {
        .src_w = src->width, .src_h = src->height, .src_format = src->format,
        .dst_w = dst->width, .dst_h = dst->height, .dst_format = dst->format,
        .src_full = src->color_range == AVCOL_RANGE_JPEG, .dst_full = 1,
    };
    struct SwsContext *sws = convert_sws_new(&p);
    if (!sws)
        return -ENOMEM;
    int ret = sws_scale(sws, (const uint8_t *const *)src->data, src->linesize, 0, src->height,
                        dst->data, dst->linesize) > 0 ? 0 : -EIO;
    sws_freeContext(sws);
    dst->format = as;
    return ret;
}

/* swscale's limited-to-full range expansion of 8-bit 4:2:0 at the same size maps every
 * sample on its own (1:1 filters), at ~4 ms a 1080p frame here. These tables are that
 * map (~2 ms), read from swscale itself on ramps and checked on noise, so the bytes stay
 * ffmpeg's; a swscale that fails the check is used as it is. */
static uint8_t range_lut[2][256]; /* luma, chroma */
static int range_lut_ok;
static pthread_once_t range_once = PTHREAD_ONCE_INIT;

static void lut_apply(const AVFrame *src, AVFrame *dst)
{
    for (int p = 0; p < 3; p++) {
        int w = p ? (src->width + 1) / 2 : src->width;
        int h = p ? (src->height + 1) / 2 : src->height;
        const uint8_t *lut = range_lut[p > 0];
        for (int y = 0; y < h; y++) {
            const uint8_t *in = src->data[p] + (ptrdiff_t)y * src->linesize[p];
            uint8_t *o = dst->data[p] + (ptrdiff_t)y * dst->linesize[p];
            for (int x = 0; x < w; x++)
                o[x] = lut[in[x]];
        }
    }
}

/* 1 when lut_apply gives swscale's bytes for a w x h frame of seeded noise. */
static int lut_check(int w, int h, unsigned seed)
{
    AVFrame *src = NULL, *a = NULL, *b = NULL;
    int ok = convert_frame_new(AV_PIX_FMT_YUV420P, w, h, 0, &src) == 0 &&
             convert_frame_new(AV_PIX_FMT_YUV420P, w, h, 0, &a) == 0 &&
             convert_frame_new(AV_PIX_FMT_YUV420P, w, h, 0, &b) == 0;
    for (int p = 0; ok && p < 3; p++)
        for (int i = 0; i < src->linesize[p] * (p ? (h + 1) / 2 : h); i++)
            src->data[p][i] = (uint8_t)((seed = seed * 1103515245u + 12345u) >> 16);
    ok = ok && sws_full(src, a, AV_PIX_FMT_YUV420P) == 0;
    if (ok)
        lut_apply(src, b);
    for (int p = 0; ok && p < 3; p++) {
        int pw = p ? (w + 1) / 2 : w, ph = p ? (h + 1) / 2 : h;
        for (int y = 0; ok && y < ph; y++)
            ok = !memcmp(a->data[p] + (ptrdiff_t)y * a->linesize[p],
                         b->data[p] + (ptrdiff_t)y * b->linesize[p], (size_t)pw);
    }
    av_frame_free(&src);
    av_frame_free(&a);
    av_frame_free(&b);
    return ok;
}

static void range_lut_init(void)
{
    AVFrame *ramp = NULL, *out = NULL;
    if (convert_frame_new(AV_PIX_FMT_YUV420P, 512, 2, 0, &ramp) < 0 ||
        convert_frame_new(AV_PIX_FMT_YUV420P, 512, 2, 0, &out) < 0)
        goto done;
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 512; x++)
            ramp->data[0][y * ramp->linesize[0] + x] = (uint8_t)x;
    for (int x = 0; x < 256; x++)
        ramp->data[1][x] = ramp->data[2][x] = (uint8_t)x;
    if (sws_full(ramp, out, AV_PIX_FMT_YUV420P) < 0)
        goto done;
    for (int v = 0; v < 256; v++) {
        range_lut[0][v] = out->data[0][v];
        range_lut[1][v] = out->data[1][v];
    }
    range_lut_ok = lut_check(1920, 1080, 1) && lut_check(177, 99, 2);
done:
    if (!range_lut_ok)
        log_warn("image: swscale's range expansion is not a per-sample map here: jpg "
                 "frames use swscale itself (slower)");
    av_frame_free(&ramp);
    av_frame_free(&out);
}

/* src (8-bit 4:2:0, or rgb24 with yuv444) in full range as yuvj420p or yuvj444p, into a
 * new *out. */
static int to_jpeg_range(const AVFrame *src, int yuv444, AVFrame **out)
{
    /* Full-range 4:2:0 already (MJPEG's yuvj420p): as it is, as ffmpeg passes it on. */
    if (!yuv444 && (src->format == AV_PIX_FMT_YUVJ420P || src->color_range == AVCOL_RANGE_JPEG)) {
        if (!(*out = av_frame_clone(src)))
            return -ENOMEM;
        (*out)->format = AV_PIX_FMT_YUVJ420P;
        return 0;
    }
    int ret = convert_frame_new(yuv444 ? AV_PIX_FMT_YUV444P : AV_PIX_FMT_YUV420P, src->width,
                                src->height, 0, out);
    if (ret < 0)
        return ret;
    if (!yuv444 && src->format == AV_PIX_FMT_YUV420P) {
        pthread_once(&range_once, range_lut_init);
        if (range_lut_ok) {
            lut_apply(src, *out);
            (*out)->format = AV_PIX_FMT_YUVJ420P;
            return 0;
        }
    }
    ret = sws_full(src, *out, yuv444 ? AV_PIX_FMT_YUVJ444P : AV_PIX_FMT_YUVJ420P);
    if (ret < 0)
        av_frame_free(out);
    return ret;
}

/* 1 when f goes to the jpg encoder's 4:2:0 as it is: an 8-bit 4:2:0 host frame at the
 * size asked for (the decoder's own output, as ffmpeg's CLI hands it on). */
static int is_plain_420(const AVFrame *f, int w, int h)
{
    return (f->format == AV_PIX_FMT_YUV420P || f->format == AV_PIX_FMT_YUVJ420P) &&
           f->width == w && f->height == h;
}

/* 1 for a host frame whose chroma is not subsampled (4:4:4, rgb): its jpg is 4:4:4, as
 * ffmpeg picks the encoder format closest to the source. */
static int full_chroma(const AVFrame *f)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
    return d && !(d->flags & AV_PIX_FMT_FLAG_HWACCEL) && d->nb_components >= 3 &&
           !d->log2_chroma_w && !d->log2_chroma_h;
}

/* f as an 8-bit 4:2:0 host frame at w x h, into a new *out: a GPU frame at its size as
 * libavcodec would have decoded it, in its own range (a full-range one through the
 * limited-range .yuv420p would lose its extremes); else the .yuv420p file's pixels. */
static int plain_420(const AVFrame *f, int w, int h, AVFrame **out)
{
    if (f->width == w && f->height == h && convert_to_host(f, out) == 0) {
        if (is_plain_420(*out, w, h))
            return 0;
        av_frame_free(out);
    }
    return make_converted(f, FORMAT_YUV420P, AV_PIX_FMT_YUV420P, w, h, out);
}

/* The jpg encoder's input: yuvj420p (see image.h), or yuvj444p from the rgb frame. */
static int jpeg_input(const AVFrame *f, int w, int h, int yuv444, AVFrame **out)
{
    AVFrame *conv = NULL;
    int ret = 0;
    if (yuv444)
        ret = make_converted(f, FORMAT_RGB, AV_PIX_FMT_RGB24, w, h, &conv);
    else if (!is_plain_420(f, w, h))
        ret = plain_420(f, w, h, &conv);
    if (ret == 0)
        ret = to_jpeg_range(conv ? conv : f, yuv444, out);
    av_frame_free(&conv);
    return ret;
}

static int encode(AVCodecContext *ctx, const AVFrame *in, uint8_t **out, size_t *size)
{
    AVPacket *pkt = av_packet_alloc();
    if (!pkt)
        return -ENOMEM;
    int ret = avcodec_send_frame(ctx, in);
    if (ret >= 0)
        ret = avcodec_receive_packet(ctx, pkt);
    if (ret >= 0) {
        *out = malloc((size_t)pkt->size);
        if (*out) {
            memcpy(*out, pkt->data, (size_t)pkt->size);
            *size = (size_t)pkt->size;
        } else {
            ret = AVERROR(ENOMEM);
        }
    }
    av_packet_free(&pkt);
    return ret < 0 ? averror_errno(ret) : 0;
}

int image_encode(const AVFrame *f, enum format format, int w, int h,
                 const struct image_opts *opts, uint8_t **out, size_t *size)
{
    int png = format == FORMAT_PNG;
    const AVCodec *codec = avcodec_find_encoder(png ? AV_CODEC_ID_PNG : AV_CODEC_ID_MJPEG);
    if (!codec)
        return -ENOTSUP;
    AVFrame *in = NULL;
    AVCodecContext *ctx = avcodec_alloc_context3(codec);
    if (!ctx)
        return -ENOMEM;
    int ret = png ? make_converted(f, FORMAT_RGB, AV_PIX_FMT_RGB24, w, h, &in)
                  : jpeg_input(f, w, h, opts->jpeg_444 || full_chroma(f), &in);
    if (ret < 0)
        goto done;
    ctx->width = w;
    ctx->height = h;
    ctx->pix_fmt = in->format;
    ctx->time_base = (AVRational){1, 25};
    ctx->color_range = AVCOL_RANGE_JPEG;
    /* The pixel aspect as ffmpeg's scale filter passes it on (JFIF density). */
    if (f->sample_aspect_ratio.num > 0)
        ctx->sample_aspect_ratio = av_mul_q(av_mul_q(f->sample_aspect_ratio, av_make_q(h, w)),
                                            av_make_q(f->width, f->height));
    if (!png) {
        ctx->flags |= AV_CODEC_FLAG_QSCALE;
        ctx->global_quality = FF_QP2LAMBDA * opts->jpeg_q;
        in->quality = ctx->global_quality;
    }
    ret = avcodec_open2(ctx, codec, NULL);
    if (ret < 0) {
        log_error("image: cannot open the %s encoder: %s", codec->name, av_err2str(ret));
        ret = averror_errno(ret);
        goto done;
    }
    ret = encode(ctx, in, out, size);
done:
    av_frame_free(&in);
    avcodec_free_context(&ctx);
    return ret;
}
