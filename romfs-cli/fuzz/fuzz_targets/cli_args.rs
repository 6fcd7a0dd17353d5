//! Whole command lines of `romfs` and `romfs-mount` (arguments split at
//! NUL bytes, not necessarily UTF-8) through their parsers: no panic, the
//! help and error texts render, and an accepted mount command line gives
//! options within their bounds. Nothing is run.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use romfs_build::BuildTime;
use romfs_cli::cli::Cli;
use romfs_cli::mount_cli::RomfsMountCli;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .take(32)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();

    match Cli::try_parse_from(std::iter::once(OsString::from("romfs")).chain(args.clone())) {
        Ok(cli) => {
            let _ = format!("{cli:?}");
        }
        Err(e) => {
            let _ = e.render().to_string();
        }
    }
    match RomfsMountCli::try_parse_from(
        std::iter::once(OsString::from("romfs-mount")).chain(args.clone()),
    ) {
        Ok(cli) => {
            let opts = cli.mount_options();
            assert!(opts.file_mode <= 0o7777 && opts.dir_mode <= 0o7777);
            assert!(opts.threads.is_none_or(|n| (1..=romfs_mount::MAX_THREADS).contains(&n)));
            assert!(opts.readahead_mib <= romfs_mount::MAX_READAHEAD_MIB);
        }
        Err(e) => {
            let _ = e.render().to_string();
        }
    }
    // `--build-time`: `now` or Unix seconds, nothing else.
    if let Some(text) = args.first().and_then(|a| a.to_str()) {
        match text.parse::<BuildTime>() {
            Ok(BuildTime::Now) => assert_eq!(text, "now"),
            Ok(BuildTime::At(secs)) => assert_eq!(text.parse::<u64>().ok(), Some(secs)),
            Err(e) => assert!(e.to_string().contains(&format!("{text:?}")), "{e}"),
        }
    }
});
