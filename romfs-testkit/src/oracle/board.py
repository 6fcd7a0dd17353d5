import vfs, binascii

class Out:
    size = 0

    def append(self, line):
        print(line)
        self.size += len(line) + 1

def u32(b):
    return b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24

part = vfs.rom_ioctl(2, 0)
count = u32(part[0:4])
for k in range(count):
    off = u32(part[4 + 8 * k:8 + 8 * k])
    n = u32(part[8 + 8 * k:12 + 8 * k])
    print('IMG', k)
    mount_and_walk(part[off:off + n], Out())
    print('END')
print('DONE')
