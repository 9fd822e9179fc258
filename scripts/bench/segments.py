#!/usr/bin/python3
"""Segments benchmark: 10 random 5-second segments of a long 1080p file, read through a
vidfs mount, against the ffmpeg CLI producing the same segments with the same encoder and
settings (input -ss S -to E); then copy segments against `ffmpeg -c copy`. Prints JSON.

    VIDFS_BIN=build/vidfs /usr/bin/python3 scripts/bench/segments.py [--work /tmp/vidfs-bench]
        [--count 10] [--length 5] [--seed 1] [-o key=value ...]

The source (60 s of 1080p testsrc2, x264, 25 fps, default GOP of 250) is generated once
into WORK/src. Each segment is produced from scratch (a fresh cache directory), so the
numbers are encodes, not store hits. Both sides write mp4 with the index at the front.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from common import Mount, ffmpeg_gen, machine

# the [segments] defaults of config/config.h, as ffmpeg CLI options
X264 = {"preset": "fast", "crf": "23", "g": "250", "bf": "2"}


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path],
                         capture_output=True, text=True).stdout.strip()
    return int(out or 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/vidfs-bench")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--length", type=float, default=5.0)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", dest="opts", action="append", default=[],
                    help="extra vidfs -o key=value (the CLI side keeps the x264 defaults)")
    args = ap.parse_args()

    src_dir = os.path.join(args.work, "src")
    src = os.path.join(src_dir, "long1080.mp4")
    ffmpeg_gen(src, "1920x1080", args.seconds, audio=True)
    rng = random.Random(args.seed)
    starts = [round(rng.uniform(0, args.seconds - args.length - 0.5), 2)
              for _ in range(args.count)]

    run = tempfile.mkdtemp(prefix="run-", dir=args.work)
    cache, out = os.path.join(run, "cache"), os.path.join(run, "out")
    os.makedirs(out)
    opts = dict(o.split("=", 1) for o in args.opts)
    result = {"machine": machine(),
              "source": {"path": src, "size": os.path.getsize(src), "seconds": args.seconds,
                         "video": "1920x1080 25 fps h264 (x264 veryfast, GOP 250)",
                         "audio": "aac"},
              "settings": dict(X264, audio="copy"), "segments": []}
    with Mount(src_dir, cache, **opts) as m:
        mnt = m.mnt
        seg = os.path.join(mnt, "long1080.mp4", "segments")
        # the first open of a video scans its packets (once; the index is then stored)
        result["index_s"] = timed(lambda: os.stat(os.path.join(mnt, "long1080.mp4",
                                                               "meta.json")))
        for mode in ("transcode", "copy"):
            for s in starts:
                e = round(s + args.length, 2)
                # one spelling: "12" and "12.5", never "12.0" or "12.50"
                s_, e_ = (f"{t:.2f}".rstrip("0").rstrip(".") for t in (s, e))
                name = f"{s_}-{e_}.{'copy.' if mode == 'copy' else ''}mp4"
                mine = os.path.join(out, "vidfs-" + name)
                cli = os.path.join(out, "cli-" + name)
                t_vidfs = timed(lambda: shutil.copyfile(os.path.join(seg, name), mine))
                if mode == "copy":
                    codec = ["-c", "copy"]
                else:
                    codec = ["-c:v", "libx264"] + [x for k, v in X264.items()
                                                   for x in ("-" + k, v)] + ["-c:a", "copy"]
                cmd = (["ffmpeg", "-v", "error", "-nostdin", "-y", "-ss", str(s), "-to", str(e),
                        "-i", src] + codec + ["-movflags", "+faststart", cli])
                t_cli = timed(lambda: subprocess.run(cmd, check=True))
                result["segments"].append({
                    "mode": mode, "name": name, "vidfs_s": round(t_vidfs, 3),
                    "ffmpeg_s": round(t_cli, 3), "vidfs_frames": frames(mine),
                    "ffmpeg_frames": frames(cli)})
                print(f"{mode:9} {name:24} vidfs {t_vidfs:6.2f} s  ffmpeg {t_cli:6.2f} s",
                      file=sys.stderr, flush=True)
        result["stats"] = m.stats().get("segments")
    for mode in ("transcode", "copy"):
        rows = [r for r in result["segments"] if r["mode"] == mode]
        v = sum(r["vidfs_s"] for r in rows)
        c = sum(r["ffmpeg_s"] for r in rows)
        result[mode] = {"vidfs_total_s": round(v, 2), "ffmpeg_total_s": round(c, 2),
                        "speedup": round(c / v, 2) if v else None}
    shutil.rmtree(run, ignore_errors=True)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
