/* Copy segments: the video packets from the keyframe at or before start through those of
 * the last frame before end, read with our own demuxer and never decoded. */
#include "copy.h"
#include "averror.h"
#include "index.h"
#include "log.h"
#include "media.h"
#include "progress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/bsf.h>

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
            return ret == AVERROR_EOF ? -ENODATA : averror_errno(ret);
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

static int annexb_open(const struct media *m, const struct output_container *c, struct annexb *ab)
{
    const AVCodecParameters *par = m->par;
    const char *name = media_annexb_filter(par->codec_id);
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
    return ret < 0 ? averror_errno(ret) : 0;
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

int copy_write(enum audio_mode audio, struct media *m, const struct range *r,
               const struct output_container *c, const char *path, struct progress *progress)
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
        ret = averror_errno(ret);
        goto fail;
    }
    o.video->codecpar->codec_tag = 0;
    o.video->time_base = m->time_base;
    o.video->avg_frame_rate = in->streams[m->stream]->avg_frame_rate;
    if ((ret = output_copy_side_data(o.video, in->streams[m->stream])) < 0 ||
        (ret = audio_open(audio, m, &o, r->t0, r->t1, &a)) < 0 || (ret = output_header(&o)) < 0)
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
                ret = averror_errno(ret);
                goto fail;
            }
            int64_t lead = (int64_t)(AUDIO_LEAD_S / av_q2d(m->time_base));
            if ((ret = audio_pump(a, &o, m, at + lead)) < 0)
                goto fail;
            progress_update(progress, (uint64_t)(cur + 1 - r->start_packet));
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
