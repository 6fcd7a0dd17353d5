//! The build's progress bar on stderr, shown only once a build has run for
//! a while (short builds print nothing).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use romfs_build::Progress;

/// How long a build runs before the bar appears.
const SHOW_AFTER: Duration = Duration::from_millis(300);

/// A bar for [`romfs_build::build`]'s phases.
pub(crate) struct Bar {
    bar: Option<ProgressBar>,
    start: Instant,
}

impl Bar {
    /// A bar, or none at all when `enabled` is false (quiet, or stderr is
    /// not a terminal).
    pub(crate) fn new(enabled: bool) -> Self {
        Bar {
            bar: enabled.then(|| ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())),
            start: Instant::now(),
        }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64, bytes: bool) {
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(0);
            b.set_message(name.to_string());
            let template = if bytes {
                "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
            } else {
                "{msg:>10} [{bar:30}] {pos}/{len} files"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                b.set_style(style.progress_chars("=> "));
            }
        }
    }

    fn advance(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
            if b.is_hidden() && self.start.elapsed() > SHOW_AFTER {
                b.set_draw_target(ProgressDrawTarget::stderr());
            }
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
