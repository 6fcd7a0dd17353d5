#!/usr/bin/env bash
# The main job, on the bundled example: build the `romfs` and `romfs-mount`
# commands, build examples/app into an image (compiling .py to .mpy with
# mpy-cross), inspect it, run it in the real MicroPython straight from the
# image, then deploy it to the emulated board (QEMU mps2-an385, firmware in
# ../shared/device/ or $ROMFS_DEVICE_DIR) with `romfs deploy` and run it
# there. Installs what it needs on first use (qemu-system-arm with apt, as
# scripts/test.sh does; the Python peers in a venv under target/).
# ROMFS_EXAMPLE_PROFILE=dev builds the commands without optimisation (tests).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v qemu-system-arm >/dev/null; then
  echo "==> installing qemu-system-arm (the emulated board)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-system-arm >/dev/null
fi
device=${ROMFS_DEVICE_DIR:-../shared/device}
firmware=$device/micropython-mps2-an385-romfs-rw.elf
if [ ! -f "$firmware" ]; then
  echo "error: $firmware is missing: set ROMFS_DEVICE_DIR to the folder holding the" >&2
  echo "emulated board's firmware (its build-firmware.sh makes it)" >&2
  exit 1
fi

venv_bin=$(scripts/python-venv.sh)
export PATH="$venv_bin:$PATH"
profile=${ROMFS_EXAMPLE_PROFILE:-release}
cargo build --profile "$profile" --quiet -p romfs-cli --bins
bin=${CARGO_TARGET_DIR:-target}/$([ "$profile" = dev ] && echo debug || echo "$profile")
romfs=$bin/romfs
"$bin/romfs-mount" --version
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
