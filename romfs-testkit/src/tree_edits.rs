//! Random edits of a source tree held as path -> contents, as a developer
//! makes them between two builds: for tests of images built on a base
//! (stable layout) and of chains of such images. Each test says what its
//! trees are made of ([`TreeShape`]); the kinds of edit are shared.

use std::collections::BTreeMap;

use crate::Rng;

/// A source tree: `/`-separated relative path -> file contents.
pub type Files = BTreeMap<String, Vec<u8>>;

/// What one test's random trees are made of.
pub struct TreeShape {
    /// Contents for a new file, or to append to one.
    pub contents: fn(&mut Rng) -> Vec<u8>,
    /// A path a file is renamed or copied to.
    pub path: fn(&mut Rng) -> String,
    /// A path for an added file (in a directory that may be new).
    pub new_path: fn(&mut Rng) -> String,
    /// A directory prefix (`lib/`) to remove with all it holds; `""` is
    /// none.
    pub dir: fn(&mut Rng) -> String,
}

/// One random edit of `files` (never leaving it empty): remove, grow,
/// shrink, change a byte of, rename or copy a file, remove a directory, or
/// add a file. Returns what it did.
pub fn edit(files: &mut Files, rng: &mut Rng, shape: &TreeShape) -> String {
    let keys: Vec<&String> = files.keys().collect();
    let k = keys[rng.below(keys.len() as u64) as usize].clone();
    match rng.below(8) {
        0 if files.len() > 1 => {
            files.remove(&k);
            format!("remove {k}")
        }
        1 => {
            let more = (shape.contents)(rng);
            files.get_mut(&k).unwrap().extend(more);
            format!("grow {k}")
        }
        2 => {
            let d = files.get_mut(&k).unwrap();
            let keep = rng.below(d.len() as u64 + 1) as usize;
            d.truncate(keep);
            format!("shrink {k} to {keep}")
        }
        3 => {
            let d = files.get_mut(&k).unwrap();
            if !d.is_empty() {
                let at = rng.below(d.len() as u64) as usize;
                d[at] ^= 0x41;
            }
            format!("edit {k}")
        }
        4 => {
            let data = files.remove(&k).unwrap();
            let to = (shape.path)(rng);
            files.insert(to.clone(), data);
            format!("rename {k} to {to}")
        }
        5 => {
            let to = (shape.path)(rng);
            files.insert(to.clone(), files[&k].clone());
            format!("copy {k} to {to}")
        }
        6 => {
            // A whole directory goes (unless it is all there is).
            let d = (shape.dir)(rng);
            if !d.is_empty() && files.keys().any(|p| !p.starts_with(&d)) {
                files.retain(|p, _| !p.starts_with(&d));
            }
            format!("remove dir {d}")
        }
        _ => {
            let to = (shape.new_path)(rng);
            files.insert(to.clone(), (shape.contents)(rng));
            format!("add {to}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAT: TreeShape = TreeShape {
        contents: |rng| {
            let len = 1 + rng.below(8) as usize;
            rng.bytes(len)
        },
        path: |rng| format!("d/f{}", rng.below(1000)),
        new_path: |rng| format!("new/f{}", rng.below(1000)),
        dir: |_| "d/".into(),
    };

    /// Every kind of edit happens, and none leaves the tree empty.
    #[test]
    fn every_kind_of_edit_happens_and_the_tree_never_empties() {
        let mut rng = Rng(5);
        let mut files = Files::from([("d/a".to_string(), b"abc".to_vec())]);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let did = edit(&mut files, &mut rng, &FLAT);
            assert!(!files.is_empty(), "{did} emptied the tree");
            let kind = did.split(' ').next().unwrap().to_string();
            seen.insert(if did.starts_with("remove dir") {
                "remove dir".to_string()
            } else {
                kind
            });
        }
        let all = [
            "add",
            "copy",
            "edit",
            "grow",
            "remove",
            "remove dir",
            "rename",
            "shrink",
        ];
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), all);
    }
}
