/* FUSE operations. Every path goes through vpath_parse; the source path it names is
 * resolved inside the source directory by the source module (never out of it, never into
 * this mount). Videos are opened through a table of media that is checked against the
 * source's stat on every lookup, so a changed file is re-indexed. */
#include "ops.h"
#include "bufpool.h"
#include "convert.h"
#include "image_ahead.h"
#include "media.h"
#include "media_table.h"
#include "reader.h"
#include "render.h"
#include "segment.h"
#include "size_table.h"
#include "source.h"
#include "stats.h"
#include "vidfs.h"
#include "vpath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What stat says of a segment not yet made: the size of no segment (README, "Sizes"). */
#define SEGMENT_SIZE_UNMADE 0

struct handle {
    enum vpath_kind kind;
    int fd;
    uint64_t fd_size; /* what of fd is served: a stored file ends in the store's trailer */
    char *buf; /* generated contents */
    size_t len;
    struct media *m;
    struct vpath vp;
    int w, h;
    uint64_t frame_size;
    pthread_mutex_t lock; /* frame_buf, cur and lease */
    struct bufpool_buf frame_buf; /* held by a read, parked between reads */
    int cur; /* frame of the batch in frame_buf, -1 none */
    struct reader_lease lease; /* a batch's decoder, from its first frame to its last */
};

static struct vidfs *get_fs(void)
{
    return fuse_get_context()->private_data;
}

/* ---- paths ---- */

static const char *rel_of(const char *path)
{
    return path + strspn(path, "/");
}

/* Length of the source part of vp within rel_of(path). */
static size_t rel_len(const char *path, const struct vpath *vp)
{
    return vp->src_len - (size_t)(rel_of(path) - path);
}

/* Parses path; a component with a video extension that is a directory in the source is
 * mirrored like any directory, so the parse is retried past it. *stated is set when *st is
 * the stat of vp's source path, taken on the way (getattr then need not take it again). */
static int resolve_stat(struct vidfs *fs, const char *path, struct vpath *vp, struct stat *st,
                        int *stated)
{
    *stated = 0;
    for (int skip = 0;; skip++) {
        int ret = vpath_parse(path, fs->cfg.extensions, skip, vp);
        if ((ret == 0 && vp->kind == VPATH_PLAIN) || vp->src_len == 0)
            return ret;
        char prefix[PATH_MAX];
        size_t n = rel_len(path, vp);
        if (n >= sizeof(prefix))
            return -ENAMETOOLONG;
        memcpy(prefix, rel_of(path), n);
        prefix[n] = '\0';
        if (source_stat(fs->src, prefix, st) < 0)
            return ret;
        if (!S_ISDIR(st->st_mode)) {
            *stated = 1;
            return ret;
        }
    }
}

static int resolve(struct vidfs *fs, const char *path, struct vpath *vp)
{
    struct stat st;
    int stated;
    return resolve_stat(fs, path, vp, &st, &stated);
}

/* st: the source's stat just taken, or NULL. */
static int media_of(struct vidfs *fs, const char *path, const struct vpath *vp,
                    const struct stat *st, struct media **m)
{
    int ret = media_table_get(fs->media, rel_of(path), rel_len(path, vp), vp->stream, st, m);
    if (ret < 0)
        return ret;
    if (vp->stream >= 0 && (*m)->stream != vp->stream) {
        media_unref(m);
        return -ENOENT;
    }
    return 0;
}

/* Checks a FRAME or BATCH name against the media; sets the view size and frame bytes. */
static int frame_geometry(const struct media *m, const struct vpath *vp, int *w, int *h,
                          uint64_t *frame_size)
{
    if (m->error)
        return -EIO;
    int batch = vp->kind == VPATH_BATCH;
    if (vp->last > media_nb_frames(m) || (batch && !format_is_raw(vp->format)))
        return -ENOENT;
    int ret = convert_view_size(m->width, m->height, vp->view_w, vp->view_h, w, h);
    if (ret < 0)
        return ret;
    *frame_size = format_frame_size(vp->format, *w, *h);
    return 0;
}

/* The key of a png/jpg frame file in the size table. */
static struct size_key image_key(const struct media *m, const struct vpath *vp, int w, int h)
{
    return (struct size_key){.media = m->id, .frame = vp->first, .w = w, .h = h,
                             .format = vp->format};
}

/* Encodes frame vp->first of m as the png/jpg of vp at w x h: *out is malloc'd. */
static int make_image(struct vidfs *fs, struct media *m, const struct vpath *vp, int w, int h,
                      uint8_t **out, size_t *size)
{
    struct convert_req req = {.format = vp->format, .width = w, .height = h};
    /* An image encoded ahead for a reader going in order, else encoded now. */
    struct image_opts io = {.jpeg_q = (int)fs->cfg.jpeg_quality,
                            .jpeg_444 = fs->cfg.jpeg_chroma == CONFIG_JPEG_444};
    return image_ahead_get(fs->images, m, vp->first, &req, &io, out, size);
}

/* An image's size is known once it is encoded, so a lookup encodes it (it is one frame) and
 * the size table keeps the bytes for the open that follows. */
static int image_size(struct vidfs *fs, struct media *m, const struct vpath *vp, int w, int h,
                      uint64_t *size)
{
    struct size_key k = image_key(m, vp, w, h);
    if (size_table_get(fs->sizes, &k, size) || !size_table_claim(fs->sizes, &k, size))
        return 0;
    uint8_t *bytes;
    size_t n;
    int ret = make_image(fs, m, vp, w, h, &bytes, &n);
    if (ret < 0) {
        size_table_abandon(fs->sizes, &k);
        return ret;
    }
    size_table_keep(fs->sizes, &k, bytes, n);
    *size = n;
    return 0;
}

/* Modes derive from the source's, less the write bits, and the kernel enforces them
 * (default_permissions): a directory made from a video is r-x where the video is
 * readable, the files made from it are readable where it is. */
static void fill_stat(struct stat *st, const struct stat *src, int dir, off_t size)
{
    mode_t r = src->st_mode & 0444;
    memset(st, 0, sizeof(*st));
    st->st_mode = !dir                    ? S_IFREG | r
                  : S_ISDIR(src->st_mode) ? S_IFDIR | (src->st_mode & 0555)
                                          : S_IFDIR | r | r >> 2;
    st->st_nlink = dir ? 2 : 1;
    st->st_size = size;
    st->st_blocks = (size + 511) / 512;
    /* cat and cp read st_blksize at a time: 1 MiB, the largest request here (max_read),
     * instead of 24 requests for every 1080p frame at 128 KiB. */
    st->st_blksize = 1 << 20;
    st->st_uid = src->st_uid;
    st->st_gid = src->st_gid;
    st->st_atim = src->st_atim;
    st->st_mtim = src->st_mtim;
    st->st_ctim = src->st_ctim;
}

/* A file or directory of the source, passed through: x bits too. */
static void stat_passed(struct stat *st, const struct stat *src)
{
    fill_stat(st, src, S_ISDIR(src->st_mode), S_ISREG(src->st_mode) ? src->st_size : 0);
    st->st_mode |= src->st_mode & 0111;
}

static int has_stream(const struct media *m, int stream)
{
    for (int i = 0; i < m->nb_video_streams; i++)
        if (m->video_streams[i] == stream)
            return 1;
    return 0;
}

static int getattr_media(struct vidfs *fs, const char *path, const struct vpath *vp,
                         const struct stat *src, struct stat *st)
{
    struct media *m;
    int ret = media_of(fs, path, vp, src, &m);
    if (ret < 0)
        return ret;
    off_t size = 0;
    int dir = 0, w, h;
    uint64_t fsize, produced;
    switch (vp->kind) {
    case VPATH_VIDEO_DIR:
    case VPATH_SEGMENTS_DIR:
        dir = 1;
        break;
    case VPATH_FRAMES_DIR: /* a view out of bounds does not exist, nor do its frames */
        dir = 1;
        if (!m->error)
            ret = convert_view_size(m->width, m->height, vp->view_w, vp->view_h, &w, &h);
        break;
    case VPATH_STREAMS_DIR:
        dir = 1;
        ret = m->nb_video_streams > 1 ? 0 : -ENOENT;
        break;
    case VPATH_META:
        size = (off_t)strlen(m->meta_json);
        break;
    case VPATH_FRAME:
    case VPATH_BATCH:
        ret = frame_geometry(m, vp, &w, &h, &fsize);
        if (ret == 0 && !format_is_raw(vp->format))
            ret = image_size(fs, m, vp, w, h, &fsize);
        size = (off_t)fsize * vpath_count(vp);
        break;
    case VPATH_SEGMENT: {
        struct segment_req req = {vp->seg_start, vp->seg_end, vp->container, vp->seg_copy};
        if (m->error || !segment_valid(fs->segmenter, m, &req)) {
            ret = m->error ? -EIO : -ENOENT;
            break;
        }
        size = segment_size(fs->segmenter, m, &req, &produced) == 0 ? (off_t)produced
                                                                    : SEGMENT_SIZE_UNMADE;
        break;
    }
    default:
        ret = -ENOENT;
    }
    if (ret == 0 && vp->stream >= 0 && !has_stream(m, vp->stream))
        ret = -ENOENT;
    if (ret == 0)
        fill_stat(st, &m->st, dir, size);
    media_unref(&m);
    return ret;
}

static char *fs_stats(struct vidfs *fs)
{
    struct stats_sources src = {
        .cache = fs->cache,
        .pool = fs->pool,
        .reader = fs->reader,
        .segmenter = fs->segmenter,
        .bufs = fs->bufs,
        .images = fs->images,
        .bytes_served = __atomic_load_n(&fs->bytes_served, __ATOMIC_RELAXED),
        .files_opened = __atomic_load_n(&fs->files_opened, __ATOMIC_RELAXED),
    };
    return stats_json(&src);
}

/* /.vidfs and stats.json, whose size is the length of the text an open would get now. */
static int getattr_ctl(struct vidfs *fs, const struct vpath *vp, struct stat *st)
{
    struct stat src;
    if (fstat(fs->src_fd, &src) < 0)
        return -errno;
    size_t len = 0;
    if (vp->kind == VPATH_STATS) {
        char *text = fs_stats(fs);
        if (!text)
            return -ENOMEM;
        len = strlen(text);
        free(text);
    }
    fill_stat(st, &src, vp->kind == VPATH_CTL_DIR, (off_t)len);
    return 0;
}

static int vidfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    struct vidfs *fs = get_fs();
    struct vpath vp;
    struct stat src;
    int stated;
    int ret = resolve_stat(fs, path, &vp, &src, &stated);
    if (ret < 0)
        return ret;
    if (vp.kind == VPATH_CTL_DIR || vp.kind == VPATH_STATS)
        return getattr_ctl(fs, &vp, st);
    char rel[PATH_MAX];
    snprintf(rel, sizeof(rel), "%.*s", (int)rel_len(path, &vp), rel_of(path));
    if (!stated && (ret = source_stat(fs->src, rel, &src)) < 0)
        return ret;
    if (vp.kind == VPATH_PLAIN) {
        if (!S_ISDIR(src.st_mode) && !S_ISREG(src.st_mode))
            return -ENOENT;
        stat_passed(st, &src);
        return 0;
    }
    if (!S_ISREG(src.st_mode))
        return -ENOENT;
    if (vp.kind == VPATH_SOURCE) {
        stat_passed(st, &src);
        return 0;
    }
    /* A video's directory is its source's stat: `ls -l` of a folder opens no video. */
    if (vp.kind == VPATH_VIDEO_DIR && vp.stream < 0) {
        fill_stat(st, &src, 1, 0);
        return 0;
    }
    if (vp.kind == VPATH_FRAMES_CSV) {
        uint64_t size;
        ret = media_table_csv_size(fs->media, rel_of(path), rel_len(path, &vp), vp.stream, &src,
                                   &size);
        if (ret < 0)
            return ret;
        fill_stat(st, &src, 0, (off_t)size);
        return 0;
    }
    return getattr_media(fs, path, &vp, &src, st);
}

/* ---- directories ---- */

/* A source directory being listed, open from opendir to releasedir, so that a listing given
 * in pieces goes on where the last piece stopped. Its offsets: 1, 2 (and 3 at the root) for
 * ".", ".." (and ".vidfs"), then one a name listed. */
struct dir_list {
    DIR *d;
    off_t given; /* names of d listed so far */
};

/* Whether entry name of the directory d (rel) is listed, and its stat as getattr gives it. */
static int list_stat(struct vidfs *fs, DIR *d, const char *rel, const char *name,
                     struct stat *out)
{
    struct stat st;
    if (!strcmp(name, ".") || !strcmp(name, "..") ||
        source_stat_entry(fs->src, dirfd(d), rel, name, &st) < 0 ||
        (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)))
        return 0;
    const char *dot = strrchr(name, '.');
    if (S_ISREG(st.st_mode) && dot && dot > name &&
        vpath_ext_match(fs->cfg.extensions, dot + 1, strlen(dot + 1)))
        fill_stat(out, &st, 1, 0);
    else
        stat_passed(out, &st);
    return 1;
}

/* Lists from offset off on. With offsets, libfuse passes each name's attributes to the
 * kernel when it asks for them (readdirplus), which spares it a lookup a name: `ls -l`
 * then costs one getattr a name. */
static int readdir_plain(struct vidfs *fs, struct dir_list *l, const char *rel, off_t off,
                         int plus, void *buf, fuse_fill_dir_t fill)
{
    static const char *const dots[] = {".", "..", ".vidfs"};
    off_t ndots = *rel ? 2 : 3;
    for (off_t i = off; i < ndots; i++)
        if (fill(buf, dots[i], NULL, i + 1, 0))
            return 0;
    if (off < ndots + l->given) {
        rewinddir(l->d);
        l->given = 0;
    }
    struct dirent *de;
    struct stat st;
    for (long at = telldir(l->d); (de = readdir(l->d)); at = telldir(l->d)) {
        if (!list_stat(fs, l->d, rel, de->d_name, &st))
            continue;
        off_t i = ndots + ++l->given;
        if (i > off && fill(buf, de->d_name, &st, i, plus ? FUSE_FILL_DIR_PLUS : 0)) {
            seekdir(l->d, at); /* did not fit: the next piece starts with it */
            l->given--;
            break;
        }
    }
    return 0;
}

static int readdir_media(struct vidfs *fs, const char *path, const struct vpath *vp,
                         void *buf, fuse_fill_dir_t fill)
{
    struct media *m;
    int ret = media_of(fs, path, vp, NULL, &m);
    if (ret < 0)
        return ret;
    char name[64];
    struct stat dir = {.st_mode = S_IFDIR}, file = {.st_mode = S_IFREG};
    switch (vp->kind) {
    case VPATH_VIDEO_DIR:
        fill(buf, "meta.json", &file, 0, 0);
        if (vp->stream < 0) {
            snprintf(name, sizeof(name), "source.%.*s", (int)(vp->src_len - vp->ext_off),
                     path + vp->ext_off);
            fill(buf, name, &file, 0, 0);
        }
        if (!m->error) {
            fill(buf, "frames.csv", &file, 0, 0);
            fill(buf, "frames", &dir, 0, 0);
            fill(buf, "segments", &dir, 0, 0);
        }
        if (vp->stream < 0 && m->nb_video_streams > 1)
            fill(buf, "streams", &dir, 0, 0);
        break;
    case VPATH_FRAMES_DIR:
        for (int n = 0; n < media_nb_frames(m); n++) {
            snprintf(name, sizeof(name), "%d.%s", n, format_ext(fs->list_format));
            if (fill(buf, name, &file, 0, 0))
                break;
        }
        break;
    case VPATH_STREAMS_DIR:
        for (int i = 0; m->nb_video_streams > 1 && i < m->nb_video_streams; i++) {
            snprintf(name, sizeof(name), "%d", m->video_streams[i]);
            fill(buf, name, &dir, 0, 0);
        }
        break;
    case VPATH_SEGMENTS_DIR:
        break;
    default:
        ret = -ENOTDIR;
    }
    media_unref(&m);
    return ret;
}

static int vidfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                         struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    struct vidfs *fs = get_fs();
    struct vpath vp;
    int ret = resolve(fs, path, &vp);
    if (ret < 0)
        return ret;
    struct dir_list *l = (struct dir_list *)(uintptr_t)fi->fh;
    if (vp.kind == VPATH_PLAIN)
        return l ? readdir_plain(fs, l, rel_of(path), off, flags & FUSE_READDIR_PLUS, buf, fill)
                 : -EIO;
    fill(buf, ".", NULL, 0, 0);
    fill(buf, "..", NULL, 0, 0);
    if (vp.kind == VPATH_CTL_DIR) {
        fill(buf, "stats.json", NULL, 0, 0);
        return 0;
    }
    return readdir_media(fs, path, &vp, buf, fill);
}

static int vidfs_opendir(const char *path, struct fuse_file_info *fi)
{
    struct vidfs *fs = get_fs();
    struct vpath vp;
    int ret = resolve(fs, path, &vp);
    if (ret < 0 || vp.kind != VPATH_PLAIN)
        return ret; /* the tree of a video is listed from its media, without a handle */
    struct dir_list *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    int fd;
    struct stat st;
    ret = source_open(fs->src, rel_of(path), 1, &fd, &st);
    if (ret == 0 && !(l->d = fdopendir(fd))) {
        close(fd);
        ret = -ENOMEM;
    }
    if (ret < 0) {
        free(l);
        return ret;
    }
    fi->fh = (uintptr_t)l;
    return 0;
}

static int vidfs_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    struct dir_list *l = (struct dir_list *)(uintptr_t)fi->fh;
    if (l)
        closedir(l->d);
    free(l);
    return 0;
}

/* ---- files ---- */

static void handle_free(struct vidfs *fs, struct handle *h)
{
    if (!h)
        return;
    reader_lease_end(fs->reader, &h->lease);
    if (h->fd >= 0)
        close(h->fd);
    free(h->buf);
    bufpool_drop(fs->bufs, &h->frame_buf);
    media_unref(&h->m);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static struct handle *handle_new(const struct vpath *vp)
{
    struct handle *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->vp = *vp;
    h->kind = vp->kind;
    h->fd = -1;
    h->fd_size = UINT64_MAX;
    h->cur = -1;
    h->lease = (struct reader_lease)READER_LEASE_INIT;
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

static int set_text(struct handle *h, char *text)
{
    if (!text)
        return -ENOMEM;
    h->buf = text;
    h->len = strlen(text);
    return 0;
}

/* png/jpg: the bytes the lookup just encoded, else encoded now. */
static int open_image(struct vidfs *fs, struct handle *h)
{
    struct size_key k = image_key(h->m, &h->vp, h->w, h->h);
    uint8_t *out;
    size_t size;
    if (!size_table_take(fs->sizes, &k, &out, &size)) {
        int ret = make_image(fs, h->m, &h->vp, h->w, h->h, &out, &size);
        if (ret < 0)
            return ret;
        size_table_put(fs->sizes, &k, size);
    }
    h->buf = (char *)out;
    h->len = size;
    return 0;
}

static int open_media_file(struct vidfs *fs, const char *path, struct handle *h,
                           struct fuse_file_info *fi)
{
    int ret = media_of(fs, path, &h->vp, NULL, &h->m);
    if (ret < 0)
        return ret;
    if (h->vp.stream >= 0 && !has_stream(h->m, h->vp.stream))
        return -ENOENT;
    switch (h->kind) {
    case VPATH_META:
        return set_text(h, strdup(h->m->meta_json));
    case VPATH_FRAME:
    case VPATH_BATCH:
        ret = frame_geometry(h->m, &h->vp, &h->w, &h->h, &h->frame_size);
        if (ret < 0)
            return ret;
        fi->direct_io = 1;
        /* Raw frames are made at read time, into a buffer from the bounded pool. */
        return format_is_raw(h->vp.format) ? 0 : open_image(fs, h);
    case VPATH_SEGMENT: {
        struct segment_req req = {h->vp.seg_start, h->vp.seg_end, h->vp.container,
                                  h->vp.seg_copy};
        if (h->m->error)
            return -EIO;
        fi->direct_io = 1;
        return segment_open(fs->segmenter, h->m, &req, &h->fd, &h->fd_size);
    }
    default:
        return -EISDIR;
    }
}

static int vidfs_open(const char *path, struct fuse_file_info *fi)
{
    struct vidfs *fs = get_fs();
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
        return -EROFS;
    struct vpath vp;
    int ret = resolve(fs, path, &vp);
    if (ret < 0)
        return ret;
    struct handle *h = handle_new(&vp);
    if (!h)
        return -ENOMEM;
    char rel[PATH_MAX];
    snprintf(rel, sizeof(rel), "%.*s", (int)rel_len(path, &vp), rel_of(path));
    switch (vp.kind) {
    case VPATH_PLAIN:
    case VPATH_SOURCE: {
        struct stat st;
        ret = source_open(fs->src, rel, 0, &h->fd, &st);
        break;
    }
    case VPATH_STATS:
        fi->direct_io = 1;
        ret = set_text(h, fs_stats(fs));
        break;
    case VPATH_FRAMES_CSV:
        ret = media_table_csv(fs->media, rel, strlen(rel), vp.stream, &h->buf, &h->len);
        break;
    case VPATH_CTL_DIR:
        ret = -EISDIR;
        break;
    default:
        ret = open_media_file(fs, path, h, fi);
    }
    if (ret < 0) {
        handle_free(fs, h);
        return ret;
    }
    __atomic_add_fetch(&fs->files_opened, 1, __ATOMIC_RELAXED);
    fi->fh = (uintptr_t)h;
    return 0;
}

/* Converts frame k of the handle's batch into frame_buf (under h->lock). */
static int render(struct vidfs *fs, struct handle *h, int k)
{
    if (h->cur == k)
        return 0;
    /* A batch is one request: it holds its decoder from its first frame to its last. A
     * single frame file may be followed by the next: read-ahead serves that. */
    int batch = h->kind == VPATH_BATCH;
    int end = batch ? h->vp.last : INT_MAX;
    struct convert_req req = {.format = h->vp.format, .width = h->w, .height = h->h};
    h->cur = -1;
    int ret = render_frame(fs->reader, h->m, h->vp.first + k * h->vp.step, end,
                           batch ? &h->lease : NULL, &req, h->frame_buf.data, h->frame_size);
    if (batch && (ret < 0 || k == vpath_count(&h->vp) - 1))
        reader_lease_end(fs->reader, &h->lease);
    if (ret == 0)
        h->cur = k;
    return ret;
}

static int read_frames(struct vidfs *fs, struct handle *h, char *buf, size_t size, off_t off)
{
    uint64_t total = h->frame_size * (uint64_t)vpath_count(&h->vp);
    size_t done = 0;
    if ((uint64_t)off >= total)
        return 0;
    pthread_mutex_lock(&h->lock);
    /* Padding: swscale may write a little past the last row. */
    int ret = bufpool_hold(fs->bufs, &h->frame_buf, h->frame_size + CONVERT_PAD);
    if (ret < 0) {
        pthread_mutex_unlock(&h->lock);
        return ret;
    }
    if (ret == 0) /* new, or taken back for another handle since the last read */
        h->cur = -1;
    while (done < size && (uint64_t)off + done < total) {
        uint64_t pos = (uint64_t)off + done;
        int k = (int)(pos / h->frame_size);
        uint64_t in = pos % h->frame_size;
        if ((ret = render(fs, h, k)) < 0)
            break;
        size_t n = h->frame_size - in < size - done ? (size_t)(h->frame_size - in) : size - done;
        memcpy(buf + done, h->frame_buf.data + in, n);
        done += n;
    }
    /* Read to its end, the file needs its frame no more: the buffer goes to others. */
    if ((uint64_t)off + done >= total) {
        bufpool_drop(fs->bufs, &h->frame_buf);
        h->cur = -1;
    } else {
        bufpool_park(fs->bufs, &h->frame_buf);
    }
    pthread_mutex_unlock(&h->lock);
    return done || ret >= 0 ? (int)done : ret;
}

/* size, cut to what of h's fd is served from off on. */
static size_t fd_clamp(const struct handle *h, size_t size, off_t off)
{
    uint64_t o = (uint64_t)off;
    if (o >= h->fd_size)
        return 0;
    return h->fd_size - o < size ? (size_t)(h->fd_size - o) : size;
}

static int vidfs_read(const char *path, char *buf, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
    (void)path;
    struct vidfs *fs = get_fs();
    struct handle *h = (struct handle *)(uintptr_t)fi->fh;
    int ret;
    if (off < 0)
        return -EINVAL;
    if (h->fd >= 0) {
        ssize_t r = pread(h->fd, buf, fd_clamp(h, size, off), off);
        ret = r < 0 ? -errno : (int)r;
    } else if (h->frame_size && format_is_raw(h->vp.format)) {
        ret = read_frames(fs, h, buf, size, off);
    } else {
        size_t n = (uint64_t)off >= h->len ? 0 : h->len - (size_t)off;
        n = n < size ? n : size;
        if (n)
            memcpy(buf, h->buf + off, n);
        ret = (int)n;
    }
    if (ret > 0)
        __atomic_add_fetch(&fs->bytes_served, (uint64_t)ret, __ATOMIC_RELAXED);
    return ret;
}

/* What a read of size bytes at off will get from fd: libfuse reads it after we return,
 * and a request past the end of the file gets only what is left. */
static uint64_t fd_read_len(int fd, size_t size, off_t off)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || off >= st.st_size)
        return 0;
    return (uint64_t)st.st_size - (uint64_t)off < size ? (uint64_t)(st.st_size - off) : size;
}

/* Files that exist on disk (passthrough, source, stored segments) are handed to libfuse as
 * an fd buffer, so the kernel can splice them; the rest is read into memory. */
static int vidfs_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
                          struct fuse_file_info *fi)
{
    struct handle *h = (struct handle *)(uintptr_t)fi->fh;
    struct fuse_bufvec init = FUSE_BUFVEC_INIT(size), *bv = malloc(sizeof(*bv));
    if (!bv)
        return -ENOMEM;
    *bv = init;
    if (h->fd >= 0) {
        size = fd_clamp(h, size, off);
        bv->buf[0].size = size;
        bv->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        bv->buf[0].fd = h->fd;
        bv->buf[0].pos = off;
        __atomic_add_fetch(&get_fs()->bytes_served, fd_read_len(h->fd, size, off),
                           __ATOMIC_RELAXED);
        *bufp = bv;
        return 0;
    }
    void *mem = malloc(size ? size : 1);
    int ret = mem ? vidfs_read(path, mem, size, off, fi) : -ENOMEM;
    if (ret < 0) {
        free(mem);
        free(bv);
        return ret;
    }
    bv->buf[0].mem = mem;
    bv->buf[0].size = (size_t)ret;
    *bufp = bv;
    return 0;
}

static int vidfs_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    handle_free(get_fs(), (struct handle *)(uintptr_t)fi->fh);
    return 0;
}

static int vidfs_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    return fstatvfs(get_fs()->src_fd, st) < 0 ? -errno : 0;
}

/* Every call that would change the tree: the mount is read-only. */
static int rofs_path(const char *path, mode_t mode)
{
    (void)path, (void)mode;
    return -EROFS;
}

static int rofs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    (void)path, (void)mode, (void)fi;
    return -EROFS;
}

static int rofs_write(const char *path, const char *buf, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
    (void)path, (void)buf, (void)size, (void)off, (void)fi;
    return -EROFS;
}

static int rofs_unlink(const char *path)
{
    (void)path;
    return -EROFS;
}

static int rofs_rename(const char *from, const char *to, unsigned int flags)
{
    (void)from, (void)to, (void)flags;
    return -EROFS;
}

static int rofs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    (void)path, (void)size, (void)fi;
    return -EROFS;
}

static void *vidfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* Frame files are whole reads of up to a few MiB: ask the kernel for 1 MiB requests. */
    conn->max_read = 1 << 20;
    conn->max_write = 1 << 20;
    conn->max_readahead = 1 << 20;
    cfg->use_ino = 0;
    /* png/jpg and segments get their exact size once produced: no stale attributes. */
    cfg->attr_timeout = 0;
    cfg->entry_timeout = 1;
    cfg->negative_timeout = 0;
    struct vidfs *fs = fuse_get_context()->private_data;
    vidfs_start(fs);
    return fs;
}

const struct fuse_operations vidfs_ops = {
    .init = vidfs_init,
    .getattr = vidfs_getattr,
    .opendir = vidfs_opendir,
    .readdir = vidfs_readdir,
    .releasedir = vidfs_releasedir,
    .open = vidfs_open,
    .read = vidfs_read,
    .read_buf = vidfs_read_buf,
    .release = vidfs_release,
    .statfs = vidfs_statfs,
    .mkdir = rofs_path,
    .mknod = NULL,
    .create = rofs_create,
    .write = rofs_write,
    .unlink = rofs_unlink,
    .rmdir = rofs_unlink,
    .rename = rofs_rename,
    .truncate = rofs_truncate,
    .chmod = NULL,
};
