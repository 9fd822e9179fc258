/* Settings: one table of keys (section, name, default, help) that the INI loader, the
 * `-o key=value` options, `--help` and config/vidfs.ini all agree with. */
#ifndef VIDFS_CONFIG_H
#define VIDFS_CONFIG_H

#include <stdio.h>

/* X(section, name, type, default, help); type is STR or INT. */
#define CONFIG_KEYS(X)                                                                         \
    X(decode, backend, STR, "auto", "auto, cpu or nvdec: auto uses NVDEC where the GPU can "   \
                                    "decode the stream, the CPU elsewhere")                    \
    X(decode, pool_size, INT, "0", "decoders at most (0: from the machine: one per core, "     \
                                   "two per NVDEC engine when more)")                          \
    X(decode, threads, INT, "0", "codec threads per CPU decoder (0: one per core)")            \
    X(decode, gpus, STR, "0", "GPUs (CUDA ordinals) NVDEC decoders are spread over, e.g. "    \
                              "0,1; all: every GPU")                                           \
    X(decode, max_width, INT, "4096", "NVDEC decoders are sized for this width")               \
    X(decode, max_height, INT, "2304", "NVDEC decoders are sized for this height")             \
    X(cache, cache_dir, STR, "", "disk store (indexes, segments); empty: "                     \
                                 "$XDG_CACHE_HOME/vidfs")                                      \
    X(cache, cache_mb, INT, "1024", "decoded frames kept in memory, MiB")                      \
    X(cache, store_mb, INT, "4096", "disk store bound, indexes and segments together, MiB")   \
    X(frames, frame_format, STR, "nv12", "format that frames/ lists: nv12 yuv420p gray rgb "   \
                                         "rgbp p010 png jpg")                                  \
    X(frames, readahead, INT, "8", "frames decoded ahead of a sequential reader (0: off)")     \
    X(frames, jpeg_quality, INT, "3", "qscale of jpg frames, 2 (best) to 31")                  \
    X(frames, extensions, STR,                                                                 \
      "mp4,m4v,mov,mkv,webm,avi,ts,mts,m2ts,flv,mpg,mpeg,wmv,3gp,ogv",                        \
      "file extensions shown as video directories")                                            \
    X(segments, segment_codec, STR, "h264", "h264, hevc or av1")                               \
    X(segments, segment_encoder, STR, "auto", "auto (NVENC when a session opens, else "        \
                                              "the CPU encoder), nvenc or cpu")                \
    X(segments, segment_preset, STR, "fast", "encoder preset (x264/x265 names; mapped for "    \
                                             "NVENC and SVT-AV1)")                             \
    X(segments, segment_rc, STR, "crf", "rate control: crf, cbr, vbr or constqp")              \
    X(segments, segment_quality, INT, "23", "CRF or QP for crf/constqp")                       \
    X(segments, segment_bitrate, INT, "4000", "kbit/s for cbr/vbr")                            \
    X(segments, segment_gop, INT, "250", "maximum keyframe interval")                          \
    X(segments, segment_bframes, INT, "2", "B-frames between references")                      \
    X(segments, segment_audio, STR, "copy", "copy, aac or none")                               \
    X(segments, max_nvenc_sessions, INT, "8", "concurrent NVENC sessions (lowered when "       \
                                             "opening one fails)")                             \
    X(segments, nvenc_wait_ms, INT, "2000", "wait this long for an NVENC session before "      \
                                           "falling back to the CPU encoder (0: no wait)")     \
    X(source, follow_symlinks_out, INT, "0", "1: follow symlinks that lead out of SOURCE_DIR "  \
                                             "(0: they are hidden)")                           \
    X(log, level, STR, "info", "error, warn, info or debug")

struct config {
#define CONFIG_FIELD_STR(sec, name, def) char *name;
#define CONFIG_FIELD_INT(sec, name, def) long name;
#define CONFIG_FIELD(sec, name, type, def, help) CONFIG_FIELD_##type(sec, name, def)
    CONFIG_KEYS(CONFIG_FIELD)
#undef CONFIG_FIELD
#undef CONFIG_FIELD_INT
#undef CONFIG_FIELD_STR
};

/* Fills cfg with the built-in defaults. */
int config_init(struct config *cfg);
void config_free(struct config *cfg);

/* Sets one key by name (the section is implied); -ENOENT for an unknown key, -EINVAL for
 * a value that does not parse. */
int config_set(struct config *cfg, const char *key, const char *value);

/* Loads an INI file; -ENOENT when it does not exist, -EINVAL (logged with the line) on a
 * bad key or value. */
int config_load(struct config *cfg, const char *path);

/* The default config file path ($XDG_CONFIG_HOME or ~/.config)/vidfs/vidfs.ini, malloc'd. */
char *config_default_path(void);

/* Checks values that depend on each other and fills derived ones (cache dir). */
int config_finish(struct config *cfg);

/* Writes "  -o key=value  help (default: ...)" lines, for --help. */
void config_print_help(FILE *f);

/* Writes the documented default INI file (what config/vidfs.ini holds). */
void config_print_ini(FILE *f);

#endif
