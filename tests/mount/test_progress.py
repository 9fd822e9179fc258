"""Long work shows while it runs (README, "Progress"): stats.json's in_progress lists a source
being indexed and a segment being made, with how far they are, and work past a second says
so in the log when it gets there.

Nothing here depends on how fast this machine is: each test polls stats.json while the work
runs, and when the work ended before a poll saw it, makes the work longer and tries again."""
import json
import os
import subprocess
import threading
import time

import pytest

import util

FPS = 25


@pytest.fixture(scope="module")
def clip10(tmp_path_factory):
    """10 s of 160x120 H.264 at 25 fps, which long videos loop."""
    path = str(tmp_path_factory.mktemp("progress") / "clip10.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i",
                    f"testsrc2=size=160x120:rate={FPS}", "-t", "10", "-c:v", "libx264",
                    "-preset", "ultrafast", "-bf", "0", "-g", "50", path], check=True)
    return path


def long_video(clip10, path, seconds):
    """clip10 looped (stream copy: quick to make whatever its length) into path."""
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-stream_loop",
                    str(seconds // 10 - 1), "-i", clip10, "-c", "copy", path], check=True)


def stats(m):
    return json.loads(util.read_all(os.path.join(m.mnt, ".vidfs", "stats.json")))


def entries(m, kind, name):
    return [e for e in stats(m)["in_progress"] if e["kind"] == kind and e["name"].endswith(name)]


def watch(m, work, kind, name, timeout=120):
    """Runs work() in a thread; returns the in_progress entries (kind, name ending in name)
    that polls of stats.json saw while it ran, and that the work's end took it off."""
    failed = []

    def run():
        try:
            work()
        except Exception as e:  # reported by the test, not lost in the thread
            failed.append(e)

    t = threading.Thread(target=run)
    seen = []
    t.start()
    t0 = time.monotonic()
    while t.is_alive() and time.monotonic() - t0 < timeout:
        seen += entries(m, kind, name)
        time.sleep(0.01)
    t.join(timeout)
    assert not t.is_alive(), f"{name}: still running after {timeout} s"
    assert not failed, failed[0]
    assert entries(m, kind, name) == [], f"{name} is still listed once done"
    return seen


def own_mount(make_mount, workdir, name):
    src = util.fresh_source(workdir, name)
    return src, make_mount(src, name)


def check_entry(e, kind, unit):
    assert e["kind"] == kind and e["unit"] == unit, e
    assert 0 <= e["done"] < e["total"], e
    assert e["seconds"] >= 0, e
    started = time.mktime(time.strptime(e["started"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(started - time.time()) < 600, e


def test_quiet_mount_lists_no_work(make_mount, workdir):
    src, m = own_mount(make_mount, workdir, "progress-quiet")
    assert stats(m)["in_progress"] == []


def test_indexing_is_listed_while_it_runs(make_mount, workdir, clip10):
    src, m = own_mount(make_mount, workdir, "progress-index")
    for seconds in (1200, 4800, 19200):
        name = f"long{seconds}.mp4"
        long_video(clip10, os.path.join(src, name), seconds)
        seen = watch(m, lambda: os.stat(os.path.join(m.mnt, name, "meta.json")), "index", name)
        running = [e for e in seen if e["done"] < e["total"]]
        if running:
            break
    else:
        pytest.fail("no poll saw an index being built, even of a video of 19200 s")
    for e in running:
        check_entry(e, "index", "bytes")
        assert e["total"] == os.path.getsize(os.path.join(src, name)), e
    frames = json.loads(util.read_all(os.path.join(m.mnt, name, "meta.json")))
    assert "indexed stream 0" in m.read_log(0), "the end of an index is not logged"
    if any(e["seconds"] >= 1 for e in seen):
        assert f"{name}: indexing: over 1 s" in m.read_log(0), frames


@pytest.mark.parametrize("kind", ["", "copy."])
def test_a_segment_being_made_is_listed_and_logged(make_mount, workdir, clip10, kind):
    """A transcode is followed until a poll sees it past a second, which the log must have
    said; a copy is quick, so it is only followed until a poll sees it."""
    src, m = own_mount(make_mount, workdir, "progress-seg" + kind.rstrip("."))
    long_video(clip10, os.path.join(src, "long.mp4"), 600)
    for seconds in (8, 16, 32, 75, 150, 300, 600):
        name = f"0-{seconds}.{kind}mp4"
        path = os.path.join(m.mnt, "long.mp4", "segments", name)
        seen = watch(m, lambda: util.read_all(path), "segment", "long.mp4/segments/" + name)
        running = [e for e in seen if e["done"] < e["total"]]
        if running and (kind or any(e["seconds"] >= 1 for e in running)):
            break
    else:
        pytest.fail(f"no poll saw a {kind or 'transcoded '}segment being made, even of 600 s")
    for e in running:
        check_entry(e, "segment", "packets" if kind else "frames")
        if not kind:
            assert e["total"] == seconds * FPS, e
    log = m.read_log(0)
    assert f"long.mp4/segments/{name}: frames 0-" in log, "the end of a segment is not logged"
    if any(e["seconds"] >= 1 for e in seen):
        assert f"long.mp4/segments/{name}: making: over 1 s so far" in log
