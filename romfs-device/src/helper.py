# The deploy helper: sent after romfs_flash.py (the write layer, which
# defines Flash and FlashError), in one program, once per connection. Terse:
# every byte travels over the serial link.
import gc
from binascii import a2b_base64,b2a_base64,hexlify
try:
 from hashlib import sha256
 def _h(x):return sha256(x).digest()[:16]
 _k='s'
except ImportError:
 from binascii import crc32
 def _h(x):return crc32(x).to_bytes(4,'little')
 _k='c'
try:
 from deflate import DeflateIO,RAW
 from io import BytesIO
 _z=1
except ImportError:
 _z=0
_P={}
def _p(i):
 f=_P.get(i)
 if f is None:f=_P[i]=Flash(i)
 return f
def _t():
 k=0;x=1
 try:
  while k<70 and x*2 is x*2:x*=2;k+=1
 except Exception:pass
 return k+2
def rq(i):print(*_p(i).info())
def rh(i,o,c):
 f=_p(i);e=f.block
 for k in range(c):
  x=o+k*e;print(hexlify(_h(f.read(x,min(e,f.size-x)))).decode())
def rr(i,o,n):print(b2a_base64(_p(i).read(o,n)).decode(),end='')
def rc(i,n):
 from binascii import crc32
 f=_p(i);c=0
 for x in range(0,n,4096):c=crc32(f.read(x,min(4096,n-x)),c)
 print(c)
def re(i,o,n):
 f=_p(i);f.erase(o,n);print(f.prog)
def ri(i):
 f=_p(i);f.invalidate();print(f.prog)
def _x(s,z):
 x=a2b_base64(s)
 return DeflateIO(BytesIO(x),RAW,12).read() if z else x
def rw(i,o,s,z):_p(i).program(o,_x(s,z))
def rs(i,o,c):
 f=_p(i);e=f.block
 for k in range(c):
  x=o+k*e;m=f.read(x,min(e,f.size-x));s=bytearray()
  for j in range(0,len(m),64):s+=_h(m[j:j+64])[:8]
  print(b2a_base64(s).decode(),end='')
_o0=b''
def r0(i):
 global _o0
 _o0=bytes(_p(i).read(0,_p(i).block))
def rb(i,o,e,u,s,z,ops):
 f=_p(i);x=_x(s,z);m=bytearray(u);p=0;q=0
 for k in range(0,len(ops),2):
  a=ops[k];c=ops[k+1]
  if a==-1:m[p:p+c]=x[q:q+c];q+=c
  elif a<0:m[p:p+c]=_o0[-2-a:-2-a+c]
  else:m[p:p+c]=f.read(a,c)
  p+=c
 if e:f.erase(o,e);print(f.prog)
 f.program(o,m)
def rv():
 try:return vfs.rom_ioctl(99)
 except Exception:return -22
def ru():
 try:vfs.umount('/rom')
 except OSError:pass
 sys.modules.clear();gc.collect()
print('romfs-helper',hasattr(vfs,'rom_ioctl') and vfs.rom_ioctl(1),_z,_k,getattr(sys.implementation,'_mpy',-1),_t(),sys.platform)
