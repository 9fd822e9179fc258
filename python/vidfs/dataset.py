"""ClipDataset: clips of every video under a vidfs mount, for a training loop."""

import os

import numpy as np

from . import formats, samplers
from .video import Video, find_videos

try:
    import torch
    from torch.utils.data import Dataset as _Base
except ImportError:  # numpy alone: a plain sequence
    torch = None
    _Base = object


class ClipDataset(_Base):
    """Clips of clip_len frames from every video under root (a vidfs mount, or a folder in
    one), as a torch map-style Dataset (a plain sequence of numpy arrays without torch).

    size, fmt: the view and format the frames are read in (Video.frames): rgbp gives
    (T, C, H, W) uint8, rgb (T, H, W, C), gray (T, H, W). Videos of different sizes batch
    together only with a size.
    sampler: a samplers.SAMPLERS name ("random_indices", "regular_indices",
    "random_timestamps", "regular_timestamps", "keyframes", with or without torchcodec's
    "clips_at_" prefix); num_clips and **sampler_args go to it (num_indices_between_frames,
    seconds_between_frames, seconds_between_clip_starts, sampling_range_start/end, policy).
    Deterministic samplers fix every clip here; random ones draw clip i of an epoch from a
    generator seeded with (seed, epoch, i), so a run is reproducible whatever worker reads
    which clip (set_epoch changes the draw).
    dtype: None keeps uint8; a float dtype (torch's or numpy's) scales to [0, 1], then
    subtracts mean and divides by std per channel when given (rgb/rgbp/gray only).
    target: a function of the video's path relative to root giving a label; items are then
    (clip, label) instead of clip.
    Videos vidfs cannot serve (an "error" in meta.json) or too short for the sampler are
    left out, listed in .skipped as (path, reason).
    Each item opens its files and closes them, so DataLoader workers share no descriptor.
    """

    def __init__(self, root, clip_len=16, size=None, fmt="rgbp", sampler="random_indices",
                 num_clips=None, seed=0, dtype=None, mean=None, std=None, target=None,
                 numpy=False, **sampler_args):
        self.root = os.fspath(root)
        self.clip_len = clip_len
        self.size = formats.normalize_size(size)
        self.fmt = fmt
        formats.shape(fmt, 2, 2)  # an unknown format fails here, not in a worker
        self.sampler, self._fn = samplers.lookup(sampler)
        self.seed = seed
        self.epoch = 0
        self.target = target
        self.numpy = numpy or torch is None
        self._args = dict(sampler_args, num_frames_per_clip=clip_len)
        if num_clips is not None:
            self._args["num_clips"] = num_clips
        self.random = self.sampler in samplers.RANDOM or (
            self.sampler == "keyframes" and num_clips is not None)
        self._set_transform(dtype, mean, std)
        self.videos, self.skipped, self._items = [], [], []
        for path in find_videos(self.root):
            self._add(path)
        if not self._items:
            raise ValueError(f"{self.root}: no video gives a clip "
                             f"({len(self.skipped)} skipped: {self.skipped[:3]})")

    def _add(self, path):
        v = Video(path)
        if v.error:
            self.skipped.append((path, v.error))
            return
        try:
            clips = self._sample(v, 0)
        except ValueError as e:
            self.skipped.append((path, str(e)))
            return
        k = len(self.videos)
        self.videos.append(v)
        if self.random:
            self._items += [(k, None)] * len(clips)
        else:
            self._items += [(k, c) for c in clips]

    def _sample(self, video, rng):
        args = dict(self._args)
        if self.random:
            args["rng"] = rng
        return self._fn(video, **args)

    def _set_transform(self, dtype, mean, std):
        self.dtype = dtype
        # numpy does the arithmetic; torch.float32 and np.float32 both name float32
        self._np_dtype = None if dtype is None else np.dtype(str(dtype).replace("torch.", ""))
        if dtype is None:
            if mean is not None or std is not None:
                raise ValueError("mean/std need a float dtype")
            return
        if (mean is not None or std is not None) and self.fmt not in ("rgb", "rgbp", "gray"):
            raise ValueError(f"mean/std on {self.fmt}: only rgb, rgbp and gray have channels")
        # broadcast over (T, C, H, W) for rgbp, (T, H, W, C) for rgb
        shape = (-1, 1, 1) if self.fmt == "rgbp" else (-1,)
        self._mean = None if mean is None else np.asarray(mean, self._np_dtype).reshape(shape)
        self._std = None if std is None else np.asarray(std, self._np_dtype).reshape(shape)

    def set_epoch(self, epoch):
        """Random samplers draw other clips for each epoch."""
        self.epoch = epoch

    def __len__(self):
        return len(self._items)

    def clip(self, i):
        """(Video, frame indices) of item i in the current epoch."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"clip {i} out of range ({len(self)})")
        i %= len(self)
        k, idx = self._items[i]
        v = self.videos[k]
        if idx is None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            idx = self._sample(v, rng)[0]
        return v, idx

    def __getitem__(self, i):
        v, idx = self.clip(i)
        x = v.frames(idx, self.fmt, self.size)
        if self.dtype is not None:
            x = self._to_float(x)
        if not self.numpy:
            # torch has no uint16 (p010): the same bits as int16
            x = torch.from_numpy(x.view(np.int16) if x.dtype == np.uint16 else x)
        if self.target is None:
            return x
        return x, self.target(os.path.relpath(v.path, self.root))

    def _to_float(self, x):
        scale = np.float32(np.iinfo(x.dtype).max)
        x = x.astype(self._np_dtype) / scale
        if self._mean is not None:
            x -= self._mean
        if self._std is not None:
            x /= self._std
        return x
