#!/usr/bin/python3
"""A training loader: 4 worker processes each reading random 16-frame clips from 50 short
720p videos (copies of 5 generated 4 s clips, GOP 50), clips/s.

- vidfs: one batch file per clip, `frames/A-(A+16).rgb` (full size, HWC) or
  `frames_224x224/A-(A+16).rgbp` (CHW), read with one open, as an ndarray;
- peer: the same workers with PyAV in-process: open, seek to the keyframe at or before
  frame A, decode the 16 frames, frame.to_ndarray(format='rgb24') (full size) or
  frame.reformat(224, 224, 'rgb24') then CHW (224x224).
The same random (video, A) list for both. vidfs runs on a fresh mount whose indexes are on
disk from an earlier mount."""
import sys
import multiprocessing as mp
import os
import random
import time

import av
import numpy as np

from common import (QUICK, Mount, VIDEOS, copies, ffmpeg_gen, frame_times, log, print_rows,
                    read_file, row, save, stat_summary, video_dir)

NAME = "loader"
WORKERS = 4
CLIP = 16
NVIDEOS = 50
W, H = 1280, 720


def vidfs_work(args):
    mnt, items, view = args
    for name, a in items:
        if view == "full":
            b = read_file(os.path.join(mnt, name, "frames", f"{a}-{a + CLIP}.rgb"))
            x = np.frombuffer(b, np.uint8).reshape(CLIP, H, W, 3)
        else:
            b = read_file(os.path.join(mnt, name, "frames_224x224", f"{a}-{a + CLIP}.rgbp"))
            x = np.frombuffer(b, np.uint8).reshape(CLIP, 3, 224, 224)
        assert x.shape[0] == CLIP
    return len(items)


def pyav_work(args):
    src, items, view, times = args
    for name, a in items:
        with av.open(os.path.join(src, name)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            tb = s.time_base
            start = s.start_time or 0
            pts = start + int(round(times[name][a] / tb))
            c.seek(pts, stream=s, backward=True, any_frame=False)
            out = []
            for f in c.decode(s):
                if f.pts is None or f.pts < pts:
                    continue
                if view == "full":
                    out.append(f.to_ndarray(format="rgb24"))
                else:
                    out.append(f.reformat(224, 224, "rgb24").to_ndarray().transpose(2, 0, 1))
                if len(out) == CLIP:
                    break
            x = np.stack(out)
            assert x.shape[0] == CLIP
    return len(items)


def run_pool(fn, jobs):
    with mp.Pool(WORKERS) as p:
        t = time.perf_counter()
        n = sum(p.map(fn, jobs, chunksize=1))
        return n / (time.perf_counter() - t)


def main():
    per_worker = {"full": 6 if QUICK else 15, "224": 10 if QUICK else 25}
    log(f"[{NAME}] {WORKERS} workers, random {CLIP}-frame clips of {NVIDEOS} 720p videos")
    gen = video_dir("loader-gen")
    kinds = ("testsrc2", "testsrc", "smptehdbars", "rgbtestsrc", "testsrc2")
    srcs = [ffmpeg_gen(os.path.join(gen, f"v{k}.mp4"), f"{W}x{H}", 4, gop=50, src=kinds[k])
            for k in range(5)]
    src = video_dir("loader")
    names = [f"video{i:02d}.mp4" for i in range(NVIDEOS)]
    for k in range(5):
        copies(srcs[k], src, names[k::5])
    cache = os.path.join(VIDEOS, "store-loader")
    with Mount(src, cache) as m:  # the indexes, once
        times = {n: frame_times(m, n) for n in names}
    rng = random.Random(7)
    rows, details = [], {"workers": WORKERS, "videos": NVIDEOS, "size": f"{W}x{H}"}
    bars = []
    for view in ("full", "224"):
        items = []
        for _ in range(WORKERS * per_worker[view]):
            name = rng.choice(names)
            items.append((name, rng.randrange(0, len(times[name]) - CLIP + 1)))
        chunks = [items[w::WORKERS] for w in range(WORKERS)]
        peer = run_pool(pyav_work, [(src, c, view, {n: times[n] for n, _ in c})
                                    for c in chunks])
        with Mount(src, cache) as m:
            v = run_pool(vidfs_work, [(m.mnt, c, view) for c in chunks])
            st, mem = stat_summary(m.stats()), m.memory()
        label = "rgb 1280x720" if view == "full" else "rgbp 224x224"
        log(f"  {label}: vidfs {v:.2f} clips/s, PyAV {peer:.2f} clips/s  stats {st}")
        log(f"    peak RSS {mem['peak_rss_mib']} MiB (cache_mb={mem['cache_mb']})")
        rows.append(row(f"loader 4 workers, 16-frame clips, {label}", v, peer, "clips/s", None))
        details[view] = {"clips": len(items), "vidfs_clips_s": v, "pyav_clips_s": peer,
                         "stats": st, "memory": mem}
        bars += [(f"PyAV {view}", peer), (f"vidfs {view}", v)]
    print_rows(rows)
    details["peak_rss_mib"] = max(details[v]["memory"]["peak_rss_mib"] for v in ("full", "224"))
    save(NAME, rows, details, plot=("loader: 4 workers, 16-frame clips, 720p", bars, "clips/s"))


if __name__ == "__main__":
    main()
