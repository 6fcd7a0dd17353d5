//! The device's import-time check of every `.mpy` in the tree, made before
//! anything is written.

use std::fs;
use std::io::Read;

use romfs_format::mpy::MpyHeader;

use crate::error::{BuildError, InputProblem, MpyProblem};
use crate::options::BuildOptions;
use crate::scan::{input_error, SourceKind, SourceTree};

/// Decode every `.mpy`'s header and check it against the target
/// (`opts.march`, `opts.small_int_bits`). Every file the target cannot
/// load is reported in one error; native code that could not be checked
/// (no target architecture given) is a warning.
pub(crate) fn check_mpy(tree: &SourceTree, opts: &BuildOptions) -> Result<Vec<String>, BuildError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for n in &tree.nodes {
        let SourceKind::File { path, .. } = &n.kind else {
            continue;
        };
        if !n.name.ends_with(b".mpy") {
            continue;
        }
        let mut head = Vec::with_capacity(4);
        fs::File::open(path)
            .and_then(|f| f.take(4).read_to_end(&mut head))
            .map_err(|e| input_error(path, InputProblem::Io(e)))?;
        let checked = MpyHeader::parse(&head)
            .and_then(|h| h.check(opts.march, opts.small_int_bits).map(|()| h));
        match checked {
            Err(error) => problems.push(MpyProblem {
                path: n.rel.clone(),
                error,
            }),
            Ok(header) if header.has_native_code() && opts.march.is_none() => {
                warnings.push(format!(
                "{}: contains native code for {}; pass --march to check that the target can run it",
                n.rel, header.arch
            ))
            }
            Ok(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(warnings)
    } else {
        Err(BuildError::Mpy(problems))
    }
}
