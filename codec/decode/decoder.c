/* Decoder: seeking and frame identity over a backend. A frame is identified by its pts in
 * the index, never by counting, so frames a decoder drops or repeats cannot shift the
 * numbering. A run of decoding that began at packet S yields correct frames only for
 * display frames whose own start packet is at or after S (an open GOP's leading pictures
 * need the GOP before): other frames are dropped, never served or cached. */
#include "decoder.h"
#include "averror.h"
#include "frame_cache.h"
#include "index.h"
#include "log.h"
#include "media.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Non-reference pictures are skipped while the target is further than this many packets
 * ahead; nearer ones are decoded so the frame cache gets the frames around the target. */
#define SKIP_MARGIN 8
/* Seeking costs about this many frames of decoding (flush, demuxer seek, refill). */
#define SEEK_COST 4

struct run {
    int start;     /* packet the current run began at */
    int pending;   /* a packet read but not yet accepted by the backend */
    int skipping;  /* non-reference pictures are being skipped */
    int keys;      /* keyframe packets sent since the start */
    /* A damaged picture came out before the run had a GOP of history: its concealment
     * differs from a decode from the beginning, so nothing of this run is served. */
    int tainted;
};

/* Kept beside the public struct so the header need not expose run state. */
struct decoder_impl {
    struct decoder pub;
    struct run run;
    AVFrame *frame;
};

static struct decoder_impl *impl(struct decoder *d)
{
    return (struct decoder_impl *)d;
}

int decoder_new(const struct decode_backend *backend, const struct decode_opts *opts,
                struct decoder **out)
{
    struct decoder_impl *di = calloc(1, sizeof(*di));
    if (!di)
        return -ENOMEM;
    struct decoder *d = &di->pub;
    d->backend = backend;
    d->opts = *opts;
    d->priv = calloc(1, backend->priv_size ? backend->priv_size : 1);
    d->pkt = av_packet_alloc();
    di->frame = av_frame_alloc();
    d->next_packet = -1;
    d->last_frame = -1;
    if (!d->priv || !d->pkt || !di->frame) {
        decoder_free(&d);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

static void detach(struct decoder *d)
{
    avformat_close_input(&d->fmt);
    media_unref(&d->media);
    av_packet_unref(d->pkt);
    impl(d)->run = (struct run){0};
    d->next_packet = -1;
    d->last_frame = -1;
    d->drained = 0;
}

void decoder_free(struct decoder **dp)
{
    struct decoder *d = *dp;
    if (!d)
        return;
    detach(d);
    if (d->backend_open)
        d->backend->close(d->priv);
    free(d->priv);
    av_packet_free(&d->pkt);
    av_frame_free(&impl(d)->frame);
    free(d);
    *dp = NULL;
}

int decoder_attach(struct decoder *d, struct media *m)
{
    if (d->media == m)
        return 0;
    if (m->error)
        return -EIO;
    detach(d);
    int ret;
    if (d->backend_open && (ret = d->backend->reconfigure(d->priv, m->par)) < 0) {
        d->backend->close(d->priv);
        d->backend_open = 0;
    } else if (d->backend_open) {
        d->backend->flush(d->priv);
    }
    if (!d->backend_open) {
        ret = d->backend->open(d->priv, m->par, &d->opts);
        if (ret < 0)
            return ret == -ENOMEM ? ret : -EIO;
        d->backend_open = 1;
    }
    ret = media_open_demuxer(m, &d->fmt);
    if (ret < 0)
        return ret;
    d->media = media_ref(m);
    d->next_packet = 0; /* a fresh demuxer stands at the first packet */
    return 0;
}

/* Reads the next packet of the stream into d->pkt: 0, or -ENODATA at the end. */
static int read_packet(struct decoder *d)
{
    for (;;) {
        av_packet_unref(d->pkt);
        int ret = av_read_frame(d->fmt, d->pkt);
        if (ret < 0)
            return ret == AVERROR_EOF ? -ENODATA : averror_errno(ret);
        if (d->pkt->stream_index == d->media->stream)
            return 0;
    }
}

/* Positions the demuxer so that d->pkt holds packet `target`, by timestamp seek when it
 * lands at or before it, else by reading from the start (always right, slower). */
static int demux_seek(struct decoder *d, int target)
{
    const struct index *ix = d->media->index;
    const struct index_packet *ip = &ix->packets[target];
    int64_t ts = ip->dts != AV_NOPTS_VALUE && ip->dts < ip->pts ? ip->dts : ip->pts;
    int linear = target == 0 || av_seek_frame(d->fmt, d->media->stream, ts,
                                              AVSEEK_FLAG_BACKWARD) < 0;
    if (linear) {
        avformat_close_input(&d->fmt);
        int ret = media_open_demuxer(d->media, &d->fmt);
        if (ret < 0)
            return ret;
    }
    for (int n = 0;; n++) {
        int ret = read_packet(d);
        if (ret < 0)
            return ret == -ENODATA ? -EIO : ret;
        int c = linear ? (n > target) - (n < target) : index_packet_cmp(d->pkt, ip);
        if (c == 0)
            return 0;
        if (c > 0) {
            if (linear)
                return -EIO;
            log_debug("%s: seek to packet %d overshot; reading from the start",
                      d->media->path, target);
            av_packet_unref(d->pkt);
            avformat_close_input(&d->fmt);
            ret = media_open_demuxer(d->media, &d->fmt);
            if (ret < 0)
                return ret;
            linear = 1;
            n = -1;
        }
    }
}

static int seek_to(struct decoder *d, int packet)
{
    struct run *run = &impl(d)->run;
    log_debug("%s: seek to packet %d", d->media->path, packet);
    d->backend->flush(d->priv);
    d->seeks++;
    d->drained = 0;
    d->last_frame = -1;
    d->next_packet = -1;
    int ret = demux_seek(d, packet);
    if (ret < 0) {
        log_error("%s: cannot seek to packet %d: %s", d->media->path, packet, strerror(-ret));
        return -EIO;
    }
    *run = (struct run){.start = packet, .pending = 1};
    d->next_packet = packet;
    return 0;
}

/* Feeds one packet (or the drain) to the backend. */
static int feed(struct decoder *d, int target_packet)
{
    struct run *run = &impl(d)->run;
    if (!run->pending) {
        int ret = read_packet(d);
        int64_t cut = d->media->index->cut_pos;
        if (ret == 0 && cut > 0 && d->pkt->pos == cut)
            ret = -ENODATA; /* the packet the file ends inside is not decoded */
        if (ret == -ENODATA) {
            d->drained = 1;
            ret = d->backend->send_packet(d->priv, NULL);
            return ret == -ENODATA ? 0 : ret;
        }
        if (ret < 0)
            return ret;
        run->pending = 1;
    }
    int skip = target_packet - d->next_packet > SKIP_MARGIN;
    if (d->media->index->counted)
        d->pkt->pts = d->media->index->packets[d->next_packet].pts;
    if (skip != run->skipping && d->backend->skip_nonref) {
        d->backend->skip_nonref(d->priv, skip);
        run->skipping = skip;
    }
    int ret = d->backend->send_packet(d->priv, d->pkt);
    if (ret == -EAGAIN)
        return 0; /* the backend has frames to give first; keep the packet */
    run->pending = 0;
    run->keys += !!(d->pkt->flags & AV_PKT_FLAG_KEY);
    d->next_packet++;
    av_packet_unref(d->pkt);
    if (ret < 0 && ret != -ENOMEM) {
        log_debug("%s: packet %d does not decode (%s); going on", d->media->path,
                  d->next_packet - 1, strerror(-ret));
        return 0;
    }
    return ret;
}

/* Display index of a decoded frame, or -1 when the index has no such pts. Equal pts
 * (broken files) are taken in order. */
static int identify(const struct decoder *d, const AVFrame *f)
{
    const struct index *ix = d->media->index;
    int idx = index_find_pts(ix, f->pts);
    while (idx >= 0 && idx <= d->last_frame && idx + 1 < ix->nb_frames &&
           ix->frames[idx + 1].pts == f->pts)
        idx++;
    return idx;
}

int decoder_can_continue(const struct decoder *d, int n)
{
    if (!d->media || n < 0 || n >= d->media->index->nb_frames)
        return 0;
    const struct index *ix = d->media->index;
    int sp = index_start_packet(ix, n);
    /* A drained decoder still holds the last frames (reordering, codec threads). */
    return d->next_packet >= 0 && d->last_frame < n &&
           sp >= impl((struct decoder *)d)->run.start && sp <= d->next_packet;
}

int decoder_distance(const struct decoder *d, int n)
{
    if (!d->media)
        return INT_MAX;
    const struct index *ix = d->media->index;
    if (n < 0 || n >= ix->nb_frames)
        return INT_MAX;
    if (decoder_can_continue(d, n))
        return n - d->last_frame - 1;
    return ix->frames[n].packet - index_start_packet(ix, n) + SEEK_COST;
}

static int is_damaged(const AVFrame *f)
{
    return f->decode_error_flags || (f->flags & AV_FRAME_FLAG_CORRUPT);
}

/* The keyframe packet before `packet`, to start a run one GOP earlier; -1 if none. */
static int earlier_start(const struct index *ix, int packet)
{
    for (int p = packet - 1; p >= 0; p--)
        if (ix->packets[p].key)
            return p;
    return packet > 0 ? 0 : -1;
}

/* Decodes on until frame n comes out: 0 with out set, 1 when the run is tainted and must
 * start earlier, negative errno on failure. */
static int run_to(struct decoder *d, int n, AVFrame *out, struct frame_cache *keep)
{
    const struct index *ix = d->media->index;
    struct run *run = &impl(d)->run;
    AVFrame *f = impl(d)->frame;
    int target_packet = ix->frames[n].packet;
    for (;;) {
        int ret = d->backend->receive_frame(d->priv, f);
        if (ret == -EAGAIN) {
            if (d->drained) {
                log_error_once(d->media->path, "the decoder ran out of packets", "frame %d", n);
                return -EIO;
            }
            if ((ret = feed(d, target_packet)) < 0) {
                if (ret != -ENOMEM)
                    log_error_once(d->media->path, "reading or decoding packets failed",
                                   "frame %d: %s", n, strerror(-ret));
                return ret == -ENOMEM ? ret : -EIO;
            }
            continue;
        }
        if (ret == -ENODATA) {
            log_error_once(d->media->path, "a frame never came out of the decoder", "frame %d",
                           n);
            return -EIO;
        }
        if (ret < 0)
            return ret == -ENOMEM ? ret : -EIO;
        d->frames_decoded++;
        if (is_damaged(f) && run->start > 0 && run->keys <= 1 && !run->tainted) {
            log_debug("%s: damaged picture early in a run from packet %d", d->media->path,
                      run->start);
            run->tainted = 1;
        }
        int idx = identify(d, f);
        log_debug("%s: decoded pts %lld: frame %d (want %d)", d->media->path,
                  (long long)f->pts, idx, n);
        if (idx < 0 || idx <= d->last_frame) {
            av_frame_unref(f);
            continue;
        }
        d->last_frame = idx;
        int valid = index_start_packet(ix, idx) >= run->start && !run->tainted;
        if (valid && keep)
            frame_cache_put(keep, d->media->id, idx, f);
        if (idx >= n) {
            ret = idx > n ? -EIO : run->tainted ? 1 : valid ? av_frame_ref(out, f) : -EIO;
            av_frame_unref(f);
            if (ret == -EIO)
                log_error_once(d->media->path, "a frame was not output (corrupt stream?)",
                               "frame %d", n);
            return ret < 0 && ret != -EIO ? -ENOMEM : ret;
        }
        av_frame_unref(f);
    }
}

/* Runs to frame n, starting one GOP earlier each time the run turns out tainted. */
static int run_from(struct decoder *d, int n, AVFrame *out, struct frame_cache *keep)
{
    int ret;
    while ((ret = run_to(d, n, out, keep)) == 1) {
        int start = earlier_start(d->media->index, impl(d)->run.start);
        if (start < 0 || (ret = seek_to(d, start)) < 0)
            return start < 0 ? -EIO : ret;
    }
    return ret;
}

static int seek_and_run(struct decoder *d, int packet, int n, AVFrame *out,
                        struct frame_cache *keep)
{
    int ret = seek_to(d, packet);
    return ret < 0 ? ret : run_from(d, n, out, keep);
}

int decoder_reaches(const struct media *m, int t, int n)
{
    const struct index *ix = m->index;
    return t < n && n < ix->nb_frames && index_start_packet(ix, n) <= ix->frames[t].packet;
}

int decoder_get(struct decoder *d, int n, AVFrame *out, struct frame_cache *keep)
{
    const struct index *ix = d->media->index;
    if (n < 0 || n >= ix->nb_frames)
        return -ENOENT;
    int continued = decoder_can_continue(d, n);
    int ret = continued ? run_from(d, n, out, keep)
                        : seek_and_run(d, index_start_packet(ix, n), n, out, keep);
    /* Continuing can miss a frame the run skipped (non-reference pictures while far from
     * an earlier target) or one that drained away: a seek gets it. */
    if (ret == -EIO && continued)
        ret = seek_and_run(d, index_start_packet(ix, n), n, out, keep);
    return ret;
}
