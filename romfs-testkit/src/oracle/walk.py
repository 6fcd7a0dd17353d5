# MAX_ENTRIES and MAX_TEXT are defined before this (oracle.rs).
LIMIT = MAX_ENTRIES
TEXT = MAX_TEXT

def hx(b):
    return binascii.hexlify(b).decode() if b else '-'

def why(e):
    if isinstance(e, OSError):
        return 'OSError%d' % e.args[0]
    return type(e).__name__

def stat(fs, q):
    try:
        st = fs.stat(q)
        return '%d %d' % (st[0], st[6])
    except Exception as e:
        return '! ' + why(e)

def full(out):
    if out.size > TEXT:
        out.append('LIMIT')
        return True
    return False

def walk(fs, out):
    out.append('M %d' % fs.statvfs(b'/')[2])
    for q in (b'', b'/', b'//'):
        out.append('S %s %s' % (hx(q), stat(fs, q)))
    queue = [b'']
    seen = 0
    i = 0
    while i < len(queue):
        if full(out):
            return
        d = queue[i]
        i += 1
        try:
            ents = [(n, t, s) for n, t, _, s in fs.ilistdir(b'/' + d)]
        except Exception as e:
            out.append('D %s ! %s' % (hx(d), why(e)))
            continue
        try:
            sp = (b'/' + d).decode()
        except Exception:
            sp = None
        if sp is None:
            res = 'nopath'
        else:
            try:
                for _ in fs.ilistdir(sp):
                    pass
                res = 'ok'
            except Exception as e:
                res = why(e)
        out.append('D %s %s %d' % (hx(d), res, len(ents)))
        if res != 'ok' and res != 'nopath':
            out.append('BAD list-str %s %s' % (hx(d), res))
        if seen + len(ents) > LIMIT:
            out.append('LIMIT')
            return
        seen += len(ents)
        for n, t, s in ents:
            out.append('E %s %d %d' % (hx(n), t, s))
        for n, t, s in ents:
            if full(out):
                return
            p = d + b'/' + n if d else n
            qs = [b'/' + p, p, b'/' + p + b'/', b'/' + p + b'~', b'/' + p + b'/~']
            if len(n) > 1:
                qs.append(b'/' + p[:-1])
            first = None
            for q in qs:
                a = stat(fs, q)
                first = first or a
                out.append('S %s %s' % (hx(q), a))
            if first != '%d %d' % (t, s):
                out.append('BAD stat %s' % hx(p))
            try:
                f = fs.open(b'/' + p, 'rb')
                m = memoryview(f)
                head = f.read(64)
                out.append('R %s %d %d' % (hx(p), len(m), binascii.crc32(m)))
                if t != 0x8000 or len(m) != s or head != bytes(m[:64]):
                    out.append('BAD read %s' % hx(p))
            except Exception as e:
                out.append('R %s ! %s' % (hx(p), why(e)))
                if t == 0x8000:
                    out.append('BAD open %s' % hx(p))
            if t == 0x4000:
                queue.append(p)

def mount_and_walk(image, out):
    # Mount `image` as VfsRom and walk it into `out`: the filesystem, or
    # None when mounting failed (said in `out`).
    try:
        fs = vfs.VfsRom(image)
    except Exception as e:
        out.append('M ! ' + why(e))
        return None
    try:
        walk(fs, out)
    except Exception as e:
        out.append('BAD walk ' + why(e))
    return fs
