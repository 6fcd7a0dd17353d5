//! The `-o` option list and octal modes on arbitrary text: no panic, and
//! whatever is accepted is within the documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romfs_mount::{parse_mode, MountOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(mode) = parse_mode(&text) {
        assert!(mode <= 0o7777, "{text:?} gave mode {mode:o}");
        // What was accepted reads back the same, with or without 0o.
        assert_eq!(parse_mode(&format!("{mode:o}")).ok(), Some(mode));
        assert_eq!(parse_mode(&format!("0o{mode:o}")).ok(), Some(mode));
    }

    let mut opts = MountOptions::default();
    let before = opts.clone();
    match opts.parse_fuse_options(&text) {
        Ok(()) => {
            assert!(opts.file_mode <= 0o7777 && opts.dir_mode <= 0o7777);
            assert!(opts.threads.is_none_or(|n| (1..=256).contains(&n)));
            assert!(opts.readahead_mib <= 1024);
            // The mount is read-only whatever the list says.
            assert!(!text.split(',').any(|o| o.trim() == "rw"), "{text:?} accepted rw");
            // Passed-through options are single items of the list.
            for e in &opts.extra {
                assert!(!e.contains(','), "{e:?}");
                assert!(text.split(',').any(|o| o.trim() == e), "{e:?} not in {text:?}");
            }
            // The same list gives the same result again.
            let mut again = before;
            again.parse_fuse_options(&text).unwrap();
            assert_eq!(again, opts);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
