/* A media is one video stream of one source file, probed and indexed: everything needed to
 * list, size and describe its frames without decoding. Refcounted and immutable once
 * opened, so readers share it without locks. */
#ifndef VIDFS_MEDIA_H
#define VIDFS_MEDIA_H

#include <stdint.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

struct index;
struct store;

struct media {
    char *path;      /* source file, for names and log lines */
    int fd;          /* the source, open: what every demuxer reads */
    int stream;      /* FFmpeg stream index of the video stream, -1 on error */
    uint64_t id;     /* unique for this process, for cache keys */
    struct stat st;  /* source stat at open (dev, ino, size, mtime, ctime key the store) */
    char *error;     /* non-NULL when the source is unusable: FFmpeg's message */
    char *meta_json; /* meta.json contents (also when error is set) */
    int nb_video_streams;
    int *video_streams; /* FFmpeg indices of non-attached-picture video streams */

    /* Stream parameters (valid when error is NULL). */
    AVCodecParameters *par;
    AVRational time_base;
    AVRational sar; /* the container's sample aspect ratio, 0/1 when it says none */
    int width, height;
    enum AVPixelFormat pix_fmt;
    int bit_depth;
    struct index *index;

    int refcount; /* atomic */
    /* A decode gave a damaged picture (atomic, set once, kept while the media is open):
     * CPU decoders then decode it single-threaded (decoder.c). */
    int damaged;
};

/* Opens the source fd (a regular file, taken over: closed by the last unref; path names
 * it), picks the stream (stream < 0: the default one, as av_find_best_stream picks it),
 * loads the index from the store or builds and saves it. A source FFmpeg cannot read
 * still gives a media, with error and meta_json set: only allocation failure fails. */
int media_open(const char *path, int fd, int stream, struct store *store, struct media **out);

struct media *media_ref(struct media *m);
void media_unref(struct media **m);

/* Frame count (0 for a media in error). */
int media_nb_frames(const struct media *m);

/* Opens a demuxer on the media's file, positioned at the start, with the stream's
 * parameters found; for decoders and segment writers, which each need their own. The
 * file is the one opened, even if deleted or renamed over since; -EIO if it was
 * rewritten in place (its index no longer holds). */
int media_open_demuxer(const struct media *m, AVFormatContext **out);

/* The bitstream filter that turns this codec's length-prefixed (MP4-style) packets into
 * Annex B, or NULL for codecs that have no Annex B form. */
const char *media_annexb_filter(enum AVCodecID id);

#endif
