//! The in-memory index built once at mount time.
//!
//! Everything the filesystem answers except file contents comes from here:
//! names are copied into one arena, so serving `lookup`, `getattr` and
//! `readdir` never touches the mapped image (which could shrink under us and
//! fault). Directories' children are contiguous node ranges (the walk is
//! breadth-first), so `readdir` at any offset is O(1), and one open-addressing
//! hash table keyed by (parent, name) makes `lookup` O(1) in any directory.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use romfs_format::{Image, Node};

/// Index of a node in [`Index::nodes`]; the root is 0.
pub(crate) type NodeIdx = u32;

/// What a node is, with what each kind needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A directory: its children are `first..first + count`; `subdirs` of
    /// them are directories.
    Dir {
        first: NodeIdx,
        count: u32,
        subdirs: u32,
    },
    /// A file: its contents are `len` bytes at `data` from the image start.
    File { data: u64, len: u64 },
}

/// One directory or file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeInfo {
    /// The inode number: record offset + 1 (so the root, at "offset 0", is 1).
    pub ino: u64,
    /// The parent directory (the root is its own parent).
    pub parent: NodeIdx,
    name_start: u32,
    name_len: u32,
    pub kind: Kind,
}

impl NodeInfo {
    pub(crate) fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }
}

/// Why an image could not be indexed for serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexError {
    /// A record could not be decoded (what, and at which offset).
    Corrupt(romfs_format::Error),
    /// Two nodes claim the same record offset, so inode numbers would be
    /// ambiguous.
    SharedOffset,
    /// More nodes or name bytes than the index can address.
    TooBig,
}

impl std::fmt::Display for IndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexError::Corrupt(e) => write!(f, "{e}"),
            IndexError::SharedOffset => f.write_str("two nodes share a record offset"),
            IndexError::TooBig => f.write_str("too many entries or names to index"),
        }
    }
}

/// The whole tree, ready to serve.
#[derive(Debug)]
pub(crate) struct Index {
    nodes: Vec<NodeInfo>,
    names: Vec<u8>,
    /// (ino, node) sorted by ino, for getattr/read by inode number.
    by_ino: Vec<(u64, NodeIdx)>,
    /// Open addressing: slot holds node index + 1, 0 = empty. Length is a
    /// power of two at least twice the number of non-root nodes.
    table: Vec<u32>,
    hasher: RandomState,
    /// Entries dropped because an earlier sibling had the same name.
    pub duplicates: usize,
    /// Longest name, in bytes.
    pub longest_name: usize,
    /// Number of files.
    pub files: usize,
}

impl Index {
    /// Walk `image` and build the index. Entries whose name an earlier
    /// sibling already has are left out (first match wins, as in MicroPython).
    pub(crate) fn build(image: &Image<'_>) -> Result<Index, IndexError> {
        let mut idx = Index {
            nodes: Vec::new(),
            names: Vec::new(),
            by_ino: Vec::new(),
            table: Vec::new(),
            hasher: RandomState::new(),
            duplicates: 0,
            longest_name: 0,
            files: 0,
        };
        idx.nodes.push(NodeInfo {
            ino: 1,
            parent: 0,
            name_start: 0,
            name_len: 0,
            kind: Kind::Dir {
                first: 0,
                count: 0,
                subdirs: 0,
            },
        });
        // Breadth-first: a directory's children are pushed together, so they
        // form one contiguous range of node indices.
        let mut queue: std::collections::VecDeque<(NodeIdx, romfs_format::Dir<'_>)> =
            std::collections::VecDeque::new();
        queue.push_back((0, image.root()));
        // Per-directory duplicate detection reuses one table sized for the
        // directory being filled; the global table is built at the end.
        while let Some((dir_idx, dir)) = queue.pop_front() {
            let first = u32::try_from(idx.nodes.len()).map_err(|_| IndexError::TooBig)?;
            let mut subdirs = 0u32;
            let mut seen: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
            for entry in dir.entries() {
                let entry = entry.map_err(IndexError::Corrupt)?;
                let name = entry.name();
                if !seen.insert(name) {
                    idx.duplicates += 1;
                    continue;
                }
                idx.longest_name = idx.longest_name.max(name.len());
                let name_start = u32::try_from(idx.names.len()).map_err(|_| IndexError::TooBig)?;
                let name_len = u32::try_from(name.len()).map_err(|_| IndexError::TooBig)?;
                idx.names.extend_from_slice(name);
                if u32::try_from(idx.names.len()).is_err() {
                    return Err(IndexError::TooBig);
                }
                let me = u32::try_from(idx.nodes.len()).map_err(|_| IndexError::TooBig)?;
                let kind = match entry {
                    Node::Dir(d) => {
                        subdirs += 1;
                        queue.push_back((me, d));
                        Kind::Dir {
                            first: 0,
                            count: 0,
                            subdirs: 0,
                        }
                    }
                    Node::File(f) => {
                        idx.files += 1;
                        Kind::File {
                            data: f.data_offset() as u64,
                            len: f.len() as u64,
                        }
                    }
                };
                idx.nodes.push(NodeInfo {
                    ino: entry.id() as u64 + 1,
                    parent: dir_idx,
                    name_start,
                    name_len,
                    kind,
                });
            }
            let count = idx.nodes.len() as u32 - first;
            idx.nodes[dir_idx as usize].kind = Kind::Dir {
                first,
                count,
                subdirs,
            };
        }
        idx.by_ino = idx
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.ino, i as NodeIdx))
            .collect();
        idx.by_ino.sort_unstable();
        // Two records cannot share an offset, but be defensive: a corrupt
        // image must not make inode numbers ambiguous.
        if idx.by_ino.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(IndexError::SharedOffset);
        }
        let slots = (idx.nodes.len() * 2).next_power_of_two().max(16);
        idx.table = vec![0; slots];
        let mask = slots - 1;
        for i in 1..idx.nodes.len() {
            let n = idx.nodes[i];
            let mut slot = idx.slot_hash(n.parent, idx.name_of(&n)) as usize & mask;
            while idx.table[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            idx.table[slot] = i as u32 + 1;
        }
        Ok(idx)
    }

    fn slot_hash(&self, parent: NodeIdx, name: &[u8]) -> u64 {
        self.hasher.hash_one((parent, name))
    }

    /// Number of nodes, root included.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The node at `idx`.
    pub(crate) fn node(&self, idx: NodeIdx) -> Option<&NodeInfo> {
        self.nodes.get(idx as usize)
    }

    /// The name of a node (empty for the root).
    pub(crate) fn name_of(&self, n: &NodeInfo) -> &[u8] {
        let start = n.name_start as usize;
        self.names
            .get(start..start + n.name_len as usize)
            .unwrap_or(&[])
    }

    /// The node with inode number `ino`.
    pub(crate) fn by_ino(&self, ino: u64) -> Option<NodeIdx> {
        self.by_ino
            .binary_search_by_key(&ino, |&(i, _)| i)
            .ok()
            .map(|pos| self.by_ino[pos].1)
    }

    /// The child of directory `parent` called `name`.
    pub(crate) fn lookup(&self, parent: NodeIdx, name: &[u8]) -> Option<NodeIdx> {
        let mask = self.table.len() - 1;
        let mut slot = self.slot_hash(parent, name) as usize & mask;
        loop {
            let v = self.table[slot];
            if v == 0 {
                return None;
            }
            let cand = v - 1;
            let n = &self.nodes[cand as usize];
            if n.parent == parent && self.name_of(n) == name {
                return Some(cand);
            }
            slot = (slot + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use romfs_format::write::{MemoryTree, Options};

    fn sample(opts: &Options) -> Vec<u8> {
        let mut t = MemoryTree::new();
        let root = t.root();
        let a = t.add_dir(root, b"a").unwrap();
        t.add_file(a, b"x.py", b"print(1)".to_vec()).unwrap();
        let b = t.add_dir(a, b"b").unwrap();
        t.add_file(b, b"deep", vec![7; 100]).unwrap();
        t.add_file(root, b"top.txt", b"hello".to_vec()).unwrap();
        t.add_dir(root, b"empty").unwrap();
        t.build(opts).unwrap()
    }

    #[test]
    fn indexes_a_tree() {
        for opts in [Options::default(), Options::mpremote()] {
            let bytes = sample(&opts);
            let image = Image::parse(&bytes).unwrap();
            let idx = Index::build(&image).unwrap();
            assert_eq!(idx.len(), 7);
            assert_eq!(idx.files, 3);
            let root = idx.node(0).unwrap();
            assert_eq!(root.ino, 1);
            let Kind::Dir { count, subdirs, .. } = root.kind else {
                panic!("root is a dir")
            };
            assert_eq!((count, subdirs), (3, 2));
            let a = idx.lookup(0, b"a").unwrap();
            let b = idx.lookup(a, b"b").unwrap();
            let deep = idx.lookup(b, b"deep").unwrap();
            let n = idx.node(deep).unwrap();
            assert_eq!(idx.name_of(n), b"deep");
            assert_eq!(n.parent, b);
            let node = image.lookup(b"a/b/deep").unwrap().unwrap();
            assert_eq!(n.ino, node.id() as u64 + 1);
            assert_eq!(idx.by_ino(n.ino), Some(deep));
            let Kind::File { data, len } = n.kind else {
                panic!("file")
            };
            assert_eq!(
                &bytes[data as usize..(data + len) as usize],
                &[7u8; 100][..]
            );
            assert_eq!(idx.lookup(0, b"nope"), None);
            assert_eq!(idx.lookup(a, b"top.txt"), None);
            assert_eq!(idx.by_ino(12345678), None);
        }
    }

    #[test]
    fn big_directory_lookups() {
        let mut t = MemoryTree::new();
        let root = t.root();
        for i in 0..5000 {
            t.add_file(root, format!("f{i:05}").as_bytes(), vec![i as u8])
                .unwrap();
        }
        let bytes = t.build(&Options::default()).unwrap();
        let image = Image::parse(&bytes).unwrap();
        let idx = Index::build(&image).unwrap();
        for i in 0..5000 {
            let n = idx.lookup(0, format!("f{i:05}").as_bytes()).unwrap();
            assert_eq!(
                idx.name_of(idx.node(n).unwrap()),
                format!("f{i:05}").as_bytes()
            );
        }
        assert_eq!(idx.lookup(0, b"f05000"), None);
    }
}
