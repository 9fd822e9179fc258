/* Media: probe a source once, pick its video stream, and get its index from the disk
 * store or by a packet scan. Everything here is read-only after media_open returns. */
#include "media.h"
#include "averror.h"
#include "index.h"
#include "log.h"
#include "meta.h"
#include "store.h"

#include <errno.h>
#include <libavutil/pixdesc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_uint_fast64_t next_id = 1;

static int is_video(const AVStream *st)
{
    return st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
           !(st->disposition & AV_DISPOSITION_ATTACHED_PIC);
}

/* Only other streams are discarded, so demuxing skips their payloads. */
static void discard_others(AVFormatContext *fmt, int stream)
{
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        fmt->streams[i]->discard = (int)i == stream ? AVDISCARD_DEFAULT : AVDISCARD_ALL;
}

/* FFmpeg opens the media's own descriptor through /proc: the same regular file, never
 * what its name points to by now (a FIFO there would block the open for good). The url
 * is set back to the name for meta.json and log lines. */
static int open_input(const struct media *m, AVFormatContext **out, int find_info)
{
    AVFormatContext *fmt = NULL;
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m->fd);
    int ret = avformat_open_input(&fmt, proc, NULL, NULL);
    if (ret < 0)
        return ret;
    char *url = av_strdup(m->path);
    if (!url) {
        avformat_close_input(&fmt);
        return AVERROR(ENOMEM);
    }
    av_free(fmt->url);
    fmt->url = url;
    if (find_info || (fmt->ctx_flags & AVFMTCTX_NOHEADER)) {
        ret = avformat_find_stream_info(fmt, NULL);
        if (ret < 0) {
            avformat_close_input(&fmt);
            return ret;
        }
    }
    *out = fmt;
    return 0;
}

static int set_error(struct media *m, const char *msg)
{
    log_error("%s: %s", m->path, msg);
    m->error = strdup(msg);
    if (!m->error)
        return -ENOMEM;
    return meta_json_error(m->path, msg, &m->meta_json);
}

static int pick_stream(struct media *m, const AVFormatContext *fmt, int want)
{
    m->video_streams = malloc(sizeof(int) * (fmt->nb_streams + 1));
    if (!m->video_streams)
        return -ENOMEM;
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        if (is_video(fmt->streams[i]))
            m->video_streams[m->nb_video_streams++] = (int)i;
    if (want >= 0) {
        for (int i = 0; i < m->nb_video_streams; i++)
            if (m->video_streams[i] == want)
                return want;
        return -ENOENT;
    }
    int best = av_find_best_stream((AVFormatContext *)fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (best >= 0 && is_video(fmt->streams[best]))
        return best;
    return m->nb_video_streams ? m->video_streams[0] : -ENOENT;
}

/* The index of m stored under key, if there and whole. */
static int stored_index(struct media *m, struct store *store, const char *key)
{
    uint8_t *blob;
    size_t size;
    if (store_get(store, key, &blob, &size) < 0)
        return -ENOENT;
    int ret = index_deserialize(blob, size, &m->index);
    free(blob);
    if (ret == 0 && m->index->time_base.num == m->time_base.num &&
        m->index->time_base.den == m->time_base.den)
        return 0;
    index_free(&m->index);
    log_warn("%s: stored index is damaged, rescanning", m->path);
    return -EINVAL;
}

static int load_index(struct media *m, AVFormatContext *fmt, struct store *store)
{
    char key[256], extra[32];
    snprintf(extra, sizeof(extra), "s%d", m->stream);
    store_key(key, sizeof(key), "index", &m->st, extra);
    struct store_lock *l = NULL;
    if (store && stored_index(m, store, key) == 0)
        return 0;
    /* Another daemon on the same store may be scanning it: wait, then take its index. */
    if (store && store_lock(store, key, &l) == 0 && stored_index(m, store, key) == 0) {
        store_unlock(&l);
        return 0;
    }
    discard_others(fmt, m->stream);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint8_t *blob;
    size_t size;
    int ret = index_build(fmt, m->stream, &m->index);
    if (ret == 0) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        log_info("%s: indexed stream %d, %d frames in %.2f s", m->path, m->stream,
                 m->index->nb_frames,
                 (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    if (ret == 0 && l && index_serialize(m->index, &blob, &size) == 0) {
        if (store_put(l, blob, size) < 0)
            log_warn("%s: cannot save its index in the store", m->path);
        free(blob);
    }
    store_unlock(&l);
    return ret;
}

static int fill_stream(struct media *m, const AVStream *st)
{
    m->par = avcodec_parameters_alloc();
    if (!m->par || avcodec_parameters_copy(m->par, st->codecpar) < 0)
        return -ENOMEM;
    m->time_base = st->time_base;
    m->sar = st->sample_aspect_ratio;
    m->width = st->codecpar->width;
    m->height = st->codecpar->height;
    m->pix_fmt = st->codecpar->format;
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(m->pix_fmt);
    m->bit_depth = d ? d->comp[0].depth : 8;
    return 0;
}

/* Fills everything past the stat; a source FFmpeg cannot use ends in set_error. */
static int probe(struct media *m, int want, struct store *store)
{
    AVFormatContext *fmt = NULL;
    char msg[256];
    int ret = open_input(m, &fmt, 1);
    if (ret < 0) {
        snprintf(msg, sizeof(msg), "cannot open: %s", av_err2str(ret));
        return set_error(m, msg);
    }
    ret = pick_stream(m, fmt, want);
    if (ret < 0) {
        avformat_close_input(&fmt);
        return ret == -ENOMEM ? ret : set_error(m, "no video stream");
    }
    m->stream = ret;
    const AVStream *st = fmt->streams[m->stream];
    ret = fill_stream(m, st);
    if (ret == 0 && (m->width <= 0 || m->height <= 0 || m->pix_fmt == AV_PIX_FMT_NONE)) {
        avformat_close_input(&fmt);
        m->stream = -1;
        return set_error(m, "video stream has no size or pixel format (unsupported codec?)");
    }
    if (ret == 0 && (ret = load_index(m, fmt, store)) < 0 && ret != -ENOMEM) {
        avformat_close_input(&fmt);
        m->stream = -1;
        return set_error(m, "no decodable frame in the video stream");
    }
    if (ret == 0)
        ret = meta_json_new(fmt, m->stream, m->video_streams, m->nb_video_streams, m->index,
                            &m->meta_json);
    avformat_close_input(&fmt);
    return ret;
}

int media_open(const char *path, int fd, int stream, struct store *store, struct media **out)
{
    struct media *m = calloc(1, sizeof(*m));
    if (!m) {
        close(fd);
        return -ENOMEM;
    }
    m->refcount = 1;
    m->fd = fd;
    m->stream = -1;
    m->id = atomic_fetch_add(&next_id, 1);
    m->path = strdup(path);
    int ret = -ENOMEM;
    if (!m->path)
        goto fail;
    if (fstat(fd, &m->st) < 0) {
        ret = -errno;
        goto fail;
    }
    ret = probe(m, stream, store);
    if (ret < 0)
        goto fail;
    if (!m->error)
        log_debug("%s: stream %d, %d frames, %dx%d %s", path, m->stream, m->index->nb_frames,
                  m->width, m->height, av_get_pix_fmt_name(m->pix_fmt));
    *out = m;
    return 0;
fail:
    media_unref(&m);
    return ret;
}

struct media *media_ref(struct media *m)
{
    __atomic_add_fetch(&m->refcount, 1, __ATOMIC_RELAXED);
    return m;
}

void media_unref(struct media **mp)
{
    struct media *m = *mp;
    if (!m)
        return;
    *mp = NULL;
    if (__atomic_sub_fetch(&m->refcount, 1, __ATOMIC_ACQ_REL))
        return;
    if (m->fd >= 0)
        close(m->fd);
    free(m->path);
    free(m->error);
    free(m->meta_json);
    free(m->video_streams);
    avcodec_parameters_free(&m->par);
    index_free(&m->index);
    free(m);
}

int media_nb_frames(const struct media *m)
{
    return m->error ? 0 : m->index->nb_frames;
}

int media_open_demuxer(const struct media *m, AVFormatContext **out)
{
    if (m->error)
        return -EIO;
    /* Deleted or renamed over (no link left): its bytes cannot change, keep reading them.
     * Still linked with a new ctime: written in place, or its mode changed; either way
     * what the index says may be gone. */
    struct stat st;
    if (fstat(m->fd, &st) < 0 ||
        (st.st_nlink > 0 && (st.st_size != m->st.st_size ||
                             st.st_ctim.tv_sec != m->st.st_ctim.tv_sec ||
                             st.st_ctim.tv_nsec != m->st.st_ctim.tv_nsec))) {
        log_error("%s: changed in place since it was indexed", m->path);
        return -EIO;
    }
    AVFormatContext *fmt;
    int ret = open_input(m, &fmt, 0);
    if (ret < 0) {
        log_error("%s: cannot reopen: %s", m->path, av_err2str(ret));
        return averror_errno(ret);
    }
    if ((unsigned)m->stream >= fmt->nb_streams) {
        log_error("%s: stream %d vanished (source changed?)", m->path, m->stream);
        avformat_close_input(&fmt);
        return -EIO;
    }
    discard_others(fmt, m->stream);
    *out = fmt;
    return 0;
}

const char *media_annexb_filter(enum AVCodecID id)
{
    return id == AV_CODEC_ID_H264 ? "h264_mp4toannexb"
           : id == AV_CODEC_ID_HEVC ? "hevc_mp4toannexb"
                                    : NULL;
}
