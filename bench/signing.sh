#!/usr/bin/env bash
# What signed updates cost, side by side in one run:
#  1. host: verifying a signed image (SHA-256 of the image, Ed25519 of its
#     manifest) with romfs-sign (and `romfs verify --key`, which also checks
#     the whole structure) against OpenSSL doing the same with the
#     commands of FORMAT.md 3.4 (`openssl dgst -sha256`, `openssl pkeyutl
#     -verify`), on the same images of 1, 16 and 64 MiB; the time per MiB
#     is the slope between 1 and 64 MiB (process start-up cancels out);
#  2. firmware (bench/signing-firmware, opt-level "z", LTO): the code size
#     of the signature verifier and of the signed updater for
#     thumbv7em-none-eabihf and thumbv6m-none-eabi, beside the unsigned
#     updater (mcu-tests' probe, built in the same run), for the default
#     build and two build options (SHA-2 without unrolled rounds;
#     precomputed Ed25519 basepoint tables);
#  3. peak stack and instruction counts on an emulated Cortex-M3
#     (QEMU lm3s6965evb, -icount shift=0), with the attacks it must refuse.
#
#   bench/signing.sh [WORKDIR]      (default WORKDIR: /tmp/romfs-bench-signing)
#   HOST_ONLY=1 bench/signing.sh    (part 1 only)
#
# Needs: openssl, hyperfine, python3, qemu-system-arm, llvm-size (rustup
# component llvm-tools, or on PATH), rust targets thumbv7em-none-eabihf,
# thumbv6m-none-eabi, thumbv7m-none-eabi. RUNS=N sets the timed runs per
# round, ROUNDS=N the rounds (default 3).
# Results: WORKDIR/results/*.md and a summary on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/romfs-bench-signing}
RUNS=${RUNS:-10}
mkdir -p "$WORK/results"
step() { printf '\n==> %s\n' "$*"; }

step "host: romfs-sign vs OpenSSL verifying the same signed images"
cargo build --release -q -p romfs-sign --example sign_bench --manifest-path "$ROOT/Cargo.toml"
cargo build --release -q -p romfs-cli --bin romfs --manifest-path "$ROOT/Cargo.toml"
sign_bench="$ROOT/target/release/examples/sign_bench"
romfs="$ROOT/target/release/romfs"
cd "$WORK"
[ -f key.pem ] || openssl genpkey -algorithm ed25519 -out key.pem
openssl pkey -in key.pem -pubout -out key.pub.pem
sizes=(1 16 64)
for mib in "${sizes[@]}"; do
  [ -f "img$mib.img" ] || "$sign_bench" make "img$mib.img" "$mib" key.pem
done
# FORMAT.md 3.4's commands, with the digest compared rather than shown.
cat >openssl-verify.sh <<'EOF'
set -e
img=$1 pub=$2
len=$(stat -c %s "$img"); signed=$((len - 167))
digest=$(head -c "$signed" "$img" | openssl dgst -sha256 -binary | od -An -tx1 | tr -d ' \n')
tail -c 160 "$img" | head -c 96 >manifest.bin
tail -c 64 "$img" >signature.bin
[ "$digest" = "$(od -An -tx1 -j56 -N32 manifest.bin | tr -d ' \n')" ]
openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in manifest.bin -sigfile signature.bin >/dev/null
EOF
for mib in "${sizes[@]}"; do
  "$sign_bench" verify "img$mib.img" key.pub.pem
  "$romfs" verify --key key.pub.pem "img$mib.img" >/dev/null
  bash openssl-verify.sh "img$mib.img" key.pub.pem
done
# Rounds interleave the sizes, so that a burst of load elsewhere on the
# machine does not fall on one size only; the runs of all rounds are pooled.
rounds=${ROUNDS:-3}
for round in $(seq "$rounds"); do
  for mib in "${sizes[@]}"; do
    hyperfine -N --warmup 3 --runs "$RUNS" --export-json "results/host-$mib-$round.json" \
      -n romfs-sign "$sign_bench verify img$mib.img key.pub.pem" \
      -n "romfs verify --key" "$romfs verify --key key.pub.pem img$mib.img" \
      -n openssl "bash openssl-verify.sh img$mib.img key.pub.pem" \
      -n "openssl dgst -sha256 alone" "openssl dgst -sha256 img$mib.img" >/dev/null
  done
done
python3 - "$rounds" "${sizes[@]}" <<'EOF' | tee results/host.md
import json, statistics, sys
rounds, sizes = int(sys.argv[1]), [int(s) for s in sys.argv[2:]]
runs = {}
for m in sizes:
    for r in range(1, rounds + 1):
        for res in json.load(open(f"results/host-{m}-{r}.json"))["results"]:
            runs.setdefault(m, {}).setdefault(res["command"], []).extend(res["times"])
names = list(runs[sizes[0]])
print("| verifier (a process per run) | " + " | ".join(f"{m} MiB (median ms)" for m in sizes) + " | per MiB (ms) | fixed (ms) |")
print("|---|" + "---|" * (len(sizes) + 2))
slope = {}
for n in names:
    med = {m: statistics.median(runs[m][n]) * 1000 for m in sizes}
    slope[n] = (med[sizes[-1]] - med[sizes[0]]) / (sizes[-1] - sizes[0])
    fixed = med[sizes[0]] - slope[n] * sizes[0]
    print(f"| {n} | " + " | ".join(f"{med[m]:.1f}" for m in sizes) + f" | {slope[n]:.3f} | {fixed:.1f} |")
print()
print(f"per MiB, romfs-sign / openssl: {slope['romfs-sign'] / slope['openssl']:.2f}x; "
      f"romfs-sign / openssl dgst alone: {slope['romfs-sign'] / slope['openssl dgst -sha256 alone']:.2f}x")
EOF

step "host, in process: the primitives, and verify() of an image in memory"
{
  echo "| | SHA-256 MB/s (1 MiB buffer) | Ed25519 verifications/s |"
  echo "|---|---|---|"
  "$sign_bench" time img1.img key.pub.pem >results/inproc-1.txt
  echo "| romfs-sign (sha2, ed25519-dalek \`verify_strict\`) | $(awk '/^sha256/ { print $3 }' results/inproc-1.txt) | $(awk '/^ed25519/ { print $3 }' results/inproc-1.txt) |"
  sha=$(openssl speed -seconds 3 -bytes 1048576 -evp sha256 2>/dev/null | awk '/^sha256/ { sub("k", "", $2); printf "%.0f", $2 / 1000 }')
  ed=$(openssl speed -seconds 3 ed25519 2>/dev/null | awk '/Ed25519/ { printf "%.0f", $NF }')
  echo "| OpenSSL (\`openssl speed\`) | $sha | $ed |"
  echo
  echo "| \`verify()\` of an image in memory | ms | ms per MiB |"
  echo "|---|---|---|"
  for mib in "${sizes[@]}"; do
    "$sign_bench" time "img$mib.img" key.pub.pem >"results/inproc-$mib.txt"
    echo "| $mib MiB | $(awk '/^verify ms / { print $3 }' "results/inproc-$mib.txt") | $(awk '/^verify ms\/MiB/ { print $3 }' "results/inproc-$mib.txt") |"
  done
} | tee results/host-inprocess.md

if [ "${HOST_ONLY:-0}" = 1 ]; then exit 0; fi

step "firmware: code size (text + rodata + data; opt-level z, LTO)"
fw="$ROOT/bench/signing-firmware"
llvm_size=$(find "$(rustc --print sysroot)" -name llvm-size -type f 2>/dev/null | head -n 1)
[ -n "$llvm_size" ] || llvm_size=$(command -v llvm-size)
code_size() {
  "$llvm_size" -A -d "$1" | awk '$1 == ".text" || $1 == ".rodata" || $1 == ".data" { s += $2 } END { print s + 0 }'
}
size_targets=(thumbv7em-none-eabihf thumbv6m-none-eabi)
# variant name, target dir, RUSTFLAGS (empty: .cargo/config.toml's), features
variants=(
  "default|target|-|"
  "sha2 compact|target/sha2-compact|-C link-arg=-Tlink.x --cfg sha2_backend_soft=\"compact\"|"
  "precomputed tables|target/precomputed|-|precomputed-tables"
)
build_variant() { # variant target [cargo args...]
  local name dir flags features
  IFS='|' read -r name dir flags features <<<"$1"
  local target=$2
  shift 2
  (
    cd "$fw"
    if [ "$flags" != - ]; then export RUSTFLAGS="$flags"; fi
    CARGO_TARGET_DIR=$dir cargo "$@" -q --release --target "$target" ${features:+--features "$features"}
  )
}
declare -A size
for target in "${size_targets[@]}"; do
  # The unsigned updater as mcu-tests measures it (romfs-embedded without `signed`).
  (cd "$ROOT/mcu-tests" && CARGO_TARGET_DIR="$fw/target/mcu-tests" cargo build -q --release \
    --target "$target" --bin size-baseline --bin size-updater)
  base=$(code_size "$fw/target/mcu-tests/$target/release/size-baseline")
  size[$target,unsigned]=$(($(code_size "$fw/target/mcu-tests/$target/release/size-updater") - base))
  for v in "${variants[@]}"; do
    IFS='|' read -r name dir _ _ <<<"$v"
    build_variant "$v" "$target" build --bins
    base=$(code_size "$fw/$dir/$target/release/size-baseline")
    for probe in verifier signed-updater updater; do
      size[$target,$name,$probe]=$(($(code_size "$fw/$dir/$target/release/size-$probe") - base))
    done
  done
done
{
  echo "| part | build | thumbv7em-none-eabihf | thumbv6m-none-eabi |"
  echo "|---|---|---|---|"
  echo "| unsigned updater (mcu-tests \`size-updater\`, no \`signed\` feature) | default | ${size[thumbv7em-none-eabihf,unsigned]} | ${size[thumbv6m-none-eabi,unsigned]} |"
  for v in "${variants[@]}"; do
    IFS='|' read -r name _ _ _ <<<"$v"
    for probe in verifier signed-updater updater; do
      case $probe in
        verifier) what="signature verifier (\`size-verifier\`)" ;;
        signed-updater) what="signed updater (\`size-signed-updater\`)" ;;
        updater) what="unsigned updater, \`signed\` feature on (\`size-updater\`)" ;;
      esac
      echo "| $what | $name | ${size[thumbv7em-none-eabihf,$name,$probe]} | ${size[thumbv6m-none-eabi,$name,$probe]} |"
    done
  done
} | tee "$WORK/results/firmware-size.md"

step "firmware: stack and instructions on an emulated Cortex-M3 (QEMU lm3s6965evb, -icount shift=0)"
failures=()
for v in "${variants[@]}"; do
  IFS='|' read -r name dir _ _ <<<"$v"
  build_variant "$v" thumbv7m-none-eabi build --bin signing-cost
  log="$WORK/results/signing-cost-${name// /-}.log"
  if timeout 600 qemu-system-arm -machine lm3s6965evb -nographic \
    -semihosting-config enable=on,target=native -icount shift=0 \
    -kernel "$fw/$dir/thumbv7m-none-eabi/release/signing-cost" >"$log" 2>&1; then :; else
    failures+=("signing-cost ($name) failed: see $log")
  fi
  grep -q '^[0-9]* passed, 0 failed$' "$log" || failures+=("signing-cost ($name): checks failed, see $log")
done
python3 - "$WORK/results" "${variants[@]}" <<'EOF' | tee "$WORK/results/firmware-cost.md"
import sys
results, variants = sys.argv[1], [v.split("|")[0] for v in sys.argv[2:]]
logs = {}
for v in variants:
    fig = {}
    for line in open(f"{results}/signing-cost-{v.replace(' ', '-')}.log"):
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("stack", "instructions", "bytes"):
            fig[(parts[0], parts[1])] = int(parts[2])
    logs[v] = fig
ops = [k[1] for k in logs[variants[0]] if k[0] == "stack"]
print("| peak stack (bytes) | " + " | ".join(variants) + " |")
print("|---|" + "---|" * len(variants))
for op in ops:
    print(f"| `{op}` | " + " | ".join(str(logs[v].get(("stack", op), "?")) for v in variants) + " |")
print()
print("| instructions | " + " | ".join(variants) + " |")
print("|---|" + "---|" * len(variants))
for op in [k[1] for k in logs[variants[0]] if k[0] == "instructions"]:
    print(f"| {op} | " + " | ".join(f"{logs[v].get(('instructions', op), 0):,}" for v in variants) + " |")
n = logs[variants[0]][("bytes", "sha256-of-v2")]
print("| SHA-256 per byte | " + " | ".join(
    f"{logs[v][('instructions', 'sha256-of-v2')] / n:.1f}" for v in variants) + " |")
EOF

echo
if [ ${#failures[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "results in $WORK/results"
