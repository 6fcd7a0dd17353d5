# romfs_flash: writes a MicroPython ROM partition the way its port's flash
# needs, on every port. `romfs deploy` sends this file to the board and the
# romfs_ota package imports it: one write layer for both.
#
# A partition is either a memoryview that vfs.rom_ioctl 3/4/6 write
# (stm32, alif, esp8266, renesas-ra, samd without MCUFLASH), or an object
# with the block-device protocol (rp2, esp32, nrf, mimxrt, samd). What the
# port's flash allows (MicroPython's ports/*/ sources, written down in the
# project's FORMAT.md, "Writing a ROM partition"):
#   mode 'block'   erase any erase unit, then program each unit once
#   mode 'prefix'  only [0, n) from the partition start can be erased
#                  (WRITE_PREPARE with 3 arguments: GET_MIN_PREPARE is absent)
#   mode 'none'    nothing to erase (MRAM): program overwrites
#   mode 'rewrite' program erases and rewrites by itself (samd); the block
#                  device's erase must never be called (it erases the wrong
#                  block on samd)
#   mode 'ro'      the firmware cannot write it (upstream qemu and unix)
# Every program is aligned to `prog` and a whole number of `prog` units,
# padded with 0xFF; nothing is written outside the partition.
import sys

try:
    import vfs
except ImportError:
    vfs = None

MODES = ('block', 'prefix', 'none', 'rewrite', 'ro')


class FlashError(Exception):
    # args: (operation, partition offset, the port's answer)
    pass


def _failed(r):
    # rom_ioctl answers 0 or a negative errno; block devices None or 0.
    return r is not None and r != 0


def _counters():
    try:
        return vfs.rom_ioctl(99)
    except Exception:
        return None


class Flash:
    def __init__(self, index=0, device=None):
        self.index = index
        self.port = sys.platform
        d = device
        if d is None:
            if vfs is None or not hasattr(vfs, 'rom_ioctl'):
                raise FlashError('partition', index, -22)
            d = vfs.rom_ioctl(2, index)
            if isinstance(d, int):
                raise FlashError('partition', index, d)
        self.dev = d
        p = self.port
        if hasattr(d, 'ioctl'):
            self.kind = 'blockdev'
            bs = d.ioctl(5, 0)
            self._bs = bs
            self.size = d.ioctl(4, 0) * bs
            self.erase_unit = bs
            r = repr(d)
            if p == 'samd':
                mode, prog = 'rewrite', 4
            elif p == 'nrf' or r.startswith('Flash('):
                # nrfx_nvmc writes words; a word may be written twice per erase.
                mode, prog = 'block', 4
            elif p == 'esp32' or r.startswith('<Partition'):
                mode, prog = 'block', 1
            else:
                # rp2's bootrom programs whole 256-byte pages (and wraps in
                # the page); mimxrt splits at pages. Unknown ports: the same.
                mode, prog = 'block', 256
        else:
            self.kind = 'memoryview'
            self.size = len(d)
            e = vfs.rom_ioctl(6, index)
            if p == 'samd':
                mode, prog, e = 'rewrite', 4, max(e, 0)
            elif e is not None and 0 < e <= 64:
                # alif MRAM: 16-byte units, no erase.
                mode, prog = 'none', e
            elif e is not None and e > 0:
                # stm32 internal flash programs flash words of up to 32
                # bytes (H7), aligned, though WRITE_PREPARE says 16;
                # QSPI/OSPI NOR is byte-granular.
                mode = 'block'
                prog = 32 if (p == 'pyboard' or e > 4096) else 4
            elif p in ('qemu', 'unix') and not isinstance(_counters(), dict):
                # Upstream qemu and unix answer -22 to every write command
                # (the emulated flash models of the tests count, and write).
                mode, prog, e = 'ro', 4, 4096
            else:
                # esp8266, renesas-ra, stm32 OSPI: GET_MIN_PREPARE is -22,
                # so only the 3-argument erase from the partition start.
                mode, prog, e = 'prefix', 4, 4096
            self.erase_unit = e if mode in ('block', 'prefix', 'ro') else 0
        self.mode = mode
        self.prog = prog
        # The unit changes are planned in: an erase unit, or 4 KiB where
        # nothing is erased.
        self.block = self.erase_unit if self.erase_unit >= 4096 or mode == 'block' else 4096
        if self.block > self.size:
            self.block = self.size

    def read(self, off, n):
        if off < 0 or off + n > self.size:
            raise FlashError('read', off, -22)
        if self.kind == 'memoryview':
            return self.dev[off:off + n]
        b = bytearray(n)
        self.dev.readblocks(off // self._bs, b, off % self._bs)
        return b

    def erase(self, off, n):
        # Erase [off, off + n): whole erase units; 'prefix' only from 0.
        if self.mode == 'ro':
            raise FlashError('erase', off, -22)
        if self.mode in ('none', 'rewrite') or n <= 0:
            return
        e = self.erase_unit
        if off < 0 or off % e or n % e or off + n > self.size:
            raise FlashError('erase', off, -22)
        if self.mode == 'prefix':
            if off:
                raise FlashError('erase', off, -22)
            r = vfs.rom_ioctl(3, self.index, n)
        elif self.kind == 'memoryview':
            r = vfs.rom_ioctl(3, self.index, off, n)
        else:
            for k in range(off // e, (off + n) // e):
                r = self.dev.ioctl(6, k)
                if _failed(r):
                    raise FlashError('erase', k * e, r)
            return
        if not isinstance(r, int) or r < 0:
            raise FlashError('erase', off, r)
        if r > 0 and self.prog % r:
            # The firmware needs larger writes than this layer plans.
            raise FlashError('unit', off, r)

    def program(self, off, data):
        # Program `data` at `off` (aligned to prog), padded with 0xFF to
        # whole units. A whole number of units is programmed from `data`
        # itself: callers pass buffers of their own, or slices of them at
        # multiples of `prog`.
        u = self.prog
        n = len(data)
        m = (n + u - 1) // u * u
        if self.mode == 'ro' or off < 0 or off % u or off + m > self.size:
            raise FlashError('write', off, -22)
        if m == 0:
            return
        b = data
        if m != n or u < 4:
            # Padded, or a slice that may not start on a word (some SDKs
            # read the source in words): a buffer of its own.
            b = bytearray(m)
            b[:n] = data
            for i in range(n, m):
                b[i] = 0xFF
        if self.kind == 'memoryview':
            r = vfs.rom_ioctl(4, self.index, off, b)
        else:
            r = self.dev.writeblocks(off // self._bs, b, off % self._bs)
        if _failed(r):
            raise FlashError('write', off, r)

    def invalidate(self):
        # Make the partition mount nothing: erase its first unit, or, where
        # nothing is erased, overwrite the header's unit with 0xFF.
        if self.mode in ('none', 'rewrite'):
            self.program(0, b'\xff' * max(self.prog, 4))
        else:
            self.erase(0, self.erase_unit)

    def info(self):
        return (self.size, self.block, int(self.kind == 'blockdev'), self.prog,
                self.erase_unit, MODES.index(self.mode))
