/* Disk store: one file a key in a flat directory. Files are written under a temporary
 * name and renamed into place, so a reader never sees half a file. The mtime of a file is
 * its last use (atime is unreliable under relatime), and eviction removes the least
 * recently used files beyond the bound.
 *
 * Each file ends in a trailer (magic, length, checksum of what precedes it), so a file cut
 * short, grown or changed behind our back is noticed before it is served. Writers hold
 * locks/<key> (flock) while its temporary, tmp-<key>, exists: a temporary whose lock can
 * be taken was left by a crash, and is removed at mount and at eviction. */
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
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOB_MAX (1u << 30)
/* "tmp-" + key must fit a file name. */
#define KEY_LEN_MAX 240
#define LOCK_DIR "locks"
#define TMP_PREFIX "tmp-"
#define TRAILER_SIZE 24
#define SUM_CHUNK (256u << 10)

static const char trailer_magic[8] = {'v', 'i', 'd', 'f', 's', 'S', 'T', '1'};

struct store {
    char *dir;
    uint64_t max_bytes;
    pthread_mutex_t lock; /* serializes eviction */
};

struct store_lock {
    struct store *s;
    char key[KEY_LEN_MAX + 1];
    int fd;    /* locks/<key>, flocked */
    char *tmp; /* tmp-<key> while it may exist */
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

/* dir/a[/b], malloc'd. */
static char *join(const char *dir, const char *a, const char *b)
{
    size_t n = strlen(dir) + strlen(a) + (b ? strlen(b) + 1 : 0) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s%s", dir, a, b ? "/" : "", b ? b : "");
    return p;
}

static char *path_of(const struct store *s, const char *key)
{
    return join(s->dir, key, NULL);
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

/* ------------------------------------------------------------------ locks */

/* Takes locks/<key>. The holder unlinks the file before it lets go, so a lock taken on a
 * file no longer at its path is worthless: then we try again. -EBUSY when nonblock and
 * held. */
static int lock_take(struct store *s, const char *key, int nonblock, struct store_lock **out)
{
    if (strlen(key) > KEY_LEN_MAX || strchr(key, '/'))
        return -ENAMETOOLONG;
    struct store_lock *l = calloc(1, sizeof(*l));
    char *p = join(s->dir, LOCK_DIR, key);
    int ret = -ENOMEM;
    if (!l || !p)
        goto fail;
    l->s = s;
    snprintf(l->key, sizeof(l->key), "%s", key);
    for (;;) {
        int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            ret = -errno;
            goto fail;
        }
        while ((ret = flock(fd, LOCK_EX | (nonblock ? LOCK_NB : 0))) < 0 && errno == EINTR)
            ;
        if (ret < 0) {
            ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
            close(fd);
            goto fail;
        }
        struct stat a, b;
        ret = fstat(fd, &a) < 0 || stat(p, &b) < 0 ? -errno : 0;
        if (ret == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
            l->fd = fd;
            break;
        }
        close(fd);
        if (ret < 0 && ret != -ENOENT)
            goto fail;
    }
    free(p);
    *out = l;
    return 0;
fail:
    free(p);
    free(l);
    return ret;
}

int store_lock(struct store *s, const char *key, struct store_lock **out)
{
    int ret = lock_take(s, key, 0, out);
    if (ret < 0)
        log_error("store: cannot lock %s: %s", key, strerror(-ret));
    return ret;
}

void store_unlock(struct store_lock **lp)
{
    struct store_lock *l = *lp;
    if (!l)
        return;
    store_abort(l);
    char *p = join(l->s->dir, LOCK_DIR, l->key);
    if (p)
        unlink(p);
    free(p);
    close(l->fd);
    free(l);
    *lp = NULL;
}

/* ------------------------------------------------------------------ trailer */

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t sum_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 32);
}

/* Four lanes, for speed; n is a multiple of 32 but at the end. Each step is a bijection
 * of its lane, so a change in any one word always changes the lane. */
static void sum_update(uint64_t lane[4], const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            lane[k] = sum_word(lane[k], get_le64(p + i + 8 * k));
    for (; i < n; i += 8) {
        uint8_t w[8] = {0};
        memcpy(w, p + i, n - i < 8 ? n - i : 8);
        lane[0] = sum_word(lane[0], get_le64(w));
    }
}

static int pread_full(int fd, uint8_t *buf, size_t n, uint64_t off)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        got += (size_t)r;
    }
    return 0;
}

/* Checksum of the first len bytes of fd. */
static int file_sum(int fd, uint64_t len, uint64_t *sum)
{
    uint8_t *buf = malloc(SUM_CHUNK);
    if (!buf)
        return -ENOMEM;
    uint64_t lane[4] = {len, len + 1, len + 2, len + 3};
    int ret = 0;
    for (uint64_t off = 0; off < len && ret == 0; off += SUM_CHUNK) {
        size_t n = len - off < SUM_CHUNK ? (size_t)(len - off) : SUM_CHUNK;
        if ((ret = pread_full(fd, buf, n, off)) == 0)
            sum_update(lane, buf, n);
    }
    free(buf);
    /* Folded by bijections too: a changed lane changes the sum. */
    *sum = sum_word(sum_word(sum_word(lane[0], lane[1]), lane[2]), lane[3]);
    return ret;
}

/* The entry's length from fd's trailer, checked against the file's size; its checksum
 * too when full. A short description of the damage in *why. */
static int trailer_check(int fd, int full, uint64_t *len, const char **why)
{
    struct stat st;
    uint8_t t[TRAILER_SIZE];
    if (fstat(fd, &st) < 0)
        return -errno;
    *why = "shorter than its trailer";
    if (st.st_size < TRAILER_SIZE)
        return -EINVAL;
    uint64_t data = (uint64_t)st.st_size - TRAILER_SIZE, sum;
    int ret = pread_full(fd, t, sizeof(t), data);
    if (ret < 0)
        return ret;
    *why = "no trailer";
    if (memcmp(t, trailer_magic, sizeof(trailer_magic)))
        return -EINVAL;
    *why = "length differs from its trailer";
    if (get_le64(t + 8) != data)
        return -EINVAL;
    *why = "checksum differs";
    if (full && ((ret = file_sum(fd, data, &sum)) < 0 || sum != get_le64(t + 16)))
        return ret < 0 ? ret : -EINVAL;
    *len = data;
    return 0;
}

/* ------------------------------------------------------------------ reading */

/* Removes a damaged file, unless the name has moved on to another file since. */
static void drop_damaged(struct store *s, const char *key, int fd, const char *why)
{
    log_warn("store: %s is damaged (%s): removing it", key, why);
    char *p = path_of(s, key);
    struct stat a, b;
    if (p && fstat(fd, &a) == 0 && stat(p, &b) == 0 && a.st_ino == b.st_ino)
        unlink(p);
    free(p);
}

static int open_checked(struct store *s, const char *key, int full, int *fd, uint64_t *size)
{
    char *p = path_of(s, key);
    if (!p)
        return -ENOMEM;
    int f = open(p, O_RDONLY | O_CLOEXEC);
    int ret = f < 0 ? -errno : 0;
    free(p);
    if (ret < 0)
        return ret == -ENOMEM ? ret : -ENOENT;
    const char *why = "";
    if ((ret = trailer_check(f, full, size, &why)) < 0) {
        if (ret == -EINVAL)
            drop_damaged(s, key, f, why);
        close(f);
        return ret == -ENOMEM ? ret : -ENOENT;
    }
    *fd = f;
    return 0;
}

int store_open(struct store *s, const char *key, int *fd, uint64_t *size)
{
    int ret = open_checked(s, key, 1, fd, size);
    if (ret == 0)
        futimens(*fd, NULL); /* mark used; a read-only cache dir only loses LRU order */
    return ret;
}

int store_size(struct store *s, const char *key, uint64_t *size)
{
    int fd, ret = open_checked(s, key, 0, &fd, size);
    if (ret == 0)
        close(fd);
    return ret;
}

int store_get(struct store *s, const char *key, uint8_t **buf, size_t *size)
{
    uint64_t len;
    int fd, ret = store_open(s, key, &fd, &len);
    if (ret < 0)
        return ret;
    uint8_t *b = NULL;
    if (len == 0 || len > BLOB_MAX) {
        ret = -EINVAL;
        goto fail;
    }
    if (!(b = malloc((size_t)len))) {
        ret = -ENOMEM;
        goto fail;
    }
    if ((ret = pread_full(fd, b, (size_t)len, 0)) < 0)
        goto fail;
    close(fd);
    *buf = b;
    *size = (size_t)len;
    return 0;
fail:
    free(b);
    close(fd);
    return ret;
}

/* ------------------------------------------------------------------ eviction */

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

/* Removes name, the temporary "tmp-<key>", when key's lock is free: no one is writing it.
 * A key too long to lock is none of ours. */
static void sweep_one(struct store *s, int dir, const char *name, const char *key)
{
    struct store_lock *l = NULL;
    int ret = lock_take(s, key, 1, &l);
    if (ret < 0 && ret != -ENAMETOOLONG)
        return; /* held, or we cannot tell */
    if (unlinkat(dir, name, 0) == 0)
        log_info("store: removed %s, left by a writer that died", name);
    store_unlock(&l);
}

/* Sweeps away dead writers' temporaries, then removes the least recently used files until
 * the store fits its bound. */
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
        if (!strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX))) {
            sweep_one(s, dirfd(d), de->d_name, de->d_name + strlen(TMP_PREFIX));
            continue;
        }
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
            !S_ISREG(st.st_mode))
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
    if (s->max_bytes && n)
        qsort(ents, n, sizeof(*ents), cmp_used);
    for (size_t i = 0; i < n && s->max_bytes && total > s->max_bytes; i++) {
        if (unlinkat(dirfd(d), ents[i].name, 0) == 0) {
            total -= ents[i].size;
            log_debug("store: evicted %s", ents[i].name);
        }
    }
    free(ents);
    closedir(d);
}

/* Lock files of dead writers: removed where their lock is free. */
static void sweep_locks(struct store *s)
{
    char *p = join(s->dir, LOCK_DIR, NULL);
    DIR *d = p ? opendir(p) : NULL;
    free(p);
    if (!d)
        return;
    struct dirent *de;
    struct store_lock *l;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && lock_take(s, de->d_name, 1, &l) == 0)
            store_unlock(&l);
    closedir(d);
}

/* ------------------------------------------------------------------ lifetime */

int store_new(const char *dir, uint64_t max_bytes, struct store **out)
{
    int ret = mkdirs(dir);
    if (ret < 0) {
        log_error("store: cannot create %s: %s", dir, strerror(-ret));
        return ret;
    }
    /* Without it nothing is written to the store; what is there is still read. */
    char *locks = join(dir, LOCK_DIR, NULL);
    if (!locks)
        return -ENOMEM;
    if (mkdir(locks, 0700) < 0 && errno != EEXIST)
        log_warn("store: cannot create %s: %s", locks, strerror(errno));
    free(locks);
    struct store *s = calloc(1, sizeof(*s));
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        return -ENOMEM;
    }
    s->max_bytes = max_bytes;
    pthread_mutex_init(&s->lock, NULL);
    sweep_locks(s);
    evict(s);
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

/* ------------------------------------------------------------------ writing */

int store_tmp(struct store_lock *l, int *fd, const char **path)
{
    char name[sizeof(TMP_PREFIX) + KEY_LEN_MAX];
    snprintf(name, sizeof(name), TMP_PREFIX "%s", l->key);
    char *p = l->tmp ? l->tmp : path_of(l->s, name);
    if (!p)
        return -ENOMEM;
    l->tmp = p;
    int f = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (f < 0)
        return -errno;
    *fd = f;
    *path = p;
    return 0;
}

void store_abort(struct store_lock *l)
{
    if (!l->tmp)
        return;
    unlink(l->tmp);
    free(l->tmp);
    l->tmp = NULL;
}

/* Appends the trailer and syncs the file, so that what is renamed into place is whole. */
static int seal(int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    uint64_t len = (uint64_t)st.st_size, sum;
    int ret = file_sum(fd, len, &sum);
    if (ret < 0)
        return ret;
    uint8_t t[TRAILER_SIZE];
    memcpy(t, trailer_magic, sizeof(trailer_magic));
    put_le64(t + 8, len);
    put_le64(t + 16, sum);
    ssize_t w = pwrite(fd, t, sizeof(t), (off_t)len);
    if (w != (ssize_t)sizeof(t))
        return w < 0 ? -errno : -EIO;
    if (fdatasync(fd) < 0)
        return -errno;
    *size = len;
    return 0;
}

static void sync_dir(const struct store *s)
{
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int store_commit(struct store_lock *l, int fd, uint64_t *size)
{
    struct store *s = l->s;
    int ret = seal(fd, size);
    if (ret < 0)
        goto fail;
    if (s->max_bytes && *size + TRAILER_SIZE > s->max_bytes) {
        log_warn("store: %s (%" PRIu64 " bytes) is larger than the store (store_mb): served "
                 "to the opens that asked for it, not kept",
                 l->key, *size);
        store_abort(l);
        return 1;
    }
    char *p = path_of(s, l->key);
    ret = !p ? -ENOMEM : rename(l->tmp, p) < 0 ? -errno : 0;
    free(p);
    if (ret < 0)
        goto fail;
    free(l->tmp);
    l->tmp = NULL;
    sync_dir(s);
    pthread_mutex_lock(&s->lock);
    evict(s);
    pthread_mutex_unlock(&s->lock);
    return 0;
fail:
    store_abort(l);
    return ret;
}

int store_put(struct store_lock *l, const void *buf, size_t size)
{
    int fd;
    const char *tmp;
    uint64_t stored;
    int ret = store_tmp(l, &fd, &tmp);
    if (ret < 0)
        return ret;
    const uint8_t *p = buf;
    for (size_t left = size; left;) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            ret = -errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    ret = ret ? ret : store_commit(l, fd, &stored);
    if (ret < 0)
        store_abort(l);
    close(fd);
    return ret;
}
