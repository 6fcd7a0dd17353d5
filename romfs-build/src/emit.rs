//! Writing a planned image as an output ([`crate::output`]): streaming
//! each file's contents from the host, signed in place when asked,
//! committed only when everything was written.

use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use romfs_format::write::{Contents, EmitError, Output, Plan};
use romfs_format::Image;
use romfs_sign::{SigningKey, Verified};

use crate::build::Progress;
use crate::error::{BuildError, InputProblem};
use crate::scan::{input_error, SourceKind, SourceTree};

const BUF: usize = 256 * 1024;

/// What was written.
pub(crate) struct Written {
    /// The stored CRC32, when the image has a checksum record.
    pub checksum: Option<u32>,
    /// The signature, when the image was signed.
    pub signature: Option<Verified>,
}

/// How to finish the image once it is written.
#[derive(Clone, Copy)]
pub(crate) enum Trailer<'a> {
    /// Nothing, or a checksum record: the last 4 bytes are its CRC.
    Plain {
        /// The plan ends the image with a checksum record.
        checksum: bool,
    },
    /// The plan lays out a signature record: sign it with this key.
    Signed(&'a SigningKey),
}

/// Write `plan` to `out`, reading file `i` from `paths[i]`, and finish it
/// as `trailer` says.
pub(crate) fn write_atomically(
    plan: &Plan<'_>,
    paths: &[PathBuf],
    shared_crc: &[Option<u32>],
    tree: &SourceTree,
    out: &Path,
    trailer: Trailer<'_>,
    progress: &dyn Progress,
) -> Result<Written, BuildError> {
    let out_err = |error: io::Error| BuildError::Output {
        path: out.to_path_buf(),
        error,
    };
    let staged = crate::output::Staged::new(out).map_err(out_err)?;
    let written = {
        let mut output = FileOutput {
            w: BufWriter::with_capacity(BUF, staged.file()),
            tail: [0; 4],
        };
        let mut contents = FsContents {
            paths,
            shared_crc,
            buf: vec![0; BUF],
            progress,
        };
        match plan.emit(&mut output, &mut contents) {
            Ok(_) => {}
            Err(EmitError::Output(EmitFail::Read(path, e))) => {
                return Err(input_error(&path, InputProblem::Io(e)))
            }
            Err(EmitError::Output(EmitFail::Write(e))) => return Err(out_err(e)),
            Err(EmitError::Output(EmitFail::Rewritten(path))) => {
                return Err(BuildError::Rewritten { path })
            }
            Err(EmitError::ContentLength {
                path,
                expected,
                actual,
            }) => {
                return Err(BuildError::Changed {
                    path: host_path(tree, &path).unwrap_or_else(|| PathBuf::from(path)),
                    expected,
                    actual,
                });
            }
        }
        let tail = output.tail;
        let tmpfile = output.w.into_inner().map_err(|e| out_err(e.into_error()))?;
        match trailer {
            Trailer::Signed(key) => sign_in_place(tmpfile, key, out)?,
            Trailer::Plain { checksum } => Written {
                // Without a signature record, the stored CRC is the last 4 bytes.
                checksum: checksum.then_some(u32::from_le_bytes(tail)),
                signature: None,
            },
        }
    };
    staged.commit().map_err(out_err)?;
    Ok(written)
}

/// Fill in the signature record of the image just written to `file`
/// (SHA-256 of everything before it, the key's id, the Ed25519 signature).
#[allow(unsafe_code)] // maps the output file (SAFETY below)
fn sign_in_place(file: &fs::File, key: &SigningKey, out: &Path) -> Result<Written, BuildError> {
    let out_err = |error: io::Error| BuildError::Output {
        path: out.to_path_buf(),
        error,
    };
    // SAFETY: the file is our private temporary file (mode 0600, created
    // by `Staged`, not yet committed): nothing else maps or changes it.
    let mut map = unsafe { memmap2::MmapMut::map_mut(file) }.map_err(out_err)?;
    let signature = romfs_sign::sign(&mut map, key).map_err(|error| BuildError::Sign {
        path: out.to_path_buf(),
        error,
    })?;
    map.flush().map_err(out_err)?;
    let checksum = Image::parse(&map)
        .ok()
        .and_then(|image| image.checksum_record())
        .map(|(_, crc)| crc);
    Ok(Written {
        checksum,
        signature: Some(signature),
    })
}

/// The host file behind the image path `rel`.
fn host_path(tree: &SourceTree, rel: &str) -> Option<PathBuf> {
    tree.nodes
        .iter()
        .find(|n| n.rel == rel)
        .and_then(|n| match &n.kind {
            SourceKind::File { path, .. } => Some(path.clone()),
            SourceKind::Dir(_) => None,
        })
}

/// A failure while emitting: reading a source or writing the output.
#[derive(Debug)]
enum EmitFail {
    Read(PathBuf, io::Error),
    Write(io::Error),
    /// A file whose data other files share changed after they were compared.
    Rewritten(PathBuf),
}

struct FileOutput<W: Write> {
    w: BufWriter<W>,
    /// The last 4 bytes written.
    tail: [u8; 4],
}

impl<W: Write> Output for FileOutput<W> {
    type Error = EmitFail;
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), EmitFail> {
        if bytes.len() >= 4 {
            self.tail.copy_from_slice(&bytes[bytes.len() - 4..]);
        } else {
            self.tail.rotate_left(bytes.len());
            self.tail[4 - bytes.len()..].copy_from_slice(bytes);
        }
        self.w.write_all(bytes).map_err(EmitFail::Write)
    }
}

struct FsContents<'a> {
    paths: &'a [PathBuf],
    shared_crc: &'a [Option<u32>],
    buf: Vec<u8>,
    progress: &'a dyn Progress,
}

impl Contents<EmitFail> for FsContents<'_> {
    fn write_contents(
        &mut self,
        source: u64,
        len: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), EmitFail>,
    ) -> Result<(), EmitFail> {
        let path = &self.paths[source as usize];
        let read_err = |e: io::Error| EmitFail::Read(path.clone(), e);
        let mut f = fs::File::open(path).map_err(read_err)?;
        let shared_crc = self.shared_crc.get(source as usize).copied().flatten();
        let mut crc = romfs_format::crc32::Hasher::new();
        // One byte more than expected, so a file that grew is noticed.
        let mut remaining = len + 1;
        while remaining > 0 {
            let want = (self.buf.len() as u64).min(remaining) as usize;
            let n = match f.read(&mut self.buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            sink(&self.buf[..n])?;
            if shared_crc.is_some() {
                crc.update(&self.buf[..n]);
            }
            self.progress.advance(n as u64);
            remaining -= n as u64;
        }
        // Same length, other bytes: the files sharing this data would get
        // bytes they never had.
        if shared_crc.is_some_and(|want| remaining == 1 && crc.finalize() != want) {
            return Err(EmitFail::Rewritten(path.clone()));
        }
        Ok(())
    }
}
