"""Starting and stopping a vidfs daemon from Python."""

import json
import os
import shutil
import subprocess
import tempfile
import time


class MountError(RuntimeError):
    """vidfs did not mount, or did not unmount cleanly; the message has its stderr."""


def find_binary(binary=None):
    """The vidfs executable: binary, else $VIDFS_BIN, else `vidfs` on PATH, else the build
    directory of the source tree this package sits in (build/vidfs)."""
    here = os.path.dirname(os.path.abspath(__file__))
    in_tree = os.path.join(here, "..", "..", "build", "vidfs")
    for cand in (binary, os.environ.get("VIDFS_BIN"), shutil.which("vidfs"), in_tree):
        if cand and os.access(cand, os.X_OK) and os.path.isfile(cand):
            return os.path.abspath(cand)
    raise MountError("no vidfs executable: pass binary=, set VIDFS_BIN, put vidfs on PATH "
                     "(meson install) or build it (meson setup build && ninja -C build)")


def option_string(opts):
    """-o's argument for opts: key=value, a bare key for True, nothing for False/None;
    commas inside values escaped as libfuse wants (gpus="0,1" -> gpus=0\\,1)."""
    parts = []
    for k, v in opts.items():
        if v is None or v is False:
            continue
        parts.append(k if v is True else f"{k}={str(v).replace(',', chr(92) + ',')}")
    return ",".join(parts)


class Mount:
    """A running vidfs daemon (foreground, so that this process owns it). As a context
    manager it unmounts on exit. path: the mount point; stderr: what the daemon said."""

    def __init__(self, src, mnt=None, binary=None, timeout=30.0, **opts):
        self.binary = find_binary(binary)
        self.src = os.path.abspath(os.fspath(src))
        self._own_dir = mnt is None
        self.path = tempfile.mkdtemp(prefix="vidfs-") if mnt is None else \
            os.path.abspath(os.fspath(mnt))
        o = option_string(opts)
        self.cmd = [self.binary, "-f"] + (["-o", o] if o else []) + [self.src, self.path]
        self._log = tempfile.TemporaryFile(prefix="vidfs-stderr-")
        self.proc = None
        self._start(timeout)

    def _start(self, timeout):
        if not os.path.isdir(self.src):
            self._cleanup_dir()
            raise MountError(f"{self.src}: not a directory")
        os.makedirs(self.path, exist_ok=True)
        if os.path.ismount(self.path):
            raise MountError(f"{self.path} is already a mount point")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.path):
            if self.proc.poll() is not None:
                self._cleanup_dir()
                raise MountError(f"vidfs exited with status {self.proc.returncode} before "
                                 f"mounting:\n$ {' '.join(self.cmd)}\n{self.stderr}")
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                subprocess.call(["fusermount3", "-uz", self.path], stderr=subprocess.DEVNULL)
                self._cleanup_dir()
                raise MountError(f"vidfs did not mount within {timeout} s:\n"
                                 f"$ {' '.join(self.cmd)}\n{self.stderr}")
            time.sleep(0.02)

    @property
    def stderr(self):
        """Everything the daemon wrote so far (stdout and stderr)."""
        # pread: the daemon writes through the same file offset, which must not move
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def stats(self):
        """The mount's .vidfs/stats.json."""
        with open(os.path.join(self.path, ".vidfs", "stats.json"), "rb") as f:
            return json.load(f)

    def __fspath__(self):
        return self.path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # an error of the with-body wins over one at unmount
        try:
            self.unmount()
        except MountError:
            if exc_type is None:
                raise

    def unmount(self, timeout=20.0):
        """fusermount3 -u, retried while the mount is busy (files still open, say in
        DataLoader workers shutting down); then wait for the daemon. Raises MountError when
        it cannot unmount or the daemon exits with an error."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        deadline = time.monotonic() + timeout
        err = b""
        while proc.poll() is None and os.path.ismount(self.path):
            r = subprocess.run(["fusermount3", "-u", self.path], capture_output=True)
            if r.returncode == 0:
                break
            err = r.stderr
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                subprocess.call(["fusermount3", "-uz", self.path], stderr=subprocess.DEVNULL)
                raise MountError(f"cannot unmount {self.path}: {err.decode().strip()}\n"
                                 f"{self.stderr}")
            time.sleep(0.1)
        try:
            rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise MountError(f"vidfs did not exit after its unmount:\n{self.stderr}") from None
        self._cleanup_dir()
        if rc != 0:
            raise MountError(f"vidfs exited with status {rc}:\n{self.stderr}")

    def _cleanup_dir(self):
        if self._own_dir:
            try:
                os.rmdir(self.path)
            except OSError:
                pass


def mount(src, mnt=None, *, binary=None, timeout=30.0, **opts):
    """Mount src at mnt (a new temporary directory when None) and wait until it is
    mounted: `with vidfs.mount("videos", "mnt", cache_mb=2048) as m: ...` unmounts at the
    end of the block. opts become -o options (see option_string). The binary is found by
    find_binary. Raises MountError with the daemon's stderr when it does not come up."""
    return Mount(src, mnt, binary=binary, timeout=timeout, **opts)
