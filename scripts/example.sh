#!/usr/bin/env bash
# The main job, on the bundled example: build examples/app into an image
# (compiling .py to .mpy with mpy-cross), inspect it, and run it in the real
# MicroPython straight from the image. Installs what it needs on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
venv_bin=$(scripts/python-venv.sh)
export PATH="$venv_bin:$PATH"
cargo build --release --quiet -p romfs-cli --bin romfs
romfs=target/release/romfs
out=${1:-target/app.img}

"$romfs" build examples/app -o "$out"
"$romfs" tree "$out"
"$romfs" verify "$out"

echo
echo "==> running main from the image in MicroPython (vfs.VfsRom)"
micropython -c "
import vfs, sys
vfs.mount(vfs.VfsRom(open('$out', 'rb').read()), '/rom')
sys.path.insert(0, '/rom/lib'); sys.path.insert(0, '/rom')
import main
print(main.load_config()['name'], main.run())
"
