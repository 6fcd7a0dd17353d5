//! romfs-build (work in progress).
