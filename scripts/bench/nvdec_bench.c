/* nvdec_bench: in-process throughput and correctness of the NVDEC backend.
 *
 *   nvdec_bench [--threads 1,7,14] [--modes LIST] [--view FMT:WxH] [--repeat R]
 *               [--json FILE] FILE...
 *   nvdec_bench --check [--frames N] FILE...
 *   nvdec_bench --reuse CLIPS [--frames N] FILE
 *   nvdec_bench --seek N [--threads 1,8] FILE...
 *
 * Throughput: T threads, thread i decoding FILE[i % n] whole, in each mode:
 *   nvdec-gpu    decode_nvdec, frames left on the GPU
 *   nvdec-host   decode_nvdec + convert_frame to nv12 in host memory (pinned staging)
 *   nvdec-view   decode_nvdec + convert_frame to --view (default rgbp:224x224)
 *   ffmpeg-gpu   libavcodec with hwaccel cuda (one AVHWDeviceContext shared by all threads)
 *   ffmpeg-host  the same + av_hwframe_transfer_data, as FFmpeg copies frames to host
 * and prints frames/s (the best of R runs), the ratios to FFmpeg's paths, and a JSON line
 * per run. VIDFS_CUDA_COPY=direct in the environment makes convert_cuda copy to pageable
 * memory instead of its pinned staging, to measure what the staging buys.
 *
 * --check compares every frame of decode_nvdec with decode_cpu: pts, and nv12 / yuv420p /
 * gray (p010 for 10-bit) bytes must be identical; rgb and scaled views report PSNR. One
 * NVDEC decoder is kept across the files (reconfigured where they fit, as the pool does),
 * and each file is decoded again after a flush and after a flush in mid-stream.
 *
 * --reuse decodes CLIPS clips (the first N frames, default 60, of FILE) with one decoder
 * reconfigured from clip to clip, then with a decoder opened and closed for each clip.
 *
 * --seek is the in-process random access peer (the seed's frame sampling, torchcodec's
 * method): T threads, thread i on FILE[i % n], each fetching N random frames (seeded by i)
 * with FFmpeg's hwaccel cuda: av_seek_frame back to the keyframe, flush, decode forward to
 * the frame's pts, copy it to host memory. The packet scan that lists the pts is not timed
 * (vidfs keeps its index on disk too). */
#include "convert.h"
#include "decode.h"
#include "format.h"
#include "log.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libavformat/avformat.h>
#include <libavutil/hwcontext.h>
#include <libavutil/pixdesc.h>

struct input {
    AVFormatContext *fmt;
    int stream;
    AVPacket *pkt;
};

static int input_open(const char *path, struct input *in)
{
    memset(in, 0, sizeof(*in));
    int ret = avformat_open_input(&in->fmt, path, NULL, NULL);
    if (ret >= 0)
        ret = avformat_find_stream_info(in->fmt, NULL);
    if (ret >= 0)
        ret = in->stream = av_find_best_stream(in->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    in->pkt = av_packet_alloc();
    if (ret < 0 || !in->pkt) {
        fprintf(stderr, "%s: %s\n", path, av_err2str(ret));
        avformat_close_input(&in->fmt);
        av_packet_free(&in->pkt);
        return -EIO;
    }
    return 0;
}

static void input_close(struct input *in)
{
    avformat_close_input(&in->fmt);
    av_packet_free(&in->pkt);
}

static const AVCodecParameters *input_par(const struct input *in)
{
    return in->fmt->streams[in->stream]->codecpar;
}

/* The next packet of the stream in in->pkt, or NULL at the end. */
static AVPacket *input_read(struct input *in)
{
    for (;;) {
        av_packet_unref(in->pkt);
        if (av_read_frame(in->fmt, in->pkt) < 0)
            return NULL;
        if (in->pkt->stream_index == in->stream)
            return in->pkt;
    }
}

/* A backend decoding an input, pulled a frame at a time. */
struct iter {
    const struct decode_backend *b;
    void *priv;
    struct input *in;
    int pending, eof;
};

/* 0 with a frame, -ENODATA at the end, other negative errno on failure. */
static int iter_next(struct iter *it, AVFrame *f)
{
    for (;;) {
        int ret = it->b->receive_frame(it->priv, f);
        if (ret != -EAGAIN)
            return ret;
        if (it->eof)
            return -EIO;
        if (!it->pending) {
            if (!input_read(it->in)) {
                it->eof = 1;
                ret = it->b->send_packet(it->priv, NULL);
                if (ret < 0 && ret != -ENODATA)
                    return ret;
                continue;
            }
            it->pending = 1;
        }
        ret = it->b->send_packet(it->priv, it->in->pkt);
        if (ret == -EAGAIN)
            continue;
        it->pending = 0;
        if (ret < 0 && ret != -EINVAL && ret != -EIO)
            return ret;
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- throughput ---------------------------------------------------------------------- */

enum mode { NVDEC_GPU, NVDEC_HOST, NVDEC_VIEW, FFMPEG_GPU, FFMPEG_HOST, FFMPEG_SEEK, MODE_COUNT };
static const char *const mode_names[MODE_COUNT] = {
    "nvdec-gpu", "nvdec-host", "nvdec-view", "ffmpeg-gpu", "ffmpeg-host", "ffmpeg-seek",
};
/* Modes run unless --modes names others; ffmpeg-seek runs with --seek. */
#define DEFAULT_MODES ((1u << FFMPEG_SEEK) - 1)

static AVBufferRef *hw_device;
static struct convert_req view_req = {.format = FORMAT_RGBP, .width = 224, .height = 224};

struct job {
    const char *path;
    enum mode mode;
    long frames;
    long limit; /* stop after this many frames, 0: the whole file */
    unsigned seed; /* ffmpeg-seek: which random frames */
    int error;
};

static enum AVPixelFormat get_cuda_format(AVCodecContext *ctx, const enum AVPixelFormat *fmts)
{
    (void)ctx;
    for (const enum AVPixelFormat *p = fmts; *p != AV_PIX_FMT_NONE; p++)
        if (*p == AV_PIX_FMT_CUDA)
            return *p;
    fprintf(stderr, "ffmpeg: no CUDA format offered\n");
    return AV_PIX_FMT_NONE;
}

/* libavcodec's decoder for the input, decoding on hw_device. */
static int ffmpeg_open(struct input *in, AVCodecContext **out)
{
    const AVCodecParameters *par = input_par(in);
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    AVCodecContext *ctx = avcodec_alloc_context3(codec);
    int ret = ctx ? avcodec_parameters_to_context(ctx, par) : AVERROR(ENOMEM);
    if (ret >= 0) {
        ctx->hw_device_ctx = av_buffer_ref(hw_device);
        ctx->get_format = get_cuda_format;
        ret = avcodec_open2(ctx, codec, NULL);
    }
    if (ret < 0)
        avcodec_free_context(&ctx);
    *out = ctx;
    return ret;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The stream's pts in display order (packet scan), then the demuxer back at the start. */
static int list_pts(struct input *in, int64_t **out, int *count)
{
    int n = 0, cap = 0;
    int64_t *pts = NULL;
    for (AVPacket *pkt; (pkt = input_read(in));) {
        if (pkt->pts == AV_NOPTS_VALUE)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            int64_t *p = realloc(pts, (size_t)cap * sizeof(*pts));
            if (!p) {
                free(pts);
                return AVERROR(ENOMEM);
            }
            pts = p;
        }
        pts[n++] = pkt->pts;
    }
    qsort(pts, (size_t)n, sizeof(*pts), cmp_i64);
    *out = pts;
    *count = n;
    return n ? 0 : AVERROR_INVALIDDATA;
}

/* Decodes forward from the demuxer's position to the first frame at or after `target`. */
static int decode_until(AVCodecContext *ctx, struct input *in, int64_t target, AVFrame *f)
{
    for (int eof = 0;;) {
        int ret = avcodec_receive_frame(ctx, f);
        if (ret == AVERROR(EAGAIN)) {
            AVPacket *pkt = eof ? NULL : input_read(in);
            eof = !pkt;
            ret = avcodec_send_packet(ctx, pkt);
            if (ret < 0 && ret != AVERROR_INVALIDDATA)
                return ret;
            continue;
        }
        if (ret < 0)
            return ret;
        if (f->best_effort_timestamp >= target)
            return 0;
        av_frame_unref(f);
    }
}

static int run_seek(struct job *j, struct input *in)
{
    int64_t *pts = NULL;
    int count = 0;
    AVCodecContext *ctx = NULL;
    AVFrame *f = av_frame_alloc(), *sw = av_frame_alloc();
    int ret = f && sw ? list_pts(in, &pts, &count) : AVERROR(ENOMEM);
    if (ret >= 0)
        ret = ffmpeg_open(in, &ctx);
    unsigned seed = j->seed;
    for (long k = 0; ret >= 0 && k < j->limit; k++) {
        int64_t target = pts[rand_r(&seed) % (unsigned)count];
        ret = av_seek_frame(in->fmt, in->stream, target, AVSEEK_FLAG_BACKWARD);
        avcodec_flush_buffers(ctx);
        if (ret >= 0)
            ret = decode_until(ctx, in, target, f);
        if (ret >= 0)
            ret = av_hwframe_transfer_data(sw, f, 0);
        j->frames += ret >= 0;
        av_frame_unref(f);
        av_frame_unref(sw);
    }
    free(pts);
    av_frame_free(&f);
    av_frame_free(&sw);
    avcodec_free_context(&ctx);
    return ret < 0 ? ret : 0;
}

static int run_ffmpeg(struct job *j, struct input *in)
{
    AVCodecContext *ctx = NULL;
    AVFrame *f = av_frame_alloc(), *sw = av_frame_alloc();
    int ret = f && sw ? ffmpeg_open(in, &ctx) : AVERROR(ENOMEM);
    for (int eof = 0; ret >= 0 && (!j->limit || j->frames < j->limit);) {
        ret = avcodec_receive_frame(ctx, f);
        if (ret == AVERROR(EAGAIN)) {
            AVPacket *pkt = eof ? NULL : input_read(in);
            eof = !pkt;
            ret = avcodec_send_packet(ctx, pkt);
            if (ret == AVERROR_INVALIDDATA)
                ret = 0;
            continue;
        }
        if (ret < 0)
            break;
        j->frames++;
        if (j->mode == FFMPEG_HOST)
            ret = av_hwframe_transfer_data(sw, f, 0);
        av_frame_unref(sw);
        av_frame_unref(f);
    }
    av_frame_free(&f);
    av_frame_free(&sw);
    avcodec_free_context(&ctx);
    return ret == AVERROR_EOF ? 0 : ret;
}

static int run_nvdec(struct job *j, struct input *in)
{
    struct decode_opts opts = {.gpu = 0};
    void *priv = calloc(1, decode_nvdec.priv_size);
    AVFrame *f = av_frame_alloc();
    uint8_t *buf = NULL;
    int ret = priv && f ? decode_nvdec.open(priv, input_par(in), &opts) : -ENOMEM;
    if (ret < 0)
        goto done;
    struct iter it = {.b = &decode_nvdec, .priv = priv, .in = in};
    while ((!j->limit || j->frames < j->limit) && (ret = iter_next(&it, f)) == 0) {
        j->frames++;
        if (j->mode != NVDEC_GPU) {
            struct convert_req req = {FORMAT_NV12, f->width, f->height};
            if (j->mode == NVDEC_VIEW)
                req = view_req;
            size_t size = format_frame_size(req.format, req.width, req.height);
            if (!buf && !(buf = malloc(size)))
                ret = -ENOMEM;
            if (ret == 0)
                ret = convert_frame(f, &req, buf, size);
        }
        av_frame_unref(f);
        if (ret < 0)
            break;
    }
    decode_nvdec.close(priv);
done:
    free(buf);
    free(priv);
    av_frame_free(&f);
    return ret == -ENODATA ? 0 : ret;
}

static void *job_main(void *opaque)
{
    struct job *j = opaque;
    struct input in;
    if (input_open(j->path, &in) < 0) {
        j->error = -EIO;
        return NULL;
    }
    j->error = j->mode == FFMPEG_SEEK  ? run_seek(j, &in)
               : j->mode >= FFMPEG_GPU ? run_ffmpeg(j, &in)
                                       : run_nvdec(j, &in);
    input_close(&in);
    return NULL;
}

static double bench(enum mode mode, int threads, char **files, int nfiles, long limit,
                    FILE *json)
{
    struct job *jobs = calloc((size_t)threads, sizeof(*jobs));
    pthread_t *tids = calloc((size_t)threads, sizeof(*tids));
    double t0 = now();
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){.path = files[i % nfiles], .mode = mode,
                               .limit = mode == FFMPEG_SEEK ? limit : 0, .seed = (unsigned)i + 1};
        pthread_create(&tids[i], NULL, job_main, &jobs[i]);
    }
    long frames = 0;
    int errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        frames += jobs[i].frames;
        errors += jobs[i].error != 0;
    }
    double secs = now() - t0;
    double fps = (double)frames / secs;
    printf("%-12s threads %2d: %6ld frames in %6.2f s = %7.0f fps%s\n", mode_names[mode],
           threads, frames, secs, fps, errors ? "  (ERRORS)" : "");
    if (json)
        fprintf(json,
                "{\"mode\":\"%s\",\"threads\":%d,\"file\":\"%s\",\"frames\":%ld,"
                "\"seconds\":%.3f,\"fps\":%.1f,\"errors\":%d}\n",
                mode_names[mode], threads, files[0], frames, secs, fps, errors);
    fflush(stdout);
    free(jobs);
    free(tids);
    return errors ? -1.0 : fps;
}

/* ---- check --------------------------------------------------------------------------- */

struct check_stats {
    long frames, pts_mismatch, nv12_mismatch, yuv_mismatch, gray_mismatch, p010_mismatch;
    double rgb_psnr_min, view_psnr_min;
};

static double psnr(const uint8_t *a, const uint8_t *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        se += d * d;
    }
    return se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 * (double)n / se);
}

/* Converts both frames to req: 1 when the bytes are identical, 0 if not, with the PSNR. */
static int compare(const AVFrame *cpu, const AVFrame *gpu, struct convert_req req, double *db)
{
    size_t size = format_frame_size(req.format, req.width, req.height);
    uint8_t *a = malloc(size), *b = malloc(size);
    int same = -1;
    if (a && b && convert_frame(cpu, &req, a, size) == 0 &&
        convert_frame(gpu, &req, b, size) == 0) {
        same = !memcmp(a, b, size);
        if (db)
            *db = same ? 99.0 : psnr(a, b, size);
    }
    free(a);
    free(b);
    return same;
}

/* Decodes up to `limit` frames with both backends and compares them. */
static int check_pass(const char *path, void *nv, long limit, struct check_stats *st)
{
    struct input cin, nin;
    if (input_open(path, &cin) < 0)
        return -EIO;
    if (input_open(path, &nin) < 0) {
        input_close(&cin);
        return -EIO;
    }
    struct decode_opts opts = {.threads = 0};
    void *cpu = calloc(1, decode_cpu.priv_size);
    int ret = cpu ? decode_cpu.open(cpu, input_par(&cin), &opts) : -ENOMEM;
    struct iter ci = {.b = &decode_cpu, .priv = cpu, .in = &cin};
    struct iter ni = {.b = &decode_nvdec, .priv = nv, .in = &nin};
    AVFrame *a = av_frame_alloc(), *b = av_frame_alloc();
    int ten = av_pix_fmt_desc_get(input_par(&cin)->format)->comp[0].depth > 8;
    while (ret == 0 && st->frames < limit) {
        int ra = iter_next(&ci, a), rb = iter_next(&ni, b);
        if (ra == -ENODATA && rb == -ENODATA)
            break;
        if (ra < 0 || rb < 0) {
            printf("  %s: frame %ld: cpu %s, nvdec %s\n", path, st->frames,
                   ra ? strerror(-ra) : "frame", rb ? strerror(-rb) : "frame");
            ret = -EIO;
            break;
        }
        int w = a->width, h = a->height;
        if (b->width != w || b->height != h) {
            printf("  frame %ld: size %dx%d vs %dx%d\n", st->frames, w, h, b->width, b->height);
            ret = -EIO;
            break;
        }
        if (a->pts != b->pts && st->pts_mismatch++ < 5)
            printf("  frame %ld: pts %" PRId64 " vs %" PRId64 "\n", st->frames, a->pts, b->pts);
        double db = 0;
        if (!ten) {
            if (compare(a, b, (struct convert_req){FORMAT_NV12, w, h}, &db) != 1 &&
                st->nv12_mismatch++ < 5)
                printf("  frame %ld: nv12 differs (%.1f dB)\n", st->frames, db);
            if (compare(a, b, (struct convert_req){FORMAT_YUV420P, w, h}, NULL) != 1)
                st->yuv_mismatch++;
            if (compare(a, b, (struct convert_req){FORMAT_GRAY, w, h}, NULL) != 1)
                st->gray_mismatch++;
        } else if (compare(a, b, (struct convert_req){FORMAT_P010, w, h}, &db) != 1 &&
                   st->p010_mismatch++ < 5) {
            printf("  frame %ld: p010 differs (%.1f dB)\n", st->frames, db);
        }
        /* A sample of frames for the lossy formats: swscale is slow on 1080p. */
        if (st->frames % 10 == 0) {
            compare(a, b, (struct convert_req){FORMAT_RGB, w, h}, &db);
            st->rgb_psnr_min = fmin(st->rgb_psnr_min, db);
            compare(a, b, view_req, &db);
            st->view_psnr_min = fmin(st->view_psnr_min, db);
        }
        st->frames++;
        av_frame_unref(a);
        av_frame_unref(b);
    }
    if (ret == 0 && st->frames < limit && iter_next(&ni, b) != -ENODATA) {
        printf("  nvdec gives more frames than cpu\n");
        ret = -EIO;
    }
    av_frame_free(&a);
    av_frame_free(&b);
    if (cpu)
        decode_cpu.close(cpu);
    free(cpu);
    input_close(&cin);
    input_close(&nin);
    return ret;
}

static int check(char **files, int nfiles, long limit)
{
    void *nv = calloc(1, decode_nvdec.priv_size);
    int open = 0, failures = 0;
    struct decode_opts opts = {.gpu = 0, .max_width = 1920, .max_height = 1088};
    for (int i = 0; i < nfiles; i++) {
        struct input in;
        if (input_open(files[i], &in) < 0) {
            failures++;
            continue;
        }
        const AVCodecParameters *par = input_par(&in);
        printf("%s: %s %dx%d %s\n", files[i], avcodec_get_name(par->codec_id), par->width,
               par->height, av_get_pix_fmt_name(par->format));
        if (decode_nvdec.supports(par, &opts) < 0) {
            printf("  nvdec: not supported here (the pool would use the CPU)\n");
            input_close(&in);
            continue;
        }
        const char *how = "opened";
        if (open && decode_nvdec.reconfigure(nv, par) == 0) {
            how = "reconfigured";
        } else {
            if (open)
                decode_nvdec.close(nv);
            memset(nv, 0, decode_nvdec.priv_size);
            open = decode_nvdec.open(nv, par, &opts) == 0;
        }
        input_close(&in);
        if (!open) {
            printf("  nvdec: open failed\n");
            failures++;
            continue;
        }
        static const char *const pass_names[] = {"whole file", "after flush",
                                                  "after mid-stream flush"};
        for (int pass = 0; pass < 3; pass++) {
            struct check_stats st = {.rgb_psnr_min = 99, .view_psnr_min = 99};
            if (pass)
                decode_nvdec.flush(nv);
            int ret = check_pass(files[i], nv, pass ? 30 : limit, &st);
            int bad = ret < 0 || st.pts_mismatch || st.nv12_mismatch || st.yuv_mismatch ||
                      st.gray_mismatch || st.p010_mismatch;
            failures += bad;
            printf("  %s (decoder %s): %ld frames, pts %ld, nv12 %ld, yuv420p %ld, "
                   "gray %ld, p010 %ld differ; rgb >= %.1f dB, %s:%dx%d >= %.1f dB: %s\n",
                   pass_names[pass], how, st.frames, st.pts_mismatch, st.nv12_mismatch,
                   st.yuv_mismatch, st.gray_mismatch, st.p010_mismatch, st.rgb_psnr_min,
                   format_ext(view_req.format), view_req.width, view_req.height,
                   st.view_psnr_min, bad ? "FAIL" : "ok");
            how = "kept";
        }
    }
    if (open)
        decode_nvdec.close(nv);
    free(nv);
    printf("check: %s\n", failures ? "FAIL" : "all identical");
    return failures ? 1 : 0;
}

/* Decoder reuse: `clips` clips of `frames` frames each, one decoder reconfigured from clip
 * to clip (as the pool does) against a decoder opened and closed for each. */
static void bench_reuse(const char *path, int clips, long frames, FILE *json)
{
    /* Pooled decoders are made as large as the pool makes them; fresh ones fit the clip. */
    struct decode_opts pool_opts = {.gpu = 0, .max_width = 1920, .max_height = 1088};
    struct decode_opts fresh_opts = {.gpu = 0};
    double rate[2] = {0};
    for (int pooled = 0; pooled < 2; pooled++) {
        void *nv = calloc(1, decode_nvdec.priv_size);
        AVFrame *f = av_frame_alloc();
        int open = 0, errors = 0;
        long total = 0;
        double t0 = now();
        for (int c = 0; c < clips; c++) {
            struct input in;
            if (input_open(path, &in) < 0)
                break;
            if (!open || !pooled || decode_nvdec.reconfigure(nv, input_par(&in)) < 0) {
                if (open)
                    decode_nvdec.close(nv);
                memset(nv, 0, decode_nvdec.priv_size);
                const struct decode_opts *o = pooled ? &pool_opts : &fresh_opts;
                open = decode_nvdec.open(nv, input_par(&in), o) == 0;
            }
            struct iter it = {.b = &decode_nvdec, .priv = nv, .in = &in};
            long n = 0;
            while (open && n < frames && iter_next(&it, f) == 0) {
                n++;
                av_frame_unref(f);
            }
            total += n;
            errors += n < frames;
            if (!pooled && open) {
                decode_nvdec.close(nv);
                open = 0;
            }
            input_close(&in);
        }
        if (open)
            decode_nvdec.close(nv);
        double secs = now() - t0;
        rate[pooled] = clips / secs;
        printf("reuse %-6s: %d clips of %ld frames in %.2f s = %.1f clips/s, %.0f fps%s\n",
               pooled ? "pooled" : "fresh", clips, frames, secs, rate[pooled],
               (double)total / secs, errors ? " (ERRORS)" : "");
        if (json)
            fprintf(json, "{\"mode\":\"reuse-%s\",\"file\":\"%s\",\"clips\":%d,"
                          "\"frames\":%ld,\"seconds\":%.3f,\"clips_per_s\":%.2f}\n",
                    pooled ? "pooled" : "fresh", path, clips, frames, secs, rate[pooled]);
        av_frame_free(&f);
        free(nv);
    }
    printf("  pooled/fresh = %.1fx\n", rate[1] / rate[0]);
}

int main(int argc, char **argv)
{
    int do_check = 0, nthreads = 0, threads[16], repeat = 1, reuse = 0, seek = 0;
    long limit = 1L << 30;
    const char *json_path = NULL;
    unsigned modes = DEFAULT_MODES;
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--check")) {
            do_check = 1;
            continue;
        }
        i++;
        if (!strcmp(a, "--threads")) {
            for (char *s = (char *)v; *s && nthreads < 16; s += *s == ',')
                threads[nthreads++] = (int)strtol(s, &s, 10);
        } else if (!strcmp(a, "--frames")) {
            limit = atol(v);
        } else if (!strcmp(a, "--reuse")) {
            reuse = atoi(v);
        } else if (!strcmp(a, "--seek")) {
            seek = atoi(v);
            modes = 1u << FFMPEG_SEEK;
        } else if (!strcmp(a, "--repeat")) {
            repeat = atoi(v) > 0 ? atoi(v) : 1;
        } else if (!strcmp(a, "--json")) {
            json_path = v;
        } else if (!strcmp(a, "--view")) {
            char ext[16] = "";
            if (sscanf(v, "%15[a-z0-9]:%dx%d", ext, &view_req.width, &view_req.height) != 3 ||
                (view_req.format = format_from_ext(ext, (int)strlen(ext))) == FORMAT_COUNT) {
                fprintf(stderr, "bad --view %s\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--modes")) {
            modes = 0;
            for (int m = 0; m < MODE_COUNT; m++)
                if (strstr(v, mode_names[m]))
                    modes |= 1u << m;
        } else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "usage: nvdec_bench [--check] [--threads 1,7,14] [--modes LIST] "
                        "[--view FMT:WxH] [--repeat R] [--frames N] [--reuse CLIPS] "
                        "[--seek N] [--json FILE] FILE...\n");
        return 2;
    }
    log_set_level(getenv("VIDFS_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
    if (do_check)
        return check(argv + i, argc - i, limit);
    if (reuse > 0) {
        FILE *json = json_path ? fopen(json_path, "a") : NULL;
        bench_reuse(argv[i], reuse, limit < (1L << 30) ? limit : 60, json);
        if (json)
            fclose(json);
        return 0;
    }
    if (!nthreads)
        threads[nthreads++] = 1;
    int ret = av_hwdevice_ctx_create(&hw_device, AV_HWDEVICE_TYPE_CUDA, NULL, NULL, 0);
    if (ret < 0) {
        fprintf(stderr, "ffmpeg: no CUDA device: %s\n", av_err2str(ret));
        modes &= (1u << FFMPEG_GPU) - 1;
    }
    /* Warm-up: the CUDA contexts, the kernels' JIT and FFmpeg's device are set up outside
     * the timed runs. */
    for (int m = 0; m < MODE_COUNT; m++) {
        struct job j = {.path = argv[i], .mode = (enum mode)m, .limit = 20, .seed = 1};
        if (modes & (1u << m))
            job_main(&j);
    }
    FILE *json = json_path ? fopen(json_path, "a") : NULL;
    printf("%s (%d file%s)\n", argv[i], argc - i, argc - i > 1 ? "s" : "");
    for (int t = 0; t < nthreads; t++) {
        double fps[MODE_COUNT] = {0};
        for (int r = 0; r < repeat; r++)
            for (int m = 0; m < MODE_COUNT; m++)
                if (modes & (1u << m))
                    fps[m] = fmax(fps[m], bench((enum mode)m, threads[t], argv + i, argc - i,
                                                seek, json));
        if (fps[FFMPEG_HOST] > 0 && fps[NVDEC_HOST] > 0)
            printf("  ratio host: nvdec/ffmpeg = %.2f", fps[NVDEC_HOST] / fps[FFMPEG_HOST]);
        if (fps[FFMPEG_GPU] > 0 && fps[NVDEC_GPU] > 0)
            printf("  gpu: nvdec/ffmpeg = %.2f", fps[NVDEC_GPU] / fps[FFMPEG_GPU]);
        printf("\n");
    }
    if (json)
        fclose(json);
    av_buffer_unref(&hw_device);
    return 0;
}
