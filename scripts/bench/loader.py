#!/usr/bin/python3
"""A training loader (issue 12): a PyTorch DataLoader whose workers deliver random 16-frame
224x224 clips (uint8, 16x3x224x224), at several worker counts, through a vidfs mount and
against the same DataLoader decoding in its workers:

- vidfs: one batch file per clip, `frames_224x224/A-(A+16).rgbp`, one open and read;
- opencv: cv2.VideoCapture, CAP_PROP_POS_FRAMES = A, 16 reads, cv2.resize INTER_CUBIC,
  BGR to RGB, CHW;
- pyav: open, seek to the keyframe at or before A's pts, decode to A, 16 frames,
  reformat(224, 224, rgb24, bicubic), CHW.
A peer that cannot be imported (PyAV on the GPU machine) is skipped, and the output and
the JSON say so.

Videos: FILES copies (own inodes, so own indexes) of one SECONDS-long libx264 clip per
size, GOP 60 with 2 B-frames, 25 fps, made with the ffmpeg CLI into $BENCH_VIDEOS/loader
and reused. Every measurement: the same seeded clip list, a fresh mount (indexes on disk:
meta.json of every file is stat'ed and read before the clock starts, empty frame cache),
the clock from the DataLoader's start to the last clip, ending after --clips clips or
after --time seconds once every worker has delivered a clip (a clip that takes longer
than max(60 s, 4 x --time) ends it, marked timed_out in the JSON). For vidfs, decodes per delivered frame:
stats.json frames_decoded (cpu + nvdec) over frames_served.

  python3 scripts/bench/loader.py [--vidfs PATH] [--backend cpu|nvdec|auto]
      [--sizes 1080p,360p] [--workers 2,4,8,16,32] [--files 32] [--seconds 10]
      [--clips 512] [--time 60] [--peers vidfs,opencv,pyav] [-o MOUNT_OPTS]
      [--json PATH] [--plot PATH] [--quick]

The binary: --vidfs, else $VIDFS_BIN, else build/vidfs (on a machine with nothing
installable, the bundled one from scripts/bundle.sh: --vidfs /tmp/rt/bin/vidfs, with
/tmp/rt/bin first on PATH for ffmpeg and fusermount3)."""
import argparse
import os
import random
import sys
import time
import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import common
from common import (QUICK, VIDEOS, Mount, copies, ffmpeg_gen, frame_times, log, machine,
                    print_rows, pyplot, read_file, row, save)

# More workers than cores is what this bench measures: no warning about it at every run.
warnings.filterwarnings("ignore", message="This DataLoader will create")

NAME = "loader"
CLIP = 16
SIDE = 224
FPS = 25
GOP = 60
BFRAMES = 2
SIZES = {"1080p": "1920x1080", "720p": "1280x720", "360p": "640x360"}
PEERS = ("vidfs", "opencv", "pyav")
LABEL = {"vidfs": "vidfs", "opencv": "OpenCV", "pyav": "PyAV"}
MODULE = {"opencv": "cv2", "pyav": "av"}


# ------------------------------------------------------------------ one clip, per peer

def clip_vidfs(mnt, name, a, times):
    """One open, reads straight into the clip's array (writable, as the peers' are)."""
    x = np.empty((CLIP, 3, SIDE, SIDE), np.uint8)
    buf, got = memoryview(x).cast("B"), 0
    with open(os.path.join(mnt, name, f"frames_{SIDE}x{SIDE}", f"{a}-{a + CLIP}.rgbp"),
              "rb", buffering=0) as f:
        while got < len(buf):
            n = f.readinto(buf[got:])
            if not n:
                raise RuntimeError(f"{name} {a}-{a + CLIP}: {got} of {len(buf)} bytes")
            got += n
    return x


def clip_opencv(src, name, a, times):
    import cv2
    cap = cv2.VideoCapture(os.path.join(src, name))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, a)
        out = []
        for _ in range(CLIP):
            ok, f = cap.read()
            if not ok:
                break
            f = cv2.resize(f, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
            out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2))


def clip_pyav(src, name, a, times):
    import av
    import av.logging
    # PyAV's log callback takes the GIL from FFmpeg's codec threads: with frame threads
    # that can wait on a decoding thread holding it. FFmpeg's own logger has no such lock.
    av.logging.restore_default_callback()
    with av.open(os.path.join(src, name)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        pts = (s.start_time or 0) + int(round(times[name][a] / s.time_base))
        c.seek(pts, stream=s, backward=True, any_frame=False)
        out = []
        for f in c.decode(s):
            if f.pts is None or f.pts < pts:
                continue
            out.append(f.reformat(SIDE, SIDE, "rgb24", interpolation="BICUBIC").to_ndarray())
            if len(out) == CLIP:
                break
    return np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2))


FETCH = {"vidfs": clip_vidfs, "opencv": clip_opencv, "pyav": clip_pyav}


class Clips(Dataset):
    """Item i: clip i of the list, from root (the mount for vidfs, the sources else)."""

    def __init__(self, peer, root, items, times):
        self.fetch, self.root, self.items, self.times = FETCH[peer], root, items, times

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        name, a = self.items[i]
        x = self.fetch(self.root, name, a, self.times)
        if x.shape != (CLIP, 3, SIDE, SIDE):
            raise RuntimeError(f"{name} frame {a}: got a clip of shape {x.shape}")
        return torch.from_numpy(x)


def run_loader(peer, root, items, times, workers, clips, seconds):
    """Clips/s of a DataLoader with this many workers. It runs until `seconds` have passed
    and at least one clip per worker has come (a whole first round: with many workers on
    few cores the first clips come late), or all `clips` have come; a clip that takes more
    than max(60, 4 * seconds) to come ends it, marked timed_out."""
    wait = max(60.0, 4 * seconds)
    dl = DataLoader(Clips(peer, root, items[:clips], times), batch_size=None, shuffle=False,
                    num_workers=workers, timeout=wait)
    n, timed_out = 0, False
    t0 = time.perf_counter()
    it = iter(dl)
    try:
        for _ in it:
            n += 1
            if time.perf_counter() - t0 >= seconds and n >= min(workers, clips):
                break
    except RuntimeError as e:
        if "timed out" not in str(e):
            raise
        timed_out = True
        log(f"    no clip came in {wait:.0f} s: stopped after {n} clips")
    dt = time.perf_counter() - t0
    del it  # shuts the workers down before the caller unmounts
    return {"clips": n, "seconds": round(dt, 3), "clips_s": n / dt, "timed_out": timed_out}


# ------------------------------------------------------------------ videos and indexes

def make_videos(size, nfiles, seconds):
    """nfiles copies of one generated clip; returns (directory, names)."""
    tag = f"{size}-{seconds}s-gop{GOP}-bf{BFRAMES}"
    src = ffmpeg_gen(os.path.join(VIDEOS, "loader", tag + ".mp4"), SIZES[size], seconds,
                     fps=FPS, gop=GOP, bframes=BFRAMES)
    names = [f"{i:03d}.mp4" for i in range(nfiles)]
    return copies(src, os.path.join(VIDEOS, "loader", tag), names), names


def build_indexes(m, names):
    """stat and read meta.json of every file: the indexes are loaded (or built)."""
    for n in names:
        os.stat(m.path(n, "meta.json"))
        read_file(m.path(n, "meta.json"))


def decodes_per_frame(st):
    dec = st["frames_decoded"].get("cpu", 0) + st["frames_decoded"].get("nvdec", 0)
    return dec / st["frames_served"] if st.get("frames_served") else 0.0


# ------------------------------------------------------------------ output

def table(res, sizes, workers, peers):
    """Markdown: one row per (size, workers)."""
    others = [p for p in peers if p != "vidfs"]

    def rate(x):  # clips/s, with a mark where no clip came for a long while
        return f"{x['clips_s']:.2f}" + (" (timed out)" if x.get("timed_out") else "")

    head = ["size", "workers", "vidfs clips/s", "decodes/frame"] + \
        [f"{LABEL[p]} clips/s" for p in others] + [f"vidfs/{LABEL[p]}" for p in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for size in sizes:
        for w in workers:
            r = res[size][str(w)]
            v = r.get("vidfs", {}).get("clips_s")
            cells = [size, str(w), rate(r["vidfs"]) if "vidfs" in r else "-",
                     f"{r['vidfs']['decodes_per_frame']:.2f}" if "vidfs" in r else "-"]
            cells += [rate(r[p]) if p in r else "skipped" for p in others]
            cells += [f"{v / r[p]['clips_s']:.2f}x" if p in r and v and r[p]["clips_s"] else "-"
                      for p in others]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_rows(res, sizes, workers, peers, backend):
    """The rows of summary.md: vidfs against each peer, and the issue's goals that apply."""
    rows = []
    for size in sizes:
        r = res[size]
        for w in workers:
            for p in (p for p in peers if p != "vidfs"):
                if p in r[str(w)]:
                    goal = None
                    if w == 16 and p == "opencv":
                        goal = 4.0 if backend == "nvdec" else 1.5 if backend == "cpu" else None
                    if w == 2 and p == "pyav" and backend == "cpu":
                        goal = 1.5
                    rows.append(row(f"loader {size} {w} workers, vidfs ({backend}) vs "
                                    f"{LABEL[p]} in the workers",
                                    r[str(w)]["vidfs"]["clips_s"], r[str(w)][p]["clips_s"],
                                    "clips/s", goal))
        if "vidfs" in peers and "4" in r and "16" in r:
            rows.append(row(f"loader {size} vidfs 16 workers vs 4 workers",
                            r["16"]["vidfs"]["clips_s"], r["4"]["vidfs"]["clips_s"],
                            "clips/s", 0.9))
        if "vidfs" in peers:
            worst = max(r[str(w)]["vidfs"]["decodes_per_frame"] for w in workers)
            rows.append(row(f"loader {size} decodes per delivered frame, worst worker count "
                            "(goal <= 2.4)", worst, 2.4, "decodes/frame", 1.0,
                            higher_better=False))
    return rows


def plot(res, sizes, workers, peers, backend, path):
    plt = pyplot()
    if not plt:
        log("  no matplotlib: no plot (apt-get install python3-matplotlib)")
        return
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.6), squeeze=False)
    style = {"vidfs": ("tab:blue", "o"), "opencv": ("tab:green", "s"), "pyav": ("tab:gray", "^")}
    for ax, size in zip(axes[0], sizes):
        for p in peers:
            pts = [(w, res[size][str(w)][p]["clips_s"]) for w in workers
                   if p in res[size][str(w)]]
            if not pts:
                continue
            label = f"vidfs (backend={backend})" if p == "vidfs" else f"{LABEL[p]} in workers"
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker=style[p][1],
                    color=style[p][0], label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(workers)
        ax.set_xticklabels([str(w) for w in workers])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("DataLoader workers")
        ax.set_ylabel("16-frame 224x224 clips/s")
        ax.set_title(f"{size}, GOP {GOP} with {BFRAMES} B-frames", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    m = machine()
    fig.suptitle(f"loader: {m['nproc']} cores, {m['cpu']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    log(f"  wrote {path}")


# ------------------------------------------------------------------ main

def available(peers):
    """Peers whose module imports; the others with the reason."""
    ok, skipped = [], {}
    for p in peers:
        try:
            if p in MODULE:
                __import__(MODULE[p])
            ok.append(p)
        except ImportError as e:
            skipped[p] = f"not importable: {e}"
            log(f"  {LABEL[p]}: skipped ({skipped[p]})")
    return ok, skipped


def first_clip(peer, root, items, times):
    """Clip 0 of the list, fetched in a DataLoader worker: a decoder used in this process
    would leave codec threads (or a context the GC frees later) behind in every worker
    forked after it, and a forked worker closing such a context waits forever."""
    dl = DataLoader(Clips(peer, root, items[:1], times), batch_size=None, num_workers=1,
                    timeout=180)
    return next(iter(dl)).numpy()


def check(m, src, items, times, peers):
    """Mean absolute difference of the first clip of each peer to vidfs's: the peers decode
    the same frames (a large value is a wrong seek, not a scaler's rounding)."""
    name, a = items[0]
    ref = clip_vidfs(m.mnt, name, a, times).astype(np.int16)
    out = {}
    for p in (p for p in peers if p != "vidfs"):
        x = first_clip(p, src, items, times).astype(np.int16)
        out[p] = round(float(np.abs(x - ref).mean()), 2)
        if out[p] > 8:
            log(f"  WARNING: {LABEL[p]}'s clip {name} {a}-{a + CLIP} differs from vidfs's by "
                f"{out[p]} on average: not the same frames?")
    return out


def parse():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vidfs", help="vidfs binary (default: $VIDFS_BIN, else build/vidfs)")
    ap.add_argument("--backend", default="auto", choices=("cpu", "nvdec", "auto"),
                    help="the mount's backend")
    ap.add_argument("--sizes", default="360p" if QUICK else "1080p,360p")
    ap.add_argument("--workers", default="2,4,16" if QUICK else "2,4,8,16,32")
    ap.add_argument("--files", type=int, default=8 if QUICK else 32)
    ap.add_argument("--seconds", type=int, default=4 if QUICK else 10,
                    help="length of each video")
    ap.add_argument("--clips", type=int, default=512, help="clips per measurement (at most)")
    ap.add_argument("--time", type=float, default=10 if QUICK else 60,
                    help="seconds per measurement (and at least a clip per worker)")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("-o", dest="opts", default="",
                    help="more mount options, e.g. pool_size=40")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--json", help="default: $BENCH_RESULTS/loader.json")
    ap.add_argument("--plot", help="default: the JSON path with .png")
    ap.add_argument("--quick", action="store_true", help="360p, workers 2,4,16, 8 files of 4 s")
    a = ap.parse_args()
    a.sizes = a.sizes.split(",")
    a.workers = [int(w) for w in a.workers.split(",")]
    a.peers = [p for p in PEERS if p in a.peers.split(",")]
    bad = [s for s in a.sizes if s not in SIZES]
    if bad or not a.peers:
        ap.error(f"sizes: {', '.join(SIZES)}; peers: {', '.join(PEERS)}")
    a.json = a.json or os.path.join(common.RESULTS, NAME + ".json")
    a.plot = a.plot or os.path.splitext(a.json)[0] + ".png"
    return a


def mount_opts(a):
    o = {"backend": a.backend}
    for kv in filter(None, a.opts.split(",")):
        k, _, v = kv.partition("=")
        o[k] = v
    return o


def main():
    a = parse()
    if a.vidfs:
        common.VIDFS = os.path.abspath(a.vidfs)
    peers, skipped = available(a.peers)
    opts = mount_opts(a)
    log(f"[{NAME}] DataLoader, random {CLIP}-frame {SIDE}x{SIDE} clips, {a.files} files of "
        f"{a.seconds} s per size, workers {a.workers}, peers {peers}, vidfs {common.VIDFS} "
        f"-o {opts}; each run: at most {a.clips} clips, {a.time:g} s and a clip per worker")
    res, details = {}, {"clip": CLIP, "side": SIDE, "fps": FPS, "gop": GOP, "bframes": BFRAMES,
                        "files": a.files, "seconds": a.seconds, "workers": a.workers,
                        "max_clips": a.clips, "max_time": a.time, "backend": a.backend,
                        "mount_opts": opts, "peers": peers, "skipped": skipped,
                        "seed": a.seed, "torch": torch.__version__}
    for size in a.sizes:
        src, names = make_videos(size, a.files, a.seconds)
        store = os.path.join(VIDEOS, "loader", "store")
        with Mount(src, store, **opts) as m:  # indexes, once, onto the disk store
            build_indexes(m, names)
            times = {n: frame_times(m, n) for n in names}
            rng = random.Random(a.seed)
            items = []
            for _ in range(a.clips):
                n = rng.choice(names)
                items.append((n, rng.randrange(0, len(times[n]) - CLIP + 1)))
            details[f"check_{size}"] = check(m, src, items, times, peers)
        log(f"  {size}: {len(names)} files of {len(times[names[0]])} frames; first clip, mean "
            f"|peer - vidfs|: {details[f'check_{size}']}")
        res[size] = {}
        for w in a.workers:
            r = res[size][str(w)] = {}
            for p in peers:
                if p == "vidfs":
                    with Mount(src, store, **opts) as m:
                        build_indexes(m, names)
                        r[p] = run_loader(p, m.mnt, items, times, w, a.clips, a.time)
                        st = m.stats()
                        r[p]["decodes_per_frame"] = round(decodes_per_frame(st), 3)
                        r[p]["stats"] = st
                        r[p]["memory"] = m.memory()
                else:
                    r[p] = run_loader(p, src, items, times, w, a.clips, a.time)
                extra = (f", {r[p]['decodes_per_frame']:.2f} decodes per delivered frame"
                         if p == "vidfs" else "")
                log(f"  {size} {w:2d} workers {LABEL[p]:>6}: {r[p]['clips_s']:7.2f} clips/s "
                    f"({r[p]['clips']} clips in {r[p]['seconds']:.1f} s){extra}")
    details["results"] = res
    md = table(res, a.sizes, a.workers, peers)
    details["table"] = md
    log(f"\n{md}\n")
    for p, why in skipped.items():
        log(f"  {LABEL[p]} was skipped: {why}")
    rows = summary_rows(res, a.sizes, a.workers, peers, a.backend) if "vidfs" in peers else []
    print_rows(rows)
    if "vidfs" in peers:
        details["peak_rss_mib"] = max(res[s][str(w)]["vidfs"]["memory"]["peak_rss_mib"]
                                      for s in a.sizes for w in a.workers)
    save(NAME, rows, details, path=a.json)
    plot(res, a.sizes, a.workers, peers, a.backend, a.plot)


if __name__ == "__main__":
    sys.exit(main())
