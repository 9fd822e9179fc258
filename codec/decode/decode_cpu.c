/* CPU decode backend: libavcodec with frame and slice threads. Its frames are host
 * frames in the decoder's own pixel format; convert.c makes the output layouts. */
#include "decode.h"
#include "averror.h"
#include "frame_cache.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

/* What marks a codec context whose opaque is a cpu_priv. */
static const char cpu_magic;

struct cpu_priv {
    const char *magic; /* &cpu_magic */
    AVCodecContext *ctx;
    struct frame_cache *buffers;
    int concealed; /* atomic */
};

/* The widest line alignment the frame cache's buffers have (frame_cache_frame_buffer). */
#define BUFFER_LINE_ALIGN 64

/* Pictures in the frame cache's buffers (decode_opts.buffers), as libavcodec's own
 * allocator lays them out but for the alignment; codecs that do not take custom buffers
 * (no DR1) get libavcodec's. Called from the codec's threads. */
static int cpu_get_buffer(AVCodecContext *ctx, AVFrame *f, int flags)
{
    struct cpu_priv *p = ctx->opaque;
    int w = f->width, h = f->height, align[AV_NUM_DATA_POINTERS] = {0};
    if (!p->buffers || !(ctx->codec->capabilities & AV_CODEC_CAP_DR1) || f->hw_frames_ctx)
        return avcodec_default_get_buffer2(ctx, f, flags);
    avcodec_align_dimensions2(ctx, &w, &h, align);
    for (int i = 0; i < AV_NUM_DATA_POINTERS; i++)
        if (align[i] > BUFFER_LINE_ALIGN)
            return avcodec_default_get_buffer2(ctx, f, flags);
    return frame_cache_frame_buffer(p->buffers, f, w, h);
}

/* libavcodec's error resilience logs this (at debug level) from the thread that decodes
 * the picture, whose codec context is a copy of ours, opaque included. */
static void observe(void *avcl, int level, const char *fmt)
{
    (void)level;
    if (!avcl || strncmp(fmt, "concealing ", 11) || *(const AVClass **)avcl != avcodec_get_class())
        return;
    struct cpu_priv *p = ((const AVCodecContext *)avcl)->opaque;
    if (p && p->magic == &cpu_magic)
        __atomic_store_n(&p->concealed, 1, __ATOMIC_RELEASE);
}

static void observe_init(void)
{
    log_observe_ffmpeg(observe);
}

static int cpu_supports(const AVCodecParameters *par, const struct decode_opts *opts)
{
    (void)opts;
    return avcodec_find_decoder(par->codec_id) ? 0 : -ENOTSUP;
}

/* libdav1d is preferred for AV1 when present: FFmpeg's native AV1 decoder needs a hwaccel. */
static const AVCodec *find_decoder(enum AVCodecID id)
{
    if (id == AV_CODEC_ID_AV1) {
        const AVCodec *c = avcodec_find_decoder_by_name("libdav1d");
        if (c)
            return c;
    }
    return avcodec_find_decoder(id);
}

static int cpu_open(void *priv, const AVCodecParameters *par, const struct decode_opts *opts)
{
    struct cpu_priv *p = priv;
    const AVCodec *codec = find_decoder(par->codec_id);
    if (!codec)
        return -ENOTSUP;
    p->ctx = avcodec_alloc_context3(codec);
    if (!p->ctx)
        return -ENOMEM;
    int ret = avcodec_parameters_to_context(p->ctx, par);
    if (ret < 0)
        goto fail;
    p->ctx->thread_count = opts->threads;
    p->ctx->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, observe_init);
    p->magic = &cpu_magic;
    p->ctx->opaque = p;
    p->buffers = opts->buffers;
    p->ctx->get_buffer2 = cpu_get_buffer;
    ret = avcodec_open2(p->ctx, codec, NULL);
    if (ret < 0)
        goto fail;
    return 0;
fail:
    log_error("cpu decoder: cannot open %s: %s", codec->name, av_err2str(ret));
    avcodec_free_context(&p->ctx);
    return averror_errno(ret);
}

/* A libavcodec context holds the stream's extradata from open on, so another stream needs
 * a new context: reuse saves nothing the pool could keep. */
static int cpu_reconfigure(void *priv, const AVCodecParameters *par)
{
    (void)priv;
    (void)par;
    return -EINVAL;
}

static int cpu_send_packet(void *priv, const AVPacket *pkt)
{
    struct cpu_priv *p = priv;
    int ret = avcodec_send_packet(p->ctx, pkt);
    return ret < 0 ? averror_errno(ret) : 0;
}

static int cpu_receive_frame(void *priv, AVFrame *frame)
{
    struct cpu_priv *p = priv;
    int ret = avcodec_receive_frame(p->ctx, frame);
    if (ret < 0)
        return averror_errno(ret);
    frame->pts = frame->best_effort_timestamp;
    return 0;
}

static void cpu_flush(void *priv)
{
    struct cpu_priv *p = priv;
    avcodec_flush_buffers(p->ctx);
    __atomic_store_n(&p->concealed, 0, __ATOMIC_RELEASE);
}

static int cpu_concealed(void *priv)
{
    struct cpu_priv *p = priv;
    return __atomic_exchange_n(&p->concealed, 0, __ATOMIC_ACQ_REL);
}

static void cpu_skip_nonref(void *priv, int skip)
{
    struct cpu_priv *p = priv;
    p->ctx->skip_frame = skip ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
}

static void cpu_close(void *priv)
{
    struct cpu_priv *p = priv;
    avcodec_free_context(&p->ctx);
}

const struct decode_backend decode_cpu = {
    .name = "cpu",
    .priv_size = sizeof(struct cpu_priv),
    .exact_single = 1,
    .supports = cpu_supports,
    .open = cpu_open,
    .reconfigure = cpu_reconfigure,
    .send_packet = cpu_send_packet,
    .receive_frame = cpu_receive_frame,
    .flush = cpu_flush,
    .concealed = cpu_concealed,
    .skip_nonref = cpu_skip_nonref,
    .close = cpu_close,
};
