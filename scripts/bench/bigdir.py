#!/usr/bin/python3
"""Big folders: `ls -l` of a folder of N tiny videos (copies of one 1 s 64x64 clip, distinct
inodes) on the mount against `ls -l` of the same folder on the source, measured in the same
run; the mount cold (fresh mount, empty store: nothing indexed) and warm (repeated). Each
round times the source right after the mount, and the ratio printed is the median of the
rounds' ratios (a loaded machine moves both).

Also `ls -l` inside one video directory (peer: `ls -l` of a source folder with one file)
and `stat` of frames.csv of a long video (peer: `stat` of its meta.json on the same mount,
the media already open).

    python3 scripts/bench/bigdir.py [--quick] [--n N] [--rounds R]
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from statistics import median

from common import (QUICK, Mount, VIDEOS, copies, ffmpeg_gen, log, print_rows, row, save,
                    video_dir)

NAME = "bigdir"


def arg(name, default):
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


N = arg("--n", 500 if QUICK else 2000)
REPEAT = 3 if QUICK else 5
ROUNDS = arg("--rounds", 3 if QUICK else 5)
LONG_FRAMES = 30000 if QUICK else 100000


def ls_l(path):
    """Seconds of one `ls -l PATH` (output discarded)."""
    t = time.perf_counter()
    subprocess.run(["ls", "-l", path], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def best(fn, *args):
    return min(fn(*args) for _ in range(REPEAT))


def stat_time(path, reps=200):
    t = time.perf_counter()
    for _ in range(reps):
        os.stat(path)
    return (time.perf_counter() - t) / reps


def main():
    log(f"[{NAME}] ls -l of {N} videos, mount vs source")
    tiny = ffmpeg_gen(os.path.join(video_dir("bigdir-gen"), "tiny.mp4"), "64x64", 1)
    long_ = ffmpeg_gen(os.path.join(video_dir("bigdir-gen"), f"long{LONG_FRAMES}.mp4"),
                       "32x32", LONG_FRAMES // 25, src="color", preset="ultrafast")
    src = video_dir(f"bigdir-{N}")
    names = [f"v{i:05d}.mp4" for i in range(N)]
    copies(tiny, src, names)
    one = tempfile.mkdtemp(prefix="vidfs-bench-one-")
    shutil.copyfile(tiny, os.path.join(one, "v.mp4"))
    longdir = video_dir("bigdir-long")
    copies(long_, longdir, ["long.mp4"])

    res = {"n": N, "rounds": []}
    cache = tempfile.mkdtemp(prefix="vidfs-bench-store-")
    try:
        for r in range(ROUNDS):
            shutil.rmtree(cache, ignore_errors=True)
            with Mount(src, cache) as m:
                cold, cold_src = ls_l(m.mnt), ls_l(src)
                warm, warm_src = best(ls_l, m.mnt), best(ls_l, src)
            res["rounds"].append({"cold_s": cold, "cold_source_s": cold_src, "warm_s": warm,
                                  "warm_source_s": warm_src})
            log(f"  round {r}: ls -l cold {cold * 1e3:.1f} ms (source {cold_src * 1e3:.1f}), "
                f"warm {warm * 1e3:.1f} ms (source {warm_src * 1e3:.1f})")
        for key in ("cold", "warm"):
            rs = res["rounds"]
            res[key + "_ratio"] = median([x[key + "_s"] / x[key + "_source_s"] for x in rs])
            res[key + "_s"] = median([x[key + "_s"] for x in rs])
            res[key + "_source_s"] = median([x[key + "_source_s"] for x in rs])
        with Mount(src, cache) as m:
            res["video_dir_s"] = best(ls_l, m.path(names[0]))
            res["one_file_s"] = best(ls_l, one)
            log(f"  ls -l of one video dir {res['video_dir_s'] * 1e3:.2f} ms, "
                f"of a one-file source dir {res['one_file_s'] * 1e3:.2f} ms")
            res["memory"] = m.memory()
        with Mount(longdir, cache) as m:
            csv, meta = m.path("long.mp4", "frames.csv"), m.path("long.mp4", "meta.json")
            t = time.perf_counter()
            os.stat(meta)  # opens (indexes) the media
            res["long_open_s"] = time.perf_counter() - t
            t = time.perf_counter()
            size = os.stat(csv).st_size
            res["csv_first_stat_s"] = time.perf_counter() - t
            times = [(stat_time(csv, 100), stat_time(meta, 100)) for _ in range(REPEAT)]
            res["csv_stat_s"] = min(t[0] for t in times)  # interleaved: load moves both
            res["meta_stat_s"] = min(t[1] for t in times)
            res["csv_bytes"] = size
            log(f"  long video ({LONG_FRAMES} frames, frames.csv {size} bytes): stat "
                f"frames.csv first {res['csv_first_stat_s'] * 1e3:.2f} ms, then "
                f"{res['csv_stat_s'] * 1e6:.0f} us; meta.json {res['meta_stat_s'] * 1e6:.0f} us")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(one, ignore_errors=True)

    rows = [
        row(f"ls -l {N} videos, cold mount vs source", res["cold_s"], res["cold_source_s"], "s",
            0.05, higher_better=False),
        row(f"ls -l {N} videos, warm mount vs source", res["warm_s"], res["warm_source_s"], "s",
            0.05, higher_better=False),
        row("ls -l of one video dir vs a one-file source dir", res["video_dir_s"],
            res["one_file_s"], "s", None, higher_better=False),
        row(f"stat frames.csv ({LONG_FRAMES} frames) vs stat meta.json", res["csv_stat_s"],
            res["meta_stat_s"], "s", None, higher_better=False),
    ]
    print_rows(rows)
    for key in ("cold", "warm"):
        log(f"  {key}: mount takes {res[key + '_ratio']:.1f}x the source's time, median of "
            f"{ROUNDS} rounds (goal <= 20x)")
    save(NAME, rows, res)


if __name__ == "__main__":
    main()
