//! Streaming over-the-air updates: A/B (two slots, commit record last) or
//! single-slot (header last), skipping sectors whose contents already match.
//!
//! Feed the new image with [`Updater::write`] in chunks of any size, then
//! call [`Updater::finish`]. Nothing becomes active before `finish` has read
//! the image back and verified it. See FORMAT.md (section 5) for what is written
//! where and in which order.

use embedded_storage::nor_flash::NorFlash;
use romfs_format::varuint::{MAX_ENCODED_LEN, MAX_VALUE};
use romfs_format::{ErrorKind, HEADER};

use crate::io::{self, ReadStats, VisitError};
use crate::partition::Region;
use crate::slots::{self, AbLayout, CommitRecord, ScanError, SlotInfo, Verify, COMMIT_LEN};

/// Size of the on-stack buffer used to compare and read back flash.
const SCRATCH: usize = 256;

/// What an update cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Sector erases.
    pub erases: u32,
    /// Write (program) operations.
    pub writes: u32,
    /// Bytes programmed.
    pub bytes_written: u64,
    /// Image sectors left alone because they already held the new contents.
    pub sectors_skipped: u32,
    /// Image sectors programmed.
    pub sectors_programmed: u32,
    /// Read operations (comparisons and read-back).
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

/// Why an update failed. In A/B mode the active image is untouched by any
/// failure; in single-slot mode a failure after the first modified sector
/// leaves no image (never a corrupt one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateError<E> {
    /// The flash failed.
    Flash(E),
    /// The stream does not start with the ROMFS header `d2 cd 31`.
    NotAnImage,
    /// The image's length varuint is malformed.
    BadHeader(ErrorKind),
    /// The image does not fit the slot.
    TooLarge {
        /// Declared image length.
        image_len: u64,
        /// Bytes available in the slot.
        capacity: u32,
    },
    /// More bytes arrived than the image declares.
    TooLong {
        /// The declared length.
        image_len: u32,
    },
    /// The stream ended before the image did.
    Truncated {
        /// Bytes received.
        received: u32,
        /// Declared length, if the header arrived.
        image_len: Option<u32>,
    },
    /// The CRC32 of the received image differs from the expected one (the
    /// caller's, or the image's own checksum record).
    ChecksumMismatch {
        /// The expected CRC.
        expected: u32,
        /// The CRC computed over what arrived.
        computed: u32,
    },
    /// Reading the written image (or commit) back gave different bytes.
    VerifyFailed,
    /// The buffer is too small: it must hold one sector (A/B) or two (single slot).
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// The layout does not suit the flash (alignment, bounds, sizes).
    BadLayout,
    /// The generation counter is exhausted.
    GenerationExhausted,
    /// Single slot with [`Updater::require_header_safe`]: the image's first
    /// write unit is not constant (see
    /// [`romfs_format::header_is_write_safe`]), so a power cut while it is
    /// programmed could show MicroPython a wrong image length. Build the
    /// image with `romfs build --flash-write-size W`. Nothing was written.
    HeaderNotSafe {
        /// The flash write size.
        write_size: u32,
    },
    /// An earlier error ended this update.
    Aborted,
}

impl<E> From<VisitError<E>> for UpdateError<E> {
    fn from(e: VisitError<E>) -> Self {
        match e {
            VisitError::Flash(e) => UpdateError::Flash(e),
            _ => UpdateError::BadLayout,
        }
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for UpdateError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UpdateError::Flash(e) => write!(f, "flash error: {e:?}"),
            UpdateError::NotAnImage => f.write_str("not a ROMFS image (expected header d2 cd 31)"),
            UpdateError::BadHeader(k) => write!(f, "bad image header: {k}"),
            UpdateError::TooLarge {
                image_len,
                capacity,
            } => {
                write!(
                    f,
                    "image of {image_len} bytes does not fit the slot's {capacity} bytes"
                )
            }
            UpdateError::TooLong { image_len } => {
                write!(f, "stream longer than the declared {image_len} bytes")
            }
            UpdateError::Truncated {
                received,
                image_len,
            } => {
                write!(f, "stream ended after {received} bytes of {image_len:?}")
            }
            UpdateError::ChecksumMismatch { expected, computed } => {
                write!(
                    f,
                    "checksum mismatch: expected {expected:08x}, got {computed:08x}"
                )
            }
            UpdateError::VerifyFailed => f.write_str("read-back verification failed"),
            UpdateError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: {needed} bytes needed")
            }
            UpdateError::BadLayout => f.write_str("layout does not suit the flash"),
            UpdateError::GenerationExhausted => f.write_str("generation counter exhausted"),
            UpdateError::HeaderNotSafe { write_size } => write!(
                f,
                "image header is not safe for {write_size}-byte flash writes in a single slot \
                 (build it with --flash-write-size {write_size})"
            ),
            UpdateError::Aborted => f.write_str("update aborted by an earlier error"),
        }
    }
}

#[cfg(feature = "std")]
impl<E: core::fmt::Debug> std::error::Error for UpdateError<E> {}

/// The outcome of a successful update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// What it cost.
    pub stats: UpdateStats,
    /// Image length.
    pub image_len: u32,
    /// Image CRC32.
    pub crc: u32,
    /// A/B: the newly committed slot. Single slot: `None`.
    pub slot: Option<SlotInfo>,
    /// Single slot: the flash already held exactly this image; nothing was written.
    pub unchanged: bool,
    /// Single slot: the image is header-safe for this flash's write size
    /// (see [`Updater::header_safe`]). A/B: always true (the commit record,
    /// not the image header, decides what mounts).
    pub header_safe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ab {
        layout: AbLayout,
        index: usize,
        generation: u32,
    },
    Single,
}

/// Follows the top-level records as they stream past, to learn whether the
/// last one is our checksum record (as `Image::checksum_record` would).
#[derive(Debug, Clone, Copy)]
struct TopLevel {
    state: TState,
    var: u64,
    var_n: usize,
    kind: u64,
    len: u32,
    head: [u8; 4],
    head_n: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TState {
    Kind,
    Len,
    Payload(u32),
    Dead,
}

impl TopLevel {
    fn new() -> Self {
        TopLevel {
            state: TState::Kind,
            var: 0,
            var_n: 0,
            kind: 0,
            len: 0,
            head: [0; 4],
            head_n: 0,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                TState::Dead => return,
                TState::Kind | TState::Len => {
                    let b = bytes[i];
                    i += 1;
                    self.var_n += 1;
                    self.var = (self.var << 7) | u64::from(b & 0x7f);
                    if self.var_n > MAX_ENCODED_LEN || self.var > MAX_VALUE {
                        self.state = TState::Dead;
                        return;
                    }
                    if b & 0x80 != 0 {
                        continue;
                    }
                    let v = self.var;
                    self.var = 0;
                    self.var_n = 0;
                    if self.state == TState::Kind {
                        if v == 0 {
                            self.state = TState::Dead; // kind 0 ends the scan
                            return;
                        }
                        self.kind = v;
                        self.state = TState::Len;
                    } else {
                        self.len = v as u32;
                        self.head_n = 0;
                        self.state = if v == 0 {
                            TState::Kind
                        } else {
                            TState::Payload(v as u32)
                        };
                    }
                }
                TState::Payload(left) => {
                    let take = (left as usize).min(bytes.len() - i);
                    for &b in bytes[i..i + take].iter().take(4 - self.head_n) {
                        self.head[self.head_n] = b;
                        self.head_n += 1;
                    }
                    i += take;
                    let left = left - take as u32;
                    self.state = if left == 0 {
                        TState::Kind
                    } else {
                        TState::Payload(left)
                    };
                }
            }
        }
    }

    /// True when the stream ended right after a checksum record.
    fn ends_with_checksum(&self) -> bool {
        self.state == TState::Kind
            && self.var_n == 0
            && self.kind == romfs_format::record::kind::PADDING
            && self.len == 8
            && self.head[..3] == romfs_format::ext::MAGIC
            && self.head[3] == romfs_format::ext::TAG_CHECKSUM
    }
}

/// A streaming image update in progress; see the module docs.
#[derive(Debug)]
pub struct Updater<'b, F> {
    flash: F,
    target: Target,
    region: Region,
    buf: &'b mut [u8],
    total: Option<u32>,
    received: u32,
    crc: crc32fast::Hasher,
    crc_pre: crc32fast::Hasher,
    tail: [u8; 4],
    top: TopLevel,
    header_safe: Option<bool>,
    require_header_safe: bool,
    invalidated: bool,
    failed: bool,
    reads: ReadStats,
    stats: UpdateStats,
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl<'b, F: NorFlash> Updater<'b, F> {
    fn check_geometry(buf_len: usize, sectors: usize) -> Result<(), UpdateError<F::Error>> {
        let (e, w) = (F::ERASE_SIZE, F::WRITE_SIZE);
        if e < 64 || w == 0 || e % w != 0 || F::READ_SIZE > SCRATCH || u32::try_from(e).is_err() {
            return Err(UpdateError::BadLayout);
        }
        if buf_len < sectors * e {
            return Err(UpdateError::BufferTooSmall {
                needed: sectors * e,
            });
        }
        Ok(())
    }

    fn with(flash: F, target: Target, region: Region, buf: &'b mut [u8]) -> Self {
        Updater {
            flash,
            target,
            region,
            buf,
            total: None,
            received: 0,
            crc: crc32fast::Hasher::new(),
            crc_pre: crc32fast::Hasher::new(),
            tail: [0; 4],
            top: TopLevel::new(),
            header_safe: None,
            require_header_safe: false,
            invalidated: false,
            failed: false,
            reads: ReadStats::default(),
            stats: UpdateStats::default(),
        }
    }

    /// Start an A/B update of `flash` (offsets of `layout` are offsets of
    /// `flash`). The target is the slot that mounting with `verify` would
    /// *not* pick; the active slot is never written. `buf` must hold one
    /// sector (`ERASE_SIZE` bytes).
    pub fn begin_ab(
        mut flash: F,
        layout: AbLayout,
        verify: Verify,
        buf: &'b mut [u8],
    ) -> Result<Self, UpdateError<F::Error>> {
        Self::check_geometry(buf.len(), 1)?;
        if layout.erase_size() as usize != F::ERASE_SIZE || !layout.fits(flash.capacity()) {
            return Err(UpdateError::BadLayout);
        }
        let mut scratch = [0u8; SCRATCH];
        let mut reads = ReadStats::default();
        let mut state =
            |i| match slots::slot_flash(&mut flash, &layout, i, verify, &mut scratch, &mut reads) {
                Ok(s) => Ok(s),
                Err(ScanError::Flash(e)) => Err(UpdateError::Flash(e)),
                Err(ScanError::BufferTooSmall) => Err(UpdateError::BadLayout),
            };
        let states = [state(0)?, state(1)?];
        let active = slots::newest(states);
        let index = active.map_or(0, |a| 1 - a.index);
        let generation = match states.iter().flatten().map(|s| s.generation).max() {
            None => 1,
            Some(g) => g.checked_add(1).ok_or(UpdateError::GenerationExhausted)?,
        };
        let mut up = Self::with(
            flash,
            Target::Ab {
                layout,
                index,
                generation,
            },
            layout.image_region(index),
            buf,
        );
        up.reads = reads;
        Ok(up)
    }

    /// Start a single-slot update of the image at the start of `region`
    /// (MicroPython's layout: one ROM partition). `buf` must hold two
    /// sectors: the first sector's new contents are kept until the end,
    /// when the header is written last.
    pub fn begin_single(
        flash: F,
        region: Region,
        buf: &'b mut [u8],
    ) -> Result<Self, UpdateError<F::Error>> {
        Self::check_geometry(buf.len(), 2)?;
        if !region.is_aligned(F::ERASE_SIZE) || !region.fits(flash.capacity()) || region.len == 0 {
            return Err(UpdateError::BadLayout);
        }
        Ok(Self::with(flash, Target::Single, region, buf))
    }

    /// Single slot: refuse ([`UpdateError::HeaderNotSafe`], before anything
    /// is written) an image that is not header-safe for this flash's
    /// `WRITE_SIZE`. Call it before the first [`write`](Self::write). With
    /// `WRITE_SIZE <= 3` every image is header-safe; A/B updates ignore it.
    ///
    /// Without it such an image is still written (last unit last, verified),
    /// but a power cut during the final program of its first write unit can
    /// leave a state that MicroPython, which checks nothing beyond the magic
    /// and the declared length, mounts with a wrong length. Our own readers
    /// refuse that state when the image has a checksum record.
    pub fn require_header_safe(mut self) -> Self {
        self.require_header_safe = true;
        self
    }

    /// Single slot: whether the image is header-safe for this flash's
    /// `WRITE_SIZE` (see [`romfs_format::header_is_write_safe`]); `None`
    /// until the image length has arrived. A/B: always `Some(true)` once
    /// known.
    pub fn header_safe(&self) -> Option<bool> {
        self.header_safe
    }

    fn check_header_safe(&self) -> Result<(), UpdateError<F::Error>> {
        if self.require_header_safe && self.header_safe == Some(false) {
            return Err(UpdateError::HeaderNotSafe {
                write_size: F::WRITE_SIZE as u32,
            });
        }
        Ok(())
    }

    /// The region the image is being written to.
    pub fn target_region(&self) -> Region {
        self.region
    }

    /// A/B: the slot being written (0 = A) and the generation it will get.
    pub fn target_slot(&self) -> Option<(usize, u32)> {
        match self.target {
            Target::Ab {
                index, generation, ..
            } => Some((index, generation)),
            Target::Single => None,
        }
    }

    /// Costs so far.
    pub fn stats(&self) -> UpdateStats {
        UpdateStats {
            reads: self.reads.reads,
            bytes_read: self.reads.bytes,
            ..self.stats
        }
    }

    /// The flash back (e.g. after an error).
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Bytes received so far.
    pub fn received(&self) -> u32 {
        self.received
    }

    /// The declared image length, once the header has arrived.
    pub fn image_len(&self) -> Option<u32> {
        self.total
    }

    /// Feed the next chunk of the image (any size, including empty).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), UpdateError<F::Error>> {
        if self.failed {
            return Err(UpdateError::Aborted);
        }
        let r = self
            .check_header_safe()
            .and_then(|()| self.write_inner(chunk));
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn sector_buf_start(&self, sector: u32) -> usize {
        if self.target == Target::Single && sector == 0 {
            F::ERASE_SIZE
        } else {
            0
        }
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<(), UpdateError<F::Error>> {
        let e = F::ERASE_SIZE as u32;
        while !data.is_empty() {
            if let Some(total) = self.total {
                if self.received >= total {
                    return Err(UpdateError::TooLong { image_len: total });
                }
            }
            let sector = self.received / e;
            let at = (self.received % e) as usize;
            let mut n = data.len().min(e as usize - at);
            match self.total {
                Some(total) => n = n.min((total - self.received) as usize),
                // Until the length is known, take just enough to decode it.
                None => {
                    n = n.min(
                        (3 + MAX_ENCODED_LEN)
                            .saturating_sub(self.received as usize)
                            .max(1),
                    )
                }
            }
            let (piece, rest) = data.split_at(n);
            let base = self.sector_buf_start(sector);
            self.buf[base + at..base + at + n].copy_from_slice(piece);
            self.crc.update(piece);
            if let Some(total) = self.total {
                self.track(piece, self.received, total);
            }
            for &b in piece {
                self.tail = [self.tail[1], self.tail[2], self.tail[3], b];
            }
            self.received += n as u32;
            data = rest;
            if self.total.is_none() {
                self.parse_header()?;
            }
            if self.received.is_multiple_of(e) {
                self.flush(sector, e as usize)?;
            }
        }
        Ok(())
    }

    /// Feed the pre-tail CRC and the record tracker with `piece`, which
    /// starts at image offset `start`.
    fn track(&mut self, piece: &[u8], start: u32, total: u32) {
        let pre_end = total.saturating_sub(4);
        if start < pre_end {
            let k = ((pre_end - start) as usize).min(piece.len());
            self.crc_pre.update(&piece[..k]);
        }
        self.top.feed(piece);
    }

    fn parse_header(&mut self) -> Result<(), UpdateError<F::Error>> {
        let got = self.received as usize;
        let base = self.sector_buf_start(0);
        let head = &self.buf[base..base + got.min(F::ERASE_SIZE)];
        let m = head.len().min(3);
        if head[..m] != HEADER[..m] {
            return Err(UpdateError::NotAnImage);
        }
        if head.len() < 4 {
            return Ok(());
        }
        // The header must arrive within the first sector (it is parsed from
        // the sector buffer); only a 64-byte sector can hold less than the
        // longest header.
        let limit = (3 + MAX_ENCODED_LEN).min(F::ERASE_SIZE);
        let (len, p) = match romfs_format::varuint::decode(head, 3, head.len()) {
            Ok(v) => v,
            Err(e) if e.kind == ErrorKind::VaruintTruncated && head.len() < limit => return Ok(()),
            Err(e) if e.kind == ErrorKind::VaruintTruncated => {
                return Err(UpdateError::BadHeader(ErrorKind::VaruintOverlong))
            }
            Err(e) => return Err(UpdateError::BadHeader(e.kind)),
        };
        self.header_safe = Some(match self.target {
            Target::Single => romfs_format::header_is_write_safe(&head[..p], F::WRITE_SIZE),
            Target::Ab { .. } => true,
        });
        self.check_header_safe()?;
        let total = p as u64 + len;
        if total > self.region.len as u64 {
            return Err(UpdateError::TooLarge {
                image_len: total,
                capacity: self.region.len,
            });
        }
        let total = total as u32;
        if total < self.received {
            return Err(UpdateError::TooLong { image_len: total });
        }
        self.total = Some(total);
        // Catch up on the bytes that arrived before the length was known.
        let mut early = [0u8; 3 + MAX_ENCODED_LEN];
        if got > early.len() {
            return Err(UpdateError::BadHeader(ErrorKind::VaruintOverlong));
        }
        early[..got].copy_from_slice(&self.buf[base..base + got]);
        let pre_end = (total.saturating_sub(4) as usize).min(got);
        self.crc_pre.update(&early[..pre_end]);
        self.top.feed(&early[p..got]);
        Ok(())
    }

    /// Compare `addr..addr + data.len()` with `data` (the first `n` bytes
    /// matter; the rest is padding). Returns (equal, all erased).
    fn compare(
        &mut self,
        addr: u32,
        buf_at: usize,
        n: usize,
        padded: usize,
    ) -> Result<(bool, bool), UpdateError<F::Error>> {
        let mut scratch = [0u8; SCRATCH];
        let data = &self.buf[buf_at..buf_at + padded];
        let (mut equal, mut erased, mut off) = (true, true, 0usize);
        io::visit(
            &mut self.flash,
            addr,
            padded as u32,
            &mut scratch,
            &mut self.reads,
            |piece| {
                for (i, &b) in piece.iter().enumerate() {
                    let k = off + i;
                    if k < n && data[k] != b {
                        equal = false;
                    }
                    if b != 0xff {
                        erased = false;
                    }
                }
                off += piece.len();
                equal || erased
            },
        )?;
        Ok((equal, erased))
    }

    fn all_erased(&mut self, addr: u32, len: usize) -> Result<bool, UpdateError<F::Error>> {
        let mut scratch = [0u8; SCRATCH];
        let mut erased = true;
        io::visit(
            &mut self.flash,
            addr,
            len as u32,
            &mut scratch,
            &mut self.reads,
            |piece| {
                erased = piece.iter().all(|&b| b == 0xff);
                erased
            },
        )?;
        Ok(erased)
    }

    fn erase(&mut self, addr: u32) -> Result<(), UpdateError<F::Error>> {
        self.flash
            .erase(addr, addr + F::ERASE_SIZE as u32)
            .map_err(UpdateError::Flash)?;
        self.stats.erases += 1;
        Ok(())
    }

    /// Program `buf[at..at + len]` at `addr`, leaving runs of all-0xFF
    /// write units of at least 32 bytes unprogrammed (so an all-0xFF unit
    /// reads as, and is, erased; short gaps are programmed along with their
    /// neighbours to keep the number of operations low).
    fn program(&mut self, addr: u32, at: usize, len: usize) -> Result<(), UpdateError<F::Error>> {
        let w = F::WRITE_SIZE;
        let min_gap = round_up(32, w);
        let blank = |buf: &[u8], k: usize| buf[at + k..at + k + w].iter().all(|&b| b == 0xff);
        let mut u = 0;
        while u < len {
            if blank(self.buf, u) {
                u += w;
                continue;
            }
            // Extend over non-blank units and blank gaps shorter than min_gap.
            let mut v = u + w;
            loop {
                let mut g = v;
                while g < len && blank(self.buf, g) && g - v < min_gap {
                    g += w;
                }
                if g < len && g - v < min_gap && !blank(self.buf, g) {
                    v = g + w;
                } else {
                    break;
                }
            }
            self.flash
                .write(addr + u as u32, &self.buf[at + u..at + v])
                .map_err(UpdateError::Flash)?;
            self.stats.writes += 1;
            self.stats.bytes_written += (v - u) as u64;
            u = v;
        }
        Ok(())
    }

    /// Make sure no reader will accept the target while it is modified:
    /// A/B erases the target's commit record, single-slot the first sector.
    fn invalidate(&mut self) -> Result<(), UpdateError<F::Error>> {
        if self.invalidated {
            return Ok(());
        }
        let (addr, check) = match self.target {
            Target::Ab { layout, index, .. } => (
                layout.commit_offset(index),
                round_up(COMMIT_LEN, F::WRITE_SIZE),
            ),
            Target::Single => (self.region.offset, F::ERASE_SIZE),
        };
        if !self.all_erased(addr, check)? {
            self.erase(addr)?;
        }
        self.invalidated = true;
        Ok(())
    }

    /// Write sector `sector` of the image (its first `n` bytes are in the
    /// buffer) unless the flash already holds them.
    fn flush(&mut self, sector: u32, n: usize) -> Result<(), UpdateError<F::Error>> {
        if self.target == Target::Single && sector == 0 {
            return Ok(()); // Kept in RAM until the end.
        }
        let addr = self.region.offset + sector * F::ERASE_SIZE as u32;
        let at = self.sector_buf_start(sector);
        let padded = round_up(n, F::WRITE_SIZE);
        self.buf[at + n..at + padded].fill(0xff);
        let (equal, erased) = self.compare(addr, at, n, padded)?;
        if equal {
            self.stats.sectors_skipped += 1;
            return Ok(());
        }
        self.invalidate()?;
        if !erased {
            self.erase(addr)?;
        }
        self.program(addr, at, padded)?;
        self.stats.sectors_programmed += 1;
        Ok(())
    }

    /// CRC32 of the image as it now is in flash; the first `skip` bytes are
    /// taken from `buf[skip_at..]` instead (the held-back header).
    fn readback_crc(
        &mut self,
        total: u32,
        skip: usize,
        skip_at: usize,
    ) -> Result<u32, UpdateError<F::Error>> {
        let mut h = crc32fast::Hasher::new();
        let skip = skip.min(total as usize);
        h.update(&self.buf[skip_at..skip_at + skip]);
        let mut scratch = [0u8; SCRATCH];
        let from = self.region.offset + skip as u32;
        io::visit(
            &mut self.flash,
            from,
            total - skip as u32,
            &mut scratch,
            &mut self.reads,
            |piece| {
                h.update(piece);
                true
            },
        )?;
        Ok(h.finalize())
    }

    /// Finish the update: check the length and checksums (`expected_crc`,
    /// e.g. from a manifest, and the image's own checksum record if it has
    /// one), write the last sector, read everything back, and commit.
    pub fn finish(mut self, expected_crc: Option<u32>) -> Result<Report, UpdateError<F::Error>> {
        if self.failed {
            return Err(UpdateError::Aborted);
        }
        let total = match self.total {
            Some(t) if t == self.received => t,
            image_len => {
                return Err(UpdateError::Truncated {
                    received: self.received,
                    image_len,
                })
            }
        };
        let computed = self.crc.clone().finalize();
        if let Some(expected) = expected_crc {
            if expected != computed {
                return Err(UpdateError::ChecksumMismatch { expected, computed });
            }
        }
        if self.top.ends_with_checksum() {
            let stored = u32::from_le_bytes(self.tail);
            let pre = self.crc_pre.clone().finalize();
            if stored != pre {
                return Err(UpdateError::ChecksumMismatch {
                    expected: stored,
                    computed: pre,
                });
            }
        }
        self.check_header_safe()?;
        let e = F::ERASE_SIZE as u32;
        if total % e != 0 {
            self.flush(total / e, (total % e) as usize)?;
        }
        let w = F::WRITE_SIZE;
        match self.target {
            Target::Single => {
                let n0 = (total as usize).min(e as usize);
                let padded0 = round_up(n0, w);
                let s0 = e as usize;
                self.buf[s0 + n0..s0 + padded0].fill(0xff);
                if !self.invalidated {
                    let (equal, _) = self.compare(self.region.offset, s0, n0, padded0)?;
                    if equal {
                        self.stats.sectors_skipped += 1;
                        return Ok(self.report(total, computed, None, true));
                    }
                }
                self.invalidate()?;
                // Everything but the header's write unit, then verify, then the header.
                let hold = w.min(padded0);
                self.program(self.region.offset + hold as u32, s0 + hold, padded0 - hold)?;
                self.stats.sectors_programmed += 1;
                if self.readback_crc(total, hold, s0)? != computed {
                    return Err(UpdateError::VerifyFailed);
                }
                self.program(self.region.offset, s0, hold)?;
                if self.readback_crc(total, 0, s0)? != computed {
                    return Err(UpdateError::VerifyFailed);
                }
                Ok(self.report(total, computed, None, false))
            }
            Target::Ab {
                layout,
                index,
                generation,
            } => {
                if self.readback_crc(total, 0, 0)? != computed {
                    return Err(UpdateError::VerifyFailed);
                }
                self.invalidate()?;
                let rec = CommitRecord::new(generation, total, computed);
                let padded = round_up(COMMIT_LEN, w);
                if padded > self.buf.len() {
                    return Err(UpdateError::BadLayout);
                }
                self.buf[..padded].fill(0xff);
                self.buf[..COMMIT_LEN].copy_from_slice(zerocopy::IntoBytes::as_bytes(&rec));
                let at = layout.commit_offset(index);
                self.program(at, 0, padded)?;
                let mut scratch = [0u8; SCRATCH];
                let info = slots::slot_flash(
                    &mut self.flash,
                    &layout,
                    index,
                    Verify::CommitOnly,
                    &mut scratch,
                    &mut self.reads,
                )
                .map_err(|e| match e {
                    ScanError::Flash(e) => UpdateError::Flash(e),
                    ScanError::BufferTooSmall => UpdateError::BadLayout,
                })?;
                match info {
                    Some(info) if info.generation == generation && info.image_crc == computed => {
                        Ok(self.report(total, computed, Some(info), false))
                    }
                    _ => Err(UpdateError::VerifyFailed),
                }
            }
        }
    }

    fn report(&self, image_len: u32, crc: u32, slot: Option<SlotInfo>, unchanged: bool) -> Report {
        Report {
            stats: self.stats(),
            image_len,
            crc,
            slot,
            unchanged,
            header_safe: self.header_safe.unwrap_or(false),
        }
    }
}
