/* Settings: one table of keys (section, name, type, default, valid values, help) that the
 * INI loader, the `-o key=value` options, `--help`, the man page and config/vidfs.ini all
 * agree with. A value is checked against its type once, when it is set. */
#ifndef VIDFS_CONFIG_H
#define VIDFS_CONFIG_H

#include <stdio.h>

/* The values of each enum-valued key, in order: V(CONSTANT, "name"). */
#define CONFIG_BACKENDS(V) V(BACKEND_AUTO, "auto") V(BACKEND_CPU, "cpu") V(BACKEND_NVDEC, "nvdec")
#define CONFIG_FRAME_FORMATS(V)                                                                    \
    V(FRAME_NV12, "nv12")                                                                          \
    V(FRAME_YUV420P, "yuv420p") V(FRAME_GRAY, "gray") V(FRAME_RGB, "rgb") V(FRAME_RGBP, "rgbp")    \
        V(FRAME_P010, "p010") V(FRAME_PNG, "png") V(FRAME_JPG, "jpg")
#define CONFIG_SEGMENT_CODECS(V)                                                                   \
    V(SEGMENT_H264, "h264") V(SEGMENT_HEVC, "hevc") V(SEGMENT_AV1, "av1")
#define CONFIG_SEGMENT_ENCODERS(V)                                                                 \
    V(ENCODER_AUTO, "auto") V(ENCODER_NVENC, "nvenc") V(ENCODER_CPU, "cpu")
#define CONFIG_SEGMENT_RCS(V)                                                                      \
    V(RC_CRF, "crf") V(RC_CBR, "cbr") V(RC_VBR, "vbr") V(RC_CONSTQP, "constqp")
#define CONFIG_SEGMENT_AUDIOS(V) V(AUDIO_COPY, "copy") V(AUDIO_AAC, "aac") V(AUDIO_NONE, "none")
#define CONFIG_JPEG_CHROMAS(V) V(JPEG_420, "420") V(JPEG_444, "444")
#define CONFIG_LEVELS(V)                                                                           \
    V(LEVEL_ERROR, "error") V(LEVEL_WARN, "warn") V(LEVEL_INFO, "info") V(LEVEL_DEBUG, "debug")

#define CONFIG_ENUM_CONSTANT(c, name) CONFIG_##c,
enum config_backend { CONFIG_BACKENDS(CONFIG_ENUM_CONSTANT) };
enum config_frame_format { CONFIG_FRAME_FORMATS(CONFIG_ENUM_CONSTANT) };
enum config_segment_codec { CONFIG_SEGMENT_CODECS(CONFIG_ENUM_CONSTANT) };
enum config_segment_encoder { CONFIG_SEGMENT_ENCODERS(CONFIG_ENUM_CONSTANT) };
enum config_segment_rc { CONFIG_SEGMENT_RCS(CONFIG_ENUM_CONSTANT) };
enum config_segment_audio { CONFIG_SEGMENT_AUDIOS(CONFIG_ENUM_CONSTANT) };
enum config_jpeg_chroma { CONFIG_JPEG_CHROMAS(CONFIG_ENUM_CONSTANT) };
enum config_level { CONFIG_LEVELS(CONFIG_ENUM_CONSTANT) };

/* X(section, name, type, default, valid, help) where type and valid are
 *   STR  "PLACEHOLDER"         any text; the placeholder names it in --help
 *   INT  RANGE(min, max)       an integer from min to max
 *   INT  RANGE_AUTO(min, max)  the same, or "auto", stored as 0
 *   ENUM a CONFIG_*S list      one of the names, stored as its CONFIG_* constant
 *   LIST RANGE(min, max)       "all", or integers from min to max separated by commas */
#define CONFIG_KEYS(X)                                                                             \
    X(decode, backend, ENUM, "auto", CONFIG_BACKENDS,                                              \
      "decoder: auto uses NVDEC where the GPU can decode the stream, the CPU elsewhere; "          \
      "nvdec: only NVDEC; cpu: only the CPU")                                                      \
    X(decode, pool_size, INT, "auto", RANGE_AUTO(1, 256),                                          \
      "decoders decoding at once (CPU: as many more may wait parked); auto: one per core, or "     \
      "two per NVDEC engine when more")                                                            \
    X(decode, threads, INT, "0", RANGE(0, 256), "codec threads per CPU decoder, 0: one per core")  \
    X(decode, gpus, LIST, "0", RANGE(0, 255),                                                      \
      "GPUs (CUDA ordinals) NVDEC decoders are spread over, e.g. 0,1; all: every GPU")             \
    X(decode, max_width, INT, "4096", RANGE(16, 16384), "NVDEC decoders are sized for this width") \
    X(decode, max_height, INT, "2304", RANGE(16, 16384),                                           \
      "NVDEC decoders are sized for this height")                                                  \
    X(cache, cache_dir, STR, "", "DIR",                                                            \
      "disk store (indexes, segments); empty: $XDG_CACHE_HOME/vidfs")                              \
    X(cache, cache_mb, INT, "1024", RANGE(16, 1048576), "decoded frames kept in memory, MiB")      \
    X(cache, store_mb, INT, "4096", RANGE(1, 1073741824),                                          \
      "disk store bound, indexes and segments together, MiB")                                      \
    X(frames, frame_format, ENUM, "nv12", CONFIG_FRAME_FORMATS, "format that frames/ lists")       \
    X(frames, readahead, INT, "8", RANGE(0, 256),                                                  \
      "frames decoded ahead of a sequential reader, 0: off")                                       \
    X(frames, jpeg_quality, INT, "3", RANGE(2, 31), "qscale of jpg frames, 2 is best")             \
    X(frames, jpeg_chroma, ENUM, "420", CONFIG_JPEG_CHROMAS,                                       \
      "jpg chroma: 420 as ffmpeg writes jpg, 444 from the rgb frame (larger, slower)")            \
    X(frames, extensions, STR, "mp4,m4v,mov,mkv,webm,avi,ts,mts,m2ts,flv,mpg,mpeg,wmv,3gp,ogv",    \
      "EXT,...", "file extensions shown as video directories")                                     \
    X(segments, segment_codec, ENUM, "h264", CONFIG_SEGMENT_CODECS,                                \
      "codec of transcoded segments")                                                              \
    X(segments, segment_encoder, ENUM, "auto", CONFIG_SEGMENT_ENCODERS,                            \
      "auto: NVENC when a session opens, else the CPU encoder")                                    \
    X(segments, segment_preset, STR, "fast", "NAME",                                               \
      "encoder preset (x264/x265 names; mapped for NVENC and SVT-AV1)")                            \
    X(segments, segment_rc, ENUM, "crf", CONFIG_SEGMENT_RCS, "rate control")                       \
    X(segments, segment_quality, INT, "23", RANGE(0, 63), "CRF or QP for crf/constqp")             \
    X(segments, segment_bitrate, INT, "4000", RANGE(1, 1000000), "kbit/s for cbr/vbr")             \
    X(segments, segment_gop, INT, "250", RANGE(1, 100000), "maximum keyframe interval")            \
    X(segments, segment_bframes, INT, "2", RANGE(0, 16), "B-frames between references")            \
    X(segments, segment_audio, ENUM, "copy", CONFIG_SEGMENT_AUDIOS, "audio of segments")           \
    X(segments, max_nvenc_sessions, INT, "8", RANGE(1, 64),                                        \
      "concurrent NVENC sessions (lowered when opening one fails)")                                \
    X(segments, nvenc_wait_ms, INT, "2000", RANGE(0, 600000),                                      \
      "wait this long for an NVENC session before falling back to the CPU encoder, "               \
      "0: no wait")                                                                                \
    X(source, follow_symlinks_out, INT, "0", RANGE(0, 1),                                          \
      "1: follow symlinks that lead out of SOURCE_DIR, 0: they are hidden")                        \
    X(log, level, ENUM, "info", CONFIG_LEVELS, "least severe messages logged")                     \
    X(log, log, STR, "", "syslog|stderr|PATH",                                                     \
      "where log lines go; empty: syslog once daemonized, stderr with -f")

#define CONFIG_LIST_MAX 16

/* A LIST value: n integers, or n == 0 for "all". */
struct config_list {
    int n;
    int v[CONFIG_LIST_MAX];
};

struct config {
#define CONFIG_FIELD_STR char *
#define CONFIG_FIELD_INT long
#define CONFIG_FIELD_ENUM int
#define CONFIG_FIELD_LIST struct config_list
#define CONFIG_FIELD(sec, name, type, def, valid, help) CONFIG_FIELD_##type name;
    CONFIG_KEYS(CONFIG_FIELD)
#undef CONFIG_FIELD
};

/* Fills cfg with the built-in defaults. */
int config_init(struct config *cfg);
void config_free(struct config *cfg);

/* Whether key names a setting (the section is implied). */
int config_has_key(const char *key);

/* Sets one key by name; -ENOENT for an unknown key, -EINVAL for a value outside the key's
 * values. Both are logged as "WHERE: key=value: expected ...", WHERE being e.g. "-o". */
int config_set(struct config *cfg, const char *where, const char *key, const char *value);

/* Loads an INI file; -ENOENT when it does not exist, -EINVAL (logged) on a bad key or value. */
int config_load(struct config *cfg, const char *path);

/* The default config file path ($XDG_CONFIG_HOME or ~/.config)/vidfs/vidfs.ini, malloc'd. */
char *config_default_path(void);

/* Fills derived values (cache dir) and applies the log level. */
int config_finish(struct config *cfg);

/* Writes "  -o key=VALUE  help (valid values; default: ...)" lines, for --help. */
void config_print_help(FILE *f);

/* Writes the options as man page (roff) paragraphs, for vidfs.1. */
void config_print_man(FILE *f);

/* Writes the documented default INI file (what config/vidfs.ini holds). */
void config_print_ini(FILE *f);

#endif
