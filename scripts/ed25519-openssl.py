#!/usr/bin/env python3
"""Check the pure-MicroPython Ed25519 verifier against OpenSSL on many
random keys and messages (CI runs fewer; see tests/tests/ota/ed25519.rs).

Needs CPython's `cryptography` package (OpenSSL) and the unix `micropython`
on PATH (`export PATH="$(scripts/python-venv.sh):$PATH"`).

    python3 scripts/ed25519-openssl.py [COUNT]

Each key signs one random message (OpenSSL, through `cryptography`); the
verifier must accept the signature and refuse, for the same case, S + L
(non-canonical S), one flipped signature bit, one changed message byte and
a small-order R.
"""
import os
import subprocess
import sys
import tempfile
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

L = 2**252 + 27742317777372353535851937790883648493
SMALL_R = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
lines, want = [], []
for n in range(count):
    key = Ed25519PrivateKey.generate()
    pk = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    msg = os.urandom(n % 300)
    sig = key.sign(msg)
    s = int.from_bytes(sig[32:], "little")
    high = sig[:32] + (s + L).to_bytes(32, "little")
    bit = n % 512
    flipped = bytearray(sig)
    flipped[bit // 8] ^= 1 << (bit % 8)
    other = bytearray(msg or b"\0")
    other[n % len(other)] ^= 1
    for sig_, msg_, ok in ((sig, msg, 1), (high, msg, 0), (bytes(flipped), msg, 0),
                           (sig, bytes(other), 0), (SMALL_R + sig[32:], msg, 0)):
        lines.append("%s %s %s" % (pk.hex(), sig_.hex(), msg_.hex()))
        want.append(str(ok))
with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
    f.write("\n".join(lines) + "\n")
t0 = time.time()
out = subprocess.run(
    ["micropython", os.path.join(root, "micropython/tests/ed25519_batch.py"), f.name,
     os.path.join(root, "micropython/romfs_ota")],
    capture_output=True, text=True, check=True).stdout.split()
os.unlink(f.name)
got = out[0]
bad = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
print("%d OpenSSL keys, %d cases, %d valid, %.1f s in MicroPython: %d disagreements"
      % (count, len(want), want.count("1"), time.time() - t0, len(bad) + abs(len(got) - len(want))))
for i in bad[:10]:
    print("disagree:", lines[i], "want", want[i])
sys.exit(1 if bad or len(got) != len(want) else 0)
