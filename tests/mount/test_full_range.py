"""Full-range sources (issue 13, point 10): raw YUV files are limited range whatever the
source's range (DESIGN.md), as ffmpeg writes them: nv12 equals `ffmpeg -pix_fmt nv12`
byte for byte, gray is its Y plane, yuv420p its planes (= `ffmpeg -vf scale=out_range=tv
-pix_fmt yuv420p`; plain `-pix_fmt yuv420p` is the same for yuvj sources, but passes a
yuv420p stream tagged full range through untouched), p010 is close to ffmpeg's p010le;
rgb keeps matching ffmpeg's rgb24."""

import os
import random
import subprocess

import numpy as np
import pytest

import util

FFMPEG = ["ffmpeg", "-v", "error", "-nostdin", "-y"]

# name: (lavfi size, encoder arguments). MJPEG decodes to yuvj420p (yuvj422p from many
# webcams); x264 fed yuvj420p writes the full-range flag and decodes to yuvj420p; VP9
# tagged full range decodes to yuv420p with color_range pc.
SOURCES = {
    "mjpeg.avi": ("320x240", ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"]),
    "mjpeg_odd.avi": ("177x99", ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"]),
    "mjpeg_422.avi": ("320x240", ["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj422p"]),
    "h264_pc.mp4": ("320x240", ["-c:v", "libx264", "-preset", "veryfast", "-g", "10",
                                "-pix_fmt", "yuvj420p", "-color_range", "pc"]),
    "vp9_pc.webm": ("240x160", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-g", "10",
                                "-pix_fmt", "yuv420p", "-color_range", "pc"]),
}


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    d = tmp_path_factory.mktemp("full-range")
    for name, (size, args) in SOURCES.items():
        subprocess.run(FFMPEG + ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration=1"]
                       + args + [str(d / name)], check=True)
        info = util.probe(str(d / name))["streams"][0]
        assert info["color_range"] == "pc", (name, info)
    return d


def ffmpeg_raw(path, pix, vf=None):
    cmd = FFMPEG + ["-i", path, "-fps_mode", "passthrough"] + (["-vf", vf] if vf else [])
    return subprocess.run(cmd + ["-f", "rawvideo", "-pix_fmt", pix, "-"], check=True,
                          capture_output=True).stdout


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_full_range_yuv_files_are_ffmpeg_limited_range(src, name, make_mount, tmp_path):
    path = str(src / name)
    r = util.Ref(path, ref_dir=str(tmp_path / "ref"))
    w, h = r.w, r.h
    luma, fs = w * h, util.frame_size("nv12", w, h)
    want_nv12 = r.raw("nv12")
    want_yuv = ffmpeg_raw(path, "yuv420p", "scale=out_range=tv")
    assert len(want_yuv) == len(want_nv12) == r.n * fs
    m = make_mount(str(src), "full-range")
    order = list(range(r.n))
    random.Random(r.n).shuffle(order)
    wrong = []
    for i in order[:8]:
        nv12 = want_nv12[i * fs:(i + 1) * fs]
        want = {"nv12": nv12, "gray": nv12[:luma], "yuv420p": want_yuv[i * fs:(i + 1) * fs]}
        for fmt, b in want.items():
            got = util.read_all(os.path.join(m.mnt, name, "frames", f"{i}.{fmt}"))
            if got != b:
                wrong.append(f"{i}.{fmt}: {util.describe_diff(got, b)}")
        got = util.read_all(os.path.join(m.mnt, name, "frames", f"{i}.p010"))
        p = util.psnr(np.frombuffer(got, "<u2"), np.frombuffer(r.frame("p010", i), "<u2"),
                      65535.0)
        if p < 40:
            wrong.append(f"{i}.p010: PSNR {p:.2f} dB against ffmpeg's p010le")
        p = util.psnr(util.read_all(os.path.join(m.mnt, name, "frames", f"{i}.rgb")),
                      r.frame("rgb", i))
        if p < 40:
            wrong.append(f"{i}.rgb: PSNR {p:.2f} dB against ffmpeg's rgb24")
    assert wrong == []


def test_full_range_view_is_limited_range(src, make_mount, tmp_path):
    """A scaled view converts the range in the same step, as ffmpeg's scale filter does."""
    path = str(src / "mjpeg.avi")
    r = util.Ref(path, ref_dir=str(tmp_path / "ref"))
    m = make_mount(str(src), "full-range-view")
    got = util.read_all(os.path.join(m.mnt, "mjpeg.avi", "frames_160x120", "3.nv12"))
    want = r.frame("nv12", 3, (160, 120))
    assert util.psnr(got, want) >= 40, util.describe_diff(got, want)


@pytest.mark.parametrize("name", ["mjpeg.avi", "mjpeg_odd.avi", "h264_pc.mp4", "vp9_pc.webm"])
def test_full_range_jpg_is_what_ffmpeg_writes(src, name, make_mount):
    """A full-range 4:2:0 source's jpg is its frame as it is, as `ffmpeg -i F -q:v 3
    N.jpg` writes it (no round trip through limited range)."""
    path = str(src / name)
    m = make_mount(str(src), "full-range-jpg")
    for i in (0, 7):
        got = util.read_all(os.path.join(m.mnt, name, "frames", f"{i}.jpg"))
        want = subprocess.run(FFMPEG + ["-i", path, "-fps_mode", "passthrough", "-vf",
                                        f"select=eq(n\\,{i})", "-frames:v", "1", "-q:v", "3",
                                        "-c:v", "mjpeg", "-f", "image2pipe", "-"],
                              check=True, capture_output=True).stdout
        assert got == want, f"{name} {i}.jpg: {len(got)} bytes, ffmpeg's {len(want)}"
