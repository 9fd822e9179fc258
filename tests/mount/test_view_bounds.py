"""Hostile view names (issue 13, point 1): views whose computed side would overflow,
whose frame would take gigabytes a handle, or that swscale cannot make. Each name
either is what it says (st_size bytes, read in full, ffmpeg's scale of the frame) or
does not exist (ENOENT at stat and at open) -- never EIO, never a crash of the mount."""

import errno
import os
import shutil
import subprocess

import pytest

import util
from conftest import start_mount

# README, formats: a view has at most 16384 pixels on a side and at most 2^25 pixels
MAX_SIDE = 16384
MAX_PIXELS = 1 << 25


def ffv1(out, size, frames=2):
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=5", "-frames:v", str(frames), "-c:v", "ffv1",
                    "-pix_fmt", "yuv420p", out], check=True)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, corpus, vidfs_bin, workdir):
    """A mount of odd-sized sources: wide.mkv 300000x2, tall.mkv 2x100000, small.mp4
    (the corpus's 320x240 h264_bframes.mp4); and where ffmpeg's references go."""
    src = tmp_path_factory.mktemp("hostile-src")
    ffv1(str(src / "wide.mkv"), "300000x2")
    ffv1(str(src / "tall.mkv"), "2x100000")
    shutil.copy(os.path.join(corpus, "h264_bframes.mp4"), src / "small.mp4")
    m = start_mount(str(src), workdir, "hostile")
    yield m, str(src), str(tmp_path_factory.mktemp("hostile-ref"))
    m.stop()


def outcome(path):
    """('ok', st_size, bytes) or ('errno', stat's errno or None, open's or read's)."""
    try:
        st = os.stat(path).st_size
    except OSError as e:
        return "errno", e.errno, util.errno_of(util.read_all, path)
    try:
        return "ok", st, util.read_all(path)
    except OSError as e:
        return "errno", None, e.errno


def describe(got):
    if got[0] == "ok":
        return f"st_size {got[1]}, read {len(got[2])} bytes"
    return f"stat {util.errname(got[1])}, open {util.errname(got[2])}"


ABSENT = [
    # the computed side is 33.6 million: the crash in sws_scale
    ("wide.mkv", "frames_x224", 0, "yuv420p"),
    ("wide.mkv", "frames_x224", 1, "rgb"),
    ("tall.mkv", "frames_224x", 1, "nv12"),
    # 21846x16384: 1 GiB of rgb a handle; gray's size overflowed an int
    ("small.mp4", "frames_x16384", 0, "gray"),
    ("small.mp4", "frames_x16384", 3, "rgb"),
    ("small.mp4", "frames_16384x", 0, "nv12"),
    # both sides named, too many pixels
    ("small.mp4", "frames_16384x16384", 0, "gray"),
    ("small.mp4", "frames_8192x4097", 0, "gray"),
    # stretched too far: swscale cannot make some of these (320 -> 2 with 240 -> 16384)
    ("small.mp4", "frames_2x16384", 0, "nv12"),
    ("small.mp4", "frames_4x6000", 0, "rgb"),
    ("small.mp4", "frames_16384x2", 0, "gray"),
    ("wide.mkv", "frames_16384x", 1, "gray"),  # 16384x2: the computed side is at least 2
    ("tall.mkv", "frames_x4096", 0, "rgb"),
    ("small.mp4", "frames_16385x2", 0, "gray"),
]


@pytest.mark.parametrize("clip,view,i,fmt", ABSENT, ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in ABSENT])
def test_views_out_of_bounds_do_not_exist(hostile, clip, view, i, fmt):
    m, _, _ = hostile
    got = outcome(os.path.join(m.mnt, clip, view, f"{i}.{fmt}"))
    assert got == ("errno", errno.ENOENT, errno.ENOENT), describe(got)
    assert util.errno_of(os.stat, os.path.join(m.mnt, clip, view)) == errno.ENOENT


PRESENT = [
    # (clip, view, frame, format, the size the file must have)
    ("small.mp4", "frames_1x1", 0, "rgb", (1, 1)),
    ("small.mp4", "frames_1x1", 1, "nv12", (1, 1)),
    ("small.mp4", "frames_3x", 2, "yuv420p", (3, 2)),  # computed side: even, at least 2
    ("small.mp4", "frames_x1", 2, "rgb", (2, 1)),
    ("wide.mkv", "frames", 1, "nv12", (300000, 2)),
    ("wide.mkv", "frames_16384x1", 0, "gray", (16384, 1)),
    ("tall.mkv", "frames_2x16384", 1, "nv12", (2, 16384)),
    ("tall.mkv", "frames_1x8192", 0, "rgbp", (1, 8192)),
]


@pytest.mark.parametrize("clip,view,i,fmt,size", PRESENT,
                         ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in PRESENT])
def test_views_in_bounds_are_what_they_say(hostile, clip, view, i, fmt, size):
    m, src, ref_dir = hostile
    got = outcome(os.path.join(m.mnt, clip, view, f"{i}.{fmt}"))
    assert got[0] == "ok", describe(got)
    fs = util.frame_size(fmt, *size)
    assert (got[1], len(got[2])) == (fs, fs), f"not {size[0]}x{size[1]}"
    r = util.Ref(os.path.join(src, clip), ref_dir=ref_dir)
    want = r.frame(fmt, i, None if view == "frames" else size)
    if view == "frames":
        assert got[2] == want, util.describe_diff(got[2], want)
    else:
        assert util.psnr(got[2], want) >= 35, util.describe_diff(got[2], want)


def test_largest_view_has_exact_size(hostile):
    """The largest view allowed: stat only (96 MiB of rgb)."""
    m, _, _ = hostile
    for view, fmt in [("frames_8192x4096", "rgb"), ("frames_x4096", "gray"),
                      ("frames_16384x2048", "p010")]:
        w, h = (int(v) if v else None for v in view[7:].split("x"))
        w = w or util.even_round(h * 320 / 240)
        st = os.stat(os.path.join(m.mnt, "small.mp4", view, f"0.{fmt}"))
        assert st.st_size == util.frame_size(fmt, w, h), view
