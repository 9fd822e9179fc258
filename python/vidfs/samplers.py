"""Clip samplers in torchcodec's vocabulary (torchcodec.samplers), over a Video.

Each returns the frame indices of its clips, an int64 array (num_clips,
num_frames_per_clip), which Video.frames reads (one batch file per clip when its frames
are evenly spaced). Parameters, defaults and edge rules are torchcodec's:

- index based: clip starts drawn from [sampling_range_start, sampling_range_end); the
  default end keeps whole clips inside the video; frames past the end follow `policy`.
- time based: seconds from frame 0 (frames.csv's pts_time); a timestamp names the frame
  shown then (the last frame with pts_time <= t); seconds_between_frames defaults to
  1 / average fps (frames / duration); timestamps at or past the end follow `policy`.
- policy: "repeat_last" repeats the last frame that exists, "wrap" cycles the frames
  that exist, "error" raises.

clips_at_keyframes (not in torchcodec) starts clips at key frames, where a decoder starts
without decoding anything before the clip.
"""

import itertools

import numpy as np

POLICIES = ("repeat_last", "wrap", "error")


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _pad(values, n, policy, what):
    if len(values) >= n:
        return values
    if policy == "repeat_last":
        return values + [values[-1]] * (n - len(values))
    if policy == "wrap":
        return list(itertools.islice(itertools.cycle(values), n))
    raise ValueError(f"a clip reaches past the end of the video ({what}) and policy='error'")


def _check(video, num_frames_per_clip, num_clips, policy):
    if len(video) < 1:
        raise ValueError(f"{video.path}: no frames to sample")
    if num_frames_per_clip < 1:
        raise ValueError(f"num_frames_per_clip={num_frames_per_clip}: must be >= 1")
    if num_clips is not None and num_clips < 1:
        raise ValueError(f"num_clips={num_clips}: must be >= 1")
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r}: one of {', '.join(POLICIES)}")


def _index_clips(video, starts, num_frames_per_clip, step, policy):
    n = len(video)
    clips = []
    for s in starts:
        c = [i for i in range(int(s), int(s) + step * num_frames_per_clip, step) if i < n]
        clips.append(_pad(c, num_frames_per_clip, policy, f"start {int(s)}"))
    return np.array(clips, dtype=np.int64).reshape(len(clips), num_frames_per_clip)


def _index_range(video, num_frames_per_clip, step, start, end):
    n = len(video)
    if step < 1:
        raise ValueError(f"num_indices_between_frames={step}: must be >= 1")
    if start < 0:
        start += n
    if not 0 <= start < n:
        raise ValueError(f"sampling_range_start={start}: outside the {n} frames")
    if end is None:
        end = max(n - (step * (num_frames_per_clip - 1) + 1) + 1, 1)
    else:
        end = min(end + n if end < 0 else end, n)
    if start >= end:
        raise ValueError(f"sampling range [{start}, {end}) is empty")
    return start, end


def clips_at_random_indices(video, num_frames_per_clip=1, num_indices_between_frames=1,
                            num_clips=1, sampling_range_start=0, sampling_range_end=None,
                            policy="repeat_last", rng=None):
    """num_clips clips starting at uniformly drawn frame indices (with replacement)."""
    _check(video, num_frames_per_clip, num_clips, policy)
    start, end = _index_range(video, num_frames_per_clip, num_indices_between_frames,
                              sampling_range_start, sampling_range_end)
    starts = _rng(rng).integers(start, end, size=num_clips)
    return _index_clips(video, starts, num_frames_per_clip, num_indices_between_frames,
                        policy)


def clips_at_regular_indices(video, num_frames_per_clip=1, num_indices_between_frames=1,
                             num_clips=1, sampling_range_start=0, sampling_range_end=None,
                             policy="repeat_last"):
    """num_clips clips whose starts are evenly spaced over the sampling range (first
    and last possible start included, as torch.linspace(start, end - 1) truncated)."""
    _check(video, num_frames_per_clip, num_clips, policy)
    start, end = _index_range(video, num_frames_per_clip, num_indices_between_frames,
                              sampling_range_start, sampling_range_end)
    starts = np.linspace(start, end - 1, num_clips).astype(np.int64)
    return _index_clips(video, starts, num_frames_per_clip, num_indices_between_frames,
                        policy)


def _time_params(video, num_frames_per_clip, seconds_between_frames, start, end):
    if seconds_between_frames is None:
        seconds_between_frames = len(video) / video.end_time if video.end_time > 0 else 1.0
        seconds_between_frames = 1.0 / seconds_between_frames
    if seconds_between_frames <= 0:
        raise ValueError(f"seconds_between_frames={seconds_between_frames}: must be > 0")
    stream_end = video.end_time
    start = 0.0 if start is None else float(start)
    if start < 0:
        raise ValueError(f"sampling_range_start={start}: before the first frame (0 s)")
    if end is None:
        end = stream_end - seconds_between_frames * (num_frames_per_clip - 1)
    end = min(float(end), stream_end)
    if start >= end:
        raise ValueError(f"{video.path}: sampling range [{start:.6g}, {end:.6g}) s is empty "
                         f"(a {num_frames_per_clip}-frame clip does not fit "
                         f"{stream_end:.6g} s)")
    return seconds_between_frames, start, end


def _time_clips(video, starts, num_frames_per_clip, seconds_between_frames, policy):
    clips = []
    for s in starts:
        ts = [t for t in (s + k * seconds_between_frames for k in range(num_frames_per_clip))
              if t < video.end_time]
        ts = _pad(ts, num_frames_per_clip, policy, f"start {s:.6g} s")
        clips.append(video.index_at(ts))
    return np.array(clips, dtype=np.int64).reshape(len(clips), num_frames_per_clip)


def clips_at_random_timestamps(video, num_frames_per_clip=1, seconds_between_frames=None,
                               num_clips=1, sampling_range_start=None,
                               sampling_range_end=None, policy="repeat_last", rng=None):
    """num_clips clips starting at uniformly drawn times in the sampling range."""
    _check(video, num_frames_per_clip, num_clips, policy)
    sbf, start, end = _time_params(video, num_frames_per_clip, seconds_between_frames,
                                   sampling_range_start, sampling_range_end)
    starts = _rng(rng).random(num_clips) * (end - start) + start
    return _time_clips(video, starts, num_frames_per_clip, sbf, policy)


def clips_at_regular_timestamps(video, seconds_between_clip_starts=None, num_frames_per_clip=1,
                                seconds_between_frames=None, num_clips=None,
                                sampling_range_start=None, sampling_range_end=None,
                                policy="repeat_last"):
    """Clips starting every seconds_between_clip_starts from the start of the sampling
    range (arange), or num_clips of them evenly spaced over it; exactly one is given."""
    if (seconds_between_clip_starts is None) == (num_clips is None):
        raise ValueError("give exactly one of seconds_between_clip_starts and num_clips")
    _check(video, num_frames_per_clip, num_clips, policy)
    sbf, start, end = _time_params(video, num_frames_per_clip, seconds_between_frames,
                                   sampling_range_start, sampling_range_end)
    if num_clips is None:
        if seconds_between_clip_starts <= 0:
            raise ValueError(f"seconds_between_clip_starts={seconds_between_clip_starts}: "
                             "must be > 0")
        starts = np.arange(start, end, seconds_between_clip_starts)
    else:
        starts = np.linspace(start, end, num_clips, endpoint=False)
    return _time_clips(video, starts, num_frames_per_clip, sbf, policy)


def clips_at_keyframes(video, num_frames_per_clip=1, num_indices_between_frames=1,
                       num_clips=None, policy="repeat_last", rng=None):
    """Clips starting at key frames: every key frame (num_clips=None), or num_clips of them
    drawn at random (with replacement). Clips reaching past the end follow policy."""
    _check(video, num_frames_per_clip, num_clips, policy)
    if num_indices_between_frames < 1:
        raise ValueError(f"num_indices_between_frames={num_indices_between_frames}: "
                         "must be >= 1")
    keys = video.keyframes
    if len(keys) == 0:
        keys = np.array([0])
    starts = keys if num_clips is None else _rng(rng).choice(keys, size=num_clips)
    return _index_clips(video, starts, num_frames_per_clip, num_indices_between_frames,
                        policy)


SAMPLERS = {
    "random_indices": clips_at_random_indices,
    "regular_indices": clips_at_regular_indices,
    "random_timestamps": clips_at_random_timestamps,
    "regular_timestamps": clips_at_regular_timestamps,
    "keyframes": clips_at_keyframes,
}
RANDOM = ("random_indices", "random_timestamps")


def lookup(name):
    """The sampler function for a name, with or without the clips_at_ prefix."""
    key = name[len("clips_at_"):] if name.startswith("clips_at_") else name
    if key not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}: one of {', '.join(SAMPLERS)}")
    return key, SAMPLERS[key]
