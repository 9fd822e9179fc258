/* Re-encoded segments: frame accurate, any start. */
#ifndef VIDFS_TRANSCODE_H
#define VIDFS_TRANSCODE_H

#include "audio.h"
#include "encode.h"
#include "output.h"
#include "range.h"

struct media;
struct progress;
struct reader;

struct transcode_opts {
    struct reader *reader;
    const struct encode_settings *enc;
    struct encode_sessions *sessions;
    enum audio_mode audio;
    struct progress *progress; /* frames encoded, of r's; NULL: not counted */
};

/* Encodes the frames of range r of m into path. *fell_back: an NVENC encode went to the
 * CPU; *encoder: the encoder's name (static). */
int transcode_write(const struct transcode_opts *opts, struct media *m, const struct range *r,
                    const struct output_container *c, const char *path, int *fell_back,
                    const char **encoder);

#endif
