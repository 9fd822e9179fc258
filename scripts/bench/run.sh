#!/usr/bin/env bash
# vidfs benchmarks, each against its peer in the same run:
#
#   scripts/bench/run.sh [--quick] [BENCH ...]     BENCH: sequential random images clips loader bigdir
#
# Test videos are generated with the ffmpeg CLI into build/bench-videos (kept between
# runs); results go to build/bench-results/NAME.json (+ NAME.png with matplotlib) and the
# table to build/bench-results/summary.md. The binary: $VIDFS_BIN, else build/vidfs.
# A full run takes about 10 minutes on 2 cores, --quick about 3, plus loader: its defaults
# (issue 12: 1080p and 360p, 2 to 32 workers, three peers) take about 40 minutes on 2
# cores; run scripts/bench/loader.py directly for a shorter one (its --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

QUICK=
BENCHES=()
for a in "$@"; do
    case "$a" in
        --quick) QUICK=--quick ;;
        sequential|random|images|clips|loader|bigdir) BENCHES+=("$a") ;;
        *) echo "usage: $0 [--quick] [sequential|random|images|clips|loader|bigdir ...]" >&2; exit 2 ;;
    esac
done
[ ${#BENCHES[@]} -gt 0 ] || BENCHES=(sequential random images clips loader bigdir)

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
export VIDFS_BIN=${VIDFS_BIN:-build/vidfs}
if [ ! -x "$VIDFS_BIN" ]; then
    echo "run.sh: no vidfs at $VIDFS_BIN: build it (meson setup build && meson compile -C build) or set VIDFS_BIN" >&2
    exit 1
fi
for t in ffmpeg fusermount3; do
    command -v "$t" >/dev/null || { echo "run.sh: $t is missing" >&2; exit 1; }
done
"$PY" -c 'import av, numpy' || { echo "run.sh: needs PyAV and numpy (apt-get install python3-av python3-numpy)" >&2; exit 1; }
if [[ " ${BENCHES[*]} " == *" loader "* ]]; then
    "$PY" -c 'import torch' || { echo "run.sh: loader needs PyTorch (apt-get install python3-torch; scripts/deps.sh)" >&2; exit 1; }
fi
"$PY" -c 'import matplotlib' 2>/dev/null || echo "run.sh: no matplotlib: JSON only, no PNG plots (apt-get install python3-matplotlib)"

mkdir -p build/bench-results
start=$(date +%s)
for b in "${BENCHES[@]}"; do
    t=$(date +%s)
    script=$b; [ "$b" = random ] && script=random_access  # random.py would shadow the stdlib
    "$PY" "scripts/bench/$script.py" $QUICK
    echo "  ($b: $(( $(date +%s) - t )) s)"
    echo
done
echo "benchmarks: $(( $(date +%s) - start )) s"
echo
"$PY" scripts/bench/summary.py
