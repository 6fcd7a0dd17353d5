#!/usr/bin/env bash
# The long fuzzing runs FUZZING.md records: each target for RUNS executions
# (default 1,000,000) from its seeds, then its coverage over the corpus it
# grew (`cargo fuzz coverage`, then `llvm-cov report` from the nightly
# toolchain's llvm-tools). One target at a time; a summary line per target.
#
#   scripts/fuzz-long.sh                       every target of every */fuzz crate
#   scripts/fuzz-long.sh romfs-build/inspect   just these (CRATE/TARGET)
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

for ct in "${targets[@]}"; do
  crate=${ct%%/*}
  target=${ct#*/}
  work="$root/target/fuzz-long/$crate/$target"
  mkdir -p "$work/corpus"
  seeds=()
  if [ -d "$crate/fuzz/seeds/$target" ]; then seeds=("$root/$crate/fuzz/seeds/$target")
  elif [ -d "$crate/fuzz/seeds" ]; then seeds=("$root/$crate/fuzz/seeds"); fi
  echo "==> $crate/$target: $runs runs ($(date -u +%FT%TZ))"
  start=$(date +%s)
  (cd "$crate" && cargo +nightly fuzz run "$target" "$work/corpus" "${seeds[@]}" -- \
    -runs="$runs" -rss_limit_mb=4096 -print_final_stats=1) >"$work/run.log" 2>&1 || {
    tail -n 30 "$work/run.log"
    echo "FAILED: $crate/$target (log: $work/run.log)"
    exit 1
  }
  secs=$(($(date +%s) - start))
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/run.log" | tail -n 1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/run.log")
  (cd "$crate" && cargo +nightly fuzz coverage --target-dir "$root/target/fuzz-coverage/$crate" \
    "$target" "$work/corpus" "${seeds[@]}") >"$work/coverage.log" 2>&1
  bin=$(find "$root/target/fuzz-coverage/$crate" -path "*/release/$target" -type f | head -n 1)
  prof="$crate/fuzz/coverage/$target/coverage.profdata"
  # This workspace's sources only (no dependencies, std or the target itself).
  "$llvm/llvm-cov" report "$bin" -instr-profile="$prof" \
    -ignore-filename-regex='(\.cargo/registry|/rustc/|/fuzz_targets/|/library/)' >"$work/coverage.txt"
  total=$(grep '^TOTAL' "$work/coverage.txt" | awk '{print "regions " $4 ", functions " $7 ", lines " $10}')
  echo "    $done_line"
  echo "    ${secs}s, peak RSS ${peak} MB, corpus $(ls "$work/corpus" | wc -l) inputs; coverage: $total"
done
