# A file-backed block device for testing romfs_ota on the unix port: NOR
# rules (erase to 0xFF, programming only clears bits), counts what real
# flash would punish, and can lose power after a number of erase/program
# operations (raising PowerCut, the operation not done).


class PowerCut(Exception):
    pass


class FileDevice:
    def __init__(self, path, size=1 << 20, bs=4096, cut_after=None):
        self.path = path
        self.bs = bs
        self.size = size
        self.cut_after = cut_after
        self.ops = 0
        self.overprogrammed = 0
        self.erases = 0
        self.programs = 0
        try:
            self.f = open(path, "r+b")
        except OSError:
            self.f = open(path, "w+b")
            self.f.write(b"\xff" * size)
            self.f.flush()

    def _tick(self):
        if self.cut_after is not None and self.ops >= self.cut_after:
            raise PowerCut()
        self.ops += 1

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * self.bs + off)
        self.f.readinto(buf)

    def _erase(self, n):
        self._tick()
        self.erases += 1
        self.f.seek(n * self.bs)
        self.f.write(b"\xff" * self.bs)
        self.f.flush()

    def writeblocks(self, n, buf, off=None):
        if off is None:
            for k in range((len(buf) + self.bs - 1) // self.bs):
                self._erase(n + k)
            off = 0
        self._tick()
        self.programs += 1
        pos = n * self.bs + off
        assert pos + len(buf) <= self.size, "write past the end"
        self.f.seek(pos)
        old = self.f.read(len(buf))
        new = bytearray(len(buf))
        for i in range(len(buf)):
            if buf[i] & ~old[i] & 0xFF:
                self.overprogrammed += 1
            new[i] = old[i] & buf[i]
        self.f.seek(pos)
        self.f.write(new)
        self.f.flush()

    def ioctl(self, op, arg):
        if op == 4:
            return self.size // self.bs
        if op == 5:
            return self.bs
        if op == 6:
            self._erase(arg)
            return 0
        return 0

    def contents(self):
        self.f.seek(0)
        return self.f.read()

    def close(self):
        self.f.close()


def mounts(data):
    # What MicroPython's own reader makes of the partition: None when it
    # mounts nothing, else the image bytes (header length included).
    import vfs

    try:
        vfs.VfsRom(data)
    except OSError:
        return None
    return data
