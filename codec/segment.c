/* Segments: clips cut by time, materialized into the disk store when first opened.
 *
 * Transcode: the frames with start <= t < end come from the reader (which starts decoding
 * at the right keyframe and continues sequentially without seeking), get timestamps
 * rebased to the first of them, keep their source durations, and go to an encoder from
 * encode.c. Copy: the video packets from the keyframe at or before start through those of
 * the last frame before end, read with our own demuxer and never decoded. Audio for the
 * same time range comes from a second demuxer, copied or re-encoded to AAC.
 *
 * The store key holds the source's stat, the stream, the frame range (not the seconds of
 * the name, so "10-12.mp4" and "10.0-12.00.mp4" share a file) and a hash of the settings.
 * Concurrent opens of one key share one producer through a table of jobs in flight. */
#include "segment.h"
#include "config.h"
#include "convert.h"
#include "decode.h"
#include "encode.h"
#include "index.h"
#include "log.h"
#include "media.h"
#include "reader.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libavcodec/bsf.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/opt.h>

#define KEY_MAX 256
/* Bumped when the bytes a request produces change, so stale store files are not served. */
#define KEY_KIND "seg2"
/* Audio is demuxed this far ahead of the video written so far, to interleave. */
#define AUDIO_LEAD_S 0.5

enum audio_mode { AUDIO_COPY, AUDIO_AAC, AUDIO_NONE };

struct container {
    const char *ext, *format;
    int faststart; /* mp4/mov: index (moov) at the front, for players that stream */
};

static const struct container containers[] = {
    {"mp4", "mp4", 1}, {"m4v", "mp4", 1}, {"mov", "mov", 1},
    {"mkv", "matroska", 0}, {"ts", "mpegts", 0},
};

/* One producer of a key; openers of the same key wait for it and share its file, which
 * may not be in the store (too large for it). */
struct job {
    struct job *next;
    char key[KEY_MAX];
    int users; /* the producer and its waiters; the last one frees */
    int done, ret;
    int fd; /* the result, of which each user takes a dup */
    uint64_t size;
};

struct segmenter {
    struct reader *reader;
    struct store *store;
    const struct config *cfg;
    struct encode_settings enc;
    enum audio_mode audio;
    uint64_t settings_hash;
    struct encode_sessions *sessions;
    pthread_mutex_t lock;
    pthread_cond_t done; /* a job finished */
    struct job *jobs;
    atomic_uint_fast64_t produced, store_hits, copies, nvenc_encodes, cpu_encodes,
        nvenc_fallbacks;
};

/* Frames and packets a request covers. */
struct range {
    int first, last;    /* display frames [first, last) named by the request */
    int start_packet;   /* copy: the decode-order packet at the keyframe */
    int end_packet;     /* copy: one past the last packet needed */
    int base;           /* display frame whose pts becomes 0 */
    int64_t t0, t1;     /* [t0, t1): the output's span, source stream time base */
};

/* ------------------------------------------------------------------ names */

static const struct container *find_container(const char *ext)
{
    for (size_t i = 0; ext && i < sizeof(containers) / sizeof(containers[0]); i++)
        if (!strcmp(ext, containers[i].ext))
            return &containers[i];
    return NULL;
}

/* 1 when the container carries this codec without experimental flags. MPEG-TS has no
 * codec list to query; FFmpeg 5.1 writes Opus and FLAC into MP4 only as experimental. */
static int container_takes(const struct container *c, enum AVCodecID id)
{
    if (!strcmp(c->format, "mpegts")) {
        static const enum AVCodecID ts[] = {
            AV_CODEC_ID_H264, AV_CODEC_ID_HEVC, AV_CODEC_ID_MPEG1VIDEO, AV_CODEC_ID_MPEG2VIDEO,
            AV_CODEC_ID_MPEG4, AV_CODEC_ID_AAC, AV_CODEC_ID_MP2, AV_CODEC_ID_MP3,
            AV_CODEC_ID_AC3, AV_CODEC_ID_EAC3, AV_CODEC_ID_OPUS,
        };
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
            if (ts[i] == id)
                return 1;
        return 0;
    }
    if (c->faststart && (id == AV_CODEC_ID_OPUS || id == AV_CODEC_ID_FLAC ||
                         id == AV_CODEC_ID_VORBIS))
        return 0;
    const AVOutputFormat *of = av_guess_format(c->format, NULL, NULL);
    return of && avformat_query_codec(of, id, FF_COMPLIANCE_NORMAL) == 1;
}

static enum AVCodecID encode_codec_id(enum encode_codec c)
{
    return c == ENCODE_HEVC ? AV_CODEC_ID_HEVC : c == ENCODE_AV1 ? AV_CODEC_ID_AV1
                                                                 : AV_CODEC_ID_H264;
}

static int find_range(const struct media *m, const struct segment_req *req, struct range *r)
{
    const struct index *ix = m->index;
    int n = ix->nb_frames;
    /* NaN fails every comparison, so these also reject it. */
    if (!(req->start >= 0) || !(req->end > req->start) ||
        !(req->start < index_frame_time(ix, n - 1) - 1e-9))
        return -ENOENT;
    r->first = index_frame_at_time(ix, req->start);
    r->last = index_frame_at_time(ix, req->end);
    if (r->last <= r->first)
        return -ENOENT; /* no frame between start and end, e.g. 1.01-1.02 at 25 fps */
    const struct index_frame *last = &ix->frames[r->last - 1];
    r->t1 = r->last < n ? ix->frames[r->last].pts : last->pts + last->duration;
    r->base = r->first;
    r->start_packet = r->end_packet = -1;
    if (req->copy) {
        r->start_packet = index_start_packet(ix, r->first);
        int key = ix->packets[r->start_packet].frame;
        /* The packets of every frame up to the last one named; packets between them that
         * display later are references those frames need (B-frames), so they stay. */
        for (int f = r->first; f < r->last; f++)
            if (ix->frames[f].packet + 1 > r->end_packet)
                r->end_packet = ix->frames[f].packet + 1;
        /* The first frame shown: the keyframe, or with an edit list's discarded lead-in
         * (key < 0) the first frame the source shows. */
        r->base = key >= 0 ? key : r->first;
        for (int p = r->start_packet; p < r->end_packet; p++) {
            int f = ix->packets[p].frame;
            if (f >= 0 && f < r->base && key < 0)
                r->base = f;
        }
    }
    r->t0 = ix->frames[r->base].pts;
    return 0;
}

int segment_valid(const struct segmenter *sg, const struct media *m, const struct segment_req *req)
{
    const struct container *c = find_container(req->container);
    if (!c || !(req->start >= 0) || !(req->end > req->start))
        return 0;
    /* What the segment holds must fit the container: AV1 has no mapping in MPEG-TS in
     * FFmpeg 5.1, whether copied from the source or encoded with segment_codec=av1. */
    if (!req->copy && !container_takes(c, encode_codec_id(sg->enc.codec)))
        return 0;
    if (m->error)
        return 1; /* a fine name of a broken source: opening it gives EIO */
    if (req->copy && !container_takes(c, m->par->codec_id))
        return 0;
    struct range r;
    return find_range(m, req, &r) == 0;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static void make_key(const struct segmenter *sg, const struct media *m,
                     const struct segment_req *req, const struct range *r, char *key)
{
    char extra[128];
    if (req->copy)
        snprintf(extra, sizeof(extra), "s%d-f%d-%d-copy-a%d.%s", m->stream, r->first, r->last,
                 (int)sg->audio, req->container);
    else
        snprintf(extra, sizeof(extra), "s%d-f%d-%d-%016" PRIx64 ".%s", m->stream, r->first,
                 r->last, sg->settings_hash, req->container);
    store_key(key, KEY_MAX, KEY_KIND, &m->st, extra);
}

/* ------------------------------------------------------------------ lifetime */

int segmenter_new(struct reader *reader, struct store *store, const struct config *cfg,
                  struct segmenter **out)
{
    struct segmenter *sg = calloc(1, sizeof(*sg));
    if (!sg)
        return -ENOMEM;
    sg->reader = reader;
    sg->store = store;
    sg->cfg = cfg;
    int ret = encode_settings_from_config(cfg, &sg->enc);
    if (ret < 0)
        goto fail;
    static const enum audio_mode audio_modes[] = {[CONFIG_AUDIO_COPY] = AUDIO_COPY,
                                                  [CONFIG_AUDIO_AAC] = AUDIO_AAC,
                                                  [CONFIG_AUDIO_NONE] = AUDIO_NONE};
    sg->audio = audio_modes[cfg->segment_audio];
    char settings[192];
    snprintf(settings, sizeof(settings), "%d/%s/%d/%d/%d/%d/%d/%d", (int)sg->enc.codec,
             sg->enc.preset, (int)sg->enc.rc, sg->enc.quality, sg->enc.bitrate_kbps,
             sg->enc.gop, sg->enc.bframes, (int)sg->audio);
    sg->settings_hash = fnv1a(settings);
    ret = encode_sessions_new((int)cfg->max_nvenc_sessions, (int)cfg->nvenc_wait_ms,
                              &sg->sessions);
    if (ret < 0)
        goto fail;
    /* SVT-AV1 prints its banner and settings to stderr at its default level. */
    setenv("SVT_LOG", "1", 0);
    pthread_mutex_init(&sg->lock, NULL);
    pthread_cond_init(&sg->done, NULL);
    *out = sg;
    return 0;
fail:
    free(sg);
    return ret;
}

void segmenter_free(struct segmenter **sgp)
{
    struct segmenter *sg = *sgp;
    if (!sg)
        return;
    encode_sessions_free(&sg->sessions);
    pthread_cond_destroy(&sg->done);
    pthread_mutex_destroy(&sg->lock);
    free(sg);
    *sgp = NULL;
}

void segment_stats(struct segmenter *sg, struct segment_stats *st)
{
    *st = (struct segment_stats){
        .produced = atomic_load(&sg->produced),
        .store_hits = atomic_load(&sg->store_hits),
        .copies = atomic_load(&sg->copies),
        .nvenc_encodes = atomic_load(&sg->nvenc_encodes),
        .cpu_encodes = atomic_load(&sg->cpu_encodes),
        .nvenc_fallbacks = atomic_load(&sg->nvenc_fallbacks),
    };
}

/* ------------------------------------------------------------------ output */

struct output {
    AVFormatContext *oc;
    AVStream *video;
    const struct container *c;
    int header_written;
};

static int output_open(struct output *o, const struct container *c, const char *path)
{
    o->c = c;
    int ret = avformat_alloc_output_context2(&o->oc, NULL, c->format, path);
    if (ret < 0)
        return decode_averror(ret);
    /* The same name gives the same bytes: no random UIDs, times or versions. */
    o->oc->flags |= AVFMT_FLAG_BITEXACT;
    /* The mp4 muxer reopens the file by name for faststart, so write by name too. */
    ret = avio_open(&o->oc->pb, path, AVIO_FLAG_WRITE);
    if (ret < 0)
        return decode_averror(ret);
    o->video = avformat_new_stream(o->oc, NULL);
    return o->video ? 0 : -ENOMEM;
}

static int output_header(struct output *o)
{
    AVDictionary *opts = NULL;
    if (o->c->faststart)
        av_dict_set(&opts, "movflags", "+faststart", 0);
    int ret = avformat_write_header(o->oc, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        log_error("segments: cannot write a %s header: %s", o->c->format, av_err2str(ret));
        return decode_averror(ret);
    }
    o->header_written = 1;
    return 0;
}

static int output_close(struct output *o, int ok)
{
    int ret = 0;
    if (ok && o->header_written && (ret = av_write_trailer(o->oc)) < 0) {
        log_error("segments: cannot finish the %s file: %s", o->c->format, av_err2str(ret));
        ret = decode_averror(ret);
    }
    if (o->oc) {
        avio_closep(&o->oc->pb);
        avformat_free_context(o->oc);
    }
    *o = (struct output){0};
    return ret;
}

/* Rotation (display matrix) and the like belong to the stream, not the frames. */
static int copy_side_data(AVStream *dst, const AVStream *src)
{
    for (int i = 0; i < src->nb_side_data; i++) {
        const AVPacketSideData *sd = &src->side_data[i];
        uint8_t *p = av_stream_new_side_data(dst, sd->type, sd->size);
        if (!p)
            return -ENOMEM;
        memcpy(p, sd->data, sd->size);
    }
    return 0;
}

/* ------------------------------------------------------------------ audio */

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

static void audio_free(struct audio **ap)
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
        return decode_averror(ret);
    a->dec->pkt_timebase = a->ist->time_base;
    if ((ret = avcodec_open2(a->dec, dc, NULL)) < 0)
        return decode_averror(ret);
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
        return decode_averror(ret);
    a->enc->sample_rate = rate;
    a->enc->sample_fmt = AV_SAMPLE_FMT_FLTP;
    a->enc->time_base = (AVRational){1, rate};
    a->enc->bit_rate = 64000 * (layout->nb_channels > 1 ? 2 : 1);
    if (global_header)
        a->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((ret = avcodec_open2(a->enc, ec, NULL)) < 0)
        return decode_averror(ret);
    a->fifo = av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, layout->nb_channels, 4096);
    if (!a->fifo)
        return -ENOMEM;
    a->total = av_rescale_q(a->end - a->start, a->ist->time_base, a->enc->time_base);
    return 0;
}

/* Adds the audio stream to o for the video span [t0, t1) (video time base): *out stays
 * NULL when there is no audio to carry. Only allocation failure is an error; audio that
 * cannot be carried is left out, with a log line. */
static int audio_open(const struct segmenter *sg, const struct media *m, struct output *o,
                      int64_t t0, int64_t t1, struct audio **out)
{
    *out = NULL;
    if (sg->audio == AUDIO_NONE)
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
    copy = sg->audio == AUDIO_COPY && container_takes(o->c, a->ist->codecpar->codec_id);
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
    return ret < 0 ? decode_averror(ret) : 0;
}

static int audio_drain_encoder(struct audio *a, struct output *o)
{
    int ret;
    while ((ret = avcodec_receive_packet(a->enc, a->pkt)) >= 0)
        if ((ret = audio_write(a, o, a->pkt, a->enc->time_base)) < 0)
            return ret;
    return ret == AVERROR(EAGAIN) || ret == AVERROR_EOF ? 0 : decode_averror(ret);
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
            return ret == -ENOMEM ? ret : decode_averror(ret);
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
static int audio_pump(struct audio *a, struct output *o, const struct media *m, int64_t until)
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

/* ------------------------------------------------------------------ copy */

/* Index position in [from, end) of the packet the demuxer gave, or -1: by byte position,
 * else dts, else pts, looking a bounded way ahead. */
static int identify(const struct index *ix, const AVPacket *pkt, int from, int end)
{
    for (int q = from; q < end && q < from + 64; q++) {
        const struct index_packet *ip = &ix->packets[q];
        if (pkt->pos >= 0 && ip->pos >= 0 ? pkt->pos == ip->pos
            : pkt->dts != AV_NOPTS_VALUE && ip->dts != AV_NOPTS_VALUE ? pkt->dts == ip->dts
                                                                       : pkt->pts == ip->pts)
            return q;
    }
    return -1;
}

static int read_video(AVFormatContext *in, int stream, AVPacket *pkt)
{
    for (;;) {
        av_packet_unref(pkt);
        int ret = av_read_frame(in, pkt);
        if (ret < 0)
            return ret == AVERROR_EOF ? -ENODATA : decode_averror(ret);
        if (pkt->stream_index == stream)
            return 0;
    }
}

/* Leaves packet `target` of the index in pkt: a timestamp seek when it lands at or before
 * it, else reading from the start (slow, always right). */
static int seek_packet(const struct media *m, AVFormatContext **in, int target, AVPacket *pkt)
{
    const struct index_packet *ip = &m->index->packets[target];
    /* To the keyframe before, so that the demuxer's parser has settled by the target (an
     * MPEG-PS demuxer can lose the packet right after a seek). */
    int from = target > 0 ? target - 1 : 0;
    while (from > 0 && !m->index->packets[from].key)
        from--;
    const struct index_packet *fp = &m->index->packets[from];
    int64_t ts = fp->dts != AV_NOPTS_VALUE && fp->dts < fp->pts ? fp->dts : fp->pts;
    int linear = from == 0 || av_seek_frame(*in, m->stream, ts, AVSEEK_FLAG_BACKWARD) < 0;
    for (int n = 0;; n++) {
        int ret = read_video(*in, m->stream, pkt);
        if (ret < 0)
            return -EIO;
        int c = linear ? (n > target) - (n < target) : index_packet_cmp(pkt, ip);
        if (c == 0)
            return 0;
        if (c > 0) {
            if (linear)
                return -EIO;
            avformat_close_input(in);
            if ((ret = media_open_demuxer(m, in)) < 0)
                return ret;
            linear = 1;
            n = -1;
        }
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Decode timestamps for packets that have only presentation ones (Matroska stores no dts,
 * and its HEVC packets may come without): dts[i] = the (i - d)-th smallest pts, with the
 * smallest reorder depth d that keeps every dts at or before its pts, as a decoder with d
 * frames of delay would output them. */
static int synth_dts(const int64_t *pts, int n, int64_t *dts)
{
    int64_t *s = malloc(sizeof(*s) * (size_t)n);
    if (!s)
        return -ENOMEM;
    memcpy(s, pts, sizeof(*s) * (size_t)n);
    qsort(s, (size_t)n, sizeof(*s), cmp_i64);
    int d = 0;
    for (int ok = 0; !ok && d < n; d += !ok) {
        ok = 1;
        for (int i = d; i < n && ok; i++)
            ok = s[i - d] <= pts[i];
    }
    int64_t step = n > 1 && s[1] > s[0] ? s[1] - s[0] : 1;
    for (int i = 0; i < n; i++)
        dts[i] = i >= d ? s[i - d] : s[0] - (d - i) * step;
    free(s);
    return 0;
}

/* The packets a copy writes, in decode order, with their timestamps rebased to t0.
 * Pictures shown before the keyframe that follow it in decode order are an open GOP's
 * leading pictures: their references are in the GOP before, so they are left out. */
struct copy_plan {
    int n;
    int32_t *packet;
    int64_t *dts; /* synthesized, or NULL where the source has them */
};

static int copy_plan(const struct media *m, const struct range *r, struct copy_plan *cp)
{
    const struct index *ix = m->index;
    int key = ix->packets[r->start_packet].frame, missing = 0;
    int max = r->end_packet - r->start_packet;
    cp->packet = malloc(sizeof(*cp->packet) * (size_t)max);
    int64_t *pts = malloc(sizeof(*pts) * (size_t)max);
    int ret = -ENOMEM;
    if (!cp->packet || !pts)
        goto fail;
    for (int p = r->start_packet; p < r->end_packet; p++) {
        const struct index_packet *ip = &ix->packets[p];
        if (key >= 0 && ip->frame >= 0 && ip->frame < key)
            continue;
        missing |= ip->dts == AV_NOPTS_VALUE;
        pts[cp->n] = ip->pts - r->t0;
        cp->packet[cp->n++] = p;
    }
    if (missing) {
        if (!(cp->dts = malloc(sizeof(*cp->dts) * (size_t)cp->n)) ||
            synth_dts(pts, cp->n, cp->dts) < 0)
            goto fail;
    }
    free(pts);
    return 0;
fail:
    free(pts);
    return ret;
}

/* MPEG-TS wants Annex B with the parameter sets in band. The muxer's own conversion adds
 * them only before IDR pictures, and a source in Annex B may carry them only at its start:
 * a copy that starts at an open GOP's I picture (not IDR) would have none. So we convert
 * where needed and put the parameter sets before the first packet ourselves. */
struct annexb {
    AVBSFContext *bsf; /* from avcC/hvcC; NULL when the source is Annex B already */
    const uint8_t *prefix;
    int prefix_size; /* 0 once written, or when there is nothing to add */
};

static int annexb_open(const struct media *m, const struct container *c, struct annexb *ab)
{
    const AVCodecParameters *par = m->par;
    const char *name = par->codec_id == AV_CODEC_ID_H264   ? "h264_mp4toannexb"
                       : par->codec_id == AV_CODEC_ID_HEVC ? "hevc_mp4toannexb"
                                                           : NULL;
    if (strcmp(c->format, "mpegts") || !name || par->extradata_size < 4)
        return 0;
    if (par->extradata[0] != 1) { /* Annex B: the extradata are the parameter sets */
        ab->prefix = par->extradata;
        ab->prefix_size = par->extradata_size;
        return 0;
    }
    const AVBitStreamFilter *f = av_bsf_get_by_name(name);
    int ret = f ? av_bsf_alloc(f, &ab->bsf) : AVERROR_BSF_NOT_FOUND;
    if (ret >= 0 && (ret = avcodec_parameters_copy(ab->bsf->par_in, par)) >= 0) {
        ab->bsf->time_base_in = m->time_base;
        ret = av_bsf_init(ab->bsf);
    }
    if (ret >= 0) {
        ab->prefix = ab->bsf->par_out->extradata;
        ab->prefix_size = ab->bsf->par_out->extradata_size;
    }
    return ret < 0 ? decode_averror(ret) : 0;
}

static int annexb_put(struct annexb *ab, AVFormatContext *oc, AVPacket *pkt)
{
    if (ab->prefix_size > 0) {
        AVPacket *q = av_packet_alloc();
        int ret = q ? av_new_packet(q, ab->prefix_size + pkt->size) : AVERROR(ENOMEM);
        if (ret >= 0)
            ret = av_packet_copy_props(q, pkt);
        if (ret < 0) {
            av_packet_free(&q);
            av_packet_unref(pkt);
            return ret;
        }
        memcpy(q->data, ab->prefix, ab->prefix_size);
        memcpy(q->data + ab->prefix_size, pkt->data, pkt->size);
        av_packet_unref(pkt);
        av_packet_move_ref(pkt, q);
        av_packet_free(&q);
        ab->prefix_size = 0;
    }
    return av_interleaved_write_frame(oc, pkt);
}

static int annexb_write(struct annexb *ab, AVFormatContext *oc, AVPacket *pkt)
{
    int ret;
    if (!ab->bsf)
        return annexb_put(ab, oc, pkt);
    if ((ret = av_bsf_send_packet(ab->bsf, pkt)) < 0)
        return ret;
    while ((ret = av_bsf_receive_packet(ab->bsf, pkt)) >= 0)
        if ((ret = annexb_put(ab, oc, pkt)) < 0)
            return ret;
    return ret == AVERROR(EAGAIN) ? 0 : ret;
}

static int write_copy(struct segmenter *sg, struct media *m, const struct range *r,
                      const struct container *c, const char *path)
{
    struct output o = {0};
    struct audio *a = NULL;
    struct copy_plan cp = {0};
    struct annexb ab = {0};
    AVFormatContext *in = NULL;
    AVPacket *pkt = av_packet_alloc();
    int ret = pkt ? media_open_demuxer(m, &in) : -ENOMEM;
    if (ret < 0)
        goto fail;
    if ((ret = seek_packet(m, &in, r->start_packet, pkt)) < 0) {
        log_error("%s: cannot find packet %d for a copy segment", m->path, r->start_packet);
        goto fail;
    }
    if (pkt->pts == AV_NOPTS_VALUE) {
        /* AVI: packets in decode order without presentation times, which a muxer cannot
         * make up (the ffmpeg CLI cannot copy these either); transcoding works. */
        log_error("%s: its packets carry no presentation times: no copy segments", m->path);
        ret = -EIO;
        goto fail;
    }
    if ((ret = output_open(&o, c, path)) < 0)
        goto fail;
    if ((ret = avcodec_parameters_copy(o.video->codecpar, m->par)) < 0) {
        ret = decode_averror(ret);
        goto fail;
    }
    o.video->codecpar->codec_tag = 0;
    o.video->time_base = m->time_base;
    o.video->avg_frame_rate = in->streams[m->stream]->avg_frame_rate;
    if ((ret = copy_side_data(o.video, in->streams[m->stream])) < 0 ||
        (ret = audio_open(sg, m, &o, r->t0, r->t1, &a)) < 0 || (ret = output_header(&o)) < 0)
        goto fail;
    if ((ret = copy_plan(m, r, &cp)) < 0 || (ret = annexb_open(m, c, &ab)) < 0)
        goto fail;
    /* Packets are identified against the index as they come, not counted: a demuxer may
     * lose one just after a seek (MPEG-PS), which then costs that packet only. */
    int cur = r->start_packet, lost = 0; /* pkt holds index packet cur */
    for (int i = 0; i < cp.n;) {
        while (i < cp.n && cp.packet[i] < cur)
            i++, lost++;
        if (i < cp.n && cp.packet[i] == cur) {
            /* A packet without pts (AVI) keeps none: the muxer derives it from the dts and
             * the codec's delay, as for a stream copy by the ffmpeg CLI. */
            if (pkt->pts != AV_NOPTS_VALUE)
                pkt->pts -= r->t0;
            /* The index's dts, from a scan from the start: after a seek some demuxers
             * (Matroska) give none until their parser has caught up. */
            const struct index_packet *ip = &m->index->packets[cur];
            pkt->dts = cp.dts ? cp.dts[i] : ip->dts - r->t0;
            pkt->stream_index = o.video->index;
            pkt->pos = -1;
            int64_t at = r->t0 + (pkt->dts != AV_NOPTS_VALUE   ? pkt->dts
                                  : pkt->pts != AV_NOPTS_VALUE ? pkt->pts
                                                               : 0);
            av_packet_rescale_ts(pkt, m->time_base, o.video->time_base);
            if ((ret = annexb_write(&ab, o.oc, pkt)) < 0) {
                log_error("%s: writing a copy segment: %s", m->path, av_err2str(ret));
                ret = decode_averror(ret);
                goto fail;
            }
            int64_t lead = (int64_t)(AUDIO_LEAD_S / av_q2d(m->time_base));
            if ((ret = audio_pump(a, &o, m, at + lead)) < 0)
                goto fail;
            i++;
        }
        while (i < cp.n) {
            if ((ret = read_video(in, m->stream, pkt)) < 0) {
                if (ret != -ENODATA)
                    goto fail;
                lost += cp.n - i;
                i = cp.n;
                break;
            }
            int next = identify(m->index, pkt, cur + 1, r->end_packet);
            if (next >= 0) {
                cur = next;
                break;
            }
        }
    }
    if (lost)
        log_warn("%s: %d packets of a copy segment did not come out of the demuxer", m->path,
                 lost);
    if ((ret = audio_pump(a, &o, m, INT64_MAX)) < 0)
        goto fail;
    ret = output_close(&o, 1);
fail:
    output_close(&o, 0);
    audio_free(&a);
    free(cp.packet);
    free(cp.dts);
    av_bsf_free(&ab.bsf);
    avformat_close_input(&in);
    av_packet_free(&pkt);
    return ret;
}

/* ------------------------------------------------------------------ transcode */

struct transcode {
    struct segmenter *sg;
    struct media *m;
    const struct range *r;
    struct output o;
    struct audio *a;
    struct encoder *enc;
    AVPacket *pkt;
    int64_t last_pts; /* of the last frame sent, to keep pts strictly increasing */
    int frames, skipped;
};

static int open_encoder(struct transcode *t, const AVFrame *f)
{
    const struct media *m = t->m;
    const struct range *r = t->r;
    /* The nominal rate of the span, for rate control; timestamps carry the real timing. */
    AVRational fps = {0, 1};
    int64_t span = r->t1 - r->t0;
    if (span > 0)
        fps = av_d2q((r->last - r->first) / (span * av_q2d(m->time_base)), 1000000);
    struct encode_input in = {
        .width = f->width,
        .height = f->height,
        .pix_fmt = f->format,
        .time_base = m->time_base,
        .framerate = fps,
        .sample_aspect_ratio = f->sample_aspect_ratio.num ? f->sample_aspect_ratio
                                                          : m->par->sample_aspect_ratio,
        .color_range = f->color_range,
        .colorspace = f->colorspace,
        .color_primaries = f->color_primaries,
        .color_trc = f->color_trc,
        .chroma_location = f->chroma_location,
        .global_header = !!(t->o.oc->oformat->flags & AVFMT_GLOBALHEADER),
    };
    int ret = encode_open(t->sg->sessions, &t->sg->enc, &in, &t->enc);
    if (ret < 0)
        return ret;
    AVStream *st = t->o.video;
    if ((ret = avcodec_parameters_from_context(st->codecpar, t->enc->ctx)) < 0)
        return decode_averror(ret);
    st->time_base = m->time_base;
    st->avg_frame_rate = fps;
    AVFormatContext *src = NULL;
    /* Stream side data (rotation) from the source, which the reader does not carry. */
    if (media_open_demuxer(m, &src) == 0) {
        ret = copy_side_data(st, src->streams[m->stream]);
        avformat_close_input(&src);
        if (ret < 0)
            return ret;
    }
    if ((ret = audio_open(t->sg, m, &t->o, r->t0, r->t1, &t->a)) < 0)
        return ret;
    return output_header(&t->o);
}

/* Writes the packets the encoder has ready. */
static int drain(struct transcode *t)
{
    const struct index *ix = t->m->index;
    AVCodecContext *ctx = t->enc->ctx;
    int ret;
    while ((ret = encode_receive(t->enc, t->pkt)) == 0) {
        /* Encoders do not carry durations through; the index has each frame's. */
        int n = index_find_pts(ix, t->pkt->pts + t->r->t0);
        if (n >= 0)
            t->pkt->duration = ix->frames[n].duration;
        int64_t at = t->pkt->dts != AV_NOPTS_VALUE ? t->pkt->dts : t->pkt->pts;
        t->pkt->stream_index = t->o.video->index;
        av_packet_rescale_ts(t->pkt, ctx->time_base, t->o.video->time_base);
        if ((ret = av_interleaved_write_frame(t->o.oc, t->pkt)) < 0) {
            log_error("%s: writing a segment: %s", t->m->path, av_err2str(ret));
            return decode_averror(ret);
        }
        int64_t lead = (int64_t)(AUDIO_LEAD_S / av_q2d(t->m->time_base));
        if ((ret = audio_pump(t->a, &t->o, t->m, at + t->r->t0 + lead)) < 0)
            return ret;
    }
    return ret == -EAGAIN || ret == -ENODATA ? 0 : ret;
}

static int write_transcode(struct segmenter *sg, struct media *m, const struct range *r,
                           const struct container *c, const char *path, int *fell_back,
                           const char **encoder)
{
    const struct index *ix = m->index;
    struct transcode t = {.sg = sg, .m = m, .r = r, .last_pts = INT64_MIN};
    struct reader_lease lease = READER_LEASE_INIT; /* one decoder, first frame to last */
    t.pkt = av_packet_alloc();
    int ret = t.pkt ? output_open(&t.o, c, path) : -ENOMEM;
    if (ret < 0)
        goto fail;
    for (int n = r->first; n < r->last; n++) {
        AVFrame *f = NULL;
        ret = reader_get_leased(sg->reader, m, n, r->last, &lease, &f);
        if (ret == -ENOMEM)
            goto fail;
        if (ret < 0) {
            /* A damaged frame in the middle costs that frame, not the whole clip. */
            if (!t.skipped++)
                log_warn("%s: frame %d cannot be decoded (%s); segment goes without it",
                         m->path, n, strerror(-ret));
            continue;
        }
        /* GPU-decoded frames go to the encoder as the CPU decoder would give them. */
        AVFrame *h = NULL;
        ret = convert_to_host(f, &h);
        av_frame_free(&f);
        if (ret < 0)
            goto fail;
        f = h;
        if (!t.enc && (ret = open_encoder(&t, f)) < 0) {
            av_frame_free(&f);
            goto fail;
        }
        /* The reader's AVFrame is our own reference: its fields are ours to set. */
        f->pts = ix->frames[n].pts - r->t0;
        if (f->pts <= t.last_pts)
            f->pts = t.last_pts + 1; /* equal pts in a broken source */
        t.last_pts = f->pts;
        f->pkt_duration = ix->frames[n].duration;
        f->key_frame = 0;
        ret = encode_send(t.enc, f);
        av_frame_free(&f);
        if (ret < 0 || (ret = drain(&t)) < 0)
            goto fail;
        t.frames++;
    }
    if (!t.frames) {
        log_error("%s: no frame of [%d, %d) decodes; no segment", m->path, r->first, r->last);
        ret = -EIO;
        goto fail;
    }
    if ((ret = encode_send(t.enc, NULL)) < 0 || (ret = drain(&t)) < 0 ||
        (ret = audio_pump(t.a, &t.o, m, INT64_MAX)) < 0)
        goto fail;
    *fell_back = t.enc->fell_back;
    *encoder = t.enc->ctx->codec->name;
    ret = output_close(&t.o, 1);
fail:
    reader_lease_end(sg->reader, &lease);
    output_close(&t.o, 0);
    audio_free(&t.a);
    encode_free(&t.enc);
    av_packet_free(&t.pkt);
    return ret;
}

/* ------------------------------------------------------------------ open */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Writes the segment into the store under key, holding its store lock: *fd and *size,
 * the file (unlinked when too large for the store). */
static int produce_locked(struct segmenter *sg, struct media *m, const struct segment_req *req,
                          const struct range *r, struct store_lock *l, int *fd,
                          uint64_t *size)
{
    const struct container *c = find_container(req->container);
    const char *tmp, *encoder = "copy";
    int tfd, fell_back = 0;
    double t0 = now_s();
    int ret = store_tmp(l, &tfd, &tmp);
    if (ret < 0) {
        log_error("segments: no temporary file in the store: %s", strerror(-ret));
        return ret == -ENOMEM ? ret : -EIO;
    }
    /* The muxer writes by name; tfd, still open, serves the result. */
    ret = req->copy ? write_copy(sg, m, r, c, tmp)
                    : write_transcode(sg, m, r, c, tmp, &fell_back, &encoder);
    if (ret == 0 && (ret = store_commit(l, tfd, size)) < 0)
        log_error("segments: cannot commit %s to the store: %s", tmp, strerror(-ret));
    if (ret < 0) {
        close(tfd);
        store_abort(l);
        return ret == -ENOMEM ? ret : -EIO;
    }
    atomic_fetch_add(&sg->produced, 1);
    if (req->copy)
        atomic_fetch_add(&sg->copies, 1);
    else if (!strstr(encoder, "nvenc"))
        atomic_fetch_add(&sg->cpu_encodes, 1);
    else
        atomic_fetch_add(&sg->nvenc_encodes, 1);
    if (fell_back)
        atomic_fetch_add(&sg->nvenc_fallbacks, 1);
    log_info("%s: segment %g-%g.%s%s: frames %d-%d, %s, %" PRIu64 " bytes in %.2f s", m->path,
             req->start, req->end, req->copy ? "copy." : "", req->container, r->first,
             r->last - 1, encoder, *size, now_s() - t0);
    *fd = tfd;
    return 0;
}

/* Another daemon on the same store may be producing key: waits for its lock, then takes
 * its result, or produces the segment itself. */
static int produce(struct segmenter *sg, struct media *m, const struct segment_req *req,
                   const struct range *r, const char *key, int *fd, uint64_t *size)
{
    struct store_lock *l;
    if (store_lock(sg->store, key, &l) < 0)
        return -EIO;
    int ret = 0;
    if (store_open(sg->store, key, fd, size) == 0)
        atomic_fetch_add(&sg->store_hits, 1);
    else
        ret = produce_locked(sg, m, req, r, l, fd, size);
    store_unlock(&l);
    return ret;
}

static struct job *find_job(struct segmenter *sg, const char *key)
{
    for (struct job *j = sg->jobs; j; j = j->next)
        if (!strcmp(j->key, key))
            return j;
    return NULL;
}

static void unlink_job(struct segmenter *sg, struct job *job)
{
    for (struct job **p = &sg->jobs; *p; p = &(*p)->next) {
        if (*p == job) {
            *p = job->next;
            return;
        }
    }
}

/* Drops a user of job (sg->lock held); the last one frees it. */
static void job_put(struct job *job)
{
    if (--job->users)
        return;
    if (job->fd >= 0)
        close(job->fd);
    free(job);
}

/* A user's own descriptor of the job's result (sg->lock held). */
static int job_take(const struct job *job, int *fd, uint64_t *size)
{
    if (job->ret < 0)
        return job->ret;
    int f = fcntl(job->fd, F_DUPFD_CLOEXEC, 0);
    if (f < 0)
        return errno == EMFILE || errno == ENFILE ? -errno : -EIO;
    *fd = f;
    *size = job->size;
    return 0;
}

int segment_open(struct segmenter *sg, struct media *m, const struct segment_req *req,
                 int *fd, uint64_t *size)
{
    if (!segment_valid(sg, m, req))
        return -ENOENT;
    if (m->error)
        return -EIO;
    struct range r;
    char key[KEY_MAX];
    if (find_range(m, req, &r) < 0)
        return -ENOENT;
    make_key(sg, m, req, &r, key);
    if (store_open(sg->store, key, fd, size) == 0) {
        atomic_fetch_add(&sg->store_hits, 1);
        return 0;
    }
    pthread_mutex_lock(&sg->lock);
    struct job *job = find_job(sg, key);
    if (job) {
        job->users++;
        while (!job->done)
            pthread_cond_wait(&sg->done, &sg->lock);
    } else if ((job = calloc(1, sizeof(*job)))) {
        snprintf(job->key, sizeof(job->key), "%s", key);
        job->users = 1;
        job->fd = -1;
        job->next = sg->jobs;
        sg->jobs = job;
        pthread_mutex_unlock(&sg->lock);
        int ret = produce(sg, m, req, &r, key, &job->fd, &job->size);
        pthread_mutex_lock(&sg->lock);
        job->done = 1;
        job->ret = ret;
        unlink_job(sg, job);
        pthread_cond_broadcast(&sg->done);
    } else {
        pthread_mutex_unlock(&sg->lock);
        return -ENOMEM;
    }
    int ret = job_take(job, fd, size);
    job_put(job);
    pthread_mutex_unlock(&sg->lock);
    return ret;
}

int segment_size(struct segmenter *sg, const struct media *m, const struct segment_req *req,
                 uint64_t *size)
{
    struct range r;
    char key[KEY_MAX];
    if (m->error || !segment_valid(sg, m, req) || find_range(m, req, &r) < 0)
        return -ENOENT;
    make_key(sg, m, req, &r, key);
    return store_size(sg->store, key, size);
}
