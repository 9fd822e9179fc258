#!/usr/bin/python3
"""Sequential: every frame of a 1080p H.264 clip through the mount as nv12, vs
`ffmpeg -i F -f rawvideo -pix_fmt nv12 - > /dev/null`. Goal: >= 0.95 of ffmpeg's fps.

vidfs is read two ways, each from a fresh mount (index on disk from an earlier mount,
frame cache empty): one open+read per frame file in order (what a loader does), and one
`cat` of the batch file frames/0-N.nv12. Also with cache_mb=64 (a small frame cache, so
the decoder recycles its buffers) to show what filling the frame cache costs.

On a shared machine the fps of both sides move with the load; the CPU seconds each side
spent (ffmpeg's; the daemon's and the reader's for vidfs) move much less, and are printed
beside them."""
import os
import resource
import subprocess
import time

from common import (QUICK, Mount, log, meta, print_rows, read_count, row, save, seq_video,
                    stat_summary)

NAME = "sequential"


def cpu_seconds(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def proc_cpu_seconds(pid):
    """User + system seconds of process pid so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ffmpeg_run(path, n):
    """(fps, CPU seconds) of the CLI writing every frame as nv12 to /dev/null."""
    c = cpu_seconds(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "nv12",
                    "-"], stdout=subprocess.DEVNULL, check=True)
    return n / (time.perf_counter() - t), cpu_seconds(resource.RUSAGE_CHILDREN) - c


def vidfs_run(src, cache, video, mode, **opts):
    with Mount(src, cache, **opts) as m:
        n = meta(m, video)["num_frames"]
        d = m.path(video, "frames")
        daemon = proc_cpu_seconds(m.proc.pid)
        reader = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        size = 0
        if mode == "files":
            for i in range(n):
                size += read_count(f"{d}/{i}.nv12")
        else:
            subprocess.run(["cat", f"{d}/0-{n}.nv12"], stdout=subprocess.DEVNULL, check=True)
            size = os.path.getsize(f"{d}/0-{n}.nv12")
        dt = time.perf_counter() - t
        daemon = proc_cpu_seconds(m.proc.pid) - daemon
        reader = cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN) - reader
        return {"fps": n / dt, "seconds": dt, "bytes": size, "frames": n,
                "cpu_daemon": round(daemon, 2), "cpu_reader": round(reader, 2),
                "stats": stat_summary(m.stats()), "memory": m.memory(), "opts": opts}


def main():
    log(f"[{NAME}] 1080p H.264, 10 s, 25 fps, x264 veryfast")
    src, path, video, cache, n = seq_video()
    reps = 1 if QUICK else 2
    ff, ff_cpu = max(ffmpeg_run(path, n) for _ in range(reps))
    log(f"  ffmpeg CLI: {ff:.1f} fps, {ff_cpu:.2f} CPU s")
    runs = {}
    for mode in ("files", "batch"):
        best = max((vidfs_run(src, cache, video, mode) for _ in range(reps)),
                   key=lambda r: r["fps"])
        runs[mode] = best
        log(f"  vidfs {mode}: {best['fps']:.1f} fps, {best['cpu_daemon']:.2f} + "
            f"{best['cpu_reader']:.2f} CPU s (daemon + reader)  stats {best['stats']}")
        log(f"    peak RSS {best['memory']['peak_rss_mib']} MiB (cache_mb={best['memory']['cache_mb']})")
    small = vidfs_run(src, cache, video, "files", cache_mb=64)
    runs["files_cache64"] = small
    log(f"  vidfs files, cache_mb=64: {small['fps']:.1f} fps  stats {small['stats']}")
    log(f"    peak RSS {small['memory']['peak_rss_mib']} MiB (cache_mb=64)")
    rows = [row("sequential 1080p nv12, frame files", runs["files"]["fps"], ff, "fps", 0.95),
            row("sequential 1080p nv12, cat batch", runs["batch"]["fps"], ff, "fps", 0.95)]
    print_rows(rows)
    save(NAME, rows, {"frames": n, "ffmpeg_fps": ff, "ffmpeg_cpu_s": ff_cpu, "vidfs": runs,
                      "peak_rss_mib": max(r["memory"]["peak_rss_mib"] for r in runs.values())},
         plot=(f"sequential 1080p H.264, {n} frames, nv12", [
             ("ffmpeg CLI", ff), ("vidfs frame files", runs["files"]["fps"]),
             ("vidfs cat batch", runs["batch"]["fps"]),
             ("vidfs files cache_mb=64", small["fps"])], "frames/s"))


if __name__ == "__main__":
    main()
