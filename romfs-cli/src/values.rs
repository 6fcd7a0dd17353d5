//! The values of `romfs build` flags that need more than a number:
//! sizes, alignment rules, architectures. Each error names the value it
//! rejects; clap shows it with the flag. Fuzzed (`fuzz/`, target
//! `cli_values`).

use romfs_format::mpy::Arch;
use romfs_format::write::MAX_ALIGN;

/// Parse a size such as `1048576`, `64K`, `1M`, `1.5M`, `2MiB`, `4G`
/// (K, M, G are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {s:?}: use a number with an optional K, M or G suffix"
            ))
        }
    };
    if num.is_empty() {
        return Err(format!("invalid size {s:?}: no number"));
    }
    if num.contains('.') {
        let v: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
        let bytes = (v * mult as f64).round();
        if bytes.is_nan() || bytes < 0.0 {
            return Err(format!("invalid size {s:?}"));
        }
        // 2^64 itself does not fit: `as u64` would quietly saturate it.
        if bytes >= 2f64.powi(64) {
            return Err(format!("size {s:?} is too large"));
        }
        return Ok(bytes as u64);
    }
    let v: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    v.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parse an `--align-rule` value `GLOB=N` (N a power of two up to [`MAX_ALIGN`]).
pub fn parse_rule(s: &str) -> Result<(String, u32), String> {
    let (glob, n) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: expected GLOB=N, e.g. '*.tflite=16'"))?;
    if glob.is_empty() {
        return Err(format!(
            "{s:?}: the glob before '=' is empty, e.g. '*.tflite=16'"
        ));
    }
    let n: u32 = n
        .parse()
        .map_err(|_| format!("{s:?}: {n:?} is not a number"))?;
    if !n.is_power_of_two() || n > MAX_ALIGN {
        return Err(format!(
            "{s:?}: alignment must be a power of two up to {MAX_ALIGN}"
        ));
    }
    Ok((parse_glob(glob).map_err(|e| format!("{s:?}: {e}"))?, n))
}

/// Parse an `--align` value: a power of two up to [`MAX_ALIGN`].
pub fn parse_align(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n.is_power_of_two() && n <= MAX_ALIGN => Ok(n),
        _ => Err(format!(
            "alignment {s:?} is not a power of two up to {MAX_ALIGN}"
        )),
    }
}

/// Parse an `--exclude` (or `--align-rule`) glob: one the build can compile.
pub fn parse_glob(s: &str) -> Result<String, String> {
    romfs_build::scan::Patterns::new(&[s]).map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

/// Parse a `--march` name: any `mpy-cross -march=` architecture except `none`.
pub fn parse_arch(s: &str) -> Result<Arch, String> {
    match Arch::from_name(s) {
        Some(a) if a != Arch::None => Ok(a),
        _ => Err(format!(
            "unknown architecture {s:?}; one of: {}",
            Arch::names().skip(1).collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("1.5M"), Ok(1572864));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        // 2^64 bytes, written with a decimal point: too large, not u64::MAX.
        assert_eq!(
            parse_size("17179869184.0G"),
            Err(r#"size "17179869184.0G" is too large"#.to_string())
        );
        assert_eq!(
            parse_size("17179869184G"),
            Err(r#"size "17179869184G" is too large"#.to_string())
        );
        assert_eq!(parse_size("17179869183.0G"), Ok(u64::MAX - (1 << 30) + 1));
    }

    #[test]
    fn align_rules() {
        assert_eq!(parse_rule("*.tflite=16"), Ok(("*.tflite".to_string(), 16)));
        // The last `=` separates: a glob may contain one.
        assert_eq!(parse_rule("a=b=1"), Ok(("a=b".to_string(), 1)));
        assert_eq!(parse_rule("*.bin=65536"), Ok(("*.bin".to_string(), 65536)));
        assert_eq!(
            parse_rule("*.bin"),
            Err(r#""*.bin": expected GLOB=N, e.g. '*.tflite=16'"#.to_string())
        );
        assert_eq!(
            parse_rule("*.bin=x"),
            Err(r#""*.bin=x": "x" is not a number"#.to_string())
        );
        assert_eq!(
            parse_rule("=16"),
            Err(r#""=16": the glob before '=' is empty, e.g. '*.tflite=16'"#.to_string())
        );
        for bad in ["*.bin=0", "*.bin=3", "*.bin=131072"] {
            assert_eq!(
                parse_rule(bad),
                Err(format!(
                    "{bad:?}: alignment must be a power of two up to 65536"
                ))
            );
        }
    }

    #[test]
    fn aligns_and_globs() {
        assert_eq!(parse_align("16"), Ok(16));
        assert_eq!(parse_align("65536"), Ok(65536));
        for bad in ["0", "3", "131072", "x", "-4"] {
            assert_eq!(
                parse_align(bad),
                Err(format!(
                    "alignment {bad:?} is not a power of two up to 65536"
                ))
            );
        }
        assert_eq!(parse_glob("*.pyc"), Ok("*.pyc".to_string()));
        assert!(parse_glob("[")
            .unwrap_err()
            .contains("invalid glob pattern"));
        assert!(parse_rule("[=4")
            .unwrap_err()
            .contains("invalid glob pattern"));
    }

    #[test]
    fn arches() {
        assert_eq!(parse_arch("armv7emsp"), Ok(Arch::Armv7emsp));
        assert_eq!(parse_arch("x64"), Ok(Arch::X64));
        for bad in ["none", "z80", "", "X64"] {
            let err = parse_arch(bad).unwrap_err();
            assert!(
                err.starts_with(&format!("unknown architecture {bad:?}; one of: x86, x64,")),
                "{err}"
            );
            // `none` (bytecode only) is no target to compile for.
            assert!(!err.contains(", none") && !err.contains(": none"), "{err}");
        }
    }
}
