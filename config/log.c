/* Logging: one line a message, prefixed with time and level, written with a single
 * fprintf so that lines from concurrent FUSE threads do not interleave. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libavutil/log.h>

static enum log_level current = LOG_LEVEL_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};

int log_parse_level(const char *s, enum log_level *out)
{
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(s, names[i])) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_set_level(enum log_level level)
{
    current = level;
    av_log_set_level(level >= LOG_LEVEL_DEBUG ? AV_LOG_VERBOSE : AV_LOG_ERROR);
}

int log_enabled(enum log_level level)
{
    return level <= current;
}

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
    char line[2048];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "vidfs %02d:%02d:%02d.%03ld %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, names[level], line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

static void ffmpeg_cb(void *avcl, int av_level, const char *fmt, va_list ap)
{
    (void)avcl;
    enum log_level level = av_level <= AV_LOG_ERROR     ? LOG_LEVEL_WARN
                           : av_level <= AV_LOG_WARNING ? LOG_LEVEL_INFO
                                                        : LOG_LEVEL_DEBUG;
    if (av_level > av_log_get_level() || !log_enabled(level))
        return;
    char buf[1024];
    snprintf(buf, sizeof(buf), "ffmpeg: %s", fmt);
    vlog(level, buf, ap);
}

void log_hook_ffmpeg(void)
{
    av_log_set_callback(ffmpeg_cb);
}
