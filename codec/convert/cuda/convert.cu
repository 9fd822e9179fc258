/* Conversion of NVDEC frames (NV12, or P016 for 10/12-bit) to the frame files' layouts,
 * with resampling for the frames_WxH views. Built to PTX by meson and embedded; loaded with
 * cuModuleLoadData by convert_cuda.c. One kernel, one thread per output sample (a pixel, or
 * a chroma pair); values are handled on an 8-bit scale as floats (P016 / 256), so 8- and
 * 16-bit sources share one path. Unscaled samples are read as they are: no filter touches
 * them, so nv12/gray/yuv420p of 8-bit sources keep their exact bytes. Scaled outputs use a
 * separable filter widened by the scale factor when shrinking (as swscale does), so 1080p
 * to 224x224 averages rather than aliases. */
#include "convert_params.h"

#define MAX_FILTER_SCALE ((float)CVT_MAX_FILTER_SCALE)

__device__ __forceinline__ float cubic(float x)
{
    /* swscale's SWS_BICUBIC default: B = 0, C = 0.6 (Keys, a = -0.6) */
    const float a = -0.6f;
    x = fabsf(x);
    if (x < 1.0f)
        return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
    if (x < 2.0f)
        return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
    return 0.0f;
}

__device__ __forceinline__ float kernel_weight(int filter, float x)
{
    if (filter == CVT_BICUBIC)
        return cubic(x);
    x = fabsf(x);
    return x < 1.0f ? 1.0f - x : 0.0f;
}

/* Component c of sample (x, y): plane 0 is luma (c = 0), plane 1 interleaved chroma. */
__device__ __forceinline__ float load(const cvt_params &p, int plane, int x, int y, int c)
{
    const unsigned char *row = (const unsigned char *)(plane ? p.uv : p.y) +
                               (size_t)y * (size_t)(plane ? p.uv_pitch : p.y_pitch);
    int i = plane ? 2 * x + c : x;
    return p.hbd ? (float)((const unsigned short *)row)[i] * (1.0f / 256.0f) : (float)row[i];
}

/* The filtered value of a plane (pw x ph samples) around (cx, cy), in source samples, for
 * an output step of (scx, scy) source samples. Returns both components for chroma. */
__device__ float2 resample(const cvt_params &p, int plane, int pw, int ph, float cx, float cy,
                           float scx, float scy)
{
    if (p.filter == CVT_NEAREST) {
        int x = min(max(__float2int_rn(cx), 0), pw - 1);
        int y = min(max(__float2int_rn(cy), 0), ph - 1);
        return make_float2(load(p, plane, x, y, 0), plane ? load(p, plane, x, y, 1) : 0.0f);
    }
    float fx = fminf(fmaxf(scx, 1.0f), MAX_FILTER_SCALE);
    float fy = fminf(fmaxf(scy, 1.0f), MAX_FILTER_SCALE);
    float rad = p.filter == CVT_BICUBIC ? 2.0f : 1.0f;
    int x0 = (int)ceilf(cx - rad * fx), x1 = (int)floorf(cx + rad * fx);
    int y0 = (int)ceilf(cy - rad * fy), y1 = (int)floorf(cy + rad * fy);
    float a0 = 0.0f, a1 = 0.0f, wsum = 0.0f;
    for (int y = y0; y <= y1; y++) {
        float wy = kernel_weight(p.filter, ((float)y - cy) / fy);
        if (wy == 0.0f)
            continue;
        int yy = min(max(y, 0), ph - 1);
        for (int x = x0; x <= x1; x++) {
            float w = wy * kernel_weight(p.filter, ((float)x - cx) / fx);
            int xx = min(max(x, 0), pw - 1);
            a0 += w * load(p, plane, xx, yy, 0);
            if (plane)
                a1 += w * load(p, plane, xx, yy, 1);
            wsum += w;
        }
    }
    float inv = wsum != 0.0f ? 1.0f / wsum : 0.0f;
    return make_float2(a0 * inv, a1 * inv);
}

__device__ __forceinline__ unsigned char to8(float v)
{
    return (unsigned char)fminf(fmaxf(rintf(v), 0.0f), 255.0f);
}

/* 8-bit scale to a 10-bit value in the high bits of a 16-bit word (p010). */
__device__ __forceinline__ unsigned short to10(float v)
{
    return (unsigned short)((unsigned)fminf(fmaxf(rintf(v * 4.0f), 0.0f), 1023.0f) << 6);
}

extern "C" __global__ void vidfs_convert(cvt_params p)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    int cw = (p.dw + 1) / 2, ch = (p.dh + 1) / 2;
    int scw = (p.sw + 1) / 2, sch = (p.sh + 1) / 2;
    int chroma_out = p.out == CVT_OUT_NV12_UV || p.out == CVT_OUT_I420_UV ||
                     p.out == CVT_OUT_P010_UV;
    if (chroma_out ? x >= cw || y >= ch : x >= p.dw || y >= p.dh)
        return;
    int scaled = p.sw != p.dw || p.sh != p.dh;
    float scx = (float)p.sw / (float)p.dw, scy = (float)p.sh / (float)p.dh;
    /* Source position of this output pixel's centre, in luma samples. */
    float lx = ((float)x + 0.5f) * scx - 0.5f, ly = ((float)y + 0.5f) * scy - 0.5f;

    if (p.out == CVT_OUT_LUMA8 || p.out == CVT_OUT_LUMA16) {
        float v = scaled ? resample(p, 0, p.sw, p.sh, lx, ly, scx, scy).x : load(p, 0, x, y, 0);
        size_t i = (size_t)y * (size_t)p.dw + (size_t)x;
        if (p.out == CVT_OUT_LUMA8)
            ((unsigned char *)p.dst)[i] = to8(v);
        else
            ((unsigned short *)p.dst)[i] = to10(v);
        return;
    }
    if (chroma_out) {
        float2 c;
        if (scw == cw && sch == ch) {
            c = make_float2(load(p, 1, x, y, 0), load(p, 1, x, y, 1));
        } else {
            float sx = (float)scw / (float)cw, sy = (float)sch / (float)ch;
            c = resample(p, 1, scw, sch, ((float)x + 0.5f) * sx - 0.5f,
                         ((float)y + 0.5f) * sy - 0.5f, sx, sy);
        }
        size_t i = (size_t)y * (size_t)cw + (size_t)x;
        /* Sample by sample: the chroma plane starts right after w x h luma samples, so an
         * odd-sized view (1x1) leaves it unaligned for uchar2/ushort2 stores. */
        if (p.out == CVT_OUT_NV12_UV) {
            ((unsigned char *)p.dst)[2 * i] = to8(c.x);
            ((unsigned char *)p.dst)[2 * i + 1] = to8(c.y);
        } else if (p.out == CVT_OUT_P010_UV) {
            ((unsigned short *)p.dst)[2 * i] = to10(c.x);
            ((unsigned short *)p.dst)[2 * i + 1] = to10(c.y);
        } else {
            ((unsigned char *)p.dst)[i] = to8(c.x);
            ((unsigned char *)p.dst)[(size_t)cw * (size_t)ch + i] = to8(c.y);
        }
        return;
    }

    /* RGB, with chroma placed as swscale places it, since FFmpeg's rgb24 is what users
     * compare with: unscaled 8-bit, each 2x2 block shares its chroma sample (swscale's
     * special converter); otherwise chroma is filtered to half the output width (each value
     * serving two pixels) and the full output height, centred (swscale's generic path). */
    float yv;
    float2 c;
    if (!scaled && !p.hbd) {
        yv = load(p, 0, x, y, 0);
        c = make_float2(load(p, 1, x >> 1, y >> 1, 0), load(p, 1, x >> 1, y >> 1, 1));
    } else {
        yv = scaled ? resample(p, 0, p.sw, p.sh, lx, ly, scx, scy).x : load(p, 0, x, y, 0);
        float sx = (float)scw / (float)cw, sy = (float)sch / (float)p.dh;
        c = resample(p, 1, scw, sch, ((float)(x >> 1) + 0.5f) * sx - 0.5f,
                     ((float)y + 0.5f) * sy - 0.5f, sx, sy);
    }
    float Y = (yv - p.y_off) * p.y_mul;
    float U = (c.x - 128.0f) * p.c_mul, V = (c.y - 128.0f) * p.c_mul;
    unsigned char r = to8(Y + p.rv * V);
    unsigned char g = to8(Y + p.gu * U + p.gv * V);
    unsigned char b = to8(Y + p.bu * U);
    size_t i = (size_t)y * (size_t)p.dw + (size_t)x;
    if (p.out == CVT_OUT_RGB) {
        unsigned char *d = (unsigned char *)p.dst + 3 * i;
        d[0] = r, d[1] = g, d[2] = b;
    } else {
        size_t n = (size_t)p.dw * (size_t)p.dh;
        unsigned char *d = (unsigned char *)p.dst;
        d[i] = r, d[n + i] = g, d[2 * n + i] = b;
    }
}
