"""meta.json and frames.csv: ffprobe's names and values, exact frame counts,
and an "error" field for sources FFmpeg cannot read."""

import csv
import io
import json
import os

import pytest

import util
from util import videos

GOOD = [c.name for c in videos.VIDEOS]
BROKEN = [c.name for c in videos.CLIPS if c.kind in ("bad", "novideo")]
VIDEO_LIKE = [c.name for c in videos.CLIPS if c.kind != "file"]

KEYS = ["format_name", "duration", "codec_name", "profile", "pix_fmt", "bits_per_raw_sample",
        "width", "height", "sample_aspect_ratio", "rotation", "avg_frame_rate", "time_base",
        "start_time", "num_frames", "keyframes", "color_range", "color_space",
        "color_primaries", "color_transfer", "bit_rate", "audio_streams"]


def meta(mnt, name, sub=""):
    with open(os.path.join(mnt, name, sub, "meta.json"), "rb") as f:
        return json.load(f)


def close(a, b, tol):
    return abs(util.to_number(a) - util.to_number(b)) <= tol


@pytest.mark.parametrize("name", VIDEO_LIKE)
def test_meta_is_valid_json(mnt, name):
    assert isinstance(meta(mnt, name), dict)


@pytest.mark.parametrize("name", GOOD)
def test_meta_has_every_key(mnt, name):
    m = meta(mnt, name)
    assert [k for k in KEYS if k not in m] == []
    assert not m.get("error"), f"readable video has error {m.get('error')!r}"


@pytest.mark.parametrize("name", BROKEN)
def test_meta_of_unreadable_source_has_error(mnt, name):
    m = meta(mnt, name)
    assert isinstance(m.get("error"), str) and m["error"], m


@pytest.mark.parametrize("name", GOOD)
def test_num_frames_is_ffmpegs_frame_count(mnt, name):
    assert meta(mnt, name)["num_frames"] == util.ref(name).n


@pytest.mark.parametrize("name", GOOD)
def test_meta_matches_ffprobe(mnt, name):
    r = util.ref(name)
    m, st, fmt = meta(mnt, name), r.st, r.info["format"]
    wrong = []

    def check(key, ok, want):
        if key in m and not ok(m[key]):
            wrong.append(f"{key}: {m[key]!r}, ffprobe says {want!r}")

    for key in ["codec_name", "width", "height", "pix_fmt", "profile", "color_range",
                "color_space", "color_primaries", "color_transfer"]:
        if key in st:
            check(key, lambda v, k=key: v == st[k], st[key])
    check("format_name", lambda v: v == fmt["format_name"], fmt["format_name"])
    if "bits_per_raw_sample" in st:
        check("bits_per_raw_sample", lambda v: int(v) == int(st["bits_per_raw_sample"]),
              st["bits_per_raw_sample"])
    for key in ["avg_frame_rate", "time_base", "sample_aspect_ratio"]:
        if key in st and st[key] not in ("0/0", "0:1"):
            check(key, lambda v, k=key: close(v, st[k], 1e-6), st[key])
    if "start_time" in st:
        check("start_time", lambda v: close(v, st["start_time"], 1e-3), st["start_time"])
    if "duration" in fmt:
        check("duration", lambda v: close(v, fmt["duration"], 0.05), fmt["duration"])
    naudio = sum(s["codec_type"] == "audio" for s in r.info["streams"])
    check("audio_streams", lambda v: isinstance(v, list) and len(v) == naudio,
          f"{naudio} audio streams")
    check("keyframes", lambda v: v == r.keyframes, r.keyframes)
    want_rot = 90 if "rotated" in videos.clip(name).tags else 0
    check("rotation", lambda v: abs(util.to_number(v)) % 360 == want_rot, want_rot)
    assert wrong == []


def test_cover_art_is_not_the_video(mnt):
    m = meta(mnt, "coverart.mp4")
    assert (m["codec_name"], m["width"], m["height"]) == ("h264", 160, 120)
    assert m["num_frames"] == util.ref("coverart.mp4").n


def test_audio_stream_before_video(mnt):
    m = meta(mnt, "with_audio.mp4")
    assert (m["codec_name"], m["width"], m["height"]) == ("h264", 176, 144)
    assert len(m["audio_streams"]) == 1


def test_second_video_stream_has_its_own_tree(mnt):
    top, s1 = meta(mnt, "two_streams.mp4"), meta(mnt, "two_streams.mp4", "streams/1")
    r0, r1 = util.ref("two_streams.mp4", 0), util.ref("two_streams.mp4", 1)
    assert (top["width"], top["height"], top["num_frames"]) == (320, 240, r0.n)
    assert (s1["width"], s1["height"], s1["num_frames"]) == (160, 120, r1.n)
    d = os.path.join(mnt, "two_streams.mp4", "streams", "1")
    assert sorted(os.listdir(os.path.join(d, "frames"))) == sorted(f"{i}.nv12" for i in range(r1.n))
    for i in [0, r1.n // 2, r1.n - 1]:
        got = util.read_all(os.path.join(d, "frames", f"{i}.nv12"))
        assert got == r1.frame("nv12", i), f"streams/1 frame {i}: {util.describe_diff(got, r1.frame('nv12', i))}"
    with open(os.path.join(d, "frames.csv")) as f:
        assert len(list(csv.DictReader(f))) == r1.n


@pytest.mark.parametrize("name", GOOD)
def test_frames_directory_lists_every_frame(mnt, name):
    got = os.listdir(os.path.join(mnt, name, "frames"))
    n = util.ref(name).n
    assert len(got) == n
    assert set(got) == {f"{i}.nv12" for i in range(n)}


def read_csv(path):
    with open(path, newline="") as f:
        text = f.read()
    header = text.splitlines()[0] if text else ""
    return header, list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("name", GOOD)
def test_frames_csv_matches_ffprobe(mnt, name):
    """pts_time is best_effort_timestamp minus frame 0's; key_frame is ffprobe's;
    duration_time is ffprobe's pkt_duration_time or the gap to the next frame
    (containers such as Matroska store a nominal duration that VFR breaks)."""
    r = util.ref(name)
    header, rows = read_csv(os.path.join(mnt, name, "frames.csv"))
    assert header == "index,pts_time,duration_time,key_frame"
    assert len(rows) == r.n
    t = []
    for f in r.frames:
        if "best_effort_timestamp_time" in f:
            t.append(float(f["best_effort_timestamp_time"]))
        else:  # a frame FFmpeg has no time for (last B-frame of an AVI): extrapolate
            t.append(t[-1] + float(r.frames[len(t) - 1].get("pkt_duration_time", 0)))
    wrong = []
    for i, (row, f) in enumerate(zip(rows, r.frames)):
        if int(row["index"]) != i:
            wrong.append(f"row {i}: index {row['index']}")
        if abs(float(row["pts_time"]) - (t[i] - t[0])) > 1e-6:
            wrong.append(f"frame {i}: pts_time {row['pts_time']}, ffprobe {t[i] - t[0]:.6f}")
        if int(row["key_frame"]) != int(f["key_frame"]):
            wrong.append(f"frame {i}: key_frame {row['key_frame']}, ffprobe {f['key_frame']}")
        d = float(row["duration_time"])
        ok = []
        if "pkt_duration_time" in f:
            ok.append(float(f["pkt_duration_time"]))
        if i + 1 < len(t):
            ok.append(t[i + 1] - t[i])
        if not any(abs(d - x) <= 1e-6 for x in ok) and not (not ok and d >= 0):
            wrong.append(f"frame {i}: duration_time {d}, expected one of {ok}")
    assert wrong[:10] == [], f"{len(wrong)} mismatches"


@pytest.mark.parametrize("name", GOOD)
def test_keyframes_agree_with_frames_csv(mnt, name):
    _, rows = read_csv(os.path.join(mnt, name, "frames.csv"))
    assert meta(mnt, name)["keyframes"] == [i for i, r in enumerate(rows) if int(r["key_frame"])]


def test_edit_list_frames_are_dropped(mnt):
    """The mp4 holds 10 packets before its edit list starts: they are not frames."""
    r = util.ref("editlist.mp4")
    m = meta(mnt, "editlist.mp4")
    assert m["num_frames"] == r.n == 32
    got = util.read_all(os.path.join(mnt, "editlist.mp4", "frames", "0.nv12"))
    assert got == r.frame("nv12", 0), util.describe_diff(got, r.frame("nv12", 0))


def test_rotation_does_not_rotate_frames(mnt):
    """-noautorotate: frames are stored-size (160x96), rotation is in meta.json."""
    st = os.stat(os.path.join(mnt, "rotated.mp4", "frames", "0.rgb"))
    assert st.st_size == 160 * 96 * 3
