/* Segment audio: the source's audio for the output's span, copied or re-encoded to AAC. */
#include "audio.h"
#include "averror.h"
#include "log.h"
#include "media.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/opt.h>

/* The source's audio for the output's span, through its own demuxer. */
struct audio {
    AVFormatContext *in;
    AVStream *ist, *ost;
    int64_t start, end; /* span in ist time base */
    int done;
    AVPacket *pkt;
    int pending; /* pkt holds a packet read ahead of where the video is */
    /* Re-encoding only. */
    AVCodecContext *dec, *enc;
    AVFrame *frame;
    AVAudioFifo *fifo;
    int64_t total, written, next_pts; /* samples */
    int warned, flushed;
};

void audio_free(struct audio **ap)
{
    struct audio *a = *ap;
    if (!a)
        return;
    avformat_close_input(&a->in);
    av_packet_free(&a->pkt);
    avcodec_free_context(&a->dec);
    avcodec_free_context(&a->enc);
    av_frame_free(&a->frame);
    if (a->fifo)
        av_audio_fifo_free(a->fifo);
    free(a);
    *ap = NULL;
}

/* Sets up AAC re-encoding; -ENOTSUP when the source's audio does not fit AAC (rate or
 * channel layout; we carry no resampler). */
static int audio_open_aac(struct audio *a, int global_header)
{
    const AVCodecParameters *par = a->ist->codecpar;
    const AVCodec *dc = avcodec_find_decoder(par->codec_id);
    const AVCodec *ec = avcodec_find_encoder(AV_CODEC_ID_AAC);
    if (!dc || !ec)
        return -ENOTSUP;
    a->dec = avcodec_alloc_context3(dc);
    a->enc = avcodec_alloc_context3(ec);
    a->frame = av_frame_alloc();
    if (!a->dec || !a->enc || !a->frame)
        return -ENOMEM;
    int ret = avcodec_parameters_to_context(a->dec, par);
    if (ret < 0)
        return averror_errno(ret);
    a->dec->pkt_timebase = a->ist->time_base;
    if ((ret = avcodec_open2(a->dec, dc, NULL)) < 0)
        return averror_errno(ret);
    int rate = a->dec->sample_rate, rate_ok = 0;
    for (const int *r = ec->supported_samplerates; r && *r; r++)
        rate_ok |= *r == rate;
    /* The source's layout when AAC has it, else one of AAC's with as many channels. */
    const AVChannelLayout *layout = NULL;
    for (const AVChannelLayout *l = ec->ch_layouts; l && l->nb_channels; l++) {
        if (!av_channel_layout_compare(l, &a->dec->ch_layout)) {
            layout = l;
            break;
        }
        if (!layout && l->nb_channels == a->dec->ch_layout.nb_channels)
            layout = l;
    }
    /* FFmpeg 5.1's AAC encoder lists no layouts (only the old masks): any of up to 8
     * channels then, in the source's layout or the default one for its count. */
    AVChannelLayout any = {0};
    int nch = a->dec->ch_layout.nb_channels;
    if (!ec->ch_layouts && nch >= 1 && nch <= 8) {
        if (a->dec->ch_layout.order == AV_CHANNEL_ORDER_NATIVE)
            any = a->dec->ch_layout;
        else
            av_channel_layout_default(&any, nch);
        layout = &any;
    }
    if (!rate_ok || !layout)
        return -ENOTSUP;
    if ((ret = av_channel_layout_copy(&a->enc->ch_layout, layout)) < 0)
        return averror_errno(ret);
    a->enc->sample_rate = rate;
    a->enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    a->enc->time_base = (AVRational){1, rate};
    a->enc->bit_rate = 64000 * (layout->nb_channels > 1 ? 2 : 1);
    if (global_header)
        a->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((ret = avcodec_open2(a->enc, ec, NULL)) < 0)
        return averror_errno(ret);
    a->fifo = av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, layout->nb_channels, 4096);
    if (!a->fifo)
        return -ENOMEM;
    a->total = av_rescale_q(a->end - a->start, a->ist->time_base, a->enc->time_base);
    return 0;
}

/* Adds the audio stream to o for the video span [t0, t1) (video time base): *out stays
 * NULL when there is no audio to carry. Only allocation failure is an error; audio that
 * cannot be carried is left out, with a log line. */
int audio_open(enum audio_mode mode, const struct media *m, struct output *o, int64_t t0,
               int64_t t1, struct audio **out)
{
    *out = NULL;
    if (mode == AUDIO_NONE)
        return 0;
    struct audio *a = calloc(1, sizeof(*a));
    if (!a || !(a->pkt = av_packet_alloc())) {
        free(a);
        return -ENOMEM;
    }
    int copy = 0, ret = media_open_demuxer(m, &a->in);
    int s = ret < 0 ? ret : av_find_best_stream(a->in, AVMEDIA_TYPE_AUDIO, -1, m->stream, NULL, 0);
    if (s < 0) {
        audio_free(&a);
        return ret == -ENOMEM ? ret : 0; /* no audio: nothing to say */
    }
    for (unsigned i = 0; i < a->in->nb_streams; i++)
        a->in->streams[i]->discard = (int)i == s ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
    a->ist = a->in->streams[s];
    a->start = av_rescale_q(t0, m->time_base, a->ist->time_base);
    a->end = av_rescale_q(t1, m->time_base, a->ist->time_base);
    copy = mode == AUDIO_COPY && output_container_takes(o->c, a->ist->codecpar->codec_id);
    if (!copy && (ret = audio_open_aac(a, !!(o->oc->oformat->flags & AVFMT_GLOBALHEADER))) < 0)
        goto drop;
    /* Only now, with everything set up, does the output get the stream. */
    if (!(a->ost = avformat_new_stream(o->oc, NULL))) {
        ret = -ENOMEM;
        goto drop;
    }
    if (copy) {
        ret = avcodec_parameters_copy(a->ost->codecpar, a->ist->codecpar);
        a->ost->codecpar->codec_tag = 0;
        a->ost->time_base = a->ist->time_base;
    } else {
        ret = avcodec_parameters_from_context(a->ost->codecpar, a->enc);
        a->ost->time_base = a->enc->time_base;
    }
    if (ret < 0) {
        audio_free(&a);
        return -ENOMEM;
    }
    /* A second before the span, so that a decoder has warmed up by its start. */
    int64_t back = av_rescale_q(AV_TIME_BASE, AV_TIME_BASE_Q, a->ist->time_base);
    if (a->start > back)
        av_seek_frame(a->in, s, a->start - back, AVSEEK_FLAG_BACKWARD);
    *out = a;
    return 0;
drop:
    log_warn("%s: segment without audio: cannot %s its %s audio into %s (%s)", m->path,
             copy ? "copy" : "encode", avcodec_get_name(a->ist->codecpar->codec_id),
             o->c->ext, strerror(-ret));
    audio_free(&a);
    return ret == -ENOMEM ? ret : 0;
}

static int audio_write(struct audio *a, struct output *o, AVPacket *pkt, AVRational tb)
{
    pkt->stream_index = a->ost->index;
    pkt->pos = -1;
    av_packet_rescale_ts(pkt, tb, a->ost->time_base);
    int ret = av_interleaved_write_frame(o->oc, pkt);
    return ret < 0 ? averror_errno(ret) : 0;
}

static int audio_drain_encoder(struct audio *a, struct output *o)
{
    int ret;
    while ((ret = avcodec_receive_packet(a->enc, a->pkt)) >= 0)
        if ((ret = audio_write(a, o, a->pkt, a->enc->time_base)) < 0)
            return ret;
    return ret == AVERROR(EAGAIN) || ret == AVERROR_EOF ? 0 : averror_errno(ret);
}

/* Encodes what the FIFO holds in whole encoder frames (all of it when flushing). */
static int audio_encode_fifo(struct audio *a, struct output *o, int flush)
{
    int fs = a->enc->frame_size > 0 ? a->enc->frame_size : 1024;
    while (av_audio_fifo_size(a->fifo) >= fs || (flush && av_audio_fifo_size(a->fifo) > 0)) {
        int n = FFMIN(fs, av_audio_fifo_size(a->fifo));
        AVFrame *f = av_frame_alloc();
        int ret = f ? 0 : -ENOMEM;
        if (ret == 0) {
            f->nb_samples = n;
            f->format = AV_SAMPLE_FMT_FLTP;
            f->sample_rate = a->enc->sample_rate;
            ret = av_channel_layout_copy(&f->ch_layout, &a->enc->ch_layout);
        }
        if (ret == 0 && (ret = av_frame_get_buffer(f, 0)) == 0 &&
            av_audio_fifo_read(a->fifo, (void **)f->data, n) == n) {
            f->pts = a->next_pts;
            a->next_pts += n;
            ret = avcodec_send_frame(a->enc, f);
        }
        av_frame_free(&f);
        if (ret < 0)
            return ret == -ENOMEM ? ret : averror_errno(ret);
        if ((ret = audio_drain_encoder(a, o)) < 0)
            return ret;
    }
    if (flush) {
        avcodec_send_frame(a->enc, NULL);
        return audio_drain_encoder(a, o);
    }
    return 0;
}

/* Sample i of channel c of f as a float, whatever f's sample format. */
static float sample_at(const AVFrame *f, int c, int i)
{
    enum AVSampleFormat fmt = f->format;
    int planar = av_sample_fmt_is_planar(fmt);
    int nch = f->ch_layout.nb_channels;
    const uint8_t *d = f->extended_data[planar ? c : 0];
    int k = planar ? i : i * nch + c;
    switch (av_get_packed_sample_fmt(fmt)) {
    case AV_SAMPLE_FMT_U8:
        return (d[k] - 128) / 128.0f;
    case AV_SAMPLE_FMT_S16:
        return ((const int16_t *)d)[k] / 32768.0f;
    case AV_SAMPLE_FMT_S32:
        return (float)(((const int32_t *)d)[k] / 2147483648.0);
    case AV_SAMPLE_FMT_S64:
        return (float)(((const int64_t *)d)[k] / 9223372036854775808.0);
    case AV_SAMPLE_FMT_FLT:
        return ((const float *)d)[k];
    case AV_SAMPLE_FMT_DBL:
        return (float)((const double *)d)[k];
    default:
        return 0;
    }
}

/* Keeps the samples of a decoded frame that fall in the span, converted to FLTP. */
static int audio_take_frame(struct audio *a, const AVFrame *f)
{
    int nch = a->enc->ch_layout.nb_channels;
    if (f->ch_layout.nb_channels != nch || f->sample_rate != a->enc->sample_rate) {
        if (!a->warned++)
            log_warn("segments: audio format changes mid-stream; dropping what differs");
        return 0;
    }
    int64_t pts = f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp
                                                              : f->pts;
    int64_t off = pts == AV_NOPTS_VALUE ? a->written
                                        : av_rescale_q(pts - a->start, a->ist->time_base,
                                                       a->enc->time_base);
    int lo = off < 0 ? (int)FFMIN(-off, f->nb_samples) : 0;
    int take = (int)FFMIN(f->nb_samples - lo, a->total - a->written);
    if (take <= 0) {
        a->done |= a->written >= a->total;
        return 0;
    }
    float *planes[AV_NUM_DATA_POINTERS] = {0};
    if (nch > AV_NUM_DATA_POINTERS)
        return 0;
    int ret = 0;
    for (int c = 0; c < nch && ret == 0; c++) {
        planes[c] = malloc(sizeof(float) * (size_t)take);
        if (!planes[c])
            ret = -ENOMEM;
        for (int i = 0; planes[c] && i < take; i++)
            planes[c][i] = sample_at(f, c, lo + i);
    }
    if (ret == 0 && av_audio_fifo_write(a->fifo, (void **)planes, take) < take)
        ret = -ENOMEM;
    for (int c = 0; c < nch; c++)
        free(planes[c]);
    a->written += take;
    a->done |= a->written >= a->total;
    return ret;
}

static int audio_decode(struct audio *a, struct output *o, const AVPacket *pkt)
{
    int ret = avcodec_send_packet(a->dec, pkt);
    if (ret < 0 && ret != AVERROR_EOF)
        return 0; /* a damaged packet: go on with the next */
    while ((ret = avcodec_receive_frame(a->dec, a->frame)) >= 0) {
        ret = audio_take_frame(a, a->frame);
        av_frame_unref(a->frame);
        if (ret < 0 || (ret = audio_encode_fifo(a, o, 0)) < 0)
            return ret;
    }
    return 0; /* EAGAIN, EOF, or a frame that does not decode: go on */
}

/* Writes the audio up to `until` (video time base; INT64_MAX: to the end of the span). */
int audio_pump(struct audio *a, struct output *o, const struct media *m, int64_t until)
{
    if (!a)
        return 0;
    int64_t lim = until == INT64_MAX ? INT64_MAX
                                     : av_rescale_q(until, m->time_base, a->ist->time_base);
    int ret = 0;
    while (!a->done) {
        if (!a->pending) {
            ret = av_read_frame(a->in, a->pkt);
            if (ret < 0) {
                a->done = 1;
                break;
            }
            if (a->pkt->stream_index != a->ist->index) {
                av_packet_unref(a->pkt);
                continue;
            }
            a->pending = 1;
        }
        int64_t ts = a->pkt->pts != AV_NOPTS_VALUE ? a->pkt->pts : a->pkt->dts;
        if (ts != AV_NOPTS_VALUE && ts >= a->end) {
            a->done = 1;
            break;
        }
        if (ts != AV_NOPTS_VALUE && lim != INT64_MAX && ts > lim)
            return 0; /* keep it for when the video has caught up */
        a->pending = 0;
        if (a->dec) {
            ret = audio_decode(a, o, a->pkt);
        } else if (ts != AV_NOPTS_VALUE && ts >= a->start) {
            if (a->pkt->pts != AV_NOPTS_VALUE)
                a->pkt->pts -= a->start;
            if (a->pkt->dts != AV_NOPTS_VALUE)
                a->pkt->dts -= a->start;
            ret = audio_write(a, o, a->pkt, a->ist->time_base);
        }
        av_packet_unref(a->pkt);
        if (ret < 0)
            return ret;
    }
    av_packet_unref(a->pkt);
    a->pending = 0;
    if (a->dec && until == INT64_MAX && !a->flushed) {
        a->flushed = 1;
        if ((ret = audio_decode(a, o, NULL)) < 0)
            return ret;
        return audio_encode_fifo(a, o, 1);
    }
    return 0;
}
