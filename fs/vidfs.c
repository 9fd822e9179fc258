/* The mount's state: built from the settings before the mount, started in the daemon. */
#include "vidfs.h"
#include "bufpool.h"
#include "frame_cache.h"
#include "image_ahead.h"
#include "decode.h"
#include "idle.h"
#include "log.h"
#include "media_table.h"
#include "source.h"
#include "pool.h"
#include "reader.h"
#include "segment.h"
#include "size_table.h"
#include "store.h"
#if VIDFS_HAVE_NVDEC
#include "cuda.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The frames of all raw frame files being read together (README, Memory): room for two of
 * the largest views (2^25 pixels, 3 bytes each) at once. */
#define FRAME_BUFFERS_BYTES ((size_t)256 << 20)

/* The gpus setting as the pool's list; none for "all", which vidfs_start counts: CUDA must
 * not start before the daemon forks. */
static void gpus_from_config(const struct config_list *l, struct pool_opts *po)
{
    po->ngpus = l->n < DECODE_MAX_GPUS ? l->n : DECODE_MAX_GPUS;
    memcpy(po->gpus, l->v, sizeof(int) * (size_t)po->ngpus);
}

/* The backend setting's name, as decode_backends_allowed takes it. */
static const char *backend_name(enum config_backend b)
{
#define BACKEND_NAME(c, name) [CONFIG_##c] = name,
    static const char *const names[] = {CONFIG_BACKENDS(BACKEND_NAME)};
#undef BACKEND_NAME
    return names[b];
}

#if VIDFS_HAVE_NVDEC
/* `gpus` against the GPUs there are: "all" becomes their list, ordinals past the last one
 * are dropped with a warning. In the daemon, after any fork: CUDA does not survive one. */
static void init_gpus(struct vidfs *fs)
{
    int count = cuda_device_count(), n = 0;
    struct pool_opts po;
    if (count <= 0)
        return;
    gpus_from_config(&fs->cfg.gpus, &po);
    if (!po.ngpus) /* "all" */
        for (int i = 0; i < count && i < DECODE_MAX_GPUS; i++)
            po.gpus[n++] = i;
    for (int i = 0; i < po.ngpus; i++) {
        if (po.gpus[i] < count)
            po.gpus[n++] = po.gpus[i];
        else
            log_warn("gpus: there is no GPU %d (%d found); not using it", po.gpus[i], count);
    }
    if (!n)
        po.gpus[n++] = 0;
    pool_spread(fs->pool, po.gpus, n, cuda_nvdec_engines(po.gpus[0]));
    log_info("NVDEC decoders spread over %d GPU%s", n, n > 1 ? "s" : "");
}
#endif

/* The backends the `backend` setting allows. A backend named alone (not auto) must be usable
 * here, or the mount does not start: backend=nvdec means NVDEC or nothing. */
static int choose_backends(const char *setting, const struct decode_backend **out)
{
    int ret = decode_backends_allowed(setting, out);
    if (ret < 0) {
        log_error("backend=%s: this vidfs is built without it (it has:%s)", setting,
                  VIDFS_HAVE_NVDEC ? " auto cpu nvdec" : " auto cpu");
        return -ENOTSUP;
    }
    if (!strcmp(setting, "auto") || !out[0]->probe || (ret = out[0]->probe()) == 0)
        return 0;
    log_error("backend=%s: no usable GPU here (%s); backend=auto decodes on the CPU where "
              "there is none",
              setting, strerror(-ret));
    return ret;
}

/* The [segments] settings as the segment layer's options (the key table has checked them). */
static int segment_opts_from_config(const struct config *cfg, struct segment_opts *o)
{
    static const enum encode_codec codecs[] = {[CONFIG_SEGMENT_H264] = ENCODE_H264,
                                               [CONFIG_SEGMENT_HEVC] = ENCODE_HEVC,
                                               [CONFIG_SEGMENT_AV1] = ENCODE_AV1};
    static const enum encode_want wants[] = {[CONFIG_ENCODER_AUTO] = ENCODE_WANT_AUTO,
                                             [CONFIG_ENCODER_NVENC] = ENCODE_WANT_NVENC,
                                             [CONFIG_ENCODER_CPU] = ENCODE_WANT_CPU};
    static const enum encode_rc rcs[] = {[CONFIG_RC_CRF] = ENCODE_RC_CRF,
                                         [CONFIG_RC_CBR] = ENCODE_RC_CBR,
                                         [CONFIG_RC_VBR] = ENCODE_RC_VBR,
                                         [CONFIG_RC_CONSTQP] = ENCODE_RC_CONSTQP};
    static const enum audio_mode audios[] = {[CONFIG_AUDIO_COPY] = AUDIO_COPY,
                                             [CONFIG_AUDIO_AAC] = AUDIO_AAC,
                                             [CONFIG_AUDIO_NONE] = AUDIO_NONE};
    *o = (struct segment_opts){
        .enc = {.codec = codecs[cfg->segment_codec],
                .want = wants[cfg->segment_encoder],
                .rc = rcs[cfg->segment_rc],
                .quality = (int)cfg->segment_quality,
                .bitrate_kbps = (int)cfg->segment_bitrate,
                .gop = (int)cfg->segment_gop,
                .bframes = (int)cfg->segment_bframes},
        .audio = audios[cfg->segment_audio],
        .max_nvenc_sessions = (int)cfg->max_nvenc_sessions,
        .nvenc_wait_ms = (int)cfg->nvenc_wait_ms,
    };
    if (strlen(cfg->segment_preset) >= sizeof(o->enc.preset)) {
        log_error("segment_preset=%s: expected a preset name", cfg->segment_preset);
        return -EINVAL;
    }
    snprintf(o->enc.preset, sizeof(o->enc.preset), "%s", cfg->segment_preset);
    return 0;
}

int vidfs_new(const char *source, const char *mountpoint, struct config *cfg,
              struct vidfs **out)
{
    struct vidfs *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return -ENOMEM;
    fs->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    int ret = -ENOMEM;
    fs->src_fd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fs->src_fd < 0) {
        ret = -errno;
        log_error("cannot open source directory %s: %s", source, strerror(-ret));
        goto fail;
    }
    fs->source = realpath(source, NULL);
    fs->mountpoint = mountpoint ? realpath(mountpoint, NULL) : NULL;
    if (!fs->source || (mountpoint && !fs->mountpoint) ||
        (ret = source_new(fs->src_fd, fs->source, (int)fs->cfg.follow_symlinks_out,
                          &fs->src)) < 0)
        goto fail;
    static const enum format formats[] = {
        [CONFIG_FRAME_NV12] = FORMAT_NV12, [CONFIG_FRAME_YUV420P] = FORMAT_YUV420P,
        [CONFIG_FRAME_GRAY] = FORMAT_GRAY, [CONFIG_FRAME_RGB] = FORMAT_RGB,
        [CONFIG_FRAME_RGBP] = FORMAT_RGBP, [CONFIG_FRAME_P010] = FORMAT_P010,
        [CONFIG_FRAME_PNG] = FORMAT_PNG,   [CONFIG_FRAME_JPG] = FORMAT_JPG,
    };
    fs->list_format = formats[fs->cfg.frame_format];
    struct pool_opts po = {
        .size = (int)fs->cfg.pool_size, /* 0 (auto): the pool asks the machine */
        .decode = {.threads = (int)fs->cfg.threads,
                   .max_width = (int)fs->cfg.max_width,
                   .max_height = (int)fs->cfg.max_height},
    };
    if ((ret = choose_backends(backend_name(fs->cfg.backend), po.backends)) < 0)
        goto fail;
    gpus_from_config(&fs->cfg.gpus, &po);
    po.decode.gpu = po.ngpus ? po.gpus[0] : 0;
    /* One read-ahead thread per pooled decoder: as many files read ahead at once as can
     * be decoded at once (7 sequential readers keep 7 NVDEC engines busy). */
    struct reader_opts ro = {.readahead = (int)fs->cfg.readahead, .workers = 0};
    struct segment_opts so;
    if ((ret = segment_opts_from_config(&fs->cfg, &so)) < 0)
        goto fail;
    if ((ret = frame_cache_new((size_t)fs->cfg.cache_mb << 20, &fs->cache)) < 0)
        goto fail;
    po.decode.buffers = fs->cache;
    if ((ret = store_new(fs->cfg.cache_dir, (uint64_t)fs->cfg.store_mb << 20, &fs->store)) < 0 ||
        (ret = pool_new(&po, &fs->pool)) < 0 ||
        (ret = reader_new(fs->pool, fs->cache, &ro, &fs->reader)) < 0 ||
        (ret = segmenter_new(fs->reader, fs->store, &so, &fs->segmenter)) < 0 ||
        (ret = media_table_new(fs->source, fs->src, fs->store, &fs->media)) < 0 ||
        (ret = size_table_new(&fs->sizes)) < 0 ||
        (ret = bufpool_new(FRAME_BUFFERS_BYTES, &fs->bufs)) < 0 ||
        (ret = image_ahead_new(fs->reader, (int)fs->cfg.readahead, &fs->images)) < 0)
        goto fail;
    *out = fs;
    return 0;
fail:
    vidfs_free(&fs);
    return ret;
}

void vidfs_free(struct vidfs **fsp)
{
    struct vidfs *fs = *fsp;
    if (!fs)
        return;
    idle_free(&fs->idle);
    image_ahead_free(&fs->images);
    media_table_free(&fs->media);
    size_table_free(&fs->sizes);
    segmenter_free(&fs->segmenter);
    reader_free(&fs->reader);
    pool_free(&fs->pool);
    frame_cache_free(&fs->cache);
    store_free(&fs->store);
    bufpool_free(&fs->bufs);
    if (fs->src_fd >= 0)
        close(fs->src_fd);
    source_free(&fs->src);
    free(fs->source);
    free(fs->mountpoint);
    config_free(&fs->cfg);
    free(fs);
    *fsp = NULL;
}

void vidfs_start(struct vidfs *fs)
{
    /* Mounted by now: its device is known, and source lookups keep off it. */
    if (fs->mountpoint)
        source_avoid_mount(fs->src, fs->mountpoint);
    if (idle_new(fs, &fs->idle) < 0)
        log_warn("no idle watcher thread: memory is not given back after bursts");
#if VIDFS_HAVE_NVDEC
    const struct decode_backend *be[DECODE_MAX_BACKENDS + 1];
    decode_backends_allowed(backend_name(fs->cfg.backend), be);
    for (int i = 0; be[i]; i++)
        if (be[i]->gpu) {
            init_gpus(fs);
            break;
        }
#endif
}
