//! The few JSON pieces the admin documents are written from (`/routes`,
//! `/clusters`, `/shards`): strings escaped per RFC 8259 §7, written
//! straight into the document being built. The documents are small and
//! built on an admin thread, never on a shard.

use std::fmt::Write;

/// Appends `value` as a JSON string (quotes included).
pub fn string(out: &mut String, value: &str) {
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `"key":` (the key escaped like any string).
pub fn key(out: &mut String, key: &str) {
    string(out, key);
    out.push(':');
}

/// Appends `value` as a JSON string, or `null` for `None`.
pub fn string_or_null(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => string(out, v),
        None => out.push_str("null"),
    }
}

/// Appends a JSON array of strings.
pub fn strings<'a>(out: &mut String, values: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, v);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_parse_back() {
        const CASES: &[&str] = &["plain", "quote \" and \\ backslash", "line\nbreak\r\ttab", "\u{1}\u{1f}", "ünï ✓"];
        for case in CASES {
            let mut out = String::new();
            string(&mut out, case);
            let back: String = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
            assert_eq!(&back, case);
        }
        let mut out = String::from("{");
        key(&mut out, "a\"b");
        strings(&mut out, ["x", "y"]);
        out.push(',');
        key(&mut out, "n");
        string_or_null(&mut out, None);
        out.push('}');
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a\"b"][1], "y");
        assert!(v["n"].is_null());
    }
}
