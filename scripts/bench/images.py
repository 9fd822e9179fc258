#!/usr/bin/python3
"""Image frames: every frame of a 1080p H.264 clip through the mount as jpg (and png), one
open+read per frame file in order, against
- the ffmpeg CLI writing the same images (`ffmpeg -i F -q:v Q DIR/%d.jpg`, the bytes of
  vidfs's jpg; `-pix_fmt rgb24 DIR/%d.png`), which decodes and encodes in one pipeline;
- ffmpegfs (Debian's; `--desttype=jpg` frame sets, issue 15's peer): every jpg in order
  (goal: vidfs >= 1.5x) and 30 random ones (goal >= 4x), each side on a fresh mount with
  an empty cache; skipped, and said so, when ffmpegfs is not installed.
Each vidfs run is a fresh mount (index on disk from an earlier mount, frame cache empty)."""
import os
import random
import shutil
import subprocess
import tempfile
import time

from common import (QUICK, Mount, log, print_rows, read_count, row, save, seq_video,
                    stat_summary)

NAME = "images"
JPEG_Q = 3  # the jpeg_quality default


def ffmpeg_fps(path, fmt, n):
    out = tempfile.mkdtemp(prefix="vidfs-bench-img-")
    pix = ["-q:v", str(JPEG_Q)] if fmt == "jpg" else ["-pix_fmt", "rgb24"]
    try:
        t = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-frames:v", str(n)] +
                       pix + [os.path.join(out, "%d." + fmt)], check=True)
        return n / (time.perf_counter() - t)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def read_fps(names):
    t = time.perf_counter()
    for name in names:
        read_count(name)
    return len(names) / (time.perf_counter() - t)


def vidfs_fps(src, cache, video, fmt, frames):
    with Mount(src, cache) as m:
        d = m.path(video, "frames")
        fps = read_fps([f"{d}/{i}.{fmt}" for i in frames])
        s = m.stats()
        return fps, stat_summary(s), s.get("images", {}), m.memory()


def ffmpegfs_fps(src, video, frames):
    """jpg frame set of ffmpegfs (frames numbered from 1 there), fresh mount and cache;
    None without ffmpegfs."""
    if not shutil.which("ffmpegfs"):
        return None
    mnt, cache = tempfile.mkdtemp(prefix="vidfs-bench-ffs-"), tempfile.mkdtemp()
    try:
        subprocess.run(["ffmpegfs", "--desttype=jpg", f"--cachepath={cache}", src, mnt],
                       check=True, capture_output=True)
        d = os.path.join(mnt, video)
        return read_fps([os.path.join(d, f"{i + 1:06d}.jpg") for i in frames])
    finally:
        subprocess.run(["fusermount", "-u", mnt], capture_output=True)
        shutil.rmtree(cache, ignore_errors=True)
        os.rmdir(mnt)


def ffmpegfs_rows(src, cache, video, n, details):
    """vidfs against ffmpegfs's jpg frame sets: all in order, then 30 random."""
    picks = random.Random(15).sample(range(n), min(30, n))
    rows = []
    for what, frames, goal in (("in order", list(range(n)), 1.5), ("30 random", picks, 4)):
        peer = ffmpegfs_fps(src, video, frames)
        if peer is None:
            log("  ffmpegfs: not installed (apt-get install ffmpegfs): its rows are skipped")
            details["ffmpegfs"] = "not installed"
            return []
        v = vidfs_fps(src, cache, video, "jpg", frames)[0]
        log(f"  jpg {what}: ffmpegfs {peer:.1f} fps, vidfs {v:.1f} fps")
        details[f"ffmpegfs_{what.replace(' ', '_')}"] = {"ffmpegfs_fps": peer, "vidfs_fps": v}
        rows.append(row(f"1080p jpg frames, {what}, cold vs ffmpegfs frame set", v, peer,
                        "fps", goal))
    return rows


def main():
    log(f"[{NAME}] 1080p H.264, frames in order as jpg and png")
    src, path, video, cache, n = seq_video()
    if QUICK:
        n = min(n, 100)
    rows, details = [], {"frames": n}
    for fmt in ("jpg", "png"):
        ff = ffmpeg_fps(path, fmt, n)
        v, st, img, mem = vidfs_fps(src, cache, video, fmt, range(n))
        log(f"  {fmt}: ffmpeg CLI {ff:.1f} fps, vidfs in order {v:.1f} fps  images {img}")
        details[fmt] = {"ffmpeg_fps": ff, "vidfs_fps": v, "stats": st, "images": img,
                        "memory": mem}
        rows.append(row(f"{n} 1080p {fmt} frames in order vs ffmpeg CLI image2", v, ff, "fps",
                        None))
    rows += ffmpegfs_rows(src, cache, video, n, details)
    print_rows(rows)
    details["peak_rss_mib"] = max(details[f]["memory"]["peak_rss_mib"] for f in ("jpg", "png"))
    save(NAME, rows, details, plot=(f"{n} 1080p frames in order", [
        ("ffmpeg CLI jpg", details["jpg"]["ffmpeg_fps"]), ("vidfs jpg", details["jpg"]["vidfs_fps"]),
        ("ffmpeg CLI png", details["png"]["ffmpeg_fps"]), ("vidfs png", details["png"]["vidfs_fps"])],
        "frames/s"))


if __name__ == "__main__":
    main()
