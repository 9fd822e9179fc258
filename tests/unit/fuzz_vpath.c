/* Bounded fuzzer of the path grammar, run as a unit test: deterministic (a fixed seed) and
 * bounded (a count and a time limit), so CI gets the same few seconds every run.
 * 1. Names written from random parse results must parse back to those results.
 * 2. Mutations of such names (characters, edge numbers, tokens, splices) must keep every
 *    promise vpath_check checks; under ASan+UBSan that is also no overflow, no UB.
 * VIDFS_FUZZ_SEED and VIDFS_FUZZ_ITERS override the seed and the count. */
#include "vpath_check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NAME_MAX_LEN 512
#define TIME_LIMIT_S 20

static const char *const exts = "mp4,mkv,ts,avi";
static uint64_t rng;

/* splitmix64: small, and the same sequence on every platform. */
static uint64_t next(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int below(int n)
{
    return (int)(next() % (uint64_t)n);
}

#define PICK(a) (a[below((int)(sizeof(a) / sizeof(a[0])))])

/* A number in [lo, hi], often at an edge. */
static int number(int lo, int hi)
{
    switch (below(4)) {
    case 0:
        return below(2) ? lo : hi;
    case 1:
        return lo + below(hi - lo < 100 ? hi - lo + 1 : 100);
    default: {
        int64_t span = (int64_t)hi - lo + 1, v = (int64_t)(next() % (uint64_t)span);
        return (int)(lo + v / (int64_t)(1 + below(3) * 1000));
    }
    }
}

/* A time in seconds spelled the one way, read back by strtod. */
static double seconds(void)
{
    char buf[32];
    int ip = number(0, below(4) ? 10000 : 1000000000);
    int frac_digits = ip == 1000000000 ? 0 : below(10);
    int n = snprintf(buf, sizeof(buf), "%d", ip);
    if (frac_digits) {
        buf[n++] = '.';
        for (int i = 0; i < frac_digits; i++)
            buf[n++] = (char)('0' + (i == frac_digits - 1 ? 1 + below(9) : below(10)));
        buf[n] = '\0';
    }
    /* Past DBL_DIG significant digits a name is not a name: cut the fraction. */
    size_t sig = strlen(buf) - (frac_digits ? 1 : 0) - (ip == 0 ? 1 : 0);
    if (ip == 0)
        sig -= strspn(buf + 2, "0");
    if (sig > 15)
        snprintf(buf, sizeof(buf), "%d", ip);
    return strtod(buf, NULL);
}

static const char *const video_names[] = {"v.mp4",  "Run 1.MKV", "a.b.ts",
                                          ".x.avi", "clip.Mp4",  "é.mkv"};
static const char *const dir_names[] = {"clips", "dir.mp4", "a b", "x.txt", "n.e.s.t.ts"};
static const char *const containers[] = {"mp4", "mkv", "mov", "ts", "m4v"};

static void random_frames(struct vpath *vp)
{
    int view = below(3);
    vp->view_w = view == 1 ? 0 : number(1, 16384);
    vp->view_h = view == 2 ? 0 : number(1, 16384);
    if (!below(3))
        vp->view_w = vp->view_h = 0;
    if (vp->kind == VPATH_FRAMES_DIR)
        return;
    vp->format = (enum format)below(FORMAT_COUNT);
    if (vp->kind == VPATH_FRAME) {
        vp->first = number(0, 1000000000);
        vp->last = vp->first + 1, vp->step = 1;
        return;
    }
    vp->first = number(0, 999999999);
    vp->last = number(vp->first + 1, 1000000000);
    vp->step = below(2) ? 1 : number(2, 1000000000);
}

static void random_segment(struct vpath *vp)
{
    do {
        vp->seg_start = seconds();
        vp->seg_end = seconds();
    } while (vp->seg_start == vp->seg_end);
    if (vp->seg_start > vp->seg_end) {
        double t = vp->seg_start;
        vp->seg_start = vp->seg_end, vp->seg_end = t;
    }
    vp->seg_copy = below(2);
    strcpy(vp->container, PICK(containers));
}

/* A random parse result and its name; *skip gets the video-named directories before it. */
static void random_name(struct vpath *vp, char *path, int *skip)
{
    memset(vp, 0, sizeof(*vp));
    vp->stream = below(4) ? -1 : number(0, 2147483647);
    char *p = path;
    *skip = 0;
    for (int dirs = below(3); dirs > 0; dirs--) {
        const char *d = PICK(dir_names);
        *skip += !strcmp(d, "dir.mp4") || !strcmp(d, "n.e.s.t.ts");
        p += sprintf(p, "/%s", d);
    }
    const char *video = PICK(video_names);
    p += sprintf(p, "/%s", video);
    vp->src_len = (size_t)(p - path);
    vp->ext_off = (size_t)(strrchr(path, '.') + 1 - path);
    static const enum vpath_kind kinds[] = {
        VPATH_VIDEO_DIR, VPATH_META,    VPATH_SOURCE,       VPATH_FRAMES_CSV, VPATH_FRAMES_DIR,
        VPATH_FRAME,     VPATH_BATCH,   VPATH_SEGMENTS_DIR, VPATH_SEGMENT,    VPATH_FRAME,
        VPATH_BATCH,     VPATH_SEGMENT, VPATH_STREAMS_DIR,
    };
    do
        vp->kind = PICK(kinds);
    while (vp->stream >= 0 && (vp->kind == VPATH_SOURCE || vp->kind == VPATH_STREAMS_DIR));
    if (vp->kind == VPATH_FRAMES_DIR || vp->kind == VPATH_FRAME || vp->kind == VPATH_BATCH)
        random_frames(vp);
    if (vp->kind == VPATH_SEGMENT)
        random_segment(vp);
    char name[NAME_MAX_LEN];
    if (vpath_check_spell(vp, path, name, sizeof(name)) < 0)
        abort();
    strcpy(path, name);
}

static const char *const edge_numbers[] = {
    "0",
    "00",
    "01",
    "1",
    "-1",
    "+1",
    "2",
    "10",
    "1.",
    ".5",
    "1e3",
    "0x10",
    "10.5",
    "10.50",
    "10.0",
    "0.000000001",
    "0.0000000001",
    "16384",
    "16385",
    "999999999",
    "1000000000",
    "1000000001",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "4294967306",
    "9999999999",
    "99999999999",
    "18446744073709551617",
    "999999.123456789",
    "1000000.000000001",
    " 1",
    "nan",
    "inf",
};
static const char *const tokens[] = {
    "/",     "frames", "frames_", "segments",   "streams", "meta.json",  "source.",
    ".copy", ".mp4",   ".ts",     ".rgb",       "~",       "-",          "x",
    "..",    ".",      "/.vidfs", "stats.json", ".MP4",    "frames.csv", "\xff",
};
static const char alphabet[] = "0123456789.-~x/_aefmnprstvcojgy+ \\";

/* Replaces [at, at + n) of s (len bytes) with r; keeps it within NAME_MAX_LEN. */
static size_t splice(char *s, size_t len, size_t at, size_t n, const char *r)
{
    size_t rn = strlen(r);
    if (len - n + rn >= NAME_MAX_LEN)
        return len;
    memmove(s + at + rn, s + at + n, len - at - n + 1);
    memcpy(s + at, r, rn);
    return len - n + rn;
}

static void mutate(char *s, const char *other)
{
    size_t len = strlen(s);
    for (int m = 1 + below(4); m > 0; m--) {
        size_t at = len ? (size_t)below((int)len + 1) : 0;
        char c[2] = {alphabet[below((int)sizeof(alphabet) - 1)], '\0'};
        switch (below(6)) {
        case 0: /* a character replaced */
            len = splice(s, len, at, at < len, c);
            break;
        case 1: /* a character inserted */
            len = splice(s, len, at, 0, c);
            break;
        case 2: /* a span removed */
            len = splice(s, len, at, (size_t)below((int)(len - at) + 1) % 4, "");
            break;
        case 3: { /* a run of digits replaced by an edge number */
            size_t b = at;
            while (b > 0 && s[b - 1] >= '0' && s[b - 1] <= '9')
                b--;
            size_t e = at + strspn(s + at, "0123456789");
            len = splice(s, len, b, e - b, PICK(edge_numbers));
            break;
        }
        case 4:
            len = splice(s, len, at, 0, PICK(tokens));
            break;
        default: { /* the tail of another name */
            size_t from = (size_t)below((int)strlen(other) + 1);
            char tail[NAME_MAX_LEN];
            snprintf(tail, sizeof(tail), "%s", other + from);
            len = splice(s, len, at, len - at, tail);
        }
        }
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    const char *env = getenv("VIDFS_FUZZ_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 20261203;
    env = getenv("VIDFS_FUZZ_ITERS");
    long iters = env ? strtol(env, NULL, 0) : 200000;
    rng = seed;
    double t0 = now_s();
    long done = 0, accepted = 0, broken = 0, kinds[VPATH_STREAMS_DIR + 1] = {0};
    char prev[NAME_MAX_LEN] = "/v.mp4/frames/0.rgb";
    for (; done < iters && !broken; done++) {
        if (done % 1024 == 0 && now_s() - t0 > TIME_LIMIT_S)
            break;
        struct vpath want, got;
        char path[NAME_MAX_LEN];
        int skip, ret;
        random_name(&want, path, &skip);
        broken += vpath_check(path, exts, skip, &ret, &got);
        if (ret != 0 || memcmp(&want, &got, sizeof(want))) {
            fprintf(stderr, "vpath: \"%s\" (skip %d): parsed as something else (%d)\n", path, skip,
                    ret);
            broken++;
        }
        char mutant[NAME_MAX_LEN];
        strcpy(mutant, path);
        mutate(mutant, prev);
        strcpy(prev, path);
        broken += vpath_check(mutant, exts, below(4) ? skip : below(3), &ret, &got);
        if (ret == 0 && strcmp(mutant, path)) {
            accepted++;
            kinds[got.kind]++;
        }
    }
    printf("seed %" PRIu64 ": %ld names and %ld mutants in %.2f s; %ld mutants parsed "
           "(segments %ld, frames %ld, batches %ld); %ld broken promises\n",
           seed, done, done, now_s() - t0, accepted, kinds[VPATH_SEGMENT], kinds[VPATH_FRAME],
           kinds[VPATH_BATCH], broken);
    /* A fuzzer whose mutants never parse checks nothing: insist that they reach each kind. */
    for (int k = VPATH_VIDEO_DIR; k <= VPATH_STREAMS_DIR; k++)
        if (!kinds[k] && done >= 10000) {
            fprintf(stderr, "vpath: no mutant parsed as kind %d\n", k);
            broken++;
        }
    return broken ? 1 : 0;
}
