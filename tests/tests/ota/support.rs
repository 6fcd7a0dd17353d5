//! What the OTA tests share: the unix port and the package's folder.

use std::path::PathBuf;

use romfs_testkit::{venv_tool, workspace_root};

/// The unix port of MicroPython (from the test venv); `None` outside CI
/// when it cannot be installed (the test then skips, saying so).
pub fn micropython() -> Option<PathBuf> {
    venv_tool("micropython")
}

/// `micropython/romfs_ota/`, the package's sources.
pub fn ota_dir() -> PathBuf {
    workspace_root().join("micropython/romfs_ota")
}
