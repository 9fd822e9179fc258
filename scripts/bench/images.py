#!/usr/bin/python3
"""Image frames in order: every frame of a 1080p H.264 clip through the mount as jpg (and
png), one open+read per frame file in order, against the ffmpeg CLI writing the same
images (`ffmpeg -i F -q:v Q -pix_fmt yuvj444p DIR/%d.jpg`; `-pix_fmt rgb24 DIR/%d.png`),
which decodes and encodes in one pipeline. Each vidfs run is a fresh mount (index on disk
from an earlier mount, frame cache empty)."""
import os
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
    pix = ["-q:v", str(JPEG_Q), "-pix_fmt", "yuvj444p"] if fmt == "jpg" else ["-pix_fmt", "rgb24"]
    try:
        t = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-frames:v", str(n)] +
                       pix + [os.path.join(out, "%d." + fmt)], check=True)
        return n / (time.perf_counter() - t)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def vidfs_fps(src, cache, video, fmt, n):
    with Mount(src, cache) as m:
        d = m.path(video, "frames")
        t = time.perf_counter()
        for i in range(n):
            read_count(f"{d}/{i}.{fmt}")
        fps = n / (time.perf_counter() - t)
        s = m.stats()
        return fps, stat_summary(s), s.get("images", {}), m.memory()


def main():
    log(f"[{NAME}] 1080p H.264, frames in order as jpg and png")
    src, path, video, cache, n = seq_video()
    if QUICK:
        n = min(n, 100)
    rows, details = [], {"frames": n}
    for fmt in ("jpg", "png"):
        ff = ffmpeg_fps(path, fmt, n)
        v, st, img, mem = vidfs_fps(src, cache, video, fmt, n)
        log(f"  {fmt}: ffmpeg CLI {ff:.1f} fps, vidfs in order {v:.1f} fps  images {img}")
        details[fmt] = {"ffmpeg_fps": ff, "vidfs_fps": v, "stats": st, "images": img,
                        "memory": mem}
        rows.append(row(f"{n} 1080p {fmt} frames in order vs ffmpeg CLI image2", v, ff, "fps",
                        None))
    print_rows(rows)
    details["peak_rss_mib"] = max(details[f]["memory"]["peak_rss_mib"] for f in ("jpg", "png"))
    save(NAME, rows, details, plot=(f"{n} 1080p frames in order", [
        ("ffmpeg CLI jpg", details["jpg"]["ffmpeg_fps"]), ("vidfs jpg", details["jpg"]["vidfs_fps"]),
        ("ffmpeg CLI png", details["png"]["ffmpeg_fps"]), ("vidfs png", details["png"]["vidfs_fps"])],
        "frames/s"))


if __name__ == "__main__":
    main()
