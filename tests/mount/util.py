"""Helpers for the mount tests: starting and stopping a vidfs daemon, and the
reference bytes a mount must serve, computed with the ffmpeg CLI exactly as
DESIGN.md defines frame numbering (ffmpeg -noautorotate -i FILE -map 0:S
-fps_mode passthrough -f rawvideo -pix_fmt X -).
"""

import errno
import functools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests"))
import videos  # noqa: E402

TEST_VIDEOS = os.environ.get("VIDFS_TEST_VIDEOS", os.path.join(REPO, "build", "test-videos"))
CORPUS = os.path.join(TEST_VIDEOS, "src")
REF_DIR = os.path.join(TEST_VIDEOS, "ref")

RAW_FORMATS = ["nv12", "yuv420p", "gray", "rgb", "rgbp", "p010"]
IMAGE_FORMATS = ["png", "jpg"]
ALL_FORMATS = RAW_FORMATS + IMAGE_FORMATS
# the ffmpeg -pix_fmt whose rawvideo bytes each raw format equals (rgbp: transposed rgb24)
FFMPEG_PIX_FMT = {"nv12": "nv12", "yuv420p": "yuv420p", "gray": "nv12", "rgb": "rgb24",
                  "rgbp": "rgb24", "p010": "p010le"}

SANITIZER_RE = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|UndefinedBehaviorSanitizer"
    r"|runtime error:|==\d+==ERROR|SUMMARY: \w+Sanitizer|ThreadSanitizer"
    r"|Segmentation fault|stack-buffer-overflow|heap-use-after-free")


def frame_size(fmt, w, h):
    """Bytes of one raw frame (DESIGN.md's table)."""
    cw, ch = (w + 1) // 2, (h + 1) // 2
    return {"nv12": w * h + 2 * cw * ch, "yuv420p": w * h + 2 * cw * ch, "gray": w * h,
            "rgb": 3 * w * h, "rgbp": 3 * w * h, "p010": 2 * (w * h + 2 * cw * ch)}[fmt]


def even_round(x):
    """Nearest even integer (what ffmpeg's scale=W:-2 gives)."""
    return max(2, 2 * int(math.floor(x / 2 + 0.5)))


def psnr(a, b, peak=255.0):
    a = np.frombuffer(a, np.uint8) if isinstance(a, (bytes, bytearray, memoryview)) else a
    b = np.frombuffer(b, np.uint8) if isinstance(b, (bytes, bytearray, memoryview)) else b
    assert a.shape == b.shape, f"shape {a.shape} != {b.shape}"
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(peak * peak / mse)


def rgb_to_planar(rgb, w, h):
    return np.frombuffer(rgb, np.uint8).reshape(h, w, 3).transpose(2, 0, 1).tobytes()


def seconds_name(t, decimals=4):
    """t seconds as a segment name spells it: the one way, no trailing zero ("0.46")."""
    return f"{t:.{decimals}f}".rstrip("0").rstrip(".")


def fresh_source(workdir, name, corpus=None, clips=()):
    """WORKDIR/NAME.src, made empty, with copies of the corpus clips named (new inodes:
    nothing of them is in any store yet); a (corpus name, name here) pair renames one."""
    src = os.path.join(workdir, name + ".src")
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    for c in clips:
        frm, to = c if isinstance(c, tuple) else (c, c)
        shutil.copyfile(os.path.join(corpus, frm), os.path.join(src, to))
    return src


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def errno_of(fn, *args, **kw):
    """The errno that fn(*args) fails with, or None if it succeeds."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return None


def errname(e):
    return errno.errorcode.get(e, str(e)) if e is not None else "success"


def decode_image(data, suffix):
    """Decode a png/jpg with ffmpeg to (w, h, rgb24 bytes)."""
    with tempfile.NamedTemporaryFile(suffix=suffix) as f:
        f.write(data)
        f.flush()
        info = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-of", "json", "-show_streams", f.name],
            check=True, capture_output=True).stdout)["streams"][0]
        raw = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", f.name, "-f", "rawvideo",
                              "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return info["width"], info["height"], raw


def to_number(v):
    """ffprobe writes numbers as strings, rationals as 'a/b' or 'a:b'."""
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        v = v.replace(":", "/")
        return float(Fraction(v)) if "/" in v else float(v)
    raise TypeError(f"not a number: {v!r}")


# ------------------------------------------------------------ reference media

class Ref:
    """What FFmpeg says about one video stream of a source file."""

    def __init__(self, path, stream=None, ref_dir=REF_DIR):
        self.path = path
        self.ref_dir = ref_dir
        self.info = probe(path)
        vids = [s for s in self.info["streams"] if s["codec_type"] == "video"]
        if stream is None:
            stream = default_stream(self.info)["index"]
        self.stream = stream
        self.st = next(s for s in vids if s["index"] == stream)
        self.w, self.h = self.st["width"], self.st["height"]
        self.n = len(self.raw("nv12")) // frame_size("nv12", self.w, self.h)

    def key(self):
        st = os.stat(self.path)
        return f"{st.st_size}-{st.st_mtime_ns}"

    def _cache(self, tag):
        rel = os.path.relpath(self.path, "/").replace("/", "_")
        return os.path.join(self.ref_dir, f"{rel}.s{self.stream}.{tag}.{self.key()}")

    def raw(self, fmt, size=None):
        """All frames as ffmpeg rawvideo bytes of pix_fmt FFMPEG_PIX_FMT[fmt]
        (rgbp gives rgb24 too), optionally scaled to size=(W, H)."""
        pix = FFMPEG_PIX_FMT[fmt]
        tag = pix + (f".{size[0]}x{size[1]}" if size else "")
        return _ffmpeg_raw(self.path, self.stream, pix, size, self._cache(tag))

    def frame(self, fmt, i, size=None):
        w, h = size or (self.w, self.h)
        if fmt == "gray":
            # the Y plane, untouched: ffmpeg's -pix_fmt gray would stretch
            # limited-range luma to full range
            return self.frame("nv12", i, size)[:w * h]
        fs = frame_size(fmt, w, h)
        data = self.raw(fmt, size)
        assert (i + 1) * fs <= len(data), f"no frame {i} in reference ({len(data) // fs})"
        b = data[i * fs:(i + 1) * fs]
        return rgb_to_planar(b, w, h) if fmt == "rgbp" else b

    def frame_size(self, fmt, size=None):
        w, h = size or (self.w, self.h)
        return frame_size(fmt, w, h)

    @functools.cached_property
    def frames(self):
        """ffprobe -show_frames of the stream: list of dicts."""
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-of", "json", "-select_streams", str(self.stream),
             "-show_frames", "-show_entries",
             "frame=key_frame,pts_time,best_effort_timestamp_time,pkt_duration_time,pict_type",
             self.path], check=True, capture_output=True).stdout
        return json.loads(out)["frames"]

    @functools.cached_property
    def keyframes(self):
        return [i for i, f in enumerate(self.frames) if int(f["key_frame"])]

    def sample_indices(self, extra_random=4, seed=0):
        """First, last, middle, around every keyframe (leading pictures of an open
        GOP come just before the key frame in display order), and a few random."""
        import random
        n = self.n
        idx = {0, 1, n - 1, n - 2, n // 2}
        for k in self.keyframes[1:4]:
            idx.update({k - 3, k - 2, k - 1, k, k + 1})
        rng = random.Random(seed + n)
        idx.update(rng.randrange(n) for _ in range(extra_random))
        out = sorted(i for i in idx if 0 <= i < n)
        rng.shuffle(out)
        return out


_refs = {}


def ref(path, stream=None):
    """The (cached) Ref of a stream of path; path relative to the corpus is fine."""
    if not os.path.isabs(path):
        path = os.path.join(CORPUS, path)
    key = (path, stream)
    r = _refs.get(key)
    if r is None or r.key() != r._key_at_load:
        r = _refs[key] = Ref(path, stream)
        r._key_at_load = r.key()
    return r


def describe_diff(got, want):
    """A short description of how two byte strings differ."""
    if len(got) != len(want):
        return f"{len(got)} bytes, expected {len(want)}"
    a, b = np.frombuffer(got, np.uint8), np.frombuffer(want, np.uint8)
    bad = np.flatnonzero(a != b)
    if len(bad) == 0:
        return "identical"
    return (f"{len(bad)} of {len(a)} bytes differ, first at {bad[0]}, "
            f"PSNR {psnr(a, b):.2f} dB")


def probe(path):
    return json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format", path],
        check=True, capture_output=True).stdout)


def default_stream(info):
    """The stream av_find_best_stream(VIDEO) picks for our corpus: never an
    attached picture; a stream marked default first; then the lowest index."""
    vids = [s for s in info["streams"] if s["codec_type"] == "video"
            and not s.get("disposition", {}).get("attached_pic")]
    if not vids:
        raise ValueError("no video stream")
    vids.sort(key=lambda s: (-s.get("disposition", {}).get("default", 0), s["index"]))
    return vids[0]


def _ffmpeg_raw(path, stream, pix, size, cache):
    if os.path.exists(cache):
        with open(cache, "rb") as f:
            return f.read()
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-noautorotate", "-i", path,
           "-map", f"0:{stream}", "-fps_mode", "passthrough"]
    if size:
        cmd += ["-vf", f"scale={size[0]}:{size[1]}"]
    cmd += ["-f", "rawvideo", "-pix_fmt", pix, "-"]
    data = subprocess.run(cmd, check=True, capture_output=True).stdout
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    tmp = cache + f".tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, cache)
    return data


# ------------------------------------------------------------------ mounting

def vidfs_bin():
    return os.environ.get("VIDFS_BIN", os.path.join(REPO, "build", "vidfs"))


def extra_opts():
    return [o for o in os.environ.get("VIDFS_TEST_OPTS", "").split(",") if o]


def daemon_env():
    """The environment of a daemon: vidfs's own crash handler (a backtrace) would hide
    ASan's report of a SIGSEGV, so ASan keeps the signal to itself."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(o for o in (env.get("ASAN_OPTIONS"),
                                                "allow_user_segv_handler=0") if o)
    return env


class Mount:
    """One vidfs daemon in the foreground (-f), its stderr in a log file. The one way the
    tests and the benchmarks (scripts/bench/common.py) start and stop vidfs."""

    def __init__(self, src, mnt, cache_dir, log_path, opts=(), binary=None):
        self.src, self.mnt, self.cache_dir, self.log_path = src, mnt, cache_dir, log_path
        self.binary = binary or vidfs_bin()
        # the test's own options last, so that they win over VIDFS_TEST_OPTS
        self.opts = [f"cache_dir={cache_dir}"] + extra_opts() + list(opts)
        self.proc = None
        self.log_pos = 0  # how much of the log has been checked
        self.killed_by_watchdog = False
        self.exit_problem = None
        self.stopped = False

    @property
    def cmd(self):
        return [self.binary, "-f", "-o", ",".join(self.opts), self.src, self.mnt]

    def start(self, timeout=30):
        os.makedirs(self.mnt, exist_ok=True)
        os.makedirs(self.cache_dir, exist_ok=True)
        unmount_stale(self.mnt)
        self.log = open(self.log_path, "ab")
        self.log.write(f"\n### {' '.join(self.cmd)}\n".encode())
        self.log.flush()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=daemon_env())
        t0 = time.monotonic()
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"vidfs exited with status {self.proc.returncode} before mounting:\n"
                    f"$ {' '.join(self.cmd)}\n{self.read_log(0)[-4000:]}")
            if time.monotonic() - t0 > timeout:
                self.kill()
                raise AssertionError(f"mount did not come up within {timeout} s:\n"
                                     f"{self.read_log(0)[-4000:]}")
            time.sleep(0.05)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def read_log(self, start=None):
        with open(self.log_path, "rb") as f:
            f.seek(self.log_pos if start is None else start)
            return f.read().decode(errors="replace")

    def new_log(self):
        """The log written since the last call."""
        with open(self.log_path, "rb") as f:
            f.seek(self.log_pos)
            data = f.read()
        self.log_pos += len(data)
        return data.decode(errors="replace")

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        subprocess.call(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)

    def stop(self):
        """Unmount (fusermount3 -u, else -uz); record a bad exit in exit_problem."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        if self.alive():
            r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
            if r.returncode != 0:
                subprocess.call(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.exit_problem = "vidfs did not exit within 20 s of its unmount"
                self.proc.kill()
                self.proc.wait()
            else:
                if self.proc.returncode != 0:
                    self.exit_problem = f"vidfs exited with status {self.proc.returncode}"
        else:
            unmount_stale(self.mnt)
        self.log.close()


def unmount_stale(mnt):
    """Unmount what a crashed earlier run left at mnt (ENOTCONN) or still mounted."""
    try:
        os.stat(mnt)
        stale = os.path.ismount(mnt)
    except OSError as e:
        stale = e.errno == errno.ENOTCONN
    if stale:
        if subprocess.call(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL) != 0:
            subprocess.call(["fusermount3", "-uz", mnt], stderr=subprocess.DEVNULL)


def daemon_problems(m, log_text):
    """Sanitizer reports or a crash of Mount m, as a list of strings."""
    problems = []
    hit = SANITIZER_RE.search(log_text)
    if hit:
        start = max(0, hit.start() - 200)
        problems.append(f"sanitizer report / crash in vidfs stderr ({m.log_path}):\n"
                        + log_text[start:start + 6000])
    if m.killed_by_watchdog:
        problems.append("the test ran past its time limit: vidfs killed by the watchdog "
                        "(a wedged read?)")
        m.killed_by_watchdog = False
    elif not m.stopped and m.proc is not None and m.proc.poll() is not None:
        rc = m.proc.returncode
        how = f"signal {-rc}" if rc < 0 else f"exit status {rc}"
        problems.append(f"vidfs died ({how}) while mounted; last log:\n{log_text[-3000:]}")
    if m.exit_problem:
        problems.append(m.exit_problem + f"; last log:\n{log_text[-3000:]}")
        m.exit_problem = None
    return problems
