#!/usr/bin/python3
"""Many short clips: 200 two-second 360p H.264 clips (copies of 4 generated ones, with
distinct inodes, so each has its own index), all frames of each as nv12.

- vidfs pooled: one open+read per frame file, default pool (decoders reused across clips);
- vidfs pool_size=1: the same with a single decoder;
- vidfs batch: one `frames/0-N.nv12` per clip;
- peer, a fresh decoder per clip: PyAV in-process opens each clip and decodes all its
  frames to nv12.
Each vidfs run is a fresh mount whose indexes are on disk from an earlier mount."""
import sys
import os
import time

import av

from common import (QUICK, Mount, VIDEOS, copies, ffmpeg_gen, log, print_rows, read_count,
                    row, save, stat_summary, video_dir)

NAME = "clips"
NCLIPS = 50 if QUICK else 200
FRAMES = 50  # 2 s at 25 fps


def vidfs_run(src, cache, names, mode, **opts):
    with Mount(src, cache, **opts) as m:
        t = time.perf_counter()
        frames = 0
        for name in names:
            d = m.path(name, "frames")
            if mode == "batch":
                read_count(f"{d}/0-{FRAMES}.nv12")
                frames += FRAMES
            else:
                for i in range(FRAMES):
                    read_count(f"{d}/{i}.nv12")
                    frames += 1
        dt = time.perf_counter() - t
        return {"fps": frames / dt, "seconds": dt, "frames": frames,
                "stats": stat_summary(m.stats()), "memory": m.memory(), "opts": opts}


def pyav_run(src, names):
    t = time.perf_counter()
    frames = 0
    for name in names:
        with av.open(os.path.join(src, name)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            for f in c.decode(s):
                f.to_ndarray(format="nv12")
                frames += 1
    dt = time.perf_counter() - t
    return {"fps": frames / dt, "seconds": dt, "frames": frames}


def main():
    log(f"[{NAME}] {NCLIPS} two-second 360p clips, all frames, nv12")
    gen = video_dir("clips-gen")
    srcs = [ffmpeg_gen(os.path.join(gen, f"c{k}.mp4"), "640x360", 2, gop=50,
                       src=("testsrc2", "testsrc", "smptehdbars", "rgbtestsrc")[k])
            for k in range(4)]
    src = video_dir("clips")
    names = [f"clip{i:03d}.mp4" for i in range(NCLIPS)]
    for k in range(4):
        copies(srcs[k], src, names[k::4])
    cache = os.path.join(VIDEOS, "store-clips")
    with Mount(src, cache) as m:  # the indexes, once
        for name in names:
            os.stat(m.path(name, "meta.json"))
            read_count(m.path(name, "meta.json"))

    res = {"pyav_fresh": pyav_run(src, names)}
    log(f"  PyAV, a fresh decoder per clip: {res['pyav_fresh']['fps']:.0f} fps")
    for key, mode, opts in (("vidfs_pooled", "files", {}),
                            ("vidfs_pool1", "files", {"pool_size": 1}),
                            ("vidfs_batch", "batch", {})):
        r = vidfs_run(src, cache, names, mode, **opts)
        res[key] = r
        log(f"  {key}: {r['fps']:.0f} fps  stats {r['stats']}")
        log(f"    peak RSS {r['memory']['peak_rss_mib']} MiB (cache_mb={r['memory']['cache_mb']})")
    peer = res["pyav_fresh"]["fps"]
    rows = [row(f"{NCLIPS} clips 360p, frame files, pooled vs PyAV fresh", res["vidfs_pooled"]["fps"],
                peer, "fps", None),
            row(f"{NCLIPS} clips 360p, frame files, pool_size=1 vs PyAV fresh",
                res["vidfs_pool1"]["fps"], peer, "fps", None),
            row(f"{NCLIPS} clips 360p, batch per clip vs PyAV fresh", res["vidfs_batch"]["fps"],
                peer, "fps", None)]
    print_rows(rows)
    save(NAME, rows, {"clips": NCLIPS, "frames_per_clip": FRAMES, "runs": res,
                      "peak_rss_mib": max(r["memory"]["peak_rss_mib"] for k, r in res.items()
                                          if k.startswith("vidfs"))},
         plot=(f"{NCLIPS} 2 s 360p clips, all frames (nv12)", [
             ("PyAV fresh/clip", peer), ("vidfs pooled", res["vidfs_pooled"]["fps"]),
             ("vidfs pool_size=1", res["vidfs_pool1"]["fps"]),
             ("vidfs batch", res["vidfs_batch"]["fps"])], "frames/s"))


if __name__ == "__main__":
    main()
