/* Image encoding: the frame goes through convert_frame first (so png pixels are exactly
 * the .rgb file's, and GPU frames work too), then through the png or mjpeg encoder. */
#include "image.h"
#include "convert.h"
#include "decode.h"
#include "log.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <stdlib.h>
#include <string.h>

/* Fills a new frame of pix_fmt with f converted to format (same layout, no padding). */
static int make_input(const AVFrame *f, enum format format, enum AVPixelFormat pix_fmt, int w,
                      int h, AVFrame **out)
{
    AVFrame *in = av_frame_alloc();
    if (!in)
        return -ENOMEM;
    in->format = pix_fmt;
    in->width = w;
    in->height = h;
    in->color_range = f->color_range;
    in->colorspace = f->colorspace;
    size_t size = format_frame_size(format, w, h);
    /* Padding: swscale may write a little past the last row. */
    AVBufferRef *buf = av_buffer_allocz(size + 64);
    if (!buf) {
        av_frame_free(&in);
        return -ENOMEM;
    }
    in->buf[0] = buf;
    int cw = (w + 1) / 2;
    in->data[0] = buf->data;
    if (format == FORMAT_RGB) {
        in->linesize[0] = 3 * w;
    } else {
        in->linesize[0] = w;
        in->data[1] = buf->data + (size_t)w * (size_t)h;
        in->data[2] = in->data[1] + (size_t)cw * (size_t)((h + 1) / 2);
        in->linesize[1] = in->linesize[2] = cw;
    }
    struct convert_req req = {.format = format, .width = w, .height = h};
    int ret = convert_frame(f, &req, buf->data, size);
    if (ret < 0) {
        av_frame_free(&in);
        return ret;
    }
    *out = in;
    return 0;
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
    return ret < 0 ? decode_averror(ret) : 0;
}

int image_encode(const AVFrame *f, enum format format, int w, int h, int jpeg_q, uint8_t **out,
                 size_t *size)
{
    int png = format == FORMAT_PNG;
    const AVCodec *codec = avcodec_find_encoder(png ? AV_CODEC_ID_PNG : AV_CODEC_ID_MJPEG);
    if (!codec)
        return -ENOTSUP;
    int full = f->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat pix_fmt = png    ? AV_PIX_FMT_RGB24
                                 : full ? AV_PIX_FMT_YUVJ420P
                                        : AV_PIX_FMT_YUV420P;
    AVFrame *in = NULL;
    AVCodecContext *ctx = avcodec_alloc_context3(codec);
    if (!ctx)
        return -ENOMEM;
    int ret = make_input(f, png ? FORMAT_RGB : FORMAT_YUV420P, pix_fmt, w, h, &in);
    if (ret < 0)
        goto done;
    ctx->width = w;
    ctx->height = h;
    ctx->pix_fmt = pix_fmt;
    ctx->time_base = (AVRational){1, 25};
    ctx->color_range = full ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
    if (!png) {
        /* Limited-range 4:2:0 JPEG is what FFmpeg writes for such sources too. */
        ctx->strict_std_compliance = FF_COMPLIANCE_UNOFFICIAL;
        ctx->flags |= AV_CODEC_FLAG_QSCALE;
        ctx->global_quality = FF_QP2LAMBDA * jpeg_q;
        in->quality = ctx->global_quality;
    }
    ret = avcodec_open2(ctx, codec, NULL);
    if (ret < 0) {
        log_error("image: cannot open the %s encoder: %s", codec->name, av_err2str(ret));
        ret = decode_averror(ret);
        goto done;
    }
    ret = encode(ctx, in, out, size);
done:
    av_frame_free(&in);
    avcodec_free_context(&ctx);
    return ret;
}
