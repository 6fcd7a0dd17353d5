# Bytes over the air for a one-module change: romfs_ota (manifest, 1-byte Range
# probe, the 4 KiB blocks the device does not hold) against a detools patch
# (bsdiff + heatshrink; hdiffpatch match-blocks) and bsdiff4 of the same two
# images. Needs `pip install detools bsdiff4`. Run from a folder holding
# b/w1, b/w2, b/w3 written by `romfs publish` (see BENCHMARKS.md).
import glob, io, sys, bsdiff4, detools, os
def img(d): return open(glob.glob(d + '/*.romfs')[0], 'rb').read()
a = img('b/w1')
for name, d in (('same-length change', 'b/w2'), ('module grows 16 B', 'b/w3')):
    b = img(d)
    # romfs_ota: manifest + 1-byte probe + changed 4 KiB blocks (same place)
    n = (len(b) + 4095) // 4096
    changed = [i for i in range(n) if a[i*4096:(i+1)*4096] != b[i*4096:(i+1)*4096]]
    held = {a[i*4096:(i+1)*4096] for i in range((len(a)+4095)//4096)}
    fetch = [i for i in changed if b[i*4096:(i+1)*4096] not in held]
    ota = os.path.getsize(d + '/ota.manifest') + 1 + sum(len(b[i*4096:(i+1)*4096]) for i in fetch)
    out = io.BytesIO()
    detools.create_patch(io.BytesIO(a), io.BytesIO(b), out, compression='heatshrink')
    det = len(out.getvalue())
    out = io.BytesIO()
    fa, fb = open(glob.glob('b/w1/*.romfs')[0], 'rb'), open(glob.glob(d + '/*.romfs')[0], 'rb')
    detools.create_patch(fa, fb, out, compression='heatshrink', patch_type='hdiffpatch', algorithm='match-blocks')
    det_mb = len(out.getvalue())
    bs = len(bsdiff4.diff(a, b))
    print('| %s | %d | %d (%d blocks) | %d | %d | %d | %.1fx |' % (name, len(b), ota, len(fetch), det, det_mb, bs, ota / det))
