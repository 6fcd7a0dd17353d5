//! Reading arbitrary byte ranges of a `ReadNorFlash` through a small
//! scratch buffer, honouring `READ_SIZE`.

use embedded_storage::nor_flash::ReadNorFlash;

/// Counts of flash reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Read operations issued to the flash.
    pub reads: u64,
    /// Bytes those operations transferred.
    pub bytes: u64,
}

/// Visit the bytes `offset..offset + len` of `flash` in order, a piece at a
/// time, reading aligned blocks into `scratch` (which must hold at least
/// `READ_SIZE` bytes). `visit` returns `false` to stop early. Returns
/// `Ok(true)` when every byte was visited, `Ok(false)` when stopped.
pub(crate) fn visit<F: ReadNorFlash>(
    flash: &mut F,
    offset: u32,
    len: u32,
    scratch: &mut [u8],
    stats: &mut ReadStats,
    mut visit: impl FnMut(&[u8]) -> bool,
) -> Result<bool, VisitError<F::Error>> {
    let rs = F::READ_SIZE.max(1) as u64;
    let chunk = scratch.len() as u64 - scratch.len() as u64 % rs;
    if chunk == 0 {
        return Err(VisitError::ScratchTooSmall);
    }
    let capacity = flash.capacity() as u64;
    let end = offset as u64 + len as u64;
    let mut pos = offset as u64;
    while pos < end {
        let start = pos - pos % rs;
        let want = (end - start).div_ceil(rs) * rs;
        let n = want.min(chunk).min(capacity.saturating_sub(start));
        if n == 0 || start > u32::MAX as u64 {
            return Err(VisitError::OutOfBounds);
        }
        let buf = scratch
            .get_mut(..n as usize)
            .ok_or(VisitError::ScratchTooSmall)?;
        flash.read(start as u32, buf).map_err(VisitError::Flash)?;
        stats.reads += 1;
        stats.bytes += n;
        let from = (pos - start) as usize;
        let to = ((end - start).min(n)) as usize;
        let piece = buf.get(from..to).ok_or(VisitError::OutOfBounds)?;
        if !visit(piece) {
            return Ok(false);
        }
        pos = start + to as u64;
    }
    Ok(true)
}

/// Why [`visit`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VisitError<E> {
    Flash(E),
    ScratchTooSmall,
    OutOfBounds,
}

/// Read `out.len()` bytes at `offset` (any alignment) through `scratch`.
pub(crate) fn read_into<F: ReadNorFlash>(
    flash: &mut F,
    offset: u32,
    out: &mut [u8],
    scratch: &mut [u8],
    stats: &mut ReadStats,
) -> Result<(), VisitError<F::Error>> {
    let len = u32::try_from(out.len()).map_err(|_| VisitError::OutOfBounds)?;
    let mut at = 0usize;
    visit(flash, offset, len, scratch, stats, |piece| {
        if let Some(dst) = out.get_mut(at..at + piece.len()) {
            dst.copy_from_slice(piece);
        }
        at += piece.len();
        true
    })?;
    Ok(())
}

/// CRC32 of `offset..offset + len`.
pub(crate) fn crc<F: ReadNorFlash>(
    flash: &mut F,
    offset: u32,
    len: u32,
    scratch: &mut [u8],
    stats: &mut ReadStats,
) -> Result<u32, VisitError<F::Error>> {
    let mut h = crc32fast::Hasher::new();
    visit(flash, offset, len, scratch, stats, |piece| {
        h.update(piece);
        true
    })?;
    Ok(h.finalize())
}
