"""The shape of the tree: videos become directories, everything else passes
through byte for byte, and the file system is read-only."""

import errno
import os
import stat

import pytest

import util
from util import videos

VIDEO_LIKE = [c.name for c in videos.CLIPS if c.kind != "file"]
GOOD = [c.name for c in videos.VIDEOS]
FILES = [c.name for c in videos.CLIPS if c.kind == "file"]


def test_root_lists_every_source_entry(mnt, corpus):
    got = set(os.listdir(mnt)) - {".vidfs"}
    assert got == set(os.listdir(corpus))


def test_subdirectories_are_mirrored(mnt, corpus):
    for sub in ["dir one", "dir one/nested", "dir one/nested/two", "notes"]:
        assert os.path.isdir(os.path.join(mnt, sub)), sub
        assert set(os.listdir(os.path.join(mnt, sub))) == set(os.listdir(os.path.join(corpus, sub)))


@pytest.mark.parametrize("name", VIDEO_LIKE)
def test_video_file_is_a_directory(mnt, name):
    st = os.stat(os.path.join(mnt, name))
    assert stat.S_ISDIR(st.st_mode)


@pytest.mark.parametrize("name", FILES)
def test_nonvideo_file_passes_through(mnt, corpus, name):
    st = os.stat(os.path.join(mnt, name))
    want = util.read_all(os.path.join(corpus, name))
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == len(want)
    assert util.read_all(os.path.join(mnt, name)) == want


@pytest.mark.parametrize("name", GOOD)
def test_video_directory_lists_its_parts(mnt, name):
    ext = name.rsplit(".", 1)[1]
    entries = set(os.listdir(os.path.join(mnt, name)))
    assert {"meta.json", f"source.{ext}", "frames.csv", "frames"} <= entries
    assert not [e for e in entries if e.startswith("frames_")], "scaled views are not listed"
    if "twostreams" in videos.clip(name).tags:
        assert "streams" in entries
    else:
        assert "streams" not in entries
        assert util.errno_of(os.stat, os.path.join(mnt, name, "streams")) == errno.ENOENT


@pytest.mark.parametrize("name", VIDEO_LIKE)
def test_source_is_the_original_bytes(mnt, corpus, name):
    ext = name.rsplit(".", 1)[1]
    path = os.path.join(mnt, name, f"source.{ext}")
    want = util.read_all(os.path.join(corpus, name))
    assert os.stat(path).st_size == len(want)
    assert util.read_all(path) == want


def test_names_with_spaces_and_unicode(mnt, corpus):
    d = os.path.join(mnt, "dir one", "ünïcode clip.mp4")
    assert os.path.isdir(d)
    assert os.path.isfile(os.path.join(d, "frames", "0.nv12"))
    assert util.read_all(os.path.join(mnt, "dir one", "données.txt")) == \
        util.read_all(os.path.join(corpus, "dir one", "données.txt"))


VIDEO = "h264_bframes.mp4"
WRITES = {
    "open_frame_for_writing": lambda m: os.open(f"{m}/{VIDEO}/frames/0.nv12", os.O_WRONLY),
    "open_passthrough_rdwr": lambda m: os.open(f"{m}/labels.csv", os.O_RDWR),
    "open_meta_append": lambda m: os.open(f"{m}/{VIDEO}/meta.json", os.O_WRONLY | os.O_APPEND),
    "create_in_root": lambda m: os.open(f"{m}/new.txt", os.O_CREAT | os.O_WRONLY, 0o644),
    "create_in_frames": lambda m: os.open(f"{m}/{VIDEO}/frames/x.nv12",
                                          os.O_CREAT | os.O_WRONLY, 0o644),
    "mkdir_in_root": lambda m: os.mkdir(f"{m}/newdir"),
    "mkdir_in_video": lambda m: os.mkdir(f"{m}/{VIDEO}/newdir"),
    "unlink_passthrough": lambda m: os.unlink(f"{m}/labels.csv"),
    "unlink_frame": lambda m: os.unlink(f"{m}/{VIDEO}/frames/0.nv12"),
    "rmdir_video": lambda m: os.rmdir(f"{m}/{VIDEO}"),
    "rename": lambda m: os.rename(f"{m}/labels.csv", f"{m}/labels2.csv"),
    "truncate": lambda m: os.truncate(f"{m}/labels.csv", 0),
    "symlink": lambda m: os.symlink("labels.csv", f"{m}/link"),
    "chmod": lambda m: os.chmod(f"{m}/labels.csv", 0o600),
}


@pytest.mark.parametrize("op", sorted(WRITES))
def test_writes_are_erofs(mnt, op):
    e = util.errno_of(WRITES[op], mnt)
    assert e == errno.EROFS, f"{op}: {util.errname(e)}"


def test_readdir_of_a_file_is_enotdir(mnt):
    assert util.errno_of(os.listdir, f"{mnt}/labels.csv") == errno.ENOTDIR
    assert util.errno_of(os.listdir, f"{mnt}/{VIDEO}/meta.json") == errno.ENOTDIR
    assert util.errno_of(os.listdir, f"{mnt}/{VIDEO}/frames/0.nv12") == errno.ENOTDIR


def test_path_through_a_file_is_enotdir(mnt):
    assert util.errno_of(os.stat, f"{mnt}/labels.csv/x") == errno.ENOTDIR
    assert util.errno_of(os.stat, f"{mnt}/{VIDEO}/meta.json/x") == errno.ENOTDIR
    assert util.errno_of(os.stat, f"{mnt}/{VIDEO}/frames/0.nv12/x") == errno.ENOTDIR


def test_reading_a_video_directory_is_eisdir(mnt):
    fd = os.open(f"{mnt}/{VIDEO}", os.O_RDONLY)
    try:
        assert util.errno_of(os.read, fd, 10) == errno.EISDIR
    finally:
        os.close(fd)


@pytest.mark.parametrize("path", [
    "missing.mp4", "missing.txt", f"{VIDEO}/missing", f"{VIDEO}/frames.json",
    f"{VIDEO}/source.mkv", f"{VIDEO}/frames_0x0/0.rgb", f"{VIDEO}/frames_abc/0.rgb",
    f"{VIDEO}/frames_x/0.rgb", f"{VIDEO}/frames_-2x10/0.rgb", f"{VIDEO}/streams/0/meta.json",
    "two_streams.mp4/streams/7/meta.json", "two_streams.mp4/streams/x/meta.json",
    "dir one/missing/clip.mp4",
])
def test_missing_paths_are_enoent(mnt, path):
    e = util.errno_of(os.stat, os.path.join(mnt, path))
    assert e == errno.ENOENT, f"{path}: {util.errname(e)}"
