#!/bin/sh
# meson install into a scratch DESTDIR: every module of python/vidfs/ is installed
# into a directory on the interpreter's sys.path, and imports from there.
#   python_install.sh BUILD_DIR SOURCE_DIR PYTHON
set -eu
build=$1 src=$2 py=$3
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
init=$(find "$dest" -path '*/vidfs/__init__.py')
[ -n "$init" ] || { echo "meson install put no vidfs/__init__.py under $dest"; exit 1; }
pkg=$(dirname "$init")
site=${pkg%/vidfs}
for f in "$src"/python/vidfs/*.py; do
    [ -f "$pkg/$(basename "$f")" ] || { echo "not installed: $f"; exit 1; }
done
"$py" - "$site" "$dest" <<'PY'
import os, sys
site, dest = sys.argv[1], sys.argv[2]
real = site[len(dest):]
if real not in sys.path:
    sys.exit(f"installed into {real}, which is not on {sys.executable}'s sys.path {sys.path}")
sys.path.insert(0, site)
import vidfs
assert vidfs.__file__.startswith(site), vidfs.__file__
print("vidfs installed into", real)
PY
