/* LD_PRELOAD faults for tests/mount/test_stats.py, on the threads the vidfs executable
 * itself creates (only the read-ahead workers; FUSE's and FFmpeg's threads are left alone):
 *   VIDFS_FAULT=nomem      av_frame_alloc returns NULL
 *   VIDFS_FAULT=gate:PATH  the first worker to decode creates PATH.taken and blocks
 *                          while PATH exists */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct start {
    void *(*fn)(void *);
    void *arg;
};

static __thread int worker;
static int gate_taken;

static void *run(void *p)
{
    struct start s = *(struct start *)p;
    free(p);
    worker = 1;
    return s.fn(s.arg);
}

static int from_executable(void *caller)
{
    Dl_info a, b;
    void *main_fn = dlsym(RTLD_DEFAULT, "main");
    return main_fn && dladdr(caller, &a) && dladdr(main_fn, &b) && a.dli_fbase == b.dli_fbase;
}

static int fault(const char *name)
{
    const char *f = getenv("VIDFS_FAULT");
    return worker && f && !strncmp(f, name, strlen(name));
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
        (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))dlsym(
            RTLD_NEXT, "pthread_create");
    struct start *s;
    if (!from_executable(__builtin_return_address(0)) || !(s = malloc(sizeof(*s))))
        return real(t, attr, fn, arg);
    s->fn = fn, s->arg = arg;
    return real(t, attr, run, s);
}

void *av_frame_alloc(void)
{
    if (fault("nomem"))
        return NULL;
    void *(*real)(void) = (void *(*)(void))dlsym(RTLD_NEXT, "av_frame_alloc");
    return real();
}

int avcodec_receive_frame(void *ctx, void *frame)
{
    if (fault("gate:") && !__atomic_exchange_n(&gate_taken, 1, __ATOMIC_SEQ_CST)) {
        const char *gate = getenv("VIDFS_FAULT") + 5;
        char taken[4096];
        snprintf(taken, sizeof(taken), "%s.taken", gate);
        close(open(taken, O_WRONLY | O_CREAT, 0644)); /* the test waits for this */
        while (access(gate, F_OK) == 0)
            usleep(10000);
    }
    int (*real)(void *, void *) =
        (int (*)(void *, void *))dlsym(RTLD_NEXT, "avcodec_receive_frame");
    return real(ctx, frame);
}
