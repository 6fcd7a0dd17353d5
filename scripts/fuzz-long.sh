#!/usr/bin/env bash
# The long fuzzing runs FUZZING.md records: each target for RUNS executions
# (default 1,000,000) from its seeds, then its coverage over the corpus it
# grew (`cargo fuzz coverage`, then `llvm-cov report` from the nightly
# toolchain's llvm-tools). One target at a time; a summary line per target.
#
#   scripts/fuzz-long.sh                       every target of every */fuzz crate
#   scripts/fuzz-long.sh romfs-build/inspect   just these (CRATE/TARGET)
#   COVERAGE_ONLY=1 scripts/fuzz-long.sh ...   only the coverage of the last runs' corpora
#
# Needs cargo-fuzz, a nightly toolchain and its llvm-tools component
# (`rustup component add llvm-tools-preview --toolchain nightly`).
# Corpora and logs go to target/fuzz-long/CRATE/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-1000000}
llvm="$(rustc +nightly --print sysroot)/lib/rustlib/$(rustc +nightly -vV | sed -n 's/^host: //p')/bin"
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
root=$PWD

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for dir in */fuzz; do
    crate=${dir%/fuzz}
    [ -f "$crate/fuzz/Cargo.toml" ] || continue
    for t in $(cd "$crate" && cargo +nightly fuzz list); do targets+=("$crate/$t"); done
  done
fi

# What each target is about: the coverage of these sources is reported too.
subject() {
  case "$1" in
    romfs-build/inspect) echo romfs-build/src/inspect ;;
    romfs-cli/cli_args) echo romfs-cli/src/cli.rs romfs-cli/src/mount_cli.rs romfs-mount/src/options.rs ;;
    romfs-cli/cli_values) echo romfs-cli/src/values.rs romfs-build/src/scan.rs ;;
    romfs-cli/key_files) echo romfs-sign/src/key.rs romfs-sign/src/image.rs ;;
    romfs-device/board_session) echo romfs-device/src/board.rs romfs-device/src/repl.rs romfs-device/src/query.rs romfs-device/src/deploy.rs ;;
    romfs-device/replies) echo romfs-device/src/reply.rs ;;
    romfs-embedded/mount_flash) echo romfs-embedded/src/mapped.rs romfs-embedded/src/reader.rs romfs-embedded/src/slots.rs romfs-embedded/src/commit.rs ;;
    romfs-embedded/update_stream) echo romfs-embedded/src/update ;;
    romfs-format/manifest) echo romfs-format/src/signature.rs ;;
    romfs-format/read_image) echo romfs-format/src/image.rs romfs-format/src/reader.rs romfs-format/src/record.rs romfs-format/src/varuint.rs romfs-format/src/verify.rs romfs-format/src/header.rs romfs-format/src/mpy.rs ;;
    romfs-mount/mount_options) echo romfs-mount/src/options.rs ;;
    romfs-mount/operations) echo romfs-mount/src/fs.rs romfs-mount/src/index.rs romfs-mount/src/direct.rs romfs-mount/src/prepare.rs ;;
  esac
}

for ct in "${targets[@]}"; do
  crate=${ct%%/*}
  target=${ct#*/}
  work="$root/target/fuzz-long/$crate/$target"
  mkdir -p "$work/corpus"
  seeds=()
  if [ -d "$crate/fuzz/seeds/$target" ]; then seeds=("$root/$crate/fuzz/seeds/$target")
  elif [ -d "$crate/fuzz/seeds" ]; then seeds=("$root/$crate/fuzz/seeds"); fi
  if [ -z "${COVERAGE_ONLY:-}" ]; then
    echo "==> $crate/$target: $runs runs ($(date -u +%FT%TZ))"
    start=$(date +%s)
    (cd "$crate" && cargo +nightly fuzz run "$target" "$work/corpus" "${seeds[@]}" -- \
      -runs="$runs" -rss_limit_mb=4096 -print_final_stats=1) >"$work/run.log" 2>&1 || {
      tail -n 30 "$work/run.log"
      echo "FAILED: $crate/$target (log: $work/run.log)"
      exit 1
    }
    echo "$(($(date +%s) - start))" >"$work/seconds"
  else
    echo "==> $crate/$target: coverage of the corpus of the last run"
  fi
  secs=$(cat "$work/seconds" 2>/dev/null || echo "?")
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/run.log" | tail -n 1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/run.log")
  (cd "$crate" && cargo +nightly fuzz coverage --target-dir "$root/target/fuzz-coverage/$crate" \
    "$target" "$work/corpus" "${seeds[@]}") >"$work/coverage.log" 2>&1
  bin=$(find "$root/target/fuzz-coverage/$crate" -path "*/release/$target" -type f | head -n 1)
  prof="$crate/fuzz/coverage/$target/coverage.profdata"
  # This workspace's sources only (no dependencies, std or the target itself).
  "$llvm/llvm-cov" report "$bin" -instr-profile="$prof" \
    -ignore-filename-regex='(\.cargo/registry|/rustc/|/fuzz_targets/|/library/)' >"$work/coverage.txt"
  total=$(grep '^TOTAL' "$work/coverage.txt" | awk '{print "lines " $10 ", regions " $4}')
  files=()
  for f in $(subject "$ct"); do files+=("$root/$f"); done
  about=""
  if [ ${#files[@]} -gt 0 ]; then
    "$llvm/llvm-cov" report "$bin" -instr-profile="$prof" "${files[@]}" >"$work/coverage-subject.txt"
    about=$(grep '^TOTAL' "$work/coverage-subject.txt" | awk '{print "lines " $10 ", regions " $4}')
    about="; of $(subject "$ct"): $about"
  fi
  echo "    $done_line"
  echo "    ${secs}s, peak RSS ${peak} MB, corpus $(ls "$work/corpus" | wc -l) inputs"
  echo "    coverage of this workspace's code in the binary: $total$about"
done
