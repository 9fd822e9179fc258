#!/usr/bin/python3
"""GPU benchmarks (issue 7), each against its peer measured in the same run:

  python3 scripts/bench/gpu.py [--quick] [PART ...]
      PART: inprocess mount views360 random reuse cpu   (default: these)
            multigpu: the mount part again with gpus=all
            videos: only make the videos (e.g. to carry them to a machine without ffmpeg)

- inprocess: nvdec_bench, 1080p H.264 and HEVC, 7 and 14 threads on different files:
  our NVDEC backend (frames on the GPU, nv12 in host memory, 224x224 rgbp) vs FFmpeg's
  hwaccel cuda (frames on the GPU, av_hwframe_transfer_data to host);
- mount: 7 and 14 reader processes on different 1080p files through one vidfs mount
  (backend=nvdec): full-size nv12 (GB/s), the same frames again from the frame cache
  (the FUSE ceiling of the host), and 224x224 rgbp views against nvdec_bench's
  in-process view rate (goal: >= 90%);
- views360: 14 readers of 224x224 rgbp views of 360p files (goal >= 10000 frames/s), one
  file per frame and 16-frame batches;
- random: 30 random frames of 1080p H.264 with GOP 30 and GOP 250, 1 and 8 readers: a
  fresh mount (index on disk, no frames cached) vs nvdec_bench --seek (FFmpeg hwaccel
  cuda, seek to the keyframe and decode forward, in-process);
- reuse: nvdec_bench --reuse: 500 two-second clips at 360p (250 at 720p, 166 at 1080p),
  one decoder reconfigured vs a decoder per clip (goal >= 7x at 360p);
- cpu: the same mount reads with backend=cpu on every core, for comparison;
- multigpu (only when named): the mount part with gpus=all, against the same with one GPU.

Videos are made with the ffmpeg CLI into $BENCH_VIDEOS (default build/bench-videos);
results go to $BENCH_RESULTS/gpu.json. nvdec_bench: $NVDEC_BENCH, else
build/scripts/bench/nvdec_bench. Needs an NVIDIA GPU; prints what it measured as it goes.
"""
import json
import multiprocessing as mp
import os
import random
import re
import subprocess
import sys
import time

from common import (QUICK, REPO, VIDEOS, Mount, copies, ffmpeg_gen, log, print_rows,
                    read_count, row, save)

NVDEC_BENCH = os.environ.get("NVDEC_BENCH",
                             os.path.join(REPO, "build", "scripts", "bench", "nvdec_bench"))
SECONDS = 4 if QUICK else 8      # each timed mount read runs at most this long
DUR = 12 if QUICK else 30        # seconds of video per 1080p file
READERS = [7, 14]
VIEW = "frames_224x224"


def gen_hevc(path, size, seconds, fps=25):
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate={fps}:duration={seconds}", "-c:v", "libx265",
                    "-preset", "ultrafast", "-x265-params", "log-level=error",
                    "-pix_fmt", "yuv420p", "-tag:v", "hvc1", tmp], check=True)
    os.replace(tmp, path)
    return path


def file_set(name, make, n):
    """n distinct copies (own inodes, own indexes) of one generated clip."""
    d = os.path.join(VIDEOS, "gpu", name)
    src = make(os.path.join(VIDEOS, "gpu", name + ".mp4"))
    names = [f"{i:02d}.mp4" for i in range(n)]
    copies(src, d, names)
    return d, names


def nvdec_bench(*args):
    cmd = [NVDEC_BENCH] + [str(a) for a in args]
    log("  $ " + " ".join(os.path.relpath(a, REPO) if a.startswith(REPO) else a
                          for a in cmd))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        log("    " + line)
    return out


def fps_of(out, mode, threads):
    m = re.search(rf"^{re.escape(mode)}\s+threads\s+{threads}:.*= +(\d+) fps", out, re.M)
    return float(m.group(1)) if m else 0.0


# ------------------------------------------------------------------ mount readers

def _reader(args):
    """One reader process: frame files in order (or given), until the deadline."""
    mnt, video, sub, ext, frames, deadline, barrier = args
    barrier.wait()
    n = nbytes = 0
    for i in frames:
        if time.time() > deadline:
            break
        nbytes += read_count(os.path.join(mnt, video, sub, f"{i}.{ext}"))
        n += 1
    return n, nbytes, time.time()


def read_parallel(m, videos, sub, ext, frames_of, seconds=SECONDS):
    """len(videos) processes, reader i on videos[i]; returns (frames/s, bytes/s, frames)."""
    ctx = mp.get_context("fork")
    with ctx.Manager() as mgr, ctx.Pool(len(videos)) as pool:
        barrier = mgr.Barrier(len(videos) + 1)
        deadline = time.time() + seconds + 1
        res = pool.map_async(_reader, [(m.mnt, v, sub, ext, frames_of(v), deadline, barrier)
                                       for v in videos])
        barrier.wait()
        t0 = time.time()
        out = res.get()
    secs = max(r[2] for r in out) - t0
    frames = sum(r[0] for r in out)
    return frames / secs, sum(r[1] for r in out) / secs, frames


def nb_frames(m, video):
    with open(m.path(video, "meta.json")) as f:
        return json.load(f)["num_frames"]


# ------------------------------------------------------------------ parts

def part_inprocess(h264, hevc, rows, details):
    log("[inprocess] nvdec_bench, 1080p, frames decoded by threads on different files")
    for codec, (d, names) in (("H.264", h264), ("HEVC", hevc)):
        files = [os.path.join(d, n) for n in names]
        out = nvdec_bench("--threads", ",".join(map(str, READERS)),
                          "--modes", "nvdec-gpu,nvdec-host,nvdec-view,ffmpeg-gpu,ffmpeg-host",
                          *files)
        for t in READERS:
            r = {k: fps_of(out, k, t) for k in
                 ("nvdec-gpu", "nvdec-host", "nvdec-view", "ffmpeg-gpu", "ffmpeg-host")}
            details[f"inprocess_{codec}_{t}"] = r
            rows.append(row(f"in-process {codec} 1080p {t} streams, nv12 in host memory, vs "
                            "FFmpeg hwaccel + transfer", r["nvdec-host"], r["ffmpeg-host"],
                            "fps", 2.0, note=f"goal also >= 3000 fps: {r['nvdec-host']:.0f}"))
            rows.append(row(f"in-process {codec} 1080p {t} streams, frames on the GPU, vs FFmpeg",
                            r["nvdec-gpu"], r["ffmpeg-gpu"], "fps", None,
                            note=f"goal >= 3500 fps: {r['nvdec-gpu']:.0f}"))


def h264_mount(d, **opts):
    """A fresh backend=nvdec mount (empty frame cache); indexes kept on disk."""
    return Mount(d, os.path.join(VIDEOS, "gpu", "store-" + os.path.basename(d)),
                 backend="nvdec", pool_size=16, **opts)


def part_mount(h264, rows, details, gpus=None):
    d, names = h264
    log("[mount] readers through a backend=nvdec mount, 1080p H.264, a file each; a fresh "
        "mount for each measurement")
    extra = {"gpus": gpus} if gpus else {}
    with h264_mount(d, **extra) as m:
        n = nb_frames(m, names[0])
    for t in READERS:
        vids = names[:t]
        with h264_mount(d, **extra) as m:
            fps, bps, _ = read_parallel(m, vids, "frames", "nv12", lambda v: range(n))
            stats = m.stats()
        log(f"  {t} readers, nv12 1920x1080: {fps:.0f} fps, {bps / 1e9:.2f} GB/s "
            f"(by GPU: {stats['frames_decoded'].get('nvdec_by_gpu')})")
        # cached: the first 100 frames of each file, read once to fill, then timed
        first = range(min(100, n))
        with h264_mount(d, cache_mb=12288, **extra) as m:
            read_parallel(m, vids, "frames", "nv12", lambda v: first, seconds=60)
            cfps, cbps, _ = read_parallel(m, vids, "frames", "nv12", lambda v: list(first) * 50)
        log(f"  {t} readers, nv12 from the frame cache: {cfps:.0f} fps, {cbps / 1e9:.2f} GB/s")
        with h264_mount(d, **extra) as m:
            vfps, _, _ = read_parallel(m, vids, VIEW, "rgbp", lambda v: range(n))
        inproc = details.get(f"inprocess_H.264_{t}", {}).get("nvdec-view", 0)
        if not inproc:  # the in-process part did not run: measure the peer here
            inproc = fps_of(nvdec_bench("--threads", t, "--modes", "nvdec-view",
                                        *[os.path.join(d, v) for v in vids]), "nvdec-view", t)
        log(f"  {t} readers, 224x224 rgbp views: {vfps:.0f} fps (in-process {inproc:.0f})")
        tag = f"_gpus{gpus}" if gpus else ""
        details[f"mount_{t}{tag}"] = {"nv12_fps": fps, "nv12_GBps": bps / 1e9, "cached_fps": cfps,
                                      "cached_GBps": cbps / 1e9, "views_fps": vfps,
                                      "views_inprocess_fps": inproc, "stats_nv12": stats}
        what = f"mount {t} readers" + (f" (gpus={gpus})" if gpus else "")
        rows.append(row(f"{what}, 1080p nv12: GB/s vs the same mount serving cached frames",
                        bps / 1e9, cbps / 1e9, "GB/s", None, note=f"{fps:.0f} fps"))
        rows.append(row(f"{what}, 224x224 rgbp views of 1080p vs in-process", vfps, inproc,
                        "fps", 0.9))
        one = details.get(f"mount_{t}") if gpus else None
        if one:
            rows.append(row(f"{what}, 1080p nv12 vs the same with one GPU", fps, one["nv12_fps"],
                            "fps", None))


def part_views360(v360, rows, details):
    d, names = v360
    log("[views360] 14 readers, 224x224 rgbp views of 360p H.264, through the mount")
    with Mount(d, os.path.join(VIDEOS, "gpu", "store-360"), backend="nvdec", pool_size=16) as m:
        n = nb_frames(m, names[0])
        fps, _, _ = read_parallel(m, names, VIEW, "rgbp", lambda v: range(n))
    with Mount(d, os.path.join(VIDEOS, "gpu", "store-360"), backend="nvdec", pool_size=16) as m:
        batches = [f"{a}-{min(a + 16, n)}" for a in range(0, n, 16)]
        bfps, _, _ = read_parallel(m, names, VIEW, "rgbp", lambda v: batches)
        bfps *= 16  # frames, not batch files (the last batch may be shorter: a small bias)
    out = nvdec_bench("--threads", 14, "--modes", "nvdec-gpu,nvdec-view",
                      *[os.path.join(d, x) for x in names])
    inproc, decode = fps_of(out, "nvdec-view", 14), fps_of(out, "nvdec-gpu", 14)
    log(f"  frame files: {fps:.0f} fps; 16-frame batches: {bfps:.0f} fps; in-process "
        f"{inproc:.0f} fps (decode alone, frames left on the GPU: {decode:.0f} fps)")
    details["views360"] = {"files_fps": fps, "batch16_fps": bfps, "inprocess_fps": inproc,
                           "inprocess_decode_only_fps": decode}
    rows.append(row("mount 14 readers, 224x224 rgbp views of 360p, frame files (goal 10000 fps)",
                    fps, 10000, "fps", 1.0))
    rows.append(row("mount 14 readers, 224x224 rgbp views of 360p, 16-frame batch files",
                    bfps, 10000, "fps", 1.0))
    rows.append(row("mount 14 readers, 360p views (frame files) vs in-process", fps, inproc,
                    "fps", 0.9))


def part_random(gops, rows, details):
    log("[random] 30 random frames of 1080p H.264, nv12, fresh mount vs in-process seek")
    for gop, (d, names) in gops.items():
        store = os.path.join(VIDEOS, "gpu", f"store-gop{gop}")
        with Mount(d, store, backend="nvdec") as m:  # index once, kept on disk
            n = nb_frames(m, names[0])
        for readers in (1, 8):
            vids = names[:readers]
            picks = {v: random.Random(i + 1).sample(range(n), 30) for i, v in enumerate(vids)}
            with Mount(d, store, backend="nvdec", pool_size=16) as m:
                t0 = time.time()
                fps, _, got = read_parallel(m, vids, "frames", "nv12", picks.get, seconds=120)
                secs = time.time() - t0
            out = nvdec_bench("--seek", 30, "--threads", readers,
                              *[os.path.join(d, v) for v in vids])
            pfps = fps_of(out, "ffmpeg-seek", readers)
            log(f"  GOP {gop}, {readers} reader(s): vidfs {fps:.1f} frames/s ({got} frames), "
                f"in-process seek {pfps:.1f} frames/s")
            details[f"random_gop{gop}_{readers}"] = {"vidfs_fps": fps, "inprocess_fps": pfps,
                                                     "frames": got, "seconds": secs}
            rows.append(row(f"random 30 frames/reader, 1080p GOP {gop}, {readers} reader(s), "
                            "cold mount vs in-process seek+decode (FFmpeg cuda)", fps, pfps,
                            "frames/s", None))


def part_reuse(clips, rows, details):
    log("[reuse] decoder reuse, 2-second clips")
    for res, path in clips.items():
        # 500 clips at 360p; fewer of the larger ones, whose decoding dominates anyway
        n = (100 if QUICK else 500) // {"360p": 1, "720p": 2, "1080p": 3}[res]
        out = nvdec_bench("--reuse", n, "--frames", 50, path)
        m = re.search(r"pooled/fresh = ([\d.]+)x", out)
        rates = dict(re.findall(r"reuse (\w+) *:.*= ([\d.]+) clips/s", out))
        ratio = float(m.group(1)) if m else 0.0
        details[f"reuse_{res}"] = {"ratio": ratio, "clips": n,
                                   **{k: float(v) for k, v in rates.items()}}
        rows.append(row(f"decoder reuse {res}, {n} clips, pooled vs new decoder per clip",
                        float(rates.get("pooled", 0)), float(rates.get("fresh", 1)),
                        "clips/s", 7.0 if res == "360p" else None))


def part_cpu(h264, rows, details):
    d, names = h264
    log(f"[cpu] the same mount reads with backend=cpu on {os.cpu_count()} cores")
    with Mount(d, os.path.join(VIDEOS, "gpu", "store-h264"), backend="cpu") as m:
        n = nb_frames(m, names[0])
        fps, bps, _ = read_parallel(m, names[:7], "frames", "nv12", lambda v: range(n))
        vfps, _, _ = read_parallel(m, names[7:14], VIEW, "rgbp", lambda v: range(n))
    log(f"  7 readers nv12: {fps:.0f} fps; 7 readers 224x224 rgbp views: {vfps:.0f} fps")
    details["cpu"] = {"nv12_fps": fps, "views_fps": vfps, "cores": os.cpu_count()}
    gpu = details.get("mount_7", {}).get("nv12_fps")
    if gpu:
        rows.append(row("mount 7 readers 1080p nv12, nvdec vs cpu backend (all cores)", gpu, fps,
                        "fps", None))


def videos(parts):
    """The videos the parts need, generated where missing (part 'videos' makes them all)."""
    need, v = set(parts), {}
    every = "videos" in need
    if every or need & {"inprocess", "mount", "multigpu", "cpu"}:
        v["h264"] = file_set("h264_1080p", lambda p: ffmpeg_gen(p, "1920x1080", DUR), 14)
    if every or "inprocess" in need:
        v["hevc"] = file_set("hevc_1080p", lambda p: gen_hevc(p, "1920x1080", DUR), 14)
    if every or "views360" in need:
        v["v360"] = file_set("h264_360p", lambda p: ffmpeg_gen(p, "640x360", DUR), 14)
    if every or "random" in need:
        v["gops"] = {g: file_set(f"gop{g}_1080p",
                                 lambda p, g=g: ffmpeg_gen(p, "1920x1080", 20, gop=g), 8)
                     for g in (30, 250)}
    if every or "reuse" in need:
        v["clips"] = {r: ffmpeg_gen(os.path.join(VIDEOS, "gpu", f"clip_{r}.mp4"), s, 2)
                      for r, s in (("360p", "640x360"), ("720p", "1280x720"),
                                   ("1080p", "1920x1080"))}
    return v


def main():
    parts = [a for a in sys.argv[1:] if not a.startswith("--")] or \
        ["inprocess", "mount", "views360", "random", "reuse", "cpu"]
    log(f"[gpu] videos in {VIDEOS}")
    v = videos(parts)
    if parts == ["videos"]:
        return
    if not os.access(NVDEC_BENCH, os.X_OK):
        sys.exit(f"gpu.py: no nvdec_bench at {NVDEC_BENCH} (set NVDEC_BENCH)")
    rows, details = [], {}
    if "inprocess" in parts:
        part_inprocess(v["h264"], v["hevc"], rows, details)
    if "mount" in parts:
        part_mount(v["h264"], rows, details)
    if "multigpu" in parts:
        if "mount" not in parts:  # the one-GPU figures it is compared with
            part_mount(v["h264"], rows, details)
        part_mount(v["h264"], rows, details, gpus="all")
    if "views360" in parts:
        part_views360(v["v360"], rows, details)
    if "random" in parts:
        part_random(v["gops"], rows, details)
    if "reuse" in parts:
        part_reuse(v["clips"], rows, details)
    if "cpu" in parts:
        part_cpu(v["h264"], rows, details)
    log("[gpu] summary")
    print_rows(rows)
    save("gpu", rows, details)


if __name__ == "__main__":
    main()
