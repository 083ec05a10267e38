//! Path normalisation: the path that routes are matched against, and that
//! is forwarded upstream.
//!
//! Where it sits: the first step of routing. A route must not be reachable
//! (or escapable) by spelling a path differently, so matching happens on
//! one canonical form (RFC 3986 §6.2.2):
//! 1. percent-encoded unreserved characters are decoded (`%2e` -> `.`,
//!    `%41` -> `A`), other escapes keep their meaning with uppercase hex;
//! 2. runs of `/` collapse to one;
//! 3. dot-segments are resolved (RFC 3986 §5.2.4); `..` above the root
//!    stays at the root.
//!
//! Spellings that backends read differently are judged by the listener's
//! [`PathRules`] (`[listeners.paths]`); every default refuses them:
//! - `%2F` / `%5C` (escaped slashes): refused, kept as data, or decoded
//!   into separators (a decoded `%5C` is a backslash, next rule);
//! - `\`: refused, or a separator (IIS);
//! - `;` (matrix parameters): refused, kept as data, or stripped from each
//!   segment for matching only ([`match_form`]; Tomcat reads `/a;x/b` as
//!   `/a/b` and `..;` as `..`);
//! - a segment ending in `.` or `%20` (Windows drops both): refused,
//!   stripped, or kept;
//! - `%25` + two hex digits (double encoding, `%252F`): refused or kept.
//!
//! The query is not touched. Upstream receives `normalised path` +
//! (`?` + original query, when present); a fragment is dropped. The form
//! is idempotent (normalising it again changes nothing) and never has a
//! `.` or `..` segment.

use crate::config::{Backslash, DoubleEncoding, EscapedSlashes, MatrixParameters, PathRules, TrailingDotsAndSpaces};

/// Why a path cannot be normalised; each is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    BadEscape,
    /// A decoded escape that is a control byte (`%00`, `%0a`, …).
    ControlByte,
    /// `%2F` or `%5C` under `escaped_slashes = "reject"`.
    EscapedSlash,
    /// `\` (raw, or a decoded `%5C`) under `backslash = "reject"`.
    Backslash,
    /// `;` under `matrix_parameters = "reject"`.
    MatrixParameter,
    /// A segment ending in `.` or `%20` under `trailing_dots_and_spaces = "reject"`.
    TrailingDotOrSpace,
    /// `%25XX` under `double_encoding = "reject"`.
    DoubleEncoding,
}

impl PathError {
    /// The cause in the 400's body: names the rule and the listener option.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::BadEscape => "malformed percent-encoding in path",
            PathError::ControlByte => "percent-encoded control character in path",
            PathError::EscapedSlash => "escaped slash (%2F or %5C) in path (listener paths.escaped_slashes)",
            PathError::Backslash => "backslash in path (listener paths.backslash)",
            PathError::MatrixParameter => "matrix parameter (;) in path (listener paths.matrix_parameters)",
            PathError::TrailingDotOrSpace => {
                "path segment ends in a dot or space (listener paths.trailing_dots_and_spaces)"
            }
            PathError::DoubleEncoding => "double percent-encoding (%25XX) in path (listener paths.double_encoding)",
        }
    }
}

/// Normalises the path of an origin-form `target` into `out` (cleared
/// first) under `rules` and returns the query (without `?`), if any.
/// `out` is the path routes match (unless [`match_form`] says otherwise)
/// and the path the upstream receives.
pub fn normalise<'t>(target: &'t [u8], rules: &PathRules, out: &mut Vec<u8>) -> Result<Option<&'t [u8]>, PathError> {
    let end = target.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(target.len());
    let (path, rest) = target.split_at(end);
    let query = match rest.first() {
        Some(b'?') => {
            let q = &rest[1..];
            Some(&q[..q.iter().position(|&b| b == b'#').unwrap_or(q.len())])
        }
        _ => None,
    };
    normalise_path(path, rules, false, out)?;
    Ok(query)
}

/// The path routes match when it differs from the normalised one: under
/// `matrix_parameters = "strip"`, `normalised` with every segment's `;…`
/// removed and dot-segments resolved again (`/a/..;/b` -> `/b`), judged by
/// the same rules (`/a.;x/` ends in a dot once stripped). `Ok(None)`:
/// routes match `normalised` itself.
pub fn match_form(normalised: &[u8], rules: &PathRules) -> Result<Option<Vec<u8>>, PathError> {
    if rules.matrix_parameters != MatrixParameters::Strip || !normalised.contains(&b';') {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(normalised.len());
    normalise_path(normalised, rules, true, &mut out)?;
    Ok(Some(out))
}

/// What one byte (or escape) of the path is, after the rules.
enum Token {
    /// Ends the current segment.
    Separator,
    /// Appended to the current segment as is.
    Bytes([u8; 3], usize),
    /// Starts a matrix parameter: the rest of the segment is dropped (match form only).
    Parameters,
}

/// The segment loop behind [`normalise`] and [`match_form`]. Each segment
/// is appended to `out` as it is decoded, then judged at its end: kept
/// (plus `/`), dropped (`.` or empty) or dropped with its parent (`..`).
fn normalise_path(path: &[u8], rules: &PathRules, strip_parameters: bool, out: &mut Vec<u8>) -> Result<(), PathError> {
    out.clear();
    out.push(b'/');
    let mut seg_start = out.len();
    let mut in_parameters = false;
    // The segment holds an escaped `%` (`%25`): look for a double encoding
    // when it ends.
    let mut escaped_percent = false;
    let mut i = 0;
    loop {
        // Fast path: most bytes of most paths are none of these.
        if let Some(&b) = path.get(i) {
            if !matches!(b, b'/' | b'\\' | b';' | b'%') {
                if !in_parameters {
                    out.push(b);
                }
                i += 1;
                continue;
            }
        }
        let (token, len) =
            if i < path.len() { token(path, i, rules, strip_parameters)? } else { (Token::Separator, 0) };
        match token {
            Token::Bytes(bytes, n) => {
                if !in_parameters {
                    out.extend_from_slice(&bytes[..n]);
                    escaped_percent |= bytes == *b"%25";
                }
            }
            Token::Parameters => in_parameters = true,
            Token::Separator => {
                in_parameters = false;
                // Judged on the output, so that every spelling of a double
                // encoding (`%252F`, `%25%32%46`) is caught.
                if escaped_percent
                    && rules.double_encoding == DoubleEncoding::Reject
                    && has_double_encoding(&out[seg_start..])
                {
                    return Err(PathError::DoubleEncoding);
                }
                escaped_percent = false;
                let last = i >= path.len();
                let kept = end_segment(out, seg_start, rules)?;
                seg_start = out.len();
                if last {
                    // A trailing slash stays only if the path ended in a
                    // separator or a dot-segment (or was empty).
                    if kept && out.len() > 1 {
                        out.pop();
                    }
                    return Ok(());
                }
            }
        }
        i += len;
    }
}

/// The token at `path[i]` and how many input bytes it takes.
fn token(path: &[u8], i: usize, rules: &PathRules, strip_parameters: bool) -> Result<(Token, usize), PathError> {
    let b = path[i];
    match b {
        b'/' => Ok((Token::Separator, 1)),
        b'\\' => backslash(rules).map(|t| (t, 1)),
        b';' => match rules.matrix_parameters {
            MatrixParameters::Reject => Err(PathError::MatrixParameter),
            MatrixParameters::Strip if strip_parameters => Ok((Token::Parameters, 1)),
            _ => Ok((Token::Bytes([b';', 0, 0], 1), 1)),
        },
        b'%' => {
            let hi = path.get(i + 1).copied().and_then(hex).ok_or(PathError::BadEscape)?;
            let lo = path.get(i + 2).copied().and_then(hex).ok_or(PathError::BadEscape)?;
            let c = hi * 16 + lo;
            if c < 0x20 || c == 0x7f {
                return Err(PathError::ControlByte);
            }
            let escaped = [b'%', HEX_UPPER[(c >> 4) as usize], HEX_UPPER[(c & 15) as usize]];
            let token = match c {
                b'/' | b'\\' => match rules.escaped_slashes {
                    EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                    EscapedSlashes::Keep => Token::Bytes(escaped, 3),
                    EscapedSlashes::Decode if c == b'/' => Token::Separator,
                    EscapedSlashes::Decode => backslash(rules)?,
                },
                c if is_unreserved(c) => Token::Bytes([c, 0, 0], 1),
                _ => Token::Bytes(escaped, 3),
            };
            Ok((token, 3))
        }
        _ => Ok((Token::Bytes([b, 0, 0], 1), 1)),
    }
}

fn backslash(rules: &PathRules) -> Result<Token, PathError> {
    match rules.backslash {
        Backslash::Reject => Err(PathError::Backslash),
        Backslash::Slash => Ok(Token::Separator),
    }
}

/// Judges the segment `out[seg_start..]` that a separator just ended.
/// Returns whether a segment with content was kept (`/` appended).
fn end_segment(out: &mut Vec<u8>, seg_start: usize, rules: &PathRules) -> Result<bool, PathError> {
    let segment = &out[seg_start..];
    if segment.is_empty() {
        // `//` collapses.
        return Ok(false);
    }
    if segment == b"." {
        out.truncate(seg_start);
        return Ok(false);
    }
    if segment == b".." {
        out.truncate(seg_start);
        pop_segment(out);
        return Ok(false);
    }
    if ends_in_dot_or_space(segment) {
        match rules.trailing_dots_and_spaces {
            TrailingDotsAndSpaces::Reject => return Err(PathError::TrailingDotOrSpace),
            TrailingDotsAndSpaces::Keep => {}
            TrailingDotsAndSpaces::Strip => {
                while ends_in_dot_or_space(&out[seg_start..]) {
                    let cut = if out.ends_with(b".") { 1 } else { 3 };
                    out.truncate(out.len() - cut);
                }
                if out.len() == seg_start {
                    // Nothing but dots and spaces (`...`, `..%20`): Windows
                    // may read it as `..`, so no reading of it is safe.
                    return Err(PathError::TrailingDotOrSpace);
                }
            }
        }
    }
    out.push(b'/');
    Ok(true)
}

/// `%25XX` somewhere in `segment`: an escape whose `%` is itself escaped.
fn has_double_encoding(segment: &[u8]) -> bool {
    segment.windows(5).any(|w| w[..3] == *b"%25" && w[3].is_ascii_hexdigit() && w[4].is_ascii_hexdigit())
}

fn ends_in_dot_or_space(segment: &[u8]) -> bool {
    segment.ends_with(b".") || segment.ends_with(b"%20")
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

    /// The defaults: every ambiguous spelling refused.
    const STRICT: PathRules = PathRules {
        escaped_slashes: EscapedSlashes::Reject,
        backslash: Backslash::Reject,
        matrix_parameters: MatrixParameters::Reject,
        trailing_dots_and_spaces: TrailingDotsAndSpaces::Reject,
        double_encoding: DoubleEncoding::Reject,
    };
    /// Every rule relaxed to "keep".
    const KEEP: PathRules = PathRules {
        escaped_slashes: EscapedSlashes::Keep,
        matrix_parameters: MatrixParameters::Keep,
        trailing_dots_and_spaces: TrailingDotsAndSpaces::Keep,
        double_encoding: DoubleEncoding::Keep,
        ..STRICT
    };
    /// Every rule folding its spelling into the path (IIS, Tomcat).
    const FOLD: PathRules = PathRules {
        escaped_slashes: EscapedSlashes::Decode,
        backslash: Backslash::Slash,
        matrix_parameters: MatrixParameters::Strip,
        trailing_dots_and_spaces: TrailingDotsAndSpaces::Strip,
        double_encoding: DoubleEncoding::Keep,
    };
    const RULE_SETS: &[PathRules] = &[STRICT, KEEP, FOLD];

    type Case = (&'static str, Result<(&'static str, Option<&'static str>), PathError>);
    /// Under the defaults.
    const CASES: &[Case] = &[
        ("/", Ok(("/", None))),
        ("", Ok(("/", None))),
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
        ("/a%20b", Ok(("/a%20b", None))),
        ("/a%3bb", Ok(("/a%3Bb", None))),
        ("/100%25", Ok(("/100%25", None))),
        ("/100%25x", Ok(("/100%25x", None))),
        ("/x?q=/../y", Ok(("/x", Some("q=/../y")))),
        ("/x?q=a%2fb;c\\d", Ok(("/x", Some("q=a%2fb;c\\d")))),
        ("/x?", Ok(("/x", Some("")))),
        ("/x#frag", Ok(("/x", None))),
        ("/a%zz", Err(PathError::BadEscape)),
        ("/a%4", Err(PathError::BadEscape)),
        ("/a%00b", Err(PathError::ControlByte)),
        ("/a%0d%0a", Err(PathError::ControlByte)),
        ("/a%09/b", Err(PathError::ControlByte)),
        // The spellings that slipped past a `/admin/` deny route.
        ("/admin;x/secret", Err(PathError::MatrixParameter)),
        ("/public/..;/admin", Err(PathError::MatrixParameter)),
        ("/admin%2Fsecret", Err(PathError::EscapedSlash)),
        ("/admin%2fsecret", Err(PathError::EscapedSlash)),
        ("/admin%5csecret", Err(PathError::EscapedSlash)),
        ("/admin\\secret", Err(PathError::Backslash)),
        ("/admin./x", Err(PathError::TrailingDotOrSpace)),
        ("/admin%2E/x", Err(PathError::TrailingDotOrSpace)),
        ("/admin", Ok(("/admin", None))),
        ("/admin.", Err(PathError::TrailingDotOrSpace)),
        ("/a/...", Err(PathError::TrailingDotOrSpace)),
        ("/admin%20/x", Err(PathError::TrailingDotOrSpace)),
        ("/admin%252Fx", Err(PathError::DoubleEncoding)),
        ("/admin%252fx", Err(PathError::DoubleEncoding)),
        ("/admin%25%32%46x", Err(PathError::DoubleEncoding)),
        ("/p/%252e%252e/x", Err(PathError::DoubleEncoding)),
    ];

    /// (input, rules, normalised path, path routes match)
    type RuleCase = (&'static str, PathRules, Result<(&'static str, &'static str), PathError>);
    const RULE_CASES: &[RuleCase] = &[
        ("/a%2fb", KEEP, Ok(("/a%2Fb", "/a%2Fb"))),
        ("/a%5cb", KEEP, Ok(("/a%5Cb", "/a%5Cb"))),
        ("/a%2Fb", FOLD, Ok(("/a/b", "/a/b"))),
        ("/p%2F..%2Fadmin%2Fx", FOLD, Ok(("/admin/x", "/admin/x"))),
        ("/a%2F", FOLD, Ok(("/a/", "/a/"))),
        ("/a%5Cb", FOLD, Ok(("/a/b", "/a/b"))),
        // A decoded %5C is a backslash: the backslash rule decides.
        ("/a%5Cb", PathRules { escaped_slashes: EscapedSlashes::Decode, ..STRICT }, Err(PathError::Backslash)),
        ("/a\\b\\", FOLD, Ok(("/a/b/", "/a/b/"))),
        ("/p\\..\\admin", FOLD, Ok(("/admin", "/admin"))),
        ("/a;x/b", KEEP, Ok(("/a;x/b", "/a;x/b"))),
        ("/public/..;/admin", KEEP, Ok(("/public/..;/admin", "/public/..;/admin"))),
        ("/a;x/b;y=1", FOLD, Ok(("/a;x/b;y=1", "/a/b"))),
        ("/public/..;/admin", FOLD, Ok(("/public/..;/admin", "/admin"))),
        ("/a/;x/b", FOLD, Ok(("/a/;x/b", "/a/b"))),
        // Stripped of its parameter, the segment ends in a dot: refused.
        (
            "/admin.;x/b",
            PathRules { matrix_parameters: MatrixParameters::Strip, ..STRICT },
            Err(PathError::TrailingDotOrSpace),
        ),
        ("/admin./x", KEEP, Ok(("/admin./x", "/admin./x"))),
        ("/admin%20/x%20", KEEP, Ok(("/admin%20/x%20", "/admin%20/x%20"))),
        ("/admin./x", FOLD, Ok(("/admin/x", "/admin/x"))),
        ("/admin.%20.%2E/x.", FOLD, Ok(("/admin/x", "/admin/x"))),
        // Nothing left once stripped: refused, as `..%20` may be `..` to Windows.
        ("/a/.../b", FOLD, Err(PathError::TrailingDotOrSpace)),
        ("/public/..%20/admin", FOLD, Err(PathError::TrailingDotOrSpace)),
        ("/a/%20/b", FOLD, Err(PathError::TrailingDotOrSpace)),
        ("/admin%252Fx", KEEP, Ok(("/admin%252Fx", "/admin%252Fx"))),
        ("/admin%25%32%46x", KEEP, Ok(("/admin%252Fx", "/admin%252Fx"))),
    ];

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn normalise_table() {
        let mut out = Vec::new();
        for (input, expect) in CASES {
            let got = normalise(input.as_bytes(), &STRICT, &mut out).map(|q| (text(&out), q.map(text)));
            let expect = expect.map(|(p, q)| (p.to_string(), q.map(str::to_string)));
            assert_eq!(got, expect, "input {input}");
        }
    }

    #[test]
    fn rules_table() {
        let mut out = Vec::new();
        for (input, rules, expect) in RULE_CASES {
            let got = normalise(input.as_bytes(), rules, &mut out).and_then(|_| {
                let matched = match_form(&out, rules)?;
                Ok((text(&out), text(matched.as_deref().unwrap_or(&out))))
            });
            let expect = expect.map(|(p, m)| (p.to_string(), m.to_string()));
            assert_eq!(got, expect, "input {input} under {rules:?}");
        }
    }

    /// Every path of up to `MAX_PIECES` pieces from an alphabet of the
    /// troublesome spellings, under every rule set: a normalised path
    /// normalises to itself, and neither it nor its match form has a `.`
    /// or `..` segment.
    #[test]
    fn normalisation_is_idempotent_and_never_leaves_dot_segments() {
        const PIECES: &[&str] =
            &["/", "a", ".", "..", "%2e", "%2F", "%5C", "\\", ";x", "%20", "%25", "%32%46", "2F", "A", "//"];
        const MAX_PIECES: u32 = 4;
        let mut out = Vec::new();
        let mut again = Vec::new();
        let mut checked = 0;
        for rules in RULE_SETS {
            for n in 1..=MAX_PIECES {
                for mut k in 0..PIECES.len().pow(n) {
                    let mut input = String::from("/");
                    for _ in 0..n {
                        input.push_str(PIECES[k % PIECES.len()]);
                        k /= PIECES.len();
                    }
                    if normalise(input.as_bytes(), rules, &mut out).is_err() {
                        continue;
                    }
                    checked += 1;
                    let first = text(&out);
                    let second = normalise(&out, rules, &mut again).map(|_| text(&again));
                    assert_eq!(second.as_deref(), Ok(first.as_str()), "{input:?} under {rules:?}");
                    // A match form that breaks a rule refuses the request.
                    let Ok(matched) = match_form(&out, rules) else { continue };
                    for form in [Some(first.as_str()), matched.as_deref().map(|m| std::str::from_utf8(m).unwrap())] {
                        let Some(form) = form else { continue };
                        assert!(form.starts_with('/'), "{input:?} -> {form:?}");
                        assert!(!form.split('/').any(|s| s == "." || s == ".."), "{input:?} -> {form:?}");
                        assert!(!form.contains("//"), "{input:?} -> {form:?}");
                    }
                }
            }
        }
        assert!(checked > 10_000, "only {checked} paths were accepted");
    }
}
