//! Escaping of request bytes (any bytes: the client chose them) into log
//! lines, so that no input can break a line, forge a second one, or make
//! the line unreadable to a JSON parser.
//!
//! - JSON: a string is always valid JSON and valid UTF-8. `"` `\` and
//!   control characters are escaped (`\n`, `\u001b`, also DEL); valid
//!   UTF-8 passes through; each byte that is not part of valid UTF-8 is
//!   written as the code point of the same number (`\u00ff` for 0xFF), so
//!   no byte is lost (a reader gets it back as a Latin-1 character).
//! - combined: as nginx's default `escape`: `"`, `\`, bytes below 0x20
//!   and above 0x7E become `\xHH` (uppercase hex).

const HEX: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Printable ASCII other than `"` and `\`: copied as they are.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

/// `bytes` as a JSON string, quotes included. The common case (printable
/// ASCII: paths, hosts, user agents) is one scan and one copy; UTF-8 is
/// validated only from the first byte above 0x7F, once per run.
pub fn json_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut plain = 0;
    let mut i = 0;
    // Bytes before this index are known to be valid UTF-8.
    let mut valid_until = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if PLAIN[b as usize] || (b >= 0x80 && i < valid_until) {
            i += 1;
            continue;
        }
        if b >= 0x80 {
            // The first non-ASCII byte of a run: how far is it UTF-8?
            valid_until = i + match std::str::from_utf8(&bytes[i..]) {
                Ok(_) => bytes.len() - i,
                Err(e) => e.valid_up_to(),
            };
            if i < valid_until {
                continue;
            }
        }
        out.extend_from_slice(&bytes[plain..i]);
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => b"",
        };
        if escaped.is_empty() {
            // Control characters, DEL, and bytes that are not UTF-8.
            unicode_escape(out, b);
        } else {
            out.extend_from_slice(escaped);
        }
        i += 1;
        plain = i;
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

fn unicode_escape(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(b"\\u00");
    out.push(HEX[(b >> 4) as usize]);
    out.push(HEX[(b & 15) as usize]);
}

/// `bytes` escaped for a quoted field of the combined format (quotes not
/// included).
pub fn combined(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..=0x7e).contains(&b) {
            out.extend_from_slice(b"\\x");
            out.push(HEX_UPPER[(b >> 4) as usize]);
            out.push(HEX_UPPER[(b & 15) as usize]);
        } else {
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &[u8]) -> String {
        let mut out = Vec::new();
        json_str(&mut out, bytes);
        String::from_utf8(out).expect("always UTF-8")
    }

    #[test]
    fn json_table() {
        const CASES: &[(&[u8], &str)] = &[
            (b"", r#""""#),
            (b"plain /a?b=c", r#""plain /a?b=c""#),
            (b"q\"uote\\back", r#""q\"uote\\back""#),
            (b"a\nb\rc\td", r#""a\nb\rc\td""#),
            (b"\x00\x01\x1b\x1f\x7f", r#""\u0000\u0001\u001b\u001f\u007f""#),
            ("é→😀".as_bytes(), "\"é→😀\""),
            (b"\xff", r#""\u00ff""#),
            (b"a\xc3(b", r#""a\u00c3(b""#),
            // A truncated 4-byte sequence, then valid UTF-8 again.
            (b"\xf0\x9f\x98z\xc3\xa9", r#""\u00f0\u009f\u0098zé""#),
            // An overlong encoding of '/' is not UTF-8.
            (b"\xc0\xaf", r#""\u00c0\u00af""#),
        ];
        for (input, want) in CASES {
            assert_eq!(json(input), *want, "{input:?}");
        }
    }

    /// Every byte value, alone and in runs, gives a string a JSON parser
    /// reads back, with the same code points as described above.
    #[test]
    fn json_round_trips_every_byte() {
        for b in 0..=255u8 {
            for input in [vec![b], vec![b'a', b, b'z'], vec![b; 3]] {
                let text = json(&input);
                let back: String = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{input:?}: {text}: {e}"));
                let want: String = match std::str::from_utf8(&input) {
                    Ok(s) => s.to_owned(),
                    Err(_) => input.iter().map(|&b| b as char).collect(),
                };
                assert_eq!(back, want, "{input:?}");
            }
        }
    }

    #[test]
    fn combined_table() {
        const CASES: &[(&[u8], &str)] = &[
            (b"GET /a?b=c HTTP/1.1", "GET /a?b=c HTTP/1.1"),
            (b"say \"hi\"", r#"say \x22hi\x22"#),
            (b"back\\slash", r#"back\x5Cslash"#),
            (b"a\nb\x00\x7f", r#"a\x0Ab\x00\x7F"#),
            ("é".as_bytes(), r#"\xC3\xA9"#),
            (b"\xff", r#"\xFF"#),
        ];
        for (input, want) in CASES {
            let mut out = Vec::new();
            combined(&mut out, input);
            assert_eq!(String::from_utf8(out).unwrap(), *want, "{input:?}");
        }
    }
}
