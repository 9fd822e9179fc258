/* Frame cache without a mount: hits return the frame put, the byte bound holds however
 * the keys spread over shards, recently used frames outlive older ones, and threads
 * putting and getting at once leave consistent counts. */
#include "frame_cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

/* A gray frame whose first byte is tag. */
static AVFrame *make_frame(int w, int h, int tag)
{
    AVFrame *f = av_frame_alloc();
    f->format = AV_PIX_FMT_GRAY8;
    f->width = w;
    f->height = h;
    if (av_frame_get_buffer(f, 0) < 0) abort();
    f->data[0][0] = (uint8_t)tag;
    return f;
}

static size_t frame_size(void)
{
    AVFrame *f = make_frame(64, 64, 0);
    size_t n = f->buf[0]->size;
    av_frame_free(&f);
    return n;
}

/* A cache bounded to hold about `frames` of make_frame(64, 64). */
static struct frame_cache *cache_of(size_t frames)
{
    struct frame_cache *fc = NULL;
    CHECK(frame_cache_new(frames * (frame_size() + 256), &fc) == 0);
    return fc;
}

static void test_hit_miss(void)
{
    struct frame_cache *fc;
    CHECK(frame_cache_new(1 << 20, &fc) == 0);
    AVFrame *f = make_frame(64, 64, 7);
    CHECK(frame_cache_get(fc, 1, 5) == NULL);
    frame_cache_put(fc, 1, 5, f);
    av_frame_free(&f);
    AVFrame *g = frame_cache_get(fc, 1, 5);
    CHECK(g && g->data[0][0] == 7);
    CHECK(frame_cache_get(fc, 2, 5) == NULL && frame_cache_get(fc, 1, 6) == NULL);
    CHECK(frame_cache_has(fc, 1, 5) && !frame_cache_has(fc, 1, 4));
    struct frame_cache_stats st;
    frame_cache_stats(fc, &st);
    CHECK(st.hits == 1 && st.misses == 3 && st.inserts == 1 && st.frames == 1);
    frame_cache_free(&fc);
    /* The reference handed out outlives the cache. */
    CHECK(g && g->data[0][0] == 7);
    av_frame_free(&g);
    CHECK(fc == NULL);
}

static void test_bound(void)
{
    struct frame_cache *fc = cache_of(10);
    AVFrame *f = make_frame(64, 64, 1);
    for (int n = 0; n < 1000; n++)
        frame_cache_put(fc, 3, n, f);
    struct frame_cache_stats st;
    frame_cache_stats(fc, &st);
    CHECK(st.bytes <= st.max_bytes);
    CHECK(st.frames >= 9 && st.frames <= 10);
    CHECK(st.inserts - st.evictions == st.frames);
    /* The last frames put are all there, whichever shards they fell in (read-ahead puts
     * frames a reader takes a few frames later); the first is long gone. */
    for (int n = 992; n < 1000; n++)
        CHECK(frame_cache_has(fc, 3, n));
    CHECK(!frame_cache_has(fc, 3, 0));
    /* A frame larger than the whole bound is not kept. */
    AVFrame *big = make_frame(1024, 1024, 2);
    frame_cache_put(fc, 4, 0, big);
    CHECK(!frame_cache_has(fc, 4, 0));
    av_frame_free(&big);
    av_frame_free(&f);
    frame_cache_free(&fc);
}

/* Frames a reader asked for outlive those put on the way (segmented LRU), up to their
 * share of the bound (three quarters), past which the oldest go back to probation. */
static void test_protected(void)
{
    struct frame_cache *fc = cache_of(12);
    AVFrame *f = make_frame(64, 64, 1);
    for (int n = 0; n < 5; n++) {
        frame_cache_put(fc, 5, n, f);
        frame_cache_protect(fc, 5, n); /* asked for out of order */
    }
    /* A hit alone protects nothing: frames an in-order reader passed go as LRU. */
    frame_cache_put(fc, 5, 5, f);
    AVFrame *g = frame_cache_get(fc, 5, 5);
    av_frame_free(&g);
    for (int n = 100; n < 400; n++)
        frame_cache_put(fc, 5, n, f); /* a seek's pictures on the way */
    for (int n = 0; n < 5; n++)
        CHECK(frame_cache_has(fc, 5, n));
    CHECK(!frame_cache_has(fc, 5, 5));
    CHECK(frame_cache_has(fc, 5, 399) && !frame_cache_has(fc, 5, 100));
    /* Twelve asked for: the oldest pass the share and go, the last nine stay. */
    for (int n = 500; n < 512; n++) {
        frame_cache_put(fc, 5, n, f);
        frame_cache_protect(fc, 5, n);
    }
    for (int n = 600; n < 700; n++)
        frame_cache_put(fc, 5, n, f);
    for (int n = 503; n < 512; n++)
        CHECK(frame_cache_has(fc, 5, n));
    CHECK(!frame_cache_has(fc, 5, 0) && !frame_cache_has(fc, 5, 500));
    struct frame_cache_stats st;
    frame_cache_stats(fc, &st);
    CHECK(st.bytes <= st.max_bytes && st.inserts - st.evictions == st.frames);
    av_frame_free(&f);
    frame_cache_free(&fc);
}

/* The data of frame (media, n) in the cache, by pointer; the reference is dropped. */
static const uint8_t *cached_data(struct frame_cache *fc, uint64_t media, int n)
{
    AVFrame *g = frame_cache_get(fc, media, n);
    const uint8_t *p = g ? g->data[0] : NULL;
    av_frame_free(&g);
    return p;
}

static void test_recycle(void)
{
    struct frame_cache *fc = cache_of(100);
    AVFrame *f = make_frame(64, 64, 9);
    frame_cache_put(fc, 1, 0, f);
    const uint8_t *p = cached_data(fc, 1, 0);
    /* A dropped frame's buffer takes the next copy of its size: no fresh memory. */
    frame_cache_drop(fc, 1, 0);
    CHECK(!frame_cache_has(fc, 1, 0));
    struct frame_cache_stats st;
    frame_cache_stats(fc, &st);
    CHECK(st.frames == 0 && st.dropped == 1 && st.bytes == 0 && st.allocs == 1);
    frame_cache_put(fc, 1, 1, f);
    CHECK(cached_data(fc, 1, 1) == p);
    /* A buffer a reader still holds is not reused, and the reader's frame stays intact. */
    AVFrame *held = frame_cache_get(fc, 1, 1);
    frame_cache_drop(fc, 1, 1);
    frame_cache_put(fc, 1, 2, f);
    const uint8_t *r = cached_data(fc, 1, 2);
    CHECK(r != p && held->data[0] == p && held->data[0][0] == 9);
    av_frame_free(&held);
    /* Its last reference gone, it waits beside the other for the next copies. */
    frame_cache_drop(fc, 1, 2);
    frame_cache_put(fc, 1, 3, f);
    frame_cache_put(fc, 1, 4, f);
    const uint8_t *q3 = cached_data(fc, 1, 3), *q4 = cached_data(fc, 1, 4);
    CHECK((q3 == p && q4 == r) || (q3 == r && q4 == p));
    frame_cache_stats(fc, &st);
    CHECK(st.allocs == 2);
    /* Trimmed (idle mount), spare buffers are freed: the next copy takes fresh memory. */
    frame_cache_drop(fc, 1, 3);
    frame_cache_drop(fc, 1, 4);
    frame_cache_trim(fc);
    frame_cache_put(fc, 1, 5, f);
    frame_cache_stats(fc, &st);
    CHECK(st.frames == 1 && st.allocs == 3);
    /* At most four buffers wait: six freed at once, six copies take two fresh ones. */
    for (int n = 6; n < 11; n++)
        frame_cache_put(fc, 1, n, f);
    for (int n = 5; n < 11; n++)
        frame_cache_drop(fc, 1, n);
    frame_cache_stats(fc, &st);
    uint64_t allocs = st.allocs;
    for (int n = 11; n < 17; n++)
        frame_cache_put(fc, 1, n, f);
    frame_cache_stats(fc, &st);
    CHECK(st.allocs == allocs + 2);
    av_frame_free(&f);
    frame_cache_free(&fc);
}

static void test_full_cache_recycles(void)
{
    struct frame_cache *fc = cache_of(4);
    AVFrame *f = make_frame(64, 64, 5);
    const uint8_t *seen[64];
    int nseen = 0;
    for (int n = 0; n < 64; n++) {
        frame_cache_put(fc, 2, n, f);
        const uint8_t *p = cached_data(fc, 2, n);
        CHECK(p != NULL);
        int known = 0;
        for (int i = 0; i < nseen; i++)
            known |= seen[i] == p;
        if (!known)
            seen[nseen++] = p;
    }
    /* An evicted frame's buffer takes the copy that evicted it. */
    CHECK(nseen <= 5);
    struct frame_cache_stats st;
    frame_cache_stats(fc, &st);
    CHECK(st.bytes <= st.max_bytes && st.inserts - st.evictions == st.frames);
    av_frame_free(&f);
    frame_cache_free(&fc);
}

/* A decoder's picture in a buffer of the cache's (its get_buffer2): kept by reference,
 * not copied, and its buffer goes to the decoder's next picture once dropped. */
static void test_decoder_buffers(void)
{
    struct frame_cache *fc;
    CHECK(frame_cache_new(1 << 22, &fc) == 0);
    AVFrame *f = av_frame_alloc();
    f->format = AV_PIX_FMT_YUV420P;
    f->width = 100;
    f->height = 50;
    CHECK(frame_cache_frame_buffer(fc, f, 128, 66) == 0);
    for (int i = 0; i < 3; i++)
        CHECK(f->data[i] && f->linesize[i] % 64 == 0 && f->linesize[i] >= 128 >> !!i);
    CHECK(f->data[1] >= f->data[0] + 66 * f->linesize[0] && !f->buf[1]);
    f->data[2][33 * f->linesize[2] - 1] = 42; /* the last byte of the 128x66 picture */
    const uint8_t *p = f->data[0];
    frame_cache_put(fc, 1, 0, f);
    av_frame_free(&f);
    AVFrame *g = frame_cache_get(fc, 1, 0);
    CHECK(g && g->data[0] == p && g->data[2][33 * g->linesize[2] - 1] == 42);
    struct frame_cache_stats st;
    frame_cache_stats(fc, &st);
    CHECK(st.frames == 1 && st.bytes >= (size_t)g->buf[0]->size && st.allocs == 1);
    av_frame_free(&g);
    frame_cache_drop(fc, 1, 0);
    AVFrame *h = av_frame_alloc();
    h->format = AV_PIX_FMT_YUV420P;
    CHECK(frame_cache_frame_buffer(fc, h, 128, 66) == 0 && h->data[0] == p);
    frame_cache_stats(fc, &st);
    CHECK(st.allocs == 1);
    av_frame_free(&h);
    frame_cache_free(&fc);
}

static struct frame_cache *shared;

static void *hammer(void *arg)
{
    uint64_t media = (uintptr_t)arg;
    AVFrame *f = make_frame(64, 64, (int)media);
    for (int i = 0; i < 20000; i++) {
        int n = (int)((unsigned)i * 2654435761u % 500);
        AVFrame *g = frame_cache_get(shared, media, n);
        if (g) {
            CHECK(g->data[0][0] == (uint8_t)media);
            av_frame_free(&g);
        } else {
            frame_cache_put(shared, media, n, f);
        }
    }
    av_frame_free(&f);
    return NULL;
}

static void test_threads(void)
{
    size_t one = frame_size();
    CHECK(frame_cache_new(200 * (one + 256), &shared) == 0);
    pthread_t t[8];
    for (uintptr_t i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, hammer, (void *)(i + 1));
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    struct frame_cache_stats st;
    frame_cache_stats(shared, &st);
    CHECK(st.bytes <= st.max_bytes);
    CHECK(st.inserts - st.evictions == st.frames);
    CHECK(st.hits + st.misses == 8 * 20000);
    frame_cache_free(&shared);
}

int main(void)
{
    test_hit_miss();
    test_bound();
    test_protected();
    test_recycle();
    test_full_cache_recycles();
    test_decoder_buffers();
    test_threads();
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures != 0;
}
