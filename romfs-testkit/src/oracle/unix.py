import sys, vfs, binascii, gc
G = GUARD  # defined before this (oracle.rs)
FF = b'\xff' * G
IDENT = b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_'

class Out:
    def __init__(self):
        self.lines = []
        self.size = 0

    def append(self, line):
        self.lines.append(line)
        self.size += len(line) + 1

def imports(fs, out):
    # Modules `m_*.py` at the top whose source is `V = <digits>`: importing
    # one must give that value.
    ents = [(n, t) for n, t, _, _ in fs.ilistdir(b'/')]
    names = [n for n, _ in ents]
    vfs.mount(fs, '/rom')
    sys.path[:] = ['/rom']
    try:
        for n, t in ents:
            mod = n[:-3]
            if (t != 0x8000 or not n.startswith(b'm_') or not n.endswith(b'.py')
                    or names.count(n) > 1 or mod in names or mod + b'.mpy' in names
                    or any(c not in IDENT for c in mod)):
                continue
            try:
                src = fs.open(b'/' + n, 'rb').read()
            except Exception:
                continue
            if not (src.startswith(b'V = ') and src.endswith(b'\n') and src[4:-1].isdigit()):
                continue
            mod = mod.decode()
            try:
                got = str(__import__(mod).V)
            except Exception as e:
                got = why(e)
            sys.modules.pop(mod, None)
            if got != src[4:-1].decode():
                out.append('BAD import %s %s' % (hx(n), got))
    finally:
        vfs.umount('/rom')

def load(path, n, fill):
    buf = bytearray(n + 2 * G)
    mv = memoryview(buf)
    if fill:
        mv[:G] = FF
        mv[G + n:] = FF
    with open(path, 'rb') as f:
        got = 0
        while got < n:
            k = f.readinto(mv[G + got:G + n])
            if not k:
                break
            got += k
    return mv[G:G + n]

def answer(path, n):
    outs = []
    for fill in (0, 1):
        out = Out()
        fs = mount_and_walk(load(path, n, fill), out)
        if fs is not None:
            if fill == 0:
                try:
                    imports(fs, out)
                except Exception as e:
                    out.append('BAD imports ' + why(e))
        outs.append(out.lines)
    a, b = outs
    if a != b:
        k = 0
        while k < len(a) and k < len(b) and a[k] == b[k]:
            k += 1
        a.append('BAD oob %d' % k)
    return a

print('READY', sys.implementation.version, sys.implementation._machine)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    path, n = line.split()
    try:
        lines = answer(path, int(n))
    except Exception as e:
        lines = ['BAD script ' + why(e)]
    lines.append('END')
    sys.stdout.write('\n'.join(lines) + '\n')
    lines = None
    gc.collect()
