/* Segments: clips cut by time, materialized into the disk store when first opened, by
 * copy.c (stream copy) or transcode.c, into output.c's muxer, with audio.c's audio.
 *
 * The store key holds the source's stat, the stream, the frame range (not the seconds of
 * the name, so "10-12.mp4" and "10.0-12.00.mp4" share a file) and a hash of the settings.
 * Concurrent opens of one key share one producer through a table of jobs in flight. */
#include "segment.h"
#include "copy.h"
#include "encode.h"
#include "log.h"
#include "media.h"
#include "progress.h"
#include "range.h"
#include "store.h"
#include "transcode.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
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
#define KEY_KIND "seg2"
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
    struct encode_settings enc;
    enum audio_mode audio;
    uint64_t settings_hash;
    struct encode_sessions *sessions;
    pthread_mutex_t lock;
    pthread_cond_t done; /* a job finished */
    struct job *jobs;
    /* Transcodes at once, in arrival order: ticket t starts once t < transcodes_done +
     * max_transcodes (README, Memory: each CPU encoder holds its own frames). */
    int max_transcodes;
    uint64_t transcode_tickets, transcodes_done;
    pthread_cond_t transcode_turn;
    atomic_uint_fast64_t produced, store_hits, copies, nvenc_encodes, cpu_encodes,
        nvenc_fallbacks;
};

/* ------------------------------------------------------------------ names */

static enum AVCodecID encode_codec_id(enum encode_codec c)
{
    return c == ENCODE_HEVC ? AV_CODEC_ID_HEVC : c == ENCODE_AV1 ? AV_CODEC_ID_AV1
                                                                 : AV_CODEC_ID_H264;
}

/* 0 with *r set; -EIO for a fine name of a broken source; -ENOENT for a name that cannot
 * exist for m with sg's settings. */
static int find(const struct segmenter *sg, const struct media *m, const struct segment_req *req,
                struct range *r)
{
    const struct output_container *c = output_container_find(req->container);
    if (!c || !(req->start >= 0) || !(req->end > req->start))
        return -ENOENT;
    /* What the segment holds must fit the container: AV1 has no mapping in MPEG-TS in
     * FFmpeg 5.1, whether copied from the source or encoded with segment_codec=av1. */
    if (!req->copy && !output_container_takes(c, encode_codec_id(sg->enc.codec)))
        return -ENOENT;
    if (m->error)
        return -EIO;
    if (req->copy && !output_container_takes(c, m->par->codec_id))
        return -ENOENT;
    return range_find(m, req, r) < 0 ? -ENOENT : 0;
}

int segment_valid(const struct segmenter *sg, const struct media *m, const struct segment_req *req)
{
    struct range r;
    return find(sg, m, req, &r) != -ENOENT;
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

int segmenter_new(struct reader *reader, struct store *store, const struct segment_opts *opts,
                  struct segmenter **out)
{
    struct segmenter *sg = calloc(1, sizeof(*sg));
    if (!sg)
        return -ENOMEM;
    sg->reader = reader;
    sg->store = store;
    sg->enc = opts->enc;
    sg->audio = opts->audio;
    char settings[192];
    snprintf(settings, sizeof(settings), "%d/%s/%d/%d/%d/%d/%d/%d", (int)sg->enc.codec,
             sg->enc.preset, (int)sg->enc.rc, sg->enc.quality, sg->enc.bitrate_kbps,
             sg->enc.gop, sg->enc.bframes, (int)sg->audio);
    sg->settings_hash = fnv1a(settings);
    int ret = encode_sessions_new(opts->max_nvenc_sessions, opts->nvenc_wait_ms, &sg->sessions);
    if (ret < 0)
        goto fail;
    /* SVT-AV1 prints its banner and settings to stderr at its default level. */
    setenv("SVT_LOG", "1", 0);
    pthread_mutex_init(&sg->lock, NULL);
    pthread_cond_init(&sg->done, NULL);
    pthread_cond_init(&sg->transcode_turn, NULL);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    /* An encoder takes every core already: more at once only add their frames. */
    sg->max_transcodes = cores >= 32 ? 4 : cores >= 16 ? 2 : 1;
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
    pthread_cond_destroy(&sg->transcode_turn);
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

/* The segment's path in the mount, for stats.json and log lines: the stream's own when the
 * source has several. */
static void segment_path(const struct media *m, const struct segment_req *req, char *buf,
                         size_t size)
{
    char stream[32] = "";
    if (m->nb_video_streams > 1)
        snprintf(stream, sizeof(stream), "/streams/%d", m->stream);
    snprintf(buf, size, "%s%s/segments/%.15g-%.15g.%s%s", m->path, stream, req->start,
             req->end, req->copy ? "copy." : "", req->container);
}

/* Waits for a transcode's turn, in arrival order. */
static void transcode_turn_take(struct segmenter *sg)
{
    pthread_mutex_lock(&sg->lock);
    uint64_t t = sg->transcode_tickets++;
    while (t >= sg->transcodes_done + (uint64_t)sg->max_transcodes)
        pthread_cond_wait(&sg->transcode_turn, &sg->lock);
    pthread_mutex_unlock(&sg->lock);
}

/* An encoder's frames go back to the system when it closes: glibc keeps free memory at
 * the top of each thread's arena (main.c's mallopt), and the next encoder, on another
 * request thread, would map its own. */
static void transcode_turn_give(struct segmenter *sg)
{
    malloc_trim(0);
    pthread_mutex_lock(&sg->lock);
    sg->transcodes_done++;
    pthread_cond_broadcast(&sg->transcode_turn);
    pthread_mutex_unlock(&sg->lock);
}

static int transcode_limited(struct segmenter *sg, const struct transcode_opts *to,
                             struct media *m, const struct range *r,
                             const struct output_container *c, const char *tmp, int *fell_back,
                             const char **encoder)
{
    transcode_turn_take(sg);
    int ret = transcode_write(to, m, r, c, tmp, fell_back, encoder);
    transcode_turn_give(sg);
    return ret;
}

/* Makes the segment named name into a temporary file of the store (stats.json lists it
 * meanwhile). */
static int write_tmp(struct segmenter *sg, struct media *m, const struct segment_req *req,
                     const struct range *r, const char *name, const char *tmp, int *fell_back,
                     const char **encoder)
{
    const struct output_container *c = output_container_find(req->container);
    uint64_t total = req->copy ? (uint64_t)(r->end_packet - r->start_packet)
                               : (uint64_t)(r->last - r->first);
    struct progress *p = progress_begin(PROGRESS_SEGMENT, name, total,
                                        req->copy ? "packets" : "frames");
    /* The muxer writes by name; the caller's descriptor, still open, serves the result. */
    struct transcode_opts to = {sg->reader, &sg->enc, sg->sessions, sg->audio, p};
    int ret = req->copy ? copy_write(sg->audio, m, r, c, tmp, p)
                        : transcode_limited(sg, &to, m, r, c, tmp, fell_back, encoder);
    progress_end(&p);
    return ret;
}

/* Writes the segment into the store under key, holding its store lock: *fd and *size,
 * the file (unlinked when too large for the store). */
static int produce_locked(struct segmenter *sg, struct media *m, const struct segment_req *req,
                          const struct range *r, struct store_lock *l, int *fd,
                          uint64_t *size)
{
    const char *tmp, *encoder = "copy";
    int tfd, fell_back = 0;
    double t0 = now_s();
    char name[PROGRESS_NAME_MAX];
    segment_path(m, req, name, sizeof(name));
    int ret = store_tmp(l, &tfd, &tmp);
    if (ret < 0) {
        log_error("segments: no temporary file in the store: %s", strerror(-ret));
        return ret == -ENOMEM ? ret : -EIO;
    }
    ret = write_tmp(sg, m, req, r, name, tmp, &fell_back, &encoder);
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
    log_info("%s: frames %d-%d, %s, %" PRIu64 " bytes in %.2f s", name, r->first, r->last - 1,
             encoder, *size, now_s() - t0);
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
    struct range r;
    char key[KEY_MAX];
    int ret = find(sg, m, req, &r);
    if (ret < 0)
        return ret;
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
        ret = produce(sg, m, req, &r, key, &job->fd, &job->size);
        pthread_mutex_lock(&sg->lock);
        job->done = 1;
        job->ret = ret;
        unlink_job(sg, job);
        pthread_cond_broadcast(&sg->done);
    } else {
        pthread_mutex_unlock(&sg->lock);
        return -ENOMEM;
    }
    ret = job_take(job, fd, size);
    job_put(job);
    pthread_mutex_unlock(&sg->lock);
    return ret;
}

int segment_size(struct segmenter *sg, const struct media *m, const struct segment_req *req,
                 uint64_t *size)
{
    struct range r;
    char key[KEY_MAX];
    if (find(sg, m, req, &r) < 0)
        return -ENOENT;
    make_key(sg, m, req, &r, key);
    return store_size(sg->store, key, size);
}
