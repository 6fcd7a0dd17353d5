#!/usr/bin/env python3
# The Ed25519 check of romfs_ota on the emulated Cortex-M3 (stock firmware),
# under QEMU -icount shift=0: one instruction is one nanosecond of the
# board's clock, so ticks_us() differences are instructions / 1000.
#   python3 bench/ota-signature.py   (ROMFS_DEVICE_DIR, default ../shared/device)
import subprocess, sys, time, os
src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'micropython', 'romfs_ota', 'romfs_ed25519.py')).read()
test = '''
import time, gc
pk = bytes.fromhex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a')
sig = bytes.fromhex('e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b')
msg = bytes(128)
gc.collect()
f0 = gc.mem_free()
t = time.ticks_us()
ok = verify(pk, b'', sig)
dt = time.ticks_diff(time.ticks_us(), t)
t = time.ticks_us()
h = sha512(bytes(192))
dh = time.ticks_diff(time.ticks_us(), t)
print('RESULT', ok, dt, dh, f0, gc.mem_free(), pow(3,5,7))
'''
code = src + test
p = subprocess.Popen(['qemu-system-arm','-machine','mps2-an385','-nographic','-monitor','null','-semihosting',
    '-icount','shift=0','-serial','stdio','-kernel',os.path.join(os.environ.get('ROMFS_DEVICE_DIR', '../shared/device'), 'micropython-mps2-an385.elf')],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
time.sleep(1.5)
p.stdin.write(b'\r\x01'); p.stdin.flush(); time.sleep(0.5)
data = code.encode()
for i in range(0, len(data), 256):
    p.stdin.write(data[i:i+256]); p.stdin.flush(); time.sleep(0.02)
p.stdin.write(b'\x04'); p.stdin.flush()
out = b''
t0 = time.time()
os.set_blocking(p.stdout.fileno(), False)
while time.time() - t0 < 120 and b'RESULT' not in out or (b'RESULT' in out and not out.rstrip().endswith(b'\x04>') and time.time()-t0<120 and b'\n' not in out[out.find(b'RESULT'):]):
    try:
        c = p.stdout.read()
        if c: out += c
    except Exception: pass
    time.sleep(0.1)
p.kill()
print(out.decode(errors='replace')[-600:])
