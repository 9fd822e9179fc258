"""The decoder pool, frame cache and read-ahead, seen through /.vidfs/stats.json on a
mount of its own (so that counters start at zero)."""
import json
import os
import shutil
import subprocess
import time

import pytest

import util

CLIP = "h264_bframes.mp4"  # 50 frames, keyframes every 12


def stats(m):
    with open(os.path.join(m.mnt, ".vidfs", "stats.json")) as f:
        return json.load(f)


def decoded(s):
    """Frames decoded by any backend (on a GPU machine the suite runs with backend=auto)."""
    return s["frames_decoded"]["cpu"] + s["frames_decoded"].get("nvdec", 0)


def read_frame(m, i, fmt="nv12"):
    return util.read_all(os.path.join(m.mnt, CLIP, "frames", f"{i}.{fmt}"))


def own_mount(make_mount, workdir, corpus, name, opts=(), clip=CLIP):
    return make_mount(util.fresh_source(workdir, name, corpus, [clip]), name, opts)


def test_stats_json_has_every_counter(make_mount, workdir, corpus):
    m = own_mount(make_mount, workdir, corpus, "stats-keys")
    s = stats(m)
    for key in ("frames_served", "bytes_served", "frame_cache", "frame_buffers", "decoders",
                "frames_decoded", "readahead", "segments", "in_progress"):
        assert key in s
    assert s["frames_served"] == 0 and decoded(s) == 0


def test_repeated_read_is_a_cache_hit_and_decodes_nothing(make_mount, workdir, corpus):
    m = own_mount(make_mount, workdir, corpus, "stats-cache", ("readahead=0",))
    first = read_frame(m, 30)
    s1 = stats(m)
    assert s1["frame_cache"]["misses"] >= 1 and decoded(s1) >= 1
    assert read_frame(m, 30) == first
    s2 = stats(m)
    assert s2["frame_cache"]["hits"] == s1["frame_cache"]["hits"] + 1
    assert s2["frames_decoded"] == s1["frames_decoded"]


def test_frames_on_the_way_to_a_seek_are_cached(make_mount, workdir, corpus):
    m = own_mount(make_mount, workdir, corpus, "stats-way", ("readahead=0",))
    read_frame(m, 30)  # decodes from keyframe 24 up to 30
    s1 = stats(m)
    read_frame(m, 27)  # passed on the way: no decoding
    s2 = stats(m)
    assert s2["frames_decoded"] == s1["frames_decoded"]
    assert s2["frame_cache"]["hits"] == s1["frame_cache"]["hits"] + 1


def test_sequential_reads_continue_one_decoder(make_mount, workdir, corpus):
    m = own_mount(make_mount, workdir, corpus, "stats-seq", ("readahead=0",))
    for i in range(50):
        read_frame(m, i)
    s = stats(m)
    assert s["decoders"]["created"] == 1, s["decoders"]
    assert s["decoders"]["seeks"] == 0, s["decoders"]
    assert 50 <= decoded(s) <= 50 + 2, s["frames_decoded"]


def test_readahead_decodes_ahead_of_a_sequential_reader(make_mount, workdir, corpus):
    m = own_mount(make_mount, workdir, corpus, "stats-ra", ("readahead=8",))
    for i in range(20):
        read_frame(m, i)
    s = stats(m)
    assert s["readahead"]["frames"] > 0, s["readahead"]
    assert s["frames_served"] == 20


def test_a_batch_is_decoded_ahead_by_its_own_decoder(make_mount, workdir, corpus):
    """A batch read in order hands its decoder to read-ahead, which decodes the next frames
    while the reader converts: every frame once, no second decoder, ffmpeg's bytes."""
    m = own_mount(make_mount, workdir, corpus, "stats-batch-ra", ("readahead=8",))
    r = util.ref(os.path.join(corpus, CLIP))
    fsize = r.frame_size("nv12")
    data = util.read_all(os.path.join(m.mnt, CLIP, "frames", "0-50.nv12"))
    for k in range(50):
        assert data[k * fsize:(k + 1) * fsize] == r.frame("nv12", k), k
    s = stats(m)
    assert s["readahead"]["frames"] > 0, s["readahead"]
    assert s["decoders"]["created"] == 1 and s["decoders"]["seeks"] == 0, s["decoders"]
    assert 50 <= decoded(s) <= 50 + 2, s["frames_decoded"]


def test_a_batch_whose_read_ahead_outruns_the_cache_decodes_each_gop_once_more_at_most(
        make_mount, workdir, corpus):
    """Read-ahead 16 frames ahead of a batch through a cache that holds about 11 of them:
    frames it decoded are dropped before the batch gets there, so the batch takes its
    decoding back instead of seeking back for every frame the cache lost."""
    clip = "h264_720p.mp4"  # 25 frames 1280x720, keyframes every 12
    m = own_mount(make_mount, workdir, corpus, "stats-batch-small",
                  ("readahead=16", "cache_mb=16"), clip)
    r = util.ref(os.path.join(corpus, clip))
    fsize = r.frame_size("nv12")
    with open(os.path.join(m.mnt, clip, "frames", "0-25.nv12"), "rb", buffering=0) as f:
        for k in range(25):
            assert f.read(fsize) == r.frame("nv12", k), k
            time.sleep(0.2)  # a slow consumer: read-ahead goes 16 frames ahead meanwhile
    # each frame at most twice and one GOP's lead-in (without taking decoding back: ~150)
    assert decoded(stats(m)) <= 2 * 25 + 12, stats(m)["frames_decoded"]


@pytest.mark.parametrize("how,ahead", [("files", 8), ("batch", 8), ("files", 0)])
def test_frames_an_in_order_reader_passed_leave_the_cache(make_mount, workdir, corpus, how,
                                                          ahead):
    """A frame an in-order reader passed 16 frames back is dropped from the frame cache,
    whose buffer then takes a new frame instead of fresh memory: the cache holds a window,
    not the whole file, the bytes are ffmpeg's, and the frames just passed are still hits."""
    m = own_mount(make_mount, workdir, corpus, f"stats-behind-{how}-{ahead}",
                  (f"readahead={ahead}",))
    r = util.ref(os.path.join(corpus, CLIP))
    if how == "files":
        for k in range(50):
            assert read_frame(m, k) == r.frame("nv12", k), k
    else:
        fsize = r.frame_size("nv12")
        data = util.read_all(os.path.join(m.mnt, CLIP, "frames", "0-50.nv12"))
        for k in range(50):
            assert data[k * fsize:(k + 1) * fsize] == r.frame("nv12", k), k
    s = stats(m)
    fc = s["frame_cache"]
    assert fc["dropped"] >= 50 - 16 - 8 - 2 and fc["frames"] <= 16 + 8 + 2, fc
    before = decoded(s)
    assert read_frame(m, 40) == r.frame("nv12", 40)
    assert decoded(stats(m)) == before


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_images_read_in_order_are_encoded_ahead_with_the_same_bytes(make_mount, workdir,
                                                                    corpus, fmt):
    """An in-order reader of png/jpg frames gets images encoded ahead by background
    threads, byte for byte what a reader of that frame alone gets; a reader out of order
    gets none encoded ahead."""
    m = own_mount(make_mount, workdir, corpus, "stats-img-" + fmt, ("readahead=8",))
    got = [read_frame(m, i, fmt) for i in range(20)]
    s = stats(m)
    assert s["images"]["ahead"] > 0 and s["images"]["hits"] > 0, s["images"]
    alone = own_mount(make_mount, workdir, corpus, "stats-img-alone-" + fmt, ("readahead=8",))
    for i in (19, 3, 11, 0, 7):
        assert read_frame(alone, i, fmt) == got[i], i
    s = stats(alone)
    assert s["images"]["ahead"] == 0 and s["images"]["hits"] == 0, s["images"]


def test_pool_bound_holds_under_parallel_readers(make_mount, workdir, corpus):
    import concurrent.futures as cf
    m = own_mount(make_mount, workdir, corpus, "stats-pool", ("pool_size=2", "readahead=0"))
    ref = {i: read_frame(m, i) for i in (3, 17, 41)}
    with cf.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda i: (i, read_frame(m, i, "nv12")), [3, 17, 41] * 8))
    assert all(b == ref[i] for i, b in got)
    s = stats(m)
    assert s["decoders"]["busy"] + s["decoders"]["idle"] <= 2, s["decoders"]


def test_bytes_served_counts_what_was_read(make_mount, workdir, corpus):
    """Files on disk (passthrough, source.EXT) count the bytes a read got, not the bytes it
    asked for past the end of the file."""
    m = own_mount(make_mount, workdir, corpus, "stats-bytes")
    with open(os.path.join(workdir, "stats-bytes.src", "note.txt"), "wb") as f:
        f.write(b"x" * 1000)
    # reading stats.json is served too: its own bytes count after its snapshot
    text = util.read_all(os.path.join(m.mnt, ".vidfs", "stats.json"))
    before = json.loads(text)["bytes_served"] + len(text)
    got = 0
    for name in ("note.txt", os.path.join(CLIP, "source.mp4")):
        with open(os.path.join(m.mnt, name), "rb") as f:
            got += len(f.read(1 << 20)) + len(f.read(1 << 20))
    assert got == 1000 + os.path.getsize(os.path.join(corpus, CLIP))
    assert stats(m)["bytes_served"] - before == got


def faulty_mount(make_mount, workdir, corpus, tmp_path, monkeypatch, name, fault, opts=()):
    """A mount of its own whose read-ahead workers meet fault (see readahead_faults.c)."""
    shim = str(tmp_path / "faults.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", shim,
                    os.path.join(os.path.dirname(__file__), "readahead_faults.c"), "-ldl"],
                   check=True)
    with monkeypatch.context() as env:
        env.setenv("LD_PRELOAD", shim)
        env.setenv("VIDFS_FAULT", fault)
        # the sanitizer build wants its runtime first; the shim only wraps three calls
        env.setenv("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "") +
                   ":verify_asan_link_order=0")
        # the faults wrap libavcodec's decode: the CPU backend's, whatever the run's backend
        return own_mount(make_mount, workdir, corpus, name, ("backend=cpu",) + tuple(opts))


def test_readahead_without_memory_gives_up_and_does_not_spin(make_mount, workdir, corpus,
                                                              tmp_path, monkeypatch):
    """A read-ahead worker that cannot allocate a frame drops its job (logged): readers
    decode for themselves and get every frame, and the daemon does not spin on the job."""
    m = faulty_mount(make_mount, workdir, corpus, tmp_path, monkeypatch, "stats-nomem",
                     "nomem", ("readahead=8",))
    r = util.ref(os.path.join(corpus, CLIP))
    t0 = time.monotonic()
    for i in range(20):
        assert read_frame(m, i) == r.frame("nv12", i), i
    assert time.monotonic() - t0 < 10, "readers waited for read-ahead that never came"
    s = stats(m)
    assert s["readahead"]["frames"] == 0, s["readahead"]
    assert "not read ahead" in m.read_log()
    cpu = cpu_seconds(m.proc.pid)
    time.sleep(1)
    assert cpu_seconds(m.proc.pid) - cpu < 0.2, "the daemon spins while idle"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_readahead_takes_an_idle_track_when_the_oldest_is_busy(make_mount, workdir, corpus,
                                                               tmp_path, monkeypatch):
    """The reader follows 64 media (NTRACK in reader.c). With the oldest one's read-ahead
    held up, a 65th sequential reader takes over the least recently used idle track and
    is read ahead, instead of being refused because the oldest track is busy."""
    gate = str(tmp_path / "gate")
    open(gate, "w").close()
    m = faulty_mount(make_mount, workdir, corpus, tmp_path, monkeypatch, "stats-lru",
                     "gate:" + gate, ("readahead=4",))
    src = os.path.join(workdir, "stats-lru.src")
    for i in range(63):
        shutil.copyfile(os.path.join(corpus, "rotated.mp4"), os.path.join(src, f"f{i}.mp4"))
    shutil.copyfile(os.path.join(corpus, CLIP), os.path.join(src, "b.mp4"))
    try:
        read_frame(m, 0), read_frame(m, 1)  # the oldest track: its read-ahead is held up
        t0 = time.monotonic()
        while not os.path.exists(gate + ".taken"):
            assert time.monotonic() - t0 < 20, "no read-ahead job started"
            time.sleep(0.02)
        for i in range(63):
            util.read_all(os.path.join(m.mnt, f"f{i}.mp4", "frames", "0.gray"))
        for i in range(6):
            util.read_all(os.path.join(m.mnt, "b.mp4", "frames", f"{i}.gray"))
        t0 = time.monotonic()
        while stats(m)["readahead"]["frames"] == 0:
            assert time.monotonic() - t0 < 10, "the 65th reader was not read ahead"
            time.sleep(0.05)
    finally:
        os.unlink(gate)
