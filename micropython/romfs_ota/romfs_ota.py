# romfs_ota: over-the-air updates of a MicroPython ROM partition on stock
# firmware, from a folder written by `romfs publish` (FORMAT.md section 7).
#
#   import romfs_ota
#   romfs_ota.update("http://host/app/ota.manifest", key=PUBLIC_KEY, product="board-x")
#
# Order of work, so that a power cut at any point leaves a partition that
# mounts nothing or the new image, and a rerun resumes:
#   1. fetch the manifest; refuse a wrong product, a generation below the
#      floor (or equal to it with other bytes), a bad signature: nothing is
#      written before this;
#   2. hash the partition's 4 KiB blocks: blocks already in place are
#      skipped, blocks held elsewhere are copied on the device, the rest are
#      fetched (HTTP Range; one streamed GET when the server ignores Range);
#   3. invalidate the header, write every other unit, check each block;
#   4. check the SHA-256 of the whole image, then write the first unit with
#      its first program unit last; then raise the generation floor.
# Writes go through romfs_flash (the port-aware write layer romfs deploy
# uses too).
import hashlib
import time

import romfs_flash

BLOCK = 4096
_HDR = 128
_TABLE = 192
_MAGIC = b"ROMFSOTA"
STATE = "/romfs_ota.gen"
TIMEOUT = 10


class OtaError(Exception):
    pass


def _sha(data):
    return hashlib.sha256(data).digest()


class Manifest:
    def __init__(self, head, table):
        if len(head) < _TABLE or head[:8] != _MAGIC:
            raise OtaError("not a romfs OTA manifest")
        if head[8] != 1 or head[9] != 12 or head[10] != 8:
            raise OtaError("manifest version %d is not supported" % head[8])
        self.head = bytes(head[:_TABLE])
        self.signed = head[11] & 1
        self.length = int.from_bytes(head[12:16], "little")
        self.generation = int.from_bytes(head[16:24], "little")
        self.product = bytes(head[24:56]).rstrip(b"\0").decode()
        self.sha = bytes(head[56:88])
        self.table_sha = bytes(head[88:120])
        self.blocks = (self.length + BLOCK - 1) // BLOCK
        self.table = table

    def table_len(self):
        return self.blocks * 8

    def set_table(self, table):
        if len(table) != self.table_len() or _sha(table) != self.table_sha:
            raise OtaError("the manifest's block table does not match its header")
        self.table = bytes(table)

    def block_hash(self, i):
        return self.table[8 * i : 8 * i + 8]

    def image_name(self):
        return "".join("%02x" % b for b in self.sha[:8]) + ".romfs"


def _floor(state):
    # state=None: no floor kept here (the caller checks generations).
    if state is None:
        return -1
    try:
        with open(state) as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


def _set_floor(state, gen):
    if state is None:
        return
    tmp = state + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(gen))
    import os

    os.rename(tmp, state)


def _check(m, key, product, floor):
    # Everything that must hold before anything is written.
    if product is not None and m.product != product:
        raise OtaError("the manifest is for product %r, this device is %r" % (m.product, product))
    if m.generation < floor:
        raise OtaError("generation %d is older than this device's %d" % (m.generation, floor))
    if key is not None:
        if not m.signed:
            raise OtaError("the manifest is not signed")
        import romfs_ed25519

        if not romfs_ed25519.verify(key, m.head[:_HDR], m.head[_HDR:_TABLE]):
            raise OtaError("bad signature: the manifest was not signed by this key")


def _romfs_len(fl):
    # The length of the image the partition holds now, or 0.
    h = bytes(fl.read(0, 16))
    if h[:3] != b"\xd2\xcd\x31":
        return 0
    n = 0
    for i in range(3, 16):
        n = (n << 7) | (h[i] & 0x7F)
        if not h[i] & 0x80:
            return i + 1 + n
    return 0


# --- where fetched bytes come from ------------------------------------


def _split(url):
    if url.startswith("http://"):
        tls, rest, port = False, url[7:], 80
    elif url.startswith("https://"):
        tls, rest, port = True, url[8:], 443
    else:
        raise OtaError("%s: only http:// and https:// URLs" % url)
    host, _, path = rest.partition("/")
    if ":" in host:
        host, p = host.split(":")
        port = int(p)
    return tls, host, port, "/" + path


def _get(url, first=None, last=None):
    # One GET; returns (status, content length, open socket at the body).
    import socket

    tls, host, port, path = _split(url)
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    try:
        s.settimeout(TIMEOUT)
        s.connect(ai[-1])
        if tls:
            import ssl

            s = ssl.wrap_socket(s, server_hostname=host)
        req = "GET %s HTTP/1.0\r\nHost: %s\r\n" % (path, host)
        if first is not None:
            req += "Range: bytes=%d-%d\r\n" % (first, last - 1)
        s.write(req + "Connection: close\r\n\r\n")
        line = s.readline()
        parts = line.split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise OtaError("%s: not an HTTP answer: %r" % (url, line[:40]))
        status = int(parts[1])
        length = None
        while True:
            h = s.readline()
            if not h or h == b"\r\n":
                break
            k, _, v = h.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v.strip())
            elif k == b"transfer-encoding" and v.strip().lower() != b"identity":
                raise OtaError("%s: chunked answers are not supported" % url)
        return status, length, s
    except OSError as e:
        s.close()
        raise OtaError("%s: %s" % (url, e))
    except Exception:
        s.close()
        raise


def _read_exact(read, n, what):
    out = bytearray()
    while len(out) < n:
        try:
            b = read(n - len(out))
        except OSError as e:
            raise OtaError("%s: %s after %d of %d bytes" % (what, e, len(out), n))
        if not b:
            raise OtaError("%s: the stream ended after %d of %d bytes" % (what, len(out), n))
        out.extend(b)
    return out


class _Stats:
    def __init__(self):
        self.d = {"copied": 0, "fetched": 0, "skipped": 0, "written": 0, "downloaded": 0, "up_to_date": False}


class _RangeSource:
    # Any block range, one Range request each.
    stream = False

    def __init__(self, url, stats):
        self.url = url
        self.stats = stats

    def get(self, start, end):
        status, length, s = _get(self.url, start, end)
        try:
            if status != 206 or length != end - start:
                raise OtaError("%s: answered %d to a Range request" % (self.url, status))
            data = _read_exact(s.read, end - start, self.url)
        finally:
            s.close()
        self.stats.d["downloaded"] += len(data)
        return data


class _StreamSource:
    # The image once, front to back (update_from, or a server without Range).
    stream = True

    def __init__(self, read, what, stats):
        self.read = read
        self.pos = 0
        self.what = what
        self.stats = stats

    def get(self, start, end):
        if start < self.pos:
            raise OtaError("%s: the stream is past offset %d" % (self.what, start))
        if start > self.pos:
            _read_exact(self.read, start - self.pos, self.what)
            self.stats.d["downloaded"] += start - self.pos
        data = _read_exact(self.read, end - start, self.what)
        self.stats.d["downloaded"] += end - start
        self.pos = end
        return data


# --- the update itself ------------------------------------------------


def _plan(fl, m, stats):
    n = m.blocks
    length = m.length
    scan = min(fl.size // BLOCK, max(n, (_romfs_len(fl) + BLOCK - 1) // BLOCK))
    where = {}
    inplace = [False] * n
    for j in range(scan):
        data = fl.read(j * BLOCK, BLOCK)
        h = _sha(data)[:8]
        if h not in where:
            where[h] = j
        if j < n:
            short = min(BLOCK, length - j * BLOCK)
            if short < BLOCK:
                h = _sha(data[:short])[:8]
            inplace[j] = h == m.block_hash(j)
    source = [None] * n
    for i in range(n):
        if not inplace[i]:
            source[i] = where.get(m.block_hash(i))
    return inplace, source


def _assemble(fl, m, u, unit, inplace, source, src, stats):
    # The new bytes of unit u, every block checked against the manifest.
    length = m.length
    base = u * unit
    end = min(base + unit, length)
    buf = bytearray(b"\xff" * (end - base))
    first = base // BLOCK
    last = (end + BLOCK - 1) // BLOCK
    want = []
    for i in range(first, last):
        a = i * BLOCK
        b = min(a + BLOCK, length)
        data = None
        if not src.stream:
            j = i if inplace[i] else source[i]
            if j is not None:
                data = fl.read(j * BLOCK, b - a)
                if _sha(data)[:8] != m.block_hash(i):
                    data = None
                elif inplace[i]:
                    stats.d["skipped"] += 1
                else:
                    stats.d["copied"] += 1
        if data is None:
            want.append(i)
        else:
            buf[a - base : b - base] = data
    # Fetch the rest in runs of consecutive blocks.
    k = 0
    while k < len(want):
        r = k
        while r + 1 < len(want) and want[r + 1] == want[r] + 1:
            r += 1
        a = want[k] * BLOCK
        b = min((want[r] + 1) * BLOCK, length)
        data = src.get(a, b)
        for i in range(want[k], want[r] + 1):
            x = i * BLOCK
            y = min(x + BLOCK, length)
            if _sha(data[x - a : y - a])[:8] != m.block_hash(i):
                raise OtaError("block %d as received does not match the manifest" % i)
            stats.d["fetched"] += 1
        buf[a - base : b - base] = data
        k = r + 1
    return buf


def _write_unit(fl, m, off, buf, header_last):
    if fl.mode == "block":
        fl.erase(off, max(fl.erase_unit, (len(buf) + fl.erase_unit - 1) // fl.erase_unit * fl.erase_unit))
    p = fl.prog if header_last else 0
    if len(buf) > p:
        fl.program(off + p, memoryview(buf)[p:])
    if p:
        fl.program(off, memoryview(buf)[:p])
    back = fl.read(off, len(buf))
    for x in range(0, len(buf), BLOCK):
        y = min(x + BLOCK, len(buf))
        if _sha(back[x:y])[:8] != m.block_hash((off + x) // BLOCK):
            raise OtaError("partition offset 0x%x does not hold what was written" % (off + x))


def _apply(fl, m, make_src, stats, progress, same_generation):
    length = m.length
    if length > fl.size:
        raise OtaError("the image (%d bytes) is larger than the partition (%d bytes)" % (length, fl.size))
    if fl.mode == "ro":
        raise OtaError("this firmware cannot write its ROM partition")
    unit = fl.block
    if unit % BLOCK:
        raise OtaError("erase unit %d is not a multiple of 4 KiB" % unit)
    inplace, source = _plan(fl, m, stats)
    units = (length + unit - 1) // unit
    todo = [u for u in range(units) if not all(inplace[u * unit // BLOCK : min((u + 1) * unit // BLOCK, m.blocks)])]
    if not todo:
        h = hashlib.sha256()
        for x in range(0, length, BLOCK):
            h.update(fl.read(x, min(BLOCK, length - x)))
        if h.digest() == m.sha:
            stats.d["skipped"] = m.blocks
            stats.d["up_to_date"] = True
            return
        todo = list(range(units))
        inplace = [False] * m.blocks
    if same_generation:
        raise OtaError("generation %d is what this device has: not newer" % m.generation)
    stats.d["skipped"] = sum(1 for i in range(m.blocks) if i * BLOCK // unit not in todo)
    src = make_src()
    if fl.mode == "prefix":
        # Only [0, n) can be erased: no copies; erase once, then program.
        inplace = [False] * m.blocks
        source = [None] * m.blocks
        todo = list(range(units))
    # The first unit (the header's) is gathered before anything is
    # written, held in RAM, and written last.
    buf0 = _assemble(fl, m, 0, unit, inplace, source, src, stats)
    if fl.mode == "prefix":
        e = fl.erase_unit
        fl.erase(0, (length + e - 1) // e * e)
    else:
        fl.invalidate()
    rest = [u for u in todo if u]
    # Units whose old contents other units copy from are written after them.
    need = {}
    readers = {}
    for u in rest:
        s = set()
        for i in range(u * unit // BLOCK, min((u + 1) * unit // BLOCK, m.blocks)):
            if source[i] is not None:
                v = source[i] * BLOCK // unit
                if v != u:
                    s.add(v)
        need[u] = s
        for v in s:
            readers[v] = readers.get(v, 0) + 1
    done = 0
    while rest:
        pick = rest[0]
        if not src.stream:
            for u in rest:
                if not readers.get(u):
                    pick = u
                    break
        rest.remove(pick)
        for v in need[pick]:
            readers[v] -= 1
        buf = _assemble(fl, m, pick, unit, inplace, source, src, stats)
        _write_unit(fl, m, pick * unit, buf, False)
        stats.d["written"] += 1
        done += 1
        if progress:
            progress(done, len(todo))
    h = hashlib.sha256(buf0)
    for x in range(len(buf0), length, BLOCK):
        h.update(fl.read(x, min(BLOCK, length - x)))
    if h.digest() != m.sha:
        raise OtaError("the image's SHA-256 does not match the manifest: the partition mounts nothing; run the update again")
    _write_unit(fl, m, 0, buf0, True)
    stats.d["written"] += 1
    if progress:
        progress(len(todo), len(todo))


def _run(m, make_src, key, product, device, state, progress, stats, t0, index):
    # update() checked the manifest already (key=None here then).
    floor = _floor(state)
    _check(m, key, product, floor)
    fl = romfs_flash.Flash(index, device)
    try:
        _apply(fl, m, make_src, stats, progress, m.generation == floor)
    except romfs_flash.FlashError as e:
        raise OtaError("flash %s failed at partition offset 0x%x: %r" % e.args)
    if m.generation > floor:
        _set_floor(state, m.generation)
    stats.d["time_ms"] = time.ticks_diff(time.ticks_ms(), t0)
    return stats.d


def update(url, *, key=None, product=None, device=None, progress=None, state=STATE, index=0):
    """Bring ROM partition `index` (or block device `device`) to the image
    published at `url` (an ota.manifest URL). Returns a dict: blocks
    copied, fetched, skipped, units written, bytes downloaded, time_ms."""
    t0 = time.ticks_ms()
    stats = _Stats()
    status, length, s = _get(url)
    try:
        if status != 200 or length is None or length < _TABLE or length > _TABLE + 8 * (1 << 20):
            raise OtaError("%s: answered %d (length %s)" % (url, status, length))
        raw = _read_exact(s.read, length, url)
    finally:
        s.close()
    stats.d["downloaded"] += length
    m = Manifest(raw, None)
    m.set_table(raw[_TABLE:])
    _check(m, key, product, _floor(state))
    image_url = url[: url.rfind("/") + 1] + m.image_name()
    opened = []

    def make_src():
        # Does the server honour Range? Ask for one byte; if it answers 200
        # with the whole file, stream that answer once.
        status, length, s = _get(image_url, 0, 1)
        s.close()
        if status == 206:
            stats.d["downloaded"] += 1
            return _RangeSource(image_url, stats)
        if status != 200:
            raise OtaError("%s: answered %d" % (image_url, status))
        status, length, s = _get(image_url)
        opened.append(s)
        if status != 200 or length != m.length:
            raise OtaError("%s: answered %d (length %s, manifest says %d)" % (image_url, status, length, m.length))
        return _StreamSource(s.read, image_url, stats)

    try:
        # Checked above: the signature is not verified twice.
        return _run(m, make_src, None, product, device, state, progress, stats, t0, index)
    finally:
        for s in opened:
            s.close()


def update_from(read, *, key=None, product=None, device=None, progress=None, state=STATE, index=0):
    """The same from a stream carrying the manifest then the image
    (`read(n)` returns up to n bytes; b'' at the end)."""
    t0 = time.ticks_ms()
    stats = _Stats()
    head = _read_exact(read, _TABLE, "the stream")
    m = Manifest(head, None)
    m.set_table(_read_exact(read, m.table_len(), "the stream"))
    stats.d["downloaded"] += _TABLE + m.table_len()
    return _run(m, lambda: _StreamSource(read, "the stream", stats), key, product, device, state, progress, stats, t0, index)
