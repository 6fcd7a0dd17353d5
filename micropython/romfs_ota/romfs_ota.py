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


# Bytes read from a stream per call: bounds what each read allocates.
_CHUNK = 1024
# Erase units up to this size are assembled in RAM, so blocks the unit
# already holds are kept without fetching them; larger ones (stm32
# internal flash: 128 KiB sectors) are written block by block after their
# erase, and what they held is fetched again.
RAM_UNIT = 16384


def _read_into(read, buf, what):
    # Fill the buffer (bytearray or memoryview) from read(n).
    n = len(buf)
    got = 0
    while got < n:
        try:
            b = read(min(n - got, _CHUNK))
        except OSError as e:
            raise OtaError("%s: %s after %d of %d bytes" % (what, e, got, n))
        if not b:
            raise OtaError("%s: the stream ended after %d of %d bytes" % (what, got, n))
        buf[got : got + len(b)] = b
        got += len(b)


def _read_exact(read, n, what):
    out = bytearray(n)
    _read_into(read, out, what)
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

    def get_into(self, start, buf):
        end = start + len(buf)
        status, length, s = _get(self.url, start, end)
        try:
            if status != 206 or length != end - start:
                raise OtaError("%s: answered %d to a Range request" % (self.url, status))
            _read_into(s.read, buf, self.url)
        finally:
            s.close()
        self.stats.d["downloaded"] += len(buf)


class _StreamSource:
    # The image once, front to back (update_from, or a server without Range).
    stream = True

    def __init__(self, read, what, stats):
        self.read = read
        self.pos = 0
        self.what = what
        self.stats = stats

    def get_into(self, start, buf):
        if start < self.pos:
            raise OtaError("%s: the stream is past offset %d" % (self.what, start))
        while self.pos < start:
            # Bytes of units already in place: read and dropped.
            n = min(start - self.pos, _CHUNK)
            _read_into(self.read, bytearray(n), self.what)
            self.pos += n
            self.stats.d["downloaded"] += n
        _read_into(self.read, buf, self.what)
        self.stats.d["downloaded"] += len(buf)
        self.pos = start + len(buf)


# --- the update itself ------------------------------------------------


def _plan(fl, m, stats, copies):
    # Which new blocks the partition holds in place, and where it holds the
    # others (a block index for copies). Found by searching the manifest's
    # table for each old block's hash: no index of the old blocks in RAM.
    n = m.blocks
    length = m.length
    scan = min(fl.size // BLOCK, max(n, (_romfs_len(fl) + BLOCK - 1) // BLOCK))
    inplace = [False] * n
    source = [None] * n
    table = m.table
    for j in range(scan):
        data = fl.read(j * BLOCK, BLOCK)
        h = _sha(data)[:8]
        if copies:
            k = table.find(h)
            while k >= 0:
                if k % 8 == 0 and source[k // 8] is None:
                    source[k // 8] = j
                k = table.find(h, k + 1)
        if j < n:
            short = min(BLOCK, length - j * BLOCK)
            if short < BLOCK:
                h = _sha(data[:short])[:8]
            inplace[j] = h == m.block_hash(j)
    for i in range(n):
        if inplace[i]:
            source[i] = None
    return inplace, source


def _fill(fl, m, first, last, buf, base, inplace, source, src, stats):
    # Blocks [first, last) of the new image into buf (whose byte 0 is image
    # offset `base`), each checked against the manifest: copied from the
    # partition where it holds them, else fetched, consecutive ones at once.
    length = m.length
    want = []
    for i in range(first, last):
        a = i * BLOCK
        b = min(a + BLOCK, length)
        j = None if src.stream else (i if inplace[i] else source[i])
        if j is not None:
            data = fl.read(j * BLOCK, b - a)
            if _sha(data)[:8] == m.block_hash(i):
                buf[a - base : b - base] = data
                stats.d["skipped" if j == i else "copied"] += 1
                continue
        want.append(i)
    k = 0
    while k < len(want):
        r = k
        while r + 1 < len(want) and want[r + 1] == want[r] + 1:
            r += 1
        a = want[k] * BLOCK
        b = min((want[r] + 1) * BLOCK, length)
        mv = memoryview(buf)[a - base : b - base]
        src.get_into(a, mv)
        for i in range(want[k], want[r] + 1):
            x = i * BLOCK
            y = min(x + BLOCK, length)
            if _sha(mv[x - a : y - a])[:8] != m.block_hash(i):
                raise OtaError("block %d as received does not match the manifest" % i)
            stats.d["fetched"] += 1
        k = r + 1


def _verify(fl, m, off, n):
    # What the partition holds at [off, off + n) is the manifest's.
    for x in range(off, off + n, BLOCK):
        y = min(x + BLOCK, off + n)
        if _sha(fl.read(x, y - x))[:8] != m.block_hash(x // BLOCK):
            raise OtaError("partition offset 0x%x does not hold what was written" % x)


def _write(fl, m, off, buf, erase, header_last):
    # Erase (when asked) and program buf at off, then read it back.
    if erase and fl.mode == "block":
        e = fl.erase_unit
        fl.erase(off, max(e, (len(buf) + e - 1) // e * e))
    p = fl.prog if header_last else 0
    mv = memoryview(buf)
    if len(buf) > p:
        fl.program(off + p, mv[p:])
    if p:
        fl.program(off, mv[:p])
    _verify(fl, m, off, len(buf))


def _apply(fl, m, make_src, stats, progress, same_generation, streamed):
    length = m.length
    if length > fl.size:
        raise OtaError("the image (%d bytes) is larger than the partition (%d bytes)" % (length, fl.size))
    if fl.mode == "ro":
        raise OtaError("this firmware cannot write its ROM partition")
    unit = fl.block
    if unit % BLOCK:
        raise OtaError("erase unit %d is not a multiple of 4 KiB" % unit)
    inplace, source = _plan(fl, m, stats, not streamed)
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
    # The header's unit (or, for units too large for RAM, its block) is
    # gathered before anything is written, held in RAM, and written last.
    whole = unit <= RAM_UNIT or fl.mode != "block"
    held = bytearray(min(unit if whole else BLOCK, length))
    _fill(fl, m, 0, (len(held) + BLOCK - 1) // BLOCK, held, 0, inplace, source, src, stats)
    if fl.mode == "prefix":
        e = fl.erase_unit
        fl.erase(0, (length + e - 1) // e * e)
    else:
        fl.invalidate()
    rest = [u for u in todo if u]
    if not whole:
        # The rest of the header's unit, erased by invalidate().
        rest.insert(0, 0)
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
    buf = bytearray(min(unit if whole else BLOCK, length))
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
        off = pick * unit
        end = min(off + unit, length)
        if whole:
            mv = memoryview(buf)[: end - off]
            _fill(fl, m, off // BLOCK, (end + BLOCK - 1) // BLOCK, mv, off, inplace, source, src, stats)
            _write(fl, m, off, mv, True, False)
        else:
            if pick:
                e = fl.erase_unit
                fl.erase(off, (end - off + e - 1) // e * e)
            # Block by block: what this unit held is gone, so its blocks
            # are copied from elsewhere or fetched.
            for i in range(max(off, BLOCK) // BLOCK, (end + BLOCK - 1) // BLOCK):
                a = i * BLOCK
                mv = memoryview(buf)[: min(BLOCK, length - a)]
                inplace[i] = False
                _fill(fl, m, i, i + 1, mv, a, inplace, source, src, stats)
                _write(fl, m, a, mv, False, False)
        stats.d["written"] += 1
        done += 1
        if progress:
            progress(done, len(todo))
    del buf
    h = hashlib.sha256(held)
    for x in range(len(held), length, BLOCK):
        h.update(fl.read(x, min(BLOCK, length - x)))
    if h.digest() != m.sha:
        raise OtaError("the image's SHA-256 does not match the manifest: the partition mounts nothing; run the update again")
    _write(fl, m, 0, held, whole, True)
    if whole:
        stats.d["written"] += 1
    if progress:
        progress(len(todo), len(todo))


def _run(m, make_src, key, product, device, state, progress, stats, t0, index, streamed=False):
    # update() checked the manifest already (key=None here then).
    floor = _floor(state)
    _check(m, key, product, floor)
    fl = romfs_flash.Flash(index, device)
    try:
        _apply(fl, m, make_src, stats, progress, m.generation == floor, streamed)
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
    del raw
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
    src = lambda: _StreamSource(read, "the stream", stats)
    return _run(m, src, key, product, device, state, progress, stats, t0, index, True)
