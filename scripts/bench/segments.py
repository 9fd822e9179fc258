#!/usr/bin/python3
"""Segments benchmark: 10 random 5-second segments of a long 1080p file, read through a
vidfs mount, against the ffmpeg CLI producing the same segments with the same encoder and
settings (input -ss S -to E); then copy segments against `ffmpeg -c copy`. Prints JSON.

    /usr/bin/python3 scripts/bench/segments.py [--vidfs build/vidfs] [--work /tmp/vidfs-bench]
        [--count 10] [--length 5] [--seed 1] [-o key=value ...]

The source (60 s of 1080p testsrc2, x264, 25 fps, default GOP of 250) is generated once
into WORK/src. Each segment is produced from scratch (a fresh cache directory), so the
numbers are encodes, not store hits. Both sides write mp4 with the index at the front.
"""

import os
import sys


import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

# the [segments] defaults of config/config.h, as ffmpeg CLI options
X264 = {"preset": "fast", "crf": "23", "g": "250", "bf": "2"}


def make_source(path, seconds):
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=1920x1080:rate=25:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-b:a", "96k", tmp], check=True)
    os.replace(tmp, path)


def mount(vidfs, src, mnt, cache, opts):
    os.makedirs(mnt, exist_ok=True)
    o = ",".join([f"cache_dir={cache}"] + opts)
    proc = subprocess.Popen([vidfs, "-f", "-o", o, src, mnt], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(os.path.dirname(cache), "vidfs.log"), "ab"))
    t0 = time.monotonic()
    while not os.path.ismount(mnt):
        if proc.poll() is not None or time.monotonic() - t0 > 30:
            raise SystemExit("vidfs did not mount")
        time.sleep(0.05)
    return proc


def unmount(proc, mnt):
    subprocess.call(["fusermount3", "-u", mnt])
    proc.wait(timeout=30)


def timed(fn):
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path],
                         capture_output=True, text=True).stdout.strip()
    return int(out or 0)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vidfs", default=os.environ.get("VIDFS_BIN",
                                                      os.path.join(REPO, "build", "vidfs")))
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
    make_source(src, args.seconds)
    rng = random.Random(args.seed)
    starts = [round(rng.uniform(0, args.seconds - args.length - 0.5), 2)
              for _ in range(args.count)]

    run = tempfile.mkdtemp(prefix="run-", dir=args.work)
    mnt, cache, out = (os.path.join(run, d) for d in ("mnt", "cache", "out"))
    os.makedirs(out)
    proc = mount(args.vidfs, src_dir, mnt, cache, args.opts)
    result = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                          "system": platform.platform()},
              "source": {"path": src, "size": os.path.getsize(src), "seconds": args.seconds,
                         "video": "1920x1080 25 fps h264 (x264 veryfast, GOP 250)",
                         "audio": "aac"},
              "settings": dict(X264, audio="copy"), "segments": []}
    try:
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
        with open(os.path.join(mnt, ".vidfs", "stats.json")) as f:
            result["stats"] = json.load(f).get("segments")
    finally:
        unmount(proc, mnt)
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
