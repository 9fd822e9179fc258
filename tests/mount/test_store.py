"""The disk store under cache_dir, through real mounts: what a crash leaves is cleaned up,
a segment too big for the store is still served, stored files are checked before they are
served, segments are byte-stable, and two daemons can share one cache_dir.

Expectations: the same segment name gives the same bytes however and wherever it was made
(bit-exact muxing); a damaged store file is never served; nothing gives EIO.
"""

import json
import os
import shutil
import threading

import pytest

import util

CLIP = "h264_720p.mp4"
STORE_ENTRY_PREFIX = "seg"


def seg(mnt, clip, name):
    return os.path.join(mnt, clip, "segments", name)


def stats(mnt):
    with open(os.path.join(mnt, ".vidfs", "stats.json")) as f:
        return json.load(f)


def parallel(fns):
    """Runs each callable in its own thread, all at once: their results (or exceptions)."""
    out = [None] * len(fns)
    go = threading.Barrier(len(fns))

    def one(i):
        go.wait()
        try:
            out[i] = fns[i]()
        except OSError as e:
            out[i] = e

    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def store_files(cache, prefix=STORE_ENTRY_PREFIX):
    return sorted(n for n in os.listdir(cache) if n.startswith(prefix))


def own_source(workdir, corpus, name, clips=(CLIP,)):
    """A fresh source directory with copies of clips: new inodes, so nothing of them is in
    any store yet."""
    return util.fresh_source(workdir, name, corpus, clips)


def test_leftover_tmp_files_removed_at_mount(corpus, make_mount, workdir):
    cache = os.path.join(workdir, "store-tmp.cache")
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(cache)
    # what a crash mid-write leaves: temporaries of the old (mkstemp) and new naming
    leftovers = ["tmp-a1B2c3", "tmp-seg2-1-2-3-4.000000000-5.000000000-s0-f0-5-0.mp4"]
    for n in leftovers:
        with open(os.path.join(cache, n), "wb") as f:
            f.write(b"\0" * 4096)
    m = make_mount(corpus, "store-tmp", cache_dir=cache)
    assert not [n for n in os.listdir(cache) if n.startswith("tmp-")], os.listdir(cache)
    # and by a running daemon, when it next writes to the store
    with open(os.path.join(cache, "tmp-Z9y8x7"), "wb") as f:
        f.write(b"\0" * 4096)
    assert util.read_all(seg(m.mnt, "h264_bframes.mp4", "0-0.5.mp4"))
    assert not [n for n in os.listdir(cache) if n.startswith("tmp-")], os.listdir(cache)


def test_tmp_files_of_a_killed_daemon_removed(corpus, make_mount, workdir):
    cache = os.path.join(workdir, "store-kill.cache")
    shutil.rmtree(cache, ignore_errors=True)
    m = make_mount(corpus, "store-kill", cache_dir=cache)
    path = seg(m.mnt, CLIP, "0-1.mkv")
    t = threading.Thread(target=lambda: util.errno_of(util.read_all, path))
    t.start()
    for _ in range(400):
        if [n for n in os.listdir(cache) if n.startswith("tmp-")]:
            break
        threading.Event().wait(0.01)
    assert [n for n in os.listdir(cache) if n.startswith("tmp-")], "no temporary seen"
    m.kill()
    t.join()
    assert [n for n in os.listdir(cache) if n.startswith("tmp-")], "nothing left to clean"
    m.stop()
    make_mount(corpus, "store-kill-2", cache_dir=cache)
    assert not [n for n in os.listdir(cache) if n.startswith("tmp-")], os.listdir(cache)


def test_segment_larger_than_store(corpus, make_mount, workdir):
    """store_mb=1 and a lossless segment of several MiB: 6 concurrent readers all get it,
    the same bytes, made once, and the log says why it was not kept."""
    cache = os.path.join(workdir, "store-big.cache")
    shutil.rmtree(cache, ignore_errors=True)
    m = make_mount(corpus, "store-big", ["store_mb=1", "segment_quality=0"], cache_dir=cache)
    path = seg(m.mnt, CLIP, "0-1.mkv")
    before = stats(m.mnt)["segments"]
    got = parallel([lambda: util.read_all(path)] * 6)
    errs = [g for g in got if not isinstance(g, bytes)]
    assert not errs, errs
    assert len(got[0]) > 1 << 20, len(got[0])
    assert all(g == got[0] for g in got), [len(g) for g in got]
    after = stats(m.mnt)["segments"]
    assert after["produced"] - before["produced"] == 1, (before, after)
    assert "larger than the store" in m.read_log(0)
    # a later open makes it again and gets the same bytes
    assert util.read_all(path) == got[0]
    util.probe(os.path.join(m.mnt, CLIP, "segments", "0-1.mkv"))


@pytest.mark.parametrize("name", ["0.2-1.mkv", "0.2-1.mp4", "0.2-1.copy.mkv", "0.2-1.ts"])
@pytest.mark.parametrize("clip", ["with_audio.mp4", "h264_bframes.mp4"])
def test_segments_are_byte_stable(corpus, make_mount, workdir, name, clip):
    """Made twice, by two daemons with their own stores, a segment has the same bytes."""
    datas = []
    for i in range(2):
        cache = os.path.join(workdir, f"store-stable{i}.cache")
        shutil.rmtree(cache, ignore_errors=True)
        m = make_mount(corpus, f"store-stable{i}", ["segment_audio=aac"], cache_dir=cache)
        datas.append(util.read_all(seg(m.mnt, clip, name)))
        m.stop()
    assert datas[0] and datas[0] == datas[1], util.describe_diff(datas[1], datas[0])


@pytest.mark.parametrize("damage", ["truncate", "bitflip", "append"])
def test_damaged_store_file_is_made_again(corpus, make_mount, workdir, damage):
    cache = os.path.join(workdir, f"store-damage-{damage}.cache")
    shutil.rmtree(cache, ignore_errors=True)
    m = make_mount(corpus, f"store-damage-{damage}", cache_dir=cache)
    path = seg(m.mnt, "h264_bframes.mp4", "0.25-1.25.mp4")
    good = util.read_all(path)
    files = store_files(cache)
    assert len(files) == 1, files
    f = os.path.join(cache, files[0])
    size = os.path.getsize(f)
    with open(f, "r+b") as fh:
        if damage == "truncate":
            fh.truncate(size // 2)
        elif damage == "bitflip":
            fh.seek(size // 3)
            b = fh.read(1)
            fh.seek(size // 3)
            fh.write(bytes([b[0] ^ 0x10]))
        else:
            fh.seek(0, os.SEEK_END)
            fh.write(b"junk")
    before = stats(m.mnt)["segments"]
    again = util.read_all(path)
    assert again == good, util.describe_diff(again, good)
    after = stats(m.mnt)["segments"]
    assert after["produced"] - before["produced"] == 1, (before, after)
    assert os.path.getsize(path) == len(good)
    assert "damaged" in m.read_log(0)
    # a remount serves the remade file from the store
    m.stop()
    m2 = make_mount(corpus, f"store-damage-{damage}-2", cache_dir=cache)
    assert util.read_all(seg(m2.mnt, "h264_bframes.mp4", "0.25-1.25.mp4")) == good
    assert stats(m2.mnt)["segments"]["produced"] == 0


def test_two_daemons_share_one_cache_dir(corpus, make_mount, workdir):
    """Two mounts of one source over one cache_dir, read at once: the same bytes from
    both, each index built once, each segment made once, no error."""
    clips = ["h264_bframes.mp4", "with_audio.mp4", "hevc_8bit.mkv"]
    src = own_source(workdir, corpus, "store-shared", clips)
    cache = os.path.join(workdir, "store-shared.cache")
    shutil.rmtree(cache, ignore_errors=True)
    ms = [make_mount(src, f"store-shared{i}", cache_dir=cache) for i in range(2)]
    names = [os.path.join(c, "segments", n) for c in clips
             for n in ("0-0.8.mp4", "0.4-1.2.mkv", "0-1.copy.mkv")]
    names += [os.path.join(c, "frames", "3.rgb") for c in clips]
    names += [os.path.join(c, "meta.json") for c in clips]
    jobs = []
    for n in names:
        for m in ms:
            for _ in range(2):
                jobs.append((n, lambda p=os.path.join(m.mnt, n): util.read_all(p)))
    got = parallel([fn for _, fn in jobs])
    by_name = {}
    for (n, _), g in zip(jobs, got):
        assert isinstance(g, bytes) and g, f"{n}: {g!r}"
        by_name.setdefault(n, set()).add(g)
    differ = [n for n, s in by_name.items() if len(s) != 1]
    assert not differ, differ
    logs = [m.read_log(0) for m in ms]
    for c in clips:
        built = sum(log.count(f"{c}: indexed") for log in logs)
        assert built == 1, (c, built)
    produced = sum(stats(m.mnt)["segments"]["produced"] for m in ms)
    assert produced == 3 * len(clips), produced
    assert not [n for n in os.listdir(cache) if n.startswith("tmp-")]
