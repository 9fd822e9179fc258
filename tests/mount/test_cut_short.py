"""A file cut short (issue 13, point 8): an mp4 with its index at the front promises
frames the file no longer holds, and the last packet it still holds is partial. The
frame count is what ffmpeg decodes, and every listed frame reads, in any order (the last
one first), with ffmpeg's bytes (no EIO hole, no frame shifted by one). A rawvideo AVI
whose header claims more pixels than its packets hold has no frame: an error."""

import errno
import json
import os
import random
import struct
import subprocess

import pytest

import util


@pytest.fixture(scope="module")
def faststart(tmp_path_factory):
    """320x240 H.264 with B-frames, 4 s at 25 fps, moov at the front."""
    d = tmp_path_factory.mktemp("cut-full")
    out = str(d / "full.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=25:duration=4", "-c:v", "libx264",
                    "-preset", "ultrafast", "-bf", "3", "-g", "25", "-pix_fmt", "yuv420p",
                    "-movflags", "+faststart", out], check=True)
    with open(out, "rb") as f:
        return f.read()


@pytest.mark.parametrize("fraction", [0.35, 0.6, 0.85])
def test_cut_short_mp4_lists_what_decodes_and_reads_it_all(faststart, fraction, make_mount,
                                                          tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "cut.mp4", "wb") as f:
        f.write(faststart[: int(len(faststart) * fraction)])
    r = util.Ref(str(src / "cut.mp4"), ref_dir=str(tmp_path / "ref"))
    m = make_mount(str(src), f"cut-{fraction}")
    d = os.path.join(m.mnt, "cut.mp4")
    n = json.loads(util.read_all(os.path.join(d, "meta.json")))["num_frames"]
    assert (n, len(os.listdir(os.path.join(d, "frames")))) == (r.n, r.n), \
        f"meta.json {n}, ffmpeg decodes {r.n}"
    order = list(range(n - 1))
    random.Random(n).shuffle(order)
    order = [n - 1] + order
    wrong = []
    for i in order:
        try:
            got = util.read_all(os.path.join(d, "frames", f"{i}.nv12"))
        except OSError as e:
            wrong.append(f"frame {i}: {util.errname(e.errno)}")
            continue
        if got != r.frame("nv12", i):
            wrong.append(f"frame {i}: {util.describe_diff(got, r.frame('nv12', i))}")
    assert wrong == []


def test_rawvideo_claiming_a_larger_size_is_an_error(make_mount, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    avi = str(src / "big.avi")
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=64x64:rate=5", "-frames:v", "3", "-c:v", "rawvideo",
                    "-pix_fmt", "yuv420p", avi], check=True)
    with open(avi, "rb") as f:
        b = bytearray(f.read())
    # 16000x16000 in the main header (avih: dwWidth, dwHeight) and the stream's
    # BITMAPINFOHEADER (strf: biWidth, biHeight); the packets keep 64x64's 6144 bytes
    struct.pack_into("<II", b, b.find(b"avih") + 8 + 32, 16000, 16000)
    struct.pack_into("<ii", b, b.find(b"strf") + 8 + 4, 16000, 16000)
    with open(avi, "wb") as f:
        f.write(b)
    m = make_mount(str(src), "big-avi")
    meta = json.loads(util.read_all(os.path.join(m.mnt, "big.avi", "meta.json")))
    assert "error" in meta, meta
    e = util.errno_of(util.read_all, os.path.join(m.mnt, "big.avi", "frames", "0.gray"))
    assert e == errno.EIO, util.errname(e)
