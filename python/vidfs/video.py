"""One video of a vidfs mount: its metadata, its frame table and its frames as arrays."""

import json
import os

import numpy as np

from . import formats


class VideoError(OSError):
    """A video vidfs cannot serve (its meta.json has an "error"), or a short read."""


class Video:
    """The directory vidfs makes of one video (MOUNT/clip.mp4, or .../streams/S).

    meta: meta.json as a dict; pts, duration: frames.csv's pts_time and duration_time
    (float64 seconds, display order); key_frame: bool array; len(): the frame count.
    Files are opened for each read and closed after it, so a Video holds no file
    descriptor and can be copied into DataLoader workers as it is.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        with open(os.path.join(self.path, "meta.json"), "rb") as f:
            self.meta = json.load(f)
        self.error = self.meta.get("error")
        self.width = self.meta.get("width", 0)
        self.height = self.meta.get("height", 0)
        self._table = None

    def __repr__(self):
        what = f"error {self.error!r}" if self.error else \
            f"{len(self)} frames {self.width}x{self.height}"
        return f"vidfs.Video({self.path!r}, {what})"

    def __len__(self):
        return int(self.meta.get("num_frames", 0))

    # ------------------------------------------------------------- frames.csv

    def _columns(self):
        if self._table is None:
            path = os.path.join(self.path, "frames.csv")
            with open(path, "rb") as f:
                header = f.readline().decode().strip().split(",")
                t = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
            if t.shape[0] != len(self):
                raise VideoError(f"{path}: {t.shape[0]} rows, meta.json says {len(self)}")
            t = t.reshape(len(self), len(header))
            self._table = {name: t[:, k] for k, name in enumerate(header)}
        return self._table

    @property
    def pts(self):
        """pts_time of each frame: seconds from frame 0."""
        return self._columns()["pts_time"]

    @property
    def duration(self):
        """duration_time of each frame, seconds."""
        return self._columns()["duration_time"]

    @property
    def key_frame(self):
        return self._columns()["key_frame"].astype(bool)

    @property
    def keyframes(self):
        """Indices of the key frames."""
        return np.flatnonzero(self.key_frame)

    @property
    def end_time(self):
        """When the last frame stops being shown (seconds from frame 0)."""
        return float(self.pts[-1] + self.duration[-1]) if len(self) else 0.0

    def index_at(self, t):
        """Index of the frame shown at time(s) t: the last frame with pts_time <= t
        (frame 0 before it starts). t: a number or an array."""
        i = np.searchsorted(self.pts, np.asarray(t, dtype=np.float64), side="right") - 1
        return np.clip(i, 0, max(len(self) - 1, 0))

    # ----------------------------------------------------------------- frames

    def frame_size(self, size=None):
        """(W, H) of the frames of a view (size: see formats.view_dir)."""
        return formats.view_size(self.width, self.height, size)

    def frame_shape(self, fmt="rgb", size=None):
        return formats.shape(fmt, *self.frame_size(size))

    def buffer(self, n, fmt="rgb", size=None, pin=False):
        """An empty array for n frames, shaped as frames() returns them. With pin=True, a
        pinned (page-locked) torch tensor when torch and CUDA are there, for fast copies to
        the GPU; a plain torch tensor when CUDA is not (as DataLoader's pin_memory does)."""
        shape = (n,) + self.frame_shape(fmt, size)
        dt = formats.dtype(fmt)
        if not pin:
            return np.empty(shape, dt)
        import torch
        t = torch.empty(shape, dtype=torch.uint8 if dt.itemsize == 1 else torch.int16)
        return t.pin_memory() if torch.cuda.is_available() else t

    def frame(self, i, fmt="rgb", size=None, out=None):
        """Frame i (display order; negative counts from the end) as an array of
        formats.shape(fmt, W, H): rgb HWC, rgbp CHW, gray (H, W), nv12/yuv420p/p010 flat.
        size: None (full size), an int (square) or (W, H), one side None to keep the aspect
        ratio (the frames_WxH views, scaled inside vidfs). out: an array or tensor of
        the frame's shape to fill and return (see frames())."""
        got = self.frames([i], fmt, size, None if out is None else out[None])
        return got[0] if out is None else out

    def frames(self, indices, fmt="rgb", size=None, out=None):
        """Frames at indices (any order, repeats allowed) stacked: (T,) + frame shape.

        Contiguous runs (i, i+1, ...) and strided ones (i, i+s, i+2s, ...) are each read
        from one batch file (frames/A-B.fmt, A-B~S.fmt), other frames from their own files,
        with readinto straight into the result. out: a C-contiguous numpy array or CPU torch
        tensor (pinned or not) of that shape and dtype to fill and return, e.g. from
        buffer(); else a new numpy array."""
        self._check_servable()
        idx = self._resolve(indices)
        shape = (len(idx),) + self.frame_shape(fmt, size)
        arr, result = _output(out, shape, formats.dtype(fmt))
        rows = arr.reshape(len(idx), -1)
        view = os.path.join(self.path, formats.view_dir(size))
        reads, copies = self.plan(idx, fmt)
        for name, pos, count in reads:
            _read_exact(os.path.join(view, name), memoryview(rows[pos:pos + count]).cast("B"))
        for dst, src in copies:
            rows[dst] = rows[src]
        return result

    def plan(self, indices, fmt="rgb"):
        """How frames() reads indices: ([(file name, first position, count)], [(position,
        position it repeats)]). Runs of two or more frames with one positive step become a
        batch file; other frames are read alone."""
        idx = self._resolve(indices).tolist()
        reads, copies, seen = [], [], {}
        p, n = 0, len(idx)
        while p < n:
            first = idx[p]
            if first in seen:
                copies.append((p, seen[first]))
                p += 1
                continue
            step = idx[p + 1] - first if p + 1 < n else 0
            q = p + 1
            if step > 0:
                while q < n and idx[q] - idx[q - 1] == step and idx[q] not in seen:
                    q += 1
            if q - p >= 2:
                name = f"{first}-{idx[q - 1] + 1}" + (f"~{step}" if step > 1 else "")
            else:
                name = str(first)
            for k in range(p, q):
                seen[idx[k]] = k
            reads.append((f"{name}.{fmt}", p, q - p))
            p = q
        return reads, copies

    def image(self, i, fmt="png", size=None):
        """Frame i encoded (png or jpg) as bytes."""
        if fmt not in formats.IMAGE_FORMATS:
            raise ValueError(f"image format {fmt!r}: one of {', '.join(formats.IMAGE_FORMATS)}")
        self._check_servable()
        i = int(self._resolve([i])[0])
        with open(os.path.join(self.path, formats.view_dir(size), f"{i}.{fmt}"), "rb") as f:
            return f.read()

    def _check_servable(self):
        if self.error:
            raise VideoError(f"{self.path}: vidfs cannot serve this video: {self.error}")

    def _resolve(self, indices):
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        bad = (idx < -n) | (idx >= n)
        if bad.any():
            raise IndexError(f"{self.path}: frame {int(idx[bad][0])} out of range "
                             f"({n} frames)")
        return np.where(idx < 0, idx + n, idx)


def find_videos(root):
    """Every video directory under a mounted root (sorted paths), those vidfs cannot serve
    included (Video.error says why). A video's own subtree (frames/, streams/ ...) and the
    mount's .vidfs/ are not walked."""
    found = []

    def walk(d):
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        names = {e.name for e in entries}
        # a video's directory: a broken one has no frames.csv, but always its source
        if "meta.json" in names and any(n.startswith("source.") for n in names):
            found.append(d)
            return
        for e in entries:
            if e.name != ".vidfs" and e.is_dir(follow_symlinks=False):
                walk(e.path)

    walk(os.fspath(root))
    return found


def _output(out, shape, dtype):
    """(numpy array to fill, object to return) for frames()'s out."""
    if out is None:
        a = np.empty(shape, dtype)
        return a, a
    arr = out.numpy() if hasattr(out, "numpy") and not isinstance(out, np.ndarray) else out
    arr = np.asarray(arr)
    if arr.shape != shape or arr.dtype.itemsize != dtype.itemsize:
        raise ValueError(f"out has shape {arr.shape} and {arr.dtype}, frames need {shape} "
                         f"and {dtype}")
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError("out must be C-contiguous and writable")
    return arr, out


def _read_exact(path, mv):
    """Fill mv from the file at path; a file that ends early is an error."""
    got = 0
    with open(path, "rb", buffering=0) as f:
        while got < len(mv):
            n = f.readinto(mv[got:])
            if not n:
                break
            got += n
    if got != len(mv):
        raise VideoError(f"{path}: {got} bytes, expected {len(mv)}")
