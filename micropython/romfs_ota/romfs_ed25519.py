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

_K = (
    0x428A2F98D728AE22, 0x7137449123EF65CD, 0xB5C0FBCFEC4D3B2F, 0xE9B5DBA58189DBBC,
    0x3956C25BF348B538, 0x59F111F1B605D019, 0x923F82A4AF194F9B, 0xAB1C5ED5DA6D8118,
    0xD807AA98A3030242, 0x12835B0145706FBE, 0x243185BE4EE4B28C, 0x550C7DC3D5FFB4E2,
    0x72BE5D74F27B896F, 0x80DEB1FE3B1696B1, 0x9BDC06A725C71235, 0xC19BF174CF692694,
    0xE49B69C19EF14AD2, 0xEFBE4786384F25E3, 0x0FC19DC68B8CD5B5, 0x240CA1CC77AC9C65,
    0x2DE92C6F592B0275, 0x4A7484AA6EA6E483, 0x5CB0A9DCBD41FBD4, 0x76F988DA831153B5,
    0x983E5152EE66DFAB, 0xA831C66D2DB43210, 0xB00327C898FB213F, 0xBF597FC7BEEF0EE4,
    0xC6E00BF33DA88FC2, 0xD5A79147930AA725, 0x06CA6351E003826F, 0x142929670A0E6E70,
    0x27B70A8546D22FFC, 0x2E1B21385C26C926, 0x4D2C6DFC5AC42AED, 0x53380D139D95B3DF,
    0x650A73548BAF63DE, 0x766A0ABB3C77B2A8, 0x81C2C92E47EDAEE6, 0x92722C851482353B,
    0xA2BFE8A14CF10364, 0xA81A664BBC423001, 0xC24B8B70D0F89791, 0xC76C51A30654BE30,
    0xD192E819D6EF5218, 0xD69906245565A910, 0xF40E35855771202A, 0x106AA07032BBD1B8,
    0x19A4C116B8D2D0C8, 0x1E376C085141AB53, 0x2748774CDF8EEB99, 0x34B0BCB5E19B48A8,
    0x391C0CB3C5C95A63, 0x4ED8AA4AE3418ACB, 0x5B9CCA4F7763E373, 0x682E6FF3D6B2B8A3,
    0x748F82EE5DEFB2FC, 0x78A5636F43172F60, 0x84C87814A1F0AB72, 0x8CC702081A6439EC,
    0x90BEFFFA23631E28, 0xA4506CEBDE82BDE9, 0xBEF9A3F7B2C67915, 0xC67178F2E372532B,
    0xCA273ECEEA26619C, 0xD186B8C721C0C207, 0xEADA7DD6CDE0EB1E, 0xF57D4F7FEE6ED178,
    0x06F067AA72176FBA, 0x0A637DC5A2C898A6, 0x113F9804BEF90DAE, 0x1B710B35131C471B,
    0x28DB77F523047D84, 0x32CAAB7B40C72493, 0x3C9EBE0A15C9BEBC, 0x431D67C49C100D4C,
    0x4CC5D4BECB3E42B6, 0x597F299CFC657E2A, 0x5FCB6FAB3AD6FAEC, 0x6C44198C4A475817,
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
        t1 = hh + S1 + ch + _K[t] + wt
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
    # [s]B + [k]a, both scalars below 2^253, scanning 2 bits of each at a
    # time (Straus) over a table of [i]B + [j]a for i, j in 0..3.
    b2 = _double(_B)
    a2 = _double(a)
    bs = (_IDENTITY, _B, b2, _add(b2, _B))
    as_ = (_IDENTITY, a, a2, _add(a2, a))
    table = []
    for i in range(4):
        for j in range(4):
            if i == 0:
                table.append(as_[j])
            elif j == 0:
                table.append(bs[i])
            else:
                table.append(_add(bs[i], as_[j]))
    r = _IDENTITY
    first = True
    for shift in range(252, -1, -2):
        if not first:
            r = _double(_double(r))
        idx = (((s >> shift) & 3) << 2) | ((k >> shift) & 3)
        if idx:
            if first:
                r = table[idx]
                first = False
            else:
                r = _add(r, table[idx])
    return r


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
