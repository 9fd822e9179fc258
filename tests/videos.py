#!/usr/bin/python3
"""The vidfs test corpus: short videos that each exercise one thing the
filesystem must get right (B-frames, open GOP, 10-bit, odd sizes, edit lists,
VFR, cover art, several streams, broken files ...), made with the ffmpeg CLI.

    /usr/bin/python3 tests/videos.py OUTDIR [--check]

writes the corpus into OUTDIR (a file that already exists is kept: the cache is
by name), and with --check verifies with ffprobe that each file really has the
property it is there for. The mount tests import CLIPS to know what to expect.
Everything is tiny (1-3 s, mostly <= 320x240) so the suite runs in minutes on
two cores; one 720p clip is there for reads that span several 1 MiB requests.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

FFMPEG = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]


@dataclass
class Clip:
    """One file of the corpus.

    kind: "video" (a readable video), "bad" (a video name FFmpeg cannot read:
    meta.json has "error", frames give EIO), "novideo" (readable, no video
    stream), "corrupt" (readable with damaged data), "file" (not a video).
    """

    name: str  # path relative to the corpus root
    kind: str
    make: object  # function(out_path, work_dir)
    tags: set = field(default_factory=set)

    @property
    def bitexact(self):
        """nv12/yuv420p/gray must equal FFmpeg's bytes (8-bit 4:2:0)."""
        return self.kind == "video" and "8bit420" in self.tags


def lavfi(src, size, rate, duration):
    return ["-f", "lavfi", "-i", f"{src}=size={size}:rate={rate}:duration={duration}"]


def run(args):
    subprocess.run(args, check=True)


def enc(inputs, codec_args, out, extra=()):
    run(FFMPEG + list(inputs) + list(codec_args) + list(extra) + [out])


X264_FAST = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]


def x264(size, rate, dur, bf=3, gop=12, src="testsrc2", params=None, extra=()):
    p = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bf}"
    if params:
        p += ":" + params
    def make(out, work):
        enc(lavfi(src, size, rate, dur), X264_FAST + ["-x264-params", p], out, extra)
    return make


def make_h264_opengop_ts(out, work):
    mkv = os.path.join(work, "opengop_for_ts.mkv")
    x264("256x144", 25, 2, bf=3, gop=10, params="open-gop=1:b-pyramid=normal")(mkv, work)
    run(FFMPEG + ["-i", mkv, "-map", "0", "-c", "copy", out])


def make_hevc(pix_fmt, size, dur, tag=()):
    def make(out, work):
        # keyint 15 = 1 + 2*(4 B + P) + 4 B: the B pictures before each CRA are
        # leading (RASL) pictures
        params = ("bframes=4:keyint=15:min-keyint=15:scenecut=0:open-gop=1"
                  ":log-level=error")
        enc(lavfi("testsrc2", size, 25, dur),
            ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", pix_fmt,
             "-x265-params", params] + list(tag), out)
    return make


def make_vp9(size, rate, dur):
    def make(out, work):
        # alt-ref frames make superframes with hidden pictures: packets != frames
        enc(lavfi("testsrc2", size, rate, dur),
            ["-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "8",
             "-auto-alt-ref", "1", "-lag-in-frames", "10", "-g", "30",
             "-b:v", "300k", "-pix_fmt", "yuv420p"], out)
    return make


def make_av1(out, work):
    enc(lavfi("testsrc2", "256x144", 24, 1.5),
        ["-c:v", "libsvtav1", "-preset", "12", "-g", "24", "-pix_fmt", "yuv420p"], out)


def make_mpeg4_avi(out, work):
    enc(lavfi("testsrc2", "176x144", 25, 2),
        ["-c:v", "mpeg4", "-bf", "2", "-g", "12", "-q:v", "4"], out)


def make_mpeg2(out, work):
    enc(lavfi("testsrc2", "176x144", 25, 1.6),
        ["-c:v", "mpeg2video", "-bf", "2", "-g", "12", "-q:v", "4"], out)


def make_vfr(out, work):
    # frame durations cycle 52/52/16 ms with an extra 24 ms every 7th frame
    enc(lavfi("testsrc2", "320x240", 25, 2),
        ["-vf", "settb=1/1000,setpts='(N+0.6*floor(N/7)+0.3*mod(N,3))/25/TB'",
         "-fps_mode", "vfr", "-enc_time_base", "1/1000"]
        + X264_FAST + ["-x264-params", "keyint=12:min-keyint=12:scenecut=0:bframes=2"],
        out)


def make_editlist(out, work):
    # Stream copy from a point between keyframes: the mp4 keeps the packets from
    # the keyframe before and an edit list that discards the frames before 1.4 s.
    base = os.path.join(work, "editlist_base.mp4")
    if not os.path.exists(base):
        x264("256x144", 25, 3, bf=2, gop=25)(base, work)
    run(FFMPEG + ["-ss", "1.4", "-i", base, "-c", "copy", "-t", "1.2", out])


def make_interlaced(out, work):
    enc(lavfi("testsrc2", "320x240", 25, 2),
        X264_FAST + ["-flags", "+ildct+ilme", "-field_order", "tt",
                     "-x264-params",
                     "interlaced=1:tff=1:keyint=12:min-keyint=12:scenecut=0:bframes=2"],
        out)


def make_odd_vp9(out, work):
    # H.264/HEVC cannot code odd 4:2:0 sizes; VP9 can. (testsrc2 rounds odd
    # sizes down; testsrc makes RGB that swscale converts at the odd size.)
    enc(lavfi("testsrc", "177x99", 25, 1),
        ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
         "-pix_fmt", "yuv420p", "-g", "10"], out)


def make_444(out, work):
    enc(lavfi("testsrc2", "176x144", 25, 1),
        ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv444p",
         "-x264-params", "keyint=10:min-keyint=10:scenecut=0:bframes=2"], out)


def make_coverart(out, work):
    # A large PNG cover (bigger than the video, so "largest stream" is wrong) as
    # stream 0 with the attached_pic disposition, then the real video.
    cover = os.path.join(work, "cover.png")
    vid = os.path.join(work, "coverart_video.mp4")
    if not os.path.exists(cover):
        run(FFMPEG + ["-f", "lavfi", "-i", "smptebars=size=400x300", "-frames:v", "1", cover])
    if not os.path.exists(vid):
        x264("160x120", 25, 1, bf=2, gop=10)(vid, work)
    run(FFMPEG + ["-i", cover, "-i", vid, "-map", "0", "-map", "1", "-c", "copy",
                  "-disposition:v:0", "attached_pic", "-disposition:v:1", "default", out])


def make_two_streams(out, work):
    # stream 0: 320x240 at 25 fps (the default), stream 1: 160x120 at 15 fps,
    # different frame counts so that streams/1/ cannot pass for stream 0.
    run(FFMPEG + lavfi("testsrc2", "320x240", 25, 1) + lavfi("smptebars", "160x120", 15, 1)
        + ["-map", "0:v", "-map", "1:v"] + X264_FAST
        + ["-x264-params", "keyint=10:min-keyint=10:scenecut=0:bframes=2",
           "-b:v:0", "800k", "-b:v:1", "100k",
           "-disposition:v:0", "default", "-disposition:v:1", "0", out])


def make_with_audio(out, work):
    # audio is stream 0, video stream 1: the default video is not stream 0
    run(FFMPEG + ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
        + lavfi("testsrc2", "176x144", 25, 2)
        + ["-map", "0:a", "-map", "1:v", "-c:a", "aac", "-b:a", "64k"] + X264_FAST
        + ["-x264-params", "keyint=12:min-keyint=12:scenecut=0:bframes=2", out])


def make_rotated(out, work):
    # FFmpeg 5.1 writes a display matrix from the rotate tag only on stream copy
    plain = os.path.join(work, "rotated_plain.mp4")
    if not os.path.exists(plain):
        x264("160x96", 25, 1, bf=2, gop=10)(plain, work)
    run(FFMPEG + ["-i", plain, "-c", "copy", "-metadata:s:v:0", "rotate=90", out])


def make_audio_only(out, work):
    run(FFMPEG + ["-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                  "-c:a", "aac", "-b:a", "64k", out])


def make_empty(out, work):
    open(out, "wb").close()


def make_truncated(out, work):
    # The first 30% of an mp4 whose moov is at the end: FFmpeg cannot open it.
    full = os.path.join(work, "truncated_full.mp4")
    if not os.path.exists(full):
        x264("320x240", 25, 2)(full, work)
    with open(full, "rb") as f:
        data = f.read()
    with open(out, "wb") as f:
        f.write(data[: len(data) * 3 // 10])


def make_notvideo(out, work):
    rng = random.Random(1)
    with open(out, "wb") as f:
        f.write(b"this is not a video, just text and noise\n" * 20)
        f.write(bytes(rng.getrandbits(8) for _ in range(20000)))


def make_corrupt(out, work):
    # An H.264 transport stream with 3 KiB of noise written over its middle.
    good = os.path.join(work, "corrupt_good.ts")
    if not os.path.exists(good):
        x264("320x240", 25, 2, bf=2, gop=12)(good, work)
    with open(good, "rb") as f:
        data = bytearray(f.read())
    rng = random.Random(2)
    mid = len(data) // 2
    data[mid: mid + 3072] = bytes(rng.getrandbits(8) for _ in range(3072))
    with open(out, "wb") as f:
        f.write(data)


def make_labels(out, work):
    with open(out, "w") as f:
        f.write("file,label\n")
        for i in range(200):
            f.write(f"clip{i:03d}.mp4,{['cat', 'dog', 'bird'][i % 3]}\n")


def make_blob(out, work):
    rng = random.Random(3)
    with open(out, "wb") as f:
        f.write(bytes(rng.getrandbits(8) for _ in range(300_001)))


def make_text(text):
    def make(out, work):
        with open(out, "w") as f:
            f.write(text)
    return make


CLIPS = [
    Clip("h264_bframes.mp4", "video", x264("320x240", 25, 2, bf=3, gop=12),
         {"8bit420", "h264", "bframes"}),
    Clip("h264_opengop.mkv", "video",
         x264("256x144", 25, 2, bf=3, gop=10, params="open-gop=1:b-pyramid=normal"),
         {"8bit420", "h264", "opengop"}),
    Clip("h264_opengop.ts", "video", make_h264_opengop_ts, {"8bit420", "h264", "opengop"}),
    Clip("hevc_8bit.mkv", "video", make_hevc("yuv420p", "256x144", 2),
         {"8bit420", "hevc", "opengop"}),
    Clip("hevc_10bit.mp4", "video", make_hevc("yuv420p10le", "320x180", 1.5, ["-tag:v", "hvc1"]),
         {"10bit", "hevc"}),
    Clip("vp9.webm", "video", make_vp9("240x160", 30, 2), {"8bit420", "vp9"}),
    Clip("av1.mkv", "video", make_av1, {"8bit420", "av1"}),
    Clip("mpeg4.avi", "video", make_mpeg4_avi, {"8bit420", "mpeg4", "bframes"}),
    Clip("mpeg2.mpg", "video", make_mpeg2, {"8bit420", "mpeg2", "bframes"}),
    Clip("vfr.mkv", "video", make_vfr, {"8bit420", "h264", "vfr"}),
    Clip("editlist.mp4", "video", make_editlist, {"8bit420", "h264", "editlist"}),
    Clip("interlaced.ts", "video", make_interlaced, {"8bit420", "h264", "interlaced"}),
    Clip("odd_177x99.webm", "video", make_odd_vp9, {"8bit420", "vp9", "odd"}),
    Clip("size_200x120.mp4", "video", x264("200x120", 25, 1, bf=2, gop=10),
         {"8bit420", "h264", "not16"}),
    Clip("h264_444.mp4", "video", make_444, {"444", "h264"}),
    Clip("coverart.mp4", "video", make_coverart, {"8bit420", "h264", "coverart"}),
    Clip("two_streams.mp4", "video", make_two_streams, {"8bit420", "h264", "twostreams"}),
    Clip("with_audio.mp4", "video", make_with_audio, {"8bit420", "h264", "audio"}),
    Clip("rotated.mp4", "video", make_rotated, {"8bit420", "h264", "rotated"}),
    Clip("h264_720p.mp4", "video",
         x264("1280x720", 25, 1, bf=2, gop=12, extra=["-preset", "ultrafast"]),
         {"8bit420", "h264", "large"}),
    Clip("dir one/ünïcode clip.mp4", "video", x264("160x120", 25, 1, bf=2, gop=10),
         {"8bit420", "h264", "nested"}),
    Clip("dir one/nested/two/clip.mov", "video", x264("160x120", 25, 1, bf=2, gop=10),
         {"8bit420", "h264", "nested"}),
    Clip("empty.mp4", "bad", make_empty, {"empty"}),
    Clip("truncated.mp4", "bad", make_truncated, {"truncated"}),
    Clip("notvideo.mp4", "bad", make_notvideo, {"garbage"}),
    Clip("audio.mp4", "novideo", make_audio_only, {"audio"}),
    Clip("corrupt.ts", "corrupt", make_corrupt, {"h264"}),
    Clip("labels.csv", "file", make_labels),
    Clip("blob.bin", "file", make_blob),
    Clip("dir one/données.txt", "file", make_text("des données, pas une vidéo\n")),
    Clip("notes/readme.txt", "file", make_text("not a video\n")),
]

VIDEOS = [c for c in CLIPS if c.kind == "video"]


def clip(name):
    for c in CLIPS:
        if c.name == name:
            return c
    raise KeyError(name)


def generate(outdir, work=None, verbose=True):
    """Make every missing file of the corpus in outdir; return outdir. Intermediate files
    go to work, else to a temporary directory removed afterwards (nothing left beside
    outdir)."""
    outdir = os.path.abspath(outdir)
    os.makedirs(outdir, exist_ok=True)
    if work is None:
        with tempfile.TemporaryDirectory(prefix="vidfs-videos-") as tmp:
            return generate(outdir, tmp, verbose)
    os.makedirs(work, exist_ok=True)
    for c in CLIPS:
        out = os.path.join(outdir, c.name)
        if os.path.exists(out):
            continue
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if verbose:
            print(f"videos.py: making {c.name}", file=sys.stderr, flush=True)
        # write to a temporary name in the same folder, so that an interrupted run
        # never leaves a half-written file that the cache would then keep
        ext = os.path.splitext(c.name)[1]
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=ext, dir=os.path.dirname(out))
        os.close(fd)
        try:
            c.make(tmp, work)
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return outdir


# ---------------------------------------------------------------- checks

def ffprobe(path, *args):
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, path],
                         check=True, capture_output=True).stdout
    return json.loads(out)


def check(outdir):
    """Verify that each clip has the property it is in the corpus for."""
    problems = []

    def expect(cond, what):
        if not cond:
            problems.append(what)
        print(("ok   " if cond else "FAIL ") + what)

    for c in CLIPS:
        p = os.path.join(outdir, c.name)
        if c.kind == "file":
            expect(os.path.getsize(p) > 0, f"{c.name}: not empty")
            continue
        if c.kind == "bad":
            r = subprocess.run(["ffprobe", "-v", "error", "-show_streams", p],
                               capture_output=True)
            expect(r.returncode != 0, f"{c.name}: ffprobe cannot read it")
            continue
        info = ffprobe(p, "-show_streams", "-show_format")
        vids = [s for s in info["streams"] if s["codec_type"] == "video"]
        if c.kind == "novideo":
            expect(not vids, f"{c.name}: has no video stream")
            continue
        real = [s for s in vids if not s.get("disposition", {}).get("attached_pic")]
        expect(len(real) >= 1, f"{c.name}: has a video stream")
        if "coverart" in c.tags:
            pics = [s for s in vids if s.get("disposition", {}).get("attached_pic")]
            expect(len(pics) == 1 and pics[0]["codec_name"] == "png",
                   f"{c.name}: has a PNG attached_pic stream (index "
                   f"{pics[0]['index'] if pics else None}, video index {real[0]['index']})")
        if "twostreams" in c.tags:
            expect(len(real) == 2, f"{c.name}: has two video streams")
        if "audio" in c.tags:
            expect(info["streams"][0]["codec_type"] == "audio",
                   f"{c.name}: audio is stream 0, video after it")
        if "opengop" in c.tags:
            fr = ffprobe(p, "-select_streams", "v:0", "-show_frames",
                         "-show_entries", "frame=key_frame,pict_type")["frames"]
            types = "".join(f["pict_type"] for f in fr)
            # a B before a non-first I in display order = leading picture
            lead = any(types[i] == "I" and types[i - 1] == "B" for i in range(1, len(types)))
            expect(lead, f"{c.name}: open GOP with leading B pictures ({types[:24]}...)")
        if "editlist" in c.tags:
            n = ffprobe(p, "-select_streams", "v:0", "-count_packets", "-count_frames",
                        "-show_entries", "stream=nb_read_packets,nb_read_frames")
            s = n["streams"][0]
            expect(int(s["nb_read_packets"]) > int(s["nb_read_frames"]),
                   f"{c.name}: edit list discards frames (packets {s['nb_read_packets']}"
                   f" > frames {s['nb_read_frames']})")
        if "vfr" in c.tags:
            fr = ffprobe(p, "-select_streams", "v:0", "-show_frames",
                         "-show_entries", "frame=best_effort_timestamp_time")["frames"]
            t = [float(f["best_effort_timestamp_time"]) for f in fr]
            d = {round(b - a, 3) for a, b in zip(t, t[1:])}
            expect(len(d) >= 3, f"{c.name}: variable frame durations {sorted(d)}")
        if "interlaced" in c.tags:
            expect(real[0].get("field_order") in ("tt", "tb"),
                   f"{c.name}: interlaced (field_order {real[0].get('field_order')})")
        if "10bit" in c.tags:
            expect(real[0]["pix_fmt"] == "yuv420p10le", f"{c.name}: 10-bit")
        if "444" in c.tags:
            expect(real[0]["pix_fmt"] == "yuv444p", f"{c.name}: yuv444p")
        if "rotated" in c.tags:
            sd = real[0].get("side_data_list", [])
            rot = [x.get("rotation") for x in sd if "rotation" in x]
            expect(rot and abs(int(rot[0])) == 90, f"{c.name}: display matrix rotation {rot}")
        if "odd" in c.tags or "not16" in c.tags:
            expect(real[0]["width"] % 16 and real[0]["height"] % 16,
                   f"{c.name}: size {real[0]['width']}x{real[0]['height']} not multiple of 16")
    return problems


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    outdir = generate(argv[1])
    if "--check" in argv[2:]:
        problems = check(outdir)
        if problems:
            print(f"{len(problems)} corpus problem(s)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
