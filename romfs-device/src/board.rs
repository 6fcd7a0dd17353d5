//! A board's ROM partitions, driven through a small helper program that is
//! sent once per connection: partition geometry, per-block hashes computed
//! on the board, reads, erases and writes with every return code checked,
//! deflate-compressed transfers, unmounting `/rom` and soft reset.

use base64::Engine;

use crate::error::{Error, ErrorKind, FlashOp, Result};
use crate::repl::{last_line, RawRepl, Timeouts, Traffic};
use crate::reply::{self, HashKind, HelperInfo, MpyTarget};
use crate::transport::{SerialTransport, Transport};

/// The write layer shared with the `romfs_ota` package: every write to a
/// partition goes through it.
const WRITE_LAYER: &str = include_str!("../../micropython/romfs_ota/romfs_flash.py");
/// The deploy helper's own functions, run after the write layer.
const HELPER_OPS: &str = include_str!("helper.py");

/// The program sent once per connection: the write layer and the helper,
/// without comment lines (they would only cross the link).
fn helper_source() -> String {
    let mut out = String::new();
    for line in WRITE_LAYER.lines().chain(HELPER_OPS.lines()) {
        if !line.trim_start().starts_with('#') && !line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The largest piece of data sent in one write: also the deflate window the
/// board needs (the board decompresses with a window of this size).
pub const CHUNK: usize = 4096;

/// The pieces of an erase block the board signs for delta transfers.
pub const SUB_BLOCK: usize = 64;
/// The longest signature of a piece (a truncated hash).
pub const SIGNATURE: usize = 8;

/// How the board assembles a block from what it already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOp {
    /// The next `n` bytes of the literal data sent along.
    Literal(usize),
    /// `len` bytes of the partition from offset `from`, as it is now.
    Copy {
        /// Partition offset.
        from: u64,
        /// Length.
        len: usize,
    },
    /// `len` bytes from offset `from` of block 0 as [`Board::save_block0`]
    /// saved it.
    Saved {
        /// Offset in block 0.
        from: u64,
        /// Length.
        len: usize,
    },
}

/// How a partition's flash is erased (the write layer's `mode`, from the
/// port's sources: FORMAT.md, "Writing a ROM partition").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseMode {
    /// Any erase unit can be erased, then each program unit written once.
    Block,
    /// Only a prefix `[0, n)` of the partition can be erased (esp8266,
    /// renesas-ra: `vfs.rom_ioctl(3)` with three arguments).
    Prefix,
    /// Nothing is erased: writes overwrite (alif MRAM).
    None,
    /// A write erases and rewrites what it covers by itself (samd).
    Rewrite,
    /// The firmware cannot write the partition.
    ReadOnly,
}

impl EraseMode {
    /// Does the flash read 0xFF after an erase, so that trailing 0xFF need
    /// not be written?
    pub fn erases(self) -> bool {
        matches!(self, EraseMode::Block | EraseMode::Prefix)
    }

    /// The name `romfs query` shows.
    pub fn name(self) -> &'static str {
        match self {
            EraseMode::Block => "erase blocks",
            EraseMode::Prefix => "erase from the partition start",
            EraseMode::None => "no erase (overwrite)",
            EraseMode::Rewrite => "write rewrites",
            EraseMode::ReadOnly => "read-only",
        }
    }
}

/// A ROM partition's geometry, as the board's write layer derives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Its number (`vfs.rom_ioctl(2, id)`).
    pub id: u32,
    /// Size in bytes.
    pub size: u64,
    /// The unit changes are planned, hashed and written in: the erase unit
    /// where the flash erases, 4 KiB where it does not.
    pub block_size: u64,
    /// Exposed as a block device (rp2, esp32, nrf, mimxrt, samd) rather
    /// than memory.
    pub block_device: bool,
    /// Every write is aligned to this and a whole number of it.
    pub program_unit: u64,
    /// The smallest erase (0 where nothing is erased).
    pub erase_unit: u64,
    /// How the flash is erased.
    pub mode: EraseMode,
}

impl Partition {
    /// Number of blocks.
    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(self.block_size)
    }

    /// Byte range of block `k`.
    pub fn block_range(&self, k: u64) -> std::ops::Range<u64> {
        let start = k * self.block_size;
        start..(start + self.block_size).min(self.size)
    }

    /// The first bytes of the partition, which hold the image header's
    /// magic: written last by a deploy. One program unit, or where that is
    /// a whole page of NOR flash (rp2, mimxrt), its first
    /// [`MAX_HEADER_WRITE_SIZE`](romfs_format::write::MAX_HEADER_WRITE_SIZE)
    /// bytes: the page is programmed once with them still erased and once
    /// more with them set and the rest of the page unchanged.
    pub fn header_unit(&self) -> u64 {
        let max = u64::from(romfs_format::write::MAX_HEADER_WRITE_SIZE);
        (3u64.div_ceil(self.program_unit) * self.program_unit).min(max)
    }

    /// The first program of the partition: the one that writes the header
    /// last.
    pub fn header_program(&self) -> u64 {
        self.header_unit().max(self.program_unit)
    }
}

/// A connected board in raw REPL mode, with the helper loaded.
pub struct Board<T: Transport> {
    repl: RawRepl<T>,
    info: HelperInfo,
    /// Partition geometry already asked for: it cannot change while
    /// connected, so each is asked once.
    partitions: Vec<Partition>,
}

impl<T: Transport> std::fmt::Debug for Board<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("repl", &self.repl)
            .field("info", &self.info)
            .finish()
    }
}

impl Board<SerialTransport> {
    /// Open a serial port (or, with `None`, the one USB serial device
    /// connected) and connect.
    pub fn open(port: Option<&str>, timeouts: Timeouts) -> Result<Self> {
        let path = match port {
            Some(p) => p.to_string(),
            None => crate::discover::single_port()?,
        };
        Board::connect(SerialTransport::open(&path)?, timeouts)
    }
}

impl<T: Transport> Board<T> {
    /// Enter the raw REPL on `transport` and load the helper.
    pub fn connect(transport: T, timeouts: Timeouts) -> Result<Self> {
        let mut repl = RawRepl::enter(transport, timeouts)?;
        // Compressed when the board can inflate (most ports): about two thirds of
        // the bytes. A board without `deflate` or `exec` raises, and gets
        // the source as it is (running the helper twice is harmless).
        let mut out = repl.exec(packed_helper().as_bytes())?;
        if !out.stderr.is_empty() {
            out = repl.exec(helper_source().as_bytes())?;
        }
        if !out.stderr.is_empty() {
            return Err(repl.error(ErrorKind::Raised(format!(
                "loading the romfs helper: {}",
                last_line(&out.stderr)
            ))));
        }
        let info = reply::helper_info(&out.stdout).ok_or_else(|| {
            repl.error(ErrorKind::Garbage {
                context: "loading the romfs helper",
                received: out.stdout.clone(),
            })
        })?;
        Ok(Board {
            repl,
            info,
            partitions: Vec::new(),
        })
    }

    /// The port's name.
    pub fn port(&self) -> &str {
        self.repl.port()
    }

    /// Bytes moved over the link so far.
    pub fn traffic(&self) -> Traffic {
        self.repl.traffic()
    }

    /// What the helper found out about the firmware.
    pub fn info(&self) -> &HelperInfo {
        &self.info
    }

    /// The `.mpy` format the board loads, if the firmware says.
    pub fn mpy_target(&self) -> Option<MpyTarget> {
        self.info.mpy
    }

    /// Can the board inflate deflate streams (`deflate.DeflateIO`)?
    pub fn has_deflate(&self) -> bool {
        self.info.deflate
    }

    /// How the board hashes blocks.
    pub fn hash_kind(&self) -> HashKind {
        self.info.hash
    }

    /// An error on this board's port.
    pub fn error(&self, kind: ErrorKind) -> Error {
        self.repl.error(kind)
    }

    /// Number of ROM partitions; an error when the firmware has none.
    pub fn partition_count(&self) -> Result<u32> {
        match self.info.partitions {
            Some(n) if n > 0 => Ok(n),
            _ => Err(self.error(ErrorKind::NoRomIoctl)),
        }
    }

    /// Geometry of partition `id` (asked of the board once per connection).
    pub fn partition(&mut self, id: u32) -> Result<Partition> {
        if let Some(known) = self.partitions.iter().find(|p| p.id == id) {
            return Ok(*known);
        }
        let count = self.partition_count()?;
        if id >= count {
            return Err(self.error(ErrorKind::NoPartition { id, count }));
        }
        let out = self.call(&format!("rq({id})"))?;
        let v = reply::ints(&out, 6)
            .filter(|v| {
                v[0] > 0
                    && v[1] > 0
                    && v[1] <= v[0]
                    && (v[2] == 0 || v[2] == 1)
                    && (1..=4096).contains(&v[3])
                    && (0..=v[0]).contains(&v[4])
            })
            .and_then(|v| {
                let mode = match v[5] {
                    0 => EraseMode::Block,
                    1 => EraseMode::Prefix,
                    2 => EraseMode::None,
                    3 => EraseMode::Rewrite,
                    4 => EraseMode::ReadOnly,
                    _ => return None,
                };
                Some(Partition {
                    id,
                    size: v[0] as u64,
                    block_size: v[1] as u64,
                    block_device: v[2] == 1,
                    program_unit: v[3] as u64,
                    erase_unit: v[4] as u64,
                    mode,
                })
            })
            .ok_or_else(|| self.garbage("reading the partition geometry", &out))?;
        self.partitions.push(v);
        Ok(v)
    }

    /// Hashes of `count` erase blocks from block `first`, computed on the
    /// board (see [`HashKind`]).
    pub fn block_hashes(
        &mut self,
        part: &Partition,
        first: u64,
        count: u64,
    ) -> Result<Vec<Vec<u8>>> {
        let mut all = Vec::with_capacity(count as usize);
        // In batches, so each answer stays small and a slow board keeps
        // printing well within the timeout.
        let batch = 256;
        let mut k = first;
        while k < first + count {
            let n = batch.min(first + count - k);
            let out = self.call(&format!("rh({},{},{n})", part.id, k * part.block_size))?;
            let hashes = reply::hashes(&out, n as usize, self.info.hash.size())
                .ok_or_else(|| self.garbage("reading block hashes", &out))?;
            all.extend(hashes);
            k += n;
        }
        Ok(all)
    }

    /// Read `len` bytes at `offset` of the partition.
    pub fn read(&mut self, part: &Partition, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            let n = (len - data.len()).min(CHUNK);
            let at = offset + data.len() as u64;
            let out = self.call(&format!("rr({},{at},{n})", part.id))?;
            let bytes = reply::base64_bytes(&out, n)
                .ok_or_else(|| self.garbage("reading the partition", &out))?;
            data.extend(bytes);
        }
        Ok(data)
    }

    /// CRC-32 of the first `len` bytes of the partition, computed on the
    /// board; `None` when its firmware has no `binascii.crc32`.
    pub fn crc32(&mut self, part: &Partition, len: u64) -> Result<Option<u32>> {
        let out = self
            .repl
            .exec(format!("rc({},{len})", part.id).as_bytes())?;
        if !out.stderr.is_empty() {
            let line = last_line(&out.stderr);
            if line.contains("ImportError") {
                return Ok(None);
            }
            return Err(self.error(ErrorKind::Raised(line)));
        }
        let v = reply::ints(&out.stdout, 1)
            .filter(|v| (0..=u32::MAX as i64).contains(&v[0]))
            .ok_or_else(|| self.garbage("reading a CRC-32", &out.stdout))?;
        Ok(Some(v[0] as u32))
    }

    /// Erase the blocks covering `offset..offset + len`; returns the
    /// minimum write size the firmware reports.
    pub fn erase(&mut self, part: &Partition, offset: u64, len: u64) -> Result<u64> {
        let out = self.call(&format!("re({},{offset},{len})", part.id))?;
        let v = reply::ints(&out, 1)
            .filter(|v| (0..=1 << 16).contains(&v[0]))
            .ok_or_else(|| self.garbage("erasing", &out))?;
        Ok(v[0].max(1) as u64)
    }

    /// Make the partition mount nothing: erase its first erase unit, or
    /// where nothing is erased overwrite the header's unit with 0xFF.
    pub fn invalidate(&mut self, part: &Partition) -> Result<()> {
        let out = self.call(&format!("ri({})", part.id))?;
        reply::ints(&out, 1)
            .map(|_| ())
            .ok_or_else(|| self.garbage("invalidating the image", &out))
    }

    /// The emulated flash models' rule counters (`vfs.rom_ioctl(99)`, not
    /// on any real board): `None` where the firmware has none.
    pub fn flash_counters(&mut self) -> Result<Option<String>> {
        let out = self.call("print(rv())")?;
        let text = String::from_utf8_lossy(&out).trim().to_string();
        Ok(text.starts_with('{').then_some(text))
    }

    /// In one program: erase `erase` (offset, length) if given, then
    /// program each `(offset, data)` piece (at most [`CHUNK`] bytes each).
    /// The board decompresses when it can and checks every return code.
    /// Returns the minimum write size the erase reported.
    pub fn erase_and_write(
        &mut self,
        part: &Partition,
        erase: Option<(u64, u64)>,
        pieces: &[(u64, &[u8])],
    ) -> Result<Option<u64>> {
        let mut code = String::new();
        if let Some((offset, len)) = erase {
            code.push_str(&format!("re({},{offset},{len})\n", part.id));
        }
        for (offset, data) in pieces {
            debug_assert!(data.len() <= CHUNK);
            let (payload, z) = self.pack(data);
            code.push_str(&format!("rw({},{offset},'{payload}',{z})\n", part.id));
        }
        let out = self.call(&code)?;
        self.erase_answer(erase.is_some(), &out)
    }

    /// Base64 of `data`, deflated when the board can inflate and that is
    /// smaller; and the flag telling the board which.
    fn pack(&self, data: &[u8]) -> (String, u8) {
        let packed = self.info.deflate.then(|| deflate(data));
        let (payload, z) = match packed {
            Some(p) if p.len() < data.len() => (p, 1),
            _ => (data.to_vec(), 0),
        };
        (base64::engine::general_purpose::STANDARD.encode(payload), z)
    }

    /// What a program that may have erased printed: the write size, or
    /// nothing.
    fn erase_answer(&self, erased: bool, out: &[u8]) -> Result<Option<u64>> {
        if !erased {
            if !out.is_empty() {
                return Err(self.garbage("writing", out));
            }
            return Ok(None);
        }
        let v = reply::ints(out, 1)
            .filter(|v| (0..=1 << 16).contains(&v[0]))
            .ok_or_else(|| self.garbage("erasing", out))?;
        Ok(Some(v[0].max(1) as u64))
    }

    /// Signatures of the [`SUB_BLOCK`]-byte pieces of `count` erase blocks
    /// from block `first` (the first [`SIGNATURE`] bytes of each piece's
    /// hash, at most), computed on the board: what a block held, without
    /// reading it.
    pub fn sub_block_signatures(
        &mut self,
        part: &Partition,
        first: u64,
        count: u64,
    ) -> Result<Vec<Vec<u8>>> {
        let sig = self.info.hash.size().min(SIGNATURE);
        let mut all = Vec::with_capacity(count as usize);
        let batch = 32;
        let mut k = first;
        while k < first + count {
            let n = batch.min(first + count - k);
            let out = self.call(&format!("rs({},{},{n})", part.id, k * part.block_size))?;
            let lens: Vec<usize> = (k..k + n)
                .map(|b| {
                    let r = part.block_range(b);
                    ((r.end - r.start) as usize).div_ceil(SUB_BLOCK) * sig
                })
                .collect();
            let blocks = reply::base64_lines(&out, &lens)
                .ok_or_else(|| self.garbage("reading block signatures", &out))?;
            all.extend(blocks);
            k += n;
        }
        Ok(all)
    }

    /// Keep a copy of erase block 0 in the board's RAM (for
    /// [`Board::build_and_write`] copies from it after it is erased).
    pub fn save_block0(&mut self, part: &Partition) -> Result<()> {
        let out = self.call(&format!("r0({})", part.id))?;
        if !out.is_empty() {
            return Err(self.garbage("saving block 0", &out));
        }
        Ok(())
    }

    /// Assemble `len` bytes on the board from `ops` (see [`DeltaOp`]), then
    /// erase `erase` if given and write them at `offset`. The literal bytes
    /// travel compressed when that is smaller. Returns the write size the
    /// erase reported.
    pub fn build_and_write(
        &mut self,
        part: &Partition,
        offset: u64,
        erase: Option<u64>,
        len: usize,
        literal: &[u8],
        ops: &[DeltaOp],
    ) -> Result<Option<u64>> {
        let (payload, z) = self.pack(literal);
        let ops: Vec<String> = ops
            .iter()
            .flat_map(|op| {
                let (from, n) = match *op {
                    DeltaOp::Literal(n) => (-1, n),
                    DeltaOp::Saved { from, len } => (-2 - from as i64, len),
                    DeltaOp::Copy { from, len } => (from as i64, len),
                };
                [from.to_string(), n.to_string()]
            })
            .collect();
        let code = format!(
            "rb({},{offset},{},{len},'{payload}',{z},({},))",
            part.id,
            erase.unwrap_or(0),
            ops.join(",")
        );
        let out = self.call(&code)?;
        self.erase_answer(erase.is_some(), &out)
    }

    /// Unmount `/rom` (writing under a mounted image is unsafe) and forget
    /// modules that may run from it.
    pub fn unmount_rom(&mut self) -> Result<()> {
        let out = self.call("ru()")?;
        if !out.is_empty() {
            return Err(self.garbage("unmounting /rom", &out));
        }
        Ok(())
    }

    /// Run `code` with the helper loaded and return its output; a failure
    /// reported by the helper becomes [`ErrorKind::Ioctl`] (or
    /// [`ErrorKind::NoPartition`]), any other exception [`ErrorKind::Raised`].
    pub fn call(&mut self, code: &str) -> Result<Vec<u8>> {
        let out = self.repl.exec(code.as_bytes())?;
        if out.stderr.is_empty() {
            return Ok(out.stdout);
        }
        let line = last_line(&out.stderr);
        Err(self.error(match reply::rom_error(&line) {
            Some((op, offset, _)) if op == "partition" => ErrorKind::NoPartition {
                id: offset as u32,
                count: self.info.partitions.unwrap_or(0),
            },
            Some((op, offset, code)) => match FlashOp::from_name(&op) {
                Some(op) => ErrorKind::Ioctl {
                    op,
                    offset: offset.max(0) as u64,
                    code,
                },
                None => ErrorKind::Raised(line),
            },
            None => ErrorKind::Raised(line),
        }))
    }

    /// Run arbitrary code (tests, benchmarks): stdout and stderr.
    pub fn exec(&mut self, code: &str) -> Result<crate::repl::Output> {
        self.repl.exec(code.as_bytes())
    }

    /// Soft-reset the board from its friendly REPL: it mounts the new
    /// image and runs as after power-up. Ends the connection.
    pub fn soft_reset(self) -> Result<Traffic> {
        let traffic = self.repl.traffic();
        self.repl.soft_reset()?;
        Ok(traffic)
    }

    /// Leave the board at its friendly REPL. Ends the connection.
    pub fn close(self) -> Result<Traffic> {
        let traffic = self.repl.traffic();
        self.repl.close()?;
        Ok(traffic)
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.repl.timeouts()
    }

    /// Change the timeouts (e.g. shorter once connected, to notice a
    /// board that stops answering sooner).
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.repl.set_timeouts(timeouts);
    }

    fn garbage(&self, context: &'static str, out: &[u8]) -> Error {
        self.error(ErrorKind::Garbage {
            context,
            received: out[out.len().saturating_sub(64)..].to_vec(),
        })
    }
}

/// Bytes of the helper program as source (what a board without `deflate`
/// receives; the others get it compressed).
pub fn helper_source_len() -> usize {
    helper_source().len()
}

/// A program that inflates and runs the helper. The board inflates with a
/// [`CHUNK`]-byte window, so each piece is compressed on its own: no match
/// reaches further back than that.
fn packed_helper() -> String {
    let pieces: Vec<String> = helper_source()
        .as_bytes()
        .chunks(CHUNK)
        .map(|piece| {
            format!(
                "'{}'",
                base64::engine::general_purpose::STANDARD.encode(deflate(piece))
            )
        })
        .collect();
    format!(
        "from deflate import DeflateIO,RAW\nfrom io import BytesIO\nfrom binascii import a2b_base64 as b\nexec(b''.join(DeflateIO(BytesIO(b(p)),RAW,12).read() for p in ({},)))",
        pieces.join(",")
    )
}

/// Raw deflate at the best ratio: the board inflates with a window of
/// [`CHUNK`] bytes, enough since no piece is longer.
fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Scripted;

    /// A board's answer to one program sent in raw-paste mode, with window
    /// grants to spare.
    fn answer(stdout: &str, stderr: &str) -> Vec<u8> {
        let mut a = b"R\x01\x80\x00".to_vec();
        a.extend([1u8; 64]);
        a.push(4);
        a.extend_from_slice(stdout.as_bytes());
        a.push(4);
        a.extend_from_slice(stderr.as_bytes());
        a.extend_from_slice(b"\x04>");
        a
    }

    #[test]
    fn a_board_without_deflate_gets_the_helper_as_source() {
        let mut script = b"\r\n>>> \r\nraw REPL; CTRL-B to exit\r\n>OK100001\r\n\x04\x04>".to_vec();
        script.extend(answer(
            "",
            "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nImportError: no module named 'deflate'\r\n",
        ));
        script.extend(answer("romfs-helper 1 0 c 6918 31\r\n", ""));
        let board = Board::connect(Scripted::new(script), Timeouts::default()).unwrap();
        assert!(!board.has_deflate());
        assert_eq!(board.hash_kind(), HashKind::Crc32);
        assert_eq!(board.partition_count().unwrap(), 1);
    }

    #[test]
    fn the_packed_helper_is_smaller_and_inflates_to_the_helper() {
        let packed = packed_helper();
        let helper = helper_source();
        assert!(packed.len() * 4 < helper.len() * 3, "{}", packed.len());
        // The quoted pieces, each inflated on its own, make the helper, and
        // none is more than the board's window.
        let mut out = Vec::new();
        for b64 in packed
            .split('\'')
            .skip(1)
            .step_by(2)
            .filter(|p| !p.is_empty())
        {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let mut piece = Vec::new();
            use std::io::Read;
            flate2::read::DeflateDecoder::new(&raw[..])
                .read_to_end(&mut piece)
                .unwrap();
            assert!(piece.len() <= CHUNK, "{}", piece.len());
            out.extend(piece);
        }
        assert_eq!(out, helper.as_bytes());
        assert!(helper.len() > CHUNK, "the test covers several pieces");
    }
}
