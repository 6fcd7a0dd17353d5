//! Reading allocates nothing: parse, lookup, listing, data access, checksum
//! and metadata run under a counting allocator that must stay at zero.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use romfs_format::write::Options;
use romfs_format::{Dir, Image, Node};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::SeqCst) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn walk(dir: Dir<'_>, sum: &mut u64) {
    for e in dir.entries() {
        match e.unwrap() {
            Node::Dir(d) => walk(d, sum),
            Node::File(f) => *sum += f.data().iter().map(|&b| b as u64).sum::<u64>(),
        }
    }
}

#[test]
fn reading_allocates_nothing() {
    let tree = common::sample_tree();
    for opts in [Options::default(), Options::mpremote()] {
        let bytes = tree.build(&opts).unwrap();
        let paths: [&[u8]; 5] = [
            b"main.py",
            b"/lib/helper.py",
            b"assets/b.bin",
            b"empty",
            b"missing/x",
        ];
        COUNTING.store(true, Ordering::SeqCst);
        let img = Image::parse(&bytes).unwrap();
        let mut sum = 0;
        for p in paths {
            if let Some(Node::File(f)) = img.lookup(p).unwrap() {
                sum += f.len() as u64;
            }
        }
        walk(img.root(), &mut sum);
        let _ = img.checksum();
        let _ = img.metadata().unwrap();
        COUNTING.store(false, Ordering::SeqCst);
        assert!(sum > 0);
        assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0, "reading allocated");
    }
}
