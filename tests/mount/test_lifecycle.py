"""The daemon's life: CLI, mounting, a changed source, a remount that reuses
its index, and a walk over everything that must not crash the mount."""

import concurrent.futures as cf
import errno
import json
import os
import shutil
import subprocess
import threading
import time

import pytest

import util
from util import videos


def test_help(vidfs_bin):
    r = subprocess.run([vidfs_bin, "--help"], capture_output=True, text=True, timeout=10)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for word in ["cache_dir", "backend", "config", "frame_format"]:
        assert word in out, f"--help does not mention {word}"


def test_version(vidfs_bin):
    r = subprocess.run([vidfs_bin, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    assert "vidfs" in (r.stdout + r.stderr).lower()


def test_missing_source_dir_is_an_error(vidfs_bin, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run([vidfs_bin, "-f", str(tmp_path / "nope"), str(mnt)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert r.stderr.strip(), "no message on stderr"
    assert not os.path.ismount(mnt)


@pytest.mark.parametrize("opt", ["backend=bogus", "gpus=one", "gpus=0\\,\\,1", "gpus=-1", "gpus="])
def test_bad_decode_setting_is_an_error(vidfs_bin, tmp_path, corpus, opt):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run([vidfs_bin, "-f", "-o", opt, corpus, str(mnt)],
                       capture_output=True, text=True, timeout=20)
    if os.path.ismount(mnt):
        subprocess.call(["fusermount3", "-uz", str(mnt)])
    assert r.returncode != 0 and opt.split("=")[0] in r.stderr, r.stderr


@pytest.mark.parametrize("daemon", [False, True])
def test_nvdec_backend_without_a_gpu_refuses_to_mount(vidfs_bin, tmp_path, corpus, daemon):
    """backend=nvdec means NVDEC: with no usable GPU the mount does not start (foreground or
    daemon), and says why, instead of decoding everything on the CPU."""
    if os.environ.get("VIDFS_GPU") == "1":
        pytest.skip("a GPU is here (VIDFS_GPU=1): backend=nvdec mounts; test_gpu.py covers it")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cmd = [vidfs_bin] + (["-f"] if not daemon else []) + [
        "-o", f"backend=nvdec,cache_dir={tmp_path / 'cache'}", corpus, str(mnt)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    mounted = os.path.ismount(mnt)
    if mounted:
        subprocess.call(["fusermount3", "-uz", str(mnt)])
    assert not mounted and r.returncode != 0, r.stderr
    assert "backend=nvdec" in r.stderr and "GPU" in r.stderr, r.stderr


def test_daemon_mode_mounts_and_unmounts(vidfs_bin, tmp_path, corpus):
    """Without -f vidfs returns once mounted (what scripts/run.sh does)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run([vidfs_bin, "-o", f"cache_dir={tmp_path / 'cache'}", corpus, str(mnt)],
                       capture_output=True, text=True, timeout=30)
    try:
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mnt)
        assert json.loads(util.read_all(mnt / "h264_bframes.mp4" / "meta.json"))["num_frames"]
    finally:
        subprocess.call(["fusermount3", "-u", str(mnt)])
    assert not os.path.ismount(mnt)


def test_changed_source_is_rescanned(make_mount, workdir, corpus):
    src = util.fresh_source(workdir, "changing", corpus, [("h264_bframes.mp4", "clip.mp4")])
    clip = os.path.join(src, "clip.mp4")
    m = make_mount(src, "changing")
    d = os.path.join(m.mnt, "clip.mp4")
    before = json.loads(util.read_all(os.path.join(d, "meta.json")))
    r1 = util.Ref(clip, ref_dir=os.path.join(workdir, "changing.ref"))
    assert util.read_all(os.path.join(d, "frames", "3.nv12")) == r1.frame("nv12", 3)
    assert before["width"] == 320

    # a different video, same name (size and mtime change)
    shutil.copyfile(os.path.join(corpus, "size_200x120.mp4"), clip + ".tmp")
    os.replace(clip + ".tmp", clip)
    st = os.stat(clip)
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    time.sleep(2)  # kernel attribute/entry caches (1 s by default)
    r2 = util.Ref(clip, ref_dir=os.path.join(workdir, "changing.ref"))
    after = json.loads(util.read_all(os.path.join(d, "meta.json")))
    assert (after["width"], after["height"], after["num_frames"]) == (200, 120, r2.n)
    assert len(os.listdir(os.path.join(d, "frames"))) == r2.n
    got = util.read_all(os.path.join(d, "frames", "3.nv12"))
    assert got == r2.frame("nv12", 3), util.describe_diff(got, r2.frame("nv12", 3))
    assert util.read_all(os.path.join(d, "source.mp4")) == util.read_all(clip)


def test_remount_reuses_the_index(make_mount, workdir, corpus):
    names = ["h264_bframes.mp4", "hevc_8bit.mkv", "vp9.webm", "vfr.mkv"]
    src = os.path.join(workdir, "remount.src")
    if not os.path.isdir(src):
        os.makedirs(src)
        for n in names:
            shutil.copy2(os.path.join(corpus, n), os.path.join(src, n))
    cache = os.path.join(workdir, "remount.cache")
    shutil.rmtree(cache, ignore_errors=True)

    m1 = make_mount(src, "remount1", cache_dir=cache)
    first = {n: (util.read_all(os.path.join(m1.mnt, n, "meta.json")),
                 util.read_all(os.path.join(m1.mnt, n, "frames.csv"))) for n in names}
    m1.stop()
    stored = [f for _, _, fs in os.walk(cache) for f in fs]
    assert stored, f"nothing persisted in cache_dir {cache}"

    m2 = make_mount(src, "remount2", cache_dir=cache)
    for n in names:
        assert json.loads(util.read_all(os.path.join(m2.mnt, n, "meta.json"))) == \
            json.loads(first[n][0]), n
        assert util.read_all(os.path.join(m2.mnt, n, "frames.csv")) == first[n][1], n


def test_read_everything_without_crashing(shared_mount):
    """os.walk over the whole mount, reading every listed file to the end: each
    read completes, or fails with EIO inside a broken source's directory."""
    mnt = shared_mount.mnt
    broken = [c.name for c in videos.CLIPS if c.kind in ("bad", "novideo", "corrupt")]
    problems, nfiles = [], 0
    for root, dirs, files in os.walk(mnt, onerror=lambda e: problems.append(f"walk: {e}")):
        rel = os.path.relpath(root, mnt)
        in_broken = any(rel == b or rel.startswith(b + os.sep) for b in broken)
        for f in files:
            p = os.path.join(root, f)
            nfiles += 1
            try:
                size = os.stat(p).st_size
                data = util.read_all(p)
            except OSError as e:
                if not (in_broken and e.errno == errno.EIO):
                    problems.append(f"{os.path.relpath(p, mnt)}: {util.errname(e.errno)}")
                continue
            if f.endswith((".nv12", ".csv", ".json")) and not f.startswith("stats") \
                    and len(data) != size:
                problems.append(f"{os.path.relpath(p, mnt)}: st_size {size}, read {len(data)}")
    assert shared_mount.alive(), "vidfs died during the walk"
    assert os.listdir(mnt)
    assert nfiles > 100
    assert problems == []


def test_request_threads_outnumber_libfuse_default(make_mount, corpus):
    """vidfs serves with up to 64 request threads (-o max_threads) and keeps idle ones:
    after 24 readers at once, more than libfuse's default 10 are there. (A loop config
    read through the wrong API version once left 10 threads, each ended after a request.)"""
    m = make_mount(corpus, "threads")
    names = ["h264_bframes.mp4", "h264_opengop.mkv", "vp9.webm", "h264_720p.mp4"]
    barrier = threading.Barrier(24)

    def reader(k):
        barrier.wait()
        for i in range(12):
            util.read_all(os.path.join(m.mnt, names[k % len(names)], "frames", f"{i}.gray"))
            os.stat(os.path.join(m.mnt, names[k % len(names)], "meta.json"))

    with cf.ThreadPoolExecutor(24) as ex:
        list(ex.map(reader, range(24)))
    with open(f"/proc/{m.proc.pid}/status") as f:
        threads = int(next(line for line in f if line.startswith("Threads:")).split()[1])
    # the daemon's own threads (main, read-ahead workers, codec threads) come on top
    assert threads > 10 + 2, f"{threads} threads in the daemon after 24 readers"
