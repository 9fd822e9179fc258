/* A decoder positioned in one media: a backend instance plus its own demuxer. It knows
 * which frame comes next, so reading frame N+1 after N continues without a seek, and it
 * seeks to the right keyframe otherwise. One thread at a time (the pool leases it). */
#ifndef VIDFS_DECODER_H
#define VIDFS_DECODER_H

#include "decode.h"

#include <libavformat/avformat.h>

struct media;
struct frame_cache;

struct decoder {
    const struct decode_backend *backend;
    void *priv;
    struct decode_opts opts;
    struct media *media; /* holds a reference */
    AVFormatContext *fmt;
    AVPacket *pkt;
    int next_packet;  /* decode-order index of the next packet to send, -1 = unknown */
    int last_frame;   /* display index of the last frame output, -1 = none since seek */
    int drained;      /* the demuxer hit EOF and the backend was drained */
    int backend_open; /* backend opened for media's parameters */
    /* Statistics for the pool and /.vidfs/stats.json. */
    unsigned long frames_decoded, seeks;
};

int decoder_new(const struct decode_backend *backend, const struct decode_opts *opts,
                struct decoder **out);
void decoder_free(struct decoder **d);

/* Points the decoder at media m (takes its own reference): reconfigures the backend when
 * the parameters fit, reopens it otherwise. */
int decoder_attach(struct decoder *d, struct media *m);

/* Decodes display frame n of the attached media into out (a new reference). Every frame
 * output on the way is put in keep (may be NULL); with nearby, that includes the
 * non-reference pictures just before n (a lone frame's neighbours are often read next;
 * a batch or a clip never reads them). -EIO when the frame cannot be decoded, -ENOENT
 * past the end. */
int decoder_get(struct decoder *d, int n, AVFrame *out, struct frame_cache *keep, int nearby);

/* 1 when frame n of the attached media comes by decoding on, without a seek. */
int decoder_can_continue(const struct decoder *d, int n);

/* 1 when a decoder that outputs frame t of m can go on to frame n without seeking (the
 * pool lets a request wait for a busy decoder on its way there). */
int decoder_reaches(const struct media *m, int t, int n);

/* Cost estimate of reaching frame n from the current position, in frames to decode
 * (0 = the next frame); used by the pool to pick the best-placed decoder. */
int decoder_distance(const struct decoder *d, int n);

#endif
