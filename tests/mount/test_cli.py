"""The command line as a user meets it: every bad value refused with what is valid, one
log style wherever the log goes, misuse refused before anything is mounted, the mount
table naming the source, and `mount -t fuse.vidfs` working."""

import errno
import json
import os
import re
import shutil
import subprocess
import time

import pytest

import util
from util import videos

LINE = re.compile(r"^vidfs\[\d+\]: (error|warn|info|debug): \S")
FILE_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} vidfs\[\d+\]: (error|warn|info|debug): ")
BAD = [c.name for c in videos.CLIPS if c.kind == "bad"]


def run_vidfs(args, timeout=20):
    """vidfs with args; one in the foreground (-f) that is still running after timeout
    mounted instead of refusing: it is unmounted and the test fails."""
    try:
        return subprocess.run([util.vidfs_bin()] + args, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        subprocess.call(["fusermount3", "-uz", args[-1]], stderr=subprocess.DEVNULL)
        pytest.fail(f"vidfs {' '.join(args)} was still running after {timeout} s")


def assert_not_mounted(mnt):
    if os.path.ismount(mnt):
        subprocess.call(["fusermount3", "-uz", str(mnt)])
        pytest.fail(f"{mnt} was mounted")


def one_style(text):
    bad = [l for l in text.splitlines() if l and not LINE.match(l)]
    assert not bad, "lines not in the 'vidfs[PID]: LEVEL: message' style:\n" + "\n".join(bad)


BAD_VALUES = [
    ("pool_size=0", "expected an integer from 1 to 256, or auto"),
    ("readahead=999999", "expected an integer from 0 to 256"),
    ("frame_format=bmp", "expected one of nv12 yuv420p gray rgb rgbp p010 png jpg"),
    ("backend=bogus", "expected one of auto cpu nvdec"),
    ("level=loud", "expected one of error warn info debug"),
    ("segment_rc=abr", "expected one of crf cbr vbr constqp"),
    ("segment_audio=mp3", "expected one of copy aac none"),
    ("jpeg_quality=1", "expected an integer from 2 to 31"),
    ("threads=-1", "expected an integer from 0 to 256"),
    ("cache_mb=12x", "expected an integer from 16 to"),
    ("gpus=0\\,\\,1", "expected all, or up to 16 integers from 0 to 255"),
]


@pytest.mark.parametrize("opt,valid", BAD_VALUES)
def test_bad_option_value_is_refused_with_the_valid_values(tmp_path, corpus, opt, valid):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_vidfs(["-f", "-o", opt, corpus, str(mnt)])
    assert_not_mounted(mnt)
    assert r.returncode != 0
    shown = opt.replace("\\", "")
    assert f"error: {shown}: {valid}" in r.stderr, r.stderr
    one_style(r.stderr)


@pytest.mark.parametrize("opt,valid", BAD_VALUES[:4])
def test_bad_ini_value_is_refused_with_the_valid_values(tmp_path, corpus, opt, valid):
    key, value = opt.split("=")
    ini = tmp_path / "vidfs.ini"
    section = {"pool_size": "decode", "backend": "decode"}.get(key, "frames")
    ini.write_text(f"[{section}]\n{key} = {value}\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_vidfs(["-f", "-o", f"config={ini}", corpus, str(mnt)])
    assert_not_mounted(mnt)
    assert r.returncode != 0
    assert f"error: {ini}: {opt}: {valid}" in r.stderr, r.stderr


def test_unknown_ini_key_is_refused(tmp_path, corpus):
    ini = tmp_path / "vidfs.ini"
    ini.write_text("[decode]\npool = 3\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_vidfs(["-f", "-o", f"config={ini}", corpus, str(mnt)])
    assert_not_mounted(mnt)
    assert r.returncode != 0 and "[decode] pool: unknown setting" in r.stderr, r.stderr


def test_help_is_complete_and_shows_valid_values():
    r = run_vidfs(["--help"])
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for want in ["frame_format=nv12|yuv420p|gray|rgb|rgbp|p010|png|jpg", "pool_size=N|auto",
                 "1 to 256; default: auto", "backend=auto|cpu|nvdec", "log=syslog|stderr|PATH", "nonempty",
                 "meta.json", "segments/S-E.mp4", "fusermount3 -u", "-o allow_other"]:
        assert want in out, f"--help does not show {want!r}"
    assert "README" not in out


def test_print_config_shows_ranges():
    r = run_vidfs(["--print-config"])
    assert r.returncode == 0
    assert "; N|auto (1 to 256; default: auto)\npool_size = auto\n" in r.stdout


def test_pool_size_auto_and_number_mount(make_mount, corpus):
    for opt in ["pool_size=auto", "pool_size=3"]:
        m = make_mount(corpus, "pool-" + opt.split("=")[1], opts=[opt])
        assert util.read_all(os.path.join(m.mnt, "h264_bframes.mp4", "frames", "0.gray"))
        m.stop()


def test_foreground_log_has_one_style_and_no_libfuse_warning(make_mount, corpus):
    m = make_mount(corpus, "style", opts=["level=debug"])
    util.read_all(os.path.join(m.mnt, "h264_bframes.mp4", "frames", "3.rgb"))
    m.stop()
    text = m.read_log(0)
    body = "\n".join(l for l in text.splitlines() if not l.startswith("###"))
    assert "Ignoring invalid max threads" not in body
    assert "debug: " in body, "level=debug logged nothing"
    one_style(body)


def test_mount_table_names_the_source(make_mount, corpus):
    m = make_mount(corpus, "fsname")
    with open("/proc/self/mounts") as f:
        rows = [l.split() for l in f]
    mine = [r for r in rows if r[1] == m.mnt]
    assert mine, f"{m.mnt} not in /proc/self/mounts"
    assert mine[-1][0] == os.path.realpath(corpus) and mine[-1][2] == "fuse.vidfs", mine[-1]
    assert mine[-1][3].startswith("ro,"), mine[-1]


def eio_lines(text, name):
    return [l for l in text.splitlines() if name in l and "error:" in l]


def test_log_file_daemonized_says_each_eio_once(tmp_path, corpus):
    """Daemonized with log=PATH: the log keeps going after the fork, in one style with a
    date, and reading a broken file's frames again and again logs its cause once."""
    mnt, log = tmp_path / "mnt", tmp_path / "vidfs.log"
    mnt.mkdir()
    r = run_vidfs(["-o", f"cache_dir={tmp_path / 'cache'},log={log}", corpus, str(mnt)])
    try:
        assert r.returncode == 0, r.stderr
        assert r.stderr == "", "daemonized with log=PATH wrote to stderr"
        name = BAD[0]
        for fmt in ["nv12", "nv12", "rgb", "nv12"]:
            e = util.errno_of(util.read_all, os.path.join(mnt, name, "frames", f"0.{fmt}"))
            assert e == errno.EIO, util.errname(e)
    finally:
        subprocess.call(["fusermount3", "-u", str(mnt)])
    time.sleep(0.5)
    text = log.read_text()
    assert text, "nothing in the log file"
    bad = [l for l in text.splitlines() if not FILE_LINE.match(l)]
    assert not bad, "\n".join(bad)
    lines = eio_lines(text, name)
    assert len(lines) == 1, f"{name}: {len(lines)} error lines:\n" + "\n".join(lines)


SYSLOG_PROBE = r"""
import os, socket, subprocess, sys, time
vidfs, src, mnt, cache, bad = sys.argv[1:]
# a /dev of our own (this runs in a mount namespace), with a /dev/log we listen on
subprocess.run("mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/fuse c 10 229 && "
               "mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/zero c 1 5 && "
               "mknod -m 666 /dev/urandom c 1 9", shell=True, check=True)
log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
log.bind("/dev/log")
r = subprocess.run([vidfs, "-o", "cache_dir=" + cache, src, mnt], capture_output=True)
if r.returncode:
    sys.exit("vidfs failed: " + r.stderr.decode())
try:
    open(os.path.join(mnt, bad, "frames", "0.nv12"), "rb").read()
except OSError as e:
    print("read:", e.errno)
log.settimeout(2)
try:
    while True:
        print(log.recv(4096).decode(errors="replace").replace("\n", " "))
except socket.timeout:
    pass
subprocess.run(["umount", mnt])
"""


def test_daemonized_log_goes_to_syslog(tmp_path, corpus):
    """Without -f and without log=, lines go to syslog (/dev/log, what the journal reads)
    with the level as the priority: run in a mount namespace with a /dev/log of the
    test's own."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    probe = tmp_path / "probe.py"
    probe.write_text(SYSLOG_PROBE)
    name = BAD[0]
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "/usr/bin/python3",
                        str(probe), util.vidfs_bin(), corpus, str(mnt), str(tmp_path / "cache"),
                        name], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"read: {errno.EIO}" in r.stdout, r.stdout
    # <27>: facility daemon (3), priority err (3); <30>: daemon, info (6)
    lines = r.stdout.splitlines()
    assert any(re.match(r"<30>.* vidfs\[\d+\]: info: ", l) for l in lines), r.stdout
    errors = [l for l in lines if re.match(r"<27>.* vidfs\[\d+\]: error: ", l) and name in l]
    assert len(errors) == 1, r.stdout


def test_repeated_eio_of_a_broken_frame_is_logged_once(make_mount, tmp_path):
    """A source damaged after it was indexed (same size and mtime, so not rescanned):
    reading its frames twice fails many times with EIO, and each cause is logged once for
    the file, with the cause in words."""
    src = tmp_path / "src"
    src.mkdir()
    video = src / "h264_bframes.mp4"
    shutil.copy(os.path.join(util.CORPUS, "h264_bframes.mp4"), video)
    m = make_mount(str(src), "eio-once", opts=["readahead=0"])
    d = os.path.join(m.mnt, "h264_bframes.mp4", "frames")
    n = len(os.listdir(d))
    st = video.stat()
    with open(video, "r+b") as f:
        f.seek(st.st_size // 3)
        f.write(b"\0" * (st.st_size // 2))
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))
    failed = 0
    for _ in range(2):
        for i in range(n):
            failed += util.errno_of(util.read_all, os.path.join(d, f"{i}.gray")) == errno.EIO
    m.stop()
    assert failed >= 10, f"only {failed} reads failed: the damage did not take"
    lines = eio_lines(m.read_log(0), "h264_bframes.mp4")
    assert lines, f"{failed} reads failed with EIO and nothing was logged"
    causes = [l.split("h264_bframes.mp4: ", 1)[-1].split(" (frame")[0] for l in lines]
    assert len(causes) == len(set(causes)), "a cause logged twice:\n" + "\n".join(lines)
    assert len(lines) < failed / 4, "\n".join(lines)
    text = m.read_log(0)
    assert text.count("\n") < 60, f"{text.count(chr(10))} log lines for {failed} failed reads"


# ------------------------------------------------------------------ misuse

def test_non_empty_mountpoint_is_refused_unless_nonempty(tmp_path, corpus):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    (mnt / "keep.txt").write_text("mine")
    r = run_vidfs(["-f", corpus, str(mnt)])
    assert_not_mounted(mnt)
    assert r.returncode != 0 and "is not empty" in r.stderr and "nonempty" in r.stderr, r.stderr
    r = run_vidfs(["-o", f"nonempty,cache_dir={tmp_path / 'cache'}", corpus, str(mnt)])
    try:
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mnt) and "h264_bframes.mp4" in os.listdir(mnt)
    finally:
        subprocess.call(["fusermount3", "-u", str(mnt)])
    assert (mnt / "keep.txt").read_text() == "mine"


def test_swapped_arguments_are_refused(tmp_path):
    """`vidfs MOUNTPOINT SOURCE_DIR`: an empty directory over the videos. (The videos are
    a copy: a vidfs that wrongly mounts must not hide the shared corpus.)"""
    empty, videos_dir = tmp_path / "empty", tmp_path / "videos"
    empty.mkdir()
    videos_dir.mkdir()
    shutil.copy(os.path.join(util.CORPUS, "h264_bframes.mp4"), videos_dir)
    r = run_vidfs(["-f", str(empty), str(videos_dir)])
    assert_not_mounted(videos_dir)
    assert r.returncode != 0 and "swapped" in r.stderr, r.stderr
    one_style(r.stderr)


def test_mountpoint_already_mounted_is_refused(make_mount, corpus):
    m = make_mount(corpus, "twice")
    r = run_vidfs(["-f", "-o", "nonempty", corpus, m.mnt])
    assert r.returncode != 0 and "already a mount point" in r.stderr, r.stderr
    assert m.alive() and os.listdir(m.mnt)
    with open("/proc/self/mounts") as f:
        assert sum(l.split()[1] == m.mnt for l in f) == 1, "a second mount was stacked"


def test_source_that_is_a_vidfs_mount_is_refused(make_mount, corpus, tmp_path):
    m = make_mount(corpus, "outer")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    for src in [m.mnt, os.path.join(m.mnt, "dir one")]:
        r = run_vidfs(["-f", src, str(mnt)])
        assert_not_mounted(mnt)
        assert r.returncode != 0 and "inside the vidfs mount" in r.stderr, r.stderr


def test_mountpoint_inside_the_source_is_refused(tmp_path):
    src = tmp_path / "src"
    (src / "mnt").mkdir(parents=True)
    for mnt in [src / "mnt", src]:
        r = run_vidfs(["-f", str(src), str(mnt)])
        assert_not_mounted(mnt)
        assert r.returncode != 0 and "is inside SOURCE_DIR" in r.stderr, r.stderr


def test_relative_paths_are_resolved(tmp_path, corpus):
    """Relative SOURCE_DIR, MOUNTPOINT, cache_dir and log name what they name where vidfs
    was started, also once it has daemonized (into /)."""
    os.symlink(corpus, tmp_path / "videos")
    (tmp_path / "mnt").mkdir()
    r = subprocess.run([util.vidfs_bin(), "-o", "cache_dir=cache,log=vidfs.log", "videos",
                        "mnt"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    try:
        assert r.returncode == 0, r.stderr
        assert "h264_bframes.mp4" in os.listdir(tmp_path / "mnt")
        assert util.read_all(tmp_path / "mnt" / "h264_bframes.mp4" / "meta.json")
        assert os.listdir(tmp_path / "cache"), "nothing stored in the relative cache_dir"
        assert (tmp_path / "vidfs.log").stat().st_size > 0, "nothing in the relative log"
    finally:
        subprocess.call(["fusermount3", "-u", str(tmp_path / "mnt")])


# ------------------------------------------------------------------ mount(8)

def build_dir():
    d = os.path.dirname(os.path.abspath(util.vidfs_bin()))
    return d if os.path.isdir(os.path.join(d, "meson-private")) else None


def meson_prefix(build):
    opts = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", build],
                                     check=True, capture_output=True, text=True).stdout)
    return next(o["value"] for o in opts if o["name"] == "prefix")


def test_meson_install_then_mount_t_fuse_vidfs(tmp_path, corpus):
    """`meson install` into a DESTDIR gives the binary, its man page, the example config
    and mount unit; then what an fstab line does: mount(8) runs mount.fuse3, which runs
    `vidfs` from the standard PATH (mount drops the caller's), so the installed bin/ is
    bound over /usr/local/bin in a mount namespace of the test's own."""
    build = build_dir()
    if build is None:
        pytest.skip(f"{util.vidfs_bin()} is not in a meson build directory (--prebuilt)")
    dest = tmp_path / "dest"
    subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", str(dest)],
                   check=True, capture_output=True, timeout=120)
    root = dest / meson_prefix(build).lstrip("/")
    for f in ["bin/vidfs", "share/man/man1/vidfs.1", "share/doc/vidfs/vidfs.ini",
              "share/doc/vidfs/mnt-videos.mount"]:
        assert (root / f).is_file(), f"meson install did not install {f}"
    page = subprocess.run(["man", "-l", str(root / "share/man/man1/vidfs.1")],
                          capture_output=True, text=True, env=dict(os.environ, MANWIDTH="80"))
    assert page.returncode == 0 and "fuse.vidfs" in page.stdout, page.stderr
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = f"ro,allow_other,cache_dir={tmp_path / 'cache'},frame_format=gray"
    script = (f"mount --bind '{root / 'bin'}' /usr/local/bin && "
              f"mount -t fuse.vidfs '{corpus}' '{mnt}' -o '{opts}' && "
              f"ls '{mnt}/h264_bframes.mp4/frames' | head -1 && "
              f"grep ' {mnt} ' /proc/self/mounts; rc=$?; umount '{mnt}'; exit $rc")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    first, row = r.stdout.splitlines()[:2]
    assert first == "0.gray", r.stdout
    assert row.split()[:3] == [os.path.realpath(corpus), str(mnt), "fuse.vidfs"], row
