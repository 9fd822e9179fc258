"""Read a vidfs mount from Python: videos as numpy arrays or torch tensors, clip datasets
for training loops, and mounting from a script.

    import vidfs
    with vidfs.mount("videos", "mnt") as m:
        v = vidfs.Video("mnt/clip.mp4")
        x = v.frames(range(16), "rgbp", size=(224, 224))   # (16, 3, 224, 224) uint8
        ds = vidfs.ClipDataset("mnt", clip_len=16, size=112, sampler="random_indices")

Pure Python: numpy is needed, torch is optional (ClipDataset is then a plain sequence of
numpy arrays).
"""

from . import daemon, formats, samplers
from .dataset import ClipDataset
from .formats import split_planes
from .daemon import Mount, MountError, find_binary, mount
from .samplers import (clips_at_keyframes, clips_at_random_indices,
                       clips_at_random_timestamps, clips_at_regular_indices,
                       clips_at_regular_timestamps)
from .video import Video, VideoError, find_videos

__all__ = [
    "ClipDataset", "Mount", "MountError", "Video", "VideoError", "clips_at_keyframes",
    "clips_at_random_indices", "clips_at_random_timestamps", "clips_at_regular_indices",
    "clips_at_regular_timestamps", "daemon", "find_binary", "find_videos", "formats", "mount",
    "samplers", "split_planes",
]
