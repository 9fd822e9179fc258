/* Decode backends: a vtable per implementation (libavcodec on the CPU, NVDEC), so adding
 * a backend is a new file. A backend turns packets of one stream into frames in display
 * order, like avcodec's send/receive API; seeking, frame identity and caching live above
 * it (decoder.c). */
#ifndef VIDFS_DECODE_H
#define VIDFS_DECODE_H

#include <stddef.h>

#include <libavcodec/avcodec.h>

/* GPUs one process decodes on at most. */
#define DECODE_MAX_GPUS 16

struct frame_cache;

struct decode_opts {
    int threads;    /* codec threads, 0 = automatic */
    /* CPU backend: pictures are decoded into the frame cache's buffers, so the cache keeps
     * them without a copy and their memory is recycled (NULL: libavcodec's own). */
    struct frame_cache *buffers;
    int gpu;        /* CUDA ordinal for GPU backends */
    int max_width;  /* GPU decoders are created this large so reconfigure fits */
    int max_height;
};

struct decode_backend {
    const char *name;
    size_t priv_size; /* zeroed before open */
    int gpu;          /* decodes on a GPU (decode_opts.gpu): frames are counted per GPU */
    /* Opened with threads = 1, it conceals damaged pictures as `ffmpeg -threads 1` does,
     * the same every time; with frame threads concealment varies from run to run
     * (decoder.c), and the concealed() op says when it happened. */
    int exact_single;

    /* Optional (NULL: always usable): 0 when this machine can run the backend, else a
     * negative errno. Called before the daemon forks, so it starts nothing in this
     * process that would not survive a fork (CUDA). */
    int (*probe)(void);

    /* 0 when this backend can decode a stream with these parameters, -ENOTSUP if not. */
    int (*supports)(const AVCodecParameters *par, const struct decode_opts *opts);
    int (*open)(void *priv, const AVCodecParameters *par, const struct decode_opts *opts);
    /* Reuse an open decoder for another stream (another file): 0, or -EINVAL when the
     * parameters do not fit, in which case the caller closes and opens anew. */
    int (*reconfigure)(void *priv, const AVCodecParameters *par);
    /* Takes a packet (not ownership); NULL drains. -EAGAIN when frames must be received
     * first; other negative errno on a decode error the caller may skip past. */
    int (*send_packet)(void *priv, const AVPacket *pkt);
    /* Fills frame (pts set from the packets' pts): 0; -EAGAIN needs input; -ENODATA once
     * drained. Frames are host frames, or AV_PIX_FMT_CUDA frames that convert.c handles. */
    int (*receive_frame)(void *priv, AVFrame *frame);
    /* Drops all state after a seek (also ends draining). */
    void (*flush)(void *priv);
    /* Optional: 1 when a picture was concealed (damaged data) since the last call or
     * flush, else 0. Known before any frame decoded from that picture comes out, unlike
     * the error flags of frame-threaded output, which threads copy before concealing. */
    int (*concealed)(void *priv);
    /* Optional (NULL: never skips): skip pictures no other picture references while
     * seeking, or decode all again. */
    void (*skip_nonref)(void *priv, int skip);
    /* Optional (NULL: every frame comes out): frames with a pts below `pts` are dropped
     * instead of coming out (AV_NOPTS_VALUE: none are), for a request's lead-in that no
     * one reads: a GPU frame costs a map and a copy. Returns how many were dropped since
     * the last call (decoded all the same). Damage in one is reported by concealed(). */
    int (*drop_before)(void *priv, int64_t pts);
    void (*close)(void *priv);
};

extern const struct decode_backend decode_cpu;
#if VIDFS_HAVE_NVDEC
extern const struct decode_backend decode_nvdec;
#endif

#define DECODE_MAX_BACKENDS 4

/* Every backend built in, in order of preference (GPU first), NULL-terminated. A media is
 * decoded by the first allowed backend that supports it; a frame that one fails to give
 * is asked of the next allowed one that supports it. */
extern const struct decode_backend *const decode_backends[];

/* The backends the `backend` setting allows, in decode_backends[] order, into out
 * (DECODE_MAX_BACKENDS + 1 entries, NULL-terminated): "auto" allows all, another name
 * only that backend. -ENOENT for a name that is not built in. */
int decode_backends_allowed(const char *setting, const struct decode_backend **out);

#endif
