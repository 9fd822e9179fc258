"""The table of open media under load: many videos looked up from many threads, more of
them than the table holds (eviction while others read), a source rewritten in place, a
folder listed without indexing what is in it, and frames.csv whose stat is its size."""

import json
import os
import random
import shutil
import subprocess
import threading
import time

import util

# Three different videos (sizes, B-frames, variable frame rate), many names of each.
KINDS = ["h264_bframes.mp4", "size_200x120.mp4", "vfr.mkv"]
BOUND = 256  # fs/media_table.c's default bound on open media


def linked_folder(workdir, corpus, name, n):
    """A source folder of n names, hard links to copies of the videos of KINDS in turn (one
    index in the store for each kind, one table entry for each name). Copies: a link to the
    corpus itself would change its ctime under other mounts."""
    kinds = os.path.join(workdir, "kinds")
    os.makedirs(kinds, exist_ok=True)
    for kind in KINDS:
        if not os.path.exists(os.path.join(kinds, kind)):
            shutil.copyfile(os.path.join(corpus, kind), os.path.join(kinds, kind))
    src = os.path.join(workdir, name)
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    names = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        name_i = f"v{i:04d}{os.path.splitext(kind)[1]}"
        os.link(os.path.join(kinds, kind), os.path.join(src, name_i))
        names.append((name_i, kind))
    return src, names


def run_threads(n, fn):
    errors = []

    def body(k):
        try:
            fn(k)
        except Exception as e:  # noqa: BLE001 - reported below, with the thread
            errors.append(f"thread {k}: {e!r}")

    threads = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, "\n".join(errors[:5])


def expected(corpus):
    """Per kind: meta.json bytes, frames.csv bytes, frame size and a reference frame."""
    out = {}
    for kind in KINDS:
        r = util.ref(kind)
        out[kind] = {"n": r.n, "fsize": r.frame_size("nv12"), "frame3": r.frame("nv12", 3)}
    return out


def test_listing_a_folder_indexes_nothing(make_mount, workdir, corpus):
    """`ls -l` of a folder of videos needs only the sources' stat: nothing probed, nothing
    indexed (a video directory's stat is its source's). The listing comes in many pieces
    (readdirplus with offsets): every name once, with what stat gives."""
    src, names = linked_folder(workdir, corpus, "listing.src", 1500)
    with open(os.path.join(src, "notes.txt"), "w") as f:
        f.write("plain\n")
    os.mkdir(os.path.join(src, "sub"))
    os.mkfifo(os.path.join(src, "fifo"))  # not listed
    cache = os.path.join(workdir, "listing.cache")
    shutil.rmtree(cache, ignore_errors=True)
    m = make_mount(src, "listing", cache_dir=cache)
    out = subprocess.run(["ls", "-l", m.mnt], check=True, capture_output=True, text=True).stdout
    assert sum(1 for line in out.splitlines() if line.startswith("d")) == len(names) + 1
    want = sorted([n for n, _ in names] + ["notes.txt", "sub", ".vidfs"])
    assert sorted(os.listdir(m.mnt)) == want
    for e in os.scandir(m.mnt):
        st = e.stat(follow_symlinks=False)
        assert st.st_mode == os.stat(e.path).st_mode, e.name
        if e.name.startswith("v"):
            sst = os.stat(os.path.join(src, e.name))
            assert e.is_dir() and st.st_mtime_ns == sst.st_mtime_ns, e.name
            assert st.st_uid == sst.st_uid and st.st_ctime_ns == sst.st_ctime_ns, e.name
    assert os.stat(os.path.join(m.mnt, "notes.txt")).st_size == 6
    stored = [f for f in os.listdir(cache) if f.startswith("index-")]
    assert not stored, f"listing indexed {len(stored)} videos: {stored[:3]}"
    # and the media is opened once something inside is asked for
    os.stat(os.path.join(m.mnt, names[0][0], "meta.json"))
    assert [f for f in os.listdir(cache) if f.startswith("index-")]


def test_concurrent_lookups_give_correct_stats(make_mount, workdir, corpus):
    src, names = linked_folder(workdir, corpus, "lookups.src", 120)
    want = expected(corpus)
    m = make_mount(src, "lookups")
    meta = {kind: util.read_all(os.path.join(m.mnt, names[i][0], "meta.json"))
            for i, kind in enumerate(KINDS)}

    def reader(k):
        rng = random.Random(k)
        for _ in range(150):
            name, kind = rng.choice(names)
            d = os.path.join(m.mnt, name)
            w = want[kind]
            assert os.stat(d).st_mtime_ns == os.stat(os.path.join(src, name)).st_mtime_ns
            assert os.stat(os.path.join(d, "meta.json")).st_size == len(meta[kind]), name
            frame = rng.randrange(w["n"])
            assert os.stat(os.path.join(d, "frames", f"{frame}.nv12")).st_size == w["fsize"]
            assert json.loads(meta[kind])["num_frames"] == w["n"]

    run_threads(16, reader)


def test_eviction_with_concurrent_readers(make_mount, workdir, corpus):
    """More videos than the table holds, read at random from many threads: entries are
    evicted under readers that hold their media, and every read stays right."""
    src, names = linked_folder(workdir, corpus, "evict.src", BOUND + 60)
    want = expected(corpus)
    m = make_mount(src, "evict")

    def reader(k):
        rng = random.Random(100 + k)
        order = names[k::8] + [rng.choice(names) for _ in range(30)]
        for name, kind in order:
            d = os.path.join(m.mnt, name)
            got = util.read_all(os.path.join(d, "frames", "3.nv12"))
            assert got == want[kind]["frame3"], f"{name}: {util.describe_diff(got, want[kind]['frame3'])}"
            csv = util.read_all(os.path.join(d, "frames.csv"))
            assert csv.count(b"\n") == want[kind]["n"] + 1, name
            assert os.stat(os.path.join(d, "frames.csv")).st_size == len(csv), name

    run_threads(8, reader)


def test_source_rewritten_in_place_is_indexed_again(make_mount, workdir, corpus):
    """Same inode, mtime put back: only size and ctime tell; the new video is served."""
    src = util.fresh_source(workdir, "inplace", corpus, [("h264_bframes.mp4", "clip.mp4")])
    clip = os.path.join(src, "clip.mp4")
    m = make_mount(src, "inplace")
    d = os.path.join(m.mnt, "clip.mp4")
    assert json.loads(util.read_all(os.path.join(d, "meta.json")))["width"] == 320
    before = os.stat(clip)
    ino = before.st_ino
    with open(os.path.join(corpus, "size_200x120.mp4"), "rb") as f:
        new = f.read()
    with open(clip, "r+b") as f:  # in place: same inode
        f.truncate(0)
        f.write(new)
    os.utime(clip, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(clip).st_ino == ino
    time.sleep(1.5)  # the kernel's entry cache
    r = util.ref(clip)
    after = json.loads(util.read_all(os.path.join(d, "meta.json")))
    assert (after["width"], after["height"], after["num_frames"]) == (200, 120, r.n)
    csv = util.read_all(os.path.join(d, "frames.csv"))
    assert os.stat(os.path.join(d, "frames.csv")).st_size == len(csv)
    assert csv.count(b"\n") == r.n + 1
    got = util.read_all(os.path.join(d, "frames", "3.nv12"))
    assert got == r.frame("nv12", 3), util.describe_diff(got, r.frame("nv12", 3))


def long_video(workdir, frames):
    path = os.path.join(workdir, "longcsv.src", "long.mp4")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                        f"color=size=32x32:rate=25:duration={frames // 25}", "-c:v",
                        "libx264", "-preset", "ultrafast", path + ".mp4"], check=True)
        os.replace(path + ".mp4", path)
    return os.path.dirname(path)


def test_frames_csv_stat_is_its_size(make_mount, workdir, corpus, mnt):
    """stat first (nothing of the media open yet, then again), then read: the same size,
    for every video of the corpus (VFR, edit lists, B-frames, several streams) and a long
    one."""
    for name in [c.name for c in util.videos.VIDEOS] + ["two_streams.mp4/streams/1"]:
        p = os.path.join(mnt, name, "frames.csv")
        size = os.stat(p).st_size
        data = util.read_all(p)
        assert size == len(data) == os.stat(p).st_size, name
    m = make_mount(long_video(workdir, 30000), "longcsv")
    p = os.path.join(m.mnt, "long.mp4", "frames.csv")
    size = os.stat(p).st_size
    data = util.read_all(p)
    assert size == len(data) and data.count(b"\n") == 30001
