#!/usr/bin/env python3
"""Stable layout and delta updates, side by side with detools and bsdiff4.

    python3 bench/layout.py WORKDIR [ROMFS]

Three cases on the 400-module app (bench/corpora.py pyapp, stored as .py
with --no-mpy so the run needs no compiler), each built fresh (default
layout) and stable (--stable, then --base): erase blocks (4 KiB) changed
OLD -> NEW, and bytes a device must receive: the full image, `romfs diff`,
detools (sequential patches with heatshrink: bsdiff and match-blocks) and bsdiff4.
"""
import os, random, shutil, subprocess, sys

sys.path.insert(0, os.path.dirname(__file__))
import corpora  # noqa: E402

BLOCK = 4096


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def blocks_changed(a, b):
    n = (max(len(a), len(b)) + BLOCK - 1) // BLOCK
    return sum(a[i * BLOCK:(i + 1) * BLOCK] != b[i * BLOCK:(i + 1) * BLOCK] for i in range(n))


def dep_release(root, version):
    """A 15-module package; release 2 changes every module a little and
    rewrites some functions, as a dependency upgrade does."""
    d = os.path.join(root, "lib", "dep")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i in range(15):
        r = random.Random(1000 + i)
        lines = ["# dep module %d, release %d" % (i, version), "VERSION = %d" % version, ""]
        for j in range(r.randint(6, 20)):
            k = j * 7 + (version if (i + j) % 4 == 0 else 0)
            lines += ["def g%d(x):" % j, "    return x * %d + %d" % (k, j), ""]
        if version == 2 and i % 3 == 0:
            lines += ["def added(x):", "    return [x] * %d" % i, ""]
        open(os.path.join(d, "m%02d.py" % i), "w").write("\n".join(lines) + "\n")


def main():
    work, romfs = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "target/release/romfs")
    import bsdiff4
    tmp, app = corpora.editable_copy(work, "pyapp", corpora.pyapp)
    dep_release(app, 1)
    # The module of median size (the largest ones are over 9 KiB of source:
    # grown by 1 KiB they span 3 erase blocks by themselves).
    mods = sorted((os.path.getsize(os.path.join(app, "lib", d, f)), os.path.join(app, "lib", d, f))
                  for d in os.listdir(os.path.join(app, "lib")) if d.startswith("pkg")
                  for f in os.listdir(os.path.join(app, "lib", d)))
    victim = mods[len(mods) // 2][1]
    print("victim: %s, %d bytes" % (os.path.relpath(victim, app), mods[len(mods) // 2][0]))
    orig = open(victim).read()

    def edit_same():
        text = orig.replace("s = 0", "s = 1", 1)
        assert len(text) == len(orig)
        open(victim, "w").write(text)

    def grow():
        open(victim, "w").write(orig + "# " + "x" * 1021 + "\n")

    cases = [
        ("one module edited (same size)", edit_same),
        ("one module grown by 1 KiB", grow),
        ("15-module package upgraded", lambda: dep_release(app, 2)),
    ]
    rows = []
    for name, change in cases:
        open(victim, "w").write(orig)
        dep_release(app, 1)
        p = lambda n: os.path.join(tmp, n)
        run(romfs, "build", "--no-mpy", "-q", app, "-o", p("old-fresh.img"))
        run(romfs, "build", "--no-mpy", "-q", "--stable", app, "-o", p("old-stable.img"))
        change()
        run(romfs, "build", "--no-mpy", "-q", app, "-o", p("new-fresh.img"))
        run(romfs, "build", "--no-mpy", "-q", "--base", p("old-stable.img"), app, "-o", p("new-stable.img"))
        rd = lambda n: open(p(n), "rb").read()
        of, nf, os_, ns = rd("old-fresh.img"), rd("new-fresh.img"), rd("old-stable.img"), rd("new-stable.img")
        run(romfs, "diff", p("old-stable.img"), p("new-stable.img"), "-o", p("stable.delta"))
        run(romfs, "diff", p("old-fresh.img"), p("new-fresh.img"), "-o", p("fresh.delta"))
        sizes = {}
        for kind, o, n in (("stable", "old-stable.img", "new-stable.img"), ("fresh", "old-fresh.img", "new-fresh.img")):
            for algo in ("bsdiff", "match-blocks"):
                out = p("%s-%s.detools" % (kind, algo))
                run(os.path.join(os.path.dirname(sys.executable), "detools"), "create_patch",
                    "--compression", "heatshrink", "--patch-type", "sequential",
                    "--algorithm", algo, p(o), p(n), out)
                sizes[(kind, algo)] = os.path.getsize(out)
            sizes[(kind, "bsdiff4")] = len(bsdiff4.diff(rd(o), rd(n)))
        rows.append((name, blocks_changed(of, nf), blocks_changed(os_, ns), len(nf), len(ns),
                     len(rd("fresh.delta")), len(rd("stable.delta")),
                     sizes[("fresh", "bsdiff")], sizes[("stable", "bsdiff")],
                     sizes[("fresh", "match-blocks")], sizes[("stable", "match-blocks")],
                     sizes[("fresh", "bsdiff4")], sizes[("stable", "bsdiff4")]))
    print("| case | blocks changed, fresh | blocks changed, --base | full image, fresh / stable | romfs diff, fresh / stable | detools bsdiff+heatshrink, fresh / stable | detools match-blocks+heatshrink, fresh / stable | bsdiff4, fresh / stable |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %d | %d | %d / %d | %d / %d | %d / %d | %d / %d | %d / %d |" % r)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
