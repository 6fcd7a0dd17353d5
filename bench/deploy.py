"""Drive `bench/deploy.sh`: `romfs deploy` and `mpremote romfs deploy` side by
side on the emulated MicroPython board (QEMU mps2-an385, writable ROM
partition), through a pty proxy that counts the bytes each tool sends, with a
shim on the board that counts the erases and writes `vfs.rom_ioctl` does.
Then RAM and import time: the same modules imported in place from /rom and
from a RAM-backed VFS on the same board.

Usage: python deploy.py WORKDIR ROMFS MPREMOTE MPY_CROSS FIRMWARE RUNS
"""
import json, os, pty, re, select, shutil, socket, statistics, subprocess, sys, termios, threading, time, tty

WORK, ROMFS, MPREMOTE, MPY_CROSS, FIRMWARE, RUNS = sys.argv[1:7]
RUNS = int(RUNS)
ERASE = 4096


# ---- corpora -----------------------------------------------------------------
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boardproxy  # noqa: E402  (bench/boardproxy.py, beside this script)
import corpora  # noqa: E402  (bench/corpora.py, beside this script)


def pyapp(root, count=400, seed=4, funcs=(4, 30)):
    """bench/build.sh's pyapp, as packages (with their `__init__.py`)."""
    corpora.pyapp(root, count, seed, funcs, packages=True)


def corpus(name, make):
    return corpora.make(WORK, name, make)


# ---- the board ---------------------------------------------------------------
def Board():
    return boardproxy.Board(WORK, FIRMWARE, MPREMOTE)


# Counts vfs.rom_ioctl erases and writes: a module standing in for `vfs`
# (both tools `import vfs` after it is installed; nothing is reset between).
SHIM = """
import sys, vfs as _vfs
class _Counter:
    pass
_c = _Counter()
_c.erased = 0
_c.written = set()
_c.bytes = 0
_c.calls = 0
def _ioctl(*a):
    if a[0] == 3:
        off, n = (a[2], a[3]) if len(a) >= 4 else (0, a[2])
        _c.erased += (off + n + 4095) // 4096 - off // 4096
    elif a[0] == 4:
        off, n = a[2], len(a[3])
        _c.written.update(range(off // 4096, (off + n + 4095) // 4096))
        _c.bytes += n
        _c.calls += 1
    return _vfs.rom_ioctl(*a)
_c.rom_ioctl = _ioctl
_c.VfsRom = _vfs.VfsRom
_c.mount = _vfs.mount
_c.umount = _vfs.umount
sys.modules['vfs'] = _c
_COUNTER = _c
"""

READ_SHIM = "print(_COUNTER.erased, len(_COUNTER.written), _COUNTER.bytes, _COUNTER.calls)"


def timed(board, cmd):
    """Run a deploy command: wall seconds, bytes each way, board counters."""
    print("  $ " + " ".join(cmd), flush=True)
    board.exec(SHIM)
    sent0, recv0 = board.to_board, board.from_board
    t = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    wall = time.monotonic() - t
    if out.returncode != 0:
        raise RuntimeError("%s failed:\n%s%s" % (cmd, out.stdout, out.stderr))
    time.sleep(0.2)  # let the proxy pass the last bytes
    sent, recv = board.to_board - sent0, board.from_board - recv0
    erased, written, wbytes, calls = map(int, board.exec(READ_SHIM).split())
    return {"wall": wall, "sent": sent, "received": recv, "erased": erased,
            "written": written, "written_bytes": wbytes, "write_calls": calls,
            "output": (out.stdout + out.stderr).strip()}


def deploy_cmd(tool, board, src):
    if tool == "romfs":
        return [ROMFS, "deploy", src, "--port", board.port, "--no-reset", "--mpy-cross", MPY_CROSS]
    return [MPREMOTE, "connect", board.port, "resume", "romfs", "deploy", src]


def edit_one_file(src):
    """A realistic edit: one function added to a module in the middle."""
    path = os.path.join(src, "lib", "pkg3", "mod203.py")
    with open(path, "a") as f:
        f.write("\ndef added(x):\n    return x * 2 + 1\n")


def run_deploys(results):
    app = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "app")
    big = corpus("pyapp", pyapp)
    for run in range(RUNS):
        for tool in ("romfs", "mpremote"):
            # Full deploys to a board whose partition was never written.
            for name, src in (("app", app), ("pyapp", big)):
                os.environ["ROMFS_CACHE_DIR"] = os.path.join(WORK, "cache-cold-%d-%s" % (run, tool))
                shutil.rmtree(os.environ["ROMFS_CACHE_DIR"], ignore_errors=True)
                board = Board()
                try:
                    r = timed(board, deploy_cmd(tool, board, src))
                finally:
                    board.close()
                results.setdefault((tool, "full " + name), []).append(r)
                print(tool, "full", name, {k: v for k, v in r.items() if k != "output"}, flush=True)
            # One file changed in the 400-module app, redeployed.
            edited = os.path.join(WORK, "pyapp-edit")
            shutil.rmtree(edited, ignore_errors=True)
            shutil.copytree(big, edited)
            os.environ["ROMFS_CACHE_DIR"] = os.path.join(WORK, "cache-warm")
            board = Board()
            try:
                board.exec("pass")
                subprocess.run(deploy_cmd(tool, board, edited), check=True, capture_output=True, timeout=1200)
                edit_one_file(edited)
                r = timed(board, deploy_cmd(tool, board, edited))
                # Both tools leave the same files on the board.
                out = board.exec("import sys\nsys.path.insert(0, '/rom/lib')\n"
                                 "import vfs\ntry:\n vfs.umount('/rom')\nexcept OSError:\n pass\n"
                                 "vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2, 0)), '/rom')\n"
                                 "from pkg3 import mod203\nprint(mod203.added(20))")
                assert out.strip().endswith("41"), out
            finally:
                board.close()
            results.setdefault((tool, "one-file redeploy pyapp"), []).append(r)
            print(tool, "redeploy", {k: v for k, v in r.items() if k != "output"}, flush=True)


# ---- RAM and import time -----------------------------------------------------
RAMFS = """
import gc, io, os, sys, time, vfs
class RamFile(io.IOBase):
    def __init__(self, data):
        self.data = data
        self.pos = 0
    def readinto(self, buf):
        n = min(len(buf), len(self.data) - self.pos)
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n
    def ioctl(self, req, arg):
        return 0
class RamFS:
    def __init__(self, files):
        self.files = files
    def mount(self, readonly, mkfs):
        pass
    def umount(self):
        pass
    def chdir(self, path):
        pass
    def stat(self, path):
        path = path.strip('/')
        if path in self.files:
            return (0x8000, 0, 0, 0, 0, 0, len(self.files[path]), 0, 0, 0)
        if path == '' or any(f.startswith(path + '/') for f in self.files):
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        raise OSError(2)
    def open(self, path, mode):
        path = path.strip('/')
        if path not in self.files:
            raise OSError(2)
        return RamFile(self.files[path])
def copy(d, files):
    for entry in os.ilistdir('/rom' + d):
        name, kind = entry[0], entry[1]
        p = d + '/' + name
        if kind == 0x4000:
            copy(p, files)
        else:
            with open('/rom' + p, 'rb') as f:
                files[p.strip('/')] = f.read()
files = {}
copy('', files)
vfs.umount('/rom')
vfs.mount(RamFS(files), '/ram')
sys.path[:] = ['/ram', '/ram/lib']
"""

MEASURE = """
import gc, sys, time
gc.collect()
free0 = gc.mem_free()
t0 = time.ticks_us()
for name in NAMES:
    __import__(name)
dt = time.ticks_diff(time.ticks_us(), t0)
gc.collect()
print(free0 - gc.mem_free(), dt)
"""


RAM_MODULES = 12


def ram_app(root):
    # Smaller pyapp modules, as many as the board's heap holds when they
    # are imported from a RAM-backed filesystem (their files also in the heap).
    pyapp(root, count=RAM_MODULES, seed=9, funcs=(4, 8))


def run_ram(results):
    src = corpus("ramapp", ram_app)
    names = ["pkg%d.mod%03d" % (i % 10, i) for i in range(RAM_MODULES)]
    measure = "NAMES = %r\n" % names + MEASURE
    board = Board()
    try:
        subprocess.run([ROMFS, "deploy", src, "--port", board.port, "--mpy-cross", MPY_CROSS],
                       check=True, capture_output=True, timeout=600)
        time.sleep(1.5)
        for run in range(RUNS):
            # In place from /rom (the board was just reset: nothing imported).
            used, us = map(int, board.exec(measure).split())
            results.setdefault(("rom", "import"), []).append({"ram": used, "us": us})
            board.mpremote("soft-reset")
            time.sleep(1.5)
            # The same .mpy files from a RAM-backed VFS.
            board.exec(RAMFS)
            used, us = map(int, board.exec(measure).split())
            results.setdefault(("ramfs", "import"), []).append({"ram": used, "us": us})
            board.mpremote("soft-reset")
            time.sleep(1.5)
    finally:
        board.close()


def run_edit_loop(results):
    """romfs build of the 400-module app: every file compiled (empty cache)
    versus a rebuild after one file changed (the cache holds the rest)."""
    big = corpus("pyapp", pyapp)
    for run in range(RUNS):
        work = os.path.join(WORK, "edit-loop")
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(big, os.path.join(work, "app"))
        env = dict(os.environ, ROMFS_CACHE_DIR=os.path.join(work, "cache"))
        cmd = [ROMFS, "build", os.path.join(work, "app"), "-o", os.path.join(work, "app.img"),
               "--mpy-cross", MPY_CROSS, "-q"]
        t = time.monotonic()
        subprocess.run(cmd, check=True, env=env)
        full = time.monotonic() - t
        edit_one_file(os.path.join(work, "app"))
        t = time.monotonic()
        subprocess.run(cmd, check=True, env=env)
        edited = time.monotonic() - t
        # The cached build is the build: same bytes as one without the cache.
        fresh = os.path.join(work, "fresh.img")
        subprocess.run(cmd[:4] + [fresh] + cmd[5:] + ["--no-cache"], check=True, env=env)
        assert open(fresh, "rb").read() == open(os.path.join(work, "app.img"), "rb").read()
        results.setdefault(("romfs build", "edit loop"), []).append({"full": full, "edited": edited})
        print("edit loop: full %.3f s, after one edit %.3f s" % (full, edited), flush=True)


def median(rs, key):
    return statistics.median(r[key] for r in rs)


def main():
    results = {}
    run_edit_loop(results)
    run_ram(results)
    run_deploys(results)
    rows = []
    for (tool, case), rs in sorted((k, v) for k, v in results.items() if k[1] not in ("import", "edit loop")):
        rows.append({"tool": tool, "case": case, "runs": len(rs),
                     **{k: median(rs, k) for k in ("wall", "sent", "received", "erased", "written", "written_bytes")}})
    ram = {k[0]: {"ram": median(v, "ram"), "us": median(v, "us"), "runs": len(v)}
           for k, v in results.items() if k[1] == "import"}
    loop = results[("romfs build", "edit loop")]
    edit = {"full": median(loop, "full"), "edited": median(loop, "edited"), "runs": len(loop)}
    json.dump({"deploys": rows, "import": ram, "edit_loop": edit},
              open(os.path.join(WORK, "results.json"), "w"), indent=1)
    print()
    print("| case | tool | wall s | bytes sent | bytes received | blocks erased | blocks written | bytes programmed |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %.2f | %d | %d | %d | %d | %d |" % (
            r["case"], r["tool"], r["wall"], r["sent"], r["received"], r["erased"], r["written"], r["written_bytes"]))
    print()
    for case in sorted({r["case"] for r in rows}):
        a = [r for r in rows if r["case"] == case and r["tool"] == "romfs"][0]
        b = [r for r in rows if r["case"] == case and r["tool"] == "mpremote"][0]
        print("%s: mpremote/romfs wall %.2fx, bytes sent %.1fx" % (case, b["wall"] / a["wall"], b["sent"] / max(a["sent"], 1)))
    print()
    print("romfs build of the 400-module app: %.3f s with every file compiled, %.3f s after one file changed (%.1fx)"
          % (edit["full"], edit["edited"], edit["full"] / edit["edited"]))
    print()
    print("| %d modules imported from | heap used (bytes) | import time (ms) |" % RAM_MODULES)
    print("|---|---|---|")
    for k, label in (("rom", "/rom, in place"), ("ramfs", "a RAM-backed VFS")):
        print("| %s | %d | %.1f |" % (label, ram[k]["ram"], ram[k]["us"] / 1000))


main()
