/* The audio of a segment: read with a second demuxer, interleaved with the video as it is
 * written, copied when the container takes the codec, else re-encoded to AAC. */
#ifndef VIDFS_AUDIO_H
#define VIDFS_AUDIO_H

#include <stdint.h>

#include "output.h"

struct media;
struct audio;

enum audio_mode { AUDIO_COPY, AUDIO_AAC, AUDIO_NONE };

/* Audio is demuxed this far ahead of the video written so far, to interleave. */
#define AUDIO_LEAD_S 0.5

/* Adds the audio stream to o for the video span [t0, t1) (video time base): *out stays
 * NULL when there is no audio to carry. Only allocation failure is an error; audio that
 * cannot be carried is left out, with a log line. */
int audio_open(enum audio_mode mode, const struct media *m, struct output *o, int64_t t0,
               int64_t t1, struct audio **out);

/* Writes the audio up to `until` (video time base; INT64_MAX: to the end of the span).
 * a may be NULL (no audio). */
int audio_pump(struct audio *a, struct output *o, const struct media *m, int64_t until);

void audio_free(struct audio **a);

#endif
