#!/usr/bin/env python3
"""Bytes over the air for a one-module change, romfs_ota against detools and
bsdiff4, in one run.

    python3 bench/ota-bytes.py WORKDIR [ROMFS]

The 400-module app of bench/corpora.py (pyapp, stored as .py with --no-mpy),
published with `romfs publish APP -o DIR`; then one module (the one of
median size) is edited in place, or grown by 16 bytes or by 1 KiB, and
published again into the same DIR, which lays it out against the first
(the default; `--fresh` into a copy of DIR for the fresh-layout column).
What romfs_ota downloads is what the device does: the manifest, the
one-byte Range probe, and the 4 KiB blocks of the new image that the old
one holds nowhere (the others are skipped or copied on the device).
detools (sequential, heatshrink: bsdiff and hdiffpatch match-blocks) and
bsdiff4 patch the same two images. Needs `pip install detools bsdiff4`.
"""
import glob, io, os, shutil, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpora  # noqa: E402

BLOCK = 4096


def published(d):
    m = open(os.path.join(d, "ota.manifest"), "rb").read()
    name = m[56:64].hex() + ".romfs"
    return m, open(os.path.join(d, name), "rb").read()


def ota_bytes(old, manifest, new):
    held = {old[i:i + BLOCK] for i in range(0, len(old), BLOCK)}
    fetch = [i for i in range(0, len(new), BLOCK)
             if new[i:i + BLOCK] != old[i:i + BLOCK] and new[i:i + BLOCK] not in held]
    return len(manifest) + 1 + sum(len(new[i:i + BLOCK]) for i in fetch), len(fetch)


def main():
    import bsdiff4, detools
    work, romfs = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "target/release/romfs")
    tmp, app = corpora.editable_copy(work, "pyapp", corpora.pyapp)
    mods = sorted((os.path.getsize(f), f) for f in glob.glob(os.path.join(app, "lib", "pkg*", "*.py")))
    victim = mods[len(mods) // 2][1]
    orig = open(victim).read()
    print("victim: %s, %d bytes" % (os.path.relpath(victim, app), len(orig)))

    def publish(d, generation, *extra):
        subprocess.run([romfs, "publish", app, "-o", d, "--no-mpy", "-q",
                        "--generation", str(generation), *extra], check=True)

    def edit_same():
        text = orig.replace("s = 0", "s = 1", 1)
        assert len(text) == len(orig)
        open(victim, "w").write(text)

    cases = [
        ("edited in place", edit_same),
        ("grown by 16 B", lambda: open(victim, "w").write(orig + "#" * 15 + "\n")),
        ("grown by 1 KiB", lambda: open(victim, "w").write(orig + "#" * 1023 + "\n")),
    ]
    print("| change | new image | romfs_ota, stable (blocks) | romfs_ota, --fresh (blocks) "
          "| detools bsdiff+heatshrink | detools match-blocks | bsdiff4 | stable / detools bsdiff |")
    print("|---|---|---|---|---|---|---|---|")
    for name, change in cases:
        open(victim, "w").write(orig)
        base = os.path.join(tmp, "www")
        shutil.rmtree(base, ignore_errors=True)
        publish(base, 1)
        _, old = published(base)
        fresh = os.path.join(tmp, "www-fresh")
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(base, fresh)
        change()
        publish(base, 2)
        publish(fresh, 2, "--fresh")
        manifest, new = published(base)
        ota, nb = ota_bytes(old, manifest, new)
        fmanifest, fnew = published(fresh)
        fota, fnb = ota_bytes(old, fmanifest, fnew)
        out = io.BytesIO()
        detools.create_patch(io.BytesIO(old), io.BytesIO(new), out, compression="heatshrink")
        det = len(out.getvalue())
        out = io.BytesIO()
        # match-blocks maps its inputs: files, not buffers.
        for n, data in (("old.img", old), ("new.img", new)):
            open(os.path.join(tmp, n), "wb").write(data)
        with open(os.path.join(tmp, "old.img"), "rb") as fa, open(os.path.join(tmp, "new.img"), "rb") as fb:
            detools.create_patch(fa, fb, out, compression="heatshrink",
                                 patch_type="hdiffpatch", algorithm="match-blocks")
        det_mb = len(out.getvalue())
        bs = len(bsdiff4.diff(old, new))
        print("| %s | %d | %d (%d) | %d (%d) | %d | %d | %d | %.2fx |"
              % (name, len(new), ota, nb, fota, fnb, det, det_mb, bs, ota / det))


if __name__ == "__main__":
    main()
