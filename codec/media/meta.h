/* meta.json and frames.csv: the text files that describe a media, in ffprobe's words so
 * that jq, pandas and spreadsheets read them as they are. */
#ifndef VIDFS_META_H
#define VIDFS_META_H

#include <stddef.h>
#include <stdint.h>

#include <libavformat/avformat.h>

struct index;

/* meta.json of stream `stream` of fmt, with its index: malloc'd, NUL-terminated. */
int meta_json_new(const AVFormatContext *fmt, int stream, const int *video_streams,
                  int nb_video_streams, const struct index *ix, char **out);

/* meta.json of a source that cannot be used: {"error": msg, ...}. */
int meta_json_error(const char *path, const char *msg, char **out);

/* frames.csv (index,pts_time,duration_time,key_frame), malloc'd. */
int meta_frames_csv(const struct index *ix, char **out, size_t *len);

/* Its size in bytes, exact, without making it. */
uint64_t meta_frames_csv_size(const struct index *ix);

#endif
