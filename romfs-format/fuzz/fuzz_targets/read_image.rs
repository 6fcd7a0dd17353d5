//! Parse + walk + lookup + verify (+ .mpy headers of the files found) on
//! arbitrary bytes: no panic, no hang; every entry the walk finds is found
//! again by lookup (first match wins), by its directory's `find` and by its
//! id; file data is where the file says; every record of the payload
//! resolves or fails cleanly.
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
        let (Some(dir), plen) = stack[depth] else {
            continue;
        };
        for entry in dir.entries() {
            budget = match budget.checked_sub(1) {
                Some(b) => b,
                None => return,
            };
            let Ok(node) = entry else { break };
            // The node by its id is the same node; the directory finds a
            // node of this name (this one or an earlier one of the name).
            if let Ok(again) = image.node(node.id()) {
                assert_eq!(
                    (again.id(), again.name(), again.size()),
                    (node.id(), node.name(), node.size())
                );
                assert_eq!(again.is_dir(), node.is_dir());
            }
            if let Ok(Some(found)) = dir.find(node.name()) {
                assert_eq!(found.name(), node.name());
                assert!(found.id() <= node.id());
            }
            if let Node::File(f) = node {
                assert_eq!(f.len(), f.data().len());
                assert_eq!(f.is_empty(), f.data().is_empty());
                let at = f.data_offset();
                assert_eq!(&image.bytes()[at..at + f.len()], f.data());
                for r in f.records().take(8) {
                    let _ = r;
                }
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
                let tail =
                    path[..len].ends_with(f) && (f.len() == len || path[len - f.len() - 1] == b'/');
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
    let Ok(image) = Image::parse(data) else {
        return;
    };
    assert_eq!(image.is_empty(), image.payload().is_empty());
    assert!(image.payload_offset() <= image.len() && image.len() <= data.len());
    for w in [1, 2, 4, 8, 16, 256] {
        let _ = image.is_header_safe(w);
    }
    for rec in image.records().take(64) {
        let Ok(rec) = rec else { break };
        let _ = image.node_from_record(&rec);
    }
    let _ = image.metadata();
    let _ = image.checksum();
    // The one-pass trailer (what verify uses) finds what the lookups find.
    let mut reader = image.reader();
    if let Ok(t) = reader.trailer() {
        let checksum = t.checksum.map(|(rec, crc)| (rec.offset, crc));
        assert_eq!(Ok(checksum), reader.checksum_record());
        assert_eq!(Ok(t.signature), reader.signature_record());
    }
    let _ = image.verify(|_| {});
    walk(&image, image.root());
    for path in [
        &b""[..],
        b"/",
        b"a",
        b"a/b",
        b"/a/",
        b"main.py",
        b"lib/x.mpy",
    ] {
        let _ = image.lookup(path);
    }
    if data.len() > 8 {
        let _ = image.node(usize::from(data[4]) * 7);
    }
    // The input's last bytes as a .mpy header, checked for every target.
    if let Ok(h) = MpyHeader::parse(&data[data.len().saturating_sub(4)..]) {
        for name in Arch::names() {
            let arch = Arch::from_name(name).expect("a listed name");
            assert_eq!(arch.name(), name);
            assert_eq!(Arch::from_code(arch.code()), arch);
            if let Err(e) = h.check(Some(arch), None).and(h.check(None, Some(31))) {
                assert!(!e.to_string().is_empty());
            }
        }
    }
});
