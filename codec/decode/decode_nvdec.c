/* NVDEC decode backend: FFmpeg's Annex-B bitstream filters, NVIDIA's parser and the
 * hardware decoder, with the CUDA driver and libnvcuvid loaded at run time (cuda.c).
 *
 * Flow: send_packet runs the packet through the bitstream filter and cuvidParseVideoData;
 * the parser calls back (on this thread, inside that call) for a new sequence (create or
 * reconfigure the decoder), for each picture in decode order (cuvidDecodePicture, which
 * only queues work on the engine) and for each picture in display order (queued here).
 * receive_frame maps the oldest displayed picture, copies its cropped planes into a
 * pooled device buffer on this decoder's stream, records an event for readers and unmaps
 * it at once (without waiting), so frames held by the frame cache never pin a surface.
 * The parser's display delay keeps a few pictures in flight on the engine while the
 * oldest one is copied. A request's lead-in (drop_before) is never mapped: only its
 * decode status is read, so the engine runs ahead through it (360p loader clips: +7-11%).
 *
 * Callbacks return 0/1 to the parser, so their errors are stored and reported after
 * cuvidParseVideoData returns. Pictures carry the packet pts through the parser's
 * timestamps: frame->pts is the source pts, which the layer above identifies frames by. */
#include "decode.h"
#include "averror.h"
#include "cuda.h"
#include "media.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <libavcodec/bsf.h>
#include <libavutil/pixdesc.h>

/* Pictures the parser holds back before display: lets the engine decode ahead of the copy
 * (the Video Codec SDK recommends 2..4). */
#define DISPLAY_DELAY 4
/* Surfaces beyond the parser's minimum and the display delay: room for displayed pictures
 * waiting in our queue before they are mapped. */
#define EXTRA_SURFACES 6
#define MAX_SURFACES 32
#define QUEUE_SIZE 64
/* Dropped pictures whose decode status is not read yet: read in a batch (one wait for the
 * newest covers the others), before their surfaces can be decoded into again. */
#define MAX_UNCHECKED 4
/* Device pitch of our frame buffers: keeps rows aligned for the kernels' wide loads. */
#define PITCH_ALIGN 256

struct nvdec_priv {
    int gpu;
    CUcontext ctx;
    CUstream stream;
    CUvideoparser parser;
    CUvideodecoder dec;
    AVBSFContext *bsf;
    AVCodecParameters *par;
    struct decode_opts opts;
    cudaVideoCodec codec;
    int bit_depth;

    /* The decoder as created, and the sequence it now decodes. */
    int dec_surfaces, dec_max_w, dec_max_h, dec_depth;
    int min_surfaces;
    int coded_w, coded_h, width, height;

    enum AVColorSpace colorspace;
    enum AVColorRange color_range;
    enum AVColorPrimaries color_primaries;
    enum AVColorTransferCharacteristic color_trc;

    CUVIDPARSERDISPINFO queue[QUEUE_SIZE];
    int q_head, q_len;
    int draining;
    /* HEVC, from a fresh parser (lead_first): pts of the first picture when it is a CRA,
     * while the packets after it are its leading pictures (see drop_leading);
     * AV_NOPTS_VALUE once past them. */
    int64_t lead_pts;
    int lead_first;
    int skip;            /* leave out pictures nothing refers to (seeking far) */
    int hevc_sub_layers; /* from the last SPS; 0: none seen */
    int error; /* first error a parser callback met, negative errno */

    /* Displayed pictures with a pts below this are dropped unmapped (drop_before). */
    int64_t drop_below;
    int dropped;        /* since the last drop_before call */
    int dropped_damage; /* a dropped picture was damaged: reported by concealed() */
    CUVIDPARSERDISPINFO unchecked[MAX_UNCHECKED];
    int nb_unchecked;

    AVBufferPool *pool;
    size_t pool_size;
    int pitch;
    AVBufferPool *desc_pool; /* struct cuda_frame_desc, our frames' opaque_ref */
};

static cudaVideoCodec cuvid_codec(enum AVCodecID id)
{
    switch (id) {
    case AV_CODEC_ID_H264:
        return cudaVideoCodec_H264;
    case AV_CODEC_ID_HEVC:
        return cudaVideoCodec_HEVC;
    case AV_CODEC_ID_VP9:
        return cudaVideoCodec_VP9;
    case AV_CODEC_ID_AV1:
        return cudaVideoCodec_AV1;
    default:
        /* MPEG-2/4 and VC-1 are left to the CPU: their IDCT is not bit-exact by
         * specification, so NVDEC output would differ from FFmpeg's. */
        return cudaVideoCodec_NumCodecs;
    }
}

/* 4:2:0 only: our frames and kernels know NV12 and P016. */
static int stream_format(const AVCodecParameters *par, int *depth)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(par->format);
    if (!d || d->nb_components != 3 || d->log2_chroma_w != 1 || d->log2_chroma_h != 1 ||
        (d->flags & AV_PIX_FMT_FLAG_RGB))
        return -ENOTSUP;
    *depth = d->comp[0].depth;
    return *depth == 8 || *depth == 10 || *depth == 12 ? 0 : -ENOTSUP;
}

/* cuvidGetDecoderCaps answers, kept: the pool asks for every file it opens. */
struct caps_entry {
    int gpu;
    cudaVideoCodec codec;
    int depth;
    CUVIDDECODECAPS caps;
};
static pthread_mutex_t caps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct caps_entry caps_cache[32];
static int caps_count;

static int get_caps(int gpu, cudaVideoCodec codec, int depth, CUVIDDECODECAPS *out)
{
    int ret = 0;
    pthread_mutex_lock(&caps_lock);
    for (int i = 0; i < caps_count; i++) {
        const struct caps_entry *e = &caps_cache[i];
        if (e->gpu == gpu && e->codec == codec && e->depth == depth) {
            *out = e->caps;
            goto done;
        }
    }
    CUcontext ctx;
    if ((ret = cuda_context(gpu, &ctx)) < 0)
        goto done;
    if (!cuda_cuvid->cuvidGetDecoderCaps) {
        ret = -ENOTSUP;
        goto done;
    }
    CUVIDDECODECAPS caps = {
        .eCodecType = codec,
        .eChromaFormat = cudaVideoChromaFormat_420,
        .nBitDepthMinus8 = (unsigned)depth - 8,
    };
    if ((ret = cuda_push(ctx)) < 0)
        goto done;
    ret = CU(cuda_cuvid->cuvidGetDecoderCaps(&caps));
    cuda_pop();
    if (ret < 0)
        goto done;
    *out = caps;
    if (caps_count < (int)(sizeof(caps_cache) / sizeof(caps_cache[0])))
        caps_cache[caps_count++] = (struct caps_entry){gpu, codec, depth, caps};
done:
    pthread_mutex_unlock(&caps_lock);
    return ret;
}

static int nvdec_supports(const AVCodecParameters *par, const struct decode_opts *opts)
{
    cudaVideoCodec codec = cuvid_codec(par->codec_id);
    int depth;
    if (codec == cudaVideoCodec_NumCodecs || stream_format(par, &depth) < 0)
        return -ENOTSUP;
    if (cuda_init() < 0)
        return -ENOTSUP;
    CUVIDDECODECAPS caps;
    if (get_caps(opts->gpu, codec, depth, &caps) < 0 || !caps.bIsSupported)
        return -ENOTSUP;
    unsigned surface = depth > 8 ? cudaVideoSurfaceFormat_P016 : cudaVideoSurfaceFormat_NV12;
    unsigned w = (unsigned)par->width, h = (unsigned)par->height;
    unsigned mbs = ((w + 15) / 16) * ((h + 15) / 16);
    if (!(caps.nOutputFormatMask & (1u << surface)) || w > caps.nMaxWidth ||
        h > caps.nMaxHeight || w < caps.nMinWidth || h < caps.nMinHeight ||
        mbs > caps.nMaxMBCount)
        return -ENOTSUP;
    return 0;
}

/* The stream's colour description: the container's/probe's when it has one, else the
 * sequence header's (as libavcodec's own frames would say). */
static void set_colour(struct nvdec_priv *p, const CUVIDEOFORMAT *fmt)
{
    const AVCodecParameters *par = p->par;
    unsigned mc = fmt->video_signal_description.matrix_coefficients;
    p->colorspace = par->color_space;
    if (p->colorspace == AVCOL_SPC_UNSPECIFIED && mc != AVCOL_SPC_RGB &&
        mc != AVCOL_SPC_UNSPECIFIED && mc < AVCOL_SPC_NB)
        p->colorspace = (enum AVColorSpace)mc;
    p->color_range = fmt->video_signal_description.video_full_range_flag ? AVCOL_RANGE_JPEG
                                                                         : par->color_range;
    p->color_primaries = par->color_primaries;
    p->color_trc = par->color_trc;
}

static void destroy_decoder(struct nvdec_priv *p)
{
    if (p->dec)
        CU(cuda_cuvid->cuvidDestroyDecoder(p->dec));
    p->dec = NULL;
    p->dec_surfaces = 0;
}

static int create_decoder(struct nvdec_priv *p, const CUVIDEOFORMAT *fmt, int surfaces)
{
    int depth = fmt->bit_depth_luma_minus8 + 8;
    int max_w = FFMAX((int)fmt->coded_width, p->opts.max_width);
    int max_h = FFMAX((int)fmt->coded_height, p->opts.max_height);
    CUVIDDECODECAPS caps;
    if (get_caps(p->gpu, p->codec, depth, &caps) == 0 && caps.bIsSupported) {
        max_w = FFMIN(max_w, (int)caps.nMaxWidth);
        max_h = FFMIN(max_h, (int)caps.nMaxHeight);
    }
    CUVIDDECODECREATEINFO ci = {
        .ulWidth = fmt->coded_width,
        .ulHeight = fmt->coded_height,
        .ulNumDecodeSurfaces = (unsigned)surfaces,
        .CodecType = fmt->codec,
        .ChromaFormat = fmt->chroma_format,
        .ulCreationFlags = cudaVideoCreate_PreferCUVID,
        .bitDepthMinus8 = fmt->bit_depth_luma_minus8,
        .ulMaxWidth = (unsigned)max_w,
        .ulMaxHeight = (unsigned)max_h,
        .display_area = {(short)fmt->display_area.left, (short)fmt->display_area.top,
                         (short)fmt->display_area.right, (short)fmt->display_area.bottom},
        .OutputFormat = depth > 8 ? cudaVideoSurfaceFormat_P016 : cudaVideoSurfaceFormat_NV12,
        /* Weave: one frame per displayed picture, fields interleaved, as libavcodec. */
        .DeinterlaceMode = cudaVideoDeinterlaceMode_Weave,
        .ulTargetWidth = (unsigned)p->width,
        .ulTargetHeight = (unsigned)p->height,
        .ulNumOutputSurfaces = 2,
    };
    int ret = CU(cuda_cuvid->cuvidCreateDecoder(&p->dec, &ci));
    if (ret < 0) {
        p->dec = NULL;
        return ret;
    }
    p->dec_surfaces = surfaces;
    p->dec_max_w = max_w;
    p->dec_max_h = max_h;
    p->dec_depth = depth;
    log_debug("nvdec: decoder %ux%u (max %dx%d), %d-bit, %d surfaces", fmt->coded_width,
              fmt->coded_height, max_w, max_h, depth, surfaces);
    return 0;
}

static int handle_sequence(struct nvdec_priv *p, const CUVIDEOFORMAT *fmt)
{
    if (fmt->codec != p->codec || fmt->chroma_format != cudaVideoChromaFormat_420)
        return -ENOTSUP;
    int depth = fmt->bit_depth_luma_minus8 + 8;
    int min = fmt->min_num_decode_surfaces ? fmt->min_num_decode_surfaces : 20;
    int surfaces = FFMIN(FFMAX(min + DISPLAY_DELAY + EXTRA_SURFACES, p->dec_surfaces),
                         MAX_SURFACES);
    surfaces = FFMAX(surfaces, min);
    int w = fmt->display_area.right - fmt->display_area.left;
    int h = fmt->display_area.bottom - fmt->display_area.top;
    if (w <= 0 || h <= 0)
        return -EIO;
    int same = p->dec && p->coded_w == (int)fmt->coded_width &&
               p->coded_h == (int)fmt->coded_height && p->width == w && p->height == h;
    p->width = w;
    p->height = h;
    p->min_surfaces = min;
    set_colour(p, fmt);
    int ret = 0;
    if (p->dec && !same) {
        int fits = depth == p->dec_depth && (int)fmt->coded_width <= p->dec_max_w &&
                   (int)fmt->coded_height <= p->dec_max_h &&
                   min + DISPLAY_DELAY + 2 <= p->dec_surfaces &&
                   cuda_cuvid->cuvidReconfigureDecoder;
        if (fits) {
            CUVIDRECONFIGUREDECODERINFO ri = {
                .ulWidth = fmt->coded_width,
                .ulHeight = fmt->coded_height,
                .ulTargetWidth = (unsigned)w,
                .ulTargetHeight = (unsigned)h,
                .ulNumDecodeSurfaces = (unsigned)p->dec_surfaces,
                .display_area = {(short)fmt->display_area.left, (short)fmt->display_area.top,
                                 (short)fmt->display_area.right,
                                 (short)fmt->display_area.bottom},
            };
            if (CU(cuda_cuvid->cuvidReconfigureDecoder(p->dec, &ri)) < 0)
                destroy_decoder(p);
        } else {
            destroy_decoder(p);
        }
    }
    if (!p->dec && (ret = create_decoder(p, fmt, surfaces)) < 0)
        return ret;
    p->coded_w = (int)fmt->coded_width;
    p->coded_h = (int)fmt->coded_height;

    /* The frame buffers: cropped planes, luma then chroma, one pitch. */
    int bps = depth > 8 ? 2 : 1;
    int pitch = FFALIGN(w * bps, PITCH_ALIGN);
    size_t size = (size_t)pitch * (size_t)(h + (h + 1) / 2);
    if (!p->pool || size != p->pool_size || pitch != p->pitch) {
        av_buffer_pool_uninit(&p->pool);
        p->pool = cuda_buffer_pool_new(p->gpu, size);
        if (!p->pool)
            return -ENOMEM;
        p->pool_size = size;
        p->pitch = pitch;
    }
    p->bit_depth = depth;
    return p->dec_surfaces;
}

static int CUDAAPI sequence_cb(void *opaque, CUVIDEOFORMAT *fmt)
{
    struct nvdec_priv *p = opaque;
    int ret = handle_sequence(p, fmt);
    if (ret < 0) {
        if (!p->error)
            p->error = ret;
        return 0;
    }
    return ret; /* > 1: the parser cycles through this many surfaces */
}

/* 1 when picture idx decoded with errors, 0 when clean or unknown (no status call), -EAGAIN
 * while it is being decoded. Call with the context pushed. */
static int decode_damaged(struct nvdec_priv *p, int idx)
{
    if (!cuda_cuvid->cuvidGetDecodeStatus)
        return 0;
    CUVIDGETDECODESTATUS st = {0};
    if (cuda_cuvid->cuvidGetDecodeStatus(p->dec, idx, &st) != CUDA_SUCCESS)
        return 0;
    if (st.decodeStatus == cuvidDecodeStatus_InProgress)
        return -EAGAIN;
    return st.decodeStatus == cuvidDecodeStatus_Error ||
           st.decodeStatus == cuvidDecodeStatus_Error_Concealed;
}

static CUVIDPROCPARAMS proc_params(const struct nvdec_priv *p, const CUVIDPARSERDISPINFO *disp)
{
    return (CUVIDPROCPARAMS){
        .progressive_frame = disp->progressive_frame,
        .second_field = disp->repeat_first_field + 1,
        .top_field_first = disp->top_field_first,
        .unpaired_field = disp->repeat_first_field < 0,
        .output_stream = p->stream,
    };
}

/* Reads the status of the dropped pictures, newest first: mapping waits for a picture
 * (and the engine decodes a decoder's pictures in order), so one wait at most. Call with
 * the context pushed. */
static void check_dropped(struct nvdec_priv *p)
{
    for (int i = p->nb_unchecked - 1; i >= 0; i--) {
        const CUVIDPARSERDISPINFO *disp = &p->unchecked[i];
        int damaged = decode_damaged(p, disp->picture_index);
        if (damaged == -EAGAIN) {
            CUVIDPROCPARAMS pp = proc_params(p, disp);
            CUdeviceptr src = 0;
            unsigned pitch = 0;
            if (CU(cuda_cuvid->cuvidMapVideoFrame(p->dec, disp->picture_index, &src, &pitch,
                                                  &pp)) == 0)
                CU(cuda_cuvid->cuvidUnmapVideoFrame(p->dec, src));
            damaged = decode_damaged(p, disp->picture_index);
        }
        p->dropped_damage |= damaged == 1;
    }
    p->nb_unchecked = 0;
}

static int CUDAAPI decode_cb(void *opaque, CUVIDPICPARAMS *pic)
{
    struct nvdec_priv *p = opaque;
    if (!p->dec) {
        if (!p->error)
            p->error = -EIO;
        return 0;
    }
    int idx = pic->CurrPicIdx;
    if (idx < 0 || idx >= QUEUE_SIZE)
        return 0;
    log_debug("nvdec %p: decode surface %d%s%s", (void *)p, idx, pic->intra_pic_flag ? " intra" : "",
              pic->ref_pic_flag ? " ref" : "");
    for (int i = 0; i < p->nb_unchecked; i++)
        if (p->unchecked[i].picture_index == idx)
            check_dropped(p); /* its status goes with this decode */
    int ret = CU(cuda_cuvid->cuvidDecodePicture(p->dec, pic));
    if (ret < 0) {
        if (!p->error)
            p->error = ret;
        return 0;
    }
    return 1;
}

static int CUDAAPI display_cb(void *opaque, CUVIDPARSERDISPINFO *disp)
{
    struct nvdec_priv *p = opaque;
    if (!disp) /* end-of-stream notice */
        return 1;
    if (disp->picture_index < 0 || disp->picture_index >= QUEUE_SIZE)
        return 1;
    if (p->q_len == QUEUE_SIZE) {
        if (!p->error)
            p->error = -EIO;
        return 0;
    }
    p->queue[(p->q_head + p->q_len++) % QUEUE_SIZE] = *disp;
    log_debug("nvdec %p: display surface %d pts %lld", (void *)p, disp->picture_index,
              (long long)disp->timestamp);
    return 1;
}

static int parse(struct nvdec_priv *p, const uint8_t *data, int size, int64_t pts,
                 unsigned long flags)
{
    CUVIDSOURCEDATAPACKET pkt = {
        .flags = flags,
        .payload_size = (unsigned long)size,
        .payload = data,
    };
    if (pts != AV_NOPTS_VALUE) {
        pkt.flags |= CUVID_PKT_TIMESTAMP;
        pkt.timestamp = pts;
    }
    log_debug("nvdec %p: parse %d bytes pts %lld flags %#lx", (void *)p, size, (long long)pts,
              pkt.flags);
    int ret = CU(cuda_cuvid->cuvidParseVideoData(p->parser, &pkt));
    if (p->error) {
        ret = p->error;
        p->error = 0;
    }
    return ret;
}

/* Parameter sets as Annex B, for a parser that starts afresh (open, flush). */
static int send_extradata(struct nvdec_priv *p)
{
    const AVCodecParameters *par = p->bsf ? p->bsf->par_out : p->par;
    if (!par->extradata_size || p->codec == cudaVideoCodec_VP9)
        return 0;
    const uint8_t *data = par->extradata;
    int size = par->extradata_size;
    if (p->codec == cudaVideoCodec_AV1) {
        if (size <= 4) /* av1C: a 4-byte header, then the sequence header OBUs */
            return 0;
        data += 4, size -= 4;
    }
    return parse(p, data, size, AV_NOPTS_VALUE, 0);
}

static void destroy_parser(struct nvdec_priv *p)
{
    if (p->parser)
        CU(cuda_cuvid->cuvidDestroyVideoParser(p->parser));
    p->parser = NULL;
}

/* Call with the context pushed. */
static int create_parser(struct nvdec_priv *p)
{
    destroy_parser(p);
    CUVIDPARSERPARAMS pp = {
        .CodecType = p->codec,
        .ulMaxNumDecodeSurfaces = 1, /* the sequence callback answers the real number */
        .ulMaxDisplayDelay = DISPLAY_DELAY,
        .pUserData = p,
        .pfnSequenceCallback = sequence_cb,
        .pfnDecodePicture = decode_cb,
        .pfnDisplayPicture = display_cb,
    };
    int ret = CU(cuda_cuvid->cuvidCreateVideoParser(&p->parser, &pp));
    if (ret < 0) {
        p->parser = NULL;
        return ret;
    }
    p->q_head = p->q_len = 0;
    /* The run they led into is over, nothing was served from it: their damage, unseen or
     * unreported, must not mark the next run (perhaps of another file). */
    p->nb_unchecked = 0;
    p->dropped_damage = 0;
    p->draining = 0;
    p->error = 0;
    p->lead_first = p->codec == cudaVideoCodec_HEVC;
    p->lead_pts = AV_NOPTS_VALUE;
    return send_extradata(p);
}

static int create_bsf(struct nvdec_priv *p)
{
    av_bsf_free(&p->bsf);
    const char *name = media_annexb_filter(p->par->codec_id);
    if (!name)
        return 0;
    const AVBitStreamFilter *f = av_bsf_get_by_name(name);
    if (!f)
        return -ENOTSUP;
    int ret = av_bsf_alloc(f, &p->bsf);
    if (ret >= 0)
        ret = avcodec_parameters_copy(p->bsf->par_in, p->par);
    if (ret >= 0)
        ret = av_bsf_init(p->bsf);
    if (ret < 0) {
        log_error("nvdec: %s: %s", name, av_err2str(ret));
        av_bsf_free(&p->bsf);
        return averror_errno(ret);
    }
    return 0;
}

static void nvdec_close(void *priv)
{
    struct nvdec_priv *p = priv;
    if (p->ctx && cuda_push(p->ctx) == 0) {
        destroy_parser(p);
        destroy_decoder(p);
        if (p->stream)
            CU(cuda_cu->cuStreamDestroy(p->stream));
        cuda_pop();
    }
    p->stream = NULL;
    av_bsf_free(&p->bsf);
    avcodec_parameters_free(&p->par);
    av_buffer_pool_uninit(&p->pool);
    av_buffer_pool_uninit(&p->desc_pool);
}

static int nvdec_open(void *priv, const AVCodecParameters *par, const struct decode_opts *opts)
{
    struct nvdec_priv *p = priv;
    p->opts = *opts;
    p->drop_below = AV_NOPTS_VALUE;
    p->gpu = opts->gpu;
    p->codec = cuvid_codec(par->codec_id);
    if (p->codec == cudaVideoCodec_NumCodecs || stream_format(par, &p->bit_depth) < 0)
        return -ENOTSUP;
    int ret = cuda_context(p->gpu, &p->ctx);
    if (ret < 0)
        return ret;
    if (!(p->par = avcodec_parameters_alloc()))
        return -ENOMEM;
    if ((ret = avcodec_parameters_copy(p->par, par)) < 0) {
        ret = averror_errno(ret);
        goto fail;
    }
    if ((ret = create_bsf(p)) < 0)
        goto fail;
    if ((ret = cuda_push(p->ctx)) < 0)
        goto fail;
    ret = CU(cuda_cu->cuStreamCreate(&p->stream, CU_STREAM_NON_BLOCKING));
    if (ret == 0 && !(p->desc_pool = cuda_desc_pool_new(p->gpu)))
        ret = -ENOMEM;
    if (ret == 0)
        ret = create_parser(p);
    cuda_pop();
    if (ret < 0)
        goto fail;
    return 0;
fail:
    nvdec_close(p);
    return ret;
}

/* Same codec, bit depth and chroma, and a size that fits the decoder: the next stream is
 * parsed afresh and its sequence callback reconfigures the decoder in place. */
static int nvdec_reconfigure(void *priv, const AVCodecParameters *par)
{
    struct nvdec_priv *p = priv;
    int depth;
    if (cuvid_codec(par->codec_id) != p->codec || stream_format(par, &depth) < 0 ||
        depth != p->bit_depth)
        return -EINVAL;
    int max_w = p->dec ? p->dec_max_w : p->opts.max_width;
    int max_h = p->dec ? p->dec_max_h : p->opts.max_height;
    if (par->width > max_w || par->height > max_h)
        return -EINVAL;
    int ret = avcodec_parameters_copy(p->par, par);
    if (ret < 0)
        return averror_errno(ret);
    if ((ret = create_bsf(p)) < 0)
        return ret;
    if ((ret = cuda_push(p->ctx)) < 0)
        return ret;
    ret = create_parser(p);
    cuda_pop();
    return ret < 0 ? -EINVAL : 0;
}

/* Displayed pictures wait in our queue unmapped; the parser may reuse a surface once it
 * has displayed it, so the queue stays below the surfaces it does not count on. */
static int queue_full(const struct nvdec_priv *p)
{
    int room = p->dec_surfaces - p->min_surfaces - DISPLAY_DELAY;
    return p->q_len >= FFMAX(room, 2);
}

/* NAL unit type of the first picture slice in Annex B data, -1 if none. */
/* Offset of the first NAL header byte after a start code at or after *pos, moving *pos
 * past it; -1 at the end of the data. */
static int next_nal(const uint8_t *d, int size, int *pos)
{
    for (int i = *pos; i + 3 < size; i++) {
        if (d[i] || d[i + 1] || d[i + 2] != 1)
            continue;
        *pos = i + 3;
        return i + 3;
    }
    return -1;
}

static int hevc_first_vcl_type(const uint8_t *d, int size)
{
    for (int pos = 0, h; (h = next_nal(d, size, &pos)) >= 0;) {
        int type = (d[h] >> 1) & 0x3f;
        if (type < 32)
            return type;
    }
    return -1;
}

/* 1 when no other picture refers to this one (Annex B): H.264 slices with nal_ref_idc 0;
 * HEVC sub-layer non-reference slices (the even types below 16) in a stream of one
 * sub-layer (with more, a higher layer may refer to them). The first slice decides: every
 * slice of a picture has the same reference flag (H.264) and type (HEVC). Notes the HEVC
 * sub-layer count from the SPS, which a run from a keyframe meets before its pictures. */
static int picture_is_nonref(struct nvdec_priv *p, const uint8_t *d, int size)
{
    for (int pos = 0, h; (h = next_nal(d, size, &pos)) >= 0;) {
        if (p->codec == cudaVideoCodec_H264) {
            int type = d[h] & 0x1f;
            if (type >= 1 && type <= 5)
                return type != 5 && !(d[h] >> 5);
        } else if (p->codec == cudaVideoCodec_HEVC && h + 2 < size) {
            int type = (d[h] >> 1) & 0x3f;
            if (type == 33) /* SPS: vps id (4 bits), sps_max_sub_layers_minus1 (3 bits) */
                p->hevc_sub_layers = ((d[h + 2] >> 1) & 7) + 1;
            if (type < 32)
                return type < 16 && !(type & 1) && p->hevc_sub_layers == 1;
        } else {
            return 0;
        }
    }
    return 0;
}

/* 1 when a packet (Annex B) is a leading picture of the CRA the parser started from. Such
 * pictures (RASL) cannot be decoded and are not shown, but NVIDIA's HEVC parser gives
 * their timestamp to the CRA (seen on the H100: the CRA of pts 600 displayed with the pts
 * 560 of the last RASL before it), so the CRA would pass for another frame. Leading
 * pictures come right after their IRAP picture in decode order and no later picture
 * refers to them, so they are left out; the layer above starts a GOP earlier for the
 * frames they show. */
static int drop_leading(struct nvdec_priv *p, const uint8_t *data, int size, int64_t pts)
{
    enum { BLA_W_LP = 16, CRA_NUT = 21 };
    if (p->lead_first) {
        p->lead_first = 0;
        int type = hevc_first_vcl_type(data, size);
        p->lead_pts = type == CRA_NUT || type == BLA_W_LP ? pts : AV_NOPTS_VALUE;
        return 0;
    }
    if (p->lead_pts == AV_NOPTS_VALUE)
        return 0;
    if (pts != AV_NOPTS_VALUE && pts < p->lead_pts) {
        log_debug("nvdec %p: leading picture pts %lld left out", (void *)p, (long long)pts);
        return 1;
    }
    p->lead_pts = AV_NOPTS_VALUE;
    return 0;
}

/* One picture's Annex B data to the parser. Pictures nothing refers to are left out
 * before the parser while skipping: the parser itself hands a picture on only when the
 * next begins, so a skip decided there lands on the wrong picture. */
static int send_picture(struct nvdec_priv *p, const uint8_t *data, int size, int64_t pts)
{
    if (drop_leading(p, data, size, pts))
        return 0;
    if (p->skip && picture_is_nonref(p, data, size))
        return 0;
    return parse(p, data, size, pts, CUVID_PKT_ENDOFPICTURE);
}

static int nvdec_send_packet(void *priv, const AVPacket *pkt)
{
    struct nvdec_priv *p = priv;
    if (p->draining)
        return pkt ? -EAGAIN : -ENODATA;
    if (pkt && queue_full(p))
        return -EAGAIN;
    int ret = cuda_push(p->ctx);
    if (ret < 0)
        return ret;
    if (!pkt) {
        p->draining = 1;
        ret = parse(p, NULL, 0, AV_NOPTS_VALUE, CUVID_PKT_ENDOFSTREAM);
    } else if (!p->bsf) {
        ret = send_picture(p, pkt->data, pkt->size, pkt->pts);
    } else {
        AVPacket *bp = av_packet_alloc();
        int averr = bp ? av_packet_ref(bp, pkt) : AVERROR(ENOMEM);
        if (averr >= 0)
            averr = av_bsf_send_packet(p->bsf, bp);
        while (averr >= 0 && ret >= 0 && (averr = av_bsf_receive_packet(p->bsf, bp)) >= 0) {
            ret = send_picture(p, bp->data, bp->size, bp->pts);
            av_packet_unref(bp);
        }
        if (ret >= 0 && averr < 0 && averr != AVERROR(EAGAIN))
            ret = averror_errno(averr);
        av_packet_free(&bp);
    }
    cuda_pop();
    return ret;
}

/* Takes the next displayed picture off the queue. */
static CUVIDPARSERDISPINFO pop(struct nvdec_priv *p)
{
    CUVIDPARSERDISPINFO disp = p->queue[p->q_head];
    p->q_head = (p->q_head + 1) % QUEUE_SIZE;
    p->q_len--;
    return disp;
}

/* Drops the displayed pictures below drop_below, noting them for check_dropped. */
static int drop_lead_in(struct nvdec_priv *p)
{
    if (p->drop_below == AV_NOPTS_VALUE || !p->q_len ||
        p->queue[p->q_head].timestamp >= p->drop_below)
        return 0;
    int ret = cuda_push(p->ctx);
    if (ret < 0)
        return ret;
    while (p->q_len && p->queue[p->q_head].timestamp < p->drop_below) {
        if (p->nb_unchecked == MAX_UNCHECKED)
            check_dropped(p);
        p->unchecked[p->nb_unchecked++] = pop(p);
        p->dropped++;
    }
    cuda_pop();
    return 0;
}

static int nvdec_receive_frame(void *priv, AVFrame *frame)
{
    struct nvdec_priv *p = priv;
    int ret = drop_lead_in(p);
    if (ret < 0)
        return ret;
    if (!p->q_len)
        return p->draining ? -ENODATA : -EAGAIN;
    CUVIDPARSERDISPINFO disp = pop(p);

    AVBufferRef *buf = av_buffer_pool_get(p->pool);
    AVBufferRef *desc = av_buffer_pool_get(p->desc_pool);
    if (!buf || !desc) {
        av_buffer_unref(&buf);
        av_buffer_unref(&desc);
        return -ENOMEM;
    }
    ret = cuda_push(p->ctx);
    if (ret < 0)
        goto fail;
    CUVIDPROCPARAMS pp = proc_params(p, &disp);
    CUdeviceptr src = 0;
    unsigned src_pitch = 0;
    ret = CU(cuda_cuvid->cuvidMapVideoFrame(p->dec, disp.picture_index, &src, &src_pitch, &pp));
    if (ret < 0)
        goto pop;
    int damaged = decode_damaged(p, disp.picture_index) == 1;
    check_dropped(p); /* decoded before this one: done by now */
    int w = p->width, h = p->height, bps = p->bit_depth > 8 ? 2 : 1;
    CUdeviceptr dst = (CUdeviceptr)(uintptr_t)buf->data;
    /* The mapped surface has the target size; its chroma starts after an even row count. */
    size_t pitch = (size_t)p->pitch;
    ret = cuda_copy_2d(src, src_pitch, NULL, dst, pitch, (size_t)w * (size_t)bps, (size_t)h,
                       p->stream);
    if (ret == 0)
        ret = cuda_copy_2d(src + (CUdeviceptr)src_pitch * (CUdeviceptr)((h + 1) & ~1),
                           src_pitch, NULL, dst + (CUdeviceptr)pitch * (CUdeviceptr)h, pitch,
                           (size_t)((w + 1) & ~1) * (size_t)bps, (size_t)(h + 1) / 2,
                           p->stream);
    /* The surface goes back to the decoder at once: the unmap is ordered after the copy
     * on this stream (FFmpeg's nvdec relies on the same). Readers wait for the event. */
    struct cuda_frame_desc *d = (void *)desc->data;
    *d = (struct cuda_frame_desc){.magic = CUDA_FRAME_MAGIC, .gpu = p->gpu,
                                  .bit_depth = p->bit_depth, .ready = d->ready};
    int sret = CU(cuda_cu->cuEventRecord(d->ready, p->stream));
    d->pending = sret == 0;
    int uret = CU(cuda_cuvid->cuvidUnmapVideoFrame(p->dec, src));
    ret = ret < 0 ? ret : sret < 0 ? sret : uret;
pop:
    cuda_pop();
    if (ret < 0)
        goto fail;
    frame->format = AV_PIX_FMT_CUDA;
    frame->width = w;
    frame->height = h;
    frame->buf[0] = buf;
    frame->data[0] = buf->data;
    frame->data[1] = buf->data + (size_t)p->pitch * (size_t)h;
    frame->linesize[0] = frame->linesize[1] = p->pitch;
    frame->opaque_ref = desc;
    frame->pts = disp.timestamp;
    frame->best_effort_timestamp = disp.timestamp;
    frame->colorspace = p->colorspace;
    frame->color_range = p->color_range;
    frame->color_primaries = p->color_primaries;
    frame->color_trc = p->color_trc;
    frame->sample_aspect_ratio = p->par->sample_aspect_ratio;
    frame->decode_error_flags = damaged ? FF_DECODE_ERROR_CONCEALMENT_ACTIVE : 0;
    return 0;
fail:
    av_buffer_unref(&buf);
    av_buffer_unref(&desc);
    return ret;
}

/* After a seek: the parser's reference and display state belongs to the old position, so
 * it is made anew (cheap, on the CPU), as FFmpeg's cuviddec does; the decoder and its
 * surfaces stay, and the next sequence header finds them fitting. */
static void nvdec_flush(void *priv)
{
    struct nvdec_priv *p = priv;
    log_debug("nvdec %p: flush", (void *)p);
    if (p->bsf)
        av_bsf_flush(p->bsf);
    if (cuda_push(p->ctx) < 0)
        return;
    create_parser(p);
    cuda_pop();
}

static int nvdec_probe(void)
{
    return cuda_probe_device_count() > 0 ? 0 : -ENODEV;
}

static int nvdec_drop_before(void *priv, int64_t pts)
{
    struct nvdec_priv *p = priv;
    int n = p->dropped;
    p->dropped = 0;
    p->drop_below = pts;
    return n;
}

static int nvdec_concealed(void *priv)
{
    struct nvdec_priv *p = priv;
    int ret = p->dropped_damage;
    p->dropped_damage = 0;
    return ret;
}

static void nvdec_skip_nonref(void *priv, int skip)
{
    ((struct nvdec_priv *)priv)->skip = skip;
}

const struct decode_backend decode_nvdec = {
    .name = "nvdec",
    .priv_size = sizeof(struct nvdec_priv),
    .gpu = 1,
    .probe = nvdec_probe,
    .supports = nvdec_supports,
    .open = nvdec_open,
    .reconfigure = nvdec_reconfigure,
    .send_packet = nvdec_send_packet,
    .receive_frame = nvdec_receive_frame,
    .flush = nvdec_flush,
    .skip_nonref = nvdec_skip_nonref,
    .drop_before = nvdec_drop_before,
    .concealed = nvdec_concealed,
    .close = nvdec_close,
};
