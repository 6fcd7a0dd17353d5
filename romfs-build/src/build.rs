//! Building an image, as a pipeline of steps with one job each:
//! writer options → check the paths → scan → compile → check `.mpy` →
//! content classes → writer tree → plan → write atomically → report.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use romfs_format::write::{
    self, FileSpec, Layout, MetadataSpec, Options, Plan, SignatureSpec, Stats, Tree, WriteError,
};
use romfs_sign::Verified;

use crate::compile::{self, Compiled};
use crate::dedup::{self, Shared};
use crate::emit;
use crate::error::BuildError;
use crate::mpy_check;
use crate::options::BuildOptions;
use crate::scan::{self, lossy, Patterns, SourceKind, SourceTree};

/// Progress callbacks (all optional); called from several threads while
/// compiling.
pub trait Progress: Sync {
    /// A new phase with `total` units (files or bytes).
    fn phase(&self, _name: &str, _total: u64, _bytes: bool) {}
    /// `n` more units done.
    fn advance(&self, _n: u64) {}
    /// All done.
    fn finish(&self) {}
}

/// No progress reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// One entry of the image as it was packed (for `--verbose`).
#[derive(Debug, Clone)]
pub struct PackedEntry {
    /// Path in the image.
    pub path: String,
    /// 1 for entries of the root.
    pub depth: usize,
    /// Directory?
    pub is_dir: bool,
    /// File length.
    pub len: u64,
    /// Offset of the file's data in the image.
    pub data_offset: u64,
    /// Stored as shared data (a duplicate of an earlier file).
    pub shared: bool,
    /// Compiled from a `.py`.
    pub compiled: bool,
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Counts from the layout.
    pub stats: Stats,
    /// The stored CRC32 (of every byte before it), when the image has a
    /// checksum record.
    pub checksum: Option<u32>,
    /// Who signed the image and what it vouches for, when it was signed.
    pub signature: Option<Verified>,
    /// `.py` files compiled to `.mpy`.
    pub compiled: usize,
    /// The compiler used, if any.
    pub mpy_cross: Option<PathBuf>,
    /// Entries left out by `exclude`.
    pub excluded: usize,
    /// Things the user should know (e.g. sources stored because no compiler).
    pub notes: Vec<String>,
    /// Things that may be wrong (e.g. native code that could not be checked).
    pub warnings: Vec<String>,
    /// The tree as packed, in image order.
    pub packed: Vec<PackedEntry>,
}

/// Build an image of `src` at `out`. The output is written to a temporary
/// file in `out`'s directory and renamed over `out` only on success.
pub fn build(
    src: &Path,
    out: &Path,
    opts: &BuildOptions,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildError> {
    let sources = sources(src, out, opts, progress)?;
    let image = sources.image_tree()?;
    let Sources {
        options,
        tree,
        compiled,
        warnings,
        ..
    } = sources;
    let plan = Plan::new(&image.tree, &options).map_err(layout_error(out, &tree))?;
    let stats = stats(&plan);
    check_max_size(opts, out, stats.image_len)?;
    progress.phase("writing", stats.bytes_in - stats.dedup_saved, true);
    let trailer = match opts.sign.as_deref() {
        Some(key) => emit::Trailer::Signed(key),
        None => emit::Trailer::Plain {
            checksum: options.checksum,
        },
    };
    let written = emit::write_atomically(
        &plan,
        &image.paths,
        &image.shared_crc,
        &tree,
        out,
        trailer,
        progress,
    )?;
    progress.finish();
    Ok(BuildReport {
        stats,
        checksum: written.checksum,
        signature: written.signature,
        compiled: compiled.nodes.len(),
        packed: packed_entries(plan.placements(), plan.order(), &image, &compiled),
        mpy_cross: compiled.compiler.map(|c| c.program),
        excluded: tree.excluded,
        notes: compiled.notes,
        warnings,
    })
}

/// The source must exist, and the output must be a file outside it whose
/// directory exists.
pub(crate) fn check_paths(src: &Path, out: &Path) -> Result<(), BuildError> {
    let src_canon = fs::canonicalize(src).map_err(|e| scan::classify(src, e))?;
    let out_canon = scan::canonical_lenient(out).ok_or_else(|| BuildError::Output {
        path: out.to_path_buf(),
        error: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "output directory does not exist",
        ),
    })?;
    if out_canon.starts_with(&src_canon) {
        return Err(BuildError::OutputInsideSource {
            output: out.to_path_buf(),
            source_dir: src.to_path_buf(),
        });
    }
    // A directory, socket or symlink loop fails here, before any work.
    crate::output::Destination::resolve(out).map_err(|error| BuildError::Output {
        path: out.to_path_buf(),
        error,
    })?;
    Ok(())
}

/// `--align-rule`s: a file gets the largest alignment of the rules matching
/// its path or name.
pub(crate) struct AlignRules<'a> {
    globs: Patterns,
    rules: &'a [(String, u32)],
}

impl<'a> AlignRules<'a> {
    pub(crate) fn new(rules: &'a [(String, u32)]) -> Result<Self, BuildError> {
        let globs: Vec<&str> = rules.iter().map(|(g, _)| g.as_str()).collect();
        Ok(AlignRules {
            globs: Patterns::new(&globs)?,
            rules,
        })
    }

    fn align_of(&self, rel: &str) -> Option<u32> {
        self.globs
            .matches(rel)
            .into_iter()
            .map(|i| self.rules[i].1)
            .max()
    }
}

/// The tree handed to the writer, with the host file behind each file.
pub(crate) struct ImageTree {
    pub(crate) tree: Tree,
    /// Host path of each file, indexed by `FileSpec::source`.
    pub(crate) paths: Vec<PathBuf>,
    /// For files whose data other files share: the CRC-32 their bytes had
    /// when compared (indexed like `paths`).
    shared_crc: Vec<Option<u32>>,
    /// Source node of each writer node (by writer node index).
    pub(crate) source_node: Vec<usize>,
    /// The writer node of each file, indexed like `paths`.
    pub(crate) file_nodes: Vec<write::NodeRef>,
}

impl ImageTree {
    /// Mirror `tree` in the order its entries were scanned.
    pub(crate) fn new(
        tree: &SourceTree,
        classes: &HashMap<usize, Shared>,
        align_rules: &AlignRules<'_>,
    ) -> Result<Self, BuildError> {
        let mut out = ImageTree {
            tree: Tree::new(),
            paths: Vec::new(),
            shared_crc: Vec::new(),
            source_node: vec![0],
            file_nodes: Vec::new(),
        };
        let mut stack = vec![(0usize, out.tree.root())];
        while let Some((snode, wnode)) = stack.pop() {
            let SourceKind::Dir(children) = &tree.nodes[snode].kind else {
                continue;
            };
            for &c in children {
                let n = &tree.nodes[c];
                match &n.kind {
                    SourceKind::Dir(_) => {
                        let w = out.tree.add_dir(wnode, &n.name).map_err(write_error)?;
                        stack.push((c, w));
                    }
                    SourceKind::File { path, len } => {
                        let spec = FileSpec {
                            len: *len,
                            source: out.paths.len() as u64,
                            content: classes.get(&c).map(|s| s.class),
                            align: align_rules.align_of(&n.rel),
                        };
                        out.paths.push(path.clone());
                        out.shared_crc.push(classes.get(&c).map(|s| s.crc));
                        let w = out
                            .tree
                            .add_file(wnode, &n.name, spec)
                            .map_err(write_error)?;
                        out.file_nodes.push(w);
                    }
                }
                out.source_node.push(c);
            }
        }
        Ok(out)
    }
}

/// The writer's options for `opts` (the build time resolved).
pub(crate) fn writer_options(opts: &BuildOptions) -> Result<Options, BuildError> {
    if opts.layout == Layout::Mpremote {
        return Ok(Options {
            sort: false, // entries in mpremote's order: by source name
            ..Options::mpremote()
        });
    }
    let mut options = Options::default();
    options.align = opts.align.unwrap_or(options.align);
    options.dedup = opts.dedup.unwrap_or(options.dedup);
    options.checksum = opts.checksum.unwrap_or(options.checksum);
    options.header_write_size = opts.flash_write_size;
    if let Some(md) = options.metadata.as_mut() {
        *md = MetadataSpec {
            tool: md.tool.take(),
            label: opts.label.clone(),
            generation: opts.generation,
            build_time: opts.build_time.map(|t| t.resolve()).transpose()?,
            product: opts.product.clone(),
        };
    }
    if opts.sign.is_some() {
        // validate() made sure both are there and the generation fits.
        options.signature = Some(SignatureSpec {
            product: opts.product.clone().unwrap_or_default(),
            generation: opts.generation.unwrap_or(0) as u32,
        });
    }
    Ok(options)
}

/// The plan's counts, with dedup's savings counted from the shared files.
fn stats(plan: &Plan<'_>) -> Stats {
    let mut stats = plan.stats();
    count_shared(&mut stats, plan.placements());
    stats
}

/// Dedup's savings in `stats`, counted from the files `placements` share.
pub(crate) fn count_shared(stats: &mut Stats, placements: impl Iterator<Item = write::Placement>) {
    stats.dedup_files = 0;
    stats.dedup_saved = 0;
    for p in placements.filter(|p| p.shared) {
        stats.dedup_files += 1;
        stats.dedup_saved += p.len;
    }
}

/// The tree as packed: the entries of `order` (nodes in image order, with
/// their depth), files placed as `placements` says.
pub(crate) fn packed_entries(
    placements: impl Iterator<Item = write::Placement>,
    order: impl Iterator<Item = (write::NodeRef, usize)>,
    image: &ImageTree,
    compiled: &Compiled,
) -> Vec<PackedEntry> {
    let placements: HashMap<usize, _> = placements.map(|p| (p.node.index(), p)).collect();
    order
        .map(|(node, depth)| {
            let p = placements.get(&node.index());
            PackedEntry {
                path: lossy(&image.tree.path(node)),
                depth,
                is_dir: p.is_none(),
                len: p.map_or(0, |p| p.len),
                data_offset: p.map_or(0, |p| p.data_offset),
                shared: p.is_some_and(|p| p.shared),
                compiled: compiled.nodes.contains(&image.source_node[node.index()]),
            }
        })
        .collect()
}

/// The largest source file and its length, for the message of an image
/// over the format's limit.
pub(crate) fn largest_file(tree: &SourceTree) -> Option<(PathBuf, u64)> {
    tree.nodes
        .iter()
        .filter_map(|n| match &n.kind {
            SourceKind::File { path, len } => Some((path.clone(), *len)),
            SourceKind::Dir(_) => None,
        })
        .max_by_key(|(_, len)| *len)
}

/// The writer's errors, with a better message for the one a build can
/// cause by itself (`foo.py` compiled next to a `foo.mpy` directory).
pub(crate) fn write_error(e: romfs_format::write::WriteError) -> BuildError {
    match e {
        romfs_format::write::WriteError::DuplicateName { path } => {
            BuildError::DuplicateName { path }
        }
        other => BuildError::Layout(other),
    }
}

/// A layout error of the image to be written at `out`: one too large for
/// the format names the largest file of `tree`.
pub(crate) fn layout_error<'t>(
    out: &'t Path,
    tree: &'t SourceTree,
) -> impl FnOnce(WriteError) -> BuildError + 't {
    move |e| match e {
        WriteError::TooLarge { size } => BuildError::ImageTooLarge {
            path: out.to_path_buf(),
            size,
            largest: largest_file(tree),
        },
        other => write_error(other),
    }
}

/// `--max-size`: the image of `len` bytes for `out` must not exceed it.
pub(crate) fn check_max_size(opts: &BuildOptions, out: &Path, len: u64) -> Result<(), BuildError> {
    match opts.max_size.filter(|&max| len > max) {
        Some(max) => Err(BuildError::TooBig {
            path: out.to_path_buf(),
            size: len,
            max,
        }),
        None => Ok(()),
    }
}

/// A build's inputs, read and checked: the source tree scanned and
/// compiled, with what the writer and the layouts (fresh or stable) need.
pub(crate) struct Sources<'o> {
    pub(crate) options: write::Options,
    pub(crate) tree: SourceTree,
    pub(crate) compiled: Compiled,
    pub(crate) warnings: Vec<String>,
    pub(crate) classes: HashMap<usize, Shared>,
    pub(crate) align_rules: AlignRules<'o>,
}

impl Sources<'_> {
    /// The writer's tree of these sources, deduplicated and aligned.
    pub(crate) fn image_tree(&self) -> Result<ImageTree, BuildError> {
        ImageTree::new(&self.tree, &self.classes, &self.align_rules)
    }
}

/// Check the options and paths, scan `src`, compile its `.py` files and
/// find duplicate contents: everything a build does before laying out.
pub(crate) fn sources<'o>(
    src: &Path,
    out: &Path,
    opts: &'o BuildOptions,
    progress: &dyn Progress,
) -> Result<Sources<'o>, BuildError> {
    opts.validate()?;
    let options = writer_options(opts)?;
    check_paths(src, out)?;
    let exclude = Patterns::new(&opts.exclude)?;
    let align_rules = AlignRules::new(&opts.align_rules)?;
    let mut tree = scan::scan(src, &exclude, write::name_rules(opts.layout))?;
    let compiled = compile::compile_sources(&mut tree, src, opts, progress)?;
    let warnings = mpy_check::check_mpy(&tree, opts)?;
    let classes = if options.dedup {
        dedup::content_classes(&tree)?
    } else {
        HashMap::new()
    };
    Ok(Sources {
        options,
        tree,
        compiled,
        warnings,
        classes,
        align_rules,
    })
}
