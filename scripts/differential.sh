#!/usr/bin/env bash
# The long differential run of issue 10: random images walked by MicroPython's
# own reader (the unix port, and a sample on the emulated v1.29 board) and by
# ours, checked against `romfs verify`. DIFFERENTIAL.md records each run.
# Override any of the variables below; the defaults are the recorded run.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROMFS_DIFF_IMAGES=${ROMFS_DIFF_IMAGES:-100000}
export ROMFS_DIFF_SEED=${ROMFS_DIFF_SEED:-0x2000000}
export ROMFS_DIFF_JOBS=${ROMFS_DIFF_JOBS:-2}
export ROMFS_DIFF_BOARD_IMAGES=${ROMFS_DIFF_BOARD_IMAGES:-600}
export PATH="$(scripts/python-venv.sh):$PATH"
# One test at a time: the random run already uses every job it is given.
exec cargo test -p romfs-interop --test differential -- --nocapture --test-threads=1
