/* Decoder: seeking and frame identity over a backend. A frame is identified by its pts in
 * the index, never by counting, so frames a decoder drops or repeats cannot shift the
 * numbering. A run of decoding that began at packet S yields correct frames only for
 * display frames whose own start packet is at or after S (an open GOP's leading pictures
 * need the GOP before): other frames are dropped, never served or cached.
 *
 * Damaged streams: a frame served is what `ffmpeg -threads 1` gives from the start, or
 * EIO. Concealment of a damaged picture varies from run to run with frame threads, and is
 * NVDEC's own on the GPU. A threaded CPU decoder says when it conceals, before any frame
 * that depends on the picture comes out (decode_backend.concealed); a GPU run holds each frame
 * until every picture decoded before it, from its start packet on, has come out, and
 * serves it only if none of them was damaged. Either way damage marks the media, whose
 * frames then come from single-threaded CPU decoders, exact runs: a run is exact once it
 * has a whole GOP without damage behind it (a damaged keyframe is concealed from the
 * picture before it), so damage in the first GOP of a run starts it one GOP earlier; the
 * frames of that first GOP are held as on the GPU, since a B-frame comes out before the
 * damaged picture it refers to. */
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

/* With `nearby`, non-reference pictures are skipped only while the target is further than
 * this many packets ahead, so the frame cache gets the frames just before it (3: a
 * mini-GOP of B-frames; 8 cost 5% more decodes for 30 random 1080p frames, unused). */
#define SKIP_MARGIN 3
/* Seeking costs about this many frames of decoding (flush, demuxer seek, refill). */
#define SEEK_COST 4
/* Frames a GPU run holds at most (more than a DPB and the decode queue keep back). */
#define MAX_HELD 16
/* Damaged pictures a GPU run remembers; past that, all its frames count as damaged. */
#define MAX_DAMAGED 16

/* What run_to ends with, besides a negative errno. */
enum { RUN_OUT, RUN_EARLIER, RUN_DAMAGED, RUN_ON };

/* A frame of a GPU run that waits for the pictures decoded before it. */
struct held {
    int idx;  /* display index */
    int need; /* last display index among the pictures it waits for */
    AVFrame *f;
};

struct run {
    int start;         /* packet the current run began at */
    int pending;       /* a packet read but not yet accepted by the backend */
    int skipping;      /* non-reference pictures are being skipped */
    int first_gop_end; /* packet of the first keyframe after start */
    /* Exact runs: a damaged picture came out before the run had a GOP of history; its
     * concealment differs from a decode from the beginning, so nothing of it is served. */
    int tainted;
    int nb_damaged; /* GPU runs: packets of the damaged pictures seen */
    int damaged[MAX_DAMAGED];
    int nb_held;
    struct held held[MAX_HELD];
};

/* Kept beside the public struct so the header need not expose run state. */
struct decoder_impl {
    struct decoder pub;
    struct run run;
    AVFrame *frame;
    int exact; /* the backend is open single-threaded and exact_single */
    int margin; /* packets before the target decoded whole: SKIP_MARGIN or 0 */
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

/* Drops the run's held frames and starts a new run at packet start. */
static void run_reset(struct decoder *d, int start)
{
    struct run *run = &impl(d)->run;
    for (int i = 0; i < run->nb_held; i++)
        av_frame_free(&run->held[i].f);
    *run = (struct run){.start = start};
}

static void detach(struct decoder *d)
{
    avformat_close_input(&d->fmt);
    media_unref(&d->media);
    av_packet_unref(d->pkt);
    run_reset(d, 0);
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

static int media_damaged(const struct media *m)
{
    return __atomic_load_n(&m->damaged, __ATOMIC_ACQUIRE);
}

static void close_backend(struct decoder *d)
{
    d->backend->close(d->priv);
    memset(d->priv, 0, d->backend->priv_size);
    d->backend_open = 0;
}

/* Opens the backend for m: single-threaded when m is damaged and that makes it exact. */
static int open_backend(struct decoder *d, const struct media *m)
{
    struct decode_opts o = d->opts;
    if (d->backend->exact_single && media_damaged(m))
        o.threads = 1;
    int ret = d->backend->open(d->priv, m->par, &o);
    if (ret < 0)
        return ret == -ENOMEM ? ret : -EIO;
    d->backend_open = 1;
    impl(d)->exact = d->backend->exact_single && o.threads == 1;
    return 0;
}

int decoder_attach(struct decoder *d, struct media *m)
{
    if (d->media == m)
        return 0;
    if (m->error)
        return -EIO;
    detach(d);
    int ret;
    if (d->backend_open && (ret = d->backend->reconfigure(d->priv, m->par)) < 0)
        close_backend(d);
    else if (d->backend_open)
        d->backend->flush(d->priv);
    if (!d->backend_open && (ret = open_backend(d, m)) < 0)
        return ret;
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
    run_reset(d, packet);
    run->pending = 1;
    run->first_gop_end = d->media->index->nb_packets;
    for (int p = packet + 1; p < d->media->index->nb_packets; p++) {
        if (d->media->index->packets[p].key) {
            run->first_gop_end = p;
            break;
        }
    }
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
    /* Never in a damaged media: a damaged keyframe is concealed from the picture before it,
     * which must be the one a decode of every picture gives. */
    int skip = target_packet - d->next_packet > impl(d)->margin && !media_damaged(d->media);
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

/* Position of display frame n among the run's held frames, or -1. */
static int find_held(const struct decoder *d, int n)
{
    const struct run *run = &impl((struct decoder *)d)->run;
    for (int i = 0; i < run->nb_held; i++)
        if (run->held[i].idx == n)
            return i;
    return -1;
}

int decoder_can_continue(const struct decoder *d, int n)
{
    if (!d->media || n < 0 || n >= d->media->index->nb_frames)
        return 0;
    const struct index *ix = d->media->index;
    int sp = index_start_packet(ix, n);
    /* A drained decoder still holds the last frames (reordering, codec threads). */
    return d->next_packet >= 0 && (d->last_frame < n || find_held(d, n) >= 0) &&
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
        return n > d->last_frame ? n - d->last_frame - 1 : 0;
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

static void mark_damaged(struct decoder *d, int n)
{
    if (!__atomic_exchange_n(&d->media->damaged, 1, __ATOMIC_ACQ_REL))
        log_warn("%s: damaged data (reading frame %d); decoding this file single-threaded "
                 "(frames read as `ffmpeg -threads 1` gives them, or EIO)", d->media->path, n);
}

/* The last display index among the pictures decoded from the start packet of idx up to
 * its own: once that is out, every picture idx can depend on has come out. */
static int need_of(const struct index *ix, int idx)
{
    int need = idx;
    for (int p = index_start_packet(ix, idx); p <= ix->frames[idx].packet; p++)
        need = FFMAX(need, ix->packets[p].frame);
    return need;
}

/* 1 when a damaged picture was decoded between the start packet of idx and its own. */
static int window_damaged(const struct run *run, const struct index *ix, int idx)
{
    if (run->nb_damaged > MAX_DAMAGED)
        return 1;
    int from = index_start_packet(ix, idx), to = ix->frames[idx].packet;
    for (int i = 0; i < run->nb_damaged; i++)
        if (run->damaged[i] >= from && run->damaged[i] <= to)
            return 1;
    return 0;
}

/* Releases the held frames that every picture before them has come out for (all: the
 * run is drained): cached when their window is clean, out set for n. RUN_OUT, RUN_ON, or
 * when n's window was not clean RUN_DAMAGED (a GPU run) or RUN_EARLIER (an exact one);
 * -ENOMEM. */
static int release(struct decoder *d, int n, AVFrame *out, struct frame_cache *keep, int all)
{
    const struct index *ix = d->media->index;
    struct run *run = &impl(d)->run;
    int ret = RUN_ON, kept = 0;
    for (int i = 0; i < run->nb_held; i++) {
        struct held *h = &run->held[i];
        if (!all && d->last_frame < h->need) {
            run->held[kept++] = *h;
            continue;
        }
        int clean = !window_damaged(run, ix, h->idx);
        if (clean && keep)
            frame_cache_put(keep, d->media->id, h->idx, h->f);
        if (h->idx == n && !clean)
            ret = impl(d)->exact ? RUN_EARLIER : RUN_DAMAGED;
        else if (h->idx == n)
            ret = av_frame_ref(out, h->f) < 0 ? -ENOMEM : RUN_OUT;
        av_frame_free(&h->f);
    }
    run->nb_held = kept;
    return ret;
}

/* A frame of a GPU run, or of an exact run's first GOP: held until the pictures decoded
 * before it have come out (a B-frame comes out before the damaged picture it refers to). */
static int take_held(struct decoder *d, int idx, AVFrame *f, int n, AVFrame *out,
                     struct frame_cache *keep)
{
    const struct index *ix = d->media->index;
    struct run *run = &impl(d)->run;
    if (index_start_packet(ix, idx) < run->start)
        return idx >= n && find_held(d, n) < 0 ? -EIO : RUN_ON;
    if (impl(d)->exact && run->tainted && index_start_packet(ix, idx) >= run->first_gop_end)
        return RUN_EARLIER; /* past the first GOP of a tainted run: nothing more of it */
    /* An exact run reproduces damage past its first GOP: only damage inside it counts. */
    int counts = !impl(d)->exact || ix->frames[idx].packet < run->first_gop_end;
    if (is_damaged(f))
        mark_damaged(d, idx);
    if (is_damaged(f) && counts) {
        if (impl(d)->exact) {
            log_debug("%s: damaged picture in the first GOP of a run from packet %d",
                      d->media->path, run->start);
            run->tainted = 1;
        }
        if (run->nb_damaged < MAX_DAMAGED)
            run->damaged[run->nb_damaged] = ix->frames[idx].packet;
        run->nb_damaged++;
    }
    if (run->nb_held < MAX_HELD) {
        struct held *h = &run->held[run->nb_held];
        if (!(h->f = av_frame_clone(f)))
            return -ENOMEM;
        h->idx = idx;
        h->need = need_of(ix, idx);
        run->nb_held++;
    }
    int ret = release(d, n, out, keep, 0);
    return ret == RUN_ON && idx >= n && find_held(d, n) < 0 ? -EIO : ret;
}

/* A CPU run's frame idx, served at once, except in the first GOP of an exact run that
 * began after the start: there damage taints the run (its concealment may differ from a
 * decode from the start), and frames wait to see whether what they refer to was damaged.
 * Damage sends a threaded run to an exact decoder. */
static int take_now(struct decoder *d, int idx, AVFrame *f, int n, AVFrame *out,
                    struct frame_cache *keep)
{
    const struct index *ix = d->media->index;
    struct run *run = &impl(d)->run;
    int first_gop = index_start_packet(ix, idx) < run->first_gop_end;
    if (impl(d)->exact && run->start > 0 && (first_gop || run->nb_held || run->tainted))
        return take_held(d, idx, f, n, out, keep);
    int valid = index_start_packet(ix, idx) >= run->start;
    if (valid && is_damaged(f)) {
        mark_damaged(d, idx);
        if (!impl(d)->exact)
            return RUN_DAMAGED;
    }
    if (valid && keep)
        frame_cache_put(keep, d->media->id, idx, f);
    if (idx < n)
        return RUN_ON;
    if (idx > n || !valid)
        return -EIO;
    return av_frame_ref(out, f) < 0 ? -ENOMEM : RUN_OUT;
}

/* Decodes on until frame n comes out: RUN_OUT with out set, RUN_EARLIER when the run must
 * start a GOP earlier, RUN_DAMAGED when only an exact run can give n; negative errno on
 * failure. */
static int run_to(struct decoder *d, int n, AVFrame *out, struct frame_cache *keep)
{
    const struct index *ix = d->media->index;
    AVFrame *f = impl(d)->frame;
    int target_packet = ix->frames[n].packet;
    int ret = release(d, n, out, keep, 0);
    if (ret != RUN_ON)
        return ret;
    for (;;) {
        ret = d->backend->receive_frame(d->priv, f);
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
            ret = release(d, n, out, keep, 1);
            if (ret == RUN_ON)
                log_error_once(d->media->path, "a frame never came out of the decoder",
                               "frame %d", n);
            return ret == RUN_ON ? -EIO : ret;
        }
        if (ret < 0)
            return ret == -ENOMEM ? ret : -EIO;
        d->frames_decoded++;
        /* A threaded decoder concealed a picture this frame may come from. */
        if (!impl(d)->exact && d->backend->concealed && d->backend->concealed(d->priv)) {
            av_frame_unref(f);
            mark_damaged(d, n);
            return RUN_DAMAGED;
        }
        int idx = identify(d, f);
        log_debug("%s: decoded pts %lld: frame %d (want %d)", d->media->path,
                  (long long)f->pts, idx, n);
        if (idx < 0 || idx <= d->last_frame) {
            av_frame_unref(f);
            continue;
        }
        d->last_frame = idx;
        ret = d->backend->exact_single ? take_now(d, idx, f, n, out, keep)
                                       : take_held(d, idx, f, n, out, keep);
        av_frame_unref(f);
        if (ret == -EIO)
            log_error_once(d->media->path, "a frame was not output (corrupt stream?)",
                           "frame %d", n);
        if (ret != RUN_ON)
            return ret;
    }
}

/* Runs to frame n, starting one GOP earlier each time the run turns out tainted. */
static int run_from(struct decoder *d, int n, AVFrame *out, struct frame_cache *keep)
{
    int ret;
    while ((ret = run_to(d, n, out, keep)) == RUN_EARLIER) {
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

/* Reopens the backend single-threaded (exact) for the damaged media; the next run seeks.
 * On failure the decoder is left detached, to be opened anew by the next attach. */
static int go_exact(struct decoder *d)
{
    close_backend(d);
    run_reset(d, 0);
    d->next_packet = -1;
    d->last_frame = -1;
    d->drained = 0;
    int ret = open_backend(d, d->media);
    if (ret < 0)
        detach(d);
    return ret;
}

/* Sets the backend's lead-in threshold (drop_before) and counts what it dropped. */
static void count_dropped(struct decoder *d, int64_t pts)
{
    if (d->backend->drop_before)
        d->frames_decoded += (unsigned long)d->backend->drop_before(d->priv, pts);
}

int decoder_get(struct decoder *d, int n, AVFrame *out, struct frame_cache *keep, int nearby)
{
    const struct index *ix = d->media->index;
    if (n < 0 || n >= ix->nb_frames)
        return -ENOENT;
    int ret = 0;
    impl(d)->margin = nearby ? SKIP_MARGIN : 0;
    /* A request (no `nearby`) reads nothing before n; a lone frame's lead-in is kept in
     * the cache, since random readers often come back for it. */
    int64_t drop = nearby ? AV_NOPTS_VALUE : ix->frames[n].pts;
    count_dropped(d, drop);
    /* Once damage is seen, an inexact backend (NVDEC) serves none of the file: which of its
     * pictures a concealment reaches is the GPU's own business, not all of them are flagged. */
    if (!impl(d)->exact && media_damaged(d->media))
        ret = d->backend->exact_single ? go_exact(d) : RUN_DAMAGED;
    int continued = ret == 0 && decoder_can_continue(d, n);
    if (ret == 0)
        ret = continued ? run_from(d, n, out, keep)
                        : seek_and_run(d, index_start_packet(ix, n), n, out, keep);
    /* Continuing can miss a frame the run skipped (non-reference pictures while far from
     * an earlier target) or one that drained away: a seek gets it. */
    if (ret == -EIO && continued)
        ret = seek_and_run(d, index_start_packet(ix, n), n, out, keep);
    /* Damage where n depends on it: only an exact decoder gives n (under backend=auto,
     * the reader asks the CPU when this one is not). */
    if (ret == RUN_DAMAGED && d->backend->exact_single && (ret = go_exact(d)) == 0)
        ret = seek_and_run(d, index_start_packet(ix, n), n, out, keep);
    if (ret == RUN_DAMAGED)
        log_error_once(d->media->path, "a damaged frame cannot be decoded exactly here",
                       "frame %d on %s", n, d->backend->name);
    count_dropped(d, drop);
    return ret == RUN_DAMAGED ? -EIO : ret;
}
