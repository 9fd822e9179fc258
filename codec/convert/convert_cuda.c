/* CUDA conversion of decode_nvdec's frames (AV_PIX_FMT_CUDA: NV12 or P016 planes in device
 * memory, see cuda.h). The output is made on the GPU in the file's byte layout, scaled
 * there first for the frames_WxH views, then copied to host memory once.
 *
 * Copies to host go through a pinned staging buffer kept per thread and GPU, on a stream of
 * that thread's own, then memcpy to dst: an asynchronous DMA from pinned memory runs at the
 * link's speed, while a copy into pageable memory (what av_hwframe_transfer_data does) is
 * staged by the driver and synchronous. VIDFS_CUDA_COPY=direct in the environment copies
 * into dst straight away instead, to measure the difference (scripts/bench/nvdec_bench).
 *
 * Without the kernels (built without nvcc), unscaled nv12 and gray of 8-bit sources and
 * p010 of 10-bit ones are plain 2D copies; everything else downloads the frame, splits it
 * into the planar frame libavcodec would have made and hands that to convert_cpu, so the
 * bytes are the CPU backend's own. YUV files of full-range streams always go that way:
 * their range change must be swscale's own to equal ffmpeg's bytes. */
#include "convert.h"
#include "cuda.h"
#include "cuda/convert_params.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>


#if VIDFS_HAVE_CUDA_KERNELS
extern const unsigned char cuda_convert_ptx[];

/* The module a context: loaded on first use, kept for the process's life. */
static pthread_mutex_t module_lock = PTHREAD_MUTEX_INITIALIZER;
static CUfunction kernels[DECODE_MAX_GPUS];
static int module_failed[DECODE_MAX_GPUS];

/* Call with the GPU's context pushed. */
static int get_kernel(int gpu, CUfunction *out)
{
    int ret = 0;
    pthread_mutex_lock(&module_lock);
    if (!kernels[gpu] && !module_failed[gpu]) {
        CUmodule mod;
        ret = CU(cuda_cu->cuModuleLoadData(&mod, cuda_convert_ptx));
        if (ret == 0)
            ret = CU(cuda_cu->cuModuleGetFunction(&kernels[gpu], mod, "vidfs_convert"));
        module_failed[gpu] = ret < 0;
        if (ret < 0)
            log_error("convert: the CUDA kernels do not load on GPU %d; converting on the CPU",
                      gpu);
    }
    *out = kernels[gpu];
    ret = kernels[gpu] ? 0 : -ENOTSUP;
    pthread_mutex_unlock(&module_lock);
    return ret;
}
#endif

/* A thread's stream and buffers on one GPU, grown to the largest frame asked for. */
struct staging {
    CUcontext ctx;
    CUstream stream;
    CUdeviceptr dev;
    size_t dev_size;
    void *host;
    size_t host_size;
};

struct thread_staging {
    struct staging gpu[DECODE_MAX_GPUS];
};

static pthread_key_t staging_key;
static pthread_once_t staging_once = PTHREAD_ONCE_INIT;
static int copy_direct;

static void staging_destroy(void *opaque)
{
    struct thread_staging *ts = opaque;
    for (int i = 0; i < DECODE_MAX_GPUS; i++) {
        struct staging *s = &ts->gpu[i];
        if (!s->ctx || cuda_push(s->ctx) < 0)
            continue;
        if (s->dev)
            CU(cuda_cu->cuMemFree(s->dev));
        if (s->host)
            CU(cuda_host.cuMemFreeHost(s->host));
        if (s->stream)
            CU(cuda_cu->cuStreamDestroy(s->stream));
        cuda_pop();
    }
    free(ts);
}

static void staging_init(void)
{
    pthread_key_create(&staging_key, staging_destroy);
    const char *mode = getenv("VIDFS_CUDA_COPY");
    copy_direct = mode && !strcmp(mode, "direct");
}

/* Call with ctx pushed. */
static int get_staging(int gpu, CUcontext ctx, struct staging **out)
{
    pthread_once(&staging_once, staging_init);
    struct thread_staging *ts = pthread_getspecific(staging_key);
    if (!ts) {
        if (!(ts = calloc(1, sizeof(*ts))))
            return -ENOMEM;
        pthread_setspecific(staging_key, ts);
    }
    struct staging *s = &ts->gpu[gpu];
    if (!s->stream) {
        int ret = CU(cuda_cu->cuStreamCreate(&s->stream, CU_STREAM_NON_BLOCKING));
        if (ret < 0)
            return ret;
        s->ctx = ctx;
    }
    *out = s;
    return 0;
}

static int ensure_device(struct staging *s, size_t size)
{
    if (s->dev_size >= size)
        return 0;
    if (s->dev)
        CU(cuda_cu->cuMemFree(s->dev));
    s->dev = 0;
    s->dev_size = 0;
    int ret = CU(cuda_cu->cuMemAlloc(&s->dev, size));
    if (ret == 0)
        s->dev_size = size;
    return ret;
}

static int ensure_host(struct staging *s, size_t size)
{
    if (s->host_size >= size)
        return 0;
    if (s->host)
        CU(cuda_host.cuMemFreeHost(s->host));
    s->host = NULL;
    s->host_size = 0;
    int ret = CU(cuda_host.cuMemHostAlloc(&s->host, size, 0));
    if (ret == 0)
        s->host_size = size;
    return ret;
}

/* A 2D copy of rows of `bytes` from a device plane to tightly packed rows at `dst`. */
static int copy_plane(CUdeviceptr src, size_t pitch, void *dst, size_t bytes, size_t rows,
                      CUstream stream)
{
    return cuda_copy_2d(src, pitch, dst, 0, bytes, bytes, rows, stream);
}

static CUdeviceptr plane(const AVFrame *f, int i)
{
    return (CUdeviceptr)(uintptr_t)f->data[i];
}

/* The layouts that are the surface's own bytes: 0 when done, 1 when not such a case. */
static int copy_layout(const AVFrame *f, const struct cuda_frame_desc *d,
                       const struct convert_req *req, uint8_t *out, CUstream stream)
{
    size_t w = (size_t)f->width, h = (size_t)f->height, cw = (w + 1) / 2, ch = (h + 1) / 2;
    if (req->width != f->width || req->height != f->height)
        return 1;
    int ret;
    switch (req->format) {
    case FORMAT_GRAY:
        if (d->bit_depth != 8)
            return 1;
        return copy_plane(plane(f, 0), (size_t)f->linesize[0], out, w, h, stream);
    case FORMAT_NV12:
        if (d->bit_depth != 8)
            return 1;
        ret = copy_plane(plane(f, 0), (size_t)f->linesize[0], out, w, h, stream);
        return ret < 0 ? ret
                       : copy_plane(plane(f, 1), (size_t)f->linesize[1], out + w * h, 2 * cw,
                                    ch, stream);
    case FORMAT_P010:
        /* P016 of a 10-bit stream has its low 6 bits zero: it is P010. */
        if (d->bit_depth != 10)
            return 1;
        ret = copy_plane(plane(f, 0), (size_t)f->linesize[0], out, 2 * w, h, stream);
        return ret < 0 ? ret
                       : copy_plane(plane(f, 1), (size_t)f->linesize[1], out + 2 * w * h,
                                    4 * cw, ch, stream);
    default:
        return 1;
    }
}

#if VIDFS_HAVE_CUDA_KERNELS
static void set_matrix(struct cvt_params *p, const AVFrame *f)
{
    float kr, kb;
    switch (f->colorspace) {
    case AVCOL_SPC_BT709:
        kr = 0.2126f, kb = 0.0722f;
        break;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL:
        kr = 0.2627f, kb = 0.0593f;
        break;
    case AVCOL_SPC_SMPTE240M:
        kr = 0.212f, kb = 0.087f;
        break;
    case AVCOL_SPC_FCC:
        kr = 0.30f, kb = 0.11f;
        break;
    default: /* BT.601 (470BG, 170M) and untagged streams, as FFmpeg */
        kr = 0.299f, kb = 0.114f;
        break;
    }
    float kg = 1.0f - kr - kb;
    int full = f->color_range == AVCOL_RANGE_JPEG;
    p->y_off = full ? 0.0f : 16.0f;
    p->y_mul = full ? 1.0f : 255.0f / 219.0f;
    p->c_mul = full ? 1.0f : 255.0f / 224.0f;
    p->rv = 2.0f * (1.0f - kr);
    p->bu = 2.0f * (1.0f - kb);
    p->gu = -2.0f * kb * (1.0f - kb) / kg;
    p->gv = -2.0f * kr * (1.0f - kr) / kg;
}

static int launch(CUfunction fn, struct cvt_params *p, enum cvt_out out, CUdeviceptr dst,
                  CUstream stream)
{
    p->out = out;
    p->dst = dst;
    int chroma = out == CVT_OUT_NV12_UV || out == CVT_OUT_I420_UV || out == CVT_OUT_P010_UV;
    unsigned w = (unsigned)(chroma ? (p->dw + 1) / 2 : p->dw);
    unsigned h = (unsigned)(chroma ? (p->dh + 1) / 2 : p->dh);
    void *args[] = {p};
    return CU(cuda_cu->cuLaunchKernel(fn, (w + 31) / 32, (h + 7) / 8, 1, 32, 8, 1, 0, stream,
                                      args, NULL));
}

/* Runs the kernels into s->dev in the output layout. */
static int run_kernels(CUfunction fn, const AVFrame *f, const struct cuda_frame_desc *d,
                       const struct convert_req *req, struct staging *s)
{
    struct cvt_params p = {
        .y = plane(f, 0),
        .uv = plane(f, 1),
        .y_pitch = f->linesize[0],
        .uv_pitch = f->linesize[1],
        .sw = f->width,
        .sh = f->height,
        .hbd = d->bit_depth > 8,
        .filter = CVT_BICUBIC,
        .dw = req->width,
        .dh = req->height,
    };
    set_matrix(&p, f);
    size_t luma = (size_t)req->width * (size_t)req->height;
    int ret;
    switch (req->format) {
    case FORMAT_GRAY:
        return launch(fn, &p, CVT_OUT_LUMA8, s->dev, s->stream);
    case FORMAT_NV12:
    case FORMAT_YUV420P:
        ret = launch(fn, &p, CVT_OUT_LUMA8, s->dev, s->stream);
        return ret < 0 ? ret
                       : launch(fn, &p,
                                req->format == FORMAT_NV12 ? CVT_OUT_NV12_UV : CVT_OUT_I420_UV,
                                s->dev + luma, s->stream);
    case FORMAT_P010:
        ret = launch(fn, &p, CVT_OUT_LUMA16, s->dev, s->stream);
        return ret < 0 ? ret : launch(fn, &p, CVT_OUT_P010_UV, s->dev + 2 * luma, s->stream);
    case FORMAT_RGB:
        return launch(fn, &p, CVT_OUT_RGB, s->dev, s->stream);
    case FORMAT_RGBP:
        return launch(fn, &p, CVT_OUT_RGBP, s->dev, s->stream);
    default:
        return -EINVAL;
    }
}
#endif

/* Splits the interleaved chroma of a downloaded NV12/P016 frame into the planar frame
 * libavcodec itself would have made (yuv420p, or yuv420p10/12 with samples in the low
 * bits), so convert_cpu treats it exactly as a CPU-decoded frame. */
static int to_planar(const AVFrame *nv, int depth, AVFrame *out)
{
    out->format = depth == 8 ? AV_PIX_FMT_YUV420P
                  : depth == 10 ? AV_PIX_FMT_YUV420P10LE
                                : AV_PIX_FMT_YUV420P12LE;
    out->width = nv->width;
    out->height = nv->height;
    if (av_frame_get_buffer(out, 0) < 0)
        return -ENOMEM;
    int ret = av_frame_copy_props(out, nv);
    if (ret < 0)
        return -ENOMEM;
    int w = nv->width, h = nv->height, cw = (w + 1) / 2, ch = (h + 1) / 2;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = nv->data[0] + (ptrdiff_t)y * nv->linesize[0];
        uint8_t *d = out->data[0] + (ptrdiff_t)y * out->linesize[0];
        if (depth == 8) {
            memcpy(d, s, (size_t)w);
        } else {
            for (int x = 0; x < w; x++)
                ((uint16_t *)(void *)d)[x] =
                    (uint16_t)(((const uint16_t *)(const void *)s)[x] >> (16 - depth));
        }
    }
    for (int y = 0; y < ch; y++) {
        const uint8_t *s = nv->data[1] + (ptrdiff_t)y * nv->linesize[1];
        uint8_t *u = out->data[1] + (ptrdiff_t)y * out->linesize[1];
        uint8_t *v = out->data[2] + (ptrdiff_t)y * out->linesize[2];
        for (int x = 0; x < cw; x++) {
            if (depth == 8) {
                u[x] = s[2 * x];
                v[x] = s[2 * x + 1];
            } else {
                const uint16_t *s16 = (const uint16_t *)(const void *)s;
                ((uint16_t *)(void *)u)[x] = (uint16_t)(s16[2 * x] >> (16 - depth));
                ((uint16_t *)(void *)v)[x] = (uint16_t)(s16[2 * x + 1] >> (16 - depth));
            }
        }
    }
    return 0;
}

/* Downloads the frame to a planar host frame for convert_cpu. Call with the context
 * pushed. */
static int download(const AVFrame *f, const struct cuda_frame_desc *d, AVFrame *host,
                    CUstream stream)
{
    AVFrame *nv = av_frame_alloc();
    if (!nv)
        return -ENOMEM;
    nv->format = d->bit_depth == 8 ? AV_PIX_FMT_NV12 : AV_PIX_FMT_P016LE;
    nv->width = f->width;
    nv->height = f->height;
    int ret = av_frame_get_buffer(nv, 0) < 0 ? -ENOMEM : 0;
    if (ret == 0 && av_frame_copy_props(nv, f) < 0)
        ret = -ENOMEM;
    size_t bps = d->bit_depth > 8 ? 2 : 1;
    for (int i = 0; i < 2 && ret == 0; i++) {
        size_t rows = i ? (size_t)(f->height + 1) / 2 : (size_t)f->height;
        size_t bytes = (i ? (size_t)(f->width + 1) & ~(size_t)1 : (size_t)f->width) * bps;
        ret = cuda_copy_2d(plane(f, i), (size_t)f->linesize[i], nv->data[i], 0,
                           (size_t)nv->linesize[i], bytes, rows, stream);
    }
    if (ret == 0)
        ret = CU(cuda_cu->cuStreamSynchronize(stream));
    if (ret == 0)
        ret = to_planar(nv, d->bit_depth, host);
    av_frame_free(&nv);
    return ret;
}

static int cuda_accepts(const AVFrame *src)
{
    return cuda_frame_desc(src) != NULL;
}

static int cuda_run(const AVFrame *src, const struct convert_req *req, uint8_t *dst)
{
    const struct cuda_frame_desc *d = cuda_frame_desc(src);
    size_t size = format_frame_size(req->format, req->width, req->height);
    CUcontext ctx;
    int ret = d ? cuda_context(d->gpu, &ctx) : -EINVAL;
    if (ret < 0 || (ret = cuda_push(ctx)) < 0)
        return ret;
    AVFrame *host = NULL;
    if ((ret = cuda_frame_wait(d)) < 0)
        goto pop;
    struct staging *s;
    if ((ret = get_staging(d->gpu, ctx, &s)) < 0)
        goto pop;
    uint8_t *out = dst;
    if (!copy_direct) {
        if ((ret = ensure_host(s, size)) < 0)
            goto pop;
        out = s->host;
    }
    /* A range change into YUV (full-range streams) is swscale's, as ffmpeg's, and so is a
     * shrink beyond what the kernels' filter spans: on the CPU. */
    int on_cpu = convert_changes_range(src, req->format) ||
                 src->width > CVT_MAX_FILTER_SCALE * req->width ||
                 src->height > CVT_MAX_FILTER_SCALE * req->height;
    ret = on_cpu ? 1 : copy_layout(src, d, req, out, s->stream);
#if VIDFS_HAVE_CUDA_KERNELS
    CUfunction fn;
    if (ret == 1 && !on_cpu && get_kernel(d->gpu, &fn) == 0) {
        ret = ensure_device(s, size);
        if (ret == 0)
            ret = run_kernels(fn, src, d, req, s);
        if (ret == 0)
            ret = CU(cuda_cu->cuMemcpyDtoHAsync(out, s->dev, size, s->stream));
    }
#else
    (void)ensure_device;
#endif
    if (ret == 1) {
        /* Pops first: convert_cpu may take a while and needs no context. */
        host = av_frame_alloc();
        ret = host ? download(src, d, host, s->stream) : -ENOMEM;
        cuda_pop();
        if (ret == 0)
            ret = convert_cpu.run(host, req, dst);
        av_frame_free(&host);
        return ret;
    }
    if (ret == 0)
        ret = CU(cuda_cu->cuStreamSynchronize(s->stream));
    if (ret == 0 && out != dst)
        memcpy(dst, out, size);
pop:
    cuda_pop();
    av_frame_free(&host);
    return ret;
}

static int cuda_download(const AVFrame *src, AVFrame *host)
{
    const struct cuda_frame_desc *d = cuda_frame_desc(src);
    CUcontext ctx;
    int ret = d ? cuda_context(d->gpu, &ctx) : -EINVAL;
    if (ret < 0 || (ret = cuda_push(ctx)) < 0)
        return ret;
    struct staging *s;
    if ((ret = cuda_frame_wait(d)) == 0 && (ret = get_staging(d->gpu, ctx, &s)) == 0)
        ret = download(src, d, host, s->stream);
    cuda_pop();
    return ret;
}

const struct converter convert_cuda = {
    .name = "cuda",
    .accepts = cuda_accepts,
    .run = cuda_run,
    .download = cuda_download,
};
