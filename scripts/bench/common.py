"""Shared helpers of the vidfs benchmarks: paths, test videos (ffmpeg CLI), a mount with
an RSS sampler, results (JSON, optional PNG), and the summary rows.

Every bench is a script `python3 scripts/bench/NAME.py [--quick]`; scripts/bench/run.sh
runs them all and writes build/bench-results/summary.md.
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VIDFS = os.environ.get("VIDFS_BIN", os.path.join(REPO, "build", "vidfs"))
if not os.path.isabs(VIDFS):
    VIDFS = os.path.join(REPO, VIDFS)
VIDEOS = os.environ.get("BENCH_VIDEOS", os.path.join(REPO, "build", "bench-videos"))
RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(REPO, "build", "bench-results"))
QUICK = "--quick" in sys.argv[1:]

sys.path.insert(0, os.path.join(REPO, "tests", "mount"))
import util  # noqa: E402  (starting and stopping vidfs, shared with the tests)


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------- test videos

def ffmpeg_gen(path, size, seconds, fps=25, gop=None, preset="veryfast", src="testsrc2",
               audio=False, bframes=None):
    """Generates an H.264 clip (with a 440 Hz AAC tone when audio) with the ffmpeg CLI
    unless it is already there. bframes: exactly this many B-frames between references
    (no adaptive placement)."""
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part.mp4"
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi",
           "-i", f"{src}=size={size}:rate={fps}:duration={seconds}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                "-c:a", "aac", "-b:a", "96k"]
    cmd += ["-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p"]
    if gop:
        cmd += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    if bframes is not None:
        cmd += ["-bf", str(bframes), "-b_strategy", "0"]
    cmd += [tmp]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    os.replace(tmp, path)
    log(f"  generated {os.path.relpath(path, REPO)} in {time.perf_counter() - t:.1f} s")
    return path


def copies(src, dst_dir, names):
    """Real copies (distinct inodes: each gets its own index, as distinct videos would)."""
    os.makedirs(dst_dir, exist_ok=True)
    for name in names:
        dst = os.path.join(dst_dir, name)
        if not os.path.exists(dst):
            shutil.copyfile(src, dst)
    return dst_dir


def video_dir(name):
    return os.path.join(VIDEOS, name)


# ---------------------------------------------------------------- mount

def rss_kib(pid, key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Mount(util.Mount):
    """tests/mount/util.py's Mount on a fresh mountpoint, as a context manager, with an RSS
    sampler; its log goes to RESULTS/vidfs.log.

    cache_dir: the disk store (indexes). Pass the same one to keep indexes between mounts
    (a remount is then 'cold' only in memory: empty frame cache, no decoders)."""

    def __init__(self, src, cache_dir, **opts):
        os.makedirs(RESULTS, exist_ok=True)
        super().__init__(src, tempfile.mkdtemp(prefix="vidfs-bench-mnt-"), cache_dir,
                         os.path.join(RESULTS, "vidfs.log"),
                         [f"{k}={v}" for k, v in opts.items()], binary=VIDFS)
        self.cache_mb = int(opts.get("cache_mb", 1024))
        self.peak_rss = 0
        self.hwm = 0

    def __enter__(self):
        if not os.access(VIDFS, os.X_OK):
            sys.exit(f"bench: no vidfs binary at {VIDFS} (build it, or set VIDFS_BIN)")
        self.start(timeout=30)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, rss_kib(self.proc.pid))
            self._stop.wait(0.05)

    def stats(self):
        with open(os.path.join(self.mnt, ".vidfs", "stats.json")) as f:
            return json.load(f)

    def path(self, *p):
        return os.path.join(self.mnt, *p)

    def memory(self):
        """Peak RSS in MiB (sampled VmRSS, and the kernel's VmHWM) next to cache_mb."""
        self.hwm = max(self.hwm, rss_kib(self.proc.pid, "VmHWM"))
        peak = max(self.peak_rss, self.hwm)
        return {"peak_rss_mib": round(peak / 1024, 1), "cache_mb": self.cache_mb,
                "overhead_mib": round(peak / 1024 - self.cache_mb, 1)}

    def __exit__(self, *exc):
        self.hwm = rss_kib(self.proc.pid, "VmHWM")
        self._stop.set()
        self._sampler.join()
        self.stop()
        os.rmdir(self.mnt)
        return False


def read_file(path, bufsize=1 << 22):
    """One open and read to EOF, as a loader does; returns the bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while True:
            b = os.read(fd, bufsize)
            if not b:
                break
            parts.append(b)
        return b"".join(parts) if len(parts) != 1 else parts[0]
    finally:
        os.close(fd)


def read_count(path, bufsize=1 << 22):
    """Like read_file, but keeps no bytes: returns the count."""
    fd = os.open(path, os.O_RDONLY)
    n = 0
    try:
        while True:
            b = os.read(fd, bufsize)
            if not b:
                break
            n += len(b)
    finally:
        os.close(fd)
    return n


def meta(mnt, video):
    with open(os.path.join(mnt.mnt, video, "meta.json")) as f:
        return json.load(f)


def frame_times(mnt, video):
    """pts_time of every frame, from frames.csv."""
    with open(os.path.join(mnt.mnt, video, "frames.csv")) as f:
        lines = f.read().split("\n")
    head = lines[0].split(",")
    i = head.index("pts_time")
    return [float(l.split(",")[i]) for l in lines[1:] if l]


def seq_video():
    """The 10 s 1080p clip the sequential benches read, indexed once onto its store (later
    mounts of that store find the index on disk): (source dir, path, name, store, frames)."""
    src = video_dir("seq")
    path = ffmpeg_gen(os.path.join(src, "seq_1080p.mp4"), "1920x1080", 10)
    video = os.path.basename(path)
    cache = os.path.join(VIDEOS, "store-seq")
    with Mount(src, cache) as m:
        n = len(frame_times(m, video))
    return src, path, video, cache, n


def stat_summary(s):
    """The stats.json counters a bench prints."""
    fc, d, ra = s.get("frame_cache", {}), s.get("decoders", {}), s.get("readahead", {})
    return {"frames_served": s.get("frames_served"), "cache_hits": fc.get("hits"),
            "cache_misses": fc.get("misses"), "decoders_created": d.get("created"),
            "decoders_reused": d.get("reused"), "continued": d.get("continued"),
            "seeks": d.get("seeks"), "frames_decoded": s.get("frames_decoded", {}).get("cpu"),
            "readahead_frames": ra.get("frames"), "readahead_hits": ra.get("hits")}


# ---------------------------------------------------------------- results

def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024 // 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "mem_gib": mem,
            "kernel": platform.release(), "python": platform.python_version()}


def row(bench, vidfs, peer, unit, goal, higher_better=True, note=""):
    """One line of the summary: ratio = vidfs/peer (or peer/vidfs for times)."""
    if not vidfs or not peer:  # a side that measured nothing
        ratio = 0.0
    else:
        ratio = vidfs / peer if higher_better else peer / vidfs
    return {"bench": bench, "vidfs": vidfs, "peer": peer, "unit": unit,
            "ratio": round(ratio, 3), "goal": goal, "met": bool(goal is None or ratio >= goal),
            "note": note}


def print_rows(rows):
    for r in rows:
        g = f"goal >= {r['goal']}x: {'met' if r['met'] else 'MISSED'}" if r["goal"] else "no goal"
        log(f"  {r['bench']}: vidfs {fmt(r['vidfs'])} vs {fmt(r['peer'])} {r['unit']}"
            f" -> ratio {r['ratio']:.2f}x ({g})")


def fmt(v):
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None where matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save(name, rows, details, plot=None, path=None):
    """Writes PATH (default build/bench-results/NAME.json) and, with matplotlib, NAME.png.
    plot: (title, [(label, value), ...], ylabel)."""
    out = {"bench": name, "quick": QUICK, "vidfs": VIDFS, "machine": machine(),
           "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": rows, "details": details}
    path = path or os.path.join(RESULTS, name + ".json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    log(f"  wrote {os.path.relpath(path, REPO)}")
    if plot:
        plt = pyplot()
        if not plt:
            return
        title, bars, ylabel = plot
        fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(bars), 3.6))
        labels = [b[0] for b in bars]
        vals = [b[1] for b in bars]
        colors = ["tab:blue" if l.startswith("vidfs") else "tab:gray" for l in labels]
        ax.bar(range(len(vals)), vals, color=colors)
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        for i, v in enumerate(vals):
            ax.annotate(fmt(v), (i, v), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        png = os.path.join(RESULTS, name + ".png")
        fig.savefig(png, dpi=100)
        plt.close(fig)
        log(f"  wrote {os.path.relpath(png, REPO)}")
