import sys,gc
try:
 import vfs
except ImportError:
 vfs=None
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
class RomErr(Exception):pass
_P={}
def _p(i):
 p=_P.get(i)
 if p is None:
  d=vfs.rom_ioctl(2,i)
  if isinstance(d,int):raise RomErr('partition',i,d)
  if hasattr(d,'ioctl'):
   e=d.ioctl(5,0);n=d.ioctl(4,0)*e;b=1
  else:
   n=len(d);e=vfs.rom_ioctl(6,i);b=0
   if not 0<e<=n:e=n
  p=_P[i]=(d,n,e,b)
 return p
def _r(i,o,n):
 d,s,e,b=_p(i)
 if b:
  m=bytearray(n);d.readblocks(o//e,m,o%e);return m
 return d[o:o+n]
def _t():
 k=0;x=1
 try:
  while k<70 and x*2 is x*2:x*=2;k+=1
 except Exception:pass
 return k+2
def rq(i):
 d,n,e,b=_p(i);print(n,e,b)
def rh(i,o,c):
 d,n,e,b=_p(i)
 for k in range(c):
  x=o+k*e;print(hexlify(_h(_r(i,x,min(e,n-x)))).decode())
def rr(i,o,n):print(b2a_base64(_r(i,o,n)).decode(),end='')
def rc(i,n):
 from binascii import crc32
 c=0
 for x in range(0,n,4096):c=crc32(_r(i,x,min(4096,n-x)),c)
 print(c)
def re(i,o,n):
 d,s,e,b=_p(i)
 if b:
  for k in range(o//e,(o+n+e-1)//e):
   r=d.ioctl(6,k)
   if r:raise RomErr('erase',k*e,r)
  print(1);return
 r=vfs.rom_ioctl(3,i,o,n)
 if not isinstance(r,int) or r<0:raise RomErr('erase',o,r)
 print(r)
def _w(i,o,x):
 d,n,e,b=_p(i)
 r=d.writeblocks(o//e,x,o%e) if b else vfs.rom_ioctl(4,i,o,x)
 if r is not None and not(isinstance(r,int) and r>=0):raise RomErr('write',o,r)
def _x(s,z):
 x=a2b_base64(s)
 return DeflateIO(BytesIO(x),RAW,12).read() if z else x
def rw(i,o,s,z):_w(i,o,_x(s,z))
def rs(i,o,c):
 d,n,e,b=_p(i)
 for k in range(c):
  x=o+k*e;m=_r(i,x,min(e,n-x));s=bytearray()
  for j in range(0,len(m),64):s+=_h(m[j:j+64])[:8]
  print(b2a_base64(s).decode(),end='')
_o0=b''
def r0(i):
 global _o0
 _o0=bytes(_r(i,0,_p(i)[2]))
def rb(i,o,e,u,s,z,ops):
 x=_x(s,z);m=bytearray(u);p=0;q=0
 for k in range(0,len(ops),2):
  f=ops[k];c=ops[k+1]
  if f==-1:m[p:p+c]=x[q:q+c];q+=c
  elif f<0:m[p:p+c]=_o0[-2-f:-2-f+c]
  else:m[p:p+c]=_r(i,f,c)
  p+=c
 if e:re(i,o,e)
 _w(i,o,m)
def ru():
 try:vfs.umount('/rom')
 except OSError:pass
 sys.modules.clear();gc.collect()
print('romfs-helper',hasattr(vfs,'rom_ioctl') and vfs.rom_ioctl(1),_z,_k,getattr(sys.implementation,'_mpy',-1),_t())
