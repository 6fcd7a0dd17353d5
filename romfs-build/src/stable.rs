//! Building in the stable layout: the image a board (or the last release)
//! holds is the base, so that unchanged files keep their place in flash
//! (FORMAT.md, section 2.3).

use std::fs;
use std::io::Read;
use std::path::Path;

use romfs_format::write::{self, build_stable, StableOptions, StableReport};

use crate::build::{check_max_size, count_shared, layout_error, packed_entries, ImageTree};
use crate::error::{BuildError, InputProblem};
use crate::options::BuildOptions;
use crate::scan::input_error;
use crate::{BuildReport, Progress};

/// Build `src` at `out` in the stable layout, reusing the placement of
/// `base` (the bytes of the image the new one replaces) where it can; with
/// no base, or one that cannot help, the image is laid out afresh and
/// [`StableReport::fresh`] says why. The output is replaced atomically.
pub fn build_with_base(
    src: &Path,
    out: &Path,
    opts: &BuildOptions,
    stable: &StableOptions,
    base: Option<&[u8]>,
    progress: &dyn Progress,
) -> Result<(BuildReport, StableReport), BuildError> {
    let sources = crate::build::sources(src, out, opts, progress)?;
    let image = sources.image_tree()?;
    let crate::build::Sources {
        options,
        tree,
        compiled,
        warnings,
        ..
    } = sources;
    let mut contents = Vec::with_capacity(image.paths.len());
    for (i, path) in image.paths.iter().enumerate() {
        let mut data = Vec::new();
        fs::File::open(path)
            .and_then(|f| f.take(u64::MAX).read_to_end(&mut data))
            .map_err(|e| input_error(path, InputProblem::Io(e)))?;
        let want = image.tree.file(nth_file(&image, i)).map_or(0, |s| s.len);
        if data.len() as u64 != want {
            return Err(BuildError::Changed {
                path: path.clone(),
                expected: want,
                actual: data.len() as u64,
            });
        }
        contents.push(data);
    }
    let slices: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
    let mut built = build_stable(&image.tree, &slices, &options, stable, base)
        .map_err(layout_error(out, &tree))?;
    let len = built.bytes.len() as u64;
    check_max_size(opts, out, len)?;
    let signature = match opts.sign.as_deref() {
        Some(key) => {
            Some(
                romfs_sign::sign(&mut built.bytes, key).map_err(|error| BuildError::Sign {
                    path: out.to_path_buf(),
                    error,
                })?,
            )
        }
        None => None,
    };
    write_atomically(out, &built.bytes)?;
    let checksum = romfs_format::Image::parse(&built.bytes)
        .ok()
        .and_then(|i| i.checksum_record())
        .map(|(_, crc)| crc);
    let mut stats = write::Stats {
        files: built.placements.len(),
        dirs: built.order.len() - built.placements.len(),
        bytes_in: built.placements.iter().map(|p| p.len).sum(),
        image_len: len,
        ..Default::default()
    };
    count_shared(&mut stats, built.placements.iter().copied());
    let packed = packed_entries(
        built.placements.iter().copied(),
        built.order.iter().copied(),
        &image,
        &compiled,
    );
    progress.finish();
    Ok((
        BuildReport {
            stats,
            checksum,
            signature,
            compiled: compiled.nodes.len(),
            mpy_cross: compiled.compiler.map(|c| c.program),
            excluded: tree.excluded,
            notes: compiled.notes,
            warnings,
            packed,
        },
        built.report,
    ))
}

/// The writer node of the `i`-th file source.
fn nth_file(image: &ImageTree, i: usize) -> write::NodeRef {
    image.file_nodes[i]
}

/// Through the one output writer (symlinks followed, devices written in
/// place, other non-regular files never replaced).
fn write_atomically(out: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    crate::output::write_file(out, bytes).map_err(|error| BuildError::Output {
        path: out.to_path_buf(),
        error,
    })
}
