//! `romfs-mount`: mount a MicroPython ROMFS image with FUSE (like squashfuse).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use romfs_mount::{mount, parse_mode, unmount, unmount_lazy, MountError, MountOptions};

const USAGE: &str = "\
usage: romfs-mount [options] IMAGE MOUNTPOINT
       romfs-mount -u [-z] MOUNTPOINT

Mount a MicroPython ROMFS image read-only. Returns once mounted; a
background process serves the files until `romfs-mount -u MOUNTPOINT`
(or `fusermount3 -u MOUNTPOINT`).

options:
  -f, --foreground      serve in the foreground (Ctrl-C / SIGTERM unmount)
  -o OPT[,OPT...]       mount options: allow_other, allow_root, uid=N, gid=N,
                        umask=OCT, fmode=OCT, dmode=OCT, fsname=NAME,
                        threads=N, readahead=MIB (default 16, 0 = off),
                        noauto_unmount, ignore_checksum, noexec,
                        noatime, nodev, nosuid, ... (`ro` is implied)
      --uid N           owner of every entry (default: you)
      --gid N           group of every entry (default: your group)
      --file-mode OCT   permissions of files (default 0444)
      --dir-mode OCT    permissions of directories (default 0555)
      --allow-other     let other users in (same as -o allow_other)
      --threads N       FUSE worker threads
  -u, --unmount         unmount MOUNTPOINT
  -z, --lazy            with -u: detach even if busy
  -h, --help            this help
  -V, --version         print the version";

enum Action {
    Mount(PathBuf, PathBuf, MountOptions),
    Unmount(PathBuf, bool),
    Help,
    Version,
}

fn parse(args: Vec<OsString>) -> Result<Action, String> {
    let mut opts = MountOptions::default();
    let mut positional = Vec::new();
    let mut unmount = false;
    let mut lazy = false;
    let mut it = args.into_iter();
    let err = |e: MountError| e.to_string();
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy().into_owned();
        let mut value = |name: &str| -> Result<String, String> {
            it.next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match s.as_str() {
            "-h" | "--help" => return Ok(Action::Help),
            "-V" | "--version" => return Ok(Action::Version),
            "-f" | "--foreground" => opts.foreground = true,
            "-u" | "--unmount" => unmount = true,
            "-z" | "--lazy" => lazy = true,
            "--allow-other" => opts.allow_other = true,
            "-o" => opts.parse_fuse_options(&value("-o")?).map_err(err)?,
            "--uid" => {
                opts.uid = Some(
                    value("--uid")?
                        .parse()
                        .map_err(|_| "--uid needs a number".to_string())?,
                )
            }
            "--gid" => {
                opts.gid = Some(
                    value("--gid")?
                        .parse()
                        .map_err(|_| "--gid needs a number".to_string())?,
                )
            }
            "--file-mode" => opts.file_mode = parse_mode(&value("--file-mode")?).map_err(err)?,
            "--dir-mode" => opts.dir_mode = parse_mode(&value("--dir-mode")?).map_err(err)?,
            "--threads" => opts
                .parse_fuse_options(&format!("threads={}", value("--threads")?))
                .map_err(err)?,
            "--" => positional.extend(it.by_ref()),
            o if o.starts_with("-o") && o.len() > 2 => {
                opts.parse_fuse_options(&o[2..]).map_err(err)?
            }
            o if o.starts_with('-') && o.len() > 1 => return Err(format!("unknown option {o}")),
            _ => positional.push(arg),
        }
    }
    if unmount {
        return match <[OsString; 1]>::try_from(positional) {
            Ok([mnt]) => Ok(Action::Unmount(mnt.into(), lazy)),
            Err(_) => Err("-u takes exactly one MOUNTPOINT".into()),
        };
    }
    match <[OsString; 2]>::try_from(positional) {
        Ok([img, mnt]) => Ok(Action::Mount(img.into(), mnt.into(), opts)),
        Err(_) => Err("expected IMAGE and MOUNTPOINT".into()),
    }
}

fn main() -> ExitCode {
    let action = match parse(std::env::args_os().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("romfs-mount: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match action {
        Action::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Action::Version => {
            println!("romfs-mount {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Action::Mount(img, mnt, opts) => mount(&img, &mnt, &opts),
        Action::Unmount(mnt, false) => unmount(&mnt),
        Action::Unmount(mnt, true) => unmount_lazy(&mnt),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("romfs-mount: {e}");
            ExitCode::FAILURE
        }
    }
}
