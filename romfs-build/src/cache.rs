//! A cache of compiled `.mpy` files, so a rebuild after editing one file
//! runs `mpy-cross` once instead of for every module.
//!
//! An entry is keyed by SHA-256 of everything that decides the output: the
//! source bytes, the compiler (the bytes of the `mpy-cross` binary that
//! runs) and its arguments (architecture, small-int bits, `-s` name, extra
//! options). It lives outside the source tree, in `mpy/` under romfs's
//! cache directory ([`default_root`]). Entries are
//! written to a temporary file and renamed into place, so concurrent builds
//! never see a partial file (two builds storing the same key store the
//! same bytes). A cache that cannot be used is skipped, never an error.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Bumped when the key or the entry format changes.
const FORMAT: &[u8] = b"romfs mpy cache 1\0";

/// The compiled-file cache of one compiler.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    compiler: [u8; 32],
}

/// romfs's cache directory: `$ROMFS_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/romfs`, else `~/.cache/romfs`.
pub fn default_root() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ROMFS_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").filter(|d| !d.is_empty())?).join(".cache"),
    };
    Some(base.join("romfs"))
}

/// The default directory of compiled files: `mpy/` under [`default_root`].
pub fn default_dir() -> Option<PathBuf> {
    default_root().map(|root| root.join("mpy"))
}

impl Cache {
    /// The cache in `dir` for the compiler binary `exec` (hashed once
    /// here); `None` when the binary cannot be read.
    pub fn open(dir: &Path, exec: &Path) -> Option<Cache> {
        let bytes = fs::read(exec).ok()?;
        Some(Cache {
            dir: dir.to_path_buf(),
            compiler: Sha256::digest(&bytes).into(),
        })
    }

    /// The key of compiling `source` with `args` (everything on the
    /// command line but the input and output paths).
    pub fn key(&self, source: &[u8], args: &[OsString]) -> String {
        let mut h = Sha256::new();
        h.update(FORMAT);
        h.update(self.compiler);
        for a in args {
            h.update((a.len() as u64).to_le_bytes());
            h.update(a.as_bytes());
        }
        h.update((source.len() as u64).to_le_bytes());
        h.update(source);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.mpy"))
    }

    /// Copy the entry for `key` to `out`; false when there is none (or it
    /// cannot be copied).
    pub fn fetch(&self, key: &str, out: &Path) -> bool {
        let entry = self.path(key);
        // A hard link costs nothing; across file systems, a copy.
        fs::hard_link(&entry, out).is_ok() || fs::copy(&entry, out).is_ok()
    }

    /// Store `compiled` (a file just written by the compiler) under `key`.
    /// Failures are ignored: the cache is an optimisation.
    pub fn store(&self, key: &str, compiled: &Path) {
        let _ = self.try_store(key, compiled);
    }

    fn try_store(&self, key: &str, compiled: &Path) -> std::io::Result<()> {
        let entry = self.path(key);
        let dir = entry.parent().unwrap_or(&self.dir);
        fs::create_dir_all(dir)?;
        let bytes = fs::read(compiled)?;
        let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
        tmp.write_all(&bytes)?;
        tmp.persist(&entry).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_source_compiler_and_arguments() {
        let t = tempfile::tempdir().unwrap();
        let exec = t.path().join("mpy-cross");
        fs::write(&exec, b"compiler one").unwrap();
        let cache = Cache::open(t.path(), &exec).unwrap();
        let args = vec![OsString::from("-march=armv7m")];
        let k = cache.key(b"x = 1\n", &args);
        assert_eq!(k, cache.key(b"x = 1\n", &args));
        assert_ne!(k, cache.key(b"x = 2\n", &args));
        assert_ne!(
            k,
            cache.key(b"x = 1\n", &[OsString::from("-march=armv7em")])
        );
        // Arguments are length-prefixed: no two lists give the same bytes.
        assert_ne!(
            cache.key(b"", &[OsString::from("ab"), OsString::from("c")]),
            cache.key(b"", &[OsString::from("a"), OsString::from("bc")])
        );
        fs::write(&exec, b"compiler two").unwrap();
        let other = Cache::open(t.path(), &exec).unwrap();
        assert_ne!(k, other.key(b"x = 1\n", &args));
    }

    #[test]
    fn stored_entries_come_back_and_concurrent_stores_are_whole() {
        let t = tempfile::tempdir().unwrap();
        let exec = t.path().join("mpy-cross");
        fs::write(&exec, b"compiler").unwrap();
        let cache = Cache::open(&t.path().join("cache"), &exec).unwrap();
        let key = cache.key(b"src", &[]);
        let out = t.path().join("out.mpy");
        assert!(!cache.fetch(&key, &out));
        let compiled = t.path().join("compiled.mpy");
        let body = vec![0x4du8; 100_000];
        fs::write(&compiled, &body).unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| cache.store(&key, &compiled));
            }
        });
        assert!(cache.fetch(&key, &out));
        assert_eq!(fs::read(&out).unwrap(), body);
        // No temporary files are left behind.
        let dir = cache.path(&key).parent().unwrap().to_path_buf();
        assert_eq!(fs::read_dir(dir).unwrap().count(), 1);
    }
}
