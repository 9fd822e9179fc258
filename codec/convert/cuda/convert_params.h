/* Parameters of the conversion kernels, shared by convert.cu and convert_cuda.c: one
 * struct passed by value, so both sides must see the same layout (plain C types only). */
#ifndef VIDFS_CUDA_CONVERT_PARAMS_H
#define VIDFS_CUDA_CONVERT_PARAMS_H

enum cvt_filter { CVT_NEAREST, CVT_BILINEAR, CVT_BICUBIC };

/* The widest a filter grows when shrinking, in source samples per output sample; views
 * shrunk further are left to the CPU (swscale's filter spans the whole step). */
#define CVT_MAX_FILTER_SCALE 32

/* What the kernels write, in the byte layout of the frame file (no padding). */
enum cvt_out {
    CVT_OUT_LUMA8,      /* Y plane (gray, first plane of nv12 / yuv420p) */
    CVT_OUT_LUMA16,     /* Y plane, 16-bit words, value in the high bits (p010) */
    CVT_OUT_NV12_UV,    /* interleaved U,V */
    CVT_OUT_I420_UV,    /* U plane, then V plane */
    CVT_OUT_P010_UV,    /* interleaved U,V, 16-bit words */
    CVT_OUT_RGB,        /* packed R,G,B */
    CVT_OUT_RGBP,       /* planes R, G, B */
};

struct cvt_params {
    unsigned long long y, uv; /* source planes (device): luma, interleaved chroma */
    int y_pitch, uv_pitch;
    int sw, sh;               /* source luma size */
    int hbd;                  /* samples are 16-bit words (P016), value in the high bits */
    int filter;               /* enum cvt_filter, for scaled outputs */
    unsigned long long dst;   /* output (device), tightly packed */
    int dw, dh;               /* output luma size */
    int out;                  /* enum cvt_out */
    /* YUV to RGB on an 8-bit scale: Y' = (Y - y_off) * y_mul, C' = (C - 128) * c_mul,
     * R = Y' + rv C'r, G = Y' + gu C'b + gv C'r, B = Y' + bu C'b. */
    float y_off, y_mul, c_mul;
    float rv, gu, gv, bu;
};

#endif
