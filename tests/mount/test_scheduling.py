"""Decoder scheduling seen from readers: a batch keeps its decoder from its first frame to
its last, more readers than decoders do not decode GOPs twice, and a reader that stops
half-way through a batch does not keep a decoder from the others."""
import concurrent.futures
import json
import os
import random
import shutil
import subprocess
import time

import util

W, H = 320, 180
FRAMES = 150  # 5 s at 30 fps, GOP 60 with 2 B-frames, as loaders meet them


def stats(m):
    with open(os.path.join(m.mnt, ".vidfs", "stats.json")) as f:
        return json.load(f)


def decoded(s):
    return s["frames_decoded"]["cpu"] + s["frames_decoded"].get("nvdec", 0)


def make_videos(workdir, name, n):
    src = util.fresh_source(workdir, name)
    first = os.path.join(src, "v0.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={W}x{H}:rate=30", "-frames:v", str(FRAMES),
                    "-c:v", "libx264", "-g", "60", "-bf", "2", "-pix_fmt", "yuv420p", first],
                   check=True)
    for i in range(1, n):  # distinct inodes: distinct media, as distinct videos would be
        shutil.copyfile(first, os.path.join(src, f"v{i}.mp4"))
    return src


def test_more_readers_than_decoders_decode_each_gop_once(make_mount, workdir):
    """8 readers of random 16-frame clips over 2 decoders at once: a clip is never taken over
    half-way, so frames decoded stay near the frames a clip needs (GOP 60: at most
    about 2.4 decodes for each frame served), and every clip has ffmpeg's bytes."""
    src = make_videos(workdir, "sched-many", 8)
    m = make_mount(src, "sched-many", ["pool_size=2", "readahead=0"])
    ref = util.ref(os.path.join(src, "v0.mp4"))
    fsize = ref.frame_size("nv12")
    rnd = random.Random(7)
    clips = [(f"v{rnd.randrange(8)}.mp4", rnd.randrange(FRAMES - 16)) for _ in range(48)]

    def read(clip):
        name, a = clip
        return clip, util.read_all(os.path.join(m.mnt, name, "frames", f"{a}-{a + 16}.nv12"))

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(read, clips))
    for (name, a), data in got:
        assert len(data) == 16 * fsize
        for k in (0, 15):
            assert data[k * fsize:(k + 1) * fsize] == ref.frame("nv12", a + k), (name, a, k)
    s = stats(m)
    assert s["decoders"]["created"] <= 4  # 2 decoding at once, and 2 more parked at most
    assert decoded(s) <= 3.0 * 16 * len(clips), s  # GOP lead-in included; shared decoders gave 6.3


def test_a_reader_that_stops_half_way_does_not_hold_the_decoder(make_mount, workdir):
    """With one decoder, a batch read half-way and left open must not keep another
    file's reader waiting: the decoder is the batch's only while it reads."""
    src = make_videos(workdir, "sched-pause", 2)
    m = make_mount(src, "sched-pause", ["pool_size=1", "readahead=0"])
    ref = util.ref(os.path.join(src, "v0.mp4"))
    fsize = ref.frame_size("nv12")
    with open(os.path.join(m.mnt, "v0.mp4", "frames", "0-40.nv12"), "rb", buffering=0) as f:
        assert f.read(fsize) == ref.frame("nv12", 0)
        t = time.monotonic()
        other = util.read_all(os.path.join(m.mnt, "v1.mp4", "frames", "70.nv12"))
        assert time.monotonic() - t < 10
        assert other == ref.frame("nv12", 70)
        f.seek(30 * fsize)
        assert f.read(fsize) == ref.frame("nv12", 30)


def test_stats_show_the_bound_and_decodes_per_frame(make_mount, workdir):
    src = make_videos(workdir, "sched-stats", 1)
    m = make_mount(src, "sched-stats", ["pool_size=3"])
    util.read_all(os.path.join(m.mnt, "v0.mp4", "frames", "0-16.nv12"))
    s = stats(m)
    assert s["decoders"]["bound"] == 3
    assert s["decodes_per_frame_served"] >= 1.0
    m2 = make_mount(src, "sched-auto")
    assert stats(m2)["decoders"]["bound"] >= os.cpu_count()
