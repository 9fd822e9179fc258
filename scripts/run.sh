#!/usr/bin/env bash
# Install what is missing, build vidfs and mount a directory of videos in the
# background.
#
#   scripts/run.sh [SOURCE_DIR] [MOUNTPOINT]
#
# Paths are taken relative to where run.sh is called from. Without SOURCE_DIR,
# sample videos (the test corpus: scripts/gen-samples.sh) are generated into
# build/samples of the repository; MOUNTPOINT defaults to ./mnt. Nothing else is
# left behind in the repository but build/.
set -euo pipefail
CALLER=$PWD
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# absolute path of $1, taken relative to the caller's directory
from_caller() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s\n' "$CALLER/$1" ;;
    esac
}

if [ $# -ge 1 ]; then SRC=$(from_caller "$1"); else SRC=$ROOT/build/samples; fi
MNT=$(from_caller "${2:-mnt}")

cd "$ROOT"
bash scripts/deps.sh
bash scripts/build.sh build

if [ $# -lt 1 ]; then
    bash scripts/gen-samples.sh "$SRC"
fi
if [ ! -d "$SRC" ]; then
    echo "run.sh: $SRC is not a directory" >&2
    exit 1
fi

mkdir -p "$MNT" 2>/dev/null || true
# a mount left by an earlier run (alive, or dead: "Transport endpoint is not connected")
if mountpoint -q "$MNT" 2>/dev/null || ! ls "$MNT" >/dev/null 2>&1; then
    echo "run.sh: unmounting what is mounted at $MNT"
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
fi
mkdir -p "$MNT"

# no -f: vidfs daemonizes once the mount is up and logs to syslog (journalctl -t vidfs)
build/vidfs "$SRC" "$MNT"

# the first video whose meta.json has no "error" (samples include broken ones on purpose)
first=
for d in "$MNT"/*/meta.json; do
    grep -q '"error"' "$d" 2>/dev/null && continue
    first=$(basename "$(dirname "$d")")
    break
done
first=${first:-h264_bframes.mp4}
cat <<MSG

vidfs: $SRC is mounted at $MNT (read-only). Try:

  ls $MNT
  cat '$MNT/$first/meta.json' | jq .
  head -5 '$MNT/$first/frames.csv'
  ls '$MNT/$first/frames' | head
  /usr/bin/python3 -c 'import numpy as np, json
m = json.load(open("$MNT/$first/meta.json"))
a = np.fromfile("$MNT/$first/frames/0.rgb", np.uint8).reshape(m["height"], m["width"], 3)
print(a.shape, a.mean())'
  cp '$MNT/$first/frames/10.png' /tmp/ && xdg-open /tmp/10.png
  jq -r 'select(.error) | input_filename' $MNT/*/meta.json    # broken videos

Unmount with:

  fusermount3 -u $MNT
MSG
