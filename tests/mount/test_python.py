"""The Python package (python/vidfs) through a real mount: Video's arrays against the
bytes cat reads and against ffmpeg's decode, batch files, the samplers' indices,
ClipDataset with and without torch, DataLoader workers, vidfs.mount, and
examples/train_loop.py end to end. torch is required (deps.sh installs python3-torch):
without it the torch tests fail, they do not skip."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import util
from util import videos

sys.path.insert(0, os.path.join(util.REPO, "python"))
import vidfs  # noqa: E402
from vidfs import formats  # noqa: E402

PY = sys.executable
NAMES = ["h264_bframes.mp4", "odd_177x99.webm", "vfr.mkv", "hevc_10bit.mp4",
         "dir one/ünïcode clip.mp4"]
BAD = [c.name for c in videos.CLIPS if c.kind in ("bad", "novideo")]


def video(mnt, name):
    return vidfs.Video(os.path.join(mnt, name))


def cat(mnt, name, i, fmt, view="frames"):
    return util.read_all(os.path.join(mnt, name, view, f"{i}.{fmt}"))


def files_opened(mnt):
    with open(os.path.join(mnt, ".vidfs", "stats.json")) as f:
        return json.load(f)["files_opened"]


# ------------------------------------------------------------------------ Video

@pytest.mark.parametrize("name", NAMES)
def test_meta_and_frame_table(mnt, name):
    v = video(mnt, name)
    with open(os.path.join(mnt, name, "meta.json")) as f:
        assert v.meta == json.load(f)
    with open(os.path.join(mnt, name, "frames.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(v) == len(rows) == util.ref(name).n
    assert v.pts.tolist() == [float(r["pts_time"]) for r in rows]
    assert v.duration.tolist() == [float(r["duration_time"]) for r in rows]
    assert v.key_frame.tolist() == [r["key_frame"] == "1" for r in rows]
    assert v.keyframes.tolist() == v.meta["keyframes"]
    assert (v.width, v.height) == (util.ref(name).w, util.ref(name).h)


@pytest.mark.parametrize("fmt", util.RAW_FORMATS)
@pytest.mark.parametrize("name", NAMES)
def test_frame_is_the_file_and_ffmpegs_frame(mnt, name, fmt):
    v, r = video(mnt, name), util.ref(name)
    w, h = r.w, r.h
    want_shape = {"rgb": (h, w, 3), "rgbp": (3, h, w), "gray": (h, w)}.get(
        fmt, (r.frame_size(fmt) // (2 if fmt == "p010" else 1),))
    for i in r.sample_indices(extra_random=1):
        a = v.frame(i, fmt)
        assert a.shape == want_shape and a.dtype == formats.dtype(fmt)
        assert a.tobytes() == cat(mnt, name, i, fmt), f"frame {i}: not the file's bytes"
    i = r.n // 2
    got, want = v.frame(i, fmt).tobytes(), r.frame(fmt, i)
    exact = videos.clip(name).bitexact and fmt in ("nv12", "yuv420p", "gray") or \
        "10bit" in videos.clip(name).tags and fmt == "p010"
    if exact:
        assert got == want, util.describe_diff(got, want)
    elif fmt == "p010":
        assert util.psnr(np.frombuffer(got, "<u2"), np.frombuffer(want, "<u2"), 65535.) >= 40
    else:
        assert util.psnr(got, want) >= 35, util.describe_diff(got, want)


def test_planes_and_negative_index(mnt):
    name = "odd_177x99.webm"
    v, r = video(mnt, name), util.ref(name)
    y, uv = vidfs.split_planes(v.frame(-1, "nv12"), "nv12", r.w, r.h)
    assert y.shape == (99, 177) and uv.shape == (50, 89, 2)
    y2, u, vv = vidfs.split_planes(v.frame(r.n - 1, "yuv420p"), "yuv420p", r.w, r.h)
    assert (y == y2).all() and (uv[..., 0] == u).all() and (uv[..., 1] == vv).all()
    assert (v.frame(-1, "gray") == y).all()
    with pytest.raises(IndexError):
        v.frame(r.n)
    with pytest.raises(IndexError):
        v.frames([0, -r.n - 1])
    with pytest.raises(ValueError, match="one of"):
        v.frame(0, "bmp")


@pytest.mark.parametrize("size,view,want", [
    ((64, 64), "frames_64x64", (64, 64)), (48, "frames_48x48", (48, 48)),
    ((64, None), "frames_64x", (64, 48)), ((None, 60), "frames_x60", (80, 60))])
def test_views(mnt, size, view, want):
    name = "h264_bframes.mp4"  # 320x240
    v = video(mnt, name)
    assert v.frame_size(size) == want
    for fmt in ("rgbp", "nv12"):
        a = v.frame(7, fmt, size)
        assert a.shape == formats.shape(fmt, *want)
        assert a.tobytes() == cat(mnt, name, 7, fmt, view)
    b = v.frames(range(4, 12, 2), "rgb", size)
    assert b.shape == (4, want[1], want[0], 3)
    assert b[1].tobytes() == cat(mnt, name, 6, "rgb", view)


def test_image(mnt):
    v = video(mnt, "vp9.webm")
    assert v.image(3) == cat(mnt, "vp9.webm", 3, "png")
    assert v.image(3, "jpg", (64, 64))[:2] == b"\xff\xd8"


@pytest.mark.parametrize("indices,reads,copies", [
    (list(range(5, 21)), [("5-21.rgb", 0, 16)], []),
    ([0, 10, 20, 30, 40], [("0-41~10.rgb", 0, 5)], []),
    ([3, 1, 4, 4, 5, 9, 2, 6], [("3.rgb", 0, 1), ("1-5~3.rgb", 1, 2), ("5-10~4.rgb", 4, 2),
                                ("2-7~4.rgb", 6, 2)], [(3, 2)]),
    ([9, 7, 5, 5, 30, 20, 10], [("9.rgb", 0, 1), ("7.rgb", 1, 1), ("5.rgb", 2, 1),
                                ("30.rgb", 4, 1), ("20.rgb", 5, 1), ("10.rgb", 6, 1)],
     [(3, 2)]),
    ([0, 1, 2, 10, 20, 30, 31, 49, 49, -1], [("0-3.rgb", 0, 3), ("10-31~10.rgb", 3, 3),
                                            ("31-50~18.rgb", 6, 2)], [(8, 7), (9, 7)]),
])
def test_batches(mnt, indices, reads, copies):
    """frames() reads each run of frames with one positive step from one batch file
    (contiguous A-B, strided A-B~S), others alone, repeats once; the result
    is the frames' own files stacked, into a new array or the caller's buffer."""
    name = "h264_bframes.mp4"  # 50 frames
    v = video(mnt, name)
    assert v.plan(indices) == (reads, copies)
    want = b"".join(cat(mnt, name, i % len(v), "rgb") for i in indices)
    before = files_opened(mnt)
    got = v.frames(indices, "rgb")
    assert files_opened(mnt) - before - 1 == len(reads)  # - 1: stats.json itself
    assert got.shape == (len(indices), 240, 320, 3)
    assert got.tobytes() == want
    out = np.zeros_like(got)
    assert v.frames(indices, "rgb", out=out) is out
    assert out.tobytes() == want
    with pytest.raises(ValueError, match="shape"):
        v.frames(indices, "rgbp", out=out[:, :, :, 0])


def test_batch_into_torch_buffer(mnt):
    import torch
    name = "h264_bframes.mp4"
    v = video(mnt, name)
    buf = v.buffer(8, "rgbp", (32, 32), pin=True)
    assert isinstance(buf, torch.Tensor) and buf.shape == (8, 3, 32, 32)
    assert buf.is_pinned() == torch.cuda.is_available()
    assert v.frames(range(0, 16, 2), "rgbp", (32, 32), out=buf) is buf
    assert buf.numpy().tobytes() == b"".join(
        cat(mnt, name, i, "rgbp", "frames_32x32") for i in range(0, 16, 2))
    one = torch.empty(240, 320, 3, dtype=torch.uint8)
    assert v.frame(9, "rgb", out=one) is one
    assert one.numpy().tobytes() == cat(mnt, name, 9, "rgb")


@pytest.mark.parametrize("name", BAD)
def test_broken_video(mnt, name):
    v = video(mnt, name)
    assert v.error and len(v) == 0
    with pytest.raises(vidfs.VideoError, match=v.error[:20]):
        v.frames([0])


def test_find_videos(mnt):
    found = {os.path.relpath(p, mnt) for p in vidfs.find_videos(mnt)}
    want = {c.name for c in videos.CLIPS if c.kind != "file"}
    assert found == want


# --------------------------------------------------------------------- samplers

def shown_at(v, t):
    """The frame shown at time t, from frames.csv's intervals."""
    hits = [i for i in range(len(v)) if v.pts[i] <= t < v.pts[i] + v.duration[i]]
    return hits[-1] if hits else (0 if t < v.pts[0] else len(v) - 1)


def test_index_samplers(mnt):
    v = video(mnt, "h264_bframes.mp4")  # 50 frames, key frames every 12
    reg = vidfs.clips_at_regular_indices(v, 4, 2, num_clips=3)
    # torchcodec: starts = linspace(0, 50 - 7, 3) truncated; frames start, start + 2 ...
    assert reg.tolist() == [[0, 2, 4, 6], [21, 23, 25, 27], [43, 45, 47, 49]]
    rnd = vidfs.clips_at_random_indices(v, 5, 3, num_clips=200, rng=7)
    assert rnd.shape == (200, 5)
    assert (np.diff(rnd, axis=1) == 3).all()
    assert rnd[:, 0].min() >= 0 and rnd[:, -1].max() <= 49
    assert len(set(rnd[:, 0].tolist())) > 25  # starts spread over the 38 possible
    assert (vidfs.clips_at_random_indices(v, 5, 3, num_clips=200, rng=7) == rnd).all()
    assert not (vidfs.clips_at_random_indices(v, 5, 3, num_clips=200, rng=8) == rnd).all()
    ranged = vidfs.clips_at_random_indices(v, 2, num_clips=50, sampling_range_start=10,
                                           sampling_range_end=20, rng=1)
    assert ranged[:, 0].min() >= 10 and ranged[:, 0].max() < 20
    # past the end: policies
    tail = dict(num_clips=1, sampling_range_start=47, sampling_range_end=48)
    assert vidfs.clips_at_regular_indices(v, 5, **tail).tolist() == [[47, 48, 49, 49, 49]]
    assert vidfs.clips_at_regular_indices(v, 5, policy="wrap", **tail).tolist() == \
        [[47, 48, 49, 47, 48]]
    with pytest.raises(ValueError, match="policy='error'"):
        vidfs.clips_at_regular_indices(v, 5, policy="error", **tail)
    keys = vidfs.clips_at_keyframes(v, 3, 2)
    assert keys.tolist() == [[0, 2, 4], [12, 14, 16], [24, 26, 28], [36, 38, 40],
                             [48, 48, 48]]  # 50 and 52 do not exist: repeat_last
    some = vidfs.clips_at_keyframes(v, 3, num_clips=20, rng=3)
    assert set(some[:, 0].tolist()) <= {0, 12, 24, 36, 48}
    with pytest.raises(ValueError):
        vidfs.clips_at_regular_indices(v, 4, num_clips=0)


@pytest.mark.parametrize("name", ["vfr.mkv", "h264_bframes.mp4"])
def test_timestamp_samplers(mnt, name):
    """Each index is the frame shown at its timestamp (VFR included)."""
    v = video(mnt, name)
    sbf = 0.07
    rnd = vidfs.clips_at_random_timestamps(v, 4, sbf, num_clips=30, rng=5)
    starts = np.random.default_rng(5).random(30) * (v.end_time - 3 * sbf)
    want = [[shown_at(v, s + k * sbf) for k in range(4)] for s in starts]
    assert rnd.tolist() == want
    reg = vidfs.clips_at_regular_timestamps(v, 0.25, 3)
    fps = len(v) / v.end_time
    starts = np.arange(0, v.end_time - 2 / fps, 0.25)
    assert reg.tolist() == [[shown_at(v, s + k / fps) for k in range(3)] for s in starts]
    even = vidfs.clips_at_regular_timestamps(v, num_frames_per_clip=2, num_clips=4,
                                             seconds_between_frames=0.1)
    assert even[:, 0].tolist() == [shown_at(v, t) for t in
                                   np.linspace(0, v.end_time - 0.1, 4, endpoint=False)]
    with pytest.raises(ValueError, match="exactly one"):
        vidfs.clips_at_regular_timestamps(v, 0.25, num_clips=3)
    with pytest.raises(ValueError, match="empty"):
        vidfs.clips_at_random_timestamps(v, 1000)


# ---------------------------------------------------------------- ClipDataset

def test_dataset_regular(mnt):
    import torch
    ds = vidfs.ClipDataset(mnt, clip_len=4, size=(32, 32), fmt="rgbp",
                           sampler="clips_at_regular_indices", num_clips=2,
                           num_indices_between_frames=3)
    assert {os.path.relpath(p, mnt) for p, _ in ds.skipped} == set(BAD)
    assert len(ds) == 2 * len(ds.videos) == 2 * len(videos.VIDEOS + ["corrupt.ts"])
    for i in (0, 1, len(ds) - 1):
        v, idx = ds.clip(i)
        want = vidfs.clips_at_regular_indices(v, 4, 3, num_clips=2)[i % 2]
        assert idx.tolist() == want.tolist()
        x = ds[i]
        assert isinstance(x, torch.Tensor) and x.dtype == torch.uint8
        assert x.shape == (4, 3, 32, 32)
        assert x.numpy().tobytes() == b"".join(
            util.read_all(os.path.join(v.path, "frames_32x32", f"{j}.rgbp")) for j in idx)


def test_dataset_random_is_seeded(mnt):
    def draws(seed, epoch=0):
        ds = vidfs.ClipDataset(mnt, 3, 16, "gray", "random_timestamps", seed=seed)
        ds.set_epoch(epoch)
        return [ds.clip(i)[1].tolist() for i in range(len(ds))]
    a = draws(1)
    assert a == draws(1)
    assert a != draws(2)
    assert a != draws(1, epoch=1)


def test_dataset_float_and_target(mnt):
    import torch
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    ds = vidfs.ClipDataset(mnt, 2, (24, 16), "rgbp", "keyframes", dtype=torch.float32,
                           mean=mean, std=std, target=len)
    x, y = ds[3]
    v, idx = ds.clip(3)
    raw = v.frames(idx, "rgbp", (24, 16)).astype(np.float32) / 255
    want = (raw - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[
        :, None, None]
    assert x.dtype == torch.float32 and x.shape == (2, 3, 16, 24)
    assert np.allclose(x.numpy(), want, atol=1e-6)
    assert y == len(os.path.relpath(v.path, mnt))
    assert all(idx[0] in v.keyframes for v, idx in map(ds.clip, range(len(ds))))


def test_dataloader_workers(mnt):
    """Two workers read the clips a single process reads, in the loader's order."""
    import torch
    ds = vidfs.ClipDataset(mnt, 6, (40, 30), "rgbp", "random_indices", num_clips=2,
                           num_indices_between_frames=2, seed=11, target=str)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    seen = 0
    for x, y in loader:
        assert x.shape[1:] == (6, 3, 30, 40) and x.dtype == torch.uint8
        for k in range(x.shape[0]):
            want, label = ds[seen + k]
            assert torch.equal(x[k], want) and y[k] == label
        seen += x.shape[0]
    assert seen == len(ds)


def test_dataset_without_torch(mnt):
    """A plain sequence of numpy arrays when torch cannot be imported."""
    code = ("import sys; sys.modules['torch'] = None; sys.path.insert(0, sys.argv[2])\n"
            "import vidfs, numpy as np\n"
            "ds = vidfs.ClipDataset(sys.argv[1], 4, 32, 'rgb', 'regular_indices')\n"
            "x = ds[0]\n"
            "assert type(x) is np.ndarray and x.shape == (4, 32, 32, 3), (type(x), x.shape)\n"
            "print('ok', len(ds))\n")
    r = subprocess.run([PY, "-c", code, mnt, os.path.join(util.REPO, "python")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr


# ---------------------------------------------------------------------- mount()

def sanitizer_free(text):
    hit = util.SANITIZER_RE.search(text)
    return hit is None or pytest.fail(f"vidfs stderr:\n{text[max(0, hit.start() - 200):]}")


def test_mount_context(corpus, mnt, workdir, vidfs_bin):
    target = os.path.join(workdir, "pymount.mnt")
    with vidfs.mount(corpus, target, binary=vidfs_bin,
                     cache_dir=os.path.join(workdir, "pymount.cache"), readahead=2) as m:
        assert os.path.ismount(target) and m.path == target
        v = vidfs.Video(os.path.join(m, "vp9.webm"))
        assert v.frame(5, "nv12").tobytes() == cat(mnt, "vp9.webm", 5, "nv12")
        assert m.stats()["frames_served"] >= 1
    assert not os.path.ismount(target)
    sanitizer_free(m.stderr)
    with vidfs.mount(corpus, binary=vidfs_bin,
                     cache_dir=os.path.join(workdir, "pymount.cache")) as m:
        tmp = m.path
        assert os.path.ismount(tmp) and len(vidfs.find_videos(tmp)) > 20
    assert not os.path.exists(tmp), "the temporary mount point is left behind"
    sanitizer_free(m.stderr)


def test_mount_errors(corpus, workdir, vidfs_bin):
    target = os.path.join(workdir, "pymount-bad.mnt")
    with pytest.raises(vidfs.MountError, match="(?s)exited with status.*unknown option"):
        vidfs.mount(corpus, target, binary=vidfs_bin, no_such_option=3)
    assert not os.path.ismount(target)
    with pytest.raises(vidfs.MountError, match="not a directory"):
        vidfs.mount(os.path.join(corpus, "labels.csv"), target, binary=vidfs_bin)
    assert vidfs.find_binary(vidfs_bin) == os.path.abspath(vidfs_bin)
    assert vidfs.daemon.option_string({"gpus": "0,1", "allow_other": True, "x": None}) == \
        "gpus=0\\,1,allow_other"


# ------------------------------------------------------------ examples/train_loop.py

@pytest.mark.parametrize("how", ["mounted", "source"])
def test_train_loop_example(corpus, mnt, vidfs_bin, how):
    args = [mnt] if how == "mounted" else ["--source", corpus]
    r = subprocess.run([PY, os.path.join(util.REPO, "examples", "train_loop.py"), *args,
                        "--steps", "3", "--workers", "2"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, VIDFS_BIN=vidfs_bin))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "step 3 " in r.stdout and "done: 3 steps" in r.stdout, r.stdout
    assert "batch (4, 8, 3, 64, 64)" in r.stdout
