#!/usr/bin/env bash
# romfs-embedded on emulated microcontrollers (the firmware in mcu-tests/):
#  1. runs the on-target tests under QEMU on a Cortex-M3 (lm3s6965evb,
#     thumbv7m-none-eabi) and a Cortex-M0 (microbit, thumbv6m-none-eabi,
#     no unaligned access), with the peak stack of every operation;
#  2. measures the code size each part adds to a firmware (the delta
#     updater: a firmware that takes romfs diff patches)
#     (thumbv7em-none-eabihf and thumbv6m-none-eabi, opt-level "z", LTO);
#  3. measures each CRC-32 implementation's speed on both cores;
#  4. builds the real-HAL example firmware (examples/rp2040-firmware:
#     embassy-rp's flash driver on an RP2040, thumbv6m-none-eabi);
#  5. does the same for signed updates (bench/signing-firmware): signed A/B
#     updates and the attacks they refuse on the Cortex-M3 and the Cortex-M0,
#     the verifier's and the signed updater's code size on both size targets;
#  6. fails, naming the part and its figure, when a budget is exceeded.
# Installs what it needs (rust targets, llvm-tools, qemu-system-arm).
#
#   bash scripts/mcu.sh          # all of the above
#   bash scripts/mcu.sh --crc    # also the sizes with each CRC-32 feature
set -euo pipefail
cd "$(dirname "$0")/../mcu-tests"
step() { printf '\n==> %s\n' "$*"; }

# Panic locations name source files (panic-semihosting keeps them): with the
# checkout's and cargo's own paths remapped, the sizes measured here do not
# depend on where the repository or the registry sits.
repo=$(cd .. && pwd -P)
remap="--remap-path-prefix=$repo=/romfs --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
for t in thumbv7m-none-eabi thumbv6m-none-eabi thumbv7em-none-eabihf; do
  export "CARGO_TARGET_$(echo "$t" | tr 'a-z-' 'A-Z_')_RUSTFLAGS=$remap"
done

# Budgets, in bytes: code (text + rodata + data) a part adds, and stack.
budget_mapped=2048
budget_flashfs=4096
budget_updater=12800 # 12 KiB + 512 B for bounded-buffer (large-sector) updates: see BENCHMARKS.md
budget_stack=2048
# The whole A/B update as a user writes it (the README's begin_ab_in, write
# and finish_in_place in one function, `mcu-tests` user.update): the updater
# in the caller's frame with each operation's frames below it.
budget_stack_user_update=2048
# A firmware that takes delta updates (romfs diff patches) into A/B slots:
# the updater plus the patch decoder and the check of the running image.
budget_delta=14848
budget_crc32=- # shown, not a budget (the updater includes it)
# The documented usage (romfs-embedded's README: `begin_ab_in`, `write`,
# `finish_in_place` in one function, and a mapped A/B mount), written as a user
# writes it: the flash driver inlined, with each common panic handler (a
# looping one; panic-semihosting, over a baseline that has it too). The
# updater's budget holds for it.
budget_user_halt=$budget_updater
budget_user=$budget_updater
# Signed updates (feature `signed`, bench/signing-firmware): the signature
# verifier, the signed A/B updater, and the peak stack of every signed
# operation on the Cortex-M3 and the Cortex-M0 (see BENCHMARKS.md, "Signed
# updates").
budget_verifier=22784
budget_signed_updater=38912
budget_signed_stack=6144 # finish with the manifest in the stream the deepest; every step in place (the _in_place forms)

crc_rows=false
[ "${1:-}" = "--crc" ] && crc_rows=true

# Test runs: target, QEMU machine.
runs=("thumbv7m-none-eabi lm3s6965evb" "thumbv6m-none-eabi microbit")
# Size measurements.
size_targets=(thumbv7em-none-eabihf thumbv6m-none-eabi)
parts=("mapped:mapped read (mount + open)" "flashfs:non-mapped read (FlashFs)" "updater:updater with A/B mount" "delta:delta updater with A/B mount" "user_halt:A/B update + mapped mount as a user writes them (looping panic)" "user:A/B update + mapped mount as a user writes them (panic-semihosting)" "crc32:CRC-32 alone")

step "tools: rust targets, llvm-tools, qemu-system-arm"
rustup target add thumbv7m-none-eabi thumbv6m-none-eabi thumbv7em-none-eabihf >/dev/null
rustup component add llvm-tools >/dev/null 2>&1 || true
llvm_size=$(find "$(rustc --print sysroot)" -name llvm-size -type f 2>/dev/null | head -n 1)
[ -n "$llvm_size" ] || llvm_size=$(command -v llvm-size || true)
if [ -z "$llvm_size" ]; then
  echo "error: no llvm-size (rustup component add llvm-tools failed and none is on PATH)" >&2
  exit 1
fi
if ! command -v qemu-system-arm >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-system-arm >/dev/null
fi
qemu-system-arm --version | head -n 1

step "formatting and lints (firmware crate, both targets)"
cargo fmt -- --check
for run in "${runs[@]}"; do
  cargo clippy -q --release --target "${run%% *}" --bins -- -D warnings
done

out=target/mcu
mkdir -p "$out"
failures=()

# code size of an ELF: text + rodata + data
code_size() {
  "$llvm_size" -A -d "$1" | awk '$1 == ".text" || $1 == ".rodata" || $1 == ".data" { s += $2 } END { print s + 0 }'
}

# qemu TARGET MACHINE BINARY [QEMU OPTIONS...]: run a firmware, output to stdout
qemu() {
  local target=$1 machine=$2 bin=$3
  shift 3
  timeout 300 qemu-system-arm -machine "$machine" -nographic \
    -semihosting-config enable=on,target=native "$@" \
    -kernel "target/$target/release/$bin"
}

declare -A stack
step "on-target tests under QEMU"
for run in "${runs[@]}"; do
  read -r target machine <<<"$run"
  cargo build -q --release --target "$target" --bins
  log="$out/tests-$target.log"
  echo "-- $target on $machine"
  if qemu "$target" "$machine" mcu-tests >"$log" 2>&1; then rc=0; else rc=$?; fi
  grep -v '^stack ' "$log" | grep -v '^Timer with period zero' || true
  if [ "$rc" -ne 0 ] || ! grep -q '^[0-9]* passed, 0 failed$' "$log"; then
    failures+=("on-target tests failed on $target ($machine), exit $rc: see mcu-tests/$log")
  fi
  while read -r _ op bytes; do
    stack[$target,$op]=$bytes
  done < <(grep '^stack ' "$log" || true)
done

step "peak stack per operation (bytes; budget $budget_stack)"
ops=$(grep '^stack ' "$out/tests-${runs[0]%% *}.log" | awk '{ print $2 }' || true)
if [ -z "$ops" ]; then
  failures+=("no stack figures were reported")
fi
printf '| operation | Cortex-M3 (thumbv7m) | Cortex-M0 (thumbv6m) |\n|---|---|---|\n' | tee "$out/stack.md"
for op in $ops; do
  row="| $op |"
  for run in "${runs[@]}"; do
    target=${run%% *}
    bytes=${stack[$target,$op]:-}
    row="$row ${bytes:-?} |"
    if [ -z "$bytes" ]; then
      failures+=("stack of $op on $target was not reported")
    else
      budget_var=budget_stack_${op//./_}
      budget=${!budget_var:-$budget_stack}
      if [ "$bytes" -gt "$budget" ]; then
        failures+=("stack of $op on $target: $bytes bytes > budget $budget")
      fi
    fi
  done
  echo "$row" | tee -a "$out/stack.md"
done

step "CRC-32 speed on the emulated cores (instructions per byte, qemu -icount)"
printf '| implementation | Cortex-M3 | Cortex-M0 |\n|---|---|---|\n' | tee "$out/crc-speed.md"
declare -A speed
for run in "${runs[@]}"; do
  read -r target machine <<<"$run"
  log="$out/crc-speed-$target.log"
  if ! qemu "$target" "$machine" crc-speed -icount shift=0 >"$log" 2>&1; then
    failures+=("crc-speed failed on $target: see mcu-tests/$log")
  fi
  while read -r _ name figure; do speed[$target,$name]=$figure; done < <(grep '^crc-speed ' "$log" || true)
done
for name in table-free small-table table crc32fast; do
  echo "| $name | ${speed[${runs[0]%% *},$name]:-?} | ${speed[${runs[1]%% *},$name]:-?} |" | tee -a "$out/crc-speed.md"
done

# sizes FEATURES... : "target part bytes" lines of part minus baseline
measure_sizes() {
  local dir=target
  [ $# -gt 0 ] && dir="target/features-${*// /-}"
  for target in "${size_targets[@]}"; do
    CARGO_TARGET_DIR=$dir cargo build -q --release --target "$target" --bins ${1:+--features "$*"}
    local base base_semihosting
    base=$(code_size "$dir/$target/release/size-baseline")
    base_semihosting=$(code_size "$dir/$target/release/size-baseline-semihosting")
    for part in "${parts[@]}"; do
      local name=${part%%:*} from=$base
      [ "$name" = user ] && from=$base_semihosting
      echo "$target $name $(($(code_size "$dir/$target/release/size-${name//_/-}") - from))"
    done
  done
}

step "code size each part adds (text + rodata + data, bytes; opt-level z, LTO)"
declare -A size
while read -r target name bytes; do size[$target,$name]=$bytes; done < <(measure_sizes)
printf '| part | budget | thumbv7em-none-eabihf | thumbv6m-none-eabi |\n|---|---|---|---|\n' | tee "$out/size.md"
for part in "${parts[@]}"; do
  name=${part%%:*}
  budget_var=budget_$name
  budget=${!budget_var}
  row="| ${part#*:} | $budget |"
  for target in "${size_targets[@]}"; do
    bytes=${size[$target,$name]}
    row="$row $bytes |"
    if [ "$budget" != - ] && [ "$bytes" -gt "$budget" ]; then
      failures+=("code size of ${part#*:} on $target: $bytes bytes > budget $budget")
    fi
  done
  echo "$row" | tee -a "$out/size.md"
done

step "signed updates (bench/signing-firmware): code size (budgets $budget_verifier, $budget_signed_updater) and stack (budget $budget_signed_stack)"
fw=../bench/signing-firmware
printf '| signed part | budget | thumbv7em-none-eabihf | thumbv6m-none-eabi |\n|---|---|---|---|\n' | tee "$out/size-signed.md"
declare -A signed_size
for target in "${size_targets[@]}"; do
  (cd "$fw" && cargo build -q --release --target "$target" --bin size-baseline --bin size-verifier --bin size-signed-updater)
  base=$(code_size "$fw/target/$target/release/size-baseline")
  for probe in verifier signed-updater; do
    signed_size[$target,$probe]=$(($(code_size "$fw/target/$target/release/size-$probe") - base))
  done
done
for probe in verifier signed-updater; do
  budget_var=budget_${probe//-/_}
  budget=${!budget_var}
  row="| $probe | $budget |"
  for target in "${size_targets[@]}"; do
    bytes=${signed_size[$target,$probe]}
    row="$row $bytes |"
    if [ "$bytes" -gt "$budget" ]; then
      failures+=("code size of the $probe on $target: $bytes bytes > budget $budget")
    fi
  done
  echo "$row" | tee -a "$out/size-signed.md"
done
for run in "${runs[@]}"; do
  read -r target machine <<<"$run"
  (cd "$fw" && cargo build -q --release --target "$target" --bin signing-cost)
  log="$out/signing-cost-$target.log"
  echo "-- $target on $machine"
  if timeout 600 qemu-system-arm -machine "$machine" -nographic -semihosting-config enable=on,target=native \
    -kernel "$fw/target/$target/release/signing-cost" >"$log" 2>&1; then rc=0; else rc=$?; fi
  grep -E '^(ok|FAIL) ' "$log" || true
  if [ "$rc" -ne 0 ] || ! grep -q '^[0-9]* passed, 0 failed$' "$log"; then
    failures+=("signed updates failed on $target ($machine), exit $rc: see mcu-tests/$log")
  fi
  signed_ops=0
  while read -r _ op bytes; do
    case $op in signed.* | TrustPolicy::check | sha256) ;; *) continue ;; esac
    signed_ops=$((signed_ops + 1))
    echo "stack of $op: $bytes bytes"
    if [ "$bytes" -gt "$budget_signed_stack" ]; then
      failures+=("stack of $op on $target: $bytes bytes > budget $budget_signed_stack")
    fi
  done < <(grep '^stack ' "$log" || true)
  [ "$signed_ops" -gt 0 ] || failures+=("no stack figures for signed operations were reported on $target")
done

if $crc_rows; then
  step "CRC-32 alone and updater with A/B mount, by CRC-32 feature (bytes)"
  printf '| CRC-32 feature | CRC-32 alone, thumbv7em | CRC-32 alone, thumbv6m | updater, thumbv7em | updater, thumbv6m |\n|---|---|---|---|---|\n' | tee "$out/size-crc.md"
  for feature in none crc-small-table crc-table crc-fast; do
    declare -A by_feature=()
    if [ "$feature" = none ]; then
      for k in "${!size[@]}"; do by_feature[$k]=${size[$k]}; done
    else
      while read -r target name bytes; do by_feature[$target,$name]=$bytes; done < <(measure_sizes "$feature")
    fi
    echo "| $feature | ${by_feature[thumbv7em-none-eabihf,crc32]} | ${by_feature[thumbv6m-none-eabi,crc32]} | ${by_feature[thumbv7em-none-eabihf,updater]} | ${by_feature[thumbv6m-none-eabi,updater]} |" | tee -a "$out/size-crc.md"
  done
fi

step "example firmware on a real HAL (examples/rp2040-firmware, embassy-rp, thumbv6m-none-eabi)"
if (cd ../examples/rp2040-firmware && cargo fmt -- --check &&
  cargo clippy -q --release -- -D warnings && cargo build -q --release); then
  rp2040_elf=../examples/rp2040-firmware/target/thumbv6m-none-eabi/release/romfs-rp2040-firmware
  echo "rp2040-firmware: $(code_size "$rp2040_elf") bytes of code (text + rodata + data)"
else
  failures+=("the RP2040 example firmware does not build: see examples/rp2040-firmware")
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "mcu: on-target tests passed on both cores; every size and stack budget met"
