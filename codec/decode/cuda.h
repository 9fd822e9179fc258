/* The CUDA driver and NVDEC, loaded at run time through ffnvcodec's dynlink_loader.h, so
 * one binary runs with or without a GPU. One primary context per GPU, retained on first
 * use and shared by every decoder and converter of the process. Every driver call goes
 * through CU(), which logs the call's text and the error's name and maps the error to a
 * negative errno. */
#ifndef VIDFS_CUDA_H
#define VIDFS_CUDA_H

#include "decode.h"
#include "log.h"

/* ffnvcodec's loader prints to stderr when libcuda is missing, which is the normal case
 * on a machine without a GPU: route it to our debug log instead. */
#define FFNV_LOG_FUNC(logctx, msg, ...) log_debug("cuda loader: " msg, __VA_ARGS__)
#define FFNV_DEBUG_LOG_FUNC(logctx, msg, ...) ((void)0)
#include <ffnvcodec/dynlink_loader.h>

#include <libavutil/buffer.h>
#include <libavutil/frame.h>

extern CudaFunctions *cuda_cu;
extern CuvidFunctions *cuda_cuvid;

/* Pinned host memory: not in ffnvcodec 11's function table, so looked up by hand. */
struct cuda_host_functions {
    CUresult CUDAAPI (*cuMemHostAlloc)(void **pp, size_t bytes, unsigned int flags);
    CUresult CUDAAPI (*cuMemFreeHost)(void *p);
};
extern struct cuda_host_functions cuda_host;

/* Loads the libraries and initializes the driver once: 0, or -ENOTSUP without a usable
 * driver (no libcuda, no libnvcuvid, no device). */
int cuda_init(void);

/* Number of CUDA devices, 0 without a driver. */
int cuda_device_count(void);

/* The same, counted in a child process, so that this process starts no CUDA before it
 * forks (CUDA does not survive a fork): for checks made before the daemon starts. */
int cuda_probe_device_count(void);
/* NVDEC engines of GPU `gpu`, from its compute capability (the driver does not say):
 * 7 on Hopper, 5 on A100, fewer elsewhere; 1 when unknown. */
int cuda_nvdec_engines(int gpu);

/* The primary context of GPU `gpu`, retained once and kept for the process's life (so
 * device buffers that outlive their decoder can always be freed). -ENODEV past the count. */
int cuda_context(int gpu, CUcontext *out);

/* Maps a CUresult to a negative errno; logs `call` (its source text) unless r is success. */
int cuda_check(CUresult r, const char *call, const char *func, int line);
#define CU(x) cuda_check((x), #x, __func__, __LINE__)

/* Queues a copy of rows x width bytes from the device plane src (src_pitch) on stream: to
 * host memory at dst_host when not NULL, else to device memory at dst_dev. The caller
 * holds the context pushed and waits for the stream. */
int cuda_copy_2d(CUdeviceptr src, size_t src_pitch, void *dst_host, CUdeviceptr dst_dev,
                 size_t dst_pitch, size_t width, size_t rows, CUstream stream);

/* cuCtxPushCurrent / cuCtxPopCurrent through CU(). Every push is popped on every path. */
int cuda_push(CUcontext ctx);
void cuda_pop(void);

/* What a converter needs of an AV_PIX_FMT_CUDA frame from decode_nvdec, carried in the
 * frame's opaque_ref (av_frame_ref shares it). data[0] is the luma plane, data[1] the
 * interleaved chroma plane (NV12, or P016 with samples in the high bits), both device
 * pointers with linesize[0..1] pitches; width and height are the cropped display size. */
struct cuda_frame_desc {
    unsigned magic;
    int gpu;
    int bit_depth; /* 8: NV12 surface; 10, 12: P016 surface */
    /* When pending, the planes are complete once `ready` has completed: wait for it
     * (cuda_frame_wait) before reading them from another stream or the host. */
    int pending;
    CUevent ready;
};
#define CUDA_FRAME_MAGIC 0x43554446u

/* The description of a CUDA frame made by decode_nvdec, or NULL. */
const struct cuda_frame_desc *cuda_frame_desc(const AVFrame *f);

/* Waits until the frame's planes are complete: 0 or negative errno. */
int cuda_frame_wait(const struct cuda_frame_desc *d);

/* A pool of frame descriptions (opaque_ref buffers), each with its own event. */
AVBufferPool *cuda_desc_pool_new(int gpu);

/* A pool of equally sized device buffers on one GPU, for decoded frames: a frame holds one
 * buffer (buf[0]) and gives it back when its last reference goes, also after the pool's
 * owner has gone (libavutil's AVBufferPool frees the pool with its last buffer). */
AVBufferPool *cuda_buffer_pool_new(int gpu, size_t size);

#endif
