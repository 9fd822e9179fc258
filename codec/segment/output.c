/* The segment file: containers by extension and one muxer over them. */
#include "output.h"
#include "averror.h"
#include "log.h"

#include <errno.h>
#include <string.h>

#include <libavcodec/avcodec.h>

static const struct output_container containers[] = {
    {"mp4", "mp4", 1}, {"m4v", "mp4", 1}, {"mov", "mov", 1},
    {"mkv", "matroska", 0}, {"ts", "mpegts", 0},
};

const struct output_container *output_container_find(const char *ext)
{
    for (size_t i = 0; ext && i < sizeof(containers) / sizeof(containers[0]); i++)
        if (!strcmp(ext, containers[i].ext))
            return &containers[i];
    return NULL;
}

/* MPEG-TS has no codec list to query; FFmpeg 5.1 writes Opus and FLAC into MP4 only as
 * experimental. */
int output_container_takes(const struct output_container *c, enum AVCodecID id)
{
    if (!strcmp(c->format, "mpegts")) {
        static const enum AVCodecID ts[] = {
            AV_CODEC_ID_H264, AV_CODEC_ID_HEVC, AV_CODEC_ID_MPEG1VIDEO, AV_CODEC_ID_MPEG2VIDEO,
            AV_CODEC_ID_MPEG4, AV_CODEC_ID_AAC, AV_CODEC_ID_MP2, AV_CODEC_ID_MP3,
            AV_CODEC_ID_AC3, AV_CODEC_ID_EAC3, AV_CODEC_ID_OPUS,
        };
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
            if (ts[i] == id)
                return 1;
        return 0;
    }
    if (c->faststart && (id == AV_CODEC_ID_OPUS || id == AV_CODEC_ID_FLAC ||
                         id == AV_CODEC_ID_VORBIS))
        return 0;
    const AVOutputFormat *of = av_guess_format(c->format, NULL, NULL);
    return of && avformat_query_codec(of, id, FF_COMPLIANCE_NORMAL) == 1;
}

int output_open(struct output *o, const struct output_container *c, const char *path)
{
    o->c = c;
    int ret = avformat_alloc_output_context2(&o->oc, NULL, c->format, path);
    if (ret < 0)
        return averror_errno(ret);
    /* The same name gives the same bytes: no random UIDs, times or versions. */
    o->oc->flags |= AVFMT_FLAG_BITEXACT;
    /* The mp4 muxer reopens the file by name for faststart, so write by name too. */
    ret = avio_open(&o->oc->pb, path, AVIO_FLAG_WRITE);
    if (ret < 0)
        return averror_errno(ret);
    o->video = avformat_new_stream(o->oc, NULL);
    return o->video ? 0 : -ENOMEM;
}

int output_header(struct output *o)
{
    AVDictionary *opts = NULL;
    if (o->c->faststart)
        av_dict_set(&opts, "movflags", "+faststart", 0);
    int ret = avformat_write_header(o->oc, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        log_error("segments: cannot write a %s header: %s", o->c->format, av_err2str(ret));
        return averror_errno(ret);
    }
    o->header_written = 1;
    return 0;
}

int output_close(struct output *o, int ok)
{
    int ret = 0;
    if (ok && o->header_written && (ret = av_write_trailer(o->oc)) < 0) {
        log_error("segments: cannot finish the %s file: %s", o->c->format, av_err2str(ret));
        ret = averror_errno(ret);
    }
    if (o->oc) {
        avio_closep(&o->oc->pb);
        avformat_free_context(o->oc);
    }
    *o = (struct output){0};
    return ret;
}

/* Rotation (display matrix) and the like belong to the stream, not the frames. */
int output_copy_side_data(AVStream *dst, const AVStream *src)
{
    for (int i = 0; i < src->nb_side_data; i++) {
        const AVPacketSideData *sd = &src->side_data[i];
        uint8_t *p = av_stream_new_side_data(dst, sd->type, sd->size);
        if (!p)
            return -ENOMEM;
        memcpy(p, sd->data, sd->size);
    }
    return 0;
}
