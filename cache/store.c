/* Disk store: one file a key in a flat directory. Files are written under a temporary
 * name and renamed into place, so a reader never sees half a file and a crash leaves only
 * a stray temporary. The mtime of a file is its last use (atime is unreliable under
 * relatime), and eviction removes the least recently used files beyond the bound. */
#include "store.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOB_MAX (1u << 30)

struct store {
    char *dir;
    uint64_t max_bytes;
    pthread_mutex_t lock; /* serializes eviction */
};

static int mkdirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            free(p);
            return -errno;
        }
        *s = '/';
    }
    int ret = mkdir(p, 0700) < 0 && errno != EEXIST ? -errno : 0;
    free(p);
    return ret;
}

int store_new(const char *dir, uint64_t max_bytes, struct store **out)
{
    int ret = mkdirs(dir);
    if (ret < 0) {
        log_error("store: cannot create %s: %s", dir, strerror(-ret));
        return ret;
    }
    struct store *s = calloc(1, sizeof(*s));
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        return -ENOMEM;
    }
    s->max_bytes = max_bytes;
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return 0;
}

void store_free(struct store **sp)
{
    struct store *s = *sp;
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->dir);
    free(s);
    *sp = NULL;
}

void store_key(char *buf, size_t size, const char *kind, const struct stat *st,
               const char *extra)
{
    int n = snprintf(buf, size,
                     "%s-%" PRIx64 "-%" PRIx64 "-%" PRIx64 "-%" PRIx64 ".%09ld-%" PRIx64
                     ".%09ld%s%s",
                     kind, (uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
                     (uint64_t)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                     (uint64_t)st->st_ctim.tv_sec, st->st_ctim.tv_nsec, extra ? "-" : "",
                     extra ? extra : "");
    for (int i = 0; i < n && (size_t)i < size; i++)
        if (buf[i] == '/')
            buf[i] = '_';
}

static char *path_of(const struct store *s, const char *key)
{
    size_t n = strlen(s->dir) + strlen(key) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", s->dir, key);
    return p;
}

int store_open(struct store *s, const char *key, int *fd)
{
    char *p = path_of(s, key);
    if (!p)
        return -ENOMEM;
    int f = open(p, O_RDONLY | O_CLOEXEC);
    int ret = f < 0 ? -errno : 0;
    free(p);
    if (ret < 0)
        return ret;
    futimens(f, NULL); /* mark used; a read-only cache dir only loses LRU order */
    *fd = f;
    return 0;
}

int store_get(struct store *s, const char *key, uint8_t **buf, size_t *size)
{
    int fd, ret = store_open(s, key, &fd);
    if (ret < 0)
        return ret;
    struct stat st;
    uint8_t *b = NULL;
    if (fstat(fd, &st) < 0 || st.st_size <= 0 || (uint64_t)st.st_size > BLOB_MAX) {
        ret = -EINVAL;
        goto fail;
    }
    b = malloc((size_t)st.st_size);
    if (!b) {
        ret = -ENOMEM;
        goto fail;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r <= 0) {
            ret = r < 0 ? -errno : -EINVAL;
            goto fail;
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    *size = got;
    return 0;
fail:
    free(b);
    close(fd);
    return ret;
}

int store_tmp(struct store *s, int *fd, char **tmp_path)
{
    char *p = path_of(s, "tmp-XXXXXX");
    if (!p)
        return -ENOMEM;
    int f = mkstemp(p);
    if (f < 0) {
        int ret = -errno;
        free(p);
        return ret;
    }
    *fd = f;
    *tmp_path = p;
    return 0;
}

struct entry {
    char name[256];
    uint64_t size;
    struct timespec used;
};

static int cmp_used(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->used.tv_sec != y->used.tv_sec)
        return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
    return (x->used.tv_nsec > y->used.tv_nsec) - (x->used.tv_nsec < y->used.tv_nsec);
}

/* Removes the least recently used files until the store fits its bound. */
static void evict(struct store *s)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return;
    struct entry *ents = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.' || !strncmp(de->d_name, "tmp-", 4) ||
            fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            struct entry *ne = realloc(ents, cap * sizeof(*ents));
            if (!ne)
                break;
            ents = ne;
        }
        snprintf(ents[n].name, sizeof(ents[n].name), "%s", de->d_name);
        ents[n].size = (uint64_t)st.st_size;
        ents[n].used = st.st_mtim;
        total += ents[n++].size;
    }
    qsort(ents, n, sizeof(*ents), cmp_used);
    for (size_t i = 0; i < n && total > s->max_bytes; i++) {
        if (unlinkat(dirfd(d), ents[i].name, 0) == 0) {
            total -= ents[i].size;
            log_debug("store: evicted %s", ents[i].name);
        }
    }
    free(ents);
    closedir(d);
}

int store_commit(struct store *s, const char *tmp_path, const char *key)
{
    char *p = path_of(s, key);
    if (!p)
        return -ENOMEM;
    int ret = rename(tmp_path, p) < 0 ? -errno : 0;
    free(p);
    if (ret < 0) {
        unlink(tmp_path);
        return ret;
    }
    if (s->max_bytes) {
        pthread_mutex_lock(&s->lock);
        evict(s);
        pthread_mutex_unlock(&s->lock);
    }
    return 0;
}

void store_abort(struct store *s, const char *tmp_path)
{
    (void)s;
    unlink(tmp_path);
}

int store_put(struct store *s, const char *key, const void *buf, size_t size)
{
    int fd;
    char *tmp;
    int ret = store_tmp(s, &fd, &tmp);
    if (ret < 0)
        return ret;
    const uint8_t *p = buf;
    size_t left = size;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            ret = -errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (close(fd) < 0 && !ret)
        ret = -errno;
    ret = ret ? ret : store_commit(s, tmp, key);
    if (ret < 0)
        store_abort(s, tmp);
    free(tmp);
    return ret;
}
