"""segments/: frame-accurate transcoded clips and stream-copy clips, through a real mount.

Expectations come from FFmpeg itself (ffprobe's frame list and the ffmpeg CLI's decode of
the source, see util.Ref), never from vidfs: a transcoded segment holds exactly the source
frames with S <= t < E, its first frame within 35 dB of the source frame, timestamps
from 0 with the source's frame durations; a copy segment decodes cleanly from its first
packet into frames bit-identical to the source's, starting at a keyframe at or before S.
"""

import errno
import json
import os
import shutil
import subprocess
import threading

import pytest

import util
import videos

SEGMENT_CLIPS = [c.name for c in videos.VIDEOS]
TRANSCODE_CONTAINERS = ["mp4", "mkv", "mov", "ts", "m4v"]
FORMAT_NAMES = {"mp4": "mov,mp4,m4a,3gp,3g2,mj2", "m4v": "mov,mp4,m4a,3gp,3g2,mj2",
                "mov": "mov,mp4,m4a,3gp,3g2,mj2", "mkv": "matroska,webm", "ts": "mpegts"}


# ------------------------------------------------------------------ helpers

def frame_times(r):
    """t of every frame of Ref r: its timestamp minus frame 0's, in seconds."""
    ts = []
    for f in r.frames:
        v = f.get("best_effort_timestamp_time") or f.get("pts_time")
        ts.append(float(v) if v is not None else ts[-1] + float(f["pkt_duration_time"]))
    return [t - ts[0] for t in ts]


def span(r, a, b):
    """A segment name's S and E that select exactly frames [a, b) of r: midpoints between
    frames, so that rounding cannot move a bound across a frame. b may be r.n (the end)."""
    t = frame_times(r)
    s = 0.0 if a == 0 else (t[a - 1] + t[a]) / 2
    e = t[-1] + 5.0 if b >= len(t) else (t[b - 1] + t[b]) / 2
    return util.seconds_name(s), util.seconds_name(e)


def seg_path(mnt, clip, name, stream=None):
    base = os.path.join(mnt, clip) if stream is None else os.path.join(mnt, clip, "streams",
                                                                         str(stream))
    return os.path.join(base, "segments", name)


def probe_frames(path, stream="v:0"):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", "-select_streams", stream,
         "-show_frames", "-show_entries", "frame=best_effort_timestamp_time,pts_time,key_frame",
         path], check=True, capture_output=True).stdout
    fr = json.loads(out)["frames"]
    return [float(f.get("best_effort_timestamp_time") or f.get("pts_time") or "nan")
            for f in fr]


def decode_gray(path, frames=None):
    """(w, h, [luma plane bytes ...]) of the file's first video stream, display order.
    Through nv12, as util.Ref does: -pix_fmt gray would stretch limited-range luma."""
    info = util.probe(path)
    v = next(s for s in info["streams"] if s["codec_type"] == "video")
    w, h = v["width"], v["height"]
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-noautorotate", "-i", path, "-map", "0:v:0",
           "-fps_mode", "passthrough"]
    if frames:
        cmd += ["-frames:v", str(frames)]
    raw = subprocess.run(cmd + ["-f", "rawvideo", "-pix_fmt", "nv12", "-"], check=True,
                         capture_output=True).stdout
    fs = util.frame_size("nv12", w, h)
    return w, h, [raw[i:i + w * h] for i in range(0, len(raw) - fs + 1, fs)]


def crop(gray, w, h, cw, ch):
    """The top-left cw x ch of a w x h gray frame (odd sizes are cropped to even)."""
    if (cw, ch) == (w, h):
        return gray
    return b"".join(gray[y * w:y * w + cw] for y in range(ch))


def decode_errors(path):
    """(exit status, decoder messages) of decoding every stream of path. The CLI's own null
    muxer complains about VFR timestamps it rounded itself: that is not the file's doing."""
    r = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-map", "0",
                        "-fps_mode", "passthrough", "-f", "null", "-"], capture_output=True)
    err = r.stderr.decode(errors="replace").splitlines()
    return r.returncode, "\n".join(x for x in err if not x.startswith("[null @"))


def stats(mnt):
    with open(os.path.join(mnt, ".vidfs", "stats.json")) as f:
        return json.load(f)["segments"]


def mp4_boxes(path):
    """Top-level box types of an mp4/mov file, in order."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        typ = data[i + 4:i + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[i + 8:i + 16], "big")
        out.append(typ)
        if size < 8:
            break
        i += size
    return out


def read_copy(path, tmp_path, name):
    """Reads a mount file as a user would (cp) into tmp_path/name; returns the local path."""
    dst = os.path.join(str(tmp_path), name)
    shutil.copyfile(path, dst)
    return dst


# ------------------------------------------------------------------ transcode

def check_transcode(path, r, a, b, local):
    """The segment at local holds exactly frames [a, b) of Ref r."""
    t = frame_times(r)
    got = probe_frames(local)
    assert len(got) == b - a, f"{path}: {len(got)} frames, expected {b - a} (frames {a}..{b - 1})"
    # timestamps from 0 (MPEG-TS starts its clock at an offset by design), the source's
    # spacing kept: VFR stays VFR
    fmt = util.probe(local)["format"]["format_name"]
    if fmt != "mpegts":
        assert abs(got[0]) < 0.002, f"{path}: first frame at {got[0]} s, not 0"
    for i, g in enumerate(got):
        want = t[a + i] - t[a]
        assert abs((g - got[0]) - want) < 0.0021, \
            f"{path}: frame {i} at {g - got[0]:.4f} s, source has {want:.4f} s"
    w, h, frames = decode_gray(local, frames=1)
    ref = crop(r.frame("gray", a), r.w, r.h, w, h)
    q = util.psnr(frames[0], ref)
    assert q >= 35, f"{path}: first frame {q:.1f} dB against source frame {a}"
    return got


@pytest.mark.parametrize("clip", SEGMENT_CLIPS)
def test_transcode_is_frame_accurate(mnt, clip, tmp_path):
    r = util.ref(clip)
    a, b = max(1, r.n // 4), max(2, (3 * r.n) // 4)
    s, e = span(r, a, b)
    path = seg_path(mnt, clip, f"{s}-{e}.mp4")
    local = read_copy(path, tmp_path, "seg.mp4")
    check_transcode(path, r, a, b, local)
    # the duration is the frames' own: up to the next frame's time
    v = next(x for x in util.probe(local)["streams"] if x["codec_type"] == "video")
    dur = float(v["duration"])
    want = frame_times(r)[b] - frame_times(r)[a]
    assert abs(dur - want) < 0.0021 + 1e-3, f"{path}: duration {dur}, expected {want}"


@pytest.mark.parametrize("container", TRANSCODE_CONTAINERS)
def test_transcode_containers(mnt, container, tmp_path):
    clip = "h264_bframes.mp4"
    r = util.ref(clip)
    s, e = span(r, 7, 31)
    path = seg_path(mnt, clip, f"{s}-{e}.{container}")
    local = read_copy(path, tmp_path, "seg." + container)
    assert util.probe(local)["format"]["format_name"] == FORMAT_NAMES[container]
    check_transcode(path, r, 7, 31, local)
    code, err = decode_errors(local)
    assert code == 0 and not err, f"{path}: {err}"


@pytest.mark.parametrize("container", ["mp4", "mov"])
def test_mp4_index_at_front(mnt, container, tmp_path):
    path = seg_path(mnt, "h264_bframes.mp4", f"0.2-1.{container}")
    boxes = mp4_boxes(read_copy(path, tmp_path, "seg"))
    assert "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat"), f"{path}: boxes {boxes} (no faststart)"


def test_exact_boundaries(mnt, tmp_path):
    """At 25 fps frame 10 is at 0.4 s and frame 30 at 1.2 s: 0.4-1.2 is frames 10..29."""
    r = util.ref("h264_bframes.mp4")
    path = seg_path(mnt, "h264_bframes.mp4", "0.4-1.2.mkv")
    check_transcode(path, r, 10, 30, read_copy(path, tmp_path, "seg.mkv"))


def test_end_past_the_end_is_clamped(mnt, tmp_path):
    r = util.ref("h264_bframes.mp4")
    path = seg_path(mnt, "h264_bframes.mp4", "1-999.mp4")
    check_transcode(path, r, 25, r.n, read_copy(path, tmp_path, "seg.mp4"))


def test_whole_file_and_decimal_names_share(mnt, tmp_path):
    r = util.ref("size_200x120.mp4")
    a = util.read_all(seg_path(mnt, "size_200x120.mp4", "0-100.mkv"))
    b = util.read_all(seg_path(mnt, "size_200x120.mp4", "0-99.5.mkv"))
    assert a == b
    local = os.path.join(str(tmp_path), "s.mkv")
    with open(local, "wb") as f:
        f.write(a)
    check_transcode("0-100.mkv", r, 0, r.n, local)


def test_other_stream(mnt, tmp_path):
    r = util.ref("two_streams.mp4", stream=1)
    s, e = span(r, 2, 11)
    path = seg_path(mnt, "two_streams.mp4", f"{s}-{e}.mp4", stream=1)
    local = read_copy(path, tmp_path, "seg.mp4")
    check_transcode(path, r, 2, 11, local)
    v = util.probe(local)["streams"][0]
    assert (v["width"], v["height"]) == (160, 120)


def test_size_is_exact_once_produced(mnt):
    path = seg_path(mnt, "h264_bframes.mp4", "0.3-0.7.mp4")
    data = util.read_all(path)
    assert os.stat(path).st_size == len(data)
    # a second open is served from the store: same bytes
    assert util.read_all(path) == data


# ------------------------------------------------------------------ copy

def copy_expectation(clip, container):
    """None when a copy segment of clip into container must work, else why not."""
    codec = util.ref(clip).st["codec_name"]
    if container == "ts" and codec in ("vp9", "av1"):
        return "ENOENT"  # MPEG-TS has no mapping for them
    if clip == "mpeg4.avi":
        return "EIO"  # AVI packets carry no pts (the ffmpeg CLI cannot copy them either)
    return None


@pytest.mark.parametrize("container", ["mp4", "mkv", "ts"])
@pytest.mark.parametrize("clip", SEGMENT_CLIPS)
def test_copy_decodes_cleanly_and_bit_exact(mnt, clip, container, tmp_path):
    r = util.ref(clip)
    a, b = max(1, r.n // 3), max(2, (2 * r.n) // 3)
    s, e = span(r, a, b)
    path = seg_path(mnt, clip, f"{s}-{e}.copy.{container}")
    why = copy_expectation(clip, container)
    if why:
        assert util.errname(util.errno_of(util.read_all, path)) == why
        pytest.skip(f"{clip} cannot be copied into {container}: {why} by design")
    if clip == "editlist.mp4" and container != "mp4":
        pytest.skip("only mp4 can hide the edit list's lead-in that the keyframe brings")
    local = read_copy(path, tmp_path, "seg." + container)
    code, err = decode_errors(local)
    if "opengop" in videos.clip(clip).tags:
        # the open GOP's leading pictures are left out (they reference the GOP before);
        # H.264 then notes that a later picture's memory op names one of them
        err = "\n".join(x for x in err.splitlines() if "mmco: unref short failure" not in x)
    assert code == 0 and not err.strip(), f"{path} does not decode cleanly:\n{err[:2000]}"
    w, h, got = decode_gray(local)
    assert (w, h) == (r.w, r.h)
    # starts at a keyframe at or before frame a (an earlier one when a is an open GOP's
    # leading picture; frame 0 where an edit list hides the keyframe before it), and is
    # the source's frames, bit for bit, through frame b - 1
    ref = [r.frame("gray", i) for i in range(b)]
    starts = [k for k in sorted({0, *r.keyframes}) if k <= a and ref[k] == got[0]]
    assert starts, f"{path}: first frame is not a source keyframe at or before frame {a}"
    k = starts[-1]
    assert len(got) >= b - k, f"{path}: {len(got)} frames, expected at least {b - k}"
    for i in range(b - k):
        assert got[i] == ref[k + i], f"{path}: frame {i} differs from source frame {k + i}"
    t = probe_frames(local)
    if container != "ts":
        assert abs(t[0]) < 0.002, f"{path}: first frame at {t[0]} s, not rebased to 0"


def test_copy_stat_size(mnt):
    path = seg_path(mnt, "h264_720p.mp4", "0.5-0.9.copy.mkv")
    data = util.read_all(path)
    assert os.stat(path).st_size == len(data) > 0


# ------------------------------------------------------------------ audio

def streams_of(path):
    return {s["codec_type"]: s for s in util.probe(path)["streams"]}


@pytest.mark.parametrize("name", ["0.5-1.5.mp4", "0.5-1.5.mkv", "0.5-1.5.ts",
                                  "0.5-1.5.copy.mp4", "0.5-1.5.copy.mkv"])
def test_audio_is_copied_for_the_range(mnt, name, tmp_path):
    local = read_copy(seg_path(mnt, "with_audio.mp4", name), tmp_path, name)
    st = streams_of(local)
    assert "audio" in st, f"{name}: no audio stream"
    assert st["audio"]["codec_name"] == "aac"
    t = probe_frames(local, "a:0")
    total = len(t) * 1024 / int(st["audio"]["sample_rate"])
    assert 0.9 < total < 1.15, f"{name}: {total:.3f} s of audio for a 1 s segment"
    code, err = decode_errors(local)
    assert code == 0 and not err.strip(), err


def test_audio_options(corpus, make_mount, tmp_path):
    for mode in ("aac", "none"):
        m = make_mount(corpus, "seg-audio-" + mode, opts=[f"segment_audio={mode}"])
        local = read_copy(seg_path(m.mnt, "with_audio.mp4", "0.2-1.6.mp4"), tmp_path,
                          mode + ".mp4")
        st = streams_of(local)
        if mode == "none":
            assert "audio" not in st
            continue
        assert st["audio"]["codec_name"] == "aac"
        t = probe_frames(local, "a:0")
        total = len(t) * 1024 / int(st["audio"]["sample_rate"])
        assert 1.3 < total < 1.5, f"{total:.3f} s of audio for a 1.4 s segment"
        code, err = decode_errors(local)
        assert code == 0 and not err.strip(), err


def test_opus_into_mp4_becomes_aac(make_mount, workdir, tmp_path):
    src = os.path.join(workdir, "seg-opus-src")
    os.makedirs(src, exist_ok=True)
    clip = os.path.join(src, "opus.mkv")
    if not os.path.exists(clip):
        subprocess.run(videos.FFMPEG + ["-f", "lavfi", "-i", "sine=frequency=300:duration=2",
                                        *videos.lavfi("testsrc2", "160x120", 25, 2),
                                        "-c:a", "libopus", "-c:v", "libx264", "-preset",
                                        "ultrafast", "-pix_fmt", "yuv420p", clip], check=True)
    m = make_mount(src, "seg-opus")
    mp4 = read_copy(seg_path(m.mnt, "opus.mkv", "0.5-1.5.mp4"), tmp_path, "a.mp4")
    assert streams_of(mp4)["audio"]["codec_name"] == "aac"
    mkv = read_copy(seg_path(m.mnt, "opus.mkv", "0.5-1.5.mkv"), tmp_path, "a.mkv")
    assert streams_of(mkv)["audio"]["codec_name"] == "opus"
    for f in (mp4, mkv):
        code, err = decode_errors(f)
        assert code == 0 and not err.strip(), err


# ------------------------------------------------------------------ names

BAD_NAMES = ["2-1.mp4", "1-1.mp4", "0-1.avi", "0-1.webm", "a-b.mp4", "0-1", "-1-2.mp4",
             "0-1.copy.avi", "1.97-3.mp4", "5-6.mp4", "1.01-1.02.mp4", "nan-1.mp4",
             "0-inf.mp4", "0-1.copy", "0-1.copy.copy.mp4",
             # one spelling: no trailing zero, no number past 1e9 s (2^32 once wrapped to 0)
             "0.50-1.mp4", "0-1.0.mp4", "0.000-100.0.mkv", "00-1.mp4",
             "4294967296-4294967297.mp4", "4294967296.5-4294967297.copy.mp4",
             "0-1000000.000000001.mp4"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_enoent(mnt, name):
    # h264_bframes.mp4: 50 frames at 25 fps, the last at 1.96 s
    path = seg_path(mnt, "h264_bframes.mp4", name)
    assert util.errname(util.errno_of(os.stat, path)) == "ENOENT"
    assert util.errname(util.errno_of(util.read_all, path)) == "ENOENT"


def test_av1_into_ts_is_enoent_for_stat_and_open(corpus, make_mount):
    """MPEG-TS has no mapping for AV1 in FFmpeg: with segment_codec=av1 a .ts segment is a
    name that cannot exist, so stat says so as open does; other containers exist."""
    m = make_mount(corpus, "seg-av1-ts", opts=["segment_codec=av1"])
    path = seg_path(m.mnt, "h264_bframes.mp4", "0-1.ts")
    assert util.errname(util.errno_of(os.stat, path)) == "ENOENT"
    assert util.errname(util.errno_of(util.read_all, path)) == "ENOENT"
    os.stat(seg_path(m.mnt, "h264_bframes.mp4", "0-1.mkv"))
    os.stat(seg_path(m.mnt, "h264_bframes.mp4", "0-1.copy.ts"))  # h264 copied: fine


@pytest.mark.parametrize("clip", ["empty.mp4", "truncated.mp4", "notvideo.mp4"])
def test_broken_source_is_eio(mnt, clip):
    for name in ("0-1.mp4", "0-1.copy.mkv"):
        e = util.errno_of(util.read_all, seg_path(mnt, clip, name))
        assert util.errname(e) == "EIO", f"{clip}/{name}: {util.errname(e)}"


def test_corrupt_source_does_not_wedge(mnt, tmp_path):
    """A source with damage in the middle: a segment through it is produced or fails with
    EIO, and the mount goes on serving."""
    for name in ("0.5-1.5.mp4", "0.5-1.5.copy.ts"):
        e = util.errno_of(util.read_all, seg_path(mnt, "corrupt.ts", name))
        assert e in (None, errno.EIO)
    assert len(util.read_all(seg_path(mnt, "h264_bframes.mp4", "0-0.5.mp4"))) > 0


# ------------------------------------------------------------------ concurrency, store

def run_parallel(paths):
    results = [None] * len(paths)

    def one(i):
        try:
            results[i] = util.read_all(paths[i])
        except OSError as e:
            results[i] = e

    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(paths))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def test_parallel_readers(corpus, make_mount, tmp_path):
    m = make_mount(corpus, "seg-parallel")
    clip = "h264_720p.mp4"
    r = util.ref(clip)
    # 8 different names at once, then 8 readers of one name: one encode, 8 equal files
    bounds = [(i / 10, (i + 3) / 10) for i in range(8)]
    names = [f"{a:g}-{b:g}.mp4" for a, b in bounds]
    got = run_parallel([seg_path(m.mnt, clip, n) for n in names])
    t = frame_times(r)
    for (s, e), n, data in zip(bounds, names, got):
        assert isinstance(data, bytes) and data, f"{n}: {data!r}"
        local = os.path.join(str(tmp_path), n)
        with open(local, "wb") as f:
            f.write(data)
        a = next(j for j, x in enumerate(t) if x >= s - 1e-9)
        b = next((j for j, x in enumerate(t) if x >= e - 1e-9), len(t))
        check_transcode(n, r, a, b, local)
    before = stats(m.mnt)
    same = run_parallel([seg_path(m.mnt, clip, "0.1-0.9.mkv")] * 8)
    assert all(isinstance(d, bytes) and d == same[0] and d for d in same)
    after = stats(m.mnt)
    assert after["produced"] - before["produced"] == 1, (before, after)


def test_survives_remount(corpus, make_mount, workdir):
    cache = os.path.join(workdir, "seg-remount.cache")
    m = make_mount(corpus, "seg-remount-1", cache_dir=cache)
    path = seg_path(m.mnt, "h264_bframes.mp4", "0.25-1.25.mp4")
    data = util.read_all(path)
    m.stop()
    m2 = make_mount(corpus, "seg-remount-2", cache_dir=cache)
    path2 = seg_path(m2.mnt, "h264_bframes.mp4", "0.25-1.25.mp4")
    assert os.stat(path2).st_size == len(data), "size not known from the store after remount"
    assert util.read_all(path2) == data
    s = stats(m2.mnt)
    assert s["produced"] == 0 and s["store_hits"] >= 1, s


def test_changed_source_is_not_served_stale(make_mount, workdir, corpus, tmp_path):
    src = os.path.join(workdir, "seg-change-src")
    os.makedirs(src, exist_ok=True)
    clip = os.path.join(src, "clip.mp4")
    shutil.copyfile(os.path.join(corpus, "h264_bframes.mp4"), clip)
    m = make_mount(src, "seg-change")
    path = seg_path(m.mnt, "clip.mp4", "0.2-0.8.mp4")
    first = read_copy(path, tmp_path, "1.mp4")
    assert util.probe(first)["streams"][0]["width"] == 320
    shutil.copyfile(os.path.join(corpus, "size_200x120.mp4"), clip + ".tmp")
    os.replace(clip + ".tmp", clip)
    second = read_copy(path, tmp_path, "2.mp4")
    assert util.probe(second)["streams"][0]["width"] == 200


# ------------------------------------------------------------------ encoders

def test_nvenc_falls_back_to_cpu(mnt, shared_mount):
    """Without a GPU, segment_encoder=auto encodes on the CPU, counts the fallback and says
    so in the log once, not once a segment."""
    for name in ("0-0.3.mp4", "0.3-0.6.mp4"):
        util.read_all(seg_path(mnt, "size_200x120.mp4", name))
    s = stats(mnt)
    assert s["cpu_encodes"] + s["nvenc_encodes"] >= 2
    if not os.path.exists("/dev/nvidia0"):
        assert s["cpu_encodes"] >= 2 and s["nvenc_fallbacks"] >= 2, s
        with open(shared_mount.log_path, errors="replace") as f:
            log = f.read()
        assert log.count("NVENC unavailable") <= 1


@pytest.mark.parametrize("opts,codec", [
    (["segment_codec=hevc"], "hevc"),
    (["segment_codec=av1"], "av1"),
    (["segment_rc=cbr", "segment_bitrate=500"], "h264"),
    (["segment_rc=vbr", "segment_bitrate=500"], "h264"),
    (["segment_rc=constqp", "segment_quality=20", "segment_bframes=0", "segment_gop=5"],
     "h264"),
    (["segment_encoder=cpu", "segment_preset=ultrafast"], "h264"),
])
def test_encoder_settings(corpus, make_mount, opts, codec, tmp_path):
    m = make_mount(corpus, "seg-enc-" + "-".join(o.replace("=", "_") for o in opts),
                   opts=opts)
    r = util.ref("h264_bframes.mp4")
    s, e = span(r, 5, 40)
    path = seg_path(m.mnt, "h264_bframes.mp4", f"{s}-{e}.mp4")
    local = read_copy(path, tmp_path, "seg.mp4")
    assert streams_of(local)["video"]["codec_name"] == codec
    check_transcode(path, r, 5, 40, local)
    if "segment_gop=5" in opts:
        keys = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                               "-show_entries", "frame=key_frame", "-of", "csv=p=0", local],
                              check=True, capture_output=True, text=True).stdout.split()
        assert [k.strip(",") for k in keys].count("1") >= 35 // 5
