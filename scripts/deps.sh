#!/usr/bin/env bash
# Install the Debian packages that building and testing vidfs need, when
# missing: one `apt-get update` and one `apt-get install`, non-interactive.
# Run as root, or as a user who may sudo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(
    # build
    meson ninja-build pkg-config gcc libc6-dev
    libfuse3-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
    libinih-dev libjson-c-dev libffmpeg-nvenc-dev
    # run and test
    fuse3 ffmpeg jq coreutils man-db groff-base
    python3 python3-pytest python3-numpy python3-av
    # the python package's DataLoader tests and examples/; benchmarks (scripts/bench/
    # loader.py: DataLoader, its OpenCV peer; images.py: ffmpegfs's jpg frame sets) and
    # their plots
    python3-torch python3-opencv python3-matplotlib ffmpegfs
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps.sh: all ${#PACKAGES[@]} packages are installed"
    exit 0
fi

echo "deps.sh: installing ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
