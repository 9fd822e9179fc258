/* Logging with a level, shared by every layer. Thread-safe. Every line has one style:
 * "vidfs[PID]: LEVEL: message" on stderr, the same after a date in a log file, and
 * "LEVEL: message" with the level as the priority in syslog (which adds "vidfs[PID]"). */
#ifndef VIDFS_LOG_H
#define VIDFS_LOG_H

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

/* Sends lines to dest: "syslog", "stderr", or the path of a file to append to. An empty
 * dest means syslog when daemonized is set, stderr otherwise. -errno (logged on stderr)
 * when the file cannot be opened. Until called, lines go to stderr. */
int log_open(const char *dest, int daemonized);
/* While on, errors logged to syslog also go to stderr: for a daemon's set-up, which the user
 * who started it still watches until it detaches. */
void log_echo_errors(int on);
void log_close(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Logs "FILE: CAUSE (detail)" at level the first time this file gives this cause (a fixed
 * string), so a reader retrying a broken frame does not flood the log. */
void log_once(enum log_level level, const char *file, const char *cause, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define log_error_once(...) log_once(LOG_LEVEL_ERROR, __VA_ARGS__)

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

/* Routes FFmpeg's own log messages through ours (warnings and above, or all at debug). */
void log_hook_ffmpeg(void);

/* fn sees every message FFmpeg logs, whatever the level, before it is filtered: for a
 * module that learns from what FFmpeg says (decode_cpu.c: concealment). One at a time;
 * fn must be quick and thread-safe. */
void log_observe_ffmpeg(void (*fn)(void *avcl, int level, const char *fmt));

#endif
