/* Index: one pass over the packets of a stream, no decoding. Display order is the order
 * of presentation timestamps of the packets the demuxer does not mark as discarded (an
 * edit list's lead-in), which is the order in which libavcodec outputs their frames. */
#include "index.h"
#include "log.h"
#include "progress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>

#define INDEX_MAGIC "VIDFSIX4"

struct sort_item {
    int64_t pts;
    int32_t packet;
};

static int cmp_item(const void *a, const void *b)
{
    const struct sort_item *x = a, *y = b;
    if (x->pts != y->pts)
        return x->pts < y->pts ? -1 : 1;
    return (x->packet > y->packet) - (x->packet < y->packet);
}

static int grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 1024;
    while (ncap < need)
        ncap *= 2;
    void *n = realloc(*arr, (size_t)ncap * elem);
    if (!n)
        return -ENOMEM;
    *arr = n;
    *cap = ncap;
    return 0;
}

/* Packets without a pts (AVI) get one: the dts values handed out in display order, which
 * follows from picture types as in MPEG: a reference picture is shown once the B-pictures
 * after it in decode order have been. types[i] is 1 for a B-picture. */
static int fill_pts(struct index_packet *p, int n, const uint8_t *is_b, const int64_t *dur)
{
    int have_pts = 1;
    for (int i = 0; i < n; i++)
        have_pts &= p[i].pts != AV_NOPTS_VALUE;
    if (have_pts)
        return 0;
    int64_t t = 0;
    for (int i = 0; i < n; i++) {
        if (p[i].dts != AV_NOPTS_VALUE)
            t = p[i].dts;
        else if (i)
            t += dur[i - 1] > 0 ? dur[i - 1] : 1;
        p[i].dts = t; /* made monotonic so that display slots are distinct */
    }
    int held = -1, slot = 0;
    for (int i = 0; i < n; i++) {
        if (is_b[i]) {
            p[i].pts = p[slot++].dts;
            continue;
        }
        if (held >= 0)
            p[held].pts = p[slot++].dts;
        held = i;
    }
    if (held >= 0)
        p[held].pts = p[slot].dts;
    return 1;
}

/* Picture types from FFmpeg's parser, for streams whose packets carry no pts. */
struct typer {
    AVCodecParserContext *parser;
    AVCodecContext *ctx;
};

static void typer_init(struct typer *t, const AVCodecParameters *par)
{
    t->parser = av_parser_init(par->codec_id);
    t->ctx = avcodec_alloc_context3(NULL);
    if (!t->parser || !t->ctx || avcodec_parameters_to_context(t->ctx, par) < 0) {
        av_parser_close(t->parser);
        avcodec_free_context(&t->ctx);
        t->parser = NULL;
        return;
    }
    t->parser->flags |= PARSER_FLAG_COMPLETE_FRAMES;
}

static int typer_is_b(struct typer *t, const AVPacket *pkt)
{
    if (!t->parser)
        return 0;
    uint8_t *out;
    int out_size;
    av_parser_parse2(t->parser, t->ctx, &out, &out_size, pkt->data, pkt->size, pkt->pts,
                     pkt->dts, pkt->pos);
    return t->parser->pict_type == AV_PICTURE_TYPE_B;
}

static void typer_close(struct typer *t)
{
    av_parser_close(t->parser);
    avcodec_free_context(&t->ctx);
}

static int finish(struct index *ix, const int64_t *pkt_dur)
{
    int n = 0;
    for (int i = 0; i < ix->nb_packets; i++)
        n += ix->packets[i].frame >= 0;
    if (!n)
        return -EIO;
    struct sort_item *items = malloc(sizeof(*items) * (size_t)n);
    ix->frames = calloc((size_t)n, sizeof(*ix->frames));
    ix->keyframes = malloc(sizeof(*ix->keyframes) * (size_t)n);
    if (!items || !ix->frames || !ix->keyframes) {
        free(items);
        return -ENOMEM;
    }
    n = 0;
    for (int i = 0; i < ix->nb_packets; i++)
        if (ix->packets[i].frame >= 0)
            items[n++] = (struct sort_item){ix->packets[i].pts, i};
    qsort(items, (size_t)n, sizeof(*items), cmp_item);
    ix->nb_frames = n;
    for (int f = 0; f < n; f++) {
        struct index_frame *fr = &ix->frames[f];
        struct index_packet *p = &ix->packets[items[f].packet];
        p->frame = f;
        fr->pts = items[f].pts;
        fr->packet = items[f].packet;
        fr->key = p->key;
        if (fr->key)
            ix->keyframes[ix->nb_keyframes++] = f;
    }
    for (int f = 0; f < n; f++) {
        int64_t d = f + 1 < n ? ix->frames[f + 1].pts - ix->frames[f].pts
                              : pkt_dur[ix->frames[f].packet];
        if (d <= 0 && f > 0)
            d = ix->frames[f - 1].duration;
        ix->frames[f].duration = d > 0 ? d : 0;
    }
    free(items);
    return 0;
}

/* 1 when the packet at pos, of size bytes, is shorter than the demuxer's own index says
 * it is: the file was cut short inside it (an mp4 with its index at the front). */
static int cut_short(AVStream *st, int64_t pos, int size)
{
    int n = avformat_index_get_entries_count(st);
    for (int i = n - 1; i >= 0 && pos >= 0; i--) {
        const AVIndexEntry *e = avformat_index_get_entry(st, i);
        if (e->pos == pos)
            return e->size > size;
    }
    return 0;
}

/* 1 for a rawvideo packet too small for a frame of the stated size in any raw format
 * (one bit a pixel at least): it decodes to nothing (a header claiming 16000x16000). */
static int raw_too_small(const AVCodecParameters *par, const AVPacket *pkt)
{
    return par->codec_id == AV_CODEC_ID_RAWVIDEO &&
           (int64_t)pkt->size * 8 < (int64_t)par->width * par->height;
}

/* A scan's progress: bytes of the file read so far (packets of other streams included). */
static struct progress *scan_begin(AVFormatContext *fmt)
{
    int64_t size = fmt->pb ? avio_size(fmt->pb) : -1;
    return progress_begin(PROGRESS_INDEX, fmt->url, size > 0 ? (uint64_t)size : 0, "bytes");
}

static void scan_update(struct progress *p, AVFormatContext *fmt)
{
    int64_t pos = fmt->pb ? avio_tell(fmt->pb) : -1;
    if (pos >= 0)
        progress_update(p, (uint64_t)pos);
}

int index_build(AVFormatContext *fmt, int stream, struct index **out)
{
    struct progress *progress = scan_begin(fmt);
    struct index *ix = calloc(1, sizeof(*ix));
    AVPacket *pkt = av_packet_alloc();
    int64_t *dur = NULL;
    uint8_t *is_b = NULL;
    int cap = 0, dcap = 0, bcap = 0, last_size = 0, ret;
    struct typer typer = {0};
    if (!ix || !pkt) {
        ret = -ENOMEM;
        goto fail;
    }
    typer_init(&typer, fmt->streams[stream]->codecpar);
    ix->time_base = fmt->streams[stream]->time_base;
    while ((ret = av_read_frame(fmt, pkt)) >= 0) {
        scan_update(progress, fmt);
        if (pkt->stream_index != stream) {
            av_packet_unref(pkt);
            continue;
        }
        if (grow((void **)&ix->packets, &cap, ix->nb_packets + 1, sizeof(*ix->packets)) < 0 ||
            grow((void **)&dur, &dcap, ix->nb_packets + 1, sizeof(*dur)) < 0 ||
            grow((void **)&is_b, &bcap, ix->nb_packets + 1, sizeof(*is_b)) < 0) {
            ret = -ENOMEM;
            goto fail;
        }
        ix->packets[ix->nb_packets] = (struct index_packet){
            .pts = pkt->pts,
            .dts = pkt->dts,
            .pos = pkt->pos,
            .key = !!(pkt->flags & AV_PKT_FLAG_KEY),
            .frame = (pkt->flags & AV_PKT_FLAG_DISCARD) ||
                             raw_too_small(fmt->streams[stream]->codecpar, pkt)
                         ? -1
                         : 0,
        };
        is_b[ix->nb_packets] = (uint8_t)typer_is_b(&typer, pkt);
        dur[ix->nb_packets++] = pkt->duration;
        last_size = pkt->size;
        av_packet_unref(pkt);
    }
    if (ret != AVERROR_EOF)
        log_warn("index: read error after %d packets (%s); indexing what was read",
                 ix->nb_packets, av_err2str(ret));
    /* A packet the file ends inside gives no frame in ffmpeg: it is not a frame here. */
    if (ix->nb_packets &&
        cut_short(fmt->streams[stream], ix->packets[ix->nb_packets - 1].pos, last_size)) {
        log_warn("index: the last packet is cut short; left out");
        ix->cut_pos = ix->packets[--ix->nb_packets].pos;
    }
    ix->counted = fill_pts(ix->packets, ix->nb_packets, is_b, dur);
    ret = finish(ix, dur);
    if (ret < 0)
        goto fail;
    typer_close(&typer);
    free(is_b);
    free(dur);
    av_packet_free(&pkt);
    progress_end(&progress);
    *out = ix;
    return 0;
fail:
    progress_end(&progress);
    typer_close(&typer);
    free(is_b);
    free(dur);
    av_packet_free(&pkt);
    index_free(&ix);
    return ret;
}

void index_free(struct index **ixp)
{
    struct index *ix = *ixp;
    if (!ix)
        return;
    free(ix->frames);
    free(ix->packets);
    free(ix->keyframes);
    free(ix);
    *ixp = NULL;
}

double index_frame_time(const struct index *ix, int n)
{
    return (double)(ix->frames[n].pts - ix->frames[0].pts) * av_q2d(ix->time_base);
}

int index_find_pts(const struct index *ix, int64_t pts)
{
    int lo = 0, hi = ix->nb_frames;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (ix->frames[mid].pts < pts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ix->nb_frames && ix->frames[lo].pts == pts ? lo : -1;
}

int index_frame_at_time(const struct index *ix, double t)
{
    int lo = 0, hi = ix->nb_frames;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        /* A hair of tolerance so that "10" names the frame at 9.99999999 s. */
        if (index_frame_time(ix, mid) < t - 1e-9)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int index_start_packet(const struct index *ix, int n)
{
    int64_t pts = ix->frames[n].pts;
    for (int p = ix->frames[n].packet; p > 0; p--) {
        const struct index_packet *k = &ix->packets[p];
        if (k->key && k->pts <= pts)
            return p;
    }
    return 0;
}

/* Serialized form: magic, then the fixed header, then both arrays as written in memory
 * (the store is local to this machine, so host byte order is fine). */
struct blob_header {
    char magic[8];
    int32_t nb_frames, nb_packets, nb_keyframes, tb_num, tb_den, counted;
    int64_t cut_pos;
};

int index_serialize(const struct index *ix, uint8_t **buf, size_t *size)
{
    size_t n = sizeof(struct blob_header) + sizeof(*ix->frames) * (size_t)ix->nb_frames +
               sizeof(*ix->packets) * (size_t)ix->nb_packets;
    uint8_t *b = malloc(n);
    if (!b)
        return -ENOMEM;
    struct blob_header h = {.nb_frames = ix->nb_frames,
                            .nb_packets = ix->nb_packets,
                            .nb_keyframes = ix->nb_keyframes,
                            .tb_num = ix->time_base.num,
                            .tb_den = ix->time_base.den,
                            .counted = ix->counted,
                            .cut_pos = ix->cut_pos};
    memcpy(h.magic, INDEX_MAGIC, 8);
    uint8_t *p = b;
    memcpy(p, &h, sizeof(h));
    p += sizeof(h);
    memcpy(p, ix->frames, sizeof(*ix->frames) * (size_t)ix->nb_frames);
    p += sizeof(*ix->frames) * (size_t)ix->nb_frames;
    memcpy(p, ix->packets, sizeof(*ix->packets) * (size_t)ix->nb_packets);
    *buf = b;
    *size = n;
    return 0;
}

static int validate(const struct index *ix)
{
    int keys = 0;
    for (int f = 0; f < ix->nb_frames; f++) {
        const struct index_frame *fr = &ix->frames[f];
        if (fr->packet < 0 || fr->packet >= ix->nb_packets ||
            ix->packets[fr->packet].frame != f || (f && fr->pts < ix->frames[f - 1].pts))
            return -EINVAL;
        if (fr->key)
            ix->keyframes[keys++] = f;
    }
    for (int p = 0; p < ix->nb_packets; p++)
        if (ix->packets[p].frame < -1 || ix->packets[p].frame >= ix->nb_frames)
            return -EINVAL;
    return keys == ix->nb_keyframes ? 0 : -EINVAL;
}

int index_deserialize(const uint8_t *buf, size_t size, struct index **out)
{
    struct blob_header h;
    if (size < sizeof(h))
        return -EINVAL;
    memcpy(&h, buf, sizeof(h));
    if (memcmp(h.magic, INDEX_MAGIC, 8) || h.nb_frames <= 0 || h.nb_packets < h.nb_frames ||
        h.nb_keyframes < 0 || h.nb_keyframes > h.nb_frames || h.tb_num <= 0 || h.tb_den <= 0)
        return -EINVAL;
    size_t fsz = sizeof(struct index_frame) * (size_t)h.nb_frames;
    size_t psz = sizeof(struct index_packet) * (size_t)h.nb_packets;
    if (size != sizeof(h) + fsz + psz)
        return -EINVAL;
    struct index *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return -ENOMEM;
    ix->nb_frames = h.nb_frames;
    ix->nb_packets = h.nb_packets;
    ix->nb_keyframes = h.nb_keyframes;
    ix->time_base = (AVRational){h.tb_num, h.tb_den};
    ix->counted = !!h.counted;
    ix->cut_pos = h.cut_pos;
    ix->frames = malloc(fsz);
    ix->packets = malloc(psz);
    ix->keyframes = malloc(sizeof(*ix->keyframes) * (size_t)h.nb_frames);
    int ret = -ENOMEM;
    if (!ix->frames || !ix->packets || !ix->keyframes)
        goto fail;
    memcpy(ix->frames, buf + sizeof(h), fsz);
    memcpy(ix->packets, buf + sizeof(h) + fsz, psz);
    ret = validate(ix);
    if (ret < 0)
        goto fail;
    *out = ix;
    return 0;
fail:
    index_free(&ix);
    return ret;
}

int index_packet_cmp(const AVPacket *pkt, const struct index_packet *ip)
{
    if (pkt->pos >= 0 && ip->pos >= 0)
        return (pkt->pos > ip->pos) - (pkt->pos < ip->pos);
    if (pkt->dts != AV_NOPTS_VALUE && ip->dts != AV_NOPTS_VALUE)
        return (pkt->dts > ip->dts) - (pkt->dts < ip->dts);
    return pkt->pts == ip->pts ? 0 : -1;
}
