"""Frame bytes against FFmpeg's: every format, sampled frames (around
keyframes, open-GOP leading pictures, first/last, random) read in random
order; sizes; png/jpg; batches; scaled views; impossible names; EIO."""

import errno
import os
import subprocess

import numpy as np
import pytest

import util
from util import videos

GOOD = [c.name for c in videos.VIDEOS]
BAD = [c.name for c in videos.CLIPS if c.kind == "bad"]


def frame_path(mnt, name, i, fmt, view="frames"):
    return os.path.join(mnt, name, view, f"{i}.{fmt}")


def compare_samples(mnt, name, fmt, check):
    r = util.ref(name)
    wrong = []
    for i in r.sample_indices():
        try:
            got = util.read_all(frame_path(mnt, name, i, fmt))
        except OSError as e:
            wrong.append(f"frame {i}: {util.errname(e.errno)}")
            continue
        msg = check(i, got, r.frame(fmt, i))
        if msg:
            wrong.append(f"frame {i}: {msg}")
    assert wrong == [], f"{len(wrong)} of {len(r.sample_indices())} sampled frames wrong"


def exact_or_psnr(min_db):
    def check(i, got, want):
        if len(got) != len(want):
            return f"{len(got)} bytes, expected {len(want)}"
        if min_db is None:
            return None if got == want else util.describe_diff(got, want)
        p = util.psnr(got, want)
        return None if p >= min_db else f"PSNR {p:.2f} dB < {min_db}"
    return check


@pytest.mark.parametrize("fmt", ["nv12", "yuv420p", "gray"])
@pytest.mark.parametrize("name", GOOD)
def test_yuv_frames_match_ffmpeg(mnt, name, fmt):
    """Bit-identical for 8-bit 4:2:0 sources; close (converted) for the others."""
    c = videos.clip(name)
    if c.bitexact:
        check = exact_or_psnr(None)
    elif "444" in c.tags and fmt == "gray":
        check = exact_or_psnr(None)  # the Y plane, untouched
    else:
        check = exact_or_psnr(40 if fmt == "gray" else 35)
    compare_samples(mnt, name, fmt, check)


@pytest.mark.parametrize("name", GOOD)
def test_rgb_frames_match_ffmpeg(mnt, name):
    compare_samples(mnt, name, "rgb", exact_or_psnr(40))


@pytest.mark.parametrize("name", GOOD)
def test_rgbp_is_planar_rgb(mnt, name):
    r = util.ref(name)
    compare_samples(mnt, name, "rgbp", exact_or_psnr(40))
    i = r.n // 2
    rgb = util.read_all(frame_path(mnt, name, i, "rgb"))
    rgbp = util.read_all(frame_path(mnt, name, i, "rgbp"))
    assert rgbp == util.rgb_to_planar(rgb, r.w, r.h), "rgbp is not rgb transposed to CHW"


def p010_check(i, got, want):
    if len(got) != len(want):
        return f"{len(got)} bytes, expected {len(want)}"
    p = util.psnr(np.frombuffer(got, "<u2"), np.frombuffer(want, "<u2"), 65535.0)
    return None if p >= 40 else f"PSNR {p:.2f} dB (16-bit words) < 40"


@pytest.mark.parametrize("name", GOOD)
def test_p010_matches_ffmpeg_p010le(mnt, name):
    """Bit-identical for 10-bit sources; close for 8-bit ones (value << 8)."""
    tenbit = "10bit" in videos.clip(name).tags
    compare_samples(mnt, name, "p010", exact_or_psnr(None) if tenbit else p010_check)


@pytest.mark.parametrize("fmt", util.RAW_FORMATS)
@pytest.mark.parametrize("name", ["odd_177x99.webm", "hevc_10bit.mp4", "h264_bframes.mp4"])
def test_frames_are_deterministic(mnt, name, fmt):
    """Reading a frame twice gives the same bytes (no uninitialized memory)."""
    r = util.ref(name)
    wrong = [i for i in range(min(r.n, 12))
             if util.read_all(frame_path(mnt, name, i, fmt))
             != util.read_all(frame_path(mnt, name, i, fmt))]
    assert wrong == []


@pytest.mark.parametrize("fmt", util.RAW_FORMATS)
@pytest.mark.parametrize("name", GOOD)
def test_raw_size_is_exact_before_reading(mnt, name, fmt):
    r = util.ref(name)
    path = frame_path(mnt, name, r.n - 1, fmt)
    size = os.stat(path).st_size
    assert size == r.frame_size(fmt)
    assert len(util.read_all(path)) == size


@pytest.mark.parametrize("fmt", util.IMAGE_FORMATS)
@pytest.mark.parametrize("name", GOOD)
def test_image_size_is_exact_after_open(mnt, name, fmt):
    path = frame_path(mnt, name, util.ref(name).n // 3, fmt)
    data = util.read_all(path)
    assert len(data) > 0
    assert os.stat(path).st_size == len(data)
    with open(path, "rb") as f:
        assert os.fstat(f.fileno()).st_size == len(data)
        assert f.read() == data, "a second open gives other bytes"


@pytest.mark.parametrize("name", GOOD)
def test_png_is_the_rgb_frame(mnt, name):
    r = util.ref(name)
    i = r.sample_indices()[0]
    data = util.read_all(frame_path(mnt, name, i, "png"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h, rgb = util.decode_image(data, ".png")
    assert (w, h) == (r.w, r.h)
    if videos.clip(name).bitexact:
        mine = util.read_all(frame_path(mnt, name, i, "rgb"))
        assert rgb == mine, f"png != {i}.rgb: {util.describe_diff(rgb, mine)}"
    p = util.psnr(rgb, r.frame("rgb", i))
    assert p >= 40, f"png vs ffmpeg rgb24: {p:.2f} dB"


@pytest.mark.parametrize("name", GOOD)
def test_jpg_decodes_close_to_the_frame(mnt, name):
    r = util.ref(name)
    i = r.sample_indices()[1]
    data = util.read_all(frame_path(mnt, name, i, "jpg"))
    assert data[:2] == b"\xff\xd8"
    w, h, rgb = util.decode_image(data, ".jpg")
    assert (w, h) == (r.w, r.h)
    p = util.psnr(rgb, r.frame("rgb", i))
    assert p >= 30, f"jpg vs ffmpeg rgb24: {p:.2f} dB"


def ffmpeg_jpg(r, i, q=3):
    """Frame i of r as `ffmpeg -i SRC -q:v Q F.jpg` writes it."""
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-noautorotate", "-i", r.path, "-map", f"0:{r.stream}",
         "-fps_mode", "passthrough", "-vf", f"select=eq(n\\,{i})", "-frames:v", "1",
         "-q:v", str(q), "-c:v", "mjpeg", "-f", "image2pipe", "-"],
        check=True, capture_output=True).stdout


@pytest.mark.parametrize("name", [c.name for c in videos.VIDEOS if c.bitexact])
def test_jpg_is_what_ffmpeg_writes(mnt, name):
    """jpeg_chroma=420 (the default), 8-bit 4:2:0 sources: ffmpeg's own jpg bytes."""
    r = util.ref(name)
    for i in r.sample_indices(extra_random=0)[:3]:
        got = util.read_all(frame_path(mnt, name, i, "jpg"))
        want = ffmpeg_jpg(r, i)
        assert got == want, f"{i}.jpg: {len(got)} bytes, ffmpeg's {len(want)}"


def test_jpg_444_option(make_mount):
    """jpeg_chroma=444: full-range 4:4:4 from the rgb frame, closer to it than 4:2:0."""
    name = "h264_bframes.mp4"
    r = util.ref(name)
    i = r.sample_indices()[1]
    m = make_mount(util.CORPUS, "jpg444", opts=["jpeg_chroma=444"])
    data = util.read_all(frame_path(m.mnt, name, i, "jpg"))
    w, h, rgb = util.decode_image(data, ".jpg")
    assert (w, h) == (r.w, r.h)
    p444 = util.psnr(rgb, r.frame("rgb", i))
    _, _, rgb420 = util.decode_image(ffmpeg_jpg(r, i), ".jpg")
    p420 = util.psnr(rgb420, r.frame("rgb", i))
    assert p444 >= 30 and p444 > p420, f"4:4:4 {p444:.2f} dB, 4:2:0 {p420:.2f} dB"
    sof = data.index(b"\xff\xc0")  # baseline frame header: 3 components, then per
    sampling = [data[sof + 11 + 3 * c] for c in range(3)]  # (id, HxV, table)
    assert len(set(sampling)) == 1, f"sampling factors {sampling}: not 4:4:4"


BATCH_CLIPS = ["h264_bframes.mp4", "h264_opengop.mkv", "hevc_8bit.mkv", "vp9.webm",
               "odd_177x99.webm", "mpeg4.avi", "hevc_10bit.mp4"]


def batches(n):
    return [(0, 4, 1), (n - 5, n, 1), (3, 12, 1), (0, n, max(1, n // 5)), (1, n - 1, 7),
            (n // 2, n // 2 + 1, 1)]


@pytest.mark.parametrize("fmt", ["nv12", "rgb", "rgbp", "gray", "p010"])
@pytest.mark.parametrize("name", BATCH_CLIPS)
def test_batch_is_the_frames_stacked(mnt, name, fmt):
    r = util.ref(name)
    fs = r.frame_size(fmt)
    wrong = []
    for a, b, s in batches(r.n):
        bname = f"{a}-{b}.{fmt}" if s == 1 else f"{a}-{b}~{s}.{fmt}"
        path = os.path.join(mnt, name, "frames", bname)
        count = len(range(a, b, s))
        try:
            size = os.stat(path).st_size
            data = util.read_all(path)
        except OSError as e:
            wrong.append(f"{bname}: {util.errname(e.errno)}")
            continue
        if size != count * fs or len(data) != count * fs:
            wrong.append(f"{bname}: st_size {size}, read {len(data)}, expected {count * fs}")
            continue
        for k, i in enumerate(range(a, b, s)):
            single = util.read_all(frame_path(mnt, name, i, fmt))
            if data[k * fs:(k + 1) * fs] != single:
                wrong.append(f"{bname}: piece {k} != frames/{i}.{fmt}")
                break
    assert wrong == []


def test_batch_spanning_many_reads_matches_ffmpeg(mnt):
    r = util.ref("h264_720p.mp4")
    data = util.read_all(os.path.join(mnt, "h264_720p.mp4", "frames", f"2-{r.n}.nv12"))
    want = r.raw("nv12")[2 * r.frame_size("nv12"):]
    assert data == want, util.describe_diff(data, want)


def view_cases():
    # (clip, view directory, expected size, format)
    return [
        ("h264_bframes.mp4", "frames_160x120", (160, 120), "rgb"),
        ("h264_bframes.mp4", "frames_160x", (160, 120), "nv12"),
        ("h264_bframes.mp4", "frames_x60", (80, 60), "gray"),
        ("h264_bframes.mp4", "frames_224x224", (224, 224), "rgbp"),
        ("odd_177x99.webm", "frames_88x", (88, util.even_round(99 * 88 / 177)), "rgb"),
        ("odd_177x99.webm", "frames_x50", (util.even_round(177 * 50 / 99), 50), "yuv420p"),
        ("size_200x120.mp4", "frames_100x", (100, 60), "rgb"),
        ("h264_720p.mp4", "frames_320x", (320, 180), "rgb"),
        ("hevc_8bit.mkv", "frames_x72", (128, 72), "nv12"),
    ]


@pytest.mark.parametrize("name,view,size,fmt", view_cases(),
                         ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in view_cases()])
def test_scaled_view_matches_ffmpeg_scale(mnt, name, view, size, fmt):
    r = util.ref(name)
    fs = util.frame_size(fmt, *size)
    wrong = []
    for i in r.sample_indices(extra_random=1)[:6]:
        path = frame_path(mnt, name, i, fmt, view)
        try:
            st = os.stat(path).st_size
            got = util.read_all(path)
        except OSError as e:
            wrong.append(f"{view}/{i}.{fmt}: {util.errname(e.errno)}")
            continue
        if st != fs or len(got) != fs:
            wrong.append(f"{view}/{i}.{fmt}: st_size {st}, read {len(got)}, expected {fs} "
                         f"({size[0]}x{size[1]})")
            continue
        p = util.psnr(got, r.frame(fmt, i, size))
        if p < 35:
            wrong.append(f"{view}/{i}.{fmt}: PSNR {p:.2f} dB vs ffmpeg scale")
    assert wrong == []


def test_scaled_batch(mnt):
    r = util.ref("h264_bframes.mp4")
    data = util.read_all(os.path.join(mnt, "h264_bframes.mp4", "frames_160x120", "0-4.rgb"))
    want = b"".join(r.frame("rgb", i, (160, 120)) for i in range(4))
    assert len(data) == len(want)
    assert util.psnr(data, want) >= 35


def impossible_names(n):
    return ["01x.rgb", "-1.rgb", "+1.rgb", " 1.rgb", "1 .rgb", "0x1.rgb", "1e1.rgb",
            "1.5.rgb", "abc.rgb", ".rgb", "0.", "0", "0.xyz", "0.RGBX", "0.rgb.png",
            f"{n}.rgb", f"{n}.nv12", f"{n + 100}.png", "99999999999999999999999.rgb",
            "18446744073709551617.nv12", "5-3.rgb", "3-3~0.rgb", "0-4~0.rgb", "0-4~-1.rgb",
            f"0-{n + 1}.rgb", f"{n}-{n + 2}.rgb", "0-4~.rgb", "-4.rgb", "0--4.rgb", "0-4.xyz",
            "0-4~1.rgb", "4294967296.rgb", "0-4294967297.rgb", "4294967296-4294967297.rgb"]


def test_impossible_frame_names_are_enoent(mnt):
    n = util.ref("h264_bframes.mp4").n
    wrong = []
    for bad in impossible_names(n):
        path = os.path.join(mnt, "h264_bframes.mp4", "frames", bad)
        e = util.errno_of(os.stat, path)
        e2 = util.errno_of(util.read_all, path)
        if e != errno.ENOENT or e2 != errno.ENOENT:
            wrong.append(f"{bad!r}: stat {util.errname(e)}, open {util.errname(e2)}")
    assert wrong == []


def test_impossible_names_in_a_view_are_enoent(mnt):
    n = util.ref("h264_bframes.mp4").n
    for bad in [f"{n}.rgb", "01x.rgb", "5-3.rgb", "0.xyz"]:
        path = os.path.join(mnt, "h264_bframes.mp4", "frames_160x120", bad)
        assert util.errno_of(os.stat, path) == errno.ENOENT, bad


@pytest.mark.parametrize("fmt", ["nv12", "rgb", "png"])
@pytest.mark.parametrize("name", BAD)
def test_frames_of_unreadable_source_are_eio(mnt, name, fmt):
    e = util.errno_of(util.read_all, frame_path(mnt, name, 0, fmt))
    assert e == errno.EIO, util.errname(e)


def test_frames_of_audio_only_file_do_not_exist(mnt):
    e = util.errno_of(util.read_all, frame_path(mnt, "audio.mp4", 0, "nv12"))
    assert e in (errno.ENOENT, errno.EIO), util.errname(e)


def test_corrupt_source_serves_what_it_can(mnt):
    """Damaged data mid-file: the frame count is the index's, the first GOP is
    intact, and every listed frame reads fully or fails cleanly with EIO."""
    r = util.ref("corrupt.ts")
    d = os.path.join(mnt, "corrupt.ts")
    m = util.read_all(os.path.join(d, "meta.json"))
    import json
    n = json.loads(m)["num_frames"]
    assert len(os.listdir(os.path.join(d, "frames"))) == n
    assert abs(n - r.n) <= max(3, r.n // 10), f"{n} frames, ffmpeg decodes {r.n}"
    got = util.read_all(frame_path(mnt, "corrupt.ts", 0, "nv12"))
    assert got == r.frame("nv12", 0), util.describe_diff(got, r.frame("nv12", 0))
    fs = r.frame_size("nv12")
    for i in range(n):
        try:
            assert len(util.read_all(frame_path(mnt, "corrupt.ts", i, "nv12"))) == fs, i
        except OSError as e:
            assert e.errno == errno.EIO, f"frame {i}: {util.errname(e.errno)}"


def test_sequential_read_of_every_frame(mnt):
    """Frames 0, 1, 2 ... in order (the read-ahead path) equal FFmpeg's output."""
    r = util.ref("h264_bframes.mp4")
    got = b"".join(util.read_all(frame_path(mnt, "h264_bframes.mp4", i, "nv12"))
                   for i in range(r.n))
    assert got == r.raw("nv12"), util.describe_diff(got, r.raw("nv12"))


@pytest.mark.parametrize("name", ["hevc_8bit.mkv", "h264_opengop.mkv", "vp9.webm", "av1.mkv"])
def test_backward_read_of_every_frame(mnt, name):
    """Last frame to first: every read seeks back."""
    r = util.ref(name)
    wrong = [i for i in reversed(range(r.n))
             if util.read_all(frame_path(mnt, name, i, "gray")) != r.frame("gray", i)]
    assert wrong == []
