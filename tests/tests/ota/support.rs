//! What the OTA tests share: the unix port and the package's folder.

use std::path::{Path, PathBuf};

use romfs_testkit::{venv_tool, workspace_root};

/// The unix port of MicroPython (from the test venv); `None` outside CI
/// when it cannot be installed (the test then skips, saying so).
pub fn micropython() -> Option<PathBuf> {
    venv_tool("micropython")
}

/// What `romfs publish` wrote into `www`: the manifest, and the image it
/// names (the file named by the hex of the manifest's bytes 56..64).
pub fn published(www: &Path) -> (Vec<u8>, Vec<u8>) {
    let manifest = std::fs::read(www.join("ota.manifest")).unwrap();
    let name: String = manifest[56..64]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let image = std::fs::read(www.join(name + ".romfs")).unwrap();
    (manifest, image)
}

/// `micropython/romfs_ota/`, the package's sources.
pub fn ota_dir() -> PathBuf {
    workspace_root().join("micropython/romfs_ota")
}
