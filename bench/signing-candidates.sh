#!/usr/bin/env bash
# Ed25519 crates for signed updates, side by side (bench/signing-candidates):
# code size of one verification plus SHA-256 (hmac-sha256, opt_size) as a
# firmware links it (text + rodata + data of `verify` minus `base`;
# opt-level "z", LTO), and peak stack of the verification by stack painting
# under QEMU on a Cortex-M3 (lm3s6965evb), a Cortex-M0 (microbit) and a
# Cortex-M4 (mps2-an386, where salty uses its UMAAL assembly).
#
#   bash bench/signing-candidates.sh
#
# Candidates: ed25519-compact (opt_size), salty, ed25519-dalek verify_strict
# with sha2's compact SHA-512 (a RUSTFLAGS cfg), with curve25519-dalek's
# 64-bit and fiat backends. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/signing-candidates"
llvm_size=$(find "$(rustc --print sysroot)" -name llvm-size -type f 2>/dev/null | head -n 1)
[ -n "$llvm_size" ] || llvm_size=$(command -v llvm-size)
code_size() {
  "$llvm_size" -A -d "$1" | awk '$1 == ".text" || $1 == ".rodata" || $1 == ".data" { s += $2 } END { print s + 0 }'
}
base_flags="-C link-arg=-Tlink.x"
# name|feature|extra RUSTFLAGS
candidates=(
  "ed25519-compact 2.6 (opt_size), verification in three frames|compact|"
  "salty 0.3|salty|"
  "ed25519-dalek 3, sha2 compact|dalek|--cfg sha2_backend_soft=\"compact\""
  "ed25519-dalek 3, sha2 compact, 64-bit backend|dalek|--cfg sha2_backend_soft=\"compact\" --cfg curve25519_dalek_bits=\"64\""
  "ed25519-dalek 3, sha2 compact, fiat backend|dalek|--cfg sha2_backend_soft=\"compact\" --cfg curve25519_dalek_backend=\"fiat\""
)
stack_of() { # machine elf
  timeout 600 qemu-system-arm -machine "$1" -nographic -semihosting-config enable=on,target=native \
    -kernel "$2" 2>&1 | awk '/^verify ok=true bad-refused=true/ { print $5 }'
}
echo "| candidate | flash, thumbv7em | flash, thumbv6m | stack, Cortex-M3 | stack, Cortex-M0 | stack, Cortex-M4 |"
echo "|---|---|---|---|---|---|"
i=0
for c in "${candidates[@]}"; do
  IFS='|' read -r name feature flags <<<"$c"
  dir=target/c$i
  i=$((i + 1))
  export RUSTFLAGS="$base_flags $flags"
  row="| $name |"
  for t in thumbv7em-none-eabihf thumbv6m-none-eabi; do
    CARGO_TARGET_DIR=$dir cargo build -q --release --target $t --features "$feature" --bin base --bin verify
    row="$row $(($(code_size $dir/$t/release/verify) - $(code_size $dir/$t/release/base))) |"
  done
  for tm in "thumbv7m-none-eabi lm3s6965evb" "thumbv6m-none-eabi microbit" "thumbv7em-none-eabihf mps2-an386"; do
    read -r t m <<<"$tm"
    CARGO_TARGET_DIR=$dir cargo build -q --release --target $t --features "$feature" --bin cost
    s=$(stack_of "$m" "$dir/$t/release/cost")
    row="$row ${s:-FAILED} |"
  done
  echo "$row"
done
