/* The file a segment is muxed into: the containers segments can be asked in (by the
 * name's extension) and the muxer's open, header and close. */
#ifndef VIDFS_OUTPUT_H
#define VIDFS_OUTPUT_H

#include <libavformat/avformat.h>

struct output_container {
    const char *ext, *format;
    int faststart; /* mp4/mov: index (moov) at the front, for players that stream */
};

/* The container for a segment name's extension, or NULL. */
const struct output_container *output_container_find(const char *ext);

/* 1 when the container carries this codec without experimental flags. */
int output_container_takes(const struct output_container *c, enum AVCodecID id);

struct output {
    AVFormatContext *oc;
    AVStream *video;
    const struct output_container *c;
    int header_written;
};

/* Opens path for writing in container c, with one video stream (o->video) to set up. */
int output_open(struct output *o, const struct output_container *c, const char *path);
/* Writes the header once every stream is set up. */
int output_header(struct output *o);
/* Finishes the file when ok (writes the trailer) and frees o either way. */
int output_close(struct output *o, int ok);

/* Rotation (display matrix) and the like belong to the stream, not the frames. */
int output_copy_side_data(AVStream *dst, const AVStream *src);

#endif
