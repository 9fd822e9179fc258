/* Confined resolution of source paths (see source.h). A walk holds an O_PATH descriptor of
 * the directory it stands in and how deep below the source directory that is, so ".." at
 * depth 0 and absolute symlinks that do not start with the source's realpath are escapes.
 * openat2(RESOLVE_BENEATH) would refuse every absolute symlink, even one that stays
 * inside, and would not keep us off our own mount: hence the walk. */
#include "source.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* As the kernel: more symlinks than this in one resolution is a loop. */
#define MAX_LINKS 40

struct source {
    int dir_fd;
    char *root;
    size_t root_len; /* 0 when root is "/" */
    int follow_out;
    int avoid; /* mount_dev is set */
    dev_t mount_dev;
};

struct walk {
    const struct source *s;
    const char *rel; /* for log lines */
    int quiet;
    int fd;    /* O_PATH descriptor of where the walk stands */
    int depth; /* levels below the source directory; -1: out of it (follow_out) */
    int links;
};

int source_new(int dir_fd, const char *root, int follow_out, struct source **out)
{
    struct source *s = calloc(1, sizeof(*s));
    if (!s || !(s->root = strdup(root))) {
        free(s);
        return -ENOMEM;
    }
    s->dir_fd = dir_fd;
    s->root_len = strcmp(root, "/") ? strlen(root) : 0;
    s->follow_out = follow_out;
    *out = s;
    return 0;
}

void source_free(struct source **sp)
{
    struct source *s = *sp;
    if (!s)
        return;
    free(s->root);
    free(s);
    *sp = NULL;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *p)
{
    char *o = p;
    for (; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] && p[3]) {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

void source_avoid_mount(struct source *s, const char *mountpoint)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096], point[4096];
    unsigned maj, min;
    if (!f) {
        log_warn("no /proc/self/mountinfo: cannot keep source lookups off the mount itself");
        return;
    }
    /* "36 35 0:50 / /mnt/point rw,... - fuse.vidfs ...": the last mount there is ours. */
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &maj, &min, point) != 3)
            continue;
        unescape(point);
        if (!strcmp(point, mountpoint)) {
            s->mount_dev = makedev(maj, min);
            s->avoid = 1;
        }
    }
    fclose(f);
    if (!s->avoid)
        log_warn("%s is not in /proc/self/mountinfo: cannot keep source lookups off the "
                 "mount itself",
                 mountpoint);
}

static int refuse(const struct walk *w, const char *why)
{
    if (!w->quiet)
        log_warn("%s/%s: %s; not followed", w->s->root, w->rel, why);
    return -ENOENT;
}

/* Replaces the walk's position by fd (taken over), depth levels down. */
static void move(struct walk *w, int fd, int depth)
{
    close(w->fd);
    w->fd = fd;
    w->depth = depth;
}

static int walk(struct walk *w, const char *path, int stat_last, struct stat *st);

static int step_up(struct walk *w, struct stat *st)
{
    if (w->depth == 0 && !w->s->follow_out)
        return refuse(w, "a symlink leads out of the source directory (escape; "
                         "follow_symlinks_out=1 allows it)");
    int fd = openat(w->fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, st) < 0) {
        int ret = -errno;
        if (fd >= 0)
            close(fd);
        return ret;
    }
    move(w, fd, w->depth > 0 ? w->depth - 1 : -1);
    return 0;
}

static int follow(struct walk *w, int link_fd, struct stat *st)
{
    if (++w->links > MAX_LINKS)
        return -ELOOP;
    char *target = malloc(PATH_MAX);
    if (!target)
        return -ENOMEM;
    ssize_t n = readlinkat(link_fd, "", target, PATH_MAX);
    int ret = n < 0 ? -errno : n >= PATH_MAX ? -ENAMETOOLONG : 0;
    if (ret == 0) {
        target[n] = '\0';
        ret = walk(w, target, 0, st); /* relative to the directory holding the link */
    }
    free(target);
    return ret;
}

static int step_down(struct walk *w, const char *name, struct stat *st)
{
    int fd = openat(w->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int ret = fstat(fd, st) < 0 ? -errno : 0;
    if (ret == 0 && w->s->avoid && st->st_dev == w->s->mount_dev)
        ret = refuse(w, "reaches the mount point of this very filesystem");
    if (ret == 0 && S_ISLNK(st->st_mode)) {
        ret = follow(w, fd, st);
        close(fd);
        return ret;
    }
    if (ret < 0) {
        close(fd);
        return ret;
    }
    move(w, fd, w->depth >= 0 ? w->depth + 1 : -1);
    return 0;
}

/* An absolute path: from the source directory when it starts with its realpath, else
 * from "/" when escapes are allowed. *path is left at what follows. */
static int jump(struct walk *w, const char **path, struct stat *st)
{
    const struct source *s = w->s;
    const char *p = *path;
    int fd;
    if (!strncmp(p, s->root, s->root_len) && (p[s->root_len] == '/' || !p[s->root_len])) {
        fd = fcntl(s->dir_fd, F_DUPFD_CLOEXEC, 0);
        *path = p + s->root_len;
        if (fd >= 0)
            move(w, fd, 0);
    } else if (s->follow_out) {
        fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0)
            move(w, fd, -1);
    } else {
        return refuse(w, "a symlink leads out of the source directory (escape; "
                         "follow_symlinks_out=1 allows it)");
    }
    return fd < 0 || fstat(w->fd, st) < 0 ? -errno : 0;
}

/* The stat of entry name where w stands, w left there: one fstatat, unless it is a
 * symlink, which is followed (and w moved) as step_down does. */
static int stat_entry(struct walk *w, const char *name, struct stat *st)
{
    if (fstatat(w->fd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (S_ISLNK(st->st_mode))
        return step_down(w, name, st);
    if (w->s->avoid && st->st_dev == w->s->mount_dev)
        return refuse(w, "reaches the mount point of this very filesystem");
    return 0;
}

/* Moves w to what path names from where it stands; *st is its stat. stat_last: only the
 * stat is wanted, so the last name is not opened (w stays in its directory). */
static int walk(struct walk *w, const char *path, int stat_last, struct stat *st)
{
    int ret = *path == '/' ? jump(w, &path, st) : fstat(w->fd, st) < 0 ? -errno : 0;
    char name[NAME_MAX + 1];
    while (ret == 0 && *path) {
        size_t n = strcspn(path, "/");
        if (n > NAME_MAX)
            return -ENAMETOOLONG;
        memcpy(name, path, n);
        name[n] = '\0';
        path += n;
        path += strspn(path, "/");
        if (!n || !strcmp(name, "."))
            continue;
        if (!S_ISDIR(st->st_mode))
            return -ENOTDIR;
        if (!strcmp(name, ".."))
            ret = step_up(w, st);
        else if (stat_last && !*path)
            ret = stat_entry(w, name, st);
        else
            ret = step_down(w, name, st);
    }
    return ret;
}

/* Resolves rel from the source directory into an O_PATH descriptor *fd. */
static int resolve(const struct source *s, const char *rel, int quiet, int *fd, struct stat *st)
{
    struct walk w = {.s = s, .rel = rel, .quiet = quiet, .depth = 0};
    w.fd = fcntl(s->dir_fd, F_DUPFD_CLOEXEC, 0);
    if (w.fd < 0)
        return -errno;
    int ret = walk(&w, rel, !fd, st);
    if (ret < 0 || !fd)
        close(w.fd);
    else
        *fd = w.fd;
    return ret;
}

int source_stat(const struct source *s, const char *rel, struct stat *st)
{
    return resolve(s, rel, 0, NULL, st);
}

int source_stat_entry(const struct source *s, int dirfd, const char *rel_dir, const char *name,
                      struct stat *st)
{
    if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (s->avoid && st->st_dev == s->mount_dev)
        return -ENOENT;
    if (!S_ISLNK(st->st_mode))
        return 0;
    char rel[PATH_MAX];
    if (snprintf(rel, sizeof(rel), "%s%s%s", rel_dir, *rel_dir ? "/" : "", name) >=
        (int)sizeof(rel))
        return -ENAMETOOLONG;
    return resolve(s, rel, 1, NULL, st);
}

int source_open(const struct source *s, const char *rel, int dir, int *fd, struct stat *st)
{
    int path_fd;
    int ret = resolve(s, rel, 0, &path_fd, st);
    if (ret < 0)
        return ret;
    if (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
        close(path_fd);
        return -ENOENT;
    }
    /* Reopening the O_PATH descriptor opens the very inode checked above, whatever the
     * name points to by now; O_NONBLOCK still, so nothing can block an open. */
    char proc[64];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", path_fd);
    *fd = open(proc, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    ret = *fd < 0 ? -errno : fstat(*fd, st) < 0 ? -errno : 0;
    close(path_fd);
    if (ret == 0 && (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)))
        ret = -ENOENT;
    if (ret < 0 && *fd >= 0)
        close(*fd);
    if (ret < 0)
        *fd = -1;
    return ret;
}
