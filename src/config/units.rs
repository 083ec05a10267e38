//! The config file's value syntax for sizes, durations and CPU lists, used
//! by `validate` in `file -> validate -> Config` and by command-line flags
//! that take the same values. Errors are one-line messages without a field
//! path; the caller adds it (or the flag name).
//!
//! - sizes: an integer number of bytes, or a string of a whole number and a
//!   binary unit `B`, `KiB`, `MiB`, `GiB`, `TiB` (`"16KiB"`, `"10 MiB"`, unit
//!   case-insensitive). `KB`/`MB`/`k`/`m`... are refused as ambiguous (nginx
//!   reads `8k` as 8192, most people read `8KB` as 8000).
//! - durations: a string of a whole number and a unit `ms`, `s`, `m`, `h`
//!   (`"250ms"`, `"10s"`). A bare number is refused: `10` could mean seconds
//!   or milliseconds.
//! - CPU lists: as in `taskset -c` / `isolcpus`, `"0,2-3"`.
//!
//! The formatters here write values back in the same syntax, for messages
//! and for `shardgate check`'s summary.

use std::time::Duration;

use super::bounds::CPU_SETSIZE;
use super::file::IntOrText;

/// A size as written on the command line: same syntax as in the file.
pub fn parse_size_text(text: &str) -> Result<u64, String> {
    parse_size(&IntOrText::Text(text.to_owned()))
}

/// A duration as written on the command line: same syntax as in the file.
pub fn parse_duration_text(text: &str) -> Result<Duration, String> {
    parse_duration(&IntOrText::Text(text.to_owned()))
}

/// CPU lists as in `taskset -c` / `isolcpus`: `"0,2-3"`. Order is kept
/// (shard i runs on the i-th CPU listed); a CPU listed twice is an error.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let cpu = |s: &str| -> Result<usize, String> {
        let s = s.trim();
        match s.parse::<usize>() {
            Ok(n) if n < CPU_SETSIZE => Ok(n),
            Ok(n) => Err(format!("CPU {n} is out of range: CPU ids are below {CPU_SETSIZE}")),
            Err(_) => Err(format!("{s:?} in {text:?} is not a CPU id: write a list like \"0,2-3\"")),
        }
    };
    if text.trim().is_empty() {
        return Err("empty CPU list: omit cpus to use every CPU".to_owned());
    }
    let mut cpus = Vec::new();
    for item in text.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (cpu(a)?, cpu(b)?),
            None => {
                let n = cpu(item)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("range {:?} runs backwards", item.trim()));
        }
        for n in lo..=hi {
            if cpus.contains(&n) {
                return Err(format!("CPU {n} is listed twice"));
            }
            cpus.push(n);
        }
    }
    Ok(cpus)
}

/// Sizes: an integer number of bytes, or `"<whole number><unit>"` with a
/// binary unit `B`, `KiB`, `MiB`, `GiB`, `TiB` (case-insensitive, space
/// allowed before the unit); no unit means bytes.
pub(super) fn parse_size(v: &IntOrText) -> Result<u64, String> {
    let text = match v {
        IntOrText::Int(n) => return u64::try_from(*n).map_err(|_| format!("{n}: a size cannot be negative")),
        IntOrText::Text(t) => t.trim(),
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    if unit.starts_with(['.', ',']) {
        return Err(format!("{text:?}: whole numbers only (write \"1536KiB\", not \"1.5MiB\")"));
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "kib" => 10,
        "mib" => 20,
        "gib" => 30,
        "tib" => 40,
        "k" | "kb" | "m" | "mb" | "g" | "gb" | "t" | "tb" => {
            return Err(format!("{text:?}: ambiguous unit {unit:?}; sizes use binary units B, KiB, MiB, GiB, TiB"))
        }
        _ => {
            return Err(format!(
                "{text:?} is not a size: write bytes or a number with B, KiB, MiB, GiB or TiB, e.g. \"16KiB\""
            ))
        }
    };
    if number.is_empty() {
        return Err(format!(
            "{text:?} is not a size: write bytes or a number with B, KiB, MiB, GiB or TiB, e.g. \"16KiB\""
        ));
    }
    number.parse::<u64>().ok().and_then(|n| n.checked_mul(1 << shift)).ok_or_else(|| format!("{text:?} is too large"))
}

/// Durations: `"<whole number><unit>"` with unit `ms`, `s`, `m` or `h`.
pub(super) fn parse_duration(v: &IntOrText) -> Result<Duration, String> {
    const HINT: &str = "write a whole number with a unit ms, s, m or h, e.g. \"10s\" or \"250ms\"";
    let text = match v {
        IntOrText::Int(n) => return Err(format!("{n} has no unit: {HINT}")),
        IntOrText::Text(t) => t.as_str(),
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return Err(format!("{text:?} is not a duration: {HINT}"));
    }
    let millis: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(format!("{text:?} has no unit: {HINT}")),
        _ if unit.starts_with(['.', ',']) => {
            return Err(format!("{text:?}: whole numbers only (write \"1500ms\", not \"1.5s\")"))
        }
        _ => return Err(format!("{text:?} is not a duration: {HINT}")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Bytes in config syntax: the largest binary unit that divides exactly.
pub(super) fn fmt_size(n: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in UNITS {
        if n != 0 && n % (1u64 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}

/// A duration in config syntax: the largest unit that divides exactly.
pub(super) fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() % 1_000_000 != 0 {
        return format!("{d:?}");
    }
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (per, unit) in [(3_600_000, "h"), (60_000, "m"), (1_000, "s")] {
        if ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> IntOrText {
        IntOrText::Text(s.to_owned())
    }

    #[test]
    fn durations() {
        const OK: &[(&str, u64)] = &[("250ms", 250), ("0s", 0), ("10s", 10_000), ("2m", 120_000), ("1h", 3_600_000)];
        for &(s, ms) in OK {
            assert_eq!(parse_duration(&text(s)), Ok(Duration::from_millis(ms)), "{s}");
        }
        const BAD: &[(&str, &str)] = &[
            ("10", "has no unit"),
            ("", "is not a duration"),
            ("s", "is not a duration"),
            ("1.5s", "whole numbers only"),
            ("10 s", "is not a duration"),
            ("10sec", "is not a duration"),
            ("-1s", "is not a duration"),
            ("99999999999999999999h", "too long"),
        ];
        for &(s, want) in BAD {
            let err = parse_duration(&text(s)).unwrap_err();
            assert!(err.contains(want), "{s}: {err}");
        }
        let err = parse_duration(&IntOrText::Int(10)).unwrap_err();
        assert!(err.contains("10 has no unit"), "{err}");
        assert_eq!(parse_duration_text("10s"), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn sizes() {
        const OK: &[(&str, u64)] = &[
            ("0", 0),
            ("512", 512),
            ("512B", 512),
            ("16KiB", 16 * 1024),
            ("16 KiB", 16 * 1024),
            ("16kib", 16 * 1024),
            ("10MiB", 10 << 20),
            ("1GiB", 1 << 30),
            ("2TiB", 2 << 40),
        ];
        for &(s, n) in OK {
            assert_eq!(parse_size(&text(s)), Ok(n), "{s}");
        }
        const BAD: &[(&str, &str)] = &[
            ("16KB", "ambiguous unit"),
            ("16k", "ambiguous unit"),
            ("1.5MiB", "whole numbers only"),
            ("KiB", "is not a size"),
            ("", "is not a size"),
            ("lots", "is not a size"),
            ("-1", "is not a size"),
            ("99999999TiB", "too large"),
        ];
        for &(s, want) in BAD {
            let err = parse_size(&text(s)).unwrap_err();
            assert!(err.contains(want), "{s}: {err}");
        }
        assert_eq!(parse_size(&IntOrText::Int(4096)), Ok(4096));
        assert!(parse_size(&IntOrText::Int(-1)).is_err());
        assert_eq!(parse_size_text("16KiB"), Ok(16 * 1024));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Ok(vec![0]));
        assert_eq!(parse_cpu_list("0,2-3"), Ok(vec![0, 2, 3]));
        assert_eq!(parse_cpu_list(" 3, 1 - 2 "), Ok(vec![3, 1, 2]));
        const BAD: &[(&str, &str)] = &[
            ("", "empty CPU list"),
            ("0,,1", "is not a CPU id"),
            ("a", "is not a CPU id"),
            ("3-1", "runs backwards"),
            ("0-2,1", "listed twice"),
            ("1024", "out of range"),
            ("-1", "is not a CPU id"),
        ];
        for &(s, want) in BAD {
            let err = parse_cpu_list(s).unwrap_err();
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn values_format_in_file_syntax() {
        assert_eq!(fmt_size(16 * 1024), "16KiB");
        assert_eq!(fmt_size(1000), "1000B");
        assert_eq!(fmt_size(0), "0B");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
    }
}
