#!/usr/bin/env bash
# Generate the sample videos (the test corpus: tests/videos.py) into DIR
# (default ./samples; relative paths are taken from where it is called).
# Files that already exist are kept.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${1:-samples}
# Debian's python3, which has numpy; a python3 earlier on PATH may not
exec /usr/bin/python3 "$HERE/../tests/videos.py" "$DIR"
