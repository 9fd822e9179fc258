#!/usr/bin/env bash
# Build vidfs and run every test: the C unit tests (meson test) and the tests
# through a real mount (pytest, tests/mount), first in build/, then again in
# an AddressSanitizer + UndefinedBehaviorSanitizer build, build-asan/.
#
#   scripts/test.sh [--gpu] [--no-asan] [--prebuilt] [PYTEST_ARGS...]
#
#   --gpu       also run the GPU tests (VIDFS_GPU=1), every mount with backend=auto
#               (NVDEC for what it decodes, the CPU for the rest, as a user gets;
#               test_gpu.py mounts backend=nvdec itself); skips the sanitizer pass
#   --no-asan   skip the sanitizer pass
#   --prebuilt  install and build nothing: pytest only, with the binary $VIDFS_BIN and
#               the interpreter $VIDFS_PYTHON (a machine with nothing installable, given
#               what scripts/bundle.sh packs); no C unit tests, no sanitizer pass
#   anything else goes to pytest (e.g. -k frames, -x)
#
# The last line printed is pytest's own summary line (of the first pass that
# failed, else of the last pass); the exit status is non-zero if anything failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

GPU=0
ASAN=1
PREBUILT=0
PYTEST_ARGS=()
for a in "$@"; do
    case "$a" in
        --gpu) GPU=1; ASAN=0 ;;
        --no-asan) ASAN=0 ;;
        --prebuilt) PREBUILT=1; ASAN=0 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) PYTEST_ARGS+=("$a") ;;
    esac
done

# Debian's interpreter: it has python3-pytest/numpy/av; a python3 earlier on
# PATH may not.
PY=${VIDFS_PYTHON:-/usr/bin/python3}

if [ "$PREBUILT" = 1 ]; then
    [ -x "${VIDFS_BIN:-}" ] || { echo "test.sh: --prebuilt needs VIDFS_BIN" >&2; exit 2; }
    for t in ffmpeg ffprobe fusermount3; do
        command -v "$t" >/dev/null || { echo "test.sh: --prebuilt: no $t on PATH" >&2; exit 2; }
    done
else
    bash scripts/deps.sh
fi

export VIDFS_TEST_VIDEOS=${VIDFS_TEST_VIDEOS:-$ROOT/build/test-videos}
if [ "$GPU" = 1 ]; then
    export VIDFS_GPU=1
    # not backend=nvdec: that refuses what NVDEC cannot decode (h264_444.mp4, damaged
    # frames), which the general tests read
    export VIDFS_TEST_OPTS=backend=auto${VIDFS_TEST_OPTS:+,$VIDFS_TEST_OPTS}
else
    export VIDFS_GPU=0
fi

# Test mounts a crashed earlier run left behind: their daemon is gone, so
# stat fails ("Transport endpoint is not connected"). Live ones may belong to
# a run going on beside this one and are left alone.
unmount_stale() {
    awk '$3 ~ /^fuse/ {print $2}' /proc/mounts | while read -r m; do
        m=$(printf '%b' "$m")  # /proc/mounts escapes spaces as \040
        case "$m" in
            /tmp/vidfs-test-*)
                if ! stat "$m" >/dev/null 2>&1; then
                    echo "test.sh: unmounting stale $m"
                    fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" || true
                fi ;;
        esac
    done
}
unmount_stale

RESULTS=()        # "what: outcome" lines for the recap
FAILED=0
FINAL_LINE=""     # the pytest summary line printed last
FIRST_BAD_LINE=""

run_pass() {
    local dir=$1 label=$2
    shift 2
    local bin="$ROOT/$dir/vidfs"
    if [ "$PREBUILT" = 1 ]; then
        bin=$VIDFS_BIN
        RESULTS+=("$label build and unit tests: not run (--prebuilt, $bin)")
        mkdir -p "$dir"
        run_pytest "$dir" "$label" "$bin"
        return
    fi
    echo
    echo "=============== $label: build $dir ==============="
    if ! bash scripts/build.sh "$dir" "$@"; then
        RESULTS+=("$label build: FAILED")
        FAILED=1
        FIRST_BAD_LINE=${FIRST_BAD_LINE:-"$label: build failed"}
        return
    fi
    echo "=============== $label: unit tests (meson test -C $dir) ==============="
    if meson test -C "$dir" --print-errorlogs; then
        RESULTS+=("$label unit tests: ok")
    else
        RESULTS+=("$label unit tests: FAILED (see $dir/meson-logs/testlog.txt)")
        FAILED=1
    fi
    run_pytest "$dir" "$label" "$bin"
}

run_pytest() {
    local dir=$1 label=$2 bin=$3
    echo "=============== $label: tests through a mount (pytest tests/mount) ==============="
    local log="$dir/pytest.log" rc=0
    mkdir -p "$dir"
    # the watchdog in conftest.py fails a wedged test; `timeout` is the last resort
    set +e
    VIDFS_BIN="$bin" timeout --kill-after=30 1500 \
        "$PY" -m pytest tests/mount -p no:cacheprovider -rfEs --tb=short \
        --junitxml="$dir/pytest-junit.xml" ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"} \
        2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    unmount_stale
    local line
    line=$(grep -E '^=+ .*( in [0-9.]+s).* =+$' "$log" | tail -n 1 || true)
    [ -n "$line" ] || line="$label: pytest ended with status $rc and no summary line"
    FINAL_LINE=$line
    if [ "$rc" -ne 0 ]; then
        FAILED=1
        FIRST_BAD_LINE=${FIRST_BAD_LINE:-$line}
        RESULTS+=("$label pytest: FAILED (status $rc, log $log)")
    else
        RESULTS+=("$label pytest: ok")
    fi
}

run_pass build "plain"

if [ "$ASAN" = 1 ]; then
    # Sanitizer reports go to stderr (the daemon's stderr is captured per mount
    # and conftest.py fails the test that shows one). UBSan prints a stack and
    # halts at the first report, so it cannot scroll by unnoticed.
    # detect_leaks=0: the daemon is stopped by fusermount3 -u and exits through
    # libfuse's and FFmpeg's teardown, whose one-time global allocations make
    # leak reports at exit noise rather than bugs; set VIDFS_DETECT_LEAKS=1 to
    # look for leaks anyway.
    export ASAN_OPTIONS="detect_leaks=${VIDFS_DETECT_LEAKS:-0}:halt_on_error=1:abort_on_error=0:print_summary=1:detect_stack_use_after_return=1:strict_string_checks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
    run_pass build-asan "asan+ubsan" -Db_sanitize=address,undefined -Db_lundef=false
else
    RESULTS+=("asan+ubsan pass: skipped ($([ "$GPU" = 1 ] && echo "--gpu" || echo "--no-asan"))")
fi

echo
echo "=============== test.sh recap ==============="
for r in "${RESULTS[@]}"; do echo "  $r"; done
if [ "$GPU" = 1 ]; then
    echo "  GPU tests: run (VIDFS_GPU=1, VIDFS_TEST_OPTS=$VIDFS_TEST_OPTS)"
elif [ "${CI:-}" = "true" ]; then
    echo "  GPU tests: SKIPPED because CI has no GPU (scripts/test.sh --gpu runs them on a GPU machine)"
else
    echo "  GPU tests: skipped (no --gpu)"
fi
if [ "$FAILED" = 1 ]; then
    echo "${FIRST_BAD_LINE:-$FINAL_LINE}"
    exit 1
fi
echo "$FINAL_LINE"
