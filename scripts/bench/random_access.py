#!/usr/bin/python3
"""Random access: 30 random frames of 1080p H.264 clips, nv12, one reader: 20 s with a
GOP of 250 (goals: 5x the CLI, 1.5x PyAV) and 60 s with a keyframe every 4 s (GOP 100;
goals: 3x the CLI, 1.2x PyAV).

- vidfs cold: a fresh mount (the index is on disk from an earlier mount, so no packet
  scan; the frame cache is empty and there are no decoders), one open+read per frame;
- ffmpeg CLI accurate seek per frame: `ffmpeg -ss T -i F -frames:v 1 -f rawvideo
  -pix_fmt nv12 -` (goal: vidfs cold >= 5x faster); the bytes of a few frames are
  compared with vidfs's;
- PyAV in-process: one container, per frame container.seek() to the keyframe at or before
  the pts, decode forward to the pts, frame as nv12 (goal: vidfs cold >= 1.5x faster);
- vidfs warm: the same 30 again on the same mount (goal: >= 20x faster than cold)."""
import sys
import os
import random as rnd
import subprocess
import time

import av
import numpy as np

from common import (QUICK, Mount, VIDEOS, ffmpeg_gen, frame_times, log, meta, print_rows,
                    read_file, row, save, stat_summary, video_dir)

NAME = "random"
N = 30


def ffmpeg_frame(path, t, fps):
    # -ss a quarter frame before the pts: the first frame at or after it is the one
    ss = max(0.0, t - 0.25 / fps)
    r = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{ss:.6f}", "-i", path, "-frames:v",
                        "1", "-f", "rawvideo", "-pix_fmt", "nv12", "-"],
                       stdout=subprocess.PIPE, check=True)
    return r.stdout


def pyav_frames(path, frames, times):
    """Seek + decode forward per frame, in one process; returns (seconds, [bytes])."""
    t0 = time.perf_counter()
    c = av.open(path)
    s = c.streams.video[0]
    s.thread_type = "AUTO"
    tb = s.time_base
    start = s.start_time or 0
    out = []
    for n in frames:
        pts = start + int(round(times[n] / tb))
        c.seek(pts, stream=s, backward=True, any_frame=False)
        for f in c.decode(s):
            if f.pts is not None and f.pts >= pts:
                out.append(f.to_ndarray(format="nv12").tobytes())
                break
    c.close()
    return time.perf_counter() - t0, out


# (file, seconds, GOP, CLI goal, PyAV goal): issue 15's two random-access rows
CASES = [("gop250_1080p.mp4", 20, 250, 5, 1.5), ("long_gop100_1080p.mp4", 60, 100, 3, 1.2)]


def measure(src, name, seconds, gop, goal_cli, goal_av):
    path = ffmpeg_gen(os.path.join(src, name), "1920x1080", seconds, gop=gop)
    video = os.path.basename(path)
    cache = os.path.join(VIDEOS, "store-random")
    with Mount(src, cache) as m:  # index scan once; the cold mount below finds it on disk
        times = frame_times(m, video)
        info = meta(m, video)
    fps = 25.0
    nf = len(times)
    frames = rnd.Random(1234).sample(range(nf), N)
    what = f"{seconds} s 1080p GOP-{gop}"
    log(f"  {what}: {nf} frames")

    with Mount(src, cache) as m:
        d = m.path(video, "frames")
        t = time.perf_counter()
        cold = [read_file(f"{d}/{n}.nv12") for n in frames]
        t_cold = time.perf_counter() - t
        s_cold = stat_summary(m.stats())
        t = time.perf_counter()
        # compared as they come, not kept: 30 more frames held in this process would cost
        # it fresh pages (0.5 s), which is not the mount's time
        warm_same = sum(read_file(f"{d}/{n}.nv12") == c for n, c in zip(frames, cold))
        t_warm = time.perf_counter() - t
        s_warm = stat_summary(m.stats())
        mem = m.memory()
    assert warm_same == N, "warm frames differ from cold ones"
    log(f"  vidfs cold: {t_cold:.2f} s ({t_cold / N * 1e3:.1f} ms/frame)  stats {s_cold}")
    log(f"  vidfs warm: {t_warm * 1e3:.1f} ms ({t_warm / N * 1e3:.2f} ms/frame)")
    log(f"    peak RSS {mem['peak_rss_mib']} MiB (cache_mb={mem['cache_mb']})")

    ff_frames = frames if not QUICK else frames[:10]
    t = time.perf_counter()
    ff = [ffmpeg_frame(path, times[n], fps) for n in ff_frames]
    t_ff = (time.perf_counter() - t) * N / len(ff_frames)
    same = sum(ff[i] == cold[i] for i in range(len(ff)))
    log(f"  ffmpeg CLI -ss per frame: {t_ff:.2f} s for {N} (measured {len(ff_frames)});"
        f" bytes equal to vidfs for {same}/{len(ff)} frames")

    t_av, pyav = pyav_frames(path, frames, times)
    same_av = sum(pyav[i] == cold[i] for i in range(N))
    log(f"  PyAV seek+decode: {t_av:.2f} s; bytes equal to vidfs for {same_av}/{N} frames")

    rows = [row(f"random 30 frames {what}, cold vs ffmpeg CLI -ss", t_cold, t_ff, "s",
                goal_cli, higher_better=False),
            row(f"random 30 frames {what}, cold vs PyAV seek+decode", t_cold, t_av, "s",
                goal_av, higher_better=False),
            row(f"random 30 frames {what}, warm vs cold", t_warm, t_cold, "s",
                20 if gop == 250 else None, higher_better=False)]
    details = {
        "frames": frames, "num_frames": nf, "keyframes": info.get("keyframes"),
        "vidfs_cold_s": t_cold, "vidfs_warm_s": t_warm, "ffmpeg_cli_s": t_ff,
        "ffmpeg_frames_measured": len(ff_frames), "pyav_s": t_av,
        "ffmpeg_bytes_equal": f"{same}/{len(ff)}", "pyav_bytes_equal": f"{same_av}/{N}",
        "stats_cold": s_cold, "stats_after_warm": s_warm, "memory": mem}
    bars = [("ffmpeg CLI -ss", t_ff), ("PyAV seek", t_av), ("vidfs cold", t_cold),
            ("vidfs warm", t_warm)]
    return rows, details, bars


def main():
    log(f"[{NAME}] {N} random frames of 1080p clips, one reader")
    src = video_dir("random")
    rows, details, bars = [], {"cold": "fresh mount, index kept on disk from an earlier "
                                       "mount, frame cache empty"}, []
    for name, seconds, gop, goal_cli, goal_av in CASES:
        r, det, b = measure(src, name, seconds, gop, goal_cli, goal_av)
        rows += r
        details[f"gop{gop}_{seconds}s"] = det
        bars += [(f"GOP {gop}: {label}", v) for label, v in b]
    print_rows(rows)
    save(NAME, rows, details,
         plot=(f"{N} random 1080p frames, seconds", bars, "seconds (lower is better)"))


if __name__ == "__main__":
    main()
