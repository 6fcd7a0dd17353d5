//! Content classes for deduplication: files with identical bytes get the
//! same class, so the writer stores their data once.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::error::{BuildError, InputProblem};
use crate::scan::{input_error, SourceKind, SourceTree};

const CHUNK: usize = 64 * 1024;

/// A file whose data is stored once for several files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shared {
    /// Files with the same class have identical bytes.
    pub(crate) class: u64,
    /// CRC-32 of the bytes compared, so that the file whose bytes are
    /// written can be checked against what the others were compared with.
    pub(crate) crc: u32,
}

/// Give files with identical bytes the same class (keyed by source node).
/// Only files whose length another file shares are read: hashed first,
/// then compared byte for byte.
pub(crate) fn content_classes(tree: &SourceTree) -> Result<HashMap<usize, Shared>, BuildError> {
    let mut by_len: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, n) in tree.nodes.iter().enumerate() {
        if let SourceKind::File { len, .. } = n.kind {
            if len >= romfs_format::write::MIN_DEDUP_LEN {
                by_len.entry(len).or_default().push(i);
            }
        }
    }
    let path_of = |i: usize| match &tree.nodes[i].kind {
        SourceKind::File { path, .. } => path.as_path(),
        SourceKind::Dir(_) => Path::new(""),
    };
    let mut classes = HashMap::new();
    let mut next_class = 0u64;
    let mut groups: Vec<(u64, Vec<usize>)> =
        by_len.into_iter().filter(|(_, v)| v.len() > 1).collect();
    groups.sort_unstable(); // deterministic class numbering
    for (_, files) in groups {
        let mut by_hash: HashMap<u32, Vec<usize>> = HashMap::new();
        for &f in &files {
            by_hash.entry(hash_file(path_of(f))?).or_default().push(f);
        }
        let mut hashed: Vec<(u32, Vec<usize>)> =
            by_hash.into_iter().filter(|(_, v)| v.len() > 1).collect();
        hashed.sort_unstable();
        for (crc, same_hash) in hashed {
            // Representatives of the distinct contents seen so far.
            let mut reps: Vec<(usize, u64)> = Vec::new();
            for f in same_hash {
                let mut class = None;
                for &(rep, c) in &reps {
                    if same_bytes(path_of(rep), path_of(f))? {
                        class = Some(c);
                        break;
                    }
                }
                let c = class.unwrap_or_else(|| {
                    next_class += 1;
                    reps.push((f, next_class));
                    next_class
                });
                classes.insert(f, Shared { class: c, crc });
            }
        }
    }
    Ok(classes)
}

fn read_error(path: &Path) -> impl Fn(io::Error) -> BuildError + '_ {
    move |e| input_error(path, InputProblem::Io(e))
}

fn hash_file(path: &Path) -> Result<u32, BuildError> {
    let mut f = fs::File::open(path).map_err(read_error(path))?;
    let mut h = romfs_format::crc32::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match read_up_to(&mut f, &mut buf).map_err(read_error(path))? {
            0 => return Ok(h.finalize()),
            n => h.update(&buf[..n]),
        }
    }
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool, BuildError> {
    let mut fa = fs::File::open(a).map_err(read_error(a))?;
    let mut fb = fs::File::open(b).map_err(read_error(b))?;
    let mut ba = vec![0u8; CHUNK];
    let mut bb = vec![0u8; CHUNK];
    loop {
        let na = read_up_to(&mut fa, &mut ba).map_err(read_error(a))?;
        let nb = read_up_to(&mut fb, &mut bb).map_err(read_error(b))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Fill `buf` as far as the file goes; fewer bytes only at its end.
fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
