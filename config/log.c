/* Logging: one line a message, written with a single write so that lines from concurrent
 * FUSE threads do not interleave. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <libavutil/log.h>

enum sink { SINK_STDERR, SINK_SYSLOG, SINK_FILE };

static enum log_level current = LOG_LEVEL_INFO;
static enum sink sink = SINK_STDERR;
static int file_fd = -1;
static int echo; /* errors to stderr too: a terminal still listens */
static const char *const names[] = {"error", "warn", "info", "debug"};
static const int priorities[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

void log_set_level(enum log_level level)
{
    current = level;
    av_log_set_level(level >= LOG_LEVEL_DEBUG ? AV_LOG_VERBOSE : AV_LOG_ERROR);
}

int log_enabled(enum log_level level)
{
    return level <= current;
}

int log_open(const char *dest, int daemonized)
{
    if (!*dest)
        dest = daemonized ? "syslog" : "stderr";
    if (!strcmp(dest, "stderr")) {
        sink = SINK_STDERR;
    } else if (!strcmp(dest, "syslog")) {
        openlog("vidfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
        sink = SINK_SYSLOG;
    } else {
        int fd = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            int ret = -errno;
            log_error("log=%s: cannot open: %s", dest, strerror(-ret));
            return ret;
        }
        log_close();
        file_fd = fd;
        sink = SINK_FILE;
    }
    return 0;
}

void log_echo_errors(int on)
{
    echo = on;
}

void log_close(void)
{
    if (sink == SINK_SYSLOG)
        closelog();
    if (file_fd >= 0)
        close(file_fd);
    file_fd = -1;
    sink = SINK_STDERR;
}

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
    char msg[2048], line[2200];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    if (sink == SINK_SYSLOG) {
        syslog(priorities[level], "%s: %s", names[level], msg);
        if (echo && level == LOG_LEVEL_ERROR)
            dprintf(STDERR_FILENO, "vidfs: %s\n", msg);
        return;
    }
    int len = 0;
    if (sink == SINK_FILE) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        localtime_r(&ts.tv_sec, &tm);
        len = (int)strftime(line, 32, "%Y-%m-%d %H:%M:%S", &tm);
        len += snprintf(line + len, 16, ".%03ld ", ts.tv_nsec / 1000000);
    }
    len += snprintf(line + len, sizeof(line) - (size_t)len, "vidfs[%d]: %s: %s\n", (int)getpid(),
                    names[level], msg);
    if (len >= (int)sizeof(line))
        len = (int)sizeof(line) - 1;
    if (write(sink == SINK_FILE ? file_fd : STDERR_FILENO, line, (size_t)len) < 0)
        return; /* nowhere left to say it */
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

/* (file, cause) pairs already logged, as hashes; when full it starts over, so a long-lived
 * mount says again what it said long ago rather than growing. */
#define SEEN_SLOTS 4096
static uint64_t seen[SEEN_SLOTS];
static int nseen;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL;
}

/* 1 the first time h is seen. */
static int first_time(uint64_t h)
{
    h |= 1; /* 0 marks an empty slot */
    pthread_mutex_lock(&seen_lock);
    if (nseen >= SEEN_SLOTS / 2) {
        memset(seen, 0, sizeof(seen));
        nseen = 0;
    }
    size_t i = h % SEEN_SLOTS;
    while (seen[i] && seen[i] != h)
        i = (i + 1) % SEEN_SLOTS;
    int first = !seen[i];
    if (first) {
        seen[i] = h;
        nseen++;
    }
    pthread_mutex_unlock(&seen_lock);
    return first;
}

void log_once(enum log_level level, const char *file, const char *cause, const char *fmt, ...)
{
    if (!log_enabled(level) || !first_time(fnv1a(fnv1a(0xcbf29ce484222325ULL, file), cause)))
        return;
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    log_msg(level, "%s: %s (%s)", file, cause, detail);
}

static void (*observer)(void *avcl, int level, const char *fmt);

void log_observe_ffmpeg(void (*fn)(void *avcl, int level, const char *fmt))
{
    __atomic_store_n(&observer, fn, __ATOMIC_RELEASE);
}

static void ffmpeg_cb(void *avcl, int av_level, const char *fmt, va_list ap)
{
    void (*fn)(void *, int, const char *) = __atomic_load_n(&observer, __ATOMIC_ACQUIRE);
    if (fn)
        fn(avcl, av_level, fmt);
    enum log_level level = av_level <= AV_LOG_ERROR     ? LOG_LEVEL_WARN
                           : av_level <= AV_LOG_WARNING ? LOG_LEVEL_INFO
                                                        : LOG_LEVEL_DEBUG;
    if (av_level > av_log_get_level() || !log_enabled(level))
        return;
    /* A damaged stream repeats the same complaint for every packet of every read: below
     * debug level each of FFmpeg's messages is shown once, our own lines give the cause. */
    if (!log_enabled(LOG_LEVEL_DEBUG) && !first_time(fnv1a(0x84222325cbf29ce4ULL, fmt)))
        return;
    char buf[1024];
    snprintf(buf, sizeof(buf), "ffmpeg: %s", fmt);
    vlog(level, buf, ap);
}

void log_hook_ffmpeg(void)
{
    av_log_set_callback(ffmpeg_cb);
}
