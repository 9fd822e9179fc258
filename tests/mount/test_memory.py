"""Memory (issue 13, point 2): the daemon's resident memory stays within cache_mb plus the
bound README states (Memory), whatever is opened: ten handles of the largest view of a
small video held open and read, segments of a 1080p video transcoded at once, and
readers of full frames, all together. The peak is the kernel's (VmHWM), so a short
spike between two samples counts too."""

import json
import os
import random
import shutil
import subprocess
import threading

import pytest

import util

CACHE_MB = 64
HANDLES = 10
# The largest view of a 4:3 source within 2^25 pixels: 6668x5000, 100 MB a frame in rgb.
VIEW = "frames_x5000"


def bound_mb(mnt):
    """README, Memory: cache_mb + 256 MiB (frame files being read) + 128 MiB per pooled
    decoder + 384 MiB per transcode at once (one below 16 cores, two below 32, else four)
    + 128 MiB, for sources up to 1080p."""
    with open(os.path.join(mnt, ".vidfs", "stats.json")) as f:
        decoders = json.load(f)["decoders"]["bound"]
    cores = os.cpu_count()
    transcodes = 4 if cores >= 32 else 2 if cores >= 16 else 1
    return CACHE_MB + 256 + 128 * decoders + 384 * transcodes + 128


def peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


@pytest.fixture(scope="module")
def memsrc(tmp_path_factory, corpus):
    """small.mp4 (the corpus's 320x240 h264_bframes.mp4) and hd.mp4, 2 s of 1080p25."""
    src = tmp_path_factory.mktemp("memory-src")
    shutil.copy(os.path.join(corpus, "h264_bframes.mp4"), src / "small.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1920x1080:rate=25", "-t", "2", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
                    str(src / "hd.mp4")], check=True)
    return str(src)


def run_all(jobs):
    """Runs each job in a thread; the first exception any raised, re-raised here."""
    errors = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:  # noqa: B902 -- handed to the test's thread
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(fn,)) for fn in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def test_rss_bounded_by_cache_mb(memsrc, make_mount):
    m = make_mount(memsrc, "memory", [f"cache_mb={CACHE_MB}"])
    small = os.path.join(m.mnt, "small.mp4")
    hd = os.path.join(m.mnt, "hd.mp4")
    size = os.stat(os.path.join(small, VIEW, "0.rgb")).st_size
    assert size == util.frame_size("rgb", util.even_round(320 * 5000 / 240), 5000)

    # Ten handles opened and read a little: each has made its whole frame.
    fds = [os.open(os.path.join(small, VIEW, f"{i}.rgb"), os.O_RDONLY) for i in range(HANDLES)]
    try:
        heads = [os.pread(fd, 1 << 20, 0) for fd in fds]
        assert all(len(h) == 1 << 20 for h in heads)

        def read_all_handles():
            # one after another: at once, ten 100 MB frames would be made again and again
            for fd in fds:
                got = 1 << 20
                while got < size:
                    n = len(os.pread(fd, 1 << 20, got))
                    assert n, f"end of file at {got} of {size}"
                    got += n
            # made again, its buffer taken for another handle since: the same bytes
            for i in (0, HANDLES - 1):
                assert os.pread(fds[i], 1 << 20, 0) == heads[i], f"{i}.rgb changed"

        segs = [f"{a / 10:g}-{(a + 8) / 10:g}.mp4" for a in range(0, 12, 2)]

        def transcode(name):
            def job():
                data = util.read_all(os.path.join(hd, "segments", name))
                assert len(data) > 1000, f"segment {name}: {len(data)} bytes"
            return job

        def frames(seed):
            def job():
                rnd = random.Random(seed)
                for _ in range(6):
                    n = rnd.randrange(50)
                    data = util.read_all(os.path.join(hd, "frames", f"{n}.rgb"))
                    assert len(data) == util.frame_size("rgb", 1920, 1080)
            return job

        run_all([read_all_handles] + [transcode(s) for s in segs] +
                [frames(s) for s in range(8)])
        peak_mb = peak_kib(m.proc.pid) / 1024
    finally:
        for fd in fds:
            os.close(fd)
    bound = bound_mb(m.mnt)
    print(f"peak RSS {peak_mb:.0f} MiB, bound {bound} MiB")
    assert peak_mb <= bound, f"peak RSS {peak_mb:.0f} MiB over the README's bound: {bound} MiB"
