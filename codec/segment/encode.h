/* Video encoders for segments: libavcodec's *_nvenc when an NVENC session can be had, the
 * CPU encoder (libx264, libx265, libsvtav1) otherwise. Consumer GPUs allow 5 or 8 NVENC
 * sessions per system and some GPUs (H100) none, so sessions are counted by a limiter that
 * lowers its bound when opening one fails, and a request that cannot get one falls back to
 * the CPU encoder: never an error to the caller. */
#ifndef VIDFS_ENCODE_H
#define VIDFS_ENCODE_H

#include <stdint.h>

#include <libavcodec/avcodec.h>

enum encode_codec { ENCODE_H264, ENCODE_HEVC, ENCODE_AV1 };
enum encode_want { ENCODE_WANT_AUTO, ENCODE_WANT_NVENC, ENCODE_WANT_CPU };
enum encode_rc { ENCODE_RC_CRF, ENCODE_RC_CBR, ENCODE_RC_VBR, ENCODE_RC_CONSTQP };

/* What [segments] asks of the encoder. */
struct encode_settings {
    enum encode_codec codec;
    enum encode_want want;
    char preset[32]; /* x264/x265 names; mapped for NVENC and SVT-AV1 */
    enum encode_rc rc;
    int quality;      /* CRF or QP */
    int bitrate_kbps; /* cbr, vbr */
    int gop;
    int bframes;
};

/* The frames an encoder will be given. Frames of another size or format are converted. */
struct encode_input {
    int width, height;
    enum AVPixelFormat pix_fmt;
    AVRational time_base; /* of the frames' pts */
    AVRational framerate; /* nominal, for rate control; {0, 1} when unknown */
    AVRational sample_aspect_ratio;
    enum AVColorRange color_range;
    enum AVColorSpace colorspace;
    enum AVColorPrimaries color_primaries;
    enum AVColorTransferCharacteristic color_trc;
    enum AVChromaLocation chroma_location;
    int global_header; /* the container wants extradata (AVFMT_GLOBALHEADER) */
};

/* An encoder implementation: which libavcodec encoder, and how our settings map onto its
 * options. */
struct encode_backend {
    const char *name;  /* "nvenc", "cpu" */
    int needs_session; /* takes an NVENC session from the limiter */
    const char *(*encoder_name)(enum encode_codec codec);
    void (*configure)(AVCodecContext *ctx, AVDictionary **opts, const struct encode_settings *s);
};

extern const struct encode_backend encode_nvenc;
extern const struct encode_backend encode_cpu;

/* Counts NVENC sessions: at most max at once (lowered when opening one fails), waits up to
 * wait_ms for one, and remembers that NVENC does not work at all after a failure with no
 * session open. Thread-safe. */
struct encode_sessions;

int encode_sessions_new(int max_sessions, int wait_ms, struct encode_sessions **out);
void encode_sessions_free(struct encode_sessions **ss);

struct encoder {
    AVCodecContext *ctx;
    const struct encode_backend *backend;
    int fell_back; /* NVENC was wanted, the CPU encoder took the job */
    /* private */
    struct encode_sessions *session; /* holds one session when non-NULL */
    struct SwsContext *sws;
    int conv_w, conv_h, conv_fmt;
};

/* Opens an encoder for frames described by in: NVENC when settings and a free session
 * allow it, the CPU encoder otherwise. ss may be NULL (CPU only). */
int encode_open(struct encode_sessions *ss, const struct encode_settings *s,
                const struct encode_input *in, struct encoder **out);

/* Sends a frame (not ownership; NULL drains), converting its size and format where the
 * encoder needs it. Its pts is in in->time_base. -EAGAIN when packets must be received
 * first. */
int encode_send(struct encoder *e, const AVFrame *frame);

/* Receives a packet (pts in ctx->time_base): 0, -EAGAIN needs input, -ENODATA drained. */
int encode_receive(struct encoder *e, AVPacket *pkt);

/* Closes the encoder and gives its NVENC session back. */
void encode_free(struct encoder **e);

#endif
