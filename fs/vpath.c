/* Path grammar. Every number has one spelling (no sign, no leading zero), so each frame
 * has exactly one name and caches never hold the same bytes twice. */
#include "vpath.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bounds that keep every product of them within 64 bits. */
#define MAX_FRAME 1000000000
#define MAX_VIEW 16384
#define MAX_SECONDS 1000000000
#define MAX_SIGNIFICANT 999999999999999 /* DBL_DIG (15) digits */

static const char *const containers[] = {"mp4", "mkv", "mov", "ts", "m4v", NULL};

int vpath_ext_match(const char *exts, const char *ext, size_t len)
{
    const char *p = exts;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && len && !strncasecmp(p, ext, len))
            return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

/* Parses a canonical decimal integer in [s, e) within [0, max]. Ten digits at most, so
 * the 64-bit sum cannot wrap; the bound is checked before narrowing to int. */
static int parse_uint(const char *s, const char *e, int max, int *out)
{
    if (s >= e || e - s > 10 || (*s == '0' && e - s > 1))
        return -ENOENT;
    int64_t v = 0;
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9')
            return -ENOENT;
        v = v * 10 + (*p - '0');
    }
    if (v > max)
        return -ENOENT;
    *out = (int)v;
    return 0;
}

/* Seconds: digits, optionally '.' and digits not ending in 0 ("10", "10.5", "0.25"), at
 * most DBL_DIG significant digits, so that no two names are one double. The value is the
 * double nearest the decimal (as strtod's): an exact integer over an exact power of ten. */
static int parse_seconds(const char *s, const char *e, double *out)
{
    const char *dot = memchr(s, '.', (size_t)(e - s));
    int ip;
    if (parse_uint(s, dot ? dot : e, MAX_SECONDS, &ip) < 0)
        return -ENOENT;
    int64_t digits = ip;
    double scale = 1;
    if (dot) {
        if (dot + 1 >= e || e - dot > 10 || e[-1] == '0')
            return -ENOENT;
        for (const char *p = dot + 1; p < e; p++, scale *= 10) {
            if (*p < '0' || *p > '9')
                return -ENOENT;
            digits = digits * 10 + (*p - '0');
        }
    }
    double v = (double)digits / scale;
    if (digits > MAX_SIGNIFICANT || v > MAX_SECONDS)
        return -ENOENT;
    *out = v;
    return 0;
}

/* "N.FMT", "A-B.FMT" or "A-B~S.FMT". */
static int parse_frame_name(const char *s, struct vpath *vp)
{
    const char *dot = strrchr(s, '.');
    if (!dot)
        return -ENOENT;
    vp->format = format_from_ext(dot + 1, (int)strlen(dot + 1));
    if (vp->format == FORMAT_COUNT)
        return -ENOENT;
    const char *dash = memchr(s, '-', (size_t)(dot - s));
    if (!dash) {
        vp->kind = VPATH_FRAME;
        vp->step = 1;
        if (parse_uint(s, dot, MAX_FRAME, &vp->first) < 0)
            return -ENOENT;
        vp->last = vp->first + 1;
        return 0;
    }
    vp->kind = VPATH_BATCH;
    const char *tilde = memchr(dash, '~', (size_t)(dot - dash));
    vp->step = 1;
    if (parse_uint(s, dash, MAX_FRAME, &vp->first) < 0 ||
        parse_uint(dash + 1, tilde ? tilde : dot, MAX_FRAME, &vp->last) < 0 ||
        (tilde && parse_uint(tilde + 1, dot, MAX_FRAME, &vp->step) < 0))
        return -ENOENT;
    /* "~1" would be a second name of the batch without it. */
    return vp->first < vp->last && (!tilde || vp->step >= 2) ? 0 : -ENOENT;
}

/* "S-E.EXT" or "S-E.copy.EXT". */
static int parse_segment_name(const char *s, struct vpath *vp)
{
    const char *dash = strchr(s, '-');
    const char *ext = strrchr(s, '.');
    if (!dash || !ext || ext < dash)
        return -ENOENT;
    const char *end = ext;
    if (end - dash > 5 && !memcmp(end - 5, ".copy", 5)) {
        vp->seg_copy = 1;
        end -= 5;
    }
    int known = 0;
    for (const char *const *c = containers; *c; c++)
        known |= !strcmp(ext + 1, *c);
    if (!known)
        return -ENOENT;
    strcpy(vp->container, ext + 1);
    /* The start's own decimal point is inside [s, dash); the end's is inside (dash, end). */
    if (parse_seconds(s, dash, &vp->seg_start) < 0 ||
        parse_seconds(dash + 1, end, &vp->seg_end) < 0)
        return -ENOENT;
    vp->kind = VPATH_SEGMENT;
    return vp->seg_end > vp->seg_start ? 0 : -ENOENT;
}

/* "frames", "frames_WxH", "frames_Wx", "frames_xH". */
static int parse_frames_dir(const char *s, size_t n, struct vpath *vp)
{
    if (n == 6 && !memcmp(s, "frames", 6))
        return 0;
    if (n < 9 || memcmp(s, "frames_", 7))
        return -ENOENT;
    const char *b = s + 7, *e = s + n;
    const char *x = memchr(b, 'x', (size_t)(e - b));
    if (!x)
        return -ENOENT;
    if (x > b && parse_uint(b, x, MAX_VIEW, &vp->view_w) < 0)
        return -ENOENT;
    if (x + 1 < e && parse_uint(x + 1, e, MAX_VIEW, &vp->view_h) < 0)
        return -ENOENT;
    return (x > b || x + 1 < e) && (x == b || vp->view_w > 0) && (x + 1 == e || vp->view_h > 0)
               ? 0
               : -ENOENT;
}

/* Components after the video directory (or after streams/S). */
static int parse_inner(const char *s, const char *ext, size_t ext_len, int in_stream,
                       struct vpath *vp)
{
    if (!*s) {
        vp->kind = VPATH_VIDEO_DIR;
        return 0;
    }
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    const char *rest = slash ? slash + 1 : NULL;
    if (rest && !*rest)
        rest = NULL;
    if (!rest) {
        if (!strcmp(s, "meta.json"))
            return vp->kind = VPATH_META, 0;
        if (!strcmp(s, "frames.csv"))
            return vp->kind = VPATH_FRAMES_CSV, 0;
        if (!strcmp(s, "segments"))
            return vp->kind = VPATH_SEGMENTS_DIR, 0;
        if (!in_stream && !strcmp(s, "streams"))
            return vp->kind = VPATH_STREAMS_DIR, 0;
        if (!in_stream && n == 7 + ext_len && !memcmp(s, "source.", 7) &&
            !memcmp(s + 7, ext, ext_len))
            return vp->kind = VPATH_SOURCE, 0;
    }
    if (n >= 6 && !memcmp(s, "frames", 6)) {
        if (parse_frames_dir(s, n, vp) < 0)
            return -ENOENT;
        if (!rest)
            return vp->kind = VPATH_FRAMES_DIR, 0;
        return strchr(rest, '/') ? -ENOENT : parse_frame_name(rest, vp);
    }
    if (n == 8 && !memcmp(s, "segments", 8) && rest)
        return strchr(rest, '/') ? -ENOENT : parse_segment_name(rest, vp);
    if (n == 7 && !memcmp(s, "streams", 7) && rest && !in_stream) {
        const char *e = strchr(rest, '/');
        if (parse_uint(rest, e ? e : rest + strlen(rest), INT_MAX, &vp->stream) < 0)
            return -ENOENT;
        return parse_inner(e ? e + 1 : "", ext, ext_len, 1, vp);
    }
    return -ENOENT;
}

int vpath_parse(const char *path, const char *exts, int skip, struct vpath *out)
{
    memset(out, 0, sizeof(*out));
    out->stream = -1;
    const char *const full = path;
    while (*path == '/')
        path++;
    if (!strcmp(path, ".vidfs"))
        return out->kind = VPATH_CTL_DIR, 0;
    if (!strcmp(path, ".vidfs/stats.json"))
        return out->kind = VPATH_STATS, 0;
    const char *comp = path;
    while (*comp) {
        const char *slash = strchr(comp, '/');
        size_t n = slash ? (size_t)(slash - comp) : strlen(comp);
        const char *dot = memrchr(comp, '.', n);
        if (dot && dot > comp && vpath_ext_match(exts, dot + 1, n - (size_t)(dot + 1 - comp)) &&
            skip-- <= 0) {
            out->src_len = (size_t)(comp - full) + n;
            out->ext_off = (size_t)(dot + 1 - full);
            return parse_inner(slash ? slash + 1 : "", dot + 1, n - (size_t)(dot + 1 - comp),
                               0, out);
        }
        if (!slash)
            break;
        comp = slash + 1;
    }
    out->kind = VPATH_PLAIN;
    out->src_len = strlen(full);
    return 0;
}

int vpath_count(const struct vpath *vp)
{
    return (vp->last - vp->first + vp->step - 1) / vp->step;
}
