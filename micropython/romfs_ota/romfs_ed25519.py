# Ed25519 signature verification (RFC 8032) and SHA-512 (FIPS 180-4) in
# pure MicroPython, for checking update manifests on stock firmware, which
# has no SHA-512 and so no Ed25519. Verification only: every input is
# public, so nothing here needs to run in constant time.
#
# Sources, both MIT/BSD-licensed:
# - SHA-512: the round structure and constants of micropython-lib's
#   hashlib._sha512 (PyPI micropython-hashlib 2.4.0.post5, MIT, ported by
#   Paul Sokolovsky from PyPy, itself from CPython's sha512module.c),
#   rewritten as one loop over a 16-word schedule to allocate less.
# - Ed25519: the arithmetic of RFC 8032 section 6 (the reference code,
#   Simplified BSD licence), with the checks of ed25519-dalek's
#   verify_strict (see verify()).
#
# MicroPython's integers are arbitrary precision on the ports that have
# ROM partitions (MICROPY_LONGINT_IMPL_MPZ).

_M64 = 0xFFFFFFFFFFFFFFFF

# The round constants as bytes (80 x 8, big-endian): read in place from
# a .mpy, where 80 64-bit ints would take heap.
_K = bytes.fromhex(
    "428a2f98d728ae227137449123ef65cdb5c0fbcfec4d3b2fe9b5dba58189dbbc"
    "3956c25bf348b53859f111f1b605d019923f82a4af194f9bab1c5ed5da6d8118"
    "d807aa98a303024212835b0145706fbe243185be4ee4b28c550c7dc3d5ffb4e2"
    "72be5d74f27b896f80deb1fe3b1696b19bdc06a725c71235c19bf174cf692694"
    "e49b69c19ef14ad2efbe4786384f25e30fc19dc68b8cd5b5240ca1cc77ac9c65"
    "2de92c6f592b02754a7484aa6ea6e4835cb0a9dcbd41fbd476f988da831153b5"
    "983e5152ee66dfaba831c66d2db43210b00327c898fb213fbf597fc7beef0ee4"
    "c6e00bf33da88fc2d5a79147930aa72506ca6351e003826f142929670a0e6e70"
    "27b70a8546d22ffc2e1b21385c26c9264d2c6dfc5ac42aed53380d139d95b3df"
    "650a73548baf63de766a0abb3c77b2a881c2c92e47edaee692722c851482353b"
    "a2bfe8a14cf10364a81a664bbc423001c24b8b70d0f89791c76c51a30654be30"
    "d192e819d6ef5218d69906245565a910f40e35855771202a106aa07032bbd1b8"
    "19a4c116b8d2d0c81e376c085141ab532748774cdf8eeb9934b0bcb5e19b48a8"
    "391c0cb3c5c95a634ed8aa4ae3418acb5b9cca4f7763e373682e6ff3d6b2b8a3"
    "748f82ee5defb2fc78a5636f43172f6084c87814a1f0ab728cc702081a6439ec"
    "90befffa23631e28a4506cebde82bde9bef9a3f7b2c67915c67178f2e372532b"
    "ca273eceea26619cd186b8c721c0c207eada7dd6cde0eb1ef57d4f7fee6ed178"
    "06f067aa72176fba0a637dc5a2c898a6113f9804bef90dae1b710b35131c471b"
    "28db77f523047d8432caab7b40c724933c9ebe0a15c9bebc431d67c49c100d4c"
    "4cc5d4becb3e42b6597f299cfc657e2a5fcb6fab3ad6faec6c44198c4a475817"
)

_H0 = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)


def _compress(h, block):
    # One 128-byte block; h is the 8-word state (a list, updated in place).
    w = [int.from_bytes(block[i : i + 8], "big") for i in range(0, 128, 8)]
    a, b, c, d, e, f, g, hh = h
    M = _M64
    for t in range(80):
        if t < 16:
            wt = w[t]
        else:
            x = w[(t - 15) & 15]
            s0 = ((x >> 1) | (x << 63)) ^ ((x >> 8) | (x << 56)) ^ (x >> 7)
            x = w[(t - 2) & 15]
            s1 = ((x >> 19) | (x << 45)) ^ ((x >> 61) | (x << 3)) ^ (x >> 6)
            wt = (w[t & 15] + (s0 & M) + w[(t - 7) & 15] + (s1 & M)) & M
            w[t & 15] = wt
        S1 = (((e >> 14) | (e << 50)) ^ ((e >> 18) | (e << 46)) ^ ((e >> 41) | (e << 23))) & M
        ch = g ^ (e & (f ^ g))
        t1 = hh + S1 + ch + int.from_bytes(_K[8 * t : 8 * t + 8], "big") + wt
        S0 = (((a >> 28) | (a << 36)) ^ ((a >> 34) | (a << 30)) ^ ((a >> 39) | (a << 25))) & M
        maj = ((a | b) & c) | (a & b)
        hh = g
        g = f
        f = e
        e = (d + t1) & M
        d = c
        c = b
        b = a
        a = (t1 + S0 + maj) & M
    h[0] = (h[0] + a) & M
    h[1] = (h[1] + b) & M
    h[2] = (h[2] + c) & M
    h[3] = (h[3] + d) & M
    h[4] = (h[4] + e) & M
    h[5] = (h[5] + f) & M
    h[6] = (h[6] + g) & M
    h[7] = (h[7] + hh) & M


def sha512(data):
    """The 64-byte SHA-512 digest of bytes-like `data`."""
    h = list(_H0)
    n = len(data)
    full = n - n % 128
    mv = memoryview(data)
    for i in range(0, full, 128):
        _compress(h, mv[i : i + 128])
    tail = bytearray(mv[full:])
    tail.append(0x80)
    while len(tail) % 128 != 112:
        tail.append(0)
    tail.extend((n * 8).to_bytes(16, "big"))
    for i in range(0, len(tail), 128):
        _compress(h, tail[i : i + 128])
    out = bytearray()
    for x in h:
        out.extend(x.to_bytes(8, "big"))
    return bytes(out)


# Curve25519 in twisted Edwards form: -x^2 + y^2 = 1 + d x^2 y^2 over GF(p).
_P = (1 << 255) - 19
_L = (1 << 252) + 27742317777372353535851937790883648493
_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
_D2 = 16295367250680780974490674513165176452449235426866156013048779062215315747161
_SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
_BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960
# Extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, x*y = T/Z.
_B = (_BX, _BY, 1, _BX * _BY % _P)
_IDENTITY = (0, 1, 1, 0)


def _pow_builtin(b, e, m):
    return pow(b, e, m)


def _pow_loop(b, e, m):
    # For ports built without 3-argument pow (MICROPY_PY_BUILTINS_POW3).
    r = 1
    b %= m
    while e:
        if e & 1:
            r = r * b % m
        b = b * b % m
        e >>= 1
    return r


try:
    _powmod = _pow_builtin if pow(3, 5, 7) == 5 else _pow_loop
except Exception:
    _powmod = _pow_loop


def _add(p, q):
    # add-2008-hwcd-3 (a = -1), complete: also right for p == q.
    P = _P
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = p[3] * _D2 % P * q[3] % P
    d = 2 * p[2] * q[2] % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _double(p):
    # dbl-2008-hwcd (a = -1).
    P = _P
    x, y, z = p[0], p[1], p[2]
    a = x * x % P
    b = y * y % P
    c = 2 * z * z % P
    h = a + b
    s = x + y
    e = h - s * s % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _neg(p):
    return ((-p[0]) % _P, p[1], p[2], (-p[3]) % _P)


def _is_small_order(p):
    # [8]p is the identity: X == 0 and Y == Z.
    p = _double(_double(_double(p)))
    return p[0] % _P == 0 and (p[1] - p[2]) % _P == 0


def _decode_point(s):
    # RFC 8032 5.1.3, canonical encodings only: y < p, and no x = 0 with
    # the sign bit set. Returns None for anything else.
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    P = _P
    yy = y * y % P
    u = (yy - 1) % P
    v = (_D * yy + 1) % P
    v3 = v * v % P * v % P
    x = u * v3 % P * _powmod(u * v3 % P * v3 % P * v % P, (P - 5) >> 3, P) % P
    vxx = v * x % P * x % P
    if vxx != u:
        if vxx == P - u:
            x = x * _SQRT_M1 % P
        else:
            return None
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _encode_point(p):
    zi = _powmod(p[2], _P - 2, _P)
    x = p[0] * zi % _P
    y = p[1] * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _double_scalar_mul(s, k, a):
    # [s]B + [k]a, both scalars below 2^253, one bit of each at a time
    # (Straus) over a table of a, B and B + a: three points, so that the
    # check fits in a small heap (wider windows need 15).
    table = (None, a, _B, _add(_B, a))
    r = None
    for shift in range(252, -1, -1):
        if r is not None:
            r = _double(r)
        idx = (((s >> shift) & 1) << 1) | ((k >> shift) & 1)
        if idx:
            r = table[idx] if r is None else _add(r, table[idx])
    return _IDENTITY if r is None else r


def verify(public_key, message, signature):
    """True when `signature` (64 bytes) is a valid Ed25519 signature of
    `message` by `public_key` (32 bytes), else False.

    The checks of ed25519-dalek's verify_strict: S must be below the group
    order L (no malleable signatures); R and the public key must be
    canonical encodings of curve points that are not of small order; and
    R must equal the canonical encoding of [S]B - [k]A, k = SHA-512(R || A
    || message) mod L (the cofactorless equation). One difference: dalek
    reads a public key whose y is >= p modulo p, this refuses it.
    """
    if len(public_key) != 32 or len(signature) != 64:
        return False
    r_bytes = bytes(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    a = _decode_point(public_key)
    if a is None or _is_small_order(a):
        return False
    r = _decode_point(r_bytes)
    if r is None or _is_small_order(r):
        return False
    k = int.from_bytes(sha512(r_bytes + bytes(public_key) + bytes(message)), "little") % _L
    return _encode_point(_double_scalar_mul(s, k, _neg(a))) == r_bytes
