#!/usr/bin/python3
"""Probe: many readers at once on one mount (issue 13, points 2 and 3).

N reader threads read random full-size frames, 16-frame 224x224 batches and whole frame
files in order from a set of videos for a fixed time, on a fresh mount for each cache_mb
given. Prints, per mount, the slowest read, the 99th percentile, reads done, and the
daemon's peak RSS next to cache_mb; fails (exit 1) when a read took longer than
--max-wait seconds or a read failed.

  /usr/bin/python3 scripts/probe/readers.py [--readers 64] [--seconds 60]
      [--cache-mb 64,1024] [--max-wait 10] [--json PATH] [--quick]
"""
import argparse
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
import common  # noqa: E402


def videos(quick):
    d = common.video_dir("probe")
    n = 4 if quick else 16
    size = "640x360" if quick else "1280x720"
    src = common.ffmpeg_gen(os.path.join(d, "..", "probe-src.mp4"), size, 10, fps=30, gop=60)
    return common.copies(src, d, [f"v{i}.mp4" for i in range(n)])


def reader(mnt, names, nframes, seed, until, out):
    rnd = random.Random(seed)
    while time.time() < until:
        name = rnd.choice(names)
        kind = rnd.random()
        if kind < 0.4:
            a = rnd.randrange(nframes - 16)
            path, what = mnt.path(name, "frames_224x224", f"{a}-{a + 16}.rgbp"), "batch"
        elif kind < 0.8:
            path, what = mnt.path(name, "frames", f"{rnd.randrange(nframes)}.nv12"), "nv12"
        else:
            path, what = mnt.path(name, "frames", f"{rnd.randrange(nframes)}.rgb"), "rgb"
        t = time.perf_counter()
        try:
            common.read_count(path)
            wait = time.perf_counter() - t
            out["waits"].append(wait)
            out["slowest"][what] = max(out["slowest"].get(what, 0), round(wait, 3))
        except OSError as e:
            out["errors"].append(f"{path}: {e}")


def probe(src, cache_mb, readers, seconds):
    cache = os.path.join(common.RESULTS, "probe-store")
    with common.Mount(src, cache, cache_mb=cache_mb) as mnt:
        names = sorted(os.listdir(mnt.mnt))
        names = [n for n in names if n.endswith(".mp4")]
        nframes = min(common.meta(mnt, n)["num_frames"] for n in names)
        out = {"waits": [], "errors": [], "slowest": {}}
        until = time.time() + seconds
        ts = [threading.Thread(target=reader, args=(mnt, names, nframes, i, until, out))
              for i in range(readers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        stats = mnt.stats()
        mem = mnt.memory()
    w = sorted(out["waits"])
    return {"cache_mb": cache_mb, "readers": readers, "reads": len(w),
            "errors": out["errors"][:5], "error_count": len(out["errors"]),
            "slowest_s": round(w[-1], 3) if w else None,
            "p99_s": round(w[int(len(w) * 0.99)], 3) if w else None,
            "slowest_by_kind_s": out["slowest"],
            "decodes_per_frame_served": stats.get("decodes_per_frame_served"),
            **mem}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--readers", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--cache-mb", default="64,1024")
    ap.add_argument("--max-wait", type=float, default=10)
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    src = videos(a.quick)
    rows = []
    for mb in [int(x) for x in a.cache_mb.split(",")]:
        r = probe(src, mb, a.readers, 10 if a.quick else a.seconds)
        common.log(json.dumps(r))
        rows.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": common.machine(),
                       "rows": rows}, f, indent=2)
    bad = [r for r in rows if r["error_count"] or (r["slowest_s"] or 0) > a.max_wait]
    if bad:
        common.log(f"probe: FAILED: {len(bad)} mount(s) with errors or a read over "
                   f"{a.max_wait} s")
        return 1
    common.log("probe: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
