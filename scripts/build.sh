#!/usr/bin/env bash
# Configure (once; reconfigure after that) and compile a meson build directory.
#
#   scripts/build.sh DIR [MESON_SETUP_ARGS...]
#
# Used by run.sh and test.sh. DIR may already hold test-videos/ without being a build
# directory yet.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dir=$1
shift
if [ -f "$dir/meson-private/coredata.dat" ]; then
    meson setup --reconfigure "$dir" "$@" >/dev/null
else
    meson setup "$dir" "$@"
fi
meson compile -C "$dir"
