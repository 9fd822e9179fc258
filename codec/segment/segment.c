/* Segments: clips cut by time, materialized into the disk store when first opened, by
 * copy.c (stream copy) or transcode.c, into output.c's muxer, with audio.c's audio.
 *
 * The store key holds the source's stat, the stream, the frame range (not the seconds of
 * the name, so "10-12.mp4" and "10.0-12.00.mp4" share a file) and a hash of the settings.
 * Concurrent opens of one key share one producer through a table of jobs in flight. */
#include "segment.h"
#include "config.h"
#include "copy.h"
#include "encode.h"
#include "log.h"
#include "media.h"
#include "range.h"
#include "store.h"
#include "transcode.h"

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

#define KEY_MAX 256
/* Bumped when the bytes a request produces change, so stale store files are not served. */
#define KEY_KIND "seg1"
/* One producer of a key; openers of the same key wait for it. */
struct job {
    struct job *next;
    char key[KEY_MAX];
    int users; /* the producer and its waiters; the last one frees */
    int done, ret;
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

/* ------------------------------------------------------------------ names */

static enum AVCodecID encode_codec_id(enum encode_codec c)
{
    return c == ENCODE_HEVC ? AV_CODEC_ID_HEVC : c == ENCODE_AV1 ? AV_CODEC_ID_AV1
                                                                 : AV_CODEC_ID_H264;
}

int segment_valid(const struct media *m, const struct segment_req *req)
{
    const struct output_container *c = output_container_find(req->container);
    if (!c || !(req->start >= 0) || !(req->end > req->start))
        return 0;
    if (m->error)
        return 1; /* a fine name of a broken source: opening it gives EIO */
    if (req->copy && !output_container_takes(c, m->par->codec_id))
        return 0;
    struct range r;
    return range_find(m, req, &r) == 0;
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
    if (!strcmp(cfg->segment_audio, "copy")) {
        sg->audio = AUDIO_COPY;
    } else if (!strcmp(cfg->segment_audio, "aac")) {
        sg->audio = AUDIO_AAC;
    } else if (!strcmp(cfg->segment_audio, "none")) {
        sg->audio = AUDIO_NONE;
    } else {
        log_error("segments: segment_audio must be copy, aac or none, not %s",
                  cfg->segment_audio);
        ret = -EINVAL;
        goto fail;
    }
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

/* ------------------------------------------------------------------ open */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Writes the segment into the store under key and opens it. */
static int produce(struct segmenter *sg, struct media *m, const struct segment_req *req,
                   const struct range *r, const char *key, int *fd)
{
    const struct output_container *c = output_container_find(req->container);
    char *tmp = NULL;
    int tfd, fell_back = 0;
    const char *encoder = "copy";
    double t0 = now_s();
    int ret = store_tmp(sg->store, &tfd, &tmp);
    if (ret < 0) {
        log_error("segments: no temporary file in the store: %s", strerror(-ret));
        return ret;
    }
    close(tfd); /* the muxer opens it by name */
    struct transcode_opts to = {sg->reader, &sg->enc, sg->sessions, sg->audio};
    ret = req->copy ? copy_write(sg->audio, m, r, c, tmp)
                    : transcode_write(&to, m, r, c, tmp, &fell_back, &encoder);
    /* Opened before the commit, so an eviction right after it cannot take it from us. */
    int rfd = ret == 0 ? open(tmp, O_RDONLY | O_CLOEXEC) : -1;
    if (ret == 0 && rfd < 0)
        ret = -errno;
    if (ret == 0 && (ret = store_commit(sg->store, tmp, key)) < 0)
        log_error("segments: cannot commit %s to the store: %s", key, strerror(-ret));
    if (ret < 0) {
        if (rfd >= 0)
            close(rfd);
        store_abort(sg->store, tmp);
        free(tmp);
        return ret == -ENOMEM ? ret : -EIO;
    }
    free(tmp);
    atomic_fetch_add(&sg->produced, 1);
    if (req->copy)
        atomic_fetch_add(&sg->copies, 1);
    else if (!strstr(encoder, "nvenc"))
        atomic_fetch_add(&sg->cpu_encodes, 1);
    else
        atomic_fetch_add(&sg->nvenc_encodes, 1);
    if (fell_back)
        atomic_fetch_add(&sg->nvenc_fallbacks, 1);
    struct stat st;
    fstat(rfd, &st);
    log_info("%s: segment %g-%g.%s%s: frames %d-%d, %s, %lld bytes in %.2f s", m->path,
             req->start, req->end, req->copy ? "copy." : "", req->container, r->first,
             r->last - 1, encoder, (long long)st.st_size, now_s() - t0);
    *fd = rfd;
    return 0;
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

int segment_open(struct segmenter *sg, struct media *m, const struct segment_req *req,
                 int *fd)
{
    if (!segment_valid(m, req))
        return -ENOENT;
    if (m->error)
        return -EIO;
    /* segment_valid cannot see the settings: AV1 has no mapping in MPEG-TS in FFmpeg 5.1. */
    if (!req->copy && !output_container_takes(output_container_find(req->container),
                                       encode_codec_id(sg->enc.codec)))
        return -ENOENT;
    struct range r;
    char key[KEY_MAX];
    if (range_find(m, req, &r) < 0)
        return -ENOENT;
    make_key(sg, m, req, &r, key);
    /* A file that another opener produced can be evicted before we open it (a tiny store):
     * then we produce it again ourselves, a bounded number of times. */
    for (int tries = 0; tries < 3; tries++) {
        if (store_open(sg->store, key, fd) == 0) {
            atomic_fetch_add(&sg->store_hits, 1);
            return 0;
        }
        pthread_mutex_lock(&sg->lock);
        struct job *job = find_job(sg, key);
        if (job) {
            job->users++;
            while (!job->done)
                pthread_cond_wait(&sg->done, &sg->lock);
            int ret = job->ret;
            if (!--job->users)
                free(job);
            pthread_mutex_unlock(&sg->lock);
            if (ret < 0)
                return ret;
            continue;
        }
        job = calloc(1, sizeof(*job));
        if (!job) {
            pthread_mutex_unlock(&sg->lock);
            return -ENOMEM;
        }
        snprintf(job->key, sizeof(job->key), "%s", key);
        job->users = 1;
        job->next = sg->jobs;
        sg->jobs = job;
        pthread_mutex_unlock(&sg->lock);

        int ret = produce(sg, m, req, &r, key, fd);

        pthread_mutex_lock(&sg->lock);
        job->done = 1;
        job->ret = ret;
        unlink_job(sg, job);
        pthread_cond_broadcast(&sg->done);
        if (!--job->users)
            free(job);
        pthread_mutex_unlock(&sg->lock);
        return ret;
    }
    return -EIO;
}

int segment_size(struct segmenter *sg, const struct media *m, const struct segment_req *req,
                 uint64_t *size)
{
    struct range r;
    char key[KEY_MAX];
    if (m->error || !segment_valid(m, req) || range_find(m, req, &r) < 0)
        return -ENOENT;
    make_key(sg, m, req, &r, key);
    int fd, ret = store_open(sg->store, key, &fd);
    if (ret < 0)
        return ret;
    struct stat st;
    ret = fstat(fd, &st) < 0 ? -errno : 0;
    close(fd);
    if (ret == 0)
        *size = (uint64_t)st.st_size;
    return ret;
}
