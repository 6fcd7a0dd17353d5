//! `romfs mount` / `romfs umount`: a real FUSE mount of a built image.

use std::path::Path;
use std::process::Command;

fn romfs(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_romfs"))
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

fn is_mounted(mnt: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&format!(" {} ", mnt.display()))
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
    assert!(romfs(&[&"build", &src, &"-o", &img, &"--no-mpy", &"-q"])
        .status
        .success());

    let out = romfs(&[&"mount", &img, &mnt]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = || {
        assert!(is_mounted(&mnt));
        assert_eq!(std::fs::read(mnt.join("hello.txt")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read(mnt.join("lib/data.bin")).unwrap(),
            vec![7u8; 10_000]
        );
        let err = std::fs::write(mnt.join("new.txt"), b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(30), "EROFS expected, got {err}");
        // Mounting again on a busy mountpoint is a clear error.
        let again = romfs(&[&"mount", &img, &mnt]);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("already mounted"));
    };
    let result = std::panic::catch_unwind(served);
    let out = romfs(&[&"umount", &mnt]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(&mnt));
    result.unwrap();

    let out = romfs(&[&"umount", &mnt]);
    assert!(!out.status.success(), "umount of nothing must fail");
    let out = romfs(&[&"mount", &src.join("hello.txt"), &mnt]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a ROMFS image"));
    assert!(!is_mounted(&mnt));
}
