//! Read-ahead for sequential readers: a background thread faults the image
//! in ahead of them, so the FUSE threads copy from memory instead of waiting
//! for the disk.
//!
//! Why the kernel's own readahead is not enough: the FUSE threads read the
//! image through the mapping, and a page fault there reads around the
//! faulting page, in small pages, while the thread that faulted waits. Here
//! a separate thread marks the next window of the mapping `MADV_HUGEPAGE`
//! and asks for it with `MADV_POPULATE_READ`: the kernel then reads in 2 MiB
//! folios and maps them whole, and the replying threads find the data
//! mapped. On this project's benchmark machine that took cold sequential
//! reads from about 1.0x to 1.3x squashfuse (see `bench/mount-RESULTS.md`).
//!
//! Only streams that look sequential are read ahead (a READ that continues
//! the previous one of the same stream), and only their windows get huge
//! pages, so random reads cost no extra I/O: a fault elsewhere reads what
//! the device's readahead says, as for any mapping.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use memmap2::{Advice, Mmap};

/// One populate call: a PMD-sized folio.
const CHUNK: u64 = 2 << 20;
/// How far behind the end of a stream a READ may start and still belong to
/// it (served out of order).
const BEHIND: u64 = 2 << 20;
/// Sequential streams tracked at once (e.g. several `cp` processes).
const SLOTS: usize = 8;

/// One run of reads through the image.
#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    /// Furthest byte read so far.
    end: u64,
    /// Where the populate thread has got to (the window is `end..end + window`).
    done: u64,
    /// READs that continued this stream; read-ahead starts at two.
    hits: u32,
    /// Last use, for replacing the least recently used slot.
    stamp: u64,
}

/// The sequential-stream detector, kept apart from the thread so it can be
/// tested on its own.
#[derive(Debug)]
pub(crate) struct Streams {
    slots: [Stream; SLOTS],
    clock: u64,
    /// Bytes of the image: nothing beyond is read ahead.
    limit: u64,
    /// How far ahead of a sequential reader the image is read.
    window: u64,
}

impl Streams {
    pub(crate) fn new(limit: u64, window: u64) -> Self {
        Streams {
            slots: [Stream::default(); SLOTS],
            clock: 0,
            limit,
            window,
        }
    }

    /// Record a READ of image bytes `start..end`. Returns true when a
    /// sequential stream now wants more read ahead.
    pub(crate) fn note(&mut self, start: u64, end: u64) -> bool {
        self.clock += 1;
        let clock = self.clock;
        // A READ continues a stream if it starts where the stream ends, or
        // overtakes it by at most its own length (the kernel sends several
        // readahead READs at once and the FUSE threads may serve them out of
        // order). One that starts a little behind only keeps the stream
        // alive: random reads land near a stream's end often enough that
        // counting those would start read-ahead for them.
        let len = end.saturating_sub(start);
        let mut found = false;
        let mut wants = false;
        for s in self.slots.iter_mut().filter(|s| s.hits > 0) {
            if start >= s.end && start - s.end <= len {
                s.end = end;
                s.hits = s.hits.saturating_add(1);
                s.stamp = clock;
                wants = s.hits >= 2 && s.done < s.end.saturating_add(self.window).min(self.limit);
                found = true;
                break;
            }
            if start < s.end && start.saturating_add(BEHIND) >= s.end {
                s.stamp = clock;
                found = true;
                break;
            }
        }
        if !found {
            // A new candidate stream replaces the least recently used.
            if let Some(s) = self.slots.iter_mut().min_by_key(|s| s.stamp) {
                *s = Stream {
                    end,
                    done: end,
                    hits: 1,
                    stamp: clock,
                };
            }
        }
        wants
    }

    /// The next range to read ahead, if any stream wants one; it is counted
    /// as done.
    pub(crate) fn next_chunk(&mut self) -> Option<(u64, u64)> {
        let (limit, window) = (self.limit, self.window);
        loop {
            let s = self
                .slots
                .iter_mut()
                .filter(|s| s.hits >= 2 && s.done < s.end.saturating_add(window).min(limit))
                .min_by_key(|s| s.done.saturating_sub(s.end))?;
            // Whole aligned chunks, so every call is one huge-page folio.
            let from = (s.done.max(s.end) & !(CHUNK - 1)).min(limit);
            let to = from.saturating_add(CHUNK).min(limit);
            s.done = to.max(s.done);
            if to > from {
                return Some((from, to));
            }
            // Nothing left before the limit for this stream.
            s.done = limit;
        }
    }

    /// Give up on the stream that contains `offset` (the image shrank under
    /// the mount, or populating failed).
    pub(crate) fn drop_at(&mut self, offset: u64) {
        for s in self.slots.iter_mut() {
            if s.hits > 0
                && offset <= s.done
                && offset.saturating_add(self.window.saturating_add(CHUNK)) >= s.end
            {
                *s = Stream::default();
            }
        }
    }
}

struct Shared {
    streams: Mutex<Streams>,
    wake: Condvar,
    stop: AtomicBool,
    map: Arc<Mmap>,
}

/// Reads the image ahead of sequential readers, from a thread of its own
/// (started on first use: the mounter forks after preparing the image).
pub(crate) struct Readahead {
    shared: Arc<Shared>,
    started: OnceLock<bool>,
    /// `-o readahead=0`.
    disabled: bool,
}

impl Readahead {
    /// Read-ahead over `map`, of which the first `limit` bytes are the
    /// image, `window` bytes ahead of each sequential reader (0: none).
    pub(crate) fn new(map: Arc<Mmap>, limit: u64, window: u64) -> Self {
        Readahead {
            shared: Arc::new(Shared {
                streams: Mutex::new(Streams::new(limit.min(map.len() as u64), window)),
                wake: Condvar::new(),
                stop: AtomicBool::new(false),
                map,
            }),
            started: OnceLock::new(),
            disabled: window == 0,
        }
    }

    /// A READ of image bytes `start..end` was served.
    pub(crate) fn note(&self, start: u64, end: u64) {
        if self.disabled {
            return;
        }
        let wants = match self.shared.streams.lock() {
            Ok(mut s) => s.note(start, end),
            Err(_) => return,
        };
        if wants && *self.started.get_or_init(|| self.spawn()) {
            self.shared.wake.notify_one();
        }
    }

    fn spawn(&self) -> bool {
        let shared = self.shared.clone();
        std::thread::Builder::new()
            .name("romfs-readahead".into())
            .spawn(move || populate_loop(&shared))
            .is_ok()
    }
}

impl Drop for Readahead {
    fn drop(&mut self) {
        // The thread holds its own reference to the mapping; it only has to
        // notice that it is no longer wanted.
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
    }
}

fn populate_loop(shared: &Shared) {
    loop {
        let chunk = {
            let Ok(mut streams) = shared.streams.lock() else {
                return;
            };
            loop {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Some(c) = streams.next_chunk() {
                    break c;
                }
                streams = match shared.wake.wait(streams) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            }
        };
        let (from, to) = chunk;
        let (at, len) = (from as usize, (to - from) as usize);
        // Huge pages only where a sequential reader is: elsewhere a fault
        // keeps reading only the device's readahead, not 2 MiB. Where the
        // kernel or filesystem has no huge pages this does nothing and the
        // populate below still works, in small pages.
        let _ = shared.map.advise_range(Advice::HugePage, at, len);
        // Faults the range in and maps it; waits for the disk, which is the
        // point: this thread waits so the FUSE threads need not. A range
        // past the end of a since-truncated image fails with EFAULT (no
        // signal), and that stream is dropped.
        let populated = shared.map.advise_range(Advice::PopulateRead, at, len);
        if populated.is_err() {
            if let Ok(mut streams) = shared.streams.lock() {
                streams.drop_at(from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const WINDOW: u64 = 16 * MIB;

    fn drain(s: &mut Streams) -> Vec<(u64, u64)> {
        std::iter::from_fn(|| s.next_chunk()).collect()
    }

    #[test]
    fn a_sequential_reader_gets_a_window_ahead() {
        let mut s = Streams::new(1 << 30, WINDOW);
        assert!(!s.note(0, 256 << 10), "one READ is not a stream yet");
        assert!(drain(&mut s).is_empty());
        assert!(s.note(256 << 10, 512 << 10));
        let chunks = drain(&mut s);
        assert_eq!(chunks.first(), Some(&(0, 2 * MIB)));
        assert_eq!(
            chunks.last().map(|c| c.1),
            Some(512 * 1024 + WINDOW).map(|e| e.div_ceil(CHUNK) * CHUNK)
        );
        // Contiguous, whole chunks.
        for w in chunks.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        // Reading on inside the window asks only for what is new.
        assert!(s.note(512 << 10, 4 * MIB));
        let more = drain(&mut s);
        assert!(!more.is_empty() && more.iter().all(|c| c.0 >= 16 * MIB));
        assert!(more.last().unwrap().1 >= 4 * MIB + WINDOW);
    }

    #[test]
    fn the_window_is_what_the_mount_asked_for() {
        let mut s = Streams::new(1 << 30, 4 * MIB);
        s.note(0, MIB);
        s.note(MIB, 2 * MIB);
        assert_eq!(drain(&mut s).last().map(|c| c.1), Some(6 * MIB));
    }

    #[test]
    fn random_reads_never_read_ahead() {
        let mut s = Streams::new(1 << 30, WINDOW);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let start = (x % (1 << 30)) & !4095;
            // Random offsets far apart: none continues another.
            let _ = s.note(start, start + 4096);
        }
        // A chance neighbour among 10,000 reads over 1 GiB is possible; it
        // would get one window at most.
        let chunks = drain(&mut s).len() as u64;
        assert!(
            chunks * CHUNK <= WINDOW + CHUNK,
            "{chunks} chunks read ahead for random reads"
        );
    }

    #[test]
    fn interleaved_streams_are_tracked_apart() {
        let mut s = Streams::new(1 << 30, WINDOW);
        let (mut a, mut b) = (0u64, 512 * MIB);
        for _ in 0..8 {
            s.note(a, a + 256 * 1024);
            s.note(b, b + 256 * 1024);
            a += 256 * 1024;
            b += 256 * 1024;
        }
        let chunks = drain(&mut s);
        assert!(chunks.iter().any(|c| c.0 < 32 * MIB), "stream a read ahead");
        assert!(
            chunks.iter().any(|c| c.0 >= 512 * MIB),
            "stream b read ahead"
        );
        assert!(chunks
            .iter()
            .all(|c| c.0 < 32 * MIB || (512 * MIB..544 * MIB).contains(&c.0)));
    }

    #[test]
    fn out_of_order_reads_still_continue_a_stream() {
        let mut s = Streams::new(1 << 30, WINDOW);
        s.note(0, 256 << 10);
        // The kernel's READs for 512K..768K arrive before 256K..512K.
        assert!(s.note(512 << 10, 768 << 10));
        assert!(!drain(&mut s).is_empty());
        // The late one belongs to the stream: no new candidate replaces it.
        assert!(!s.note(256 << 10, 512 << 10));
        assert!(s.note(768 << 10, 1024 << 10) || drain(&mut s).is_empty());
        assert_eq!(s.slots.iter().filter(|s| s.hits > 0).count(), 1);
    }

    #[test]
    fn nothing_is_read_past_the_image() {
        let limit = 5 * MIB + 123;
        let mut s = Streams::new(limit, WINDOW);
        s.note(0, MIB);
        s.note(MIB, 2 * MIB);
        let chunks = drain(&mut s);
        assert_eq!(chunks.last().map(|c| c.1), Some(limit));
        assert!(!s.note(2 * MIB, 3 * MIB) || drain(&mut s).is_empty());
    }

    #[test]
    fn reads_beyond_the_limit_ask_for_nothing() {
        let mut s = Streams::new(3 * MIB, WINDOW);
        s.note(4 * MIB, 5 * MIB);
        s.note(5 * MIB, 6 * MIB);
        assert!(drain(&mut s).is_empty());
        s.note(u64::MAX - 10, u64::MAX);
        s.note(u64::MAX, u64::MAX);
        assert!(drain(&mut s).is_empty());
    }

    #[test]
    fn a_failed_stream_is_dropped() {
        let mut s = Streams::new(1 << 30, WINDOW);
        s.note(0, MIB);
        s.note(MIB, 2 * MIB);
        let (from, _) = s.next_chunk().unwrap();
        s.drop_at(from);
        assert!(drain(&mut s).is_empty());
        // And a later read starts over as a new candidate.
        assert!(!s.note(2 * MIB, 3 * MIB));
    }
}
