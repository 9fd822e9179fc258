/* Encoders for segments. Two backends over libavcodec (NVENC and the CPU encoders) that
 * differ only in the encoder's name and how our settings map onto its options, and a
 * limiter of NVENC sessions. Opening an NVENC encoder is the only reliable probe of a free
 * session (the driver counts sessions system-wide, other processes included), so a failed
 * open lowers our bound to what is open now, or, with nothing open, marks NVENC as absent
 * for the life of the mount: on a machine without a GPU every later request goes straight
 * to the CPU encoder instead of paying the failed probe again. */
#include "encode.h"
#include "averror.h"
#include "convert.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

struct encode_sessions {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a session was given back, or NVENC was found absent */
    int max, in_use, wait_ms;
    int absent; /* NVENC failed with no session open: do not try again */
};

/* ------------------------------------------------------------------ settings */

/* x264 preset names in order of speed, for mapping onto other encoders' scales. */
static const char *const x264_presets[] = {"ultrafast", "superfast", "veryfast", "faster",
                                           "fast", "medium", "slow", "slower", "veryslow",
                                           "placebo"};

static int preset_rank(const char *preset)
{
    for (int i = 0; i < 10; i++)
        if (!strcmp(preset, x264_presets[i]))
            return i;
    return -1;
}

static void set_int(AVDictionary **opts, const char *key, long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%ld", v);
    av_dict_set(opts, key, buf, 0);
}

/* ------------------------------------------------------------------ backends */

static const char *cpu_encoder_name(enum encode_codec codec)
{
    return codec == ENCODE_HEVC ? "libx265" : codec == ENCODE_AV1 ? "libsvtav1" : "libx264";
}

static void cpu_configure(AVCodecContext *ctx, AVDictionary **opts, const struct encode_settings *s)
{
    int64_t rate = (int64_t)s->bitrate_kbps * 1000;
    ctx->thread_count = 0; /* one per core, as the ffmpeg CLI does */
    ctx->gop_size = s->gop;
    if (s->codec == ENCODE_AV1) {
        /* SVT-AV1 has numbered presets (0 slowest .. 13 fastest) and no B-frame count. */
        static const int svt[] = {12, 11, 10, 9, 8, 6, 5, 4, 2, 1};
        int r = preset_rank(s->preset);
        if (r >= 0)
            set_int(opts, "preset", svt[r]);
        else
            av_dict_set(opts, "preset", s->preset, 0);
        if (s->rc == ENCODE_RC_CRF)
            set_int(opts, "crf", s->quality);
        else if (s->rc == ENCODE_RC_CONSTQP)
            set_int(opts, "qp", s->quality);
        else
            ctx->bit_rate = rate;
        if (s->rc == ENCODE_RC_CBR) {
            /* SVT-AV1 does CBR only with its low-delay prediction structure. */
            ctx->rc_max_rate = rate;
            av_dict_set(opts, "svtav1-params", "pred-struct=1", 0);
        }
        return;
    }
    av_dict_set(opts, "preset", s->preset, 0);
    ctx->max_b_frames = s->bframes;
    switch (s->rc) {
    case ENCODE_RC_CRF:
        set_int(opts, "crf", s->quality);
        break;
    case ENCODE_RC_CONSTQP:
        set_int(opts, "qp", s->quality);
        break;
    case ENCODE_RC_CBR:
        ctx->bit_rate = ctx->rc_max_rate = rate;
        ctx->rc_buffer_size = (int)(rate > INT32_MAX ? INT32_MAX : rate); /* a 1 s VBV */
        break;
    case ENCODE_RC_VBR:
        ctx->bit_rate = rate;
        break;
    }
    if (s->codec == ENCODE_HEVC) /* x265 writes its banner to stderr unless told not to */
        av_dict_set(opts, "x265-params", "log-level=error", 0);
}

static const char *nvenc_encoder_name(enum encode_codec codec)
{
    return codec == ENCODE_HEVC ? "hevc_nvenc" : codec == ENCODE_AV1 ? "av1_nvenc" : "h264_nvenc";
}

static void nvenc_configure(AVCodecContext *ctx, AVDictionary **opts,
                            const struct encode_settings *s)
{
    /* NVENC presets p1 (fastest) .. p7 (best), the x264 names mapped by speed. */
    static const char *const p[] = {"p1", "p1", "p2", "p3", "p3", "p4", "p5", "p6", "p7", "p7"};
    int r = preset_rank(s->preset);
    av_dict_set(opts, "preset", r >= 0 ? p[r] : s->preset, 0);
    ctx->gop_size = s->gop;
    ctx->max_b_frames = s->bframes;
    int64_t rate = (int64_t)s->bitrate_kbps * 1000;
    switch (s->rc) {
    case ENCODE_RC_CRF: /* constant quality: VBR with a target quality and no rate cap */
        av_dict_set(opts, "rc", "vbr", 0);
        set_int(opts, "cq", s->quality);
        ctx->bit_rate = 0;
        break;
    case ENCODE_RC_CONSTQP:
        av_dict_set(opts, "rc", "constqp", 0);
        set_int(opts, "qp", s->quality);
        break;
    case ENCODE_RC_CBR:
        av_dict_set(opts, "rc", "cbr", 0);
        ctx->bit_rate = ctx->rc_max_rate = rate;
        break;
    case ENCODE_RC_VBR:
        av_dict_set(opts, "rc", "vbr", 0);
        ctx->bit_rate = rate;
        break;
    }
}

const struct encode_backend encode_cpu = {
    .name = "cpu",
    .needs_session = 0,
    .encoder_name = cpu_encoder_name,
    .configure = cpu_configure,
};

const struct encode_backend encode_nvenc = {
    .name = "nvenc",
    .needs_session = 1,
    .encoder_name = nvenc_encoder_name,
    .configure = nvenc_configure,
};

/* ------------------------------------------------------------------ sessions */

int encode_sessions_new(int max_sessions, int wait_ms, struct encode_sessions **out)
{
    struct encode_sessions *ss = calloc(1, sizeof(*ss));
    if (!ss)
        return -ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ss->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&ss->lock, NULL);
    ss->max = max_sessions;
    ss->wait_ms = wait_ms;
    ss->absent = max_sessions <= 0;
    *out = ss;
    return 0;
}

void encode_sessions_free(struct encode_sessions **ssp)
{
    struct encode_sessions *ss = *ssp;
    if (!ss)
        return;
    pthread_cond_destroy(&ss->cond);
    pthread_mutex_destroy(&ss->lock);
    free(ss);
    *ssp = NULL;
}

/* 0 with a session taken; -ENODEV when NVENC is absent; -EBUSY when none came free in
 * wait_ms. */
static int sessions_acquire(struct encode_sessions *ss)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ss->wait_ms / 1000;
    deadline.tv_nsec += (long)(ss->wait_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    int ret = 0;
    pthread_mutex_lock(&ss->lock);
    while (!ss->absent && ss->in_use >= ss->max && ret == 0)
        ret = pthread_cond_timedwait(&ss->cond, &ss->lock, &deadline);
    if (ss->absent)
        ret = -ENODEV;
    else if (ss->in_use >= ss->max)
        ret = -EBUSY;
    else
        ss->in_use++, ret = 0;
    pthread_mutex_unlock(&ss->lock);
    return ret;
}

static void sessions_release(struct encode_sessions *ss)
{
    pthread_mutex_lock(&ss->lock);
    ss->in_use--;
    pthread_cond_signal(&ss->cond);
    pthread_mutex_unlock(&ss->lock);
}

/* Opening a session failed while we held a slot for it. */
static void sessions_failed(struct encode_sessions *ss, const char *why)
{
    pthread_mutex_lock(&ss->lock);
    ss->in_use--;
    if (ss->in_use == 0) {
        if (!ss->absent)
            log_warn("segments: NVENC unavailable (%s); encoding on the CPU from now on", why);
        ss->absent = 1;
    } else if (ss->in_use < ss->max) {
        log_warn("segments: NVENC session %d failed to open (%s); at most %d from now on",
                 ss->in_use + 1, why, ss->in_use);
        ss->max = ss->in_use;
    }
    pthread_cond_broadcast(&ss->cond); /* waiters re-check absent and the new bound */
    pthread_mutex_unlock(&ss->lock);
}

static void sessions_mark_absent(struct encode_sessions *ss, const char *why)
{
    pthread_mutex_lock(&ss->lock);
    if (!ss->absent)
        log_warn("segments: NVENC unavailable (%s); encoding on the CPU", why);
    ss->absent = 1;
    pthread_cond_broadcast(&ss->cond);
    pthread_mutex_unlock(&ss->lock);
}

/* ------------------------------------------------------------------ encoder */

static int has_fmt(const enum AVPixelFormat *list, enum AVPixelFormat f)
{
    for (; list && *list != AV_PIX_FMT_NONE; list++)
        if (*list == f)
            return 1;
    return 0;
}

/* The encoder's size: subsampled chroma needs even sizes, so an odd last row or column is
 * cropped (a crop keeps every other pixel as it is, a scale would not). */
static void coded_size(enum AVPixelFormat fmt, int w, int h, int *cw, int *ch)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt);
    *cw = d && d->log2_chroma_w ? w & ~1 : w;
    *ch = d && d->log2_chroma_h ? h & ~1 : h;
}

static int open_with(struct encoder *e, const struct encode_backend *b,
                     const struct encode_settings *s, const struct encode_input *in)
{
    const char *name = b->encoder_name(s->codec);
    const AVCodec *codec = avcodec_find_encoder_by_name(name);
    if (!codec)
        return -ENOTSUP;
    enum AVPixelFormat fmt = in->pix_fmt;
    if (codec->pix_fmts && !has_fmt(codec->pix_fmts, fmt))
        fmt = avcodec_find_best_pix_fmt_of_list(codec->pix_fmts, in->pix_fmt, 0, NULL);
    AVCodecContext *ctx = avcodec_alloc_context3(codec);
    AVDictionary *opts = NULL;
    if (!ctx)
        return -ENOMEM;
    coded_size(fmt, in->width, in->height, &ctx->width, &ctx->height);
    ctx->pix_fmt = fmt;
    ctx->time_base = in->time_base;
    ctx->framerate = in->framerate;
    ctx->sample_aspect_ratio = in->sample_aspect_ratio;
    ctx->color_range = in->color_range;
    ctx->colorspace = in->colorspace;
    ctx->color_primaries = in->color_primaries;
    ctx->color_trc = in->color_trc;
    ctx->chroma_sample_location = in->chroma_location;
    if (in->global_header)
        ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    b->configure(ctx, &opts, s);
    int ret = avcodec_open2(ctx, codec, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        log_debug("segments: cannot open %s for %dx%d %s: %s", name, ctx->width, ctx->height,
                  av_get_pix_fmt_name(fmt), av_err2str(ret));
        avcodec_free_context(&ctx);
        ret = averror_errno(ret);
        return ret == -ENOMEM ? ret : ret == -ENOTSUP ? ret : -EIO;
    }
    e->ctx = ctx;
    e->backend = b;
    return 0;
}

int encode_open(struct encode_sessions *ss, const struct encode_settings *s,
                const struct encode_input *in, struct encoder **out)
{
    struct encoder *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    int ret;
    if (ss && s->want != ENCODE_WANT_CPU) {
        ret = sessions_acquire(ss);
        if (ret == 0) {
            ret = open_with(e, &encode_nvenc, s, in);
            if (ret == 0) {
                e->session = ss;
                *out = e;
                return 0;
            }
            if (ret == -ENOMEM) {
                sessions_release(ss);
                goto fail;
            }
            if (ret == -ENOTSUP) { /* FFmpeg built without it: no point trying again */
                sessions_release(ss);
                sessions_mark_absent(ss, "FFmpeg has no such encoder");
            } else {
                sessions_failed(ss, "opening the encoder failed");
            }
        } else if (ret == -EBUSY) {
            log_info("segments: no NVENC session free within %d ms; encoding on the CPU",
                     ss->wait_ms);
        }
        e->fell_back = 1;
    }
    ret = open_with(e, &encode_cpu, s, in);
    if (ret < 0) {
        log_error("segments: cannot open %s for %dx%d %s", encode_cpu.encoder_name(s->codec),
                  in->width, in->height, av_get_pix_fmt_name(in->pix_fmt));
        goto fail;
    }
    if (e->fell_back)
        log_debug("segments: encoding with %s instead of NVENC", e->ctx->codec->name);
    *out = e;
    return 0;
fail:
    encode_free(&e);
    return ret;
}

/* A frame the encoder takes as it is: the encoder's format, and its size or larger (an odd
 * row or column to crop). */
static int fits(const struct encoder *e, const AVFrame *f)
{
    return f->format == e->ctx->pix_fmt && f->width >= e->ctx->width &&
           f->height >= e->ctx->height && f->width - e->ctx->width <= 1 &&
           f->height - e->ctx->height <= 1;
}

static int convert(struct encoder *e, const AVFrame *f, AVFrame **out)
{
    AVCodecContext *c = e->ctx;
    if (!e->sws || e->conv_w != f->width || e->conv_h != f->height || e->conv_fmt != f->format) {
        sws_freeContext(e->sws);
        e->sws = sws_getContext(f->width, f->height, f->format, c->width, c->height,
                                c->pix_fmt, SWS_BICUBIC, NULL, NULL, NULL);
        if (!e->sws)
            return -EIO;
        e->conv_w = f->width;
        e->conv_h = f->height;
        e->conv_fmt = f->format;
    }
    AVFrame *o;
    if (convert_frame_new(c->pix_fmt, c->width, c->height, 0, &o) < 0)
        return -ENOMEM;
    if (av_frame_copy_props(o, f) < 0) {
        av_frame_free(&o);
        return -ENOMEM;
    }
    sws_scale(e->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, o->data,
              o->linesize);
    *out = o;
    return 0;
}

int encode_send(struct encoder *e, const AVFrame *frame)
{
    if (!frame) {
        int ret = avcodec_send_frame(e->ctx, NULL);
        return ret == AVERROR_EOF ? 0 : ret < 0 ? averror_errno(ret) : 0;
    }
    AVFrame *f;
    int ret;
    if (fits(e, frame)) {
        f = av_frame_clone(frame);
        if (!f)
            return -ENOMEM;
        f->width = e->ctx->width;
        f->height = e->ctx->height;
    } else if ((ret = convert(e, frame, &f)) < 0) {
        return ret;
    }
    /* The source's picture types would force keyframes where the source had them. */
    f->pict_type = AV_PICTURE_TYPE_NONE;
    ret = avcodec_send_frame(e->ctx, f);
    av_frame_free(&f);
    return ret < 0 ? averror_errno(ret) : 0;
}

int encode_receive(struct encoder *e, AVPacket *pkt)
{
    int ret = avcodec_receive_packet(e->ctx, pkt);
    return ret < 0 ? averror_errno(ret) : 0;
}

void encode_free(struct encoder **ep)
{
    struct encoder *e = *ep;
    if (!e)
        return;
    avcodec_free_context(&e->ctx);
    if (e->session)
        sessions_release(e->session);
    sws_freeContext(e->sws);
    free(e);
    *ep = NULL;
}
