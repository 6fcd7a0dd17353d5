//! Signing image files as release pipelines do, in a step of their own:
//! read, sign, and replace atomically.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::image::{sign_image, Verified};
use crate::key::SigningKey;

/// Sign the image file `image` as [`sign_image`] does and write the result
/// to `output` (by default `image` itself), atomically: into a temporary
/// file beside it, renamed over it only when complete, so a failure leaves
/// the file as it was. The output keeps the permissions of the file it
/// replaces (else the input's).
pub fn sign_file(
    image: &Path,
    output: Option<&Path>,
    key: &SigningKey,
    product: Option<&str>,
    generation: Option<u32>,
) -> Result<Verified> {
    let output = output.unwrap_or(image);
    let bytes = fs::read(image).map_err(|error| io(image, error))?;
    let (signed, verified) =
        sign_image(bytes, key, product, generation).map_err(|error| Error::InFile {
            path: image.to_path_buf(),
            error: Box::new(error),
        })?;
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mode = fs::metadata(output)
        .or_else(|_| fs::metadata(image))
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let mut tmp = tempfile::Builder::new()
        .prefix(".romfs-sign-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|error| io(output, error))?;
    tmp.write_all(&signed)
        .and_then(|()| tmp.as_file().sync_all())
        .and_then(|()| {
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(mode))
        })
        .map_err(|error| io(output, error))?;
    tmp.persist(output).map_err(|e| io(output, e.error))?;
    Ok(verified)
}

fn io(path: &Path, error: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        error,
    }
}
