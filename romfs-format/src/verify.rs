//! A full structural check of an image that reports every finding with its
//! offset, without allocating (unless the `alloc` feature is on, which lifts
//! the nesting limit and makes duplicate detection O(n log n)).

use core::fmt;

use crate::error::{Error, ErrorKind};
use crate::ext::{self, Checksum, TAG_CHECKSUM, TAG_METADATA};
use crate::image::Image;
use crate::name::{self, NameProblem, NameRules};
use crate::record::{kind, Record, Records};
use crate::signature::{ManifestError, TAG_SIGNATURE};

/// Deepest nesting checked without `alloc`; deeper levels are a finding.
pub const MAX_DEPTH_NO_ALLOC: usize = 64;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindingKind {
    /// A record that cannot be decoded, escapes its parent, a name past its
    /// record, an indirect pointer outside the image, a file without data...
    Structure(ErrorKind),
    /// A kind-0 record: readers stop scanning there.
    UnusedRecord,
    /// A name no path can reach (see [`name::check`]).
    Name(NameProblem),
    /// A second entry with the same name in one directory (unreachable).
    DuplicateName,
    /// The image record has odd size (MicroPython requires an even size).
    OddImageSize,
    /// The stored checksum does not match the image.
    ChecksumMismatch {
        /// Stored CRC32.
        stored: u32,
        /// Computed CRC32.
        computed: u32,
    },
    /// A checksum record that is not the last top-level record (or the last
    /// before a signature record).
    MisplacedChecksum,
    /// A signature record that is not the last top-level record.
    MisplacedSignature,
    /// A signature record whose manifest is malformed or describes another
    /// extent than this image's.
    BadSignature(ManifestError),
    /// Nesting deeper than this build can check.
    TooDeep,
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FindingKind::Structure(k) => write!(f, "{k}"),
            FindingKind::UnusedRecord => f.write_str("kind-0 record (readers stop scanning here)"),
            FindingKind::Name(problem) => write!(f, "{problem}"),
            FindingKind::DuplicateName => {
                f.write_str("duplicate name in directory (this entry is unreachable)")
            }
            FindingKind::OddImageSize => f.write_str("image size is odd (must be even)"),
            FindingKind::ChecksumMismatch { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            FindingKind::MisplacedChecksum => {
                f.write_str("checksum record is not the last top-level record")
            }
            FindingKind::MisplacedSignature => {
                f.write_str("signature record is not the last top-level record")
            }
            FindingKind::BadSignature(e) => write!(f, "bad signature record: {e}"),
            FindingKind::TooDeep => f.write_str("nesting too deep to check"),
        }
    }
}

/// One problem found by [`Image::verify`], at a byte offset from the image start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// Where (byte offset from the image start).
    pub offset: usize,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "offset {:#x}: {}", self.offset, self.kind)
    }
}

impl From<Error> for Finding {
    fn from(e: Error) -> Self {
        Finding {
            kind: FindingKind::Structure(e.kind),
            offset: e.offset,
        }
    }
}

/// Counts gathered while verifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of findings reported.
    pub findings: usize,
    /// Directories seen (root excluded).
    pub dirs: usize,
    /// Files seen.
    pub files: usize,
    /// Deepest directory nesting seen (root is 0).
    pub max_depth: usize,
    /// The checksum state.
    pub checksum: Checksum,
}

impl Summary {
    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings == 0
    }
}

/// The open directories of the depth-first walk.
struct Stack<'a> {
    #[cfg(feature = "alloc")]
    items: alloc::vec::Vec<Records<'a>>,
    #[cfg(not(feature = "alloc"))]
    items: [Option<Records<'a>>; MAX_DEPTH_NO_ALLOC],
    #[cfg(not(feature = "alloc"))]
    len: usize,
}

impl<'a> Stack<'a> {
    fn new() -> Self {
        Stack {
            #[cfg(feature = "alloc")]
            items: alloc::vec::Vec::new(),
            #[cfg(not(feature = "alloc"))]
            items: core::array::from_fn(|_| None),
            #[cfg(not(feature = "alloc"))]
            len: 0,
        }
    }

    fn depth(&self) -> usize {
        #[cfg(feature = "alloc")]
        return self.items.len();
        #[cfg(not(feature = "alloc"))]
        return self.len;
    }

    /// Returns false when the stack is full.
    fn push(&mut self, r: Records<'a>) -> bool {
        #[cfg(feature = "alloc")]
        {
            self.items.push(r);
            true
        }
        #[cfg(not(feature = "alloc"))]
        {
            if self.len == MAX_DEPTH_NO_ALLOC {
                return false;
            }
            self.items[self.len] = Some(r);
            self.len += 1;
            true
        }
    }

    fn top(&mut self) -> Option<&mut Records<'a>> {
        #[cfg(feature = "alloc")]
        return self.items.last_mut();
        #[cfg(not(feature = "alloc"))]
        return match self.len {
            0 => None,
            n => self.items[n - 1].as_mut(),
        };
    }

    fn pop(&mut self) {
        #[cfg(feature = "alloc")]
        self.items.pop();
        #[cfg(not(feature = "alloc"))]
        if self.len > 0 {
            self.len -= 1;
            self.items[self.len] = None;
        }
    }
}

impl<'a> Image<'a> {
    /// Check the whole image and call `report` for every finding. The walk is
    /// iterative, so any nesting depth is safe.
    pub fn verify(&self, mut report: impl FnMut(Finding)) -> Summary {
        let mut findings = 0usize;
        let mut emit = |kind: FindingKind, offset: usize| {
            findings += 1;
            report(Finding { kind, offset });
        };
        let mut summary_dirs = 0;
        let mut summary_files = 0;
        let mut max_depth = 0;

        if self.len() % 2 == 1 {
            emit(FindingKind::OddImageSize, 0);
        }
        // One pass over the top level finds both; a wide root makes each
        // pass count.
        let trailer = self.reader().trailer().unwrap_or_default();
        let checksum = self
            .reader()
            .checksum_of(&trailer)
            .unwrap_or(Checksum::Absent);
        if let Checksum::Mismatch { stored, computed } = checksum {
            emit(
                FindingKind::ChecksumMismatch { stored, computed },
                self.len() - 4,
            );
        }
        let checksum_at = trailer.checksum.map(|(rec, _)| rec.offset);
        let signature_at = trailer.signature.map(|rec| rec.offset);
        if let Some(rec) = trailer.signature {
            if let Err(e) = self.signature_in(rec) {
                emit(FindingKind::BadSignature(e), rec.offset);
            }
        }

        let root = self.root();
        check_duplicates(self, root.records(), &mut emit);
        let mut stack = Stack::new();
        stack.push(root.records());
        let mut top_level_metadata_seen = false;
        while let Some(records) = stack.top() {
            let Some(rec) = records.next() else {
                stack.pop();
                continue;
            };
            let depth = stack.depth();
            let rec = match rec {
                Ok(rec) => rec,
                Err(e) => {
                    emit(FindingKind::Structure(e.kind), e.offset);
                    continue;
                }
            };
            match rec.kind {
                kind::UNUSED => emit(FindingKind::UnusedRecord, rec.offset),
                kind::PADDING => match ext::extension(&rec) {
                    Some((TAG_CHECKSUM, _)) if Some(rec.offset) != checksum_at => {
                        emit(FindingKind::MisplacedChecksum, rec.offset)
                    }
                    Some((TAG_SIGNATURE, _)) if Some(rec.offset) != signature_at => {
                        emit(FindingKind::MisplacedSignature, rec.offset)
                    }
                    Some((TAG_METADATA, body)) if depth == 1 && !top_level_metadata_seen => {
                        top_level_metadata_seen = true;
                        if let Err(e) =
                            ext::parse_metadata(body, rec.offset, rec.payload_offset + 4)
                        {
                            emit(FindingKind::Structure(e.kind), e.offset);
                        }
                    }
                    _ => {}
                },
                kind::DIRECTORY | kind::FILE => {
                    let (name, body_start) = match self.name_of(&rec) {
                        Ok(v) => v,
                        Err(e) => {
                            emit(FindingKind::Structure(e.kind), e.offset);
                            continue;
                        }
                    };
                    // MicroPython turns names into `str` when it lists a directory:
                    // one name that is not UTF-8 makes the whole listing fail.
                    if let Err(problem) = name::check(name, NameRules::MICROPYTHON) {
                        emit(FindingKind::Name(problem), rec.offset);
                    }
                    let body = Records::new(self.bytes(), body_start, rec.end());
                    if rec.kind == kind::DIRECTORY {
                        summary_dirs += 1;
                        max_depth = max_depth.max(depth);
                        check_duplicates(self, body.clone(), &mut emit);
                        if !stack.push(body) {
                            emit(FindingKind::TooDeep, rec.offset);
                        }
                    } else {
                        summary_files += 1;
                        check_file(self, &rec, body, &mut emit);
                    }
                }
                _ => {}
            }
        }
        Summary {
            findings,
            dirs: summary_dirs,
            files: summary_files,
            max_depth,
            checksum,
        }
    }
}

/// A file must resolve to data in range; all its nested records must decode.
fn check_file(
    image: &Image<'_>,
    rec: &Record<'_>,
    body: Records<'_>,
    emit: &mut impl FnMut(FindingKind, usize),
) {
    if let Err(e) = image.node_from_record(rec) {
        emit(FindingKind::Structure(e.kind), e.offset);
    }
    for nested in body {
        match nested {
            Err(e) => emit(FindingKind::Structure(e.kind), e.offset),
            Ok(n) if n.kind == kind::UNUSED => emit(FindingKind::UnusedRecord, n.offset),
            Ok(_) => {}
        }
    }
}

/// Report every entry whose name an earlier entry of the same directory has.
fn check_duplicates(
    image: &Image<'_>,
    body: Records<'_>,
    emit: &mut impl FnMut(FindingKind, usize),
) {
    let named = body
        .filter_map(|r| r.ok())
        .filter(|r| matches!(r.kind, kind::DIRECTORY | kind::FILE));
    #[cfg(feature = "alloc")]
    {
        let mut names: alloc::vec::Vec<(&[u8], usize)> = named
            .filter_map(|r| image.name_of(&r).ok().map(|(n, _)| (n, r.offset)))
            .collect();
        names.sort_unstable();
        for pair in names.windows(2) {
            if pair[0].0 == pair[1].0 {
                emit(FindingKind::DuplicateName, pair[1].1);
            }
        }
    }
    #[cfg(not(feature = "alloc"))]
    {
        for a in named.clone() {
            let Ok((name, _)) = image.name_of(&a) else {
                continue;
            };
            let shadowed = named
                .clone()
                .take_while(|b| b.offset < a.offset)
                .any(|b| image.name_of(&b).map(|(n, _)| n == name).unwrap_or(false));
            if shadowed {
                emit(FindingKind::DuplicateName, a.offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `depth` nested directories named "d" around an empty file "f",
    /// built inside out at the end of `out`; returns the image's start.
    fn nested(depth: usize, out: &mut [u8; 1024]) -> usize {
        let mut start = out.len() - 6;
        out[start..].copy_from_slice(&[5, 4, 1, b'f', 2, 0]);
        let wrap = |out: &mut [u8; 1024], start: usize, head: &[u8]| {
            let len = out.len() - start;
            let mut v = [0u8; 8];
            let n = crate::varuint::encode(len as u64, &mut v);
            let mut s = start - n;
            out[s..start].copy_from_slice(&v[..n]);
            s -= head.len();
            out[s..s + head.len()].copy_from_slice(head);
            s
        };
        for _ in 0..depth {
            // A directory: kind 4, length, then name length 1 and "d".
            start -= 2;
            out[start..start + 2].copy_from_slice(&[1, b'd']);
            start = wrap(out, start, &[4]);
        }
        wrap(out, start, &[0xd2, 0xcd, 0x31])
    }

    #[test]
    fn finds_duplicates_and_missing_data_in_either_build() {
        let bytes = [0xd2, 0xcd, 0x31, 0x08, 5, 2, 1, b'a', 4, 2, 1, b'a'];
        let img = Image::parse(&bytes).unwrap();
        let mut kinds = [None; 4];
        let mut n = 0;
        let summary = img.verify(|f| {
            kinds[n] = Some((f.kind, f.offset));
            n += 1;
        });
        assert_eq!(summary.findings, 2);
        assert_eq!(kinds[0], Some((FindingKind::DuplicateName, 8)));
        assert_eq!(
            kinds[1],
            Some((FindingKind::Structure(ErrorKind::FileWithoutData), 4))
        );
    }

    #[test]
    fn a_name_micropython_cannot_list_is_a_finding() {
        // A file named ff fe holding "abc": os.listdir() on MicroPython
        // raises UnicodeError for its directory.
        let bytes = [
            0xd2, 0xcd, 0x31, 0x0a, 5, 8, 2, 0xff, 0xfe, 2, 3, b'a', b'b', b'c',
        ];
        let mut found = [None; 2];
        let mut n = 0;
        let summary = Image::parse(&bytes).unwrap().verify(|f| {
            found[n] = Some((f.kind, f.offset));
            n += 1;
        });
        assert_eq!(summary.findings, 1);
        assert_eq!(found[0], Some((FindingKind::Name(NameProblem::NotUtf8), 4)));
        // UTF-8 beyond ASCII is a name MicroPython lists.
        let bytes = [
            0xd2, 0xcd, 0x31, 0x0a, 5, 8, 2, 0xc3, 0xa9, 2, 3, b'a', b'b', b'c',
        ];
        assert!(Image::parse(&bytes)
            .unwrap()
            .verify(|f| panic!("{f}"))
            .is_clean());
    }

    #[test]
    fn deep_nesting_is_checked_or_reported() {
        let mut buf = [0u8; 1024];
        let start = nested(30, &mut buf);
        let img = Image::parse(&buf[start..]).unwrap();
        let summary = img.verify(|f| panic!("{f}"));
        assert_eq!(
            (summary.dirs, summary.files, summary.max_depth),
            (30, 1, 30)
        );
        let mut path = [0u8; 70];
        for k in 0..30 {
            path[2 * k] = b'd';
            path[2 * k + 1] = b'/';
        }
        path[60] = b'f';
        assert!(img
            .lookup(&path[..61])
            .unwrap()
            .unwrap()
            .as_file()
            .is_some());
        // Deeper than the no-alloc stack: reported, never a crash.
        let mut buf = [0u8; 1024];
        let start = nested(MAX_DEPTH_NO_ALLOC + 2, &mut buf);
        let img = Image::parse(&buf[start..]).unwrap();
        let mut deep = 0;
        let summary = img.verify(|f| deep += (f.kind == FindingKind::TooDeep) as usize);
        assert_eq!(deep > 0, !cfg!(feature = "alloc"));
        assert_eq!(summary.findings, deep + (img.len() % 2));
    }
}
