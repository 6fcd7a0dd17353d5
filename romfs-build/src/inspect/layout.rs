//! Recognising mpremote's layout: rebuilding the image's tree the way
//! `mpremote romfs build` would and comparing the bytes.

use romfs_format::write::{Contents, FileSpec, Options, Output, Plan, Tree};
use romfs_format::{Image, Node};

/// True when `image` is exactly what `mpremote romfs build` writes for the
/// tree it holds: rebuilt in mpremote layout, it compares equal byte for byte.
pub fn is_mpremote_layout(image: &Image<'_>) -> bool {
    let mut tree = Tree::new();
    let mut data: Vec<&[u8]> = Vec::new();
    let mut stack = vec![(image.root(), tree.root())];
    while let Some((dir, wdir)) = stack.pop() {
        for e in dir.entries() {
            let Ok(e) = e else { return false };
            match e {
                Node::Dir(d) => match tree.add_dir(wdir, d.name()) {
                    Ok(w) => stack.push((d, w)),
                    Err(_) => return false,
                },
                Node::File(f) => {
                    let spec = FileSpec {
                        len: f.len() as u64,
                        source: data.len() as u64,
                        content: None,
                        align: None,
                    };
                    data.push(f.data());
                    if tree.add_file(wdir, f.name(), spec).is_err() {
                        return false;
                    }
                }
            }
        }
    }
    let mut opts = Options::mpremote();
    opts.sort = false; // keep stored order; mpremote's is sorted, checked by comparison
    let Ok(plan) = Plan::new(&tree, &opts) else {
        return false;
    };
    if plan.image_len() != image.len() as u64 {
        return false;
    }
    struct Compare<'a> {
        expect: &'a [u8],
        pos: usize,
    }
    impl Output for Compare<'_> {
        type Error = ();
        fn write_all(&mut self, bytes: &[u8]) -> Result<(), ()> {
            let end = self.pos + bytes.len();
            if end > self.expect.len() || &self.expect[self.pos..end] != bytes {
                return Err(());
            }
            self.pos = end;
            Ok(())
        }
    }
    struct Slices<'a>(Vec<&'a [u8]>);
    impl Contents<()> for Slices<'_> {
        fn write_contents(
            &mut self,
            source: u64,
            _len: u64,
            sink: &mut dyn FnMut(&[u8]) -> Result<(), ()>,
        ) -> Result<(), ()> {
            sink(self.0[source as usize])
        }
    }
    let sorted = sorted_everywhere(image);
    sorted
        && plan
            .emit(
                &mut Compare {
                    expect: image.bytes(),
                    pos: 0,
                },
                &mut Slices(data),
            )
            .is_ok()
}

fn sorted_everywhere(image: &Image<'_>) -> bool {
    let mut stack = vec![image.root()];
    while let Some(dir) = stack.pop() {
        let mut prev: Option<&[u8]> = None;
        for e in dir.entries() {
            let Ok(e) = e else { return false };
            if prev.is_some_and(|p| p >= e.name()) {
                return false;
            }
            prev = Some(e.name());
            if let Node::Dir(d) = e {
                stack.push(d);
            }
        }
    }
    true
}
