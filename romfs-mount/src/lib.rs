//! romfs-mount (work in progress).
