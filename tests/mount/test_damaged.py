"""Damaged streams (issue 13, point 9): in a transport stream whose packets carry corrupted
payload bytes, every frame read gives what a single-threaded decode from the start gives
(`ffmpeg -threads 1`; libavcodec's threaded concealment varies from run to run) or EIO,
the same for a name every time: in any read order, at any cache_mb."""

import concurrent.futures
import errno
import json
import os
import random
import subprocess

import pytest

import util

FFMPEG = ["ffmpeg", "-v", "error", "-nostdin", "-y"]
W, H, GOP = 960, 540, 10
# Decode-order indices of the access units to damage: a P picture of the second GOP, the
# keyframe of the third (its concealment depends on the picture before it) and a picture
# of the fourth. The first GOP stays clean.
DAMAGED_UNITS = (11, 20, 34)
VIDEO_PID = 0x100


def damage_ts(data, units, seed=9):
    """Overwrites 32 payload bytes of the middle TS packet of each access unit (PES) in
    units; TS headers, adaptation fields and PES headers stay intact."""
    rng = random.Random(seed)
    pes = []  # per access unit: offsets of its TS packets
    for off in range(0, len(data) - 187, 188):
        p = data[off:off + 188]
        if p[0] != 0x47 or ((p[1] & 0x1f) << 8 | p[2]) != VIDEO_PID or not p[3] & 0x10:
            continue
        if p[1] & 0x40:
            pes.append([])
        if pes:
            pes[-1].append(off)
    assert len(pes) > max(units), f"{len(pes)} access units"
    out = bytearray(data)
    for u in units:
        packets = pes[u][1:]  # never the one with the PES header
        assert packets, f"access unit {u} fits in one TS packet"
        off = packets[len(packets) // 2]
        start = off + 4 + (1 + out[off + 4] if out[off + 3] & 0x20 else 0)
        for i in range(start + 16, min(start + 48, off + 188)):
            out[i] = rng.getrandbits(8)
    return bytes(out)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """(source dir, frame size, single-threaded reference frames)."""
    d = tmp_path_factory.mktemp("damaged")
    good = str(d / "good.ts.tmp")
    subprocess.run(FFMPEG + ["-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25:duration=1.6",
                             "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", str(GOP),
                             # the same file on every machine: x264's B-frame choices
                             # otherwise follow its thread count (B-frames before a damaged
                             # P picture are what the H200's file had and the VM's had not)
                             "-threads", "1", "-x264-params", "b-adapt=0",
                             "-pix_fmt", "yuv420p", "-f", "mpegts", good], check=True)
    src = d / "src"
    src.mkdir()
    with open(good, "rb") as f:
        (src / "damaged.ts").write_bytes(damage_ts(f.read(), DAMAGED_UNITS))
    fs = util.frame_size("nv12", W, H)
    raw = subprocess.run(FFMPEG + ["-threads", "1", "-i", str(src / "damaged.ts"),
                                   "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt",
                                   "nv12", "-"], check=True, capture_output=True).stdout
    frames = [raw[i:i + fs] for i in range(0, len(raw), fs)]
    # the damage is real: ffmpeg's threaded decode differs, run to run
    threaded = {subprocess.run(FFMPEG + ["-threads", "4", "-i", str(src / "damaged.ts"), "-f",
                                         "rawvideo", "-pix_fmt", "nv12", "-"], check=True,
                               capture_output=True).stdout for _ in range(3)}
    assert threaded != {raw}, "the damage changes nothing: not a test"
    return src, fs, frames


def read_frames(mnt, order):
    """{index: bytes or errno} for frames read in order."""
    out = {}
    for i in order:
        try:
            out[i] = util.read_all(os.path.join(mnt, "damaged.ts", "frames", f"{i}.nv12"))
        except OSError as e:
            out[i] = e.errno
    return out


@pytest.mark.parametrize("cache_mb", [16, 1024])
def test_damaged_stream_reads_as_a_single_threaded_decode(damaged, cache_mb, make_mount):
    src, fs, want = damaged
    m = make_mount(str(src), f"damaged-{cache_mb}", [f"cache_mb={cache_mb}"])
    meta = json.loads(util.read_all(os.path.join(m.mnt, "damaged.ts", "meta.json")))
    n = meta["num_frames"]
    assert n == len(want), f"meta.json says {n} frames, ffmpeg -threads 1 decodes {len(want)}"
    orders = [list(range(n)), list(reversed(range(n)))]
    # B-frames before a damaged P picture, each first read by a run that starts at their
    # GOP's keyframe (a later GOP read first marks the file damaged)
    orders.append([n - 1, 12, 11, 35, 34] + [i for i in range(n) if i not in (n - 1, 11, 12, 34, 35)])
    for seed in range(3):
        order = list(range(n))
        random.Random(seed).shuffle(order)
        orders.append(order)
    results = [read_frames(m.mnt, order) for order in orders]
    # then four readers at once, each in an order of its own (read-ahead, shared decoders)
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        shuffled = [random.Random(10 + k).sample(range(n), n) for k in range(4)]
        results += list(ex.map(lambda order: read_frames(m.mnt, order), shuffled))
    seen = {}  # index -> set of outcomes (bytes or errno)
    wrong = []
    for k, result in enumerate(results):
        for i, got in result.items():
            seen.setdefault(i, set()).add(got if isinstance(got, int) else got[:64] + got[-64:])
            if isinstance(got, int):
                if got != errno.EIO:
                    wrong.append(f"order {k}, frame {i}: {util.errname(got)}")
            elif got != want[i]:
                wrong.append(f"order {k}, frame {i}: {util.describe_diff(got, want[i])}")
    assert wrong == [], f"{len(wrong)} reads wrong:\n" + "\n".join(wrong[:20])
    varying = sorted(i for i, s in seen.items() if len(s) > 1)
    assert varying == [], f"frames {varying} read EIO one time and bytes another"
    eio = [i for i in range(n) if isinstance(next(iter(seen[i])), int)]
    # a decode from the start reaches every frame: none needs to be EIO here
    assert eio == [], f"frames {eio} are EIO"


# the damaged pictures (P13, I20, P36 in display order) are each in the dropped lead-in
@pytest.mark.parametrize("first", [14, 22, 37])
def test_damaged_stream_batch_after_damage(damaged, first, make_mount):
    """A batch whose lead-in (the pictures from the keyframe up to its first frame, which
    it does not read) holds a damaged picture, read first on a fresh mount: the frames are
    what the single-threaded decode gives, never a frame built on concealment the reader
    did not see (NVDEC drops a request's lead-in unmapped; its damage still counts)."""
    src, fs, want = damaged
    m = make_mount(str(src), f"damaged-batch-{first}")
    last = min(first + 4, len(want))
    path = os.path.join(m.mnt, "damaged.ts", "frames", f"{first}-{last}.nv12")
    got = util.read_all(path)  # a decode from the start reaches them: no EIO here either
    assert len(got) == fs * (last - first)
    for k, i in enumerate(range(first, last)):
        frame = got[k * fs:(k + 1) * fs]
        assert frame == want[i], f"frame {i} of {first}-{last}: {util.describe_diff(frame, want[i])}"
