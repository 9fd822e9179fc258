"""The mount stays inside its source and is not wedged by what the source holds:
symlinks out of SOURCE_DIR, the mount point reached through the source, modes and
owners enforced by the kernel, FIFOs put where a file or a video was, and sources
changed in place or deleted under an open handle (issue 13, points 4, 5 and 7)."""

import errno
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import util
from conftest import start_mount

CLIP = "h264_bframes.mp4"  # 320x240
OTHER = "size_200x120.mp4"
DEADLINE = 15  # seconds for anything that must not block


@pytest.fixture
def src(tmp_path, corpus):
    """A fresh source directory: two videos and a text file."""
    d = tmp_path / "src"
    d.mkdir()
    shutil.copyfile(os.path.join(corpus, CLIP), d / "clip.mp4")
    shutil.copyfile(os.path.join(corpus, OTHER), d / "other.mp4")
    (d / "data.txt").write_text("hello\n")
    return d


def run_py(code, timeout=DEADLINE, **kw):
    """Runs Python code in a child with a deadline: (returncode, stdout). A child past its
    deadline is killed and the test fails, so a wedged read cannot hang the suite."""
    try:
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                           text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail(f"blocked for more than {timeout} s:\n{code}")
    return r.returncode, r.stdout + r.stderr


def errno_in_child(path, timeout=DEADLINE):
    """The errno name that reading path fails with (or 'ok'), read by a child process."""
    rc, out = run_py(f"""
        import errno
        try:
            open({str(path)!r}, "rb").read()
            print("ok")
        except OSError as e:
            print(errno.errorcode[e.errno])
        """, timeout)
    return out.strip()


def assert_responsive(m):
    """The mount still answers: listing and reading its root within a few seconds."""
    rc, out = run_py(f"""
        import os
        os.listdir({m.mnt!r})
        print(open(os.path.join({m.mnt!r}, "data.txt")).read(), end="")
        """, timeout=10)
    assert rc == 0 and out == "hello\n", out


# ------------------------------------------------------------------ symlinks

def test_symlinks_out_of_the_source_are_not_followed(make_mount, src, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    os.symlink("/", src / "link_root")
    os.symlink("..", src / "link_up")
    os.symlink(str(outside), src / "abs_out.txt")
    os.symlink("../outside.txt", src / "rel_out.txt")
    os.makedirs(src / "sub")
    os.symlink("../../outside.txt", src / "sub" / "deep_out.txt")
    m = make_mount(str(src), "esc-out")
    names = os.listdir(m.mnt)
    for name in ["link_root", "link_up", "abs_out.txt", "rel_out.txt"]:
        assert name not in names, f"{name} is listed: {names}"
    assert "deep_out.txt" not in os.listdir(os.path.join(m.mnt, "sub"))
    for rel in ["link_root/etc/passwd", "link_root/etc", "link_root", "link_up/outside.txt",
                "abs_out.txt", "rel_out.txt", "sub/deep_out.txt"]:
        p = os.path.join(m.mnt, rel)
        assert util.errno_of(os.stat, p) == errno.ENOENT, rel
        assert util.errno_of(util.read_all, p) == errno.ENOENT, rel
    assert "escape" in m.read_log(0) or "out of" in m.read_log(0), "no log line"
    assert_responsive(m)


def test_symlinks_inside_the_source_work(make_mount, src):
    os.makedirs(src / "sub")
    os.symlink("../clip.mp4", src / "sub" / "rel.mp4")
    os.symlink(str(src / "clip.mp4"), src / "abs.mp4")  # absolute, but inside
    os.symlink("sub", src / "dirlink")
    os.symlink("../data.txt", src / "sub" / "up.txt")
    os.symlink("sub/../sub/./up.txt", src / "chain.txt")  # a link to a link
    m = make_mount(str(src), "esc-in")
    r = util.ref(str(src / "clip.mp4"))
    for rel in ["clip.mp4", "sub/rel.mp4", "abs.mp4", "dirlink/rel.mp4"]:
        d = os.path.join(m.mnt, rel)
        assert os.path.isdir(d), rel
        got = util.read_all(os.path.join(d, "frames", "5.nv12"))
        assert got == r.frame("nv12", 5), rel
    for rel in ["sub/up.txt", "dirlink/up.txt", "chain.txt"]:
        assert util.read_all(os.path.join(m.mnt, rel)) == b"hello\n", rel
    assert {"dirlink", "abs.mp4", "chain.txt"} <= set(os.listdir(m.mnt))


def test_follow_symlinks_out_allows_them(make_mount, src, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("shared\n")
    os.symlink(str(outside), src / "abs_out.txt")
    os.symlink(os.path.dirname(util.CORPUS), src / "corpus_link")
    m = make_mount(str(src), "esc-follow", opts=["follow_symlinks_out=1"])
    assert util.read_all(os.path.join(m.mnt, "abs_out.txt")) == b"shared\n"
    assert os.path.isdir(os.path.join(m.mnt, "corpus_link", "src", CLIP, "frames"))


def nested(m, link, depth):
    """link/<mount name>/link/<mount name>/... depth times, under the mount."""
    name = os.path.basename(m.mnt)
    return os.path.join(m.mnt, *([link, name] * depth))


def test_a_link_to_an_ancestor_of_the_mount_point_never_enters_it(make_mount, src, workdir):
    os.symlink(workdir, src / "up")  # workdir holds the mount point
    m = make_mount(str(src), "esc-anc", opts=["follow_symlinks_out=1"])
    assert os.path.isdir(os.path.join(m.mnt, "up"))  # followed: the option is on
    t0 = time.monotonic()
    for depth in (1, 2, 13, 16):
        rc, out = run_py(f"""
            import os, errno
            try:
                os.stat({nested(m, "up", depth)!r})
                print("found")
            except OSError as e:
                print(errno.errorcode[e.errno])
            """)
        assert out.strip() == "ENOENT", (depth, out)
    assert time.monotonic() - t0 < 8, "nested stats are slow: the daemon calls into its mount"
    assert_responsive(m)


def test_a_mount_point_inside_the_source_is_refused(src, vidfs_bin):
    """A mount inside its own source would list itself without end: vidfs refuses to
    start, says why, and mounts nothing."""
    mnt = src / "mnt"
    mnt.mkdir()
    r = subprocess.run([vidfs_bin, "-f", "-o", f"cache_dir={src}/cache", str(src), str(mnt)],
                       capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode != 0
    assert "inside SOURCE_DIR" in r.stderr, r.stderr
    assert not os.path.ismount(mnt)


# --------------------------------------------------------------- permissions

def as_nobody(*cmd):
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd],
                       capture_output=True, text=True, timeout=DEADLINE)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount with allow_other "
                    "and to read as another user")
def test_modes_and_owners_come_from_the_source(make_mount, src, workdir):
    os.chmod(workdir, 0o711)  # other users may reach the mount point
    (src / "secret.txt").write_text("top secret\n")
    os.chmod(src / "secret.txt", 0)
    os.chmod(src / "data.txt", 0o644)
    os.chmod(src / "clip.mp4", 0o640)
    os.chmod(src / "other.mp4", 0o755)
    os.symlink("/", src / "link_root")
    m = make_mount(str(src), "esc-perm", opts=["allow_other"])
    opts = next(line.split()[3] for line in open("/proc/mounts")
                if line.split()[1] == m.mnt)
    assert "default_permissions" in opts.split(","), opts

    def mode(rel):
        return stat.S_IMODE(os.stat(os.path.join(m.mnt, rel)).st_mode)

    assert mode("secret.txt") == 0
    assert mode("data.txt") == 0o444
    assert mode("clip.mp4") == 0o550  # r-x where the source is readable
    assert mode("clip.mp4/meta.json") == 0o440
    assert mode("clip.mp4/source.mp4") == 0o440
    assert mode("clip.mp4/frames") == 0o550
    assert mode("clip.mp4/frames/0.nv12") == 0o440
    assert mode("other.mp4") == 0o555
    assert mode("other.mp4/frames/0.rgb") == 0o444

    rc, out = as_nobody("cat", os.path.join(m.mnt, "data.txt"))
    assert rc == 0 and out == "hello\n", out
    rc, out = as_nobody("cat", os.path.join(m.mnt, "other.mp4", "meta.json"))
    assert rc == 0 and "num_frames" in out, out
    for rel in ["secret.txt", "clip.mp4/meta.json", "clip.mp4/frames/0.nv12",
                "link_root/etc/shadow", "link_root/etc/passwd"]:
        rc, out = as_nobody("cat", os.path.join(m.mnt, rel))
        assert rc != 0 and ("Permission denied" in out or "No such file" in out), (rel, out)
    rc, out = as_nobody("ls", os.path.join(m.mnt, "clip.mp4"))
    assert rc != 0 and "Permission denied" in out, out


# -------------------------------------------------------------------- FIFOs

def test_a_file_swapped_for_a_fifo_does_not_wedge_the_mount(make_mount, src):
    """Readers open data.txt while it flips between a file and a FIFO: some opens
    find a file at lookup and a FIFO at open. None may block."""
    m = make_mount(str(src), "esc-fifo")
    path = os.path.join(m.mnt, "data.txt")
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import threading, time
        def work():
            end = time.monotonic() + 4
            while time.monotonic() < end:
                try:
                    with open({path!r}, "rb") as f:
                        f.read()
                except OSError:
                    pass
        ts = [threading.Thread(target=work) for _ in range(8)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        print("done")
        """)], stdout=subprocess.PIPE, text=True)
    end = time.monotonic() + 4
    n = 0
    while time.monotonic() < end:
        fifo, plain = src / f"f{n}", src / f"p{n}"
        os.mkfifo(fifo)
        plain.write_text("hello\n")
        os.replace(fifo, src / "data.txt")
        time.sleep(0.002)
        os.replace(plain, src / "data.txt")
        n += 1
    try:
        out, _ = child.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        child.kill()
        m.kill()  # frees the daemon threads blocked on the FIFO
        pytest.fail("an open of a file swapped for a FIFO blocked")
    assert out.strip() == "done"
    assert_responsive(m)


@pytest.mark.parametrize("change", ["fifo", "unlink", "rename", "rewrite"])
def test_a_video_replaced_under_an_open_handle(make_mount, src, change):
    """A frame file stays open while its source is replaced by a FIFO, deleted or
    renamed over. The open handle keeps reading the video it opened (as a process
    that holds a Unix file open does), without blocking; new opens see the new state.
    The same file rewritten in place cannot be read as it was: EIO."""
    # one decoder, no read-ahead: reading other.mp4 takes the decoder away (once the park
    # for the handle's next read is over: a parked decoder is not taken, another is made),
    # so the next read of clip.mp4 must open its demuxer again
    m = make_mount(str(src), "esc-" + change, opts=["pool_size=1", "readahead=0"])
    r = util.ref(str(src / "clip.mp4"))
    want = r.frame("nv12", 30)
    fsize = r.frame_size("nv12")
    batch = os.path.join(m.mnt, "clip.mp4", "frames", "0-40.nv12")
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, errno, hashlib
        f = open({batch!r}, "rb", buffering=0)
        f.read({fsize})
        print("ready", flush=True)
        sys.stdin.readline()
        f.seek(30 * {fsize})
        try:
            data = f.read({fsize})
            print(hashlib.sha1(data).hexdigest(), len(data), flush=True)
        except OSError as e:
            print(errno.errorcode[e.errno], flush=True)
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # > POOL_PARK_MS (pool.h)
        util.read_all(os.path.join(m.mnt, "other.mp4", "frames", "3.nv12"))
        clip = src / "clip.mp4"
        if change == "fifo":
            os.mkfifo(src / "fifo")
            os.replace(src / "fifo", clip)
        elif change == "unlink":
            os.unlink(clip)
        elif change == "rename":
            shutil.copyfile(src / "other.mp4", src / "new.mp4")
            os.replace(src / "new.mp4", clip)
        else:
            with open(clip, "r+b") as f:
                f.seek(os.path.getsize(clip) // 2)
                f.write(b"\0" * 4096)
        child.stdin.write("go\n")
        child.stdin.flush()
        out, _ = child.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        child.kill()
        m.kill()
        pytest.fail(f"reading an open handle after the source was replaced ({change}) blocked")
    if change == "rewrite":
        assert out.strip() == "EIO", out
        assert "changed in place" in m.read_log(0)
    else:
        assert out.split() == [hashlib.sha1(want).hexdigest(), str(fsize)], out
    if change == "rename":
        r2 = util.ref(str(src / "clip.mp4"))
        time.sleep(1.5)  # the kernel's entry cache
        got = util.read_all(os.path.join(m.mnt, "clip.mp4", "frames", "3.nv12"))
        assert got == r2.frame("nv12", 3)
    elif change != "rewrite":
        time.sleep(1.5)
        assert util.errno_of(os.stat, os.path.join(m.mnt, "clip.mp4")) == errno.ENOENT
    assert_responsive(m)


# ---------------------------------------------------------- in-place rewrite

def make_same_size_pair(d):
    """Two different videos of the same byte size (the smaller padded with zeros,
    which the mp4 demuxer ignores): (path_a, path_b)."""
    a, b = d / "a.mp4", d / "b.mp4"
    for path, src, n in [(a, "testsrc=size=160x120:rate=10", 30),
                         (b, "testsrc2=size=160x120:rate=10", 20)]:
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", src,
                        "-frames:v", str(n), "-c:v", "libx264", "-pix_fmt", "yuv420p",
                        "-movflags", "+faststart", str(path)], check=True)
    size = max(os.path.getsize(a), os.path.getsize(b))
    for path in (a, b):
        with open(path, "ab") as f:
            f.write(b"\0" * (size - os.path.getsize(path)))
    return a, b


def rewrite_in_place(dst, src_path, mtime_ns):
    """Writes src_path's bytes over dst (same size, same inode) and puts mtime back."""
    data = util.read_all(src_path)
    assert os.path.getsize(dst) == len(data)
    with open(dst, "r+b") as f:
        f.write(data)
    os.utime(dst, ns=(mtime_ns, mtime_ns))


def test_a_rewrite_in_place_with_the_same_size_and_mtime_is_seen(make_mount, src, tmp_path,
                                                                 workdir):
    refs = tmp_path / "refs"
    refs.mkdir()
    a, b = make_same_size_pair(refs)
    ra = util.Ref(str(a), ref_dir=str(refs))
    rb = util.Ref(str(b), ref_dir=str(refs))
    assert (ra.n, rb.n) == (30, 20)
    clip = src / "pair.mp4"
    shutil.copyfile(a, clip)
    st = os.stat(clip)
    cache = os.path.join(workdir, "esc-rewrite.cache")
    shutil.rmtree(cache, ignore_errors=True)

    def check(m, r, what):
        d = os.path.join(m.mnt, "pair.mp4")
        meta = util.read_all(os.path.join(d, "meta.json")).decode()
        assert f'"num_frames": {r.n}' in meta or f'"num_frames":{r.n}' in meta, (what, meta)
        for i in (2, 15, r.n - 1):
            got = util.read_all(os.path.join(d, "frames", f"{i}.nv12"))
            assert got == r.frame("nv12", i), (what, i, util.describe_diff(got, r.frame(
                "nv12", i)))

    m = make_mount(str(src), "esc-rewrite1", cache_dir=cache)
    check(m, ra, "first")
    rewrite_in_place(clip, b, st.st_mtime_ns)
    assert os.stat(clip).st_ino == st.st_ino and os.stat(clip).st_mtime_ns == st.st_mtime_ns
    time.sleep(1.5)  # the kernel's entry cache
    check(m, rb, "rewritten while mounted")
    m.stop()

    rewrite_in_place(clip, a, st.st_mtime_ns)
    m = make_mount(str(src), "esc-rewrite2", cache_dir=cache)
    check(m, ra, "rewritten while unmounted, same store")
