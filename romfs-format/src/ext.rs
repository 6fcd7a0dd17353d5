//! Our extension records: an integrity checksum and build metadata, each in a
//! padding record (kind 1) whose payload starts with [`MAGIC`] and a tag byte.
//! MicroPython skips padding records, so images stay readable there.
//! `FORMAT.md` describes the layout byte for byte.

use crate::error::{Error, ErrorKind};
use crate::image::Image;
use crate::record::{kind, Record, RecordHeader};
use crate::signature::{ManifestError, SignedManifest};
use crate::varuint;

/// The payload prefix that marks a padding record as one of ours.
pub const MAGIC: [u8; 3] = *b"RFS";
/// Tag of the checksum record: body is the CRC32 (IEEE) little-endian.
pub const TAG_CHECKSUM: u8 = b'C';
/// Tag of the metadata record: body is a list of fields.
pub const TAG_METADATA: u8 = b'M';

/// Metadata field: the tool that wrote the image (UTF-8).
pub const FIELD_TOOL: u64 = 1;
/// Metadata field: a free-form label (UTF-8).
pub const FIELD_LABEL: u64 = 2;
/// Metadata field: a generation number (a varuint), higher is newer.
pub const FIELD_GENERATION: u64 = 3;
/// Metadata field: build time in seconds since the Unix epoch (a varuint).
pub const FIELD_BUILD_TIME: u64 = 4;
/// Metadata field: the product (board) the image is for (UTF-8); signed
/// images carry it in their manifest too.
pub const FIELD_PRODUCT: u64 = 5;

/// Bytes of an extension record's payload before its body: magic and tag.
pub const EXTENSION_PREFIX_LEN: usize = MAGIC.len() + 1;

/// Payload length of a checksum record: prefix and the 4-byte CRC.
pub const CHECKSUM_PAYLOAD_LEN: usize = EXTENSION_PREFIX_LEN + 4;

/// The tag of an extension record whose payload starts with `prefix`, if
/// it is one of ours.
pub fn extension_tag(prefix: &[u8]) -> Option<u8> {
    match prefix {
        [m0, m1, m2, tag, ..] if [*m0, *m1, *m2] == MAGIC => Some(*tag),
        _ => None,
    }
}

/// If `rec` is one of our extension records, its tag and body.
pub fn extension<'a>(rec: &Record<'a>) -> Option<(u8, &'a [u8])> {
    if rec.kind != kind::PADDING {
        return None;
    }
    let tag = extension_tag(rec.payload)?;
    Some((tag, rec.payload.get(EXTENSION_PREFIX_LEN..)?))
}

/// The CRC stored in a checksum record's payload, if that is what it is.
pub fn checksum_value(payload: &[u8]) -> Option<u32> {
    match (extension_tag(payload), payload.get(EXTENSION_PREFIX_LEN..)) {
        (Some(TAG_CHECKSUM), Some(&[c0, c1, c2, c3])) => Some(u32::from_le_bytes([c0, c1, c2, c3])),
        _ => None,
    }
}

/// What the image says about its own integrity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Checksum {
    /// No checksum record ends the image.
    Absent,
    /// The stored CRC32 matches the image.
    Valid(u32),
    /// The stored CRC32 does not match.
    Mismatch {
        /// The value stored in the image.
        stored: u32,
        /// The value computed over the image.
        computed: u32,
    },
}

/// Build metadata carried by the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Metadata<'a> {
    /// Offset of the metadata record.
    pub offset: usize,
    /// The tool that wrote the image.
    pub tool: Option<&'a [u8]>,
    /// A free-form label.
    pub label: Option<&'a [u8]>,
    /// Generation number; higher is newer.
    pub generation: Option<u64>,
    /// Build time, seconds since the Unix epoch.
    pub build_time: Option<u64>,
    /// The product the image is for.
    pub product: Option<&'a [u8]>,
}

/// Parse a metadata record's body (the bytes after magic and tag).
/// `offset` is the body's absolute offset, for errors.
pub fn parse_metadata(
    body: &[u8],
    record_offset: usize,
    body_offset: usize,
) -> Result<Metadata<'_>, Error> {
    let mut md = Metadata {
        offset: record_offset,
        ..Metadata::default()
    };
    // Decode relative to the body, then report absolute offsets.
    let mut pos = 0;
    while pos < body.len() {
        let at = |e: Error| Error::new(e.kind, body_offset + e.offset);
        let (field, p) = varuint::decode(body, pos, body.len()).map_err(at)?;
        let (len, p) = varuint::decode(body, p, body.len()).map_err(at)?;
        if len > (body.len() - p) as u64 {
            return Err(Error::new(ErrorKind::BadExtension, body_offset + pos));
        }
        let value = &body[p..p + len as usize];
        let number = || -> Result<u64, Error> {
            match varuint::decode(value, 0, value.len()) {
                Ok((v, n)) if n == value.len() => Ok(v),
                _ => Err(Error::new(ErrorKind::BadExtension, body_offset + p)),
            }
        };
        match field {
            FIELD_TOOL => md.tool = Some(value),
            FIELD_LABEL => md.label = Some(value),
            FIELD_GENERATION => md.generation = Some(number()?),
            FIELD_BUILD_TIME => md.build_time = Some(number()?),
            FIELD_PRODUCT => md.product = Some(value),
            _ => {} // Unknown fields are skipped: room for later additions.
        }
        pos = p + len as usize;
    }
    Ok(md)
}

impl<'a> Image<'a> {
    /// The metadata record among the top-level records, if any.
    pub fn metadata(&self) -> Result<Option<Metadata<'a>>, Error> {
        let Some(h) = self.reader().extension_record(TAG_METADATA)? else {
            return Ok(None);
        };
        let rec = Record::from_header(self.bytes(), h);
        let body = rec.payload.get(EXTENSION_PREFIX_LEN..).unwrap_or(&[]);
        parse_metadata(body, rec.offset, rec.payload_offset + EXTENSION_PREFIX_LEN).map(Some)
    }

    /// The checksum record, if the last top-level record is one: its offset
    /// and the stored CRC.
    pub fn checksum_record(&self) -> Option<(usize, u32)> {
        self.reader().checksum_record().ok().flatten()
    }

    /// The signature record's manifest and signature, if the image ends
    /// with a signature record; an error when that record is malformed or
    /// its manifest does not describe this image's extent.
    pub fn signature(&self) -> Option<Result<SignedManifest, ManifestError>> {
        let h = self.reader().signature_record().ok()??;
        Some(self.signature_in(h))
    }

    /// [`Image::signature`] of the signature record `h`.
    pub(crate) fn signature_in(&self, h: RecordHeader) -> Result<SignedManifest, ManifestError> {
        let rec = Record::from_header(self.bytes(), h);
        let body = rec.payload.get(EXTENSION_PREFIX_LEN..).unwrap_or(&[]);
        SignedManifest::parse(body).and_then(|signed| {
            let m = &signed.manifest;
            match m.signed_len as usize == rec.offset && m.image_len as usize == self.len() {
                true => Ok(signed),
                false => Err(ManifestError::Lengths {
                    image_len: m.image_len,
                    signed_len: m.signed_len,
                }),
            }
        })
    }

    /// The image's identity (see [`Reader::identity`](crate::Reader::identity)).
    pub fn identity(&self) -> u32 {
        // Reading memory cannot fail.
        self.reader().identity().unwrap_or(0)
    }

    /// Check the integrity checksum: CRC32 of every image byte before the
    /// stored value, which is the image's last 4 bytes.
    pub fn checksum(&self) -> Checksum {
        // Reading memory cannot fail, and an image whose top-level records
        // do not decode has no checksum record.
        self.reader().checksum().unwrap_or(Checksum::Absent)
    }
}
