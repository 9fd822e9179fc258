/* Frame index of one video stream, built by scanning packets (no decoding): the exact
 * frame count, each frame's pts in display order, and the keyframes. Serializable so the
 * disk store can keep it across mounts. */
#ifndef VIDFS_INDEX_H
#define VIDFS_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include <libavformat/avformat.h>

/* One displayed frame, in display order. */
struct index_frame {
    int64_t pts;      /* stream time base */
    int64_t duration; /* stream time base; from the next frame's pts where there is one */
    int32_t packet;   /* position of its packet in decode order */
    uint8_t key;      /* its packet is a keyframe */
};

/* One packet, in decode order. */
struct index_packet {
    int64_t pts; /* stream time base, the presentation time the index gave it */
    int64_t dts; /* stream time base, AV_NOPTS_VALUE when the demuxer gave none */
    int64_t pos; /* byte position, -1 when unknown */
    int32_t frame; /* display index of the frame it yields, -1 when discarded (edit list) */
    uint8_t key;
};

struct index {
    int nb_frames;
    int nb_packets;
    struct index_frame *frames;   /* nb_frames, display order */
    struct index_packet *packets; /* nb_packets, decode order */
    int nb_keyframes;
    int32_t *keyframes; /* display indices of key frames, ascending */
    AVRational time_base;
    /* The demuxer gave no pts (AVI): the index made them up from picture types, and the
     * decoder stamps them on packets (packets[].pts) so that frames still carry them. */
    int counted;
    /* Byte position of the packet the file ends inside (cut short: left out of the index
     * and never decoded, as it gives no frame in ffmpeg); 0 when none. */
    int64_t cut_pos;
};

/* Scans every packet of stream `stream` in fmt (which is left at EOF) and builds the index.
 * -EIO when the stream has no frame at all. */
int index_build(AVFormatContext *fmt, int stream, struct index **out);

/* Serialization for the disk store: index_serialize allocates *buf; index_deserialize
 * validates everything it reads (-EINVAL on a damaged or foreign blob). */
int index_serialize(const struct index *ix, uint8_t **buf, size_t *size);
int index_deserialize(const uint8_t *buf, size_t size, struct index **out);

void index_free(struct index **ix);

/* Time of frame n relative to frame 0, in seconds. */
double index_frame_time(const struct index *ix, int n);

/* Display index of the frame with this pts, or -1. */
int index_find_pts(const struct index *ix, int64_t pts);

/* First display frame n with time(n) >= t (seconds from frame 0); nb_frames if none. */
int index_frame_at_time(const struct index *ix, double t);

/* The packet (decode order) from which decoding yields frame n: the last keyframe at or
 * before n's packet whose own pts is not after n's, so that open-GOP leading pictures
 * start from the previous GOP. */
int index_start_packet(const struct index *ix, int n);

/* Where a demuxed packet stands relative to index packet ip: -1 before, 0 the same, 1
 * after. Byte positions identify packets best; timestamps where there is no position. */
int index_packet_cmp(const AVPacket *pkt, const struct index_packet *ip);

#endif
