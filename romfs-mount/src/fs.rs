//! The FUSE filesystem: every answer comes from the [`Index`], file contents
//! straight from the mapping.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use fuser::Notifier;
use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use memmap2::Mmap;
use nix::fcntl::OFlag;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::index::{Index, Kind, NodeIdx, NodeInfo};
use crate::readahead::Readahead;

/// How long the kernel may cache entries, attributes and negative lookups:
/// the image cannot change under a mount, so effectively forever.
pub(crate) const TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Attributes every node shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attrs {
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u16,
    pub dir_mode: u16,
    pub time: SystemTime,
}

/// The mounted image.
pub(crate) struct RomFs {
    pub(crate) map: Arc<Mmap>,
    /// The image file, for checking its size before serving reads.
    pub(crate) file: File,
    pub(crate) index: Index,
    pub(crate) attrs: Attrs,
    /// Bytes of the image record (what `statfs` reports).
    pub(crate) image_len: u64,
    /// The kernel agreed to skip OPEN/RELEASE (we answer ENOSYS to open).
    no_open: bool,
    no_opendir: bool,
    /// Files whose contents were pushed into the kernel's cache.
    pushed: Vec<AtomicBool>,
    /// Set once the session exists; used to push file contents.
    notifier: Arc<OnceLock<Notifier>>,
    /// Reads the image ahead of sequential readers.
    readahead: Readahead,
}

/// Push at most this many files...
const PUSH_FILES: usize = 64;
/// ...and this many bytes after one READ...
const PUSH_BYTES: u64 = 512 * 1024;
/// ...of files no larger than this (larger ones get the kernel's readahead).
const PUSH_MAX_FILE: u64 = 64 * 1024;

impl std::fmt::Debug for RomFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RomFs")
            .field("nodes", &self.index.len())
            .field("image_len", &self.image_len)
            .finish()
    }
}

fn is_write_open(flags: OpenFlags) -> bool {
    !matches!(flags.acc_mode(), OpenAccMode::O_RDONLY)
        || OFlag::from_bits_retain(flags.0)
            .intersects(OFlag::O_TRUNC | OFlag::O_APPEND | OFlag::O_CREAT)
}

impl RomFs {
    pub(crate) fn new(
        map: Mmap,
        file: File,
        index: Index,
        attrs: Attrs,
        image_len: u64,
        readahead_mib: u32,
    ) -> Self {
        let n = index.len();
        let map = Arc::new(map);
        RomFs {
            readahead: Readahead::new(map.clone(), image_len, u64::from(readahead_mib) << 20),
            map,
            file,
            index,
            attrs,
            image_len,
            no_open: false,
            no_opendir: false,
            pushed: (0..n).map(|_| AtomicBool::new(false)).collect(),
            notifier: Arc::new(OnceLock::new()),
        }
    }

    /// Where the session's notifier goes once the session exists.
    pub(crate) fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        self.notifier.clone()
    }

    /// Push the contents of the small files that follow `idx` in its
    /// directory into the kernel's page cache (FUSE_NOTIFY_STORE), so that
    /// reading a directory's files in order (`cat dir/*`, `find -exec cat`,
    /// `tar`, `cp -r`) costs one READ request per batch instead of one per
    /// file. Bounded per call; each file is pushed at most once; a file the
    /// kernel does not know yet (not looked up or listed) ends the batch.
    fn push_following(&self, idx: NodeIdx, image_len_now: u64) {
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        let Some(n) = self.index.node(idx) else {
            return;
        };
        let Some(Kind::Dir { first, count, .. }) = self.index.node(n.parent).map(|p| p.kind) else {
            return;
        };
        let end = first.saturating_add(count);
        let mut budget = PUSH_BYTES;
        let mut files = 0;
        for j in idx.saturating_add(1)..end {
            if files == PUSH_FILES || budget == 0 {
                break;
            }
            let Some(m) = self.index.node(j) else { break };
            let Kind::File { data, len } = m.kind else {
                continue;
            };
            if len == 0 || len > PUSH_MAX_FILE || len > budget {
                continue;
            }
            let Some(flag) = self.pushed.get(j as usize) else {
                break;
            };
            if flag.swap(true, Ordering::Relaxed) {
                continue;
            }
            let Some(bytes) = self.map.get(data as usize..(data + len) as usize) else {
                break;
            };
            if data + len > image_len_now || notifier.store(INodeNo(m.ino), 0, bytes).is_err() {
                flag.store(false, Ordering::Relaxed);
                break;
            }
            budget -= len;
            files += 1;
        }
    }

    pub(crate) fn attr(&self, n: &NodeInfo) -> FileAttr {
        let (kind, perm, size, nlink) = match n.kind {
            Kind::Dir { subdirs, .. } => (
                FileType::Directory,
                self.attrs.dir_mode,
                0u64,
                2u32.saturating_add(subdirs),
            ),
            Kind::File { len, .. } => (FileType::RegularFile, self.attrs.file_mode, len, 1),
        };
        FileAttr {
            ino: INodeNo(n.ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.attrs.time,
            mtime: self.attrs.time,
            ctime: self.attrs.time,
            crtime: self.attrs.time,
            kind,
            perm,
            nlink,
            uid: self.attrs.uid,
            gid: self.attrs.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The attributes of a negative entry (inode 0): only the TTL matters.
    fn negative(&self) -> FileAttr {
        let mut a = self.attr(self.index.node(0).expect("the index always has a root"));
        a.ino = INodeNo(0);
        a
    }

    fn dir_of(&self, ino: INodeNo) -> Result<(NodeIdx, &NodeInfo), Errno> {
        let (idx, n) = self.node_of(ino)?;
        if !n.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok((idx, n))
    }

    /// Entries of a directory in readdir order, from `offset`: `.`, `..`,
    /// then the children. Each comes with the offset of the one after it.
    pub(crate) fn dir_entries(&self, ino: INodeNo, offset: u64) -> Result<DirIter<'_>, Errno> {
        let (idx, n) = self.dir_of(ino)?;
        let Kind::Dir { first, count, .. } = n.kind else {
            return Err(Errno::ENOTDIR);
        };
        Ok(DirIter {
            fs: self,
            dir: idx,
            first,
            count,
            pos: offset,
        })
    }

    /// READDIR and READDIRPLUS: each entry of directory `ino` from `offset`
    /// on, given to `add` (the reply's, which says when its buffer is full)
    /// with the offset of the entry after it.
    fn fill_dir(
        &self,
        ino: INodeNo,
        offset: u64,
        mut add: impl FnMut(u64, &NodeInfo, &[u8]) -> bool,
    ) -> Result<(), Errno> {
        for (next, n, name) in self.dir_entries(ino, offset)? {
            if add(next, n, name) {
                break;
            }
        }
        Ok(())
    }

    /// The node with inode number `ino`.
    fn node_of(&self, ino: INodeNo) -> Result<(NodeIdx, &NodeInfo), Errno> {
        let idx = self.index.by_ino(ino.0).ok_or(Errno::ENOENT)?;
        let n = self.index.node(idx).ok_or(Errno::ENOENT)?;
        Ok((idx, n))
    }

    /// The answer to LOOKUP: the child's attributes, or a negative entry
    /// (inode 0) when the directory has no such child.
    pub(crate) fn lookup_attr(&self, parent: INodeNo, name: &[u8]) -> Result<FileAttr, Errno> {
        let (pidx, _) = self.dir_of(parent)?;
        Ok(
            match self
                .index
                .lookup(pidx, name)
                .and_then(|i| self.index.node(i))
            {
                Some(n) => self.attr(n),
                None => self.negative(),
            },
        )
    }

    /// The answer to GETATTR.
    pub(crate) fn getattr_of(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        self.node_of(ino).map(|(_, n)| self.attr(n))
    }

    /// The answer to OPEN: `Ok` means opened (with the page cache kept).
    pub(crate) fn check_open(&self, ino: INodeNo, flags: OpenFlags) -> Result<(), Errno> {
        if is_write_open(flags) {
            return Err(Errno::EROFS);
        }
        if self.no_open {
            // Zero-message opens from now on: the kernel then keeps the page
            // cache and sends neither OPEN nor RELEASE for any file.
            return Err(Errno::ENOSYS);
        }
        match self.node_of(ino)? {
            (_, n) if n.is_dir() => Err(Errno::EISDIR),
            _ => Ok(()),
        }
    }

    /// The answer to OPENDIR: `Ok` means opened (with the cache kept).
    pub(crate) fn check_opendir(&self, ino: INodeNo, flags: OpenFlags) -> Result<(), Errno> {
        if is_write_open(flags) {
            return Err(Errno::EROFS);
        }
        if self.no_opendir {
            // As for files: the kernel then caches directories by default.
            return Err(Errno::ENOSYS);
        }
        self.dir_of(ino).map(|_| ())
    }

    /// The answer to READ: up to `size` bytes of the file from `offset`
    /// (fewer only at its end), straight from the mapping.
    pub(crate) fn read_data(
        &self,
        ino: INodeNo,
        offset: u64,
        size: u32,
    ) -> Result<ReadData<'_>, Errno> {
        let (idx, n) = self.node_of(ino)?;
        let Kind::File { data, len } = n.kind else {
            return Err(Errno::EISDIR);
        };
        if offset >= len || size == 0 {
            return Ok(ReadData {
                bytes: &[],
                push_after: None,
            });
        }
        let start = data + offset;
        let end = data + len.min(offset.saturating_add(u64::from(size)));
        // The image may have been truncated since it was mapped: touching
        // pages past its end would fault. Check the real size first (the
        // kernel itself turns a fault while copying our reply into EIO, so a
        // truncation racing with this check is harmless too).
        let flen = self
            .file_len()
            .filter(|&flen| flen >= end)
            .ok_or(Errno::EIO)?;
        // Before replying, so the read-ahead thread works while we copy.
        self.readahead.note(start, end);
        let bytes = self
            .map
            .get(start as usize..end as usize)
            .ok_or(Errno::EIO)?;
        Ok(ReadData {
            bytes,
            push_after: (offset == 0).then_some((idx, flen)),
        })
    }

    /// The answer to STATFS: (512-byte blocks, nodes).
    pub(crate) fn statfs_counts(&self) -> (u64, u64) {
        // Blocks of 512 bytes, so the reported size is the image size
        // rounded up to 512.
        (self.image_len.div_ceil(512), self.index.len() as u64)
    }

    /// The answer to ACCESS.
    pub(crate) fn check_access(&self, ino: INodeNo, mask: AccessFlags) -> Result<(), Errno> {
        if mask.contains(AccessFlags::W_OK) {
            return Err(Errno::EROFS);
        }
        self.node_of(ino).map(|_| ())
    }
}

/// What a READ replies with.
pub(crate) struct ReadData<'a> {
    /// The file's bytes.
    pub(crate) bytes: &'a [u8],
    /// A read from the start of a file: push the files after it (node, and
    /// the image file's size when checked).
    push_after: Option<(NodeIdx, u64)>,
}

pub(crate) struct DirIter<'a> {
    fs: &'a RomFs,
    dir: NodeIdx,
    first: u32,
    count: u32,
    pos: u64,
}

impl<'a> Iterator for DirIter<'a> {
    /// (next offset, node, name)
    type Item = (u64, &'a NodeInfo, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let fs = self.fs;
        let item = match self.pos {
            0 => (fs.index.node(self.dir)?, &b"."[..]),
            1 => {
                let d = fs.index.node(self.dir)?;
                (fs.index.node(d.parent)?, &b".."[..])
            }
            p => {
                let i = p - 2;
                if i >= u64::from(self.count) {
                    return None;
                }
                let n = fs.index.node(self.first + i as u32)?;
                (n, fs.index.name_of(n))
            }
        };
        self.pos += 1;
        Some((self.pos, item.0, item.1))
    }
}

fn file_type(n: &NodeInfo) -> FileType {
    if n.is_dir() {
        FileType::Directory
    } else {
        FileType::RegularFile
    }
}

impl Filesystem for RomFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let caps = config.capabilities();
        let want = [
            // Always READDIRPLUS (not the AUTO heuristic, which falls back to
            // READDIR + one LOOKUP per entry after the first chunk): every
            // attribute is at hand, and `find`/`ls -l` then need no lookups.
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ASYNC_READ,
            InitFlags::FUSE_MAX_PAGES,
        ];
        for flag in want {
            if caps.contains(flag) {
                let _ = config.add_capabilities(flag);
            }
        }
        self.no_open = caps.contains(InitFlags::FUSE_NO_OPEN_SUPPORT);
        self.no_opendir = caps.contains(InitFlags::FUSE_NO_OPENDIR_SUPPORT);
        // Largest readahead the kernel allows.
        if let Err(max) = config.set_max_readahead(u32::MAX) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        // A negative entry has a TTL too: the kernel remembers the miss.
        match self.lookup_attr(parent, name.as_bytes()) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.getattr_of(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn readlink(&self, _req: &Request, _ino: INodeNo, reply: ReplyData) {
        reply.error(Errno::EINVAL);
    }

    fn mknod(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _r: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _t: &Path, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _np: INodeNo,
        _nn: &OsStr,
        _f: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(&self, _req: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.check_open(ino, flags) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let data = match self.read_data(ino, offset, size) {
            Ok(data) => data,
            Err(e) => return reply.error(e),
        };
        reply.data(data.bytes);
        if let Some((idx, flen)) = data.push_after {
            if let Some(flag) = self.pushed.get(idx as usize) {
                flag.store(true, Ordering::Relaxed);
            }
            self.push_following(idx, flen);
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _wf: WriteFlags,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        // ENOSYS: the kernel stops sending FLUSH on every close.
        reply.error(Errno::ENOSYS);
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.check_opendir(ino, flags) {
            Ok(()) => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let filled = self.fill_dir(ino, offset, |next, n, name| {
            reply.add(INodeNo(n.ino), next, file_type(n), OsStr::from_bytes(name))
        });
        match filled {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let filled = self.fill_dir(ino, offset, |next, n, name| {
            reply.add(
                INodeNo(n.ino),
                next,
                OsStr::from_bytes(name),
                &TTL,
                &self.attr(n),
                Generation(0),
            )
        });
        match filled {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ds: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Nothing free; the longest name Linux allows.
        let (blocks, files) = self.statfs_counts();
        reply.statfs(blocks, 0, 0, files, 0, 4096, 255, 512);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _i: INodeNo,
        _n: &OsStr,
        _v: &[u8],
        _f: i32,
        _p: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn getxattr(&self, _req: &Request, _i: INodeNo, _n: &OsStr, _s: u32, reply: ReplyXattr) {
        // ENOSYS makes the kernel stop asking for the rest of the mount.
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _i: INodeNo, _s: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _i: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.check_access(ino, mask) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _f: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _o: u64,
        _l: u64,
        _m: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ii: INodeNo,
        _fi: FileHandle,
        _oi: u64,
        _io: INodeNo,
        _fo: FileHandle,
        _oo: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}

impl RomFs {
    /// The image file's current size, `None` if it cannot be read.
    fn file_len(&self) -> Option<u64> {
        self.file.metadata().ok().map(|meta| meta.len())
    }
}
