"""The emulated MicroPython board for the benchmarks: QEMU (mps2-an385) with
its UART on a pty, relayed through a proxy pty that counts the bytes in each
direction (and stays open, so QEMU never sees the port hang up between two
tools), plus its monitor socket and `mpremote` on the proxy's port."""
import os, pty, re, select, socket, subprocess, threading, time, tty


class Board:
    """QEMU running the writable firmware; its UART on a pty, relayed through
    a proxy pty that counts the bytes in each direction."""

    def __init__(self, work, firmware, mpremote="mpremote"):
        self.mpremote_bin = mpremote
        self.dir = os.path.join(work, "qemu")
        os.makedirs(self.dir, exist_ok=True)
        mon = os.path.join(self.dir, "monitor.sock")
        if os.path.exists(mon):
            os.unlink(mon)
        self.log = os.path.join(self.dir, "qemu.log")
        self.qemu = subprocess.Popen(
            ["qemu-system-arm", "-machine", "mps2-an385", "-nographic", "-semihosting",
             "-monitor", "unix:%s,server,nowait" % mon, "-serial", "pty", "-kernel", firmware],
            stdin=subprocess.DEVNULL, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        for _ in range(200):
            found = re.search(r"/dev/pts/\d+", open(self.log).read())
            if found:
                break
            time.sleep(0.05)
        self.board_pty = found.group(0)
        for _ in range(100):
            try:
                self.mon = socket.socket(socket.AF_UNIX)
                self.mon.connect(mon)
                break
            except OSError:
                time.sleep(0.05)
        self.monitor_read()
        self.to_board = 0
        self.from_board = 0
        self.board_fd = os.open(self.board_pty, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.board_fd)
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self.slave = slave  # kept open so the proxy end never sees a hang-up
        self.stop = False
        self.thread = threading.Thread(target=self.relay, daemon=True)
        self.thread.start()
        threading.Thread(target=self.watch, daemon=True).start()
        time.sleep(1.5)  # the firmware boots

    def watch(self):
        while not self.stop:
            code = self.qemu.poll()
            if code is not None:
                print("QEMU exited with status %s" % code, flush=True)
                return
            time.sleep(0.2)

    def relay(self):
        while not self.stop:
            r, _, _ = select.select([self.master, self.board_fd], [], [], 0.1)
            for fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError as e:
                    if fd == self.board_fd:
                        print("the board's pty failed (QEMU gone?): %s" % e, flush=True)
                        return
                    continue
                if not data and fd == self.board_fd:
                    print("the board's pty closed (QEMU gone?): %s" % open(self.log).read(), flush=True)
                    return
                if fd == self.master:
                    self.to_board += len(data)
                    os.write(self.board_fd, data)
                else:
                    self.from_board += len(data)
                    os.write(self.master, data)

    def monitor_read(self):
        data = b""
        while not data.endswith(b"(qemu) "):
            got = self.mon.recv(4096)
            if not got:
                break  # QEMU has ended
            data += got
        return data

    def monitor(self, cmd):
        self.mon.sendall(cmd.encode() + b"\n")
        return self.monitor_read()

    def partition(self):
        path = os.path.join(self.dir, "part.bin")
        if os.path.exists(path):
            os.unlink(path)
        self.monitor('pmemsave 0x21000000 0x400000 "%s"' % path)
        return open(path, "rb").read()

    def close(self):
        self.stop = True
        self.thread.join()
        try:
            self.monitor("quit")
        except OSError:
            pass
        self.qemu.wait(timeout=10)
        for fd in (self.master, self.slave, self.board_fd):
            os.close(fd)

    def mpremote(self, *args):
        out = subprocess.run([self.mpremote_bin, "connect", self.port, "resume", *args],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError("mpremote %s: %s%s" % (args, out.stdout, out.stderr))
        return out.stdout

    def exec(self, code):
        return self.mpremote("exec", code)
