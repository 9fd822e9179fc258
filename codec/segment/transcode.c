/* Transcoded segments: the frames with start <= t < end come from the reader (which starts
 * decoding at the right keyframe and continues sequentially without seeking), get
 * timestamps rebased to the first of them, keep their source durations, and go to an
 * encoder from encode.c. */
#include "transcode.h"
#include "averror.h"
#include "convert.h"
#include "index.h"
#include "log.h"
#include "media.h"
#include "progress.h"
#include "reader.h"

#include <errno.h>
#include <string.h>

struct transcode {
    const struct transcode_opts *opts;
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
    int ret = encode_open(t->opts->sessions, t->opts->enc, &in, &t->enc);
    if (ret < 0)
        return ret;
    AVStream *st = t->o.video;
    if ((ret = avcodec_parameters_from_context(st->codecpar, t->enc->ctx)) < 0)
        return averror_errno(ret);
    st->time_base = m->time_base;
    st->avg_frame_rate = fps;
    AVFormatContext *src = NULL;
    /* Stream side data (rotation) from the source, which the reader does not carry. */
    if (media_open_demuxer(m, &src) == 0) {
        ret = output_copy_side_data(st, src->streams[m->stream]);
        avformat_close_input(&src);
        if (ret < 0)
            return ret;
    }
    if ((ret = audio_open(t->opts->audio, m, &t->o, r->t0, r->t1, &t->a)) < 0)
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
            return averror_errno(ret);
        }
        int64_t lead = (int64_t)(AUDIO_LEAD_S / av_q2d(t->m->time_base));
        if ((ret = audio_pump(t->a, &t->o, t->m, at + t->r->t0 + lead)) < 0)
            return ret;
    }
    return ret == -EAGAIN || ret == -ENODATA ? 0 : ret;
}

int transcode_write(const struct transcode_opts *opts, struct media *m, const struct range *r,
                    const struct output_container *c, const char *path, int *fell_back,
                    const char **encoder)
{
    const struct index *ix = m->index;
    struct transcode t = {.opts = opts, .m = m, .r = r, .last_pts = INT64_MIN};
    struct reader_lease lease = READER_LEASE_INIT; /* one decoder, first frame to last */
    t.pkt = av_packet_alloc();
    int ret = t.pkt ? output_open(&t.o, c, path) : -ENOMEM;
    if (ret < 0)
        goto fail;
    for (int n = r->first; n < r->last; n++) {
        AVFrame *f = NULL;
        ret = reader_get_leased(opts->reader, m, n, r->last, &lease, &f);
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
        progress_update(opts->progress, (uint64_t)(n + 1 - r->first));
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
    reader_lease_end(opts->reader, &lease);
    output_close(&t.o, 0);
    audio_free(&t.a);
    encode_free(&t.enc);
    av_packet_free(&t.pkt);
    return ret;
}
