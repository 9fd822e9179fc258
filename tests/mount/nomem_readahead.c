/* LD_PRELOAD fault for tests/mount/test_stats.py: av_frame_alloc returns NULL on every
 * thread the vidfs executable itself creates (only the read-ahead workers), and works
 * everywhere else (FUSE threads, FFmpeg's own threads). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

struct start {
    void *(*fn)(void *);
    void *arg;
};

static __thread int failing;

static void *run(void *p)
{
    struct start s = *(struct start *)p;
    free(p);
    failing = 1;
    return s.fn(s.arg);
}

static int from_executable(void *caller)
{
    Dl_info a, b;
    void *main_fn = dlsym(RTLD_DEFAULT, "main");
    return main_fn && dladdr(caller, &a) && dladdr(main_fn, &b) && a.dli_fbase == b.dli_fbase;
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
    if (failing)
        return NULL;
    void *(*real)(void) = (void *(*)(void))dlsym(RTLD_NEXT, "av_frame_alloc");
    return real();
}
