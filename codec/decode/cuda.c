/* CUDA driver loading, the per-GPU primary contexts, the checking macro's error mapping
 * and pooled device buffers. Everything here is thread-safe. */
#include "cuda.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libavutil/buffer.h>


CudaFunctions *cuda_cu;
CuvidFunctions *cuda_cuvid;
struct cuda_host_functions cuda_host;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result = -ENOTSUP;
static int device_count;

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static CUcontext contexts[DECODE_MAX_GPUS];

int cuda_check(CUresult r, const char *call, const char *func, int line)
{
    if (r == CUDA_SUCCESS)
        return 0;
    const char *name = NULL;
    if (!cuda_cu || !cuda_cu->cuGetErrorName || cuda_cu->cuGetErrorName(r, &name) != 0 || !name)
        name = "unknown CUDA error";
    log_error("cuda: %s failed: %s (%d) in %s:%d", call, name, (int)r, func, line);
    /* ffnvcodec's enum names only a few codes: these are the driver API's numbers. */
    switch ((int)r) {
    case 2: /* CUDA_ERROR_OUT_OF_MEMORY */
        return -ENOMEM;
    case 3:   /* CUDA_ERROR_NOT_INITIALIZED */
    case 100: /* CUDA_ERROR_NO_DEVICE */
    case 801: /* CUDA_ERROR_NOT_SUPPORTED */
        return -ENOTSUP;
    case 1: /* CUDA_ERROR_INVALID_VALUE */
        return -EINVAL;
    default:
        return -EIO;
    }
}

/* The pinned-memory entry points ffnvcodec 11 does not load; the _v2 names are the ABI
 * the driver has exported since CUDA 4. */
static int load_host_functions(void)
{
    void *lib = cuda_cu->lib;
    cuda_host.cuMemHostAlloc = (CUresult CUDAAPI(*)(void **, size_t, unsigned))(uintptr_t)
        FFNV_SYM_FUNC(lib, "cuMemHostAlloc");
    cuda_host.cuMemFreeHost =
        (CUresult CUDAAPI(*)(void *))(uintptr_t)FFNV_SYM_FUNC(lib, "cuMemFreeHost");
    return cuda_host.cuMemHostAlloc && cuda_host.cuMemFreeHost ? 0 : -ENOTSUP;
}

static void init_once_fn(void)
{
    if (cuda_load_functions(&cuda_cu, NULL) < 0) {
        log_info("cuda: no CUDA driver (libcuda.so.1); GPU decoding is off");
        goto fail;
    }
    if (cuvid_load_functions(&cuda_cuvid, NULL) < 0) {
        log_info("cuda: no NVDEC library (libnvcuvid.so.1); GPU decoding is off");
        goto fail;
    }
    if (load_host_functions() < 0) {
        log_info("cuda: the driver lacks cuMemHostAlloc; GPU decoding is off");
        goto fail;
    }
    /* No device is not an error worth a log line: it is the CPU machines' normal state. */
    if (cuda_cu->cuInit(0) != CUDA_SUCCESS)
        goto fail;
    if (CU(cuda_cu->cuDeviceGetCount(&device_count)) < 0 || device_count <= 0)
        goto fail;
    if (device_count > DECODE_MAX_GPUS)
        device_count = DECODE_MAX_GPUS;
    init_result = 0;
    return;
fail:
    device_count = 0;
    cuvid_free_functions(&cuda_cuvid);
    cuda_free_functions(&cuda_cu);
}

int cuda_init(void)
{
    pthread_once(&init_once, init_once_fn);
    return init_result;
}

int cuda_device_count(void)
{
    return cuda_init() < 0 ? 0 : device_count;
}

int cuda_probe_device_count(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        _exit(cuda_device_count() > 255 ? 255 : cuda_device_count());
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 0;
}

int cuda_copy_2d(CUdeviceptr src, size_t src_pitch, void *dst_host, CUdeviceptr dst_dev,
                 size_t dst_pitch, size_t width, size_t rows, CUstream stream)
{
    CUDA_MEMCPY2D cp = {
        .srcMemoryType = CU_MEMORYTYPE_DEVICE,
        .srcDevice = src,
        .srcPitch = src_pitch,
        .dstMemoryType = dst_host ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE,
        .dstHost = dst_host,
        .dstDevice = dst_host ? 0 : dst_dev,
        .dstPitch = dst_pitch,
        .WidthInBytes = width,
        .Height = rows,
    };
    return CU(cuda_cu->cuMemcpy2DAsync(&cp, stream));
}

int cuda_nvdec_engines(int gpu)
{
    /* From NVIDIA's NVDEC support matrix: data-centre parts carry several engines. */
    static const struct {
        int major, minor, engines;
    } table[] = {{9, 0, 7}, {8, 0, 5}, {8, 6, 2}, {8, 9, 3}, {7, 0, 4}};
    CUdevice dev;
    int major = 0, minor = 0;
    if (cuda_init() < 0 || gpu < 0 || gpu >= device_count ||
        cuda_cu->cuDeviceGet(&dev, gpu) != CUDA_SUCCESS ||
        cuda_cu->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                      dev) != CUDA_SUCCESS ||
        cuda_cu->cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                      dev) != CUDA_SUCCESS)
        return 1;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (table[i].major == major && table[i].minor == minor)
            return table[i].engines;
    return major >= 9 ? 7 : 1;
}

int cuda_context(int gpu, CUcontext *out)
{
    int ret = cuda_init();
    if (ret < 0)
        return ret;
    if (gpu < 0 || gpu >= device_count)
        return -ENODEV;
    pthread_mutex_lock(&ctx_lock);
    if (!contexts[gpu]) {
        CUdevice dev;
        ret = CU(cuda_cu->cuDeviceGet(&dev, gpu));
        if (ret == 0)
            ret = CU(cuda_cu->cuDevicePrimaryCtxRetain(&contexts[gpu], dev));
        if (ret == 0) {
            char name[128] = "";
            cuda_cu->cuDeviceGetName(name, sizeof(name), dev);
            log_info("cuda: using GPU %d (%s)", gpu, name);
        }
    }
    *out = contexts[gpu];
    pthread_mutex_unlock(&ctx_lock);
    return ret;
}

int cuda_push(CUcontext ctx)
{
    return CU(cuda_cu->cuCtxPushCurrent(ctx));
}

void cuda_pop(void)
{
    CUcontext dummy;
    CU(cuda_cu->cuCtxPopCurrent(&dummy));
}

const struct cuda_frame_desc *cuda_frame_desc(const AVFrame *f)
{
    if (f->format != AV_PIX_FMT_CUDA || !f->opaque_ref ||
        f->opaque_ref->size != sizeof(struct cuda_frame_desc))
        return NULL;
    const struct cuda_frame_desc *d = (const void *)f->opaque_ref->data;
    return d->magic == CUDA_FRAME_MAGIC ? d : NULL;
}

static void device_buffer_free(void *opaque, uint8_t *data)
{
    CUcontext ctx;
    if (cuda_context((int)(intptr_t)opaque, &ctx) < 0 || cuda_push(ctx) < 0)
        return;
    CU(cuda_cu->cuMemFree((CUdeviceptr)(uintptr_t)data));
    cuda_pop();
}

static AVBufferRef *device_buffer_alloc(void *opaque, size_t size)
{
    CUcontext ctx;
    CUdeviceptr p = 0;
    if (cuda_context((int)(intptr_t)opaque, &ctx) < 0 || cuda_push(ctx) < 0)
        return NULL;
    int ret = CU(cuda_cu->cuMemAlloc(&p, size));
    cuda_pop();
    if (ret < 0)
        return NULL;
    AVBufferRef *buf = av_buffer_create((uint8_t *)(uintptr_t)p, size, device_buffer_free,
                                        opaque, 0);
    if (!buf)
        device_buffer_free(opaque, (uint8_t *)(uintptr_t)p);
    return buf;
}

AVBufferPool *cuda_buffer_pool_new(int gpu, size_t size)
{
    return av_buffer_pool_init2(size, (void *)(intptr_t)gpu, device_buffer_alloc, NULL);
}

int cuda_frame_wait(const struct cuda_frame_desc *d)
{
    return d->pending ? CU(cuda_cu->cuEventSynchronize(d->ready)) : 0;
}

static void desc_free(void *opaque, uint8_t *data)
{
    struct cuda_frame_desc *d = (void *)data;
    CUcontext ctx;
    if (d->ready && cuda_context((int)(intptr_t)opaque, &ctx) == 0 && cuda_push(ctx) == 0) {
        CU(cuda_cu->cuEventDestroy(d->ready));
        cuda_pop();
    }
    av_free(data);
}

static AVBufferRef *desc_alloc(void *opaque, size_t size)
{
    struct cuda_frame_desc *d = av_mallocz(size);
    CUcontext ctx;
    if (!d || cuda_context((int)(intptr_t)opaque, &ctx) < 0 || cuda_push(ctx) < 0) {
        av_free(d);
        return NULL;
    }
    int ret = CU(cuda_cu->cuEventCreate(&d->ready, CU_EVENT_DISABLE_TIMING));
    cuda_pop();
    AVBufferRef *buf = ret < 0 ? NULL : av_buffer_create((uint8_t *)d, size, desc_free, opaque, 0);
    if (!buf)
        desc_free(opaque, (uint8_t *)d);
    return buf;
}

AVBufferPool *cuda_desc_pool_new(int gpu)
{
    return av_buffer_pool_init2(sizeof(struct cuda_frame_desc), (void *)(intptr_t)gpu,
                                desc_alloc, NULL);
}
