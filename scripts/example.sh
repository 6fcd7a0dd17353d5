#!/usr/bin/env bash
# The main job, on the bundled example: build examples/app into an image
# (compiling .py to .mpy with mpy-cross), inspect it, and run it in the real
# MicroPython straight from the image; then, when QEMU and the emulated board
# (../shared/device/, or $ROMFS_DEVICE_DIR) are here, deploy it to that board
# with `romfs deploy` and run it there. Installs what it needs on first use.
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

# ---- the same app on a board: the emulated one ---------------------------------
device=${ROMFS_DEVICE_DIR:-../shared/device}
firmware=$device/micropython-mps2-an385-romfs-rw.elf
if ! command -v qemu-system-arm >/dev/null || [ ! -f "$firmware" ]; then
  echo
  echo "(no emulated board: install qemu-system-arm and set ROMFS_DEVICE_DIR to the"
  echo " folder holding $(basename "$firmware") to deploy it to one as well)"
  exit 0
fi
echo
echo "==> deploying to an emulated MicroPython board (QEMU mps2-an385) and running it there"
log=$(mktemp)
qemu-system-arm -machine mps2-an385 -nographic -semihosting -monitor none \
  -serial pty -kernel "$firmware" >"$log" 2>&1 &
qemu=$!
trap 'kill $qemu 2>/dev/null; rm -f "$log"' EXIT
port=""
for _ in $(seq 100); do
  port=$(grep -o '/dev/pts/[0-9]*' "$log" | head -n 1 || true)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "QEMU did not start the board" >&2; exit 1; }
"$romfs" deploy examples/app --port "$port"
mpremote connect "$port" exec "
import main
print('on the board:', main.load_config()['name'], main.run())
"
