"""What stat says before a file is read (README, "Sizes"): exact for everything but a
segment not yet made, which says 0 until it is made; every tool that reads to the end gets
every byte whatever it said. Each test mounts a copy of one clip of its own, so that nothing
it stats has been produced before."""
import os
import shutil
import subprocess
import tarfile

import pytest

import util

CLIP = "h264_bframes.mp4"  # 50 frames of 320x240 at 25 fps


def own_mount(make_mount, workdir, corpus, name, opts=("readahead=0",)):
    return make_mount(util.fresh_source(workdir, name, corpus, [CLIP]), name, opts)


@pytest.mark.parametrize("fmt", util.IMAGE_FORMATS)
def test_image_size_is_exact_from_the_first_stat(make_mount, workdir, corpus, fmt):
    """An image is made at lookup: ls -l of one never opened shows its real size."""
    m = own_mount(make_mount, workdir, corpus, "sizes-" + fmt)
    wrong = []
    for rel in (f"frames/7.{fmt}", f"frames_64x48/7.{fmt}", f"frames/49.{fmt}"):
        path = os.path.join(m.mnt, CLIP, rel)
        size = os.stat(path).st_size
        data = util.read_all(path)
        if size != len(data) or not data:
            wrong.append(f"{rel}: st_size {size} before the first open, read {len(data)}")
    assert wrong == []
    ls = subprocess.run(["ls", "-l", os.path.join(m.mnt, CLIP, "frames", f"30.{fmt}")],
                        check=True, capture_output=True, text=True).stdout
    size = int(ls.split()[4])
    assert size == len(util.read_all(os.path.join(m.mnt, CLIP, "frames", f"30.{fmt}"))), ls


def test_the_open_after_a_lookup_serves_the_image_the_lookup_made(make_mount, workdir, corpus):
    """stat then read (what cat, cp and Python do) encode the frame once, here in 16
    threads at once as loader workers do: the stats count one frame served per file."""
    import concurrent.futures as cf
    m = own_mount(make_mount, workdir, corpus, "sizes-once")

    def one(i):
        path = os.path.join(m.mnt, CLIP, "frames", f"{i}.{util.IMAGE_FORMATS[i % 2]}")
        size = os.stat(path).st_size
        return size == len(util.read_all(path))

    with cf.ThreadPoolExecutor(16) as ex:
        assert all(ex.map(one, range(0, 48, 3)))
    assert util_stats(m)["frames_served"] == 16


def test_stat_size_is_what_a_read_gets(make_mount, workdir, corpus):
    """On a quiet mount, the size stat gives (before and after opening) is the length a
    read gets, for the generated files too: stats.json, meta.json, frames.csv, png, jpg."""
    m = own_mount(make_mount, workdir, corpus, "sizes-files")
    wrong = []
    for rel in (".vidfs/stats.json", f"{CLIP}/meta.json", f"{CLIP}/frames.csv",
                f"{CLIP}/frames/3.png", f"{CLIP}/frames/3.jpg", f"{CLIP}/frames_100x/5.png",
                ".vidfs/stats.json"):
        path = os.path.join(m.mnt, rel)
        size = os.stat(path).st_size
        with open(path, "rb") as f:
            fsize = os.fstat(f.fileno()).st_size
            data = f.read()
        if not size == fsize == len(data):
            wrong.append(f"{rel}: stat {size}, fstat {fsize}, read {len(data)}")
    assert wrong == []


def read_cat(path, tmp):
    return subprocess.run(["cat", path], check=True, capture_output=True).stdout


def read_cp(path, tmp):
    subprocess.run(["cp", path, str(tmp / "cp.mp4")], check=True)
    return (tmp / "cp.mp4").read_bytes()


def read_dd(path, tmp):
    return subprocess.run(["dd", f"if={path}", "bs=64k", "status=none"], check=True,
                          capture_output=True).stdout


def read_python(path, tmp):
    with open(path, "rb") as f:
        return f.read()


def read_shutil(path, tmp):
    shutil.copyfile(path, tmp / "shutil.mp4")
    return (tmp / "shutil.mp4").read_bytes()


TOOLS = {"cat": read_cat, "cp": read_cp, "dd": read_dd, "python": read_python,
         "shutil": read_shutil}


@pytest.mark.parametrize("kind", ["", "copy."])
def test_unmade_segment_says_0_and_every_reader_gets_every_byte(make_mount, workdir, corpus,
                                                               tmp_path, kind):
    """0 is the size of no segment: a segment not yet made says 0 (as /proc files do),
    and whatever reads to the end gets all of it; once made, stat is exact."""
    m = own_mount(make_mount, workdir, corpus, "sizes-seg" + kind.rstrip("."))
    wrong = []
    for i, (tool, read) in enumerate(TOOLS.items()):
        path = os.path.join(m.mnt, CLIP, "segments", f"0.{i + 1}-1.{kind}mp4")
        before = os.stat(path).st_size
        data = read(path, tmp_path)
        after = os.stat(path).st_size
        again = util.read_all(path)
        if before != 0 or not data or after != len(data) or again != data:
            wrong.append(f"{tool}: st_size {before} before, read {len(data)} bytes, "
                         f"st_size {after} after, a second read {len(again)} bytes "
                         f"{'(same)' if again == data else '(different)'}")
    assert wrong == []


def test_tar_archives_a_made_segment_whole(make_mount, workdir, corpus, tmp_path):
    """tar trusts the size it stats before opening; once a segment is made that size is
    exact, so the archive holds the segment's bytes."""
    m = own_mount(make_mount, workdir, corpus, "sizes-tar")
    seg = os.path.join(CLIP, "segments", "0-1.5.mp4")
    data = util.read_all(os.path.join(m.mnt, seg))
    archive = str(tmp_path / "s.tar")
    subprocess.run(["tar", "cf", archive, "-C", m.mnt, seg], check=True)
    with tarfile.open(archive) as t:
        assert t.extractfile(seg).read() == data


def test_stat_of_a_segment_makes_nothing(make_mount, workdir, corpus):
    """Sizing a segment not yet made encodes nothing: stat is a lookup, not an encode."""
    m = own_mount(make_mount, workdir, corpus, "sizes-lookup")
    before = util_stats(m)["segments"]["produced"]
    for i in range(5):
        assert os.stat(os.path.join(m.mnt, CLIP, "segments", f"0-1.{i + 1}.mp4")).st_size == 0
    assert util_stats(m)["segments"]["produced"] == before


def util_stats(m):
    import json
    return json.loads(util.read_all(os.path.join(m.mnt, ".vidfs", "stats.json")))
