# Reads "public_key signature message" lines (hex) from the file named by
# the first argument and prints one verdict per line: 1 (valid) or 0, then
# END. Run with the unix port, from this folder's parent's romfs_ota/.
import sys
import binascii

sys.path.insert(0, sys.argv[2] if len(sys.argv) > 2 else "../romfs_ota")
import romfs_ed25519

out = []
with open(sys.argv[1]) as f:
    for line in f:
        parts = line.split()
        if not parts:
            continue
        pk, sig = binascii.unhexlify(parts[0]), binascii.unhexlify(parts[1])
        msg = binascii.unhexlify(parts[2]) if len(parts) > 2 else b""
        out.append("1" if romfs_ed25519.verify(pk, msg, sig) else "0")
print("".join(out))
print("END")
