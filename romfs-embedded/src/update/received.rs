//! The image as it streams in: its structure (romfs-format's scanner), the
//! CRC of every byte, and what the image's identity needs.

use romfs_format::crc32::Hasher;
use romfs_format::ext;
use romfs_format::stream::Scanner;

/// The image as it streamed past: its structure and CRCs.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) scanner: Scanner,
    /// CRC of every byte so far.
    pub(super) crc: Hasher,
    /// For the last two checksum-shaped records: their offset and the CRC
    /// of every byte before their value (the identity, if one of them turns
    /// out to be the image's checksum record).
    before_value: [Option<(usize, Hasher)>; 2],
    /// The signature check's running state.
    #[cfg(feature = "signed")]
    pub(super) signed: Option<super::signed::SignedStream>,
}

impl Received {
    pub(super) fn new() -> Self {
        Received {
            scanner: Scanner::new(),
            crc: Hasher::new(),
            before_value: [None, None],
            #[cfg(feature = "signed")]
            signed: None,
        }
    }

    /// The declared image length, once the header arrived.
    pub(super) fn total(&self) -> Option<u32> {
        // The updater refuses lengths over the slot, which is a u32.
        self.scanner.declared().map(|d| d.image_len() as u32)
    }

    pub(super) fn position(&self) -> u32 {
        self.scanner.position() as u32
    }

    /// Hash `piece`, which the scanner just took and which starts at `at`.
    /// A piece never spans two top-level records (the scanner stops at
    /// every boundary), so the record it belongs to says whether it holds
    /// a checksum value.
    pub(super) fn hash(&mut self, piece: &[u8], at: u32) {
        let record = match self.scanner.at_record_boundary() {
            true => self.scanner.last_record(),
            false => self.scanner.current_record(),
        };
        let value_start = record
            .filter(|r| r.header.kind == romfs_format::record::kind::PADDING)
            .filter(|r| r.header.len == ext::CHECKSUM_PAYLOAD_LEN)
            .map(|r| (r.header.offset, r.header.end() - 4));
        match value_start {
            Some((offset, start)) if (at as usize..at as usize + piece.len()).contains(&start) => {
                let (before, after) = piece.split_at(start - at as usize);
                self.crc.update(before);
                self.before_value = [
                    self.before_value[1].take(),
                    Some((offset, self.crc.clone())),
                ];
                self.crc.update(after);
            }
            _ => self.crc.update(piece),
        }
        #[cfg(feature = "signed")]
        if let Some(signed) = &mut self.signed {
            let boundary = self.scanner.at_record_boundary();
            (signed.hash)(signed, piece, boundary);
        }
    }

    /// The image's identity, or a checksum record's stored value that does
    /// not match what arrived: (stored, computed).
    pub(super) fn identity(&self) -> Result<u32, (u32, u32)> {
        let Some(record) = self.scanner.checksum_record() else {
            return Ok(self.crc.value());
        };
        let stored = record.checksum().unwrap_or(0);
        let computed = self
            .before_value
            .iter()
            .flatten()
            .find(|(offset, _)| *offset == record.header.offset)
            .map_or(0, |(_, crc)| crc.value());
        match computed == stored {
            true => Ok(stored),
            false => Err((stored, computed)),
        }
    }
}
