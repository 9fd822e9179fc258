"""The ways users read files: cat, cp, dd bs=1M, Python, numpy, odd offsets,
and many readers at once (threads and processes)."""

import concurrent.futures
import hashlib
import multiprocessing
import os
import random
import subprocess

import numpy as np
import pytest

import util
from util import videos

BIG = "h264_720p.mp4"  # 1280x720: frames span several 1 MiB FUSE reads


def path_of(mnt, name, i, fmt):
    return os.path.join(mnt, name, "frames", f"{i}.{fmt}")


def test_cat(mnt):
    r = util.ref(BIG)
    out = subprocess.run(["cat", path_of(mnt, BIG, 5, "nv12")], check=True,
                         capture_output=True).stdout
    assert out == r.frame("nv12", 5), util.describe_diff(out, r.frame("nv12", 5))


def test_files_ask_for_1m_reads(mnt):
    """cat and cp read st_blksize at a time: 1 MiB (max_read), not 128 KiB, so a batch file
    of 1080p frames takes 3 requests a frame instead of 24."""
    for name in (path_of(mnt, BIG, 0, "nv12"), os.path.join(mnt, BIG, "frames", "0-4.rgb"),
                 os.path.join(mnt, BIG, "meta.json")):
        assert os.stat(name).st_blksize == 1 << 20, name
    out = subprocess.run(["stat", "-c", "%o", path_of(mnt, BIG, 0, "nv12")], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == str(1 << 20)


def test_cat_png(mnt):
    p = path_of(mnt, BIG, 7, "png")
    out = subprocess.run(["cat", p], check=True, capture_output=True).stdout
    assert out[:8] == b"\x89PNG\r\n\x1a\n" and len(out) == os.stat(p).st_size


def test_cp(mnt, tmp_path):
    r = util.ref(BIG)
    subprocess.run(["cp", path_of(mnt, BIG, 11, "nv12"), str(tmp_path / "f")], check=True)
    subprocess.run(["cp", os.path.join(mnt, BIG, "meta.json"), str(tmp_path / "m")], check=True)
    subprocess.run(["cp", path_of(mnt, BIG, 11, "jpg"), str(tmp_path / "j")], check=True)
    assert (tmp_path / "f").read_bytes() == r.frame("nv12", 11)
    assert (tmp_path / "m").read_bytes() == util.read_all(os.path.join(mnt, BIG, "meta.json"))
    assert (tmp_path / "j").read_bytes()[:2] == b"\xff\xd8"


def test_cp_recursive_of_a_small_video_dir(mnt, tmp_path):
    name = "dir one/ünïcode clip.mp4"
    subprocess.run(["cp", "-r", os.path.join(mnt, name), str(tmp_path / "v")], check=True)
    r = util.ref(name)
    got = b"".join((tmp_path / "v" / "frames" / f"{i}.nv12").read_bytes() for i in range(r.n))
    assert got == r.raw("nv12")


def test_dd_1m_blocks(mnt, tmp_path):
    r = util.ref(BIG)
    src = os.path.join(mnt, BIG, "frames", "0-6.nv12")
    subprocess.run(["dd", f"if={src}", f"of={tmp_path / 'out'}", "bs=1M", "status=none"],
                   check=True)
    got = (tmp_path / "out").read_bytes()
    want = r.raw("nv12")[:6 * r.frame_size("nv12")]
    assert got == want, util.describe_diff(got, want)


def test_dd_skip_count(mnt, tmp_path):
    """dd bs=4096 skip=3 count=5 reads 20 KiB from offset 12 KiB."""
    r = util.ref(BIG)
    subprocess.run(["dd", f"if={path_of(mnt, BIG, 9, 'gray')}", f"of={tmp_path / 'out'}",
                    "bs=4096", "skip=3", "count=5", "status=none"], check=True)
    assert (tmp_path / "out").read_bytes() == r.frame("gray", 9)[3 * 4096:8 * 4096]


def test_python_read(mnt):
    r = util.ref(BIG)
    with open(path_of(mnt, BIG, 13, "rgb"), "rb") as f:
        data = f.read()
    assert len(data) == r.frame_size("rgb")
    assert util.psnr(data, r.frame("rgb", 13)) >= 40


def test_python_small_chunks(mnt):
    r = util.ref(BIG)
    parts = []
    with open(path_of(mnt, BIG, 3, "nv12"), "rb", buffering=0) as f:
        while True:
            b = f.read(65537)
            if not b:
                break
            parts.append(b)
    assert b"".join(parts) == r.frame("nv12", 3)


def test_numpy_fromfile(mnt):
    r = util.ref(BIG)
    a = np.fromfile(path_of(mnt, BIG, 17, "gray"), dtype=np.uint8).reshape(r.h, r.w)
    assert a.tobytes() == r.frame("gray", 17)


def test_pread_at_odd_offsets(mnt):
    r = util.ref(BIG)
    want = r.frame("nv12", 20)
    size = len(want)
    cases = [(0, 1), (1, 4095), (4095, 4097), (131071, 131073), (1048575, 3),
             (1048576 - 7, 1048576 + 13), (size - 100, 777), (size - 1, 1), (size, 10),
             (size + 5000, 10), (12345, size)]
    fd = os.open(path_of(mnt, BIG, 20, "nv12"), os.O_RDONLY)
    try:
        random.Random(4).shuffle(cases)
        wrong = []
        for off, n in cases:
            got = os.pread(fd, n, off)
            # a short read before EOF is legal; read on until n bytes or EOF
            while len(got) < n:
                more = os.pread(fd, n - len(got), off + len(got))
                if not more:
                    break
                got += more
            if got != want[off:off + n]:
                wrong.append(f"pread({n}, {off}): {util.describe_diff(got, want[off:off + n])}")
        assert wrong == []
    finally:
        os.close(fd)


def test_seek_and_read_passthrough(mnt, corpus):
    want = util.read_all(os.path.join(corpus, "blob.bin"))
    with open(os.path.join(mnt, "blob.bin"), "rb") as f:
        for off in [299_000, 7, 131_072, 65_535]:
            f.seek(off)
            assert f.read(4099) == want[off:off + 4099]


# --------------------------------------------------------------- concurrency

def random_jobs(seed, count):
    """count (name, frame, fmt) picks among the bit-exact clips."""
    rng = random.Random(seed)
    names = [c.name for c in videos.VIDEOS if c.bitexact and "large" not in c.tags]
    jobs = []
    for _ in range(count):
        name = rng.choice(names)
        jobs.append((name, rng.randrange(util.ref(name).n), rng.choice(["nv12", "gray",
                                                                         "yuv420p"])))
    return jobs


def read_hashes(args):
    mnt, jobs = args
    out = []
    for name, i, fmt in jobs:
        try:
            with open(path_of(mnt, name, i, fmt), "rb") as f:
                out.append(hashlib.sha256(f.read()).hexdigest())
        except OSError as e:
            out.append(f"errno {e.errno}")
    return out


def expected_hashes(jobs):
    return [hashlib.sha256(util.ref(n).frame(f, i)).hexdigest() for n, i, f in jobs]


def check_results(worker_jobs, results):
    wrong = []
    for jobs, got in zip(worker_jobs, results):
        for job, g, w in zip(jobs, got, expected_hashes(jobs)):
            if g != w:
                wrong.append(f"{job}: {g[:16]} != {w[:16]}")
    assert wrong == [], f"{len(wrong)} wrong reads"


def test_eight_threads_read_random_frames(mnt):
    worker_jobs = [random_jobs(100 + k, 15) for k in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(read_hashes, [(mnt, j) for j in worker_jobs]))
    check_results(worker_jobs, results)


def test_eight_processes_read_random_frames(mnt):
    worker_jobs = [random_jobs(200 + k, 15) for k in range(8)]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        results = pool.map(read_hashes, [(mnt, j) for j in worker_jobs])
    check_results(worker_jobs, results)


def test_eight_threads_read_the_same_frame(mnt):
    """Readers that all want one frame at the same moment (one decode, many waiters)."""
    name = "hevc_8bit.mkv"
    r = util.ref(name)
    i = r.keyframes[-1] - 1  # a leading picture: needs the next GOP's key frame
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda _: util.read_all(path_of(mnt, name, i, "nv12")), range(8)))
    assert all(g == r.frame("nv12", i) for g in got)


def test_concurrent_readers_of_one_open_file(mnt):
    """Threads sharing one descriptor, each preading its own slice."""
    r = util.ref(BIG)
    want = r.frame("rgb", 4)
    fd = os.open(path_of(mnt, BIG, 4, "rgb"), os.O_RDONLY)
    try:
        step = len(want) // 8 + 1

        def part(k):
            return os.pread(fd, step, k * step)

        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            got = b"".join(ex.map(part, range(8)))
    finally:
        os.close(fd)
    assert len(got) == len(want)
    assert util.psnr(got, want) >= 40
