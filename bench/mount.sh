#!/usr/bin/env bash
# Read performance of romfs-mount against squashfuse (uncompressed squashfs of
# the same tree) and the kernel's erofs (loop mount) as the ceiling.
# Needs root (drop_caches, loop mounts), fuse3, squashfuse, squashfs-tools,
# erofs-utils, fio. Corpora and images are generated once under $WORK and
# reused. Results go to stdout and bench/mount-RESULTS.md.
#
#   bench/mount.sh            # full run (~3-5 minutes)
#   RUNS=5 bench/mount.sh     # more repetitions (medians are reported)
#   ONLY=seq RUNS=15 bench/mount.sh
#                             # only cold sequential reads, the readers taking
#                             # turns within each repetition, plus the disk
#                             # ceiling (cold `cat` of the image file itself);
#                             # prints to stdout, leaves the results file alone
#   ONLY=warm RUNS=9 bench/mount.sh
#                             # the same for warm sequential reads and warm
#                             # random 4 KiB reads (fio, 3 s), against erofs
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/romfs-bench}
RUNS=${RUNS:-3}
OUT=${OUT:-$ROOT/bench/mount-RESULTS.md}
ROMFS=$ROOT/target/release/romfs
MOUNTER=$ROOT/target/release/romfs-mount

[ "$(id -u)" = 0 ] || { echo "run as root (drop_caches, loop mounts)"; exit 1; }
for t in fusermount3 squashfuse mksquashfs mkfs.erofs fio python3; do
    command -v $t >/dev/null || { echo "missing $t"; exit 1; }
done
(cd "$ROOT" && cargo build --release -q -p romfs-cli)

mkdir -p "$WORK"
cd "$WORK"

# ---------------------------------------------------------------- corpora
gen() { # name python-body
    [ -e "src-$1.done" ] && return
    rm -rf "src-$1"
    python3 - "src-$1" <<EOF
import os, random, sys
root = sys.argv[1]
r = random.Random(42)
def put(path, n, data=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if data is not None else r.randbytes(n))
$2
EOF
    touch "src-$1.done"
}
# app: 2,000 files of 200 B - 20 KiB in nested folders, some duplicates.
gen app '
dups = [r.randbytes(r.randint(200, 20000)) for _ in range(20)]
for i in range(2000):
    d = "/".join("d%d" % r.randint(0, 5) for _ in range(r.randint(1, 4)))
    data = r.choice(dups) if r.random() < 0.1 else None
    put(f"{root}/{d}/f{i:04}.bin", r.randint(200, 20000), data)'
# wide: one folder of 20,000 files of 16 B - 2 KiB.
gen wide '
for i in range(20000):
    put(f"{root}/w/file-{i:05}.dat", r.randint(16, 2048))'
# assets: 64 files of 1 - 12 MiB (~420 MiB).
gen assets '
for i in range(64):
    put(f"{root}/a/asset-{i:02}.bin", r.randint(1 << 20, 12 << 20))'
# many: 100,000 small files in 1,000 folders (mount time).
gen many '
for i in range(100000):
    put(f"{root}/d{i // 100:03}/f{i % 100:02}.txt", r.randint(16, 256))'

build_images() { # corpus
    local c=$1
    [ -e "$c.romfs" ] || "$ROMFS" build --quiet --no-mpy -o "$c.romfs" "src-$c"
    [ -e "$c.sqfs" ] || mksquashfs "src-$c" "$c.sqfs" -noI -noD -noF -noX -no-xattrs -all-root -noappend -quiet -no-progress
    [ -e "$c.erofs" ] || mkfs.erofs --quiet "$c.erofs" "src-$c"
}
for c in app wide assets many; do build_images $c; done

mkdir -p mnt
MNT=$WORK/mnt

do_mount() { # reader image-base
    case $1 in
        romfs) "$MOUNTER" "$2.romfs" "$MNT" ;;
        squashfuse) squashfuse "$2.sqfs" "$MNT" ;;
        erofs) mount -t erofs -o loop,ro "$2.erofs" "$MNT" ;;
    esac
}
do_umount() {
    case $1 in
        erofs) umount "$MNT" ;;
        *) fusermount3 -u "$MNT" ;;
    esac
    # Wait until the mount is really gone.
    while mountpoint -q "$MNT"; do sleep 0.01; done
}
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# time_cmd reader corpus mode cmd... -> median milliseconds over RUNS
# mode cold: remount + drop caches before every run; warm: one mount, one
# untimed warm-up run, then RUNS timed runs.
time_cmd() {
    local reader=$1 corpus=$2 mode=$3; shift 3
    local t=()
    if [ "$mode" = warm ]; then
        do_mount "$reader" "$corpus"
        "$@" >/dev/null 2>&1
        for _ in $(seq "$RUNS"); do
            local s; s=$(now); "$@" >/dev/null 2>&1; t+=($(( ($(now) - s) / 1000 )))
        done
        do_umount "$reader"
    else
        for _ in $(seq "$RUNS"); do
            do_mount "$reader" "$corpus"; drop
            local s; s=$(now); "$@" >/dev/null 2>&1; t+=($(( ($(now) - s) / 1000 )))
            do_umount "$reader"
        done
    fi
    printf '%s\n' "${t[@]}" | median | awk '{printf "%.1f", $1/1000}'
}

walk() { find "$MNT" -printf '%s %m %i\n' >/dev/null; }
readall() { find "$MNT" -type f -exec cat {} + >/dev/null; }
seqread() { cat "$MNT"/a/* >/dev/null; }
ASSETS_MIB=$(du -sm --apparent-size src-assets | cut -f1)

fio_rand() { # reader mode -> IOPS
    local reader=$1 mode=$2 files
    do_mount "$reader" assets
    files=$(ls "$MNT"/a/* | tr '\n' ':' | sed 's/:$//')
    local args=(--name=rand --filename="$files" --readonly --rw=randread --bs=4k --ioengine=psync
        --time_based --runtime=5 --numjobs=1 --output-format=terse --terse-version=3)
    if [ "$mode" = warm ]; then
        cat "$MNT"/a/* >/dev/null
        fio "${args[@]}" --invalidate=0 | awk -F';' '{print $8}'
    else
        drop
        fio "${args[@]}" --invalidate=1 | awk -F';' '{print $8}'
    fi
    do_umount "$reader"
}

mount_time() { # reader -> median ms to mount the 100,000-file image
    local t=()
    for _ in $(seq "$RUNS"); do
        local s; s=$(now); do_mount "$1" many; t+=($(( ($(now) - s) / 1000 )))
        ls "$MNT" >/dev/null
        do_umount "$1"
    done
    printf '%s\n' "${t[@]}" | median | awk '{printf "%.1f", $1/1000}'
}

# Cold sequential read of the raw image file (no filesystem): the disk's ceiling.
rawread() { drop; local s; s=$(now); cat assets.romfs >/dev/null; echo $(( ($(now) - s) / 1000 )); }
mibs() { awk -v m="$ASSETS_MIB" -v t="$1" 'BEGIN {printf "%.0f", m / (t / 1000000)}'; }

# For the interleaved modes: T[key] holds one figure per repetition.
med() { echo ${T[$1]} | tr ' ' '\n' | median; }
ratio_med() { # median over repetitions of T[a] / T[b]
    paste <(echo ${T[$1]} | tr ' ' '\n') <(echo ${T[$2]} | tr ' ' '\n') |
        awk '{print $1 / $2}' | median | awk '{printf "%.2f", $1}'
}

if [ "${ONLY:-}" = seq ]; then
    # Interleaved: every repetition runs each reader once, so slow phases of
    # the (shared, noisy) disk hit all of them alike; per-repetition ratios
    # are reported as well as the medians.
    declare -A T
    for i in $(seq "$RUNS"); do
        T[disk]+="$(rawread) "
        for rd in romfs squashfuse erofs; do
            do_mount "$rd" assets; drop
            s=$(now); seqread; T[$rd]+="$(( ($(now) - s) / 1000 )) "
            do_umount "$rd"
        done
        line="run $i (MiB/s):"
        for rd in disk romfs squashfuse erofs; do
            line+=" $rd $(mibs "$(echo ${T[$rd]} | awk '{print $NF}')")"
        done
        echo "$line"
    done
    echo
    echo "cold sequential read of $ASSETS_MIB MiB, medians of $RUNS interleaved runs:"
    for rd in disk romfs squashfuse erofs; do
        printf '  %-11s %5s MiB/s\n' "$rd" "$(mibs "$(med $rd)")"
    done
    echo "  romfs vs squashfuse:   $(ratio_med squashfuse romfs)x (median of per-run ratios)"
    echo "  disk vs squashfuse:    $(ratio_med squashfuse disk)x (the most any reader could reach)"
    echo "  romfs / disk:          $(ratio_med disk romfs)"
    exit 0
fi

if [ "${ONLY:-}" = warm ]; then
    # Interleaved like the cold mode: each repetition mounts every reader,
    # reads the assets once untimed, then times three `cat`s (their median)
    # and a 3 s fio run.
    declare -A T
    for i in $(seq "$RUNS"); do
        line="run $i:"
        for rd in romfs squashfuse erofs; do
            do_mount "$rd" assets
            seqread
            # Median of three timed passes, as in the full run's warm rows.
            T[$rd,seq]+="$(for _ in 1 2 3; do s=$(now); seqread; echo $(( ($(now) - s) / 1000 )); done | median) "
            files=$(ls "$MNT"/a/* | tr '\n' ':' | sed 's/:$//')
            iops=$(fio --name=rand --filename="$files" --readonly --rw=randread --bs=4k --ioengine=psync \
                --time_based --runtime=3 --numjobs=1 --invalidate=0 --output-format=terse --terse-version=3 |
                awk -F';' '{print $8}')
            T[$rd,rand]+="$iops "
            do_umount "$rd"
            line+=" $rd $(mibs "$(echo ${T[$rd,seq]} | awk '{print $NF}')") MiB/s $iops IOPS;"
        done
        echo "$line"
    done
    echo
    echo "warm reads of $ASSETS_MIB MiB, medians of $RUNS interleaved runs:"
    for rd in romfs squashfuse erofs; do
        printf '  %-11s %5s MiB/s sequential  %8s IOPS random 4 KiB\n' "$rd" "$(mibs "$(med $rd,seq)")" "$(med $rd,rand)"
    done
    # Times: erofs/romfs is romfs's speed relative to erofs.
    echo "  sequential: romfs / erofs $(ratio_med erofs,seq romfs,seq), squashfuse / erofs $(ratio_med erofs,seq squashfuse,seq)"
    echo "  random:     romfs / erofs $(ratio_med romfs,rand erofs,rand), squashfuse / erofs $(ratio_med squashfuse,rand erofs,rand)"
    exit 0
fi

declare -A R
READERS=(romfs squashfuse erofs)
R[disk,seq,cold]=$(for _ in $(seq "$RUNS"); do rawread; done | median | awk '{printf "%.0f", $1}')
R[disk,seq,cold]=$(mibs "${R[disk,seq,cold]}")
for rd in "${READERS[@]}"; do
    echo "== $rd" >&2
    R[$rd,mount]=$(mount_time "$rd")
    for mode in warm cold; do
        ms=$(time_cmd "$rd" assets $mode seqread)
        R[$rd,seq,$mode]=$(awk -v m="$ASSETS_MIB" -v t="$ms" 'BEGIN {printf "%.0f", m / (t / 1000)}')
        R[$rd,rand,$mode]=$(fio_rand "$rd" $mode)
        R[$rd,appwalk,$mode]=$(time_cmd "$rd" app $mode walk)
        R[$rd,wideread,$mode]=$(time_cmd "$rd" wide $mode readall)
        R[$rd,widewalk,$mode]=$(time_cmd "$rd" wide $mode walk)
        R[$rd,appread,$mode]=$(time_cmd "$rd" app $mode readall)
    done
    for k in mount seq,warm seq,cold rand,warm rand,cold appwalk,warm appwalk,cold widewalk,warm widewalk,cold appread,warm appread,cold wideread,warm wideread,cold; do
        printf '  %-16s %s\n' "$k" "${R[$rd,$k]}" >&2
    done
done

# Hand-written notes at the end of the results file survive a re-run.
NOTES=$( [ -f "$OUT" ] && sed -n '/^## Notes/,$p' "$OUT" || true)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'; }

{
    echo "# romfs-mount read benchmarks"
    echo
    echo "Generated by \`bench/mount.sh\` on $(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r);"
    echo "medians of $RUNS runs (fio: one 5 s run). Corpora in \`$WORK\`: app = 2,000 files of 200 B-20 KiB"
    echo "in nested folders; wide = one folder of 20,000 files of 16 B-2 KiB; assets = 64 files of 1-12 MiB"
    echo "($ASSETS_MIB MiB); many = 100,000 files of 16-256 B in 1,000 folders."
    echo
    echo "| | romfs-mount | squashfuse | kernel erofs | romfs vs squashfuse | romfs / erofs |"
    echo "|---|---|---|---|---|---|"
    row() { # label key higher-is-better(1|0)
        local a=${R[romfs,$2]} b=${R[squashfuse,$2]} c=${R[erofs,$2]}
        if [ "$3" = 1 ]; then
            echo "| $1 | $a | $b | $c | $(ratio "$a" "$b")x faster | $(ratio "$a" "$c") |"
        else
            echo "| $1 | $a | $b | $c | $(ratio "$b" "$a")x faster | $(ratio "$a" "$c")x the time |"
        fi
    }
    row "assets sequential read, warm (MiB/s)" seq,warm 1
    row "assets sequential read, cold (MiB/s)" seq,cold 1
    row "random 4 KiB reads, warm (IOPS)" rand,warm 1
    row "random 4 KiB reads, cold (IOPS)" rand,cold 1
    row "app find+stat, warm (ms)" appwalk,warm 0
    row "app find+stat, cold (ms)" appwalk,cold 0
    row "app read every file, warm (ms)" appread,warm 0
    row "app read every file, cold (ms)" appread,cold 0
    row "wide find+stat, warm (ms)" widewalk,warm 0
    row "wide find+stat, cold (ms)" widewalk,cold 0
    row "wide read every file, warm (ms)" wideread,warm 0
    row "wide read every file, cold (ms)" wideread,cold 0
    row "mount 100,000-file image (ms)" mount 0
    echo
    echo "Disk ceiling: a cold \`cat\` of the image file itself (no filesystem) reads ${R[disk,seq,cold]} MiB/s in this run,"
    echo "$(ratio "${R[disk,seq,cold]}" "${R[squashfuse,seq,cold]}")x the cold sequential rate of squashfuse."
    echo
    echo "## Commands"
    echo
    echo '```'
    echo "romfs build -o IMG.romfs SRC            # default layout"
    echo "mksquashfs SRC IMG.sqfs -noI -noD -noF -noX -no-xattrs -all-root -noappend -quiet -no-progress"
    echo "mkfs.erofs --quiet IMG.erofs SRC"
    echo "romfs-mount IMG.romfs MNT  |  squashfuse IMG.sqfs MNT  |  mount -t erofs -o loop,ro IMG.erofs MNT"
    echo "fusermount3 -u MNT         |  fusermount3 -u MNT       |  umount MNT"
    echo "cold = fresh mount, then sync; echo 3 > /proc/sys/vm/drop_caches, before every timed run"
    echo "warm = one mount, one untimed run, then the timed runs"
    echo "sequential:  cat MNT/a/* > /dev/null"
    echo "random:      fio --name=rand --filename=<the 64 assets> --readonly --rw=randread --bs=4k --ioengine=psync --time_based --runtime=5 --numjobs=1 (--invalidate=0 warm, after reading every asset once)"
    echo "find+stat:   find MNT -printf '%s %m %i\\n' > /dev/null"
    echo "read every:  find MNT -type f -exec cat {} + > /dev/null"
    echo "mount time:  wall time of the mount command until it returns (the filesystem is usable then)"
    echo '```'
    if [ -n "$NOTES" ]; then
        echo
        echo "$NOTES"
    fi
} > "$OUT"
cat "$OUT"
