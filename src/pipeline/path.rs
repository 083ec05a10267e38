//! Path normalisation: the path that routes are matched against, and that
//! is forwarded upstream.
//!
//! Where it sits: the first step of routing. A route must not be reachable
//! (or escapable) by spelling a path differently, so matching happens on
//! one canonical form (RFC 3986 §6.2.2):
//! 1. percent-encoded unreserved characters are decoded (`%2e` -> `.`,
//!    `%41` -> `A`), other escapes keep their meaning with uppercase hex
//!    (`%2f` stays an escaped `/`: it is data, not a separator);
//! 2. runs of `/` collapse to one;
//! 3. dot-segments are resolved (RFC 3986 §5.2.4); `..` above the root
//!    stays at the root.
//!
//! The query is not touched. Upstream receives `normalised path` +
//! (`?` + original query, when present); a fragment is dropped.

/// Why a path cannot be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    BadEscape,
    /// A decoded escape that is a control byte (`%00`, `%0a`, …).
    ControlByte,
}

/// Normalises the path of an origin-form `target` into `out` (cleared
/// first) and returns the query (without `?`), if any.
pub fn normalise<'t>(target: &'t [u8], out: &mut Vec<u8>) -> Result<Option<&'t [u8]>, PathError> {
    out.clear();
    let end = target.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(target.len());
    let (path, rest) = target.split_at(end);
    let query = match rest.first() {
        Some(b'?') => {
            let q = &rest[1..];
            Some(&q[..q.iter().position(|&b| b == b'#').unwrap_or(q.len())])
        }
        _ => None,
    };

    // Segment by segment: each decoded segment is appended to `out`, then
    // kept (plus `/`), dropped ("." or empty) or dropped with its parent ("..").
    out.push(b'/');
    let mut i = 0;
    let mut seg_start = out.len();
    while i <= path.len() {
        let b = if i < path.len() { path[i] } else { b'/' };
        if b == b'/' {
            let segment_len = out.len() - seg_start;
            let segment = &out[seg_start..];
            if segment_len == 0 {
                // Empty segment: `//` collapses.
            } else if segment == b"." {
                out.truncate(seg_start);
            } else if segment == b".." {
                out.truncate(seg_start);
                pop_segment(out);
            } else {
                out.push(b'/');
            }
            seg_start = out.len();
            i += 1;
            continue;
        }
        if b == b'%' {
            let hi = path.get(i + 1).copied().and_then(hex).ok_or(PathError::BadEscape)?;
            let lo = path.get(i + 2).copied().and_then(hex).ok_or(PathError::BadEscape)?;
            let c = hi * 16 + lo;
            if c < 0x20 || c == 0x7f {
                return Err(PathError::ControlByte);
            }
            if is_unreserved(c) {
                out.push(c);
            } else {
                out.extend_from_slice(&[b'%', HEX_UPPER[(c >> 4) as usize], HEX_UPPER[(c & 15) as usize]]);
            }
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    // Keep a trailing slash only if the original path had one (or is root).
    let had_trailing_slash = path.ends_with(b"/") || path.ends_with(b"/.") || path.ends_with(b"/..") || path.is_empty();
    if out.len() > 1 && !had_trailing_slash {
        out.pop();
    }
    Ok(query)
}

/// Removes the last complete segment (and its slash) from `out`, which
/// always starts with `/` and ends with `/`.
fn pop_segment(out: &mut Vec<u8>) {
    if out.len() <= 1 {
        return;
    }
    out.pop(); // trailing '/'
    while let Some(&last) = out.last() {
        if last == b'/' {
            break;
        }
        out.pop();
    }
    if out.is_empty() {
        out.push(b'/');
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3.
fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    type Case = (&'static str, Result<(&'static str, Option<&'static str>), PathError>);
    const CASES: &[Case] = &[
        ("/", Ok(("/", None))),
        ("/a/b", Ok(("/a/b", None))),
        ("/a/b/", Ok(("/a/b/", None))),
        ("//a//b", Ok(("/a/b", None))),
        ("/a/./b", Ok(("/a/b", None))),
        ("/a/../b", Ok(("/b", None))),
        ("/public/../admin", Ok(("/admin", None))),
        ("/public/%2e%2e/admin", Ok(("/admin", None))),
        ("/public/%2E%2E/admin", Ok(("/admin", None))),
        ("/public/.%2e/admin", Ok(("/admin", None))),
        ("/../../etc", Ok(("/etc", None))),
        ("/a/b/..", Ok(("/a/", None))),
        ("/a/b/.", Ok(("/a/b/", None))),
        ("/%41%62c", Ok(("/Abc", None))),
        ("/a%2fb", Ok(("/a%2Fb", None))),
        ("/a%20b", Ok(("/a%20b", None))),
        ("/x?q=/../y", Ok(("/x", Some("q=/../y")))),
        ("/x?", Ok(("/x", Some("")))),
        ("/x#frag", Ok(("/x", None))),
        ("/a%zz", Err(PathError::BadEscape)),
        ("/a%4", Err(PathError::BadEscape)),
        ("/a%00b", Err(PathError::ControlByte)),
        ("/a%0d%0a", Err(PathError::ControlByte)),
    ];

    #[test]
    fn normalise_table() {
        let mut out = Vec::new();
        for (input, expect) in CASES {
            let got = normalise(input.as_bytes(), &mut out)
                .map(|q| (String::from_utf8(out.clone()).unwrap(), q.map(|q| String::from_utf8(q.to_vec()).unwrap())));
            let expect = expect.map(|(p, q)| (p.to_string(), q.map(str::to_string)));
            assert_eq!(got, expect, "input {input}");
        }
    }
}
