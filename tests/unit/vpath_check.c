/* The oracle for the path grammar: an independent writer of names (the parser's inverse)
 * and the range and offset promises of vpath.h. */
#include "vpath_check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAME 1000000000
#define MAX_VIEW 16384
#define MAX_SECONDS 1e9

static const char *const containers[] = {"mp4", "mkv", "mov", "ts", "m4v", NULL};

struct out {
    char *p, *end;
};

static int put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p, (size_t)(o->end - o->p), fmt, ap);
    va_end(ap);
    if (n < 0 || n >= o->end - o->p)
        return -ENAMETOOLONG;
    o->p += n;
    return 0;
}

/* Seconds: the shortest "%.Nf" (N <= 9) that reads back as the same double. */
static int put_seconds(struct out *o, double v)
{
    char buf[64];
    for (int digits = 0; digits <= 9; digits++) {
        snprintf(buf, sizeof(buf), "%.*f", digits, v);
        if (strtod(buf, NULL) == v)
            return put(o, "%s", buf);
    }
    return -EINVAL;
}

static int put_frames(struct out *o, const struct vpath *vp)
{
    int ret = put(o, "/frames");
    if (ret == 0 && (vp->view_w || vp->view_h))
        ret = put(o, "_");
    if (ret == 0 && vp->view_w)
        ret = put(o, "%d", vp->view_w);
    if (ret == 0 && (vp->view_w || vp->view_h))
        ret = put(o, "x");
    if (ret == 0 && vp->view_h)
        ret = put(o, "%d", vp->view_h);
    if (ret < 0 || vp->kind == VPATH_FRAMES_DIR)
        return ret;
    if (vp->kind == VPATH_FRAME)
        return put(o, "/%d.%s", vp->first, format_ext(vp->format));
    ret = put(o, "/%d-%d", vp->first, vp->last);
    if (ret == 0 && vp->step != 1)
        ret = put(o, "~%d", vp->step);
    return ret < 0 ? ret : put(o, ".%s", format_ext(vp->format));
}

static int put_segment(struct out *o, const struct vpath *vp)
{
    int ret = put(o, "/segments/");
    if (ret == 0)
        ret = put_seconds(o, vp->seg_start);
    if (ret == 0)
        ret = put(o, "-");
    if (ret == 0)
        ret = put_seconds(o, vp->seg_end);
    return ret < 0 ? ret : put(o, "%s.%s", vp->seg_copy ? ".copy" : "", vp->container);
}

int vpath_check_spell(const struct vpath *vp, const char *path, char *buf, size_t size)
{
    struct out o = {buf, buf + size};
    if (vp->kind == VPATH_CTL_DIR)
        return put(&o, "/.vidfs");
    if (vp->kind == VPATH_STATS)
        return put(&o, "/.vidfs/stats.json");
    int ret = put(&o, "%.*s", (int)vp->src_len, path);
    if (ret < 0 || vp->kind == VPATH_PLAIN)
        return ret;
    if (vp->stream >= 0 && (ret = put(&o, "/streams/%d", vp->stream)) < 0)
        return ret;
    switch (vp->kind) {
    case VPATH_VIDEO_DIR:
        return 0;
    case VPATH_META:
        return put(&o, "/meta.json");
    case VPATH_SOURCE:
        return put(&o, "/source.%.*s", (int)(vp->src_len - vp->ext_off), path + vp->ext_off);
    case VPATH_FRAMES_CSV:
        return put(&o, "/frames.csv");
    case VPATH_SEGMENTS_DIR:
        return put(&o, "/segments");
    case VPATH_STREAMS_DIR:
        return put(&o, "/streams");
    case VPATH_FRAMES_DIR:
    case VPATH_FRAME:
    case VPATH_BATCH:
        return put_frames(&o, vp);
    case VPATH_SEGMENT:
        return put_segment(&o, vp);
    default:
        return -EINVAL;
    }
}

struct check {
    const char *path;
    int broken;
};

static void expect(struct check *c, int ok, const char *what)
{
    if (ok)
        return;
    fprintf(stderr, "vpath: \"%s\": %s\n", c->path, what);
    c->broken++;
}

/* 1 when the component [s, s + n) has a video extension: a dot after its first byte. */
static int is_video(const char *exts, const char *s, size_t n)
{
    const char *dot = memrchr(s, '.', n);
    return dot && dot > s && vpath_ext_match(exts, dot + 1, n - (size_t)(dot + 1 - s));
}

/* Video components wholly within path[0..len). */
static int videos_before(const char *exts, const char *path, size_t len)
{
    int count = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && path[i] == '/')
            i++;
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        if (j > i && is_video(exts, path + i, j - i))
            count++;
        i = j;
    }
    return count;
}

static int fuse_shaped(const char *path)
{
    return path[0] == '/' && !strstr(path, "//") &&
           (path[1] == '\0' || path[strlen(path) - 1] != '/');
}

static void check_source(struct check *c, const char *exts, int skip, const struct vpath *vp)
{
    const char *path = c->path;
    size_t len = strlen(path);
    expect(c, vp->src_len <= len, "src_len past the end of the path");
    if (vp->src_len > len)
        return;
    if (vp->kind == VPATH_PLAIN) {
        expect(c, vp->src_len == len, "a plain path is its own source");
        expect(c, videos_before(exts, path, len) <= skip, "plain, with a video in it");
        return;
    }
    expect(c, path[vp->src_len] == '\0' || path[vp->src_len] == '/',
           "src_len not at the end of a component");
    expect(c, vp->ext_off > 0 && vp->ext_off < vp->src_len && path[vp->ext_off - 1] == '.',
           "ext_off not after a dot within the source");
    if (vp->ext_off == 0 || vp->ext_off >= vp->src_len)
        return;
    expect(c,
           !memchr(path + vp->ext_off, '/', vp->src_len - vp->ext_off) &&
               vpath_ext_match(exts, path + vp->ext_off, vp->src_len - vp->ext_off),
           "the source's extension is not a video extension");
    expect(c, videos_before(exts, path, vp->src_len) == skip + 1,
           "the source is not the first unskipped video");
}

static void check_numbers(struct check *c, const struct vpath *vp)
{
    expect(c, vp->stream >= -1, "stream below -1");
    expect(c,
           vp->view_w >= 0 && vp->view_w <= MAX_VIEW && vp->view_h >= 0 && vp->view_h <= MAX_VIEW,
           "view size out of range");
    if (vp->kind == VPATH_FRAME || vp->kind == VPATH_BATCH) {
        expect(c, vp->format < FORMAT_COUNT, "unknown format");
        expect(c,
               vp->first >= 0 && vp->first < vp->last && vp->last <= MAX_FRAME + 1 &&
                   vp->step >= 1 && vp->step <= MAX_FRAME,
               "frame numbers out of range");
        int n = vpath_count(vp);
        expect(c, n >= 1 && n <= vp->last - vp->first, "frame count out of range");
        expect(c, vp->kind == VPATH_BATCH || (vp->last == vp->first + 1 && n == 1),
               "a frame is not one frame");
    }
    if (vp->kind == VPATH_SEGMENT) {
        expect(c, vp->seg_start >= 0 && vp->seg_start < vp->seg_end && vp->seg_end <= MAX_SECONDS,
               "segment times out of range");
        int known = 0;
        for (const char *const *k = containers; *k; k++)
            known |= !strcmp(vp->container, *k);
        expect(c, known, "unknown container");
    }
}

int vpath_check(const char *path, const char *exts, int skip, int *ret, struct vpath *vp)
{
    struct check c = {path, 0};
    *ret = vpath_parse(path, exts, skip, vp);
    expect(&c, *ret == 0 || *ret == -ENOENT, "returned neither 0 nor -ENOENT");
    if (*ret < 0)
        return c.broken;
    expect(&c, vp->kind >= VPATH_PLAIN && vp->kind <= VPATH_STREAMS_DIR, "unknown kind");
    if (vp->kind == VPATH_CTL_DIR || vp->kind == VPATH_STATS) {
        const char *p = path + strspn(path, "/");
        expect(&c, !strcmp(p, vp->kind == VPATH_STATS ? ".vidfs/stats.json" : ".vidfs"),
               "control path misnamed");
    } else {
        check_source(&c, exts, skip, vp);
    }
    check_numbers(&c, vp);
    if (c.broken || !fuse_shaped(path))
        return c.broken;
    char again[8192];
    int spelt = vpath_check_spell(vp, path, again, sizeof(again));
    expect(&c, spelt == 0 && !strcmp(again, path), "spelled again differently");
    if (spelt == 0 && strcmp(again, path))
        fprintf(stderr, "vpath: spelled again: \"%s\"\n", again);
    return c.broken;
}
