//! romfs-embedded (work in progress).
