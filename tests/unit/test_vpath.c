/* Path grammar: every name the contract lists parses to what it names; every name that
 * cannot exist is -ENOENT. */
#include "vpath.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *exts = "mp4,mkv,webm,ts";
#include "check.h"

static struct vpath parse_ok(const char *path)
{
    struct vpath vp;
    int ret = vpath_parse(path, exts, 0, &vp);
    CHECK(ret == 0);
    return vp;
}

static void enoent(const char *path)
{
    struct vpath vp;
    CHECK(vpath_parse(path, exts, 0, &vp) == -ENOENT);
}

static void test_tree(void)
{
    const char *path = "/";
    struct vpath vp = parse_ok(path);
    CHECK(vp.kind == VPATH_PLAIN && vp.src_len == 1);
    path = "/labels.csv";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_PLAIN);
    path = "/clips/run 1.mp4";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_VIDEO_DIR && vp.src_len == strlen(path) && vp.stream == -1);
    path = "/clips/run 1.MP4/meta.json";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_META && vp.src_len == strlen("/clips/run 1.MP4"));
    path = "/a.mkv/source.mkv";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_SOURCE);
    enoent("/a.mkv/source.mp4");
    path = "/a.mkv/frames.csv";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_FRAMES_CSV);
    path = "/.vidfs/stats.json";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_STATS);
    enoent("/a.mp4/nothing");
    enoent("/a.mp4/meta.json/x");
}

static void test_frames(void)
{
    const char *path = "/v.mp4/frames/120.rgb";
    struct vpath vp = parse_ok(path);
    CHECK(vp.kind == VPATH_FRAME && vp.first == 120 && vp.last == 121 &&
          vp.format == FORMAT_RGB && vpath_count(&vp) == 1);
    path = "/v.mp4/frames/0.nv12";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_FRAME && vp.first == 0 && vp.format == FORMAT_NV12);
    path = "/v.mp4/frames/0-16.rgb";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_BATCH && vp.first == 0 && vp.last == 16 && vpath_count(&vp) == 16);
    path = "/v.mp4/frames/0-160~10.rgbp";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_BATCH && vp.step == 10 && vpath_count(&vp) == 16);
    path = "/v.mp4/frames/3-10~3.gray";
    vp = parse_ok(path);
    CHECK(vpath_count(&vp) == 3); /* 3, 6, 9 */
    path = "/v.mp4/frames_224x224/5.png";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_FRAME && vp.view_w == 224 && vp.view_h == 224);
    path = "/v.mp4/frames_320x/5.jpg";
    vp = parse_ok(path);
    CHECK(vp.view_w == 320 && vp.view_h == 0 && vp.format == FORMAT_JPG);
    path = "/v.mp4/frames_x240";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_FRAMES_DIR && vp.view_w == 0 && vp.view_h == 240);
    const char *bad[] = {
        "/v.mp4/frames/01.rgb",  "/v.mp4/frames/-1.rgb",    "/v.mp4/frames/1x.rgb",
        "/v.mp4/frames/1.bmp",   "/v.mp4/frames/1",         "/v.mp4/frames/.rgb",
        "/v.mp4/frames/5-3.rgb", "/v.mp4/frames/3-3.rgb",   "/v.mp4/frames/0-4~0.rgb",
        "/v.mp4/frames/+1.rgb",  "/v.mp4/frames/1.5.rgb",   "/v.mp4/frames_x/1.rgb",
        "/v.mp4/frames_0x10",    "/v.mp4/frames_10x0",      "/v.mp4/frames_axb",
        "/v.mp4/frames/99999999999.rgb", "/v.mp4/frames/1.rgb/x", "/v.mp4/frames_99999x1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        path = bad[i];
        enoent(path);
    }
    /* A step of 1 is the batch without one: one name each. */
    enoent("/v.mp4/frames/0-16~1.rgb");
    enoent("/v.mp4/frames/4294967296.rgb");
    enoent("/v.mp4/frames/0-4294967297.rgb");
    enoent("/v.mp4/streams/4294967296/meta.json");
}

static void test_segments(void)
{
    const char *path = "/v.mp4/segments/10-25.mp4";
    struct vpath vp = parse_ok(path);
    CHECK(vp.kind == VPATH_SEGMENT && vp.seg_start == 10 && vp.seg_end == 25 && !vp.seg_copy &&
          !strcmp(vp.container, "mp4"));
    path = "/v.mp4/segments/10.5-12.mkv";
    vp = parse_ok(path);
    CHECK(vp.seg_start == 10.5 && vp.seg_end == 12 && !strcmp(vp.container, "mkv"));
    path = "/v.mp4/segments/10-25.copy.mp4";
    vp = parse_ok(path);
    CHECK(vp.seg_copy && vp.seg_start == 10 && vp.seg_end == 25);
    path = "/v.mp4/segments/0.25-0.5.ts";
    vp = parse_ok(path);
    CHECK(vp.seg_start == 0.25 && vp.seg_end == 0.5);
    enoent("/v.mp4/segments/25-10.mp4");
    enoent("/v.mp4/segments/10-10.mp4");
    enoent("/v.mp4/segments/10-25.avi");
    enoent("/v.mp4/segments/10-25");
    enoent("/v.mp4/segments/a-25.mp4");
    enoent("/v.mp4/segments/10-.mp4");
    enoent("/v.mp4/segments/1.-2.mp4");
    /* Ten digits once wrapped through an int: 4294967306 s was served as 10 s. */
    enoent("/v.mp4/segments/4294967306-4294967307.mp4");
    enoent("/v.mp4/segments/0-4294967297.mp4");
    enoent("/v.mp4/segments/1000000000.5-1000000001.mp4");
    path = "/v.mp4/segments/999999999-1000000000.mp4";
    vp = parse_ok(path);
    CHECK(vp.seg_start == 999999999 && vp.seg_end == 1e9);
    /* One spelling: no trailing zero after the point, no point without digits after it. */
    enoent("/v.mp4/segments/10.50-12.mp4");
    enoent("/v.mp4/segments/10-12.0.mp4");
    enoent("/v.mp4/segments/0.000-100.0.mkv");
    enoent("/v.mp4/segments/00.5-1.mp4");
    /* The seconds are the double nearest the decimal, as strtod gives it. */
    path = "/v.mp4/segments/0.3-0.7.mp4";
    vp = parse_ok(path);
    CHECK(vp.seg_start == 0.3 && vp.seg_end == 0.7);
    path = "/v.mp4/segments/123.456789-999999.123456789.mp4";
    vp = parse_ok(path);
    CHECK(vp.seg_start == 123.456789 && vp.seg_end == 999999.123456789);
    /* More significant digits than a double keeps would give two names one value. */
    enoent("/v.mp4/segments/0-1000000.000000001.mp4");
    enoent("/v.mp4/segments/0.0000000001-1.mp4");
}

static void test_streams(void)
{
    const char *path = "/v.mkv/streams/3/frames/2.nv12";
    struct vpath vp = parse_ok(path);
    CHECK(vp.kind == VPATH_FRAME && vp.stream == 3 && vp.first == 2);
    path = "/v.mkv/streams/3";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_VIDEO_DIR && vp.stream == 3);
    path = "/v.mkv/streams";
    vp = parse_ok(path);
    CHECK(vp.kind == VPATH_STREAMS_DIR);
    enoent("/v.mkv/streams/3/source.mkv");
    enoent("/v.mkv/streams/3/streams/1");
    enoent("/v.mkv/streams/x");
}

static void test_skip(void)
{
    /* A directory named like a video: the caller retries with skip = 1. */
    const char *path = "/dir.mp4/clip.mkv/meta.json";
    struct vpath vp;
    CHECK(vpath_parse(path, exts, 1, &vp) == 0);
    CHECK(vp.kind == VPATH_META && vp.src_len == strlen("/dir.mp4/clip.mkv"));
    path = "/dir.mp4/notes.txt";
    CHECK(vpath_parse(path, exts, 1, &vp) == 0 && vp.kind == VPATH_PLAIN);
}

int main(void)
{
    test_tree();
    test_frames();
    test_segments();
    test_streams();
    test_skip();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
