/* Image encoding: the frame goes through convert_frame first (so png pixels are exactly
 * the .rgb file's, and GPU frames work too), then through the png or mjpeg encoder. */
#include "image.h"
#include "convert.h"
#include "averror.h"
#include "log.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libswscale/swscale.h>
#include <stdlib.h>
#include <string.h>

/* Fills a new rgb24 frame with f converted (the .rgb file's exact pixels). */
static int make_rgb(const AVFrame *f, int w, int h, AVFrame **out)
{
    enum format format = FORMAT_RGB;
    enum AVPixelFormat pix_fmt = AV_PIX_FMT_RGB24;
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
    in->data[0] = buf->data;
    in->linesize[0] = 3 * w;
    struct convert_req req = {.format = format, .width = w, .height = h};
    int ret = convert_frame(f, &req, buf->data, size);
    if (ret < 0) {
        av_frame_free(&in);
        return ret;
    }
    *out = in;
    return 0;
}

/* JPEG in full-range 4:4:4: subsampling again what the source already subsampled (and
 * the viewer's upsampling on top) costs 3 dB or more on coloured content. */
static int rgb_to_jpeg_yuv(const AVFrame *rgb, AVFrame **out)
{
    AVFrame *yuv = av_frame_alloc();
    if (!yuv)
        return -ENOMEM;
    yuv->format = AV_PIX_FMT_YUVJ444P;
    yuv->width = rgb->width;
    yuv->height = rgb->height;
    struct SwsContext *sws = sws_getContext(rgb->width, rgb->height, AV_PIX_FMT_RGB24,
                                            yuv->width, yuv->height, yuv->format,
                                            SWS_BICUBIC, NULL, NULL, NULL);
    int ret = sws && av_frame_get_buffer(yuv, 0) == 0 ? 0 : -ENOMEM;
    if (ret == 0 && sws_scale(sws, (const uint8_t *const *)rgb->data, rgb->linesize, 0,
                              rgb->height, yuv->data, yuv->linesize) <= 0)
        ret = -EIO;
    sws_freeContext(sws);
    if (ret < 0)
        av_frame_free(&yuv);
    *out = yuv;
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

int image_encode(const AVFrame *f, enum format format, int w, int h, int jpeg_q, uint8_t **out,
                 size_t *size)
{
    int png = format == FORMAT_PNG;
    const AVCodec *codec = avcodec_find_encoder(png ? AV_CODEC_ID_PNG : AV_CODEC_ID_MJPEG);
    if (!codec)
        return -ENOTSUP;
    AVFrame *rgb = NULL, *yuv = NULL;
    AVCodecContext *ctx = avcodec_alloc_context3(codec);
    if (!ctx)
        return -ENOMEM;
    int ret = make_rgb(f, w, h, &rgb);
    if (ret == 0 && !png)
        ret = rgb_to_jpeg_yuv(rgb, &yuv);
    if (ret < 0)
        goto done;
    AVFrame *in = png ? rgb : yuv;
    ctx->width = w;
    ctx->height = h;
    ctx->pix_fmt = in->format;
    ctx->time_base = (AVRational){1, 25};
    ctx->color_range = AVCOL_RANGE_JPEG;
    if (!png) {
        ctx->flags |= AV_CODEC_FLAG_QSCALE;
        ctx->global_quality = FF_QP2LAMBDA * jpeg_q;
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
    av_frame_free(&rgb);
    av_frame_free(&yuv);
    avcodec_free_context(&ctx);
    return ret;
}
