/* The table of open media: one slot a (source path, stream), checked against the source's
 * stat on every lookup, so a changed file is indexed again; least recently used slots are
 * reused. frames.csv is made once a media and kept beside it. */
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
#include <sys/stat.h>

#define MEDIA_SLOTS 256

struct media_slot {
    char *key; /* "relpath\nstream" */
    struct media *m;
    char *csv;
    size_t csv_len;
    int opening;
    uint64_t used;
};

struct media_table {
    char *source;
    struct source *src;
    struct store *store;
    pthread_mutex_t lock;
    pthread_cond_t opened;
    struct media_slot slots[MEDIA_SLOTS];
    uint64_t tick;
};

int media_table_new(const char *source, struct source *src, struct store *store,
                    struct media_table **out)
{
    struct media_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->source = strdup(source);
    if (!t->source) {
        free(t);
        return -ENOMEM;
    }
    t->src = src;
    t->store = store;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->opened, NULL);
    *out = t;
    return 0;
}

static char *source_path(const struct media_table *t, const char *rel, size_t len)
{
    size_t n = strlen(t->source) + len + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%.*s", t->source, (int)len, rel);
    return p;
}

/* ctime too: a rewrite in place can keep size and mtime (utime), never ctime. */
static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void slot_clear(struct media_slot *s)
{
    free(s->key);
    free(s->csv);
    media_unref(&s->m);
    *s = (struct media_slot){0};
}

static struct media_slot *slot_find(struct media_table *t, const char *key)
{
    for (int i = 0; i < MEDIA_SLOTS; i++)
        if (t->slots[i].key && !strcmp(t->slots[i].key, key))
            return &t->slots[i];
    return NULL;
}

static struct media_slot *slot_take(struct media_table *t, const char *key)
{
    struct media_slot *lru = NULL;
    for (int i = 0; i < MEDIA_SLOTS; i++) {
        struct media_slot *s = &t->slots[i];
        if (!s->key)
            return s->key = strdup(key), s->key ? s : NULL;
        if (!s->opening && (!lru || s->used < lru->used))
            lru = s;
    }
    if (!lru)
        return NULL;
    slot_clear(lru);
    lru->key = strdup(key);
    return lru->key ? lru : NULL;
}

/* The media and its slot (valid under the lock). Only one thread opens a given media; the
 * others wait for it. */
static int lookup(struct media_table *t, const char *rel, size_t len, int stream,
                  struct media **out, struct media_slot **slot_out)
{
    char name[PATH_MAX], key[PATH_MAX + 16];
    if (len >= PATH_MAX)
        return -ENAMETOOLONG;
    char *path = source_path(t, rel, len);
    if (!path)
        return -ENOMEM;
    snprintf(name, sizeof(name), "%.*s", (int)len, rel);
    struct stat st;
    if (source_stat(t->src, name, &st) < 0 || !S_ISREG(st.st_mode)) {
        free(path);
        return -ENOENT;
    }
    snprintf(key, sizeof(key), "%s\n%d", name, stream);
    pthread_mutex_lock(&t->lock);
    struct media_slot *s;
    while ((s = slot_find(t, key)) && s->opening)
        pthread_cond_wait(&t->opened, &t->lock);
    if (s && !same_file(&s->m->st, &st)) {
        log_info("%s changed; indexing it again", path);
        slot_clear(s);
        s = NULL;
    }
    int ret = 0;
    if (!s) {
        s = slot_take(t, key);
        if (!s) {
            ret = -ENOMEM;
            goto out;
        }
        s->opening = 1;
        pthread_mutex_unlock(&t->lock);
        struct media *m = NULL;
        int fd;
        ret = source_open(t->src, name, 0, &fd, &st);
        if (ret == 0)
            ret = media_open(path, fd, stream, t->store, &m);
        pthread_mutex_lock(&t->lock);
        s->opening = 0;
        s->m = m;
        pthread_cond_broadcast(&t->opened);
        if (ret < 0) {
            slot_clear(s);
            goto out;
        }
    }
    s->used = ++t->tick;
    *out = media_ref(s->m);
    if (slot_out)
        *slot_out = s;
out:
    pthread_mutex_unlock(&t->lock);
    free(path);
    return ret;
}

int media_table_csv(struct media_table *t, const char *rel, size_t rlen, int stream, char **out,
                    size_t *len)
{
    struct media *m;
    struct media_slot *s;
    int ret = lookup(t, rel, rlen, stream, &m, &s);
    if (ret < 0)
        return ret;
    if (m->error) {
        media_unref(&m);
        return -EIO;
    }
    pthread_mutex_lock(&t->lock);
    if (!s->csv && s->m == m)
        ret = meta_frames_csv(m->index, &s->csv, &s->csv_len);
    if (ret == 0 && s->m == m) {
        *out = malloc(s->csv_len);
        *len = s->csv_len;
        ret = *out ? (memcpy(*out, s->csv, s->csv_len), 0) : -ENOMEM;
    } else if (ret == 0) {
        ret = -EAGAIN;
    }
    pthread_mutex_unlock(&t->lock);
    media_unref(&m);
    return ret;
}

int media_table_get(struct media_table *t, const char *rel, size_t len, int stream,
                    struct media **out)
{
    return lookup(t, rel, len, stream, out, NULL);
}

void media_table_free(struct media_table **tp)
{
    struct media_table *t = *tp;
    if (!t)
        return;
    for (int i = 0; i < MEDIA_SLOTS; i++)
        slot_clear(&t->slots[i]);
    pthread_cond_destroy(&t->opened);
    pthread_mutex_destroy(&t->lock);
    free(t->source);
    free(t);
    *tp = NULL;
}
