/* Decoder pool scheduling without a mount or a codec: the rules at the top of pool.c,
 * checked against a fake backend that "decodes" a packet into a 2x2 gray frame whose
 * first byte is the packet's first (the frame number, as written here). The media are
 * small NUT files written here (packets of a codec nothing decodes, a keyframe every GOP
 * frames), indexed by index_build, so the decoder and its demuxer run as on a real file. */
#include "decoder.h"
#include "index.h"
#include "media.h"
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define GOP 10
#define FAKE_QUEUE 3 /* packets the fake backend holds: it answers -EAGAIN beyond */
#define FAKE_DELAY 1 /* frames come out one packet late, as with a codec's delay */

static atomic_int opens, closes;

struct fake {
    int64_t pts[FAKE_QUEUE];
    uint8_t byte[FAKE_QUEUE];
    int n, draining;
};

static int supports_all(const AVCodecParameters *par, const struct decode_opts *opts)
{
    (void)opts;
    return par->codec_type == AVMEDIA_TYPE_VIDEO ? 0 : -ENOTSUP;
}

static int supports_small(const AVCodecParameters *par, const struct decode_opts *opts)
{
    (void)opts;
    return par->width <= 8 ? 0 : -ENOTSUP;
}

static int supports_none(const AVCodecParameters *par, const struct decode_opts *opts)
{
    (void)par, (void)opts;
    return -ENOTSUP;
}

static int fake_open(void *priv, const AVCodecParameters *par, const struct decode_opts *opts)
{
    (void)priv, (void)par, (void)opts;
    opens++;
    return 0;
}

static int fake_reconfigure(void *priv, const AVCodecParameters *par)
{
    (void)priv, (void)par;
    return 0;
}

static int fake_send(void *priv, const AVPacket *pkt)
{
    struct fake *f = priv;
    if (!pkt) {
        f->draining = 1;
        return 0;
    }
    if (f->n == FAKE_QUEUE)
        return -EAGAIN;
    f->pts[f->n] = pkt->pts;
    f->byte[f->n++] = pkt->data[0];
    return 0;
}

static int fake_receive(void *priv, AVFrame *frame)
{
    struct fake *f = priv;
    if (!f->n || (f->n <= FAKE_DELAY && !f->draining))
        return f->draining ? -ENODATA : -EAGAIN;
    frame->format = AV_PIX_FMT_GRAY8;
    frame->width = frame->height = 2;
    if (av_frame_get_buffer(frame, 0) < 0)
        return -ENOMEM;
    frame->pts = f->pts[0];
    frame->data[0][0] = f->byte[0];
    f->n--;
    memmove(f->pts, f->pts + 1, (size_t)f->n * sizeof(*f->pts));
    memmove(f->byte, f->byte + 1, (size_t)f->n);
    return 0;
}

static void fake_flush(void *priv)
{
    struct fake *f = priv;
    f->n = f->draining = 0;
}

static void fake_close(void *priv)
{
    (void)priv;
    closes++;
}

#define FAKE_BACKEND(id, supports_fn)                                                          \
    {                                                                                          \
        .name = id, .priv_size = sizeof(struct fake), .supports = supports_fn,                 \
        .open = fake_open, .reconfigure = fake_reconfigure, .send_packet = fake_send,          \
        .receive_frame = fake_receive, .flush = fake_flush, .close = fake_close,               \
    }

static const struct decode_backend fake = FAKE_BACKEND("fake", supports_all);
static const struct decode_backend fake_small = FAKE_BACKEND("small", supports_small);
static const struct decode_backend fake_none = FAKE_BACKEND("none", supports_none);

static char tmpdir[] = "/tmp/vidfs-test-pool-XXXXXX";

/* A NUT file of `frames` packets of a codec nothing here decodes, pts = dts = i. */
static int write_nut(const char *path, int frames)
{
    AVFormatContext *oc = NULL;
    AVPacket *pkt = av_packet_alloc();
    int ret = avformat_alloc_output_context2(&oc, NULL, "nut", path);
    AVStream *st = ret >= 0 ? avformat_new_stream(oc, NULL) : NULL;
    if (!pkt || !st)
        goto fail;
    st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
    st->codecpar->codec_id = AV_CODEC_ID_CINEPAK;
    st->codecpar->width = st->codecpar->height = 16;
    st->time_base = (AVRational){1, 25};
    if ((ret = avio_open(&oc->pb, path, AVIO_FLAG_WRITE)) < 0 ||
        (ret = avformat_write_header(oc, NULL)) < 0)
        goto fail;
    for (int i = 0; i < frames && ret >= 0; i++) {
        if ((ret = av_new_packet(pkt, 16)) < 0)
            break;
        memset(pkt->data, i, 16);
        pkt->pts = pkt->dts = av_rescale_q(i, (AVRational){1, 25}, st->time_base);
        pkt->duration = av_rescale_q(1, (AVRational){1, 25}, st->time_base);
        pkt->flags = i % GOP ? 0 : AV_PKT_FLAG_KEY;
        ret = av_write_frame(oc, pkt);
        av_packet_unref(pkt);
    }
    if (ret >= 0)
        ret = av_write_trailer(oc);
fail:
    if (oc)
        avio_closep(&oc->pb);
    avformat_free_context(oc);
    av_packet_free(&pkt);
    return ret < 0 || !st ? -1 : 0;
}

/* A media over a new NUT file, filled as media_open fills it but without probing (which
 * would try to decode): the index comes from index_build. */
static struct media *make_media(const char *name, int frames)
{
    static uint64_t next_id = 1;
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.nut", tmpdir, name);
    AVFormatContext *fmt = NULL;
    struct media *m = calloc(1, sizeof(*m));
    if (!m || write_nut(path, frames) < 0 || avformat_open_input(&fmt, path, NULL, NULL) < 0)
        abort();
    m->refcount = 1;
    m->id = next_id++;
    m->path = strdup(path);
    m->fd = open(path, O_RDONLY | O_CLOEXEC);
    m->stream = 0;
    m->par = avcodec_parameters_alloc();
    if (!m->path || m->fd < 0 || fstat(m->fd, &m->st) < 0 || !m->par ||
        avcodec_parameters_copy(m->par, fmt->streams[0]->codecpar) < 0 ||
        index_build(fmt, 0, &m->index) < 0)
        abort();
    m->time_base = fmt->streams[0]->time_base;
    m->width = m->height = 16;
    m->pix_fmt = AV_PIX_FMT_YUV420P; /* what it would decode to; nothing decodes it */
    m->bit_depth = 8;
    avformat_close_input(&fmt);
    return m;
}

static struct pool *make_pool(int size)
{
    struct pool_opts o = {.size = size, .decode = {.threads = 1}, .backends = {&fake, NULL}};
    struct pool *p = NULL;
    if (pool_new(&o, &p) < 0)
        abort();
    return p;
}

/* Decodes frame n on d and checks it is frame n (its pts, and the byte it was written
 * with). */
static void check_get(struct decoder *d, int n)
{
    AVFrame *f = av_frame_alloc();
    int ret = decoder_get(d, n, f, NULL, 1);
    CHECK(ret == 0);
    CHECK(ret != 0 || (f->pts == d->media->index->frames[n].pts && f->data[0][0] == n));
    av_frame_free(&f);
}

/* Leases a decoder for frame n of m and decodes it; the lease is held. */
static struct decoder *lease(struct pool *p, struct media *m, int n)
{
    struct decoder *d = NULL;
    CHECK(pool_acquire(p, m, n, &fake, NULL, &d) == 0);
    if (d)
        check_get(d, n);
    return d;
}

static struct pool_stats stats(struct pool *p)
{
    struct pool_stats st;
    pool_stats(p, &st);
    return st;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* pool_backend takes the first backend of the list that supports the stream; `after`
 * asks for the next one. */
static void test_backend_choice(void)
{
    struct pool_opts o = {.size = 1, .backends = {&fake_none, &fake_small, &fake, NULL}};
    struct pool *p;
    CHECK(pool_new(&o, &p) == 0);
    struct media m = {.par = avcodec_parameters_alloc()};
    m.par->codec_type = AVMEDIA_TYPE_VIDEO;
    m.par->width = 8;
    CHECK(pool_backend(p, &m, NULL) == &fake_small);
    CHECK(pool_backend(p, &m, &fake_none) == &fake_small);
    CHECK(pool_backend(p, &m, &fake_small) == &fake);
    CHECK(pool_backend(p, &m, &fake) == NULL);
    m.par->width = 16;
    CHECK(pool_backend(p, &m, NULL) == &fake);
    CHECK(pool_backend(p, &m, &fake) == NULL);
    m.par->codec_type = AVMEDIA_TYPE_AUDIO;
    CHECK(pool_backend(p, &m, NULL) == NULL);
    avcodec_parameters_free(&m.par);
    pool_free(&p);
}

/* Rules 1-4 with two slots: a continuing request gets the decoder positioned before its
 * frame; a new decoder is made while under the bound; at the bound a decoder in the same
 * media seeks, else the least recently used one is reattached. */
static void test_choice(void)
{
    struct pool *p = make_pool(2);
    struct media *m = make_media("choice", 4 * GOP), *m2 = make_media("choice2", GOP);
    struct decoder *d1 = lease(p, m, 3), *d;
    pool_release(p, d1);
    CHECK(stats(p).created == 1);

    d = lease(p, m, 4); /* rule 1, also while under the bound */
    CHECK(d == d1 && stats(p).continued == 1 && stats(p).created == 1);
    pool_release(p, d);

    struct decoder *d2 = lease(p, m, 25); /* rule 2: d1 keeps its place */
    CHECK(d2 && d2 != d1 && stats(p).created == 2);
    pool_release(p, d2);

    d = lease(p, m, 5); /* at the bound, each continues where it stands */
    CHECK(d == d1 && stats(p).continued == 2);
    pool_release(p, d);
    d = lease(p, m, 26);
    CHECK(d == d2 && stats(p).continued == 3);
    pool_release(p, d);

    /* Rule 3: neither continues to 15 (d1 stands in the GOP before, d2 after it). */
    struct decoder *seeker = lease(p, m, 15);
    CHECK((seeker == d1 || seeker == d2) && stats(p).seeks == 1 && stats(p).created == 2);
    pool_release(p, seeker);

    /* Rule 4: another media takes the least recently used one, reattached. */
    struct decoder *lru = seeker == d1 ? d2 : d1;
    d = lease(p, m2, 0);
    CHECK(d == lru && d->media == m2 && stats(p).reused == 1 && stats(p).created == 2);
    pool_release(p, d);
    d = lease(p, m, 16); /* the other kept its place in m */
    CHECK(d == seeker && stats(p).continued == 4);
    pool_release(p, d);
    /* Rule 3 before 4: the decoder in m seeks although the other is less recently used. */
    d = lease(p, m, 35);
    CHECK(d == seeker && stats(p).seeks == 2 && stats(p).reused == 1);
    pool_release(p, d);

    struct pool_stats st = stats(p);
    CHECK(st.busy == 0 && st.idle == 2 && st.waits == 0 && st.frames_cpu > 0);
    CHECK(opens == 2); /* the reattached decoder was reconfigured, not reopened */
    pool_free(&p);
    CHECK(opens == closes);
    media_unref(&m);
    media_unref(&m2);
}

struct behind_arg {
    struct pool *p;
    struct media *m;
    struct decoder *got;
    atomic_int started;
};

static void *behind_thread(void *arg)
{
    struct behind_arg *a = arg;
    a->started = 1;
    a->got = lease(a->p, a->m, 5);
    pool_release(a->p, a->got);
    return NULL;
}

/* Rule 1b: a request for frame 5 while frame 3's decoder is busy on its way waits for it
 * rather than decoding the GOP again on a new decoder, although the pool has room. */
static void test_behind(void)
{
    struct pool *p = make_pool(2);
    struct media *m = make_media("behind", 2 * GOP);
    struct decoder *d = NULL;
    CHECK(pool_acquire(p, m, 3, &fake, NULL, &d) == 0);
    struct behind_arg a = {.p = p, .m = m};
    pthread_t t;
    pthread_create(&t, NULL, behind_thread, &a);
    while (!a.started)
        usleep(1000);
    usleep(50000); /* lets it reach the pool; had it not, rule 1 gives the same result */
    check_get(d, 3);
    pool_release(p, d);
    pthread_join(t, NULL);
    CHECK(a.got == d && stats(p).created == 1 && stats(p).continued == 1);
    pool_free(&p);
    media_unref(&m);
}

/* FIFO: N requests block on a pool of one decoder, each started once the one before is
 * queued; the decoder is handed on one release at a time. Each request, once released,
 * asks again at once: it must queue behind those still waiting, not take the decoder it
 * just gave back. Every request's frame is in a GOP no decoder stands in, so rule 1 never
 * lets one bypass the queue. */
#define FIFO_N 6

struct fifo {
    struct pool *p;
    struct media *m;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int order[2 * FIFO_N], served, allowed; /* allowed: leases that may be released */
};

struct fifo_arg {
    struct fifo *f;
    int id;
};

/* One lease of the decoder for frame n: records its turn, releases when allowed. */
static void fifo_lease(struct fifo *f, int id, int n)
{
    struct decoder *d = lease(f->p, f->m, n);
    pthread_mutex_lock(&f->lock);
    int turn = f->served++;
    f->order[turn] = id;
    pthread_cond_broadcast(&f->cond);
    while (f->allowed <= turn)
        pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
    pool_release(f->p, d);
}

static void *fifo_thread(void *arg)
{
    struct fifo_arg *a = arg;
    int n = GOP * (a->id + 1);
    fifo_lease(a->f, a->id, n);
    fifo_lease(a->f, a->id, n); /* its own frame again: no decoder continues to it */
    return NULL;
}

static void test_fifo(void)
{
    struct fifo f = {.p = make_pool(1), .m = make_media("fifo", GOP * (FIFO_N + 1))};
    pthread_mutex_init(&f.lock, NULL);
    pthread_cond_init(&f.cond, NULL);
    struct decoder *d = NULL;
    CHECK(pool_acquire(f.p, f.m, 0, &fake, NULL, &d) == 0);
    pthread_t t[FIFO_N];
    struct fifo_arg args[FIFO_N];
    for (int i = 0; i < FIFO_N; i++) {
        args[i] = (struct fifo_arg){&f, i};
        pthread_create(&t[i], NULL, fifo_thread, &args[i]);
        while (stats(f.p).waiting < i + 1) /* queued: the next one arrives after it */
            usleep(1000);
    }
    pool_release(f.p, d);
    for (int turn = 0; turn < 2 * FIFO_N; turn++) {
        pthread_mutex_lock(&f.lock);
        while (f.served <= turn)
            pthread_cond_wait(&f.cond, &f.lock);
        CHECK(f.order[turn] == turn % FIFO_N);
        if (f.order[turn] != turn % FIFO_N)
            fprintf(stderr, "turn %d went to request %d\n", turn, f.order[turn]);
        pthread_mutex_unlock(&f.lock);
        /* The requests made by now, all queued but this turn's and those served, before
         * the next release: a request made again arrives before the next one is. */
        int made = FIFO_N + (turn < FIFO_N ? turn : FIFO_N);
        while (stats(f.p).waiting < made - (turn + 1))
            usleep(1000);
        pthread_mutex_lock(&f.lock);
        f.allowed = turn + 1;
        pthread_cond_broadcast(&f.cond);
        pthread_mutex_unlock(&f.lock);
    }
    for (int i = 0; i < FIFO_N; i++)
        pthread_join(t[i], NULL);
    struct pool_stats st = stats(f.p);
    CHECK(st.waits == 2 * FIFO_N && st.waiting == 0 && st.created == 1 && st.continued == 0);
    pool_free(&f.p);
    media_unref(&f.m);
    pthread_cond_destroy(&f.cond);
    pthread_mutex_destroy(&f.lock);
}

/* A request that arrives while the decoder is free but another waits for it queues
 * behind: the waiter is held in a signal handler across the release, so the newcomer
 * meets a free slot and a queue, whatever the scheduler does. */
static atomic_int frozen, thawed, seq;

static void freeze(int sig)
{
    (void)sig;
    frozen = 1;
    while (!thawed)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL); /* async-signal-safe */
}

struct order_arg {
    struct pool *p;
    struct media *m;
    int n, turn;
    atomic_int done;
};

static void *order_thread(void *arg)
{
    struct order_arg *a = arg;
    struct decoder *d = lease(a->p, a->m, a->n);
    a->turn = seq++;
    a->done = 1;
    pool_release(a->p, d);
    return NULL;
}

/* Starts a request for a's frame that queues for the pool's one decoder, and freezes it
 * there (in the signal handler) until thawed. */
static void start_frozen(struct order_arg *a, pthread_t *t)
{
    struct sigaction sa = {.sa_handler = freeze};
    sigaction(SIGUSR1, &sa, NULL);
    frozen = thawed = 0;
    seq = 0;
    pthread_create(t, NULL, order_thread, a);
    while (stats(a->p).waiting < 1)
        usleep(1000);
    pthread_kill(*t, SIGUSR1);
    while (!frozen)
        usleep(1000);
}

static void test_newcomer(void)
{
    struct pool *p = make_pool(1);
    struct media *m = make_media("newcomer", 3 * GOP);
    struct decoder *d = NULL;
    CHECK(pool_acquire(p, m, 0, &fake, NULL, &d) == 0);
    struct order_arg first = {.p = p, .m = m, .n = GOP}, later = {.p = p, .m = m, .n = 2 * GOP};
    pthread_t t1, t2;
    start_frozen(&first, &t1);
    pool_release(p, d);
    pthread_create(&t2, NULL, order_thread, &later);
    while (stats(p).waiting < 2 && !later.done)
        usleep(1000);
    CHECK(!later.done);
    thawed = 1;
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(first.turn == 0 && later.turn == 1);
    pool_free(&p);
    media_unref(&m);
}

/* A request that comes back for its next frame keeps its place in line: it goes before a
 * request that arrived after its first frame, though that one queued first this time.
 * The later one is frozen across the release, as above, so the order is the pool's. */
static void test_ticket(void)
{
    struct pool *p = make_pool(1);
    struct media *m = make_media("ticket", 3 * GOP);
    uint64_t ticket = 0;
    struct decoder *d = NULL;
    CHECK(pool_acquire(p, m, 0, &fake, &ticket, &d) == 0 && ticket > 0);
    struct order_arg later = {.p = p, .m = m, .n = GOP};
    pthread_t t;
    start_frozen(&later, &t);
    pool_release(p, d);
    d = NULL;
    /* Another GOP: no decoder continues to it, so only the ticket puts it first. */
    CHECK(pool_acquire(p, m, 2 * GOP, &fake, &ticket, &d) == 0 && d);
    CHECK(!later.done);
    thawed = 1;
    pool_release(p, d);
    pthread_join(t, NULL);
    CHECK(later.done && later.turn == 0);
    pool_free(&p);
    media_unref(&m);
}

struct park_arg {
    struct pool *p;
    struct media *m;
    struct decoder *got;
    int64_t got_us;
    atomic_int done;
};

static void *park_thread(void *arg)
{
    struct park_arg *a = arg;
    a->got = lease(a->p, a->m, 0);
    a->got_us = now_us();
    a->done = 1;
    return NULL;
}

/* A parked decoder is its request's for POOL_PARK_MS: unparked by it, passed over by
 * others (a new decoder while fewer than the bound decode, parked ones not counted; a wait
 * once every slot is held), given to another once the park ends, and free at once when
 * the claim is given up. At most the bound decode at once. */
static void test_park(void)
{
    struct pool *p = make_pool(1);
    struct media *m = make_media("park", 2 * GOP), *m2 = make_media("park2", GOP);
    struct pool_claim c, c2, c3;
    struct decoder *d = lease(p, m, 0), *back = NULL;
    pool_park(p, d, &c);
    CHECK(stats(p).parked == 1 && stats(p).busy == 0);
    CHECK(pool_unpark(p, &c, &back) == 0 && back == d && stats(p).unparked == 1);
    check_get(d, 1);

    /* Parked, it does not count against the bound: another request gets a new decoder. */
    pool_park(p, d, &c);
    struct decoder *other = lease(p, m2, 0);
    CHECK(other && other != d && stats(p).created == 2);
    CHECK(pool_unpark(p, &c, &back) == 0 && back == d); /* its own request, busy or not */
    pool_release(p, other);

    /* Every slot held (twice the bound, both parked): a request in m waits out d's park,
     * the first to end, then takes d. */
    int64_t parked_us = now_us();
    pool_park(p, d, &c);
    other = lease(p, m2, 1);
    CHECK(stats(p).created == 2);
    pool_park(p, other, &c3);
    struct park_arg a = {.p = p, .m = m};
    pthread_t t;
    pthread_create(&t, NULL, park_thread, &a);
    pthread_join(t, NULL);
    CHECK(a.got == d && stats(p).waits == 1 && stats(p).created == 2);
    CHECK(a.got_us - parked_us >= (POOL_PARK_MS - 1) * 1000);
    /* Parked again, by the request that has it now: the old claim stays void. */
    pool_park(p, a.got, &c2);
    CHECK(pool_unpark(p, &c, &back) == -EAGAIN);
    CHECK(pool_unpark(p, &c2, &back) == 0 && back == d);
    pool_release(p, a.got);
    pool_unclaim(p, &c3);

    /* A claim given up frees the decoder at once: the next request does not wait. */
    d = lease(p, m, 5);
    pool_park(p, d, &c);
    pool_unclaim(p, &c);
    CHECK(stats(p).parked == 0);
    struct decoder *next = lease(p, m, GOP);
    CHECK(next == d && stats(p).waits == 1);
    CHECK(pool_unpark(p, &c, &back) == -EAGAIN); /* used up */

    /* The bound decode at once: with one busy, a request waits for it though a slot is
     * free, and goes once it is released. */
    struct park_arg b = {.p = p, .m = m2};
    pthread_create(&t, NULL, park_thread, &b);
    usleep(50000);
    CHECK(!b.done);
    pool_release(p, next);
    pthread_join(t, NULL);
    CHECK(b.done && b.got && stats(p).waits == 2);
    pool_release(p, b.got);
    pool_free(&p);
    media_unref(&m);
    media_unref(&m2);
}

/* A pool that never hands a decoder on hangs its test: that fails here, with a line,
 * before meson's own timeout. The bound is for a hang; it says nothing about speed. */
#define WATCHDOG_S 20

static void watchdog(int sig)
{
    static const char msg[] = "test_pool: a request waited for good (hung)\n";
    (void)sig;
    if (write(2, msg, sizeof(msg) - 1) < 0)
        _exit(2);
    _exit(1);
}

int main(void)
{
    signal(SIGALRM, watchdog);
    alarm(WATCHDOG_S);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_backend_choice();
    test_choice();
    test_behind();
    test_fifo();
    test_newcomer();
    test_ticket();
    test_park();
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmpdir);
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures != 0;
}
