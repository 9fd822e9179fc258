#!/usr/bin/env bash
# Bundle a built vidfs for a machine where nothing can be installed (a GPU machine with
# another distribution): the programs with their shared libraries, and the test corpus
# with its ffmpeg references, so the GPU tests and benchmarks run there.
#
#   scripts/bundle.sh BUILD_DIR OUT_DIR
#
# Writes OUT_DIR/rt-1.tar.xz (vidfs, nvdec_bench, fusermount3 and their libraries),
# OUT_DIR/rt-2.tar.xz (ffmpeg and ffprobe, the libraries the first lacks) and
# OUT_DIR/corpus.tar.xz (the test corpus, build/test-videos/src; the tests make their
# ffmpeg references there with the bundled ffmpeg, the same build as here). Two runtime
# parts, since a remote run may carry only so much at once. On the target:
#
#   for t in OUT_DIR/*.tar.xz; do tar -C /tmp/rt -xJf $t; done
#   export PATH=/tmp/rt/bin:$PATH VIDFS_BIN=/tmp/rt/bin/vidfs
#   VIDFS_TEST_VIDEOS=/tmp/rt/test-videos VIDFS_PYTHON=python3 scripts/test.sh --gpu --prebuilt
#
# bin/ holds wrappers that put the bundled lib/ on LD_LIBRARY_PATH for that program only
# (the target's own Python must keep its own C++ runtime). glibc and the NVIDIA driver's
# libraries are left out: the target has its own.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath "$1")
OUT=$(realpath -m "$2")
mkdir -p "$OUT"
SKIP='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libcuda\.so|libnvcuvid\.so|libnvidia-)'

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# pack NAME SEEN_LIST PROGRAM...: programs and the libraries not in SEEN_LIST
pack() {
    local name=$1 seen=$2
    shift 2
    local dir=$stage/$name
    mkdir -p "$dir/lib" "$dir/bin" "$dir/.bin"
    for p in "$@"; do
        local base
        base=$(basename "$p")
        cp -L "$p" "$dir/.bin/$base"
        printf '#!/bin/sh\nhere=$(dirname "$(readlink -f "$0")")/..\n%s\n' \
            "LD_LIBRARY_PATH=\"\$here/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\" exec \"\$here/.bin/$base\" \"\$@\"" \
            > "$dir/bin/$base"
        chmod +x "$dir/bin/$base"
        ldd "$p" | awk '/=>/ && $3 ~ /^\// {print $1, $3}' | while read -r so path; do
            [[ $so =~ $SKIP ]] && continue
            grep -qxF "$so" "$seen" && continue
            [ -e "$dir/lib/$so" ] || cp -L "$path" "$dir/lib/$so"
        done
    done
    ls "$dir/lib" >> "$seen"
    tar -C "$dir" -cf - . | xz -T0 -9 > "$OUT/$name.tar.xz"
    echo "$OUT/$name.tar.xz: $(du -h "$OUT/$name.tar.xz" | cut -f1), $(ls "$dir/lib" | wc -l) libraries"
}

seen=$stage/seen
: > "$seen"
progs=("$BUILD/vidfs" "$(command -v fusermount3)")
[ -x "$BUILD/scripts/bench/nvdec_bench" ] && progs+=("$BUILD/scripts/bench/nvdec_bench")
pack rt-1 "$seen" "${progs[@]}"
pack rt-2 "$seen" "$(command -v ffmpeg)" "$(command -v ffprobe)"

videos=${VIDFS_TEST_VIDEOS:-$ROOT/build/test-videos}
if [ -d "$videos/src" ]; then
    tar -C "$(dirname "$videos")" -cf - "$(basename "$videos")/src" \
        --transform "s,^$(basename "$videos"),test-videos," | xz -T0 -9 > "$OUT/corpus.tar.xz"
    echo "$OUT/corpus.tar.xz: $(du -h "$OUT/corpus.tar.xz" | cut -f1)"
else
    echo "bundle.sh: no corpus in $videos (run scripts/test.sh once)" >&2
fi
