/* The table of open media: a hash table of (source path, stream) entries split into shards,
 * each with its own lock, so lookups of different videos seldom share a lock and none scans
 * the table. Every lookup checks the entry against the source's stat, so a changed file is
 * indexed again. Each shard keeps its entries in least recently used order and drops the
 * oldest past its share of the bound. Locks are held only to find and link entries: opening
 * a media (probe, index) runs unlocked while lookups of the same one wait for it. */
#include "media_table.h"
#include "log.h"
#include "media.h"
#include "meta.h"
#include "source.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More shards than this buy nothing: a lock is held for a few compares. */
#define MAX_SHARDS 16
/* A shard's LRU order is only as good as its share of the bound is large. */
#define MIN_SHARD_CAP 16

struct key {
    const char *rel;
    size_t len;
    int stream;
    uint64_t hash;
};

struct entry {
    struct entry *next;            /* in its bucket */
    struct entry *newer, *older;   /* in its shard's LRU ring */
    uint64_t hash;
    struct media *m;               /* NULL while it is being opened */
    int64_t csv_size;              /* -1 until counted */
    int stream;
    size_t len;
    char *rel;                     /* len bytes and a NUL, in the entry's block */
};

struct shard {
    pthread_mutex_t lock;
    pthread_cond_t opened;
    struct entry **buckets;
    struct entry lru; /* ring head: lru.older is the newest entry, lru.newer the oldest */
    int count;
};

/* The source directory, for media_table_new. */
struct dir_source {
    char *root;
    struct source *src;
    struct store *store;
};

struct media_table {
    const struct media_table_source *ops;
    void *opaque;
    struct dir_source *dir; /* owned, when the table is over the source directory */
    unsigned nshards, nbuckets; /* powers of two; buckets a shard */
    int cap;                    /* entries a shard */
    struct shard shards[];
};

/* ---- the source directory ---- */

static int dir_stat(void *opaque, const char *rel, struct stat *st)
{
    const struct dir_source *d = opaque;
    return source_stat(d->src, rel, st);
}

static int dir_open(void *opaque, const char *rel, int stream, struct media **out)
{
    const struct dir_source *d = opaque;
    size_t n = strlen(d->root) + strlen(rel) + 2;
    char *path = malloc(n);
    if (!path)
        return -ENOMEM;
    snprintf(path, n, "%s/%s", d->root, rel);
    int fd;
    struct stat st;
    int ret = source_open(d->src, rel, 0, &fd, &st);
    if (ret == 0)
        ret = media_open(path, fd, stream, d->store, out);
    free(path);
    return ret;
}

static const struct media_table_source dir_ops = {
    .stat = dir_stat,
    .open = dir_open,
};

/* ---- entries ---- */

/* FNV-1a, then a finalizer so that both the shard (low bits) and bucket (high bits) are
 * spread. */
static uint64_t key_hash(const char *rel, size_t len, int stream)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(unsigned)stream;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)rel[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ h >> 33;
}

static struct shard *shard_of(struct media_table *t, uint64_t hash)
{
    return &t->shards[hash & (t->nshards - 1)];
}

static struct entry **bucket_of(const struct media_table *t, struct shard *s, uint64_t hash)
{
    return &s->buckets[(hash >> 32) & (t->nbuckets - 1)];
}

static struct entry *find(const struct media_table *t, struct shard *s, const struct key *k)
{
    for (struct entry *e = *bucket_of(t, s, k->hash); e; e = e->next)
        if (e->hash == k->hash && e->stream == k->stream && e->len == k->len &&
            !memcmp(e->rel, k->rel, k->len))
            return e;
    return NULL;
}

static void lru_unlink(struct entry *e)
{
    e->newer->older = e->older;
    e->older->newer = e->newer;
}

static void lru_push_newest(struct shard *s, struct entry *e)
{
    e->older = s->lru.older;
    e->newer = &s->lru;
    s->lru.older->newer = e;
    s->lru.older = e;
}

static struct entry *entry_new(const struct key *k)
{
    struct entry *e = calloc(1, sizeof(*e) + k->len + 1);
    if (!e)
        return NULL;
    e->hash = k->hash;
    e->stream = k->stream;
    e->len = k->len;
    e->csv_size = -1;
    e->rel = (char *)(e + 1);
    memcpy(e->rel, k->rel, k->len);
    return e;
}

static void link_entry(struct media_table *t, struct shard *s, struct entry *e)
{
    struct entry **b = bucket_of(t, s, e->hash);
    e->next = *b;
    *b = e;
    lru_push_newest(s, e);
    s->count++;
}

/* Takes e out of its shard; *dead collects it, to be freed once the lock is dropped (the
 * last reference to a media closes and frees it). */
static void unlink_entry(struct media_table *t, struct shard *s, struct entry *e,
                         struct entry **dead)
{
    struct entry **p = bucket_of(t, s, e->hash);
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    lru_unlink(e);
    s->count--;
    e->next = *dead;
    *dead = e;
}

static void free_entries(struct entry *e)
{
    while (e) {
        struct entry *next = e->next;
        media_unref(&e->m);
        free(e);
        e = next;
    }
}

/* Drops the oldest opened entries but keep while the shard is over its share; entries
 * being opened stay (their openers hold them), so a shard can be over for that long. */
static void evict(struct media_table *t, struct shard *s, const struct entry *keep,
                  struct entry **dead)
{
    struct entry *e = s->lru.newer;
    while (s->count > t->cap && e != &s->lru) {
        struct entry *newer = e->newer;
        if (e->m && e != keep)
            unlink_entry(t, s, e, dead);
        e = newer;
    }
}

/* ctime too: a rewrite in place can keep size and mtime (utime), never ctime. */
static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Links a new entry for k and opens its media with the shard unlocked (lookups of it wait
 * on `opened`); *out is the entry, opened, the lock held again. */
static int open_entry(struct media_table *t, struct shard *s, const struct key *k,
                      struct entry **out, struct entry **dead)
{
    struct entry *e = entry_new(k);
    if (!e)
        return -ENOMEM;
    link_entry(t, s, e);
    pthread_mutex_unlock(&s->lock);
    struct media *m = NULL;
    int ret = t->ops->open(t->opaque, e->rel, k->stream, &m);
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->opened);
    if (ret < 0) {
        unlink_entry(t, s, e, dead);
        return ret;
    }
    e->m = m;
    evict(t, s, e, dead);
    *out = e;
    return 0;
}

/* The media of k, a new reference, checked against st (NULL: stat it here); *csv_size the
 * entry's count of frames.csv, -1 if none yet. */
static int lookup(struct media_table *t, const struct key *k, const struct stat *st,
                  struct media **out, int64_t *csv_size)
{
    struct stat own;
    if (!st) {
        char name[PATH_MAX];
        if (k->len >= sizeof(name))
            return -ENAMETOOLONG;
        memcpy(name, k->rel, k->len);
        name[k->len] = '\0';
        if (t->ops->stat(t->opaque, name, &own) < 0)
            return -ENOENT;
        st = &own;
    }
    if (!S_ISREG(st->st_mode))
        return -ENOENT;
    struct shard *s = shard_of(t, k->hash);
    struct entry *e, *dead = NULL;
    int ret = 0;
    pthread_mutex_lock(&s->lock);
    while ((e = find(t, s, k)) && !e->m)
        pthread_cond_wait(&s->opened, &s->lock);
    if (e && !same_file(&e->m->st, st)) {
        log_info("%s changed; indexing it again", e->m->path ? e->m->path : e->rel);
        unlink_entry(t, s, e, &dead);
        e = NULL;
    }
    if (!e)
        ret = open_entry(t, s, k, &e, &dead);
    if (ret == 0) {
        lru_unlink(e);
        lru_push_newest(s, e);
        *out = media_ref(e->m);
        *csv_size = e->csv_size;
    }
    pthread_mutex_unlock(&s->lock);
    free_entries(dead);
    return ret;
}

/* Keeps the count of frames.csv beside m, if m is still k's media. */
static void keep_csv_size(struct media_table *t, const struct key *k, const struct media *m,
                          uint64_t size)
{
    struct shard *s = shard_of(t, k->hash);
    pthread_mutex_lock(&s->lock);
    struct entry *e = find(t, s, k);
    if (e && e->m == m)
        e->csv_size = (int64_t)size;
    pthread_mutex_unlock(&s->lock);
}

static struct key make_key(const char *rel, size_t len, int stream)
{
    return (struct key){rel, len, stream, key_hash(rel, len, stream)};
}

int media_table_get(struct media_table *t, const char *rel, size_t len, int stream,
                    const struct stat *st, struct media **out)
{
    struct key k = make_key(rel, len, stream);
    int64_t csv_size;
    return lookup(t, &k, st, out, &csv_size);
}

/* The media of k's frames.csv and the entry's count of it (-1: none yet); -EIO for a media
 * FFmpeg cannot read. */
static int csv_media(struct media_table *t, const struct key *k, const struct stat *st,
                     struct media **m, int64_t *counted)
{
    int ret = lookup(t, k, st, m, counted);
    if (ret == 0 && (*m)->error) {
        media_unref(m);
        ret = -EIO;
    }
    return ret;
}

int media_table_csv(struct media_table *t, const char *rel, size_t rlen, int stream, char **out,
                    size_t *len)
{
    struct key k = make_key(rel, rlen, stream);
    struct media *m;
    int64_t counted;
    int ret = csv_media(t, &k, NULL, &m, &counted);
    if (ret < 0)
        return ret;
    ret = meta_frames_csv(m->index, out, len);
    if (ret == 0 && counted < 0)
        keep_csv_size(t, &k, m, *len);
    media_unref(&m);
    return ret;
}

int media_table_csv_size(struct media_table *t, const char *rel, size_t rlen, int stream,
                         const struct stat *st, uint64_t *size)
{
    struct key k = make_key(rel, rlen, stream);
    struct media *m;
    int64_t counted;
    int ret = csv_media(t, &k, st, &m, &counted);
    if (ret < 0)
        return ret;
    *size = counted >= 0 ? (uint64_t)counted : meta_frames_csv_size(m->index);
    if (counted < 0)
        keep_csv_size(t, &k, m, *size);
    media_unref(&m);
    return 0;
}

/* ---- the table ---- */

static unsigned pow2_at_most(unsigned n)
{
    unsigned p = 1;
    while (p * 2 <= n)
        p *= 2;
    return p;
}

int media_table_new_custom(const struct media_table_source *ops, void *opaque, int bound,
                           struct media_table **out)
{
    unsigned want = bound > 0 ? (unsigned)bound : 1;
    unsigned nshards = pow2_at_most(want / MIN_SHARD_CAP ? want / MIN_SHARD_CAP : 1);
    if (nshards > MAX_SHARDS)
        nshards = MAX_SHARDS;
    struct media_table *t = calloc(1, sizeof(*t) + nshards * sizeof(t->shards[0]));
    if (!t)
        return -ENOMEM;
    t->ops = ops;
    t->opaque = opaque;
    t->nshards = nshards;
    t->cap = (int)((want + nshards - 1) / nshards);
    /* Two buckets an entry: chains stay a link or two long. */
    t->nbuckets = pow2_at_most((unsigned)t->cap * 2) * 2;
    for (unsigned i = 0; i < nshards; i++) {
        struct shard *s = &t->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->opened, NULL);
        s->lru.newer = s->lru.older = &s->lru;
        s->buckets = calloc(t->nbuckets, sizeof(*s->buckets));
        if (!s->buckets) {
            t->nshards = i + 1;
            media_table_free(&t);
            return -ENOMEM;
        }
    }
    *out = t;
    return 0;
}

int media_table_new(const char *source, struct source *src, struct store *store,
                    struct media_table **out)
{
    struct dir_source *d = calloc(1, sizeof(*d));
    if (!d || !(d->root = strdup(source))) {
        free(d);
        return -ENOMEM;
    }
    d->src = src;
    d->store = store;
    int ret = media_table_new_custom(&dir_ops, d, MEDIA_TABLE_BOUND, out);
    if (ret < 0) {
        free(d->root);
        free(d);
        return ret;
    }
    (*out)->dir = d;
    return 0;
}

void media_table_free(struct media_table **tp)
{
    struct media_table *t = *tp;
    if (!t)
        return;
    for (unsigned i = 0; i < t->nshards; i++) {
        struct shard *s = &t->shards[i];
        struct entry *dead = NULL;
        while (s->buckets && s->lru.older != &s->lru)
            unlink_entry(t, s, s->lru.older, &dead);
        free_entries(dead);
        free(s->buckets);
        pthread_cond_destroy(&s->opened);
        pthread_mutex_destroy(&s->lock);
    }
    if (t->dir)
        free(t->dir->root);
    free(t->dir);
    free(t);
    *tp = NULL;
}
