//! The `romfs build` option values on arbitrary text: no panic, and whatever
//! is accepted is within bounds and reads back the same.
//!
//! Input: lines of text (lossy UTF-8). Line 1 is a `--max-size` value, line 2
//! an `--align-rule`, line 3 a `--march`, line 4 a path in the image, and up
//! to 8 more lines are glob patterns (`--exclude`) matched against the path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use romfs_build::scan::Patterns;
use romfs_cli::values::{parse_arch, parse_rule, parse_size};
use romfs_format::mpy::Arch;
use romfs_format::write::MAX_ALIGN;

/// Globs are compiled to regexes: a few per input keep executions fast.
const MAX_PATTERNS: usize = 8;

fn check_size(text: &str) {
    if let Ok(size) = parse_size(text) {
        assert_eq!(parse_size(&size.to_string()), Ok(size), "{text:?}");
        // Suffixes are case-insensitive.
        assert_eq!(parse_size(&text.to_ascii_uppercase()), Ok(size), "{text:?}");
    }
    // "N<unit>" and "N.0<unit>" mean the same size (N exact in an f64): the
    // decimal path must agree with the integer one, at the u64 limit too.
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    let exact_in_f64 = digits.parse::<u64>().is_ok_and(|n| n < 1 << 53);
    if exact_in_f64 && !unit.starts_with('.') {
        let integer = parse_size(&format!("{digits}{unit}"));
        let decimal = parse_size(&format!("{digits}.0{unit}"));
        assert_eq!(integer.ok(), decimal.ok(), "{digits}{unit:?} vs {digits}.0{unit:?}");
    }
}

fn check_rule(text: &str) {
    match parse_rule(text) {
        Ok((glob, align)) => {
            assert!(align.is_power_of_two() && align <= MAX_ALIGN, "{text:?} gave {align}");
            assert!(text.starts_with(&format!("{glob}=")), "{text:?} gave glob {glob:?}");
            assert_eq!(parse_rule(&format!("{glob}={align}")), Ok((glob.clone(), align)));
            // The glob is checked later, at build time: clear error or a set.
            let _ = Patterns::new(&[&glob]);
        }
        // Every error names the value it rejects.
        Err(e) => assert!(e.starts_with(&format!("{text:?}: ")), "{e}"),
    }
}

fn check_arch(text: &str) {
    let known = Arch::names().any(|n| n == text) && text != Arch::None.name();
    match parse_arch(text) {
        Ok(arch) => {
            assert!(known && arch != Arch::None, "{text:?} gave {arch:?}");
            assert_eq!(arch.name(), text);
            assert_eq!(Arch::from_name(arch.name()), Some(arch));
        }
        Err(e) => {
            assert!(!known, "{text:?} rejected: {e}");
            assert!(e.starts_with("unknown architecture "), "{e}");
        }
    }
}

fn check_patterns(patterns: &[&str], path: &str) {
    let set = match Patterns::new(patterns) {
        Ok(set) => set,
        Err(e) => {
            assert!(e.to_string().starts_with("invalid glob pattern"), "{e}");
            return;
        }
    };
    assert_eq!(set.is_empty(), patterns.is_empty());
    let hits = set.matches(path);
    assert!(hits.windows(2).all(|w| w[0] < w[1]), "{hits:?} not sorted, unique");
    assert!(hits.iter().all(|&i| i < patterns.len()), "{hits:?}");
    assert_eq!(set.first_match(path), hits.first().copied());
    // A set matches what its patterns match one by one.
    for (i, pattern) in patterns.iter().enumerate() {
        let alone = Patterns::new(&[pattern]).expect("valid in a set, valid alone");
        assert_eq!(
            !alone.matches(path).is_empty(),
            hits.contains(&i),
            "{pattern:?} on {path:?}"
        );
    }
}

/// A path with no glob syntax, used as a pattern, matches itself; so does its
/// last component, at any depth.
fn check_literal(path: &str) {
    let is_literal = |s: &str| !s.is_empty() && !s.contains(['*', '?', '[', ']', '{', '}', '\\']);
    if !is_literal(path) || path.starts_with('/') {
        return;
    }
    let whole = Patterns::new(&[path]).expect("a literal is a valid glob");
    assert_eq!(whole.matches(path), [0], "{path:?}");
    let name = path.rsplit('/').next().unwrap_or(path);
    if is_literal(name) {
        let name_only = Patterns::new(&[name]).expect("a literal is a valid glob");
        assert_eq!(name_only.matches(path), [0], "{name:?} in {path:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let size = lines.next().unwrap_or("");
    let rule = lines.next().unwrap_or("");
    let arch = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("");
    let patterns: Vec<&str> = lines.take(MAX_PATTERNS).collect();

    check_size(size);
    check_rule(rule);
    check_arch(arch);
    check_patterns(&patterns, path);
    check_literal(path);
});
