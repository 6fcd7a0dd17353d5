//! `romfs mount` / `romfs umount`, and the mount options that `romfs mount`
//! and `romfs-mount` share: one definition, one precedence rule.

use std::process::Command;

use clap::Parser;
use romfs_cli::cli::{Cli, Command as Subcommand};
use romfs_cli::mount_cli::RomfsMountCli;
use romfs_mount::MountOptions;

/// The options `romfs mount ARGS IMG MNT` would mount with.
fn romfs_mount_options(args: &[&str]) -> Result<MountOptions, clap::Error> {
    let argv = ["romfs", "mount"]
        .iter()
        .chain(args)
        .chain(&["a.img", "mnt"]);
    match Cli::try_parse_from(argv)?.command {
        Subcommand::Mount(m) => Ok(m.options.to_options()),
        other => panic!("parsed as {other:?}"),
    }
}

/// The options `romfs-mount ARGS IMG MNT` would mount with.
fn standalone_options(args: &[&str]) -> Result<MountOptions, clap::Error> {
    let argv = ["romfs-mount"].iter().chain(args).chain(&["a.img", "mnt"]);
    Ok(RomfsMountCli::try_parse_from(argv)?.mount_options())
}

/// Arguments, and how they change the default options.
type Case = (&'static [&'static str], fn(&mut MountOptions));

#[test]
fn both_commands_parse_mount_options_alike() {
    let cases: &[Case] = &[
        (&[], |_| {}),
        // A flag wins over -o, wherever it is.
        (&["--uid", "5", "-o", "uid=6"], |o| o.uid = Some(5)),
        (&["-o", "uid=6", "--uid", "5"], |o| o.uid = Some(5)),
        (&["-o", "gid=1", "--gid", "2", "-o", "gid=3"], |o| {
            o.gid = Some(2)
        }),
        (&["-o", "threads=9", "--threads", "3", "-f"], |o| {
            o.threads = Some(3);
            o.foreground = true;
        }),
        // Later -o items win over earlier ones.
        (&["-o", "uid=1,gid=2", "-o", "uid=3"], |o| {
            o.uid = Some(3);
            o.gid = Some(2);
        }),
        // umask sets both modes; --file-mode then overrides one.
        (&["-o", "umask=027", "--file-mode", "0600"], |o| {
            o.file_mode = 0o600;
            o.dir_mode = 0o550;
        }),
        (&["--dir-mode", "0o750", "-oallow_other,readahead=0"], |o| {
            o.dir_mode = 0o750;
            o.allow_other = true;
            o.readahead_mib = 0;
        }),
        (
            &["--allow-other", "-o", "noexec,fsname=app,ignore_checksum"],
            |o| {
                o.allow_other = true;
                o.extra = vec!["noexec".into()];
                o.fsname = Some("app".into());
                o.ignore_checksum = true;
            },
        ),
    ];
    for (args, expect) in cases {
        let mut want = MountOptions::default();
        expect(&mut want);
        assert_eq!(
            romfs_mount_options(args).unwrap(),
            want,
            "romfs mount {args:?}"
        );
        assert_eq!(
            standalone_options(args).unwrap(),
            want,
            "romfs-mount {args:?}"
        );
    }
    for bad in [
        &["-o", "rw"][..],
        &["-o", "bogus"],
        &["--threads", "0"],
        &["--file-mode", "9"],
        &["--uid", "x"],
    ] {
        let a = romfs_mount_options(bad).unwrap_err();
        let b = standalone_options(bad).unwrap_err();
        assert_eq!(a.kind(), b.kind(), "{bad:?}");
        assert_eq!(a.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
    }
}

#[test]
fn both_helps_state_the_precedence_rule() {
    let rule = "overrides the same setting in -o";
    for bin in [
        env!("CARGO_BIN_EXE_romfs-mount"),
        env!("CARGO_BIN_EXE_romfs"),
    ] {
        let mut cmd = Command::new(bin);
        if bin.ends_with("/romfs") {
            cmd.arg("mount");
        }
        let out = cmd.arg("--help").output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(rule), "{bin}: {help}");
    }
}

/// Run `romfs ARGS`.
fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    crate::romfs()
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

#[test]
fn mount_serves_the_image_and_umount_removes_it() {
    if romfs_testkit::system_tool("fusermount3").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("lib")).unwrap();
    std::fs::write(src.join("lib/data.bin"), vec![7u8; 10_000]).unwrap();
    std::fs::write(src.join("hello.txt"), b"hello").unwrap();
    let img = tmp.path().join("app.img");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    assert!(run(&[&"build", &src, &"-o", &img, &"--no-mpy", &"-q"])
        .status
        .success());

    // The flag wins over -o: the files belong to 4321, not 1234.
    let out = run(&[&"mount", &"--uid", &"4321", &"-o", &"uid=1234", &img, &mnt]);
    romfs_testkit::assert_succeeded(&out, "romfs mount");
    let served = || {
        use std::os::unix::fs::MetadataExt;
        assert!(romfs_mount::is_mounted(&mnt));
        assert_eq!(std::fs::read(mnt.join("hello.txt")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read(mnt.join("lib/data.bin")).unwrap(),
            vec![7u8; 10_000]
        );
        assert_eq!(
            std::fs::metadata(mnt.join("hello.txt")).unwrap().uid(),
            4321
        );
        let err = std::fs::write(mnt.join("new.txt"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(30), "EROFS expected, got {err}");
        // Mounting again on a busy mountpoint is a clear error.
        let again = run(&[&"mount", &img, &mnt]);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("already mounted"));
    };
    let result = std::panic::catch_unwind(served);
    let out = run(&[&"umount", &mnt]);
    romfs_testkit::assert_succeeded(&out, "romfs umount");
    assert!(!romfs_mount::is_mounted(&mnt));
    result.unwrap();

    let out = run(&[&"umount", &mnt]);
    assert!(!out.status.success(), "umount of nothing must fail");
    let out = run(&[&"mount", &src.join("hello.txt"), &mnt]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a ROMFS image"));
    assert!(!romfs_mount::is_mounted(&mnt));
}
