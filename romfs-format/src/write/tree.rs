//! What to write: a tree of directories and files, described without their
//! contents ([`Tree`]), or with them in memory ([`MemoryTree`]).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Contents, EmitError, Options, Plan, WriteError};

/// A handle to a directory or file added to a [`Tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRef(pub(super) usize);

impl NodeRef {
    /// The index of the node in its tree (the root is 0).
    pub fn index(self) -> usize {
        self.0
    }
}

/// What the writer needs to know about a file; the bytes themselves come
/// from a [`Contents`] source when the image is emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// Exact length of the contents.
    pub len: u64,
    /// The caller's handle for the contents, passed back to [`Contents`].
    pub source: u64,
    /// Files with the same `content` class have identical bytes and may be
    /// stored once (the caller guarantees it). `None`: never shared.
    pub content: Option<u64>,
    /// Alignment of this file's data, overriding [`Options::align`].
    pub align: Option<u32>,
}

#[derive(Debug, Clone)]
pub(super) enum TreeNodeKind {
    Dir(Vec<usize>),
    File(FileSpec),
}

#[derive(Debug, Clone)]
pub(super) struct TreeNode {
    pub(super) name: Vec<u8>,
    pub(super) parent: usize,
    pub(super) kind: TreeNodeKind,
}

/// A tree of directories and files to write.
#[derive(Debug, Clone)]
pub struct Tree {
    pub(super) nodes: Vec<TreeNode>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// An empty tree (just the root directory).
    pub fn new() -> Self {
        Tree {
            nodes: alloc::vec![TreeNode {
                name: Vec::new(),
                parent: 0,
                kind: TreeNodeKind::Dir(Vec::new())
            }],
        }
    }

    /// The root directory.
    pub fn root(&self) -> NodeRef {
        NodeRef(0)
    }

    fn add(
        &mut self,
        parent: NodeRef,
        name: &[u8],
        kind: TreeNodeKind,
    ) -> Result<NodeRef, WriteError> {
        let id = self.nodes.len();
        match self.nodes.get_mut(parent.0).map(|n| &mut n.kind) {
            Some(TreeNodeKind::Dir(children)) => children.push(id),
            _ => {
                return Err(WriteError::NotADirectory {
                    path: self.path_lossy(parent),
                })
            }
        }
        self.nodes.push(TreeNode {
            name: name.to_vec(),
            parent: parent.0,
            kind,
        });
        Ok(NodeRef(id))
    }

    /// Add a directory under `parent`.
    pub fn add_dir(&mut self, parent: NodeRef, name: &[u8]) -> Result<NodeRef, WriteError> {
        self.add(parent, name, TreeNodeKind::Dir(Vec::new()))
    }

    /// Add a file under `parent`.
    pub fn add_file(
        &mut self,
        parent: NodeRef,
        name: &[u8],
        spec: FileSpec,
    ) -> Result<NodeRef, WriteError> {
        self.add(parent, name, TreeNodeKind::File(spec))
    }

    /// Number of nodes, root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the tree holds only the root.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }

    /// The file spec of a node, if it is a file.
    pub fn file(&self, node: NodeRef) -> Option<&FileSpec> {
        match &self.nodes.get(node.0)?.kind {
            TreeNodeKind::File(spec) => Some(spec),
            TreeNodeKind::Dir(_) => None,
        }
    }

    /// The name of a node (empty for the root).
    pub fn name(&self, node: NodeRef) -> &[u8] {
        self.nodes
            .get(node.0)
            .map(|n| n.name.as_slice())
            .unwrap_or(&[])
    }

    /// The node's path from the root, `/`-separated, without a leading `/`.
    pub fn path(&self, node: NodeRef) -> Vec<u8> {
        let mut parts = Vec::new();
        let mut i = node.0;
        while i != 0 && i < self.nodes.len() {
            parts.push(i);
            i = self.nodes[i].parent;
        }
        let mut out = Vec::new();
        for (k, &p) in parts.iter().rev().enumerate() {
            if k > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(&self.nodes[p].name);
        }
        out
    }

    pub(super) fn path_lossy(&self, node: NodeRef) -> String {
        String::from_utf8_lossy(&self.path(node)).into_owned()
    }
}

/// A tree whose file contents are held in memory: handy for tests and small
/// images.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    tree: Tree,
    contents: Vec<Vec<u8>>,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The root directory.
    pub fn root(&self) -> NodeRef {
        self.tree.root()
    }

    /// Add a directory.
    pub fn add_dir(&mut self, parent: NodeRef, name: &[u8]) -> Result<NodeRef, WriteError> {
        self.tree.add_dir(parent, name)
    }

    /// Add a file with its contents.
    pub fn add_file(
        &mut self,
        parent: NodeRef,
        name: &[u8],
        data: Vec<u8>,
    ) -> Result<NodeRef, WriteError> {
        self.add_file_aligned(parent, name, data, None)
    }

    /// Add a file whose data needs its own alignment.
    pub fn add_file_aligned(
        &mut self,
        parent: NodeRef,
        name: &[u8],
        data: Vec<u8>,
        align: Option<u32>,
    ) -> Result<NodeRef, WriteError> {
        let spec = FileSpec {
            len: data.len() as u64,
            source: self.contents.len() as u64,
            content: None,
            align,
        };
        let node = self.tree.add_file(parent, name, spec)?;
        self.contents.push(data);
        Ok(node)
    }

    /// The underlying tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Build the image.
    pub fn build(&self, opts: &Options) -> Result<Vec<u8>, WriteError> {
        // Content classes: identical bytes get the same class.
        let mut tree = self.tree.clone();
        let mut classes: BTreeMap<&[u8], u64> = BTreeMap::new();
        for node in tree.nodes.iter_mut() {
            if let TreeNodeKind::File(spec) = &mut node.kind {
                let data = self.contents[spec.source as usize].as_slice();
                let next = classes.len() as u64;
                spec.content = Some(*classes.entry(data).or_insert(next));
            }
        }
        let plan = Plan::new(&tree, opts)?;
        let mut out = Vec::with_capacity(plan.image_len() as usize);
        let mut source = MemoryContents(&self.contents);
        match plan.emit(&mut out, &mut source) {
            Ok(_) => Ok(out),
            Err(EmitError::Output(never)) => match never {},
            Err(EmitError::ContentLength { .. }) => {
                unreachable!("in-memory contents cannot change")
            }
        }
    }
}

impl MemoryTree {
    /// Build the image in the stable layout (FORMAT.md, section 2.3), with
    /// `base` the image it replaces.
    pub fn build_stable(
        &self,
        opts: &Options,
        stable: &super::StableOptions,
        base: Option<&[u8]>,
    ) -> Result<super::StableImage, WriteError> {
        let contents: Vec<&[u8]> = self.contents.iter().map(|c| c.as_slice()).collect();
        super::build_stable(&self.tree, &contents, opts, stable, base)
    }
}

struct MemoryContents<'a>(&'a [Vec<u8>]);

impl<E> Contents<E> for MemoryContents<'_> {
    fn write_contents(
        &mut self,
        source: u64,
        _len: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        sink(&self.0[source as usize])
    }
}
