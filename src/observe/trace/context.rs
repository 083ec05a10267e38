//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the
//! `traceparent` and `tracestate` request fields, parsed strictly and
//! written for the upstream. Sans-io: bytes in, a parsed value or `None`
//! out; table-tested below.
//!
//! Where it sits: `observe/trace/mod.rs` decides a request's trace once,
//! right after its request id, from what these functions accept.

/// `traceparent` of version 00 is exactly this long:
/// `00-<32 hex>-<16 hex>-<2 hex>`.
pub const TRACEPARENT_LEN: usize = 55;
/// `tracestate` carries at most this many list members (§3.3.1.1).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// A combined `tracestate` longer than this is dropped rather than passed
/// on (the spec asks vendors to pass at least 512 characters; the bound
/// keeps a client from making every upstream request carry kilobytes).
pub const MAX_TRACESTATE_BYTES: usize = 2048;
/// The sampled bit of `trace-flags`.
pub const FLAG_SAMPLED: u8 = 0x01;

/// A valid `traceparent` from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    /// The caller's span: the parent of the proxy's span.
    pub parent_id: [u8; 8],
    pub flags: u8,
}

impl TraceParent {
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
}

/// Parses one `traceparent` value (already trimmed of surrounding
/// whitespace by the head parser). `None` when it is invalid.
///
/// Rules (§3.2.2): lowercase hex only; version `ff` is invalid; version
/// 00 is exactly 55 characters; trace-id and parent-id must not be all
/// zeros. A higher version is parsed by the forward-compatibility rule
/// (§3.2.4): at least 55 characters, the 00 layout for the first 55, and
/// if longer the 56th character is `-` (what follows is the newer
/// version's and ignored).
pub fn parse_traceparent(v: &[u8]) -> Option<TraceParent> {
    if v.len() < TRACEPARENT_LEN {
        return None;
    }
    let version = hex_byte(&v[0..2])?;
    match version {
        0xff => return None,
        0x00 if v.len() != TRACEPARENT_LEN => return None,
        0x00 => {}
        _ if v.len() > TRACEPARENT_LEN && v[TRACEPARENT_LEN] != b'-' => return None,
        _ => {}
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut parent_id = [0u8; 8];
    hex_into(&v[3..35], &mut trace_id)?;
    hex_into(&v[36..52], &mut parent_id)?;
    let flags = hex_byte(&v[53..55])?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent { trace_id, parent_id, flags })
}

/// Writes `00-<trace-id>-<span-id>-<flags>` (the only version the proxy
/// speaks: a continued higher-version trace goes on as 00, §3.2.4).
pub fn write_traceparent(out: &mut [u8; TRACEPARENT_LEN], trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) {
    out[0] = b'0';
    out[1] = b'0';
    out[2] = b'-';
    hex_from(&mut out[3..35], trace_id);
    out[35] = b'-';
    hex_from(&mut out[36..52], span_id);
    out[52] = b'-';
    out[53] = b'0';
    out[54] = if sampled { b'1' } else { b'0' };
}

/// Checks one or more `tracestate` field values (several fields combine
/// as one list, RFC 9110 §5.3) and appends them as one comma-separated
/// list to `out`. Returns false, leaving `out` as it was, when the list is
/// invalid (a malformed or duplicate key, a malformed value) or too long
/// (more than [`MAX_TRACESTATE_MEMBERS`] members or
/// [`MAX_TRACESTATE_BYTES`] bytes): the spec lets a vendor drop such a
/// tracestate rather than repair it.
pub fn combine_tracestate<'a>(values: impl Iterator<Item = &'a [u8]>, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let mut members = 0;
    let mut keys: [&[u8]; MAX_TRACESTATE_MEMBERS] = [&[]; MAX_TRACESTATE_MEMBERS];
    for value in values {
        for member in value.split(|&b| b == b',') {
            let member = trim_ows(member);
            if member.is_empty() {
                // Empty list members are allowed and ignored (§3.3.1.1).
                continue;
            }
            let Some((key, val)) = split_member(member) else {
                out.truncate(start);
                return false;
            };
            if members == MAX_TRACESTATE_MEMBERS || keys[..members].contains(&key) {
                out.truncate(start);
                return false;
            }
            keys[members] = key;
            members += 1;
            if out.len() > start {
                out.push(b',');
            }
            out.extend_from_slice(key);
            out.push(b'=');
            out.extend_from_slice(val);
            if out.len() - start > MAX_TRACESTATE_BYTES {
                out.truncate(start);
                return false;
            }
        }
    }
    true
}

/// `key=value` with both parts valid (§3.3.1.3, §3.3.1.4).
fn split_member(member: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = member.iter().position(|&b| b == b'=')?;
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    (valid_key(key) && valid_value(value)).then_some((key, value))
}

/// `simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )`
/// or `tenant-id "@" system-id` with
/// `tenant-id = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )`,
/// `system-id = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )`.
fn valid_key(key: &[u8]) -> bool {
    let rest_ok = |s: &[u8]| {
        s.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/'))
    };
    match key.iter().position(|&b| b == b'@') {
        None => !key.is_empty() && key.len() <= 256 && key[0].is_ascii_lowercase() && rest_ok(&key[1..]),
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            !tenant.is_empty()
                && tenant.len() <= 241
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && rest_ok(&tenant[1..])
                && !system.is_empty()
                && system.len() <= 14
                && system[0].is_ascii_lowercase()
                && rest_ok(&system[1..])
        }
    }
}

/// `value = 0*255(chr) nblk-chr`, `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`,
/// `chr = %x20 / nblk-chr`: printable ASCII without `,` and `=`, not
/// ending in a space, 1 to 256 characters.
fn valid_value(value: &[u8]) -> bool {
    let nblk = |b: u8| matches!(b, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    !value.is_empty()
        && value.len() <= 256
        && nblk(value[value.len() - 1])
        && value.iter().all(|&b| b == b' ' || nblk(b))
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let s = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let e = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(s, |i| i + 1);
    &v[s..e]
}

/// One lowercase hex digit (uppercase is invalid in trace context).
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    Some(hex_digit(two[0])? << 4 | hex_digit(two[1])?)
}

fn hex_into(text: &[u8], out: &mut [u8]) -> Option<()> {
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *o = hex_byte(pair)?;
    }
    Some(())
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes` into `out` (twice as long).
pub fn hex_from(out: &mut [u8], bytes: &[u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[(b >> 4) as usize];
        pair[1] = HEX[(b & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// (value, accepted)
    const TRACEPARENT_CASES: &[(&[u8], bool)] = &[
        (VALID, true),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true),
        // Unknown flags are kept in a valid header (only "sampled" is read).
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", true),
        // Uppercase hex anywhere.
        (b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", false),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", false),
        (b"0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false),
        // All-zero ids.
        (b"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false),
        // Version ff is invalid, whatever follows.
        (b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false),
        // Version 00 is exactly 55 characters.
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", false),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", false),
        (b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-011", false),
        // Wrong separators, non-hex.
        (b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", false),
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01", false),
        (b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false),
        (b"", false),
        (b"00", false),
        // A higher version: the 00 layout, and more after a dash.
        (b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true),
        (b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds", true),
        // ... but not more without a dash, nor less than 55.
        (b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what", false),
        (b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", false),
        (b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x-", false),
        (b"cc-00000000000000000000000000000000-00f067aa0ba902b7-01", false),
    ];

    #[test]
    fn traceparent_rules() {
        for (value, accepted) in TRACEPARENT_CASES {
            assert_eq!(parse_traceparent(value).is_some(), *accepted, "{}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn traceparent_fields_and_round_trip() {
        let p = parse_traceparent(VALID).unwrap();
        assert_eq!(p.trace_id[..4], [0x4b, 0xf9, 0x2f, 0x35]);
        assert_eq!(p.parent_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert!(p.sampled());
        let mut out = [0u8; TRACEPARENT_LEN];
        write_traceparent(&mut out, &p.trace_id, &p.parent_id, true);
        assert_eq!(&out[..], VALID);
        write_traceparent(&mut out, &p.trace_id, &p.parent_id, false);
        assert_eq!(&out[53..], b"00");
        // A higher version continues as version 00.
        let future = parse_traceparent(b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").unwrap();
        assert_eq!(future, p);
        assert!(!parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02").unwrap().sampled());
    }

    fn combined(values: &[&[u8]]) -> Option<String> {
        let mut out = b"keep".to_vec();
        let ok = combine_tracestate(values.iter().copied(), &mut out);
        let tail = String::from_utf8(out[4..].to_vec()).unwrap();
        if ok {
            Some(tail)
        } else {
            assert_eq!(tail, "", "a refused tracestate leaves the buffer as it was");
            None
        }
    }

    #[test]
    fn tracestate_rules() {
        let ok = |v: &[&[u8]], want: &str| assert_eq!(combined(v).as_deref(), Some(want), "{v:?}");
        let bad = |v: &[&[u8]]| assert_eq!(combined(v), None, "{v:?}");
        ok(&[b"rojo=00f067aa0ba902b7"], "rojo=00f067aa0ba902b7");
        ok(&[b"rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        // Several fields are one list; empty members are skipped.
        ok(&[b"a=1", b" , b=2 ,,"], "a=1,b=2");
        ok(&[b"tenant@system=x y", b"0t@s-1=v"], "tenant@system=x y,0t@s-1=v");
        ok(&[b"k_-*/=v"], "k_-*/=v");
        ok(&[], "");
        // Keys: lowercase letter first, no uppercase, valid multi-tenant form.
        bad(&[b"Rojo=1"]);
        bad(&[b"1rojo=1"]);
        bad(&[b"=1"]);
        bad(&[b"a@=1"]);
        bad(&[b"@s=1"]);
        bad(&[b"t@1s=1"]);
        bad(&[b"t@systemistoolong=1"]);
        bad(&[b"a b=1"]);
        // Values: no `,`/`=`, printable, not ending in a space, not empty.
        bad(&[b"a="]);
        bad(&[b"a=b=c"]);
        bad(&[b"a=\x01"]);
        bad(&[b"a=\xc3\xa9"]);
        bad(&[b"novalue"]);
        // Duplicate keys, across fields too.
        bad(&[b"a=1,a=2"]);
        bad(&[b"a=1", b"a=2"]);
    }

    #[test]
    fn tracestate_bounds() {
        let key = "k".repeat(256);
        assert!(combined(&[format!("{key}=1").as_bytes()]).is_some());
        assert!(combined(&[format!("k{key}=1").as_bytes()]).is_none(), "257-character key");
        let value = "v".repeat(256);
        assert!(combined(&[format!("a={value}").as_bytes()]).is_some());
        assert!(combined(&[format!("a=v{value}").as_bytes()]).is_none(), "257-character value");

        let list = |n: usize| (0..n).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
        assert!(combined(&[list(MAX_TRACESTATE_MEMBERS).as_bytes()]).is_some());
        assert!(combined(&[list(MAX_TRACESTATE_MEMBERS + 1).as_bytes()]).is_none(), "33 members");

        // Few members, but too many bytes in all.
        let long = (0..9).map(|i| format!("k{i}={}", "v".repeat(250))).collect::<Vec<_>>().join(",");
        assert!(long.len() > MAX_TRACESTATE_BYTES);
        assert!(combined(&[long.as_bytes()]).is_none());
    }
}
