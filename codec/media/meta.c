/* meta.json through json-c (never hand-built strings: names of files and FFmpeg messages
 * can hold any byte) and frames.csv. */
#include "meta.h"
#include "index.h"

#include <errno.h>
#include <json-c/json.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_str(json_object *o, const char *key, const char *val)
{
    json_object_object_add(o, key, val ? json_object_new_string(val) : NULL);
}

static void add_int(json_object *o, const char *key, int64_t val)
{
    json_object_object_add(o, key, json_object_new_int64(val));
}

static void add_double(json_object *o, const char *key, double val)
{
    json_object_object_add(o, key, isfinite(val) ? json_object_new_double(val) : NULL);
}

static void add_ratio(json_object *o, const char *key, AVRational r, char sep)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%d%c%d", r.num, sep, r.den);
    add_str(o, key, buf);
}

/* Seconds of a timestamp in tb, or null when unknown. */
static void add_ts(json_object *o, const char *key, int64_t ts, AVRational tb)
{
    if (ts == AV_NOPTS_VALUE)
        json_object_object_add(o, key, NULL);
    else
        add_double(o, key, (double)ts * av_q2d(tb));
}

static int rotation(const AVStream *st)
{
    size_t size = 0;
    const uint8_t *m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (!m || size < 9 * sizeof(int32_t))
        return 0;
    double r = av_display_rotation_get((const int32_t *)(const void *)m);
    return isnan(r) ? 0 : (int)lrint(r);
}

static json_object *audio_streams(const AVFormatContext *fmt)
{
    json_object *arr = json_object_new_array();
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        const AVCodecParameters *par = st->codecpar;
        if (par->codec_type != AVMEDIA_TYPE_AUDIO)
            continue;
        json_object *a = json_object_new_object();
        char layout[128] = "";
        av_channel_layout_describe(&par->ch_layout, layout, sizeof(layout));
        add_int(a, "index", i);
        add_str(a, "codec_name", avcodec_get_name(par->codec_id));
        add_int(a, "sample_rate", par->sample_rate);
        add_int(a, "channels", par->ch_layout.nb_channels);
        add_str(a, "channel_layout", layout);
        add_int(a, "bit_rate", par->bit_rate);
        add_ts(a, "duration", st->duration, st->time_base);
        json_object_array_add(arr, a);
    }
    return arr;
}

static void add_video(json_object *o, const AVStream *st, const struct index *ix)
{
    const AVCodecParameters *par = st->codecpar;
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(par->format);
    add_str(o, "codec_name", avcodec_get_name(par->codec_id));
    add_str(o, "profile", avcodec_profile_name(par->codec_id, par->profile));
    add_str(o, "pix_fmt", av_get_pix_fmt_name(par->format));
    add_int(o, "bits_per_raw_sample", d ? d->comp[0].depth : par->bits_per_raw_sample);
    add_int(o, "width", par->width);
    add_int(o, "height", par->height);
    AVRational sar = par->sample_aspect_ratio.num ? par->sample_aspect_ratio : (AVRational){1, 1};
    add_ratio(o, "sample_aspect_ratio", sar, ':');
    add_int(o, "rotation", rotation(st));
    add_ratio(o, "avg_frame_rate", st->avg_frame_rate, '/');
    add_ratio(o, "r_frame_rate", st->r_frame_rate, '/');
    add_ratio(o, "time_base", st->time_base, '/');
    add_ts(o, "start_time", ix->frames[0].pts, st->time_base);
    add_str(o, "field_order", par->field_order == AV_FIELD_PROGRESSIVE ? "progressive"
                              : par->field_order == AV_FIELD_UNKNOWN   ? "unknown"
                                                                       : "interlaced");
    add_str(o, "color_range", av_color_range_name(par->color_range));
    add_str(o, "color_space", av_color_space_name(par->color_space));
    add_str(o, "color_primaries", av_color_primaries_name(par->color_primaries));
    add_str(o, "color_transfer", av_color_transfer_name(par->color_trc));
    add_int(o, "num_frames", ix->nb_frames);
    int last = ix->nb_frames - 1;
    double dur = index_frame_time(ix, last) +
                 (double)ix->frames[last].duration * av_q2d(ix->time_base);
    add_double(o, "stream_duration", dur);
    json_object *keys = json_object_new_array_ext(ix->nb_keyframes);
    for (int k = 0; k < ix->nb_keyframes; k++)
        json_object_array_add(keys, json_object_new_int(ix->keyframes[k]));
    json_object_object_add(o, "keyframes", keys);
}

static int to_string(json_object *o, char **out)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n = strlen(s);
    *out = malloc(n + 2);
    if (*out) {
        memcpy(*out, s, n);
        memcpy(*out + n, "\n", 2);
    }
    json_object_put(o);
    return *out ? 0 : -ENOMEM;
}

int meta_json_new(const AVFormatContext *fmt, int stream, const int *video_streams,
                  int nb_video_streams, const struct index *ix, char **out)
{
    json_object *o = json_object_new_object();
    if (!o)
        return -ENOMEM;
    const char *slash = strrchr(fmt->url, '/');
    add_str(o, "filename", slash ? slash + 1 : fmt->url);
    add_str(o, "format_name", fmt->iformat->name);
    add_double(o, "duration",
               fmt->duration == AV_NOPTS_VALUE ? NAN : (double)fmt->duration / AV_TIME_BASE);
    add_int(o, "bit_rate", fmt->bit_rate);
    add_int(o, "nb_streams", fmt->nb_streams);
    add_int(o, "stream_index", stream);
    json_object *vs = json_object_new_array();
    for (int i = 0; i < nb_video_streams; i++)
        json_object_array_add(vs, json_object_new_int(video_streams[i]));
    json_object_object_add(o, "video_streams", vs);
    add_video(o, fmt->streams[stream], ix);
    json_object_object_add(o, "audio_streams", audio_streams(fmt));
    return to_string(o, out);
}

int meta_json_error(const char *path, const char *msg, char **out)
{
    json_object *o = json_object_new_object();
    if (!o)
        return -ENOMEM;
    const char *slash = strrchr(path, '/');
    add_str(o, "filename", slash ? slash + 1 : path);
    add_str(o, "error", msg);
    add_int(o, "num_frames", 0);
    return to_string(o, out);
}

static const char csv_head[] = "index,pts_time,duration_time,key_frame\n";

/* Row f of frames.csv into buf (at most cap bytes); its length, even when cut. */
static size_t csv_row(const struct index *ix, int f, char *buf, size_t cap)
{
    double tb = av_q2d(ix->time_base);
    return (size_t)snprintf(buf, cap, "%d,%.6f,%.6f,%d\n", f, index_frame_time(ix, f),
                            (double)ix->frames[f].duration * tb, ix->frames[f].key);
}

uint64_t meta_frames_csv_size(const struct index *ix)
{
    /* A row is short unless a timestamp is absurd: %.6f of 1e300 is 308 digits. */
    char row[512];
    uint64_t n = sizeof(csv_head) - 1;
    for (int f = 0; f < ix->nb_frames; f++)
        n += csv_row(ix, f, row, sizeof(row));
    return n;
}

int meta_frames_csv(const struct index *ix, char **out, size_t *len)
{
    uint64_t size = meta_frames_csv_size(ix);
    if (size >= SIZE_MAX)
        return -ENOMEM;
    char *s = malloc((size_t)size + 1); /* + 1: snprintf's NUL */
    if (!s)
        return -ENOMEM;
    size_t n = (size_t)snprintf(s, (size_t)size + 1, "%s", csv_head);
    for (int f = 0; f < ix->nb_frames; f++)
        n += csv_row(ix, f, s + n, (size_t)size + 1 - n);
    *out = s;
    *len = n;
    return 0;
}
