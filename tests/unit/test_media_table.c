/* The media table over a fake source: one open a media however many threads ask at once,
 * a changed stat opens it again, the least recently used are dropped at the bound while
 * others still read them, a failed open is not kept, and frames.csv's size is counted. */
#include "media_table.h"
#include "index.h"
#include "media.h"
#include "meta.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

#define NAMES 64

/* Names "v0" .. "v63", each with a stat the test may change; "dir" is no regular file and
 * "bad" fails to open. */
struct fake {
    pthread_mutex_t lock;
    struct stat st[NAMES];
    int opens[NAMES];
};

static int name_index(const char *rel)
{
    return rel[0] == 'v' ? atoi(rel + 1) : -1;
}

static int fake_stat(void *opaque, const char *rel, struct stat *st)
{
    struct fake *f = opaque;
    int i = name_index(rel);
    if (!strcmp(rel, "dir") || !strcmp(rel, "bad")) {
        *st = (struct stat){.st_mode = !strcmp(rel, "dir") ? S_IFDIR : S_IFREG};
        return 0;
    }
    if (i < 0 || i >= NAMES)
        return -ENOENT;
    pthread_mutex_lock(&f->lock);
    *st = f->st[i];
    pthread_mutex_unlock(&f->lock);
    return 0;
}

/* A media of i + 1 frames, 40 ms apart, whose stat is the name's now. */
static int fake_open(void *opaque, const char *rel, int stream, struct media **out)
{
    struct fake *f = opaque;
    int i = name_index(rel);
    if (i < 0)
        return -EIO;
    usleep(1000); /* long enough for others to come and wait */
    struct media *m = calloc(1, sizeof(*m));
    struct index *ix = calloc(1, sizeof(*ix));
    m->refcount = 1;
    m->fd = -1;
    m->stream = stream;
    m->path = strdup(rel);
    m->index = ix;
    ix->nb_frames = i + 1;
    ix->time_base = (AVRational){1, 1000};
    ix->frames = calloc((size_t)ix->nb_frames, sizeof(*ix->frames));
    for (int k = 0; k < ix->nb_frames; k++)
        ix->frames[k] = (struct index_frame){.pts = 40 * k, .duration = 40, .key = k == 0};
    pthread_mutex_lock(&f->lock);
    m->st = f->st[i];
    f->opens[i]++;
    pthread_mutex_unlock(&f->lock);
    *out = m;
    return 0;
}

static const struct media_table_source fake_ops = {.stat = fake_stat, .open = fake_open};

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    for (int i = 0; i < NAMES; i++)
        f->st[i] = (struct stat){.st_mode = S_IFREG | 0644, .st_ino = 100 + i, .st_size = i};
}

static int opens(struct fake *f, int i)
{
    pthread_mutex_lock(&f->lock);
    int n = f->opens[i];
    pthread_mutex_unlock(&f->lock);
    return n;
}

/* Gets v<i> and checks it is v<i>'s media. */
static void get_checked(struct media_table *t, int i)
{
    char rel[16];
    int n = snprintf(rel, sizeof(rel), "v%d", i);
    struct media *m = NULL;
    CHECK(media_table_get(t, rel, (size_t)n, -1, NULL, &m) == 0);
    if (!m)
        return;
    CHECK(!strcmp(m->path, rel) && m->st.st_ino == (ino_t)(100 + i));
    CHECK(m->index->nb_frames == i + 1 && m->index->frames[i].pts == 40 * i);
    media_unref(&m);
}

struct run {
    struct media_table *t;
    int seed, rounds, names;
};

static void *reader(void *arg)
{
    struct run *r = arg;
    unsigned s = (unsigned)r->seed;
    for (int k = 0; k < r->rounds; k++)
        get_checked(r->t, (int)(rand_r(&s) % (unsigned)r->names));
    return NULL;
}

static void run_readers(struct media_table *t, int threads, int rounds, int names)
{
    pthread_t th[16];
    struct run runs[16];
    for (int i = 0; i < threads; i++) {
        runs[i] = (struct run){t, i + 1, rounds, names};
        pthread_create(&th[i], NULL, reader, &runs[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
}

static void test_one_open_per_media(void)
{
    struct fake f;
    fake_init(&f);
    struct media_table *t;
    CHECK(media_table_new_custom(&fake_ops, &f, 256, &t) == 0);
    run_readers(t, 8, 400, 20);
    for (int i = 0; i < 20; i++)
        CHECK(opens(&f, i) == 1);
    media_table_free(&t);
}

static void test_changed_source_is_opened_again(void)
{
    struct fake f;
    fake_init(&f);
    struct media_table *t;
    CHECK(media_table_new_custom(&fake_ops, &f, 256, &t) == 0);
    struct media *old, *m;
    CHECK(media_table_get(t, "v3", 2, -1, NULL, &old) == 0);
    /* Rewritten in place: same inode, size and mtime; only ctime tells. */
    pthread_mutex_lock(&f.lock);
    f.st[3].st_ctim.tv_nsec = 5;
    pthread_mutex_unlock(&f.lock);
    CHECK(media_table_get(t, "v3", 2, -1, NULL, &m) == 0);
    CHECK(m != old && m->st.st_ctim.tv_nsec == 5 && opens(&f, 3) == 2);
    CHECK(old->index->nb_frames == 4); /* the old one still reads */
    media_unref(&old);
    media_unref(&m);
    /* The caller's stat counts as the source's. */
    struct stat st = f.st[3];
    st.st_mtim.tv_sec = 9;
    CHECK(media_table_get(t, "v3", 2, -1, &st, &m) == 0 && opens(&f, 3) == 3);
    media_unref(&m);
    media_table_free(&t);
}

static void test_eviction_at_the_bound(void)
{
    struct fake f;
    fake_init(&f);
    struct media_table *t;
    CHECK(media_table_new_custom(&fake_ops, &f, 4, &t) == 0);
    struct media *held;
    CHECK(media_table_get(t, "v0", 2, -1, NULL, &held) == 0);
    for (int i = 1; i < 10; i++)
        get_checked(t, i);
    for (int i = 6; i < 10; i++) /* the last 4: all still there */
        get_checked(t, i);
    for (int i = 1; i < 10; i++)
        CHECK(opens(&f, i) == 1);
    get_checked(t, 0); /* dropped long ago, while held */
    CHECK(opens(&f, 0) == 2);
    CHECK(!strcmp(held->path, "v0") && held->index->nb_frames == 1);
    media_unref(&held);
    /* Many readers over ten times the bound: entries come and go under them. */
    run_readers(t, 8, 300, 40);
    media_table_free(&t);
}

static void test_failures_are_not_kept(void)
{
    struct fake f;
    fake_init(&f);
    struct media_table *t;
    CHECK(media_table_new_custom(&fake_ops, &f, 16, &t) == 0);
    struct media *m = NULL;
    CHECK(media_table_get(t, "bad", 3, -1, NULL, &m) == -EIO && !m);
    CHECK(media_table_get(t, "bad", 3, -1, NULL, &m) == -EIO && !m);
    CHECK(media_table_get(t, "dir", 3, -1, NULL, &m) == -ENOENT && !m);
    CHECK(media_table_get(t, "nothing", 7, -1, NULL, &m) == -ENOENT && !m);
    /* rel need not be terminated: only its len bytes name it. */
    CHECK(media_table_get(t, "v12/frames", 3, -1, NULL, &m) == 0 && m->index->nb_frames == 13);
    media_unref(&m);
    media_table_free(&t);
}

static void test_csv_size(void)
{
    struct fake f;
    fake_init(&f);
    struct media_table *t;
    CHECK(media_table_new_custom(&fake_ops, &f, 16, &t) == 0);
    uint64_t size = 0, again = 0;
    char *csv;
    size_t len;
    CHECK(media_table_csv_size(t, "v30", 3, -1, NULL, &size) == 0);
    CHECK(media_table_csv_size(t, "v30", 3, -1, NULL, &again) == 0 && again == size);
    CHECK(media_table_csv(t, "v30", 3, -1, &csv, &len) == 0);
    CHECK(len == size && csv[len - 1] == '\n');
    free(csv);
    /* Made first, counted from what was made. */
    CHECK(media_table_csv(t, "v7", 2, -1, &csv, &len) == 0);
    CHECK(media_table_csv_size(t, "v7", 2, -1, NULL, &size) == 0 && size == len);
    free(csv);
    media_table_free(&t);
}

int main(void)
{
    test_one_open_per_media();
    test_changed_source_is_opened_again();
    test_eviction_at_the_bound();
    test_failures_are_not_kept();
    test_csv_size();
    if (failures)
        fprintf(stderr, "%d checks failed\n", failures);
    return failures != 0;
}
