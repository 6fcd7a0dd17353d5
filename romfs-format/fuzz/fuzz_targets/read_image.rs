//! Parse + walk + lookup + verify (+ .mpy headers of the files found) on arbitrary bytes: no panic, no hang, and
//! every entry the walk finds is found again by lookup (first match wins).
#![no_main]

use libfuzzer_sys::fuzz_target;
use romfs_format::mpy::{Arch, MpyHeader};
use romfs_format::{Dir, Image, Node};

/// Walk depth-first without recursion, bounded in work; check lookup agrees
/// with the listing for entries that verify would accept.
fn walk(image: &Image<'_>, root: Dir<'_>) {
    let mut budget = 20_000usize;
    // A fixed path buffer and an explicit stack of (dir, path length).
    let mut stack: [(Option<Dir<'_>>, usize); 32] = [(None, 0); 32];
    let mut path = [0u8; 512];
    stack[0] = (Some(root), 0);
    let mut depth = 1;
    while depth > 0 {
        depth -= 1;
        let (Some(dir), plen) = stack[depth] else { continue };
        for entry in dir.entries() {
            budget = match budget.checked_sub(1) {
                Some(b) => b,
                None => return,
            };
            let Ok(node) = entry else { break };
            if let Node::File(f) = node {
                let _ = f.data().iter().fold(0u8, |a, &b| a ^ b);
                // Every file is also a candidate .mpy header.
                if let Ok(h) = MpyHeader::parse(f.data()) {
                    let _ = h.check(Some(Arch::from_code(f.data()[2])), Some(f.data()[3]));
                }
            }
            let name = node.name();
            let clean = !name.is_empty() && !name.contains(&b'/') && !name.contains(&0);
            let len = plen + usize::from(plen > 0) + name.len();
            if !clean || len > path.len() {
                continue;
            }
            if plen > 0 {
                path[plen] = b'/';
            }
            path[len - name.len()..len].copy_from_slice(name);
            // Lookup may find an earlier entry of the same name, or one
            // whose name holds a `/` and so matches several components at
            // once (MicroPython's rule: the first name that is the rest of
            // the path or is followed by `/` in it). Either way the found
            // name is a whole-component tail of the path.
            if let Ok(Some(found)) = image.lookup(&path[..len]) {
                let f = found.name();
                let tail = path[..len].ends_with(f)
                    && (f.len() == len || path[len - f.len() - 1] == b'/');
                assert!(tail, "lookup found a name that is not a tail of the path");
                if !f.contains(&b'/') {
                    assert_eq!(f, name);
                }
            }
            if let Node::Dir(d) = node {
                if depth < stack.len() {
                    stack[depth] = (Some(d), len);
                    depth += 1;
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(image) = Image::parse(data) else { return };
    let _ = image.metadata();
    let _ = image.checksum();
    let _ = image.verify(|_| {});
    walk(&image, image.root());
    for path in [&b""[..], b"/", b"a", b"a/b", b"/a/", b"main.py", b"lib/x.mpy"] {
        let _ = image.lookup(path);
    }
    if data.len() > 8 {
        let _ = image.node(usize::from(data[4]) * 7);
    }
});
