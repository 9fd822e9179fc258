"""Fixtures for the tests through a real vidfs mount.

One daemon serves the whole corpus for most tests (the `mnt` fixture; it is
restarted if a test crashed it). After every test, the hook at the bottom
reads what each daemon wrote to stderr during the test and FAILS the test on
a sanitizer report or a crash, as sshfs's test suite does. A watchdog kills
the daemons of a test that runs past VIDFS_TEST_TIMEOUT seconds (default 180),
so a wedged read fails that test (ENOTCONN) instead of hanging the suite.
"""

import os
import shutil
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402

_live_mounts = []  # every Mount started and not yet checked for the last time
TEST_TIMEOUT = float(os.environ.get("VIDFS_TEST_TIMEOUT", "180"))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU (VIDFS_GPU=1)")


@pytest.fixture(scope="session")
def corpus():
    """The corpus source directory, generated once into build/test-videos/src."""
    return util.videos.generate(util.CORPUS, verbose=True)


@pytest.fixture(scope="session")
def vidfs_bin():
    path = util.vidfs_bin()
    if not os.access(path, os.X_OK):
        pytest.fail(f"no vidfs binary at {path} (build it, or set VIDFS_BIN)")
    return path


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="vidfs-test-")
    yield d
    # keep the logs of a failed run for reading; remove the rest
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p) and not os.path.ismount(p):
            shutil.rmtree(p, ignore_errors=True)


def start_mount(src, workdir, name, opts=(), cache_dir=None):
    mnt = os.path.join(workdir, name + ".mnt")
    cache = cache_dir or os.path.join(workdir, name + ".cache")
    m = util.Mount(src, mnt, cache, os.path.join(workdir, name + ".log"), opts)
    _live_mounts.append(m)
    m.start()
    return m


class _Shared:
    def __init__(self):
        self.m = None
        self.generation = 0


@pytest.fixture(scope="session")
def _shared(corpus, vidfs_bin, workdir):
    s = _Shared()
    yield s
    if s.m is not None:
        s.m.stop()


@pytest.fixture
def shared_mount(_shared, corpus, workdir):
    """The Mount serving the corpus (restarted if an earlier test killed it)."""
    if _shared.m is None or not _shared.m.alive() or not os.path.ismount(_shared.m.mnt):
        if _shared.m is not None:
            _shared.m.stop()
        _shared.generation += 1
        _shared.m = start_mount(corpus, workdir, "corpus",
                                cache_dir=os.path.join(workdir, "corpus.cache"))
    return _shared.m


@pytest.fixture
def mnt(shared_mount):
    """Path of the mount point of the corpus."""
    return shared_mount.mnt


@pytest.fixture
def make_mount(workdir, vidfs_bin):
    """Start extra daemons: make_mount(src, name, opts=(), cache_dir=None) -> Mount.
    They are unmounted at the end of the test."""
    made = []

    def make(src, name, opts=(), cache_dir=None):
        m = start_mount(src, workdir, name, opts, cache_dir)
        made.append(m)
        return m

    yield make
    for m in made:
        m.stop()


@pytest.fixture(autouse=True)
def _watchdog():
    def fire():
        for m in list(_live_mounts):
            if m.alive():
                m.killed_by_watchdog = True
                m.kill()

    t = threading.Timer(TEST_TIMEOUT, fire)
    t.daemon = True
    t.start()
    yield
    t.cancel()


def _check_daemons():
    problems = []
    for m in list(_live_mounts):
        text = m.new_log()
        problems += util.daemon_problems(m, text)
        if m.stopped or not m.alive():
            _live_mounts.remove(m)
    return problems


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    if outcome.excinfo is not None:
        time.sleep(0.5)  # let the daemon finish writing what went wrong
    problems = _check_daemons()
    if problems:
        msg = "\n\n".join(problems)
        if outcome.excinfo is not None:
            msg = f"{outcome.excinfo[1]!r}\n\nand the daemon:\n{msg}"
        raise AssertionError(msg)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield
    # daemons stopped by fixtures at teardown (make_mount): a crash at unmount
    # or a sanitizer report written at exit is reported as an error of the test
    problems = []
    for m in list(_live_mounts):
        if m.stopped:
            problems += util.daemon_problems(m, m.new_log())
            _live_mounts.remove(m)
    if problems:
        raise AssertionError("\n\n".join(problems))


def pytest_sessionfinish(session, exitstatus):
    # the shared daemon is stopped in the _shared fixture's teardown; report
    # what it said at exit
    problems = []
    for m in list(_live_mounts):
        m.stop()
        problems += util.daemon_problems(m, m.new_log())
    if problems:
        sys.stderr.write("\nvidfs at unmount:\n" + "\n\n".join(problems) + "\n")
        session.exitstatus = 1
