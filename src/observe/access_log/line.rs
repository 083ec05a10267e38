//! One access log line from one [`Record`]: the JSON object (the fields
//! the config lists, in its order) or nginx's `combined` line. Appends to
//! the shard's buffer; copies only what the line needs.

use std::borrow::Cow;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::clock::WallTime;
use super::escape;
use super::json_names::JsonNames;
use crate::config::access_log::{AccessLog, LogField, LogFormat};
use crate::http1::Version;
use crate::observe::record::Record;

/// Appends `r`'s line (newline included) to `out`; `time` is when the
/// request started.
pub fn write_line(out: &mut Vec<u8>, r: &Record<'_>, log: &AccessLog, names: &JsonNames, time: WallTime) {
    match log.format {
        LogFormat::Json => json(out, r, log, names, time),
        LogFormat::Combined => combined(out, r, time),
    }
    out.push(b'\n');
}

fn json(out: &mut Vec<u8>, r: &Record<'_>, log: &AccessLog, names: &JsonNames, time: WallTime) {
    let o = r.outcome;
    out.reserve(256);
    out.push(b'{');
    for (i, &field) in log.fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // `"name":` in one copy.
        out.extend_from_slice(field.json_key());
        match field {
            LogField::Time => {
                out.push(b'"');
                time.write_rfc3339(out);
                out.push(b'"');
            }
            LogField::RequestId => opt_str(out, Some(r.request_id).filter(|id| !id.is_empty())),
            LogField::TraceId => opt_str(out, r.trace_id),
            LogField::Listener => quoted(out, names.listeners.get(r.listener).map(|n| &n[..])),
            LogField::Client => ip(out, r.client),
            LogField::Peer => {
                out.push(b'"');
                socket_addr(out, r.peer);
                out.push(b'"');
            }
            LogField::TlsVersion => opt_str(out, r.tls_version.map(str::as_bytes)),
            LogField::Protocol => match r.head {
                Some(h) => {
                    out.push(b'"');
                    out.extend_from_slice(protocol(h.version));
                    out.push(b'"');
                }
                None => out.extend_from_slice(b"null"),
            },
            // A method is a token (RFC 9110 tchar: no quote, backslash or
            // control character; the parser refuses others): nothing to escape.
            LogField::Method => match r.head {
                Some(h) => {
                    out.push(b'"');
                    out.extend_from_slice(h.method_span.of(r.rbuf));
                    out.push(b'"');
                }
                None => out.extend_from_slice(b"null"),
            },
            LogField::Host => opt_str(out, r.head.and_then(|h| h.host).map(|s| s.of(r.rbuf))),
            LogField::Path => opt_str(out, path(r)),
            LogField::Query => opt_str(out, query(r).map(|q| masked(r, q)).as_deref()),
            LogField::Status => number(out, o.status as u64),
            LogField::BytesReceived => number(out, o.bytes_received),
            LogField::BytesSent => number(out, o.bytes_sent),
            LogField::UserAgent => opt_str(out, header(r, b"user-agent")),
            LogField::Referer => opt_str(out, header(r, b"referer")),
            LogField::Route => quoted(out, o.route.and_then(|i| names.routes.get(i)).map(|n| &n[..])),
            LogField::Cluster => quoted(out, o.cluster.and_then(|i| names.clusters.get(i)).map(|n| &n[..])),
            LogField::Consumer => opt_str(out, r.consumer.map(str::as_bytes)),
            LogField::Endpoint => {
                let config = r.generation.config();
                let addr = o.endpoint.and_then(|e| config.clusters.get(e.cluster)?.endpoints.get(e.index));
                match addr {
                    Some(&a) => {
                        out.push(b'"');
                        socket_addr(out, a);
                        out.push(b'"');
                    }
                    None => out.extend_from_slice(b"null"),
                }
            }
            LogField::UpstreamStatus => opt_number(out, o.upstream_status.map(u64::from)),
            LogField::Retries => number(out, o.retries as u64),
            LogField::Error => opt_str(out, o.error.map(|e| e.name().as_bytes())),
            LogField::HeadReadUs => number(out, micros(o.timings.head_read)),
            LogField::UpstreamConnectUs => opt_number(out, o.timings.upstream_connect.map(micros)),
            LogField::UpstreamFirstByteUs => opt_number(out, o.timings.upstream_head.map(micros)),
            LogField::TotalUs => number(out, micros(o.timings.total)),
        }
    }
    if !log.headers.is_empty() {
        out.extend_from_slice(b",\"headers\":{");
        for (i, name) in log.headers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            escape::json_str(out, name.as_bytes());
            out.push(b':');
            opt_str(out, header(r, name.as_bytes()));
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// `$remote_addr - $remote_user [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer" "$http_user_agent"`, with the
/// effective client, time in UTC, and `-` for what is absent.
fn combined(out: &mut Vec<u8>, r: &Record<'_>, time: WallTime) {
    ip_text(out, r.client);
    out.extend_from_slice(b" - - [");
    time.write_common_log(out);
    out.extend_from_slice(b"] \"");
    match r.head {
        Some(h) => {
            escape::combined(out, h.method_span.of(r.rbuf));
            out.push(b' ');
            escape::combined(out, &masked(r, h.target.of(r.rbuf)));
            out.push(b' ');
            out.extend_from_slice(protocol(h.version));
        }
        None => out.push(b'-'),
    }
    out.extend_from_slice(b"\" ");
    number(out, r.outcome.status as u64);
    out.push(b' ');
    number(out, r.outcome.bytes_sent);
    out.extend_from_slice(b" \"");
    quoted_or_dash(out, header(r, b"referer"));
    out.extend_from_slice(b"\" \"");
    quoted_or_dash(out, header(r, b"user-agent"));
    out.push(b'"');
}

fn quoted_or_dash(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => escape::combined(out, v),
        None => out.push(b'-'),
    }
}

fn protocol(v: Version) -> &'static [u8] {
    match v {
        Version::Http10 => b"HTTP/1.0",
        Version::Http11 => b"HTTP/1.1",
    }
}

/// The first field named `name` (lowercase), as sent.
fn header<'a>(r: &Record<'a>, name: &[u8]) -> Option<&'a [u8]> {
    let head = r.head?;
    head.headers.iter().find(|h| h.name.of(r.rbuf).eq_ignore_ascii_case(name)).map(|h| h.value.of(r.rbuf))
}

/// The normalised path once routing saw it, else the target's path as
/// sent (a request refused before routing).
fn path<'a>(r: &Record<'a>) -> Option<&'a [u8]> {
    if !r.path.is_empty() {
        return Some(r.path);
    }
    let target = r.head?.target.of(r.rbuf);
    Some(target.split(|&b| b == b'?').next().unwrap_or(target))
}

/// The query as sent, without the `?`; `None` when the target has none.
fn query<'a>(r: &Record<'a>) -> Option<&'a [u8]> {
    let target = r.head?.target.of(r.rbuf);
    let at = target.iter().position(|&b| b == b'?')?;
    Some(&target[at + 1..])
}

/// What a credential is written as.
const MASK: &[u8] = b"***";

/// `part` (a slice of `r.rbuf`) with the request's credential, if it
/// lies in `part`, written as [`MASK`]: an API key sent in the query
/// never reaches a log.
fn masked<'a>(r: &Record<'_>, part: &'a [u8]) -> Cow<'a, [u8]> {
    let Some(secret) = r.credential.clone() else { return Cow::Borrowed(part) };
    let start = (part.as_ptr() as usize).wrapping_sub(r.rbuf.as_ptr() as usize);
    let end = start + part.len();
    if start > r.rbuf.len() || secret.start < start || secret.end > end || secret.is_empty() {
        return Cow::Borrowed(part);
    }
    let mut out = Vec::with_capacity(part.len());
    out.extend_from_slice(&part[..secret.start - start]);
    out.extend_from_slice(MASK);
    out.extend_from_slice(&part[secret.end - start..]);
    Cow::Owned(out)
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn opt_number(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => number(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

/// A name prepared by `JsonNames` (quoted and escaped), or `null`.
fn quoted(out: &mut Vec<u8>, name: Option<&[u8]>) {
    match name {
        Some(n) => out.extend_from_slice(n),
        None => out.extend_from_slice(b"null"),
    }
}

fn opt_str(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => escape::json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    out.push(b'"');
    ip_text(out, ip);
    out.push(b'"');
}

/// An address as `Display` writes it; IPv4 without the formatting
/// machinery (the common case, on every line).
fn ip_text(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // `a.b.c.d` assembled in 16 bytes on the stack, one copy out.
            let mut text = [0u8; 16];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                let (digits, n) = OCTETS[octet as usize];
                text[len..len + 3].copy_from_slice(&digits);
                len += n as usize;
            }
            out.extend_from_slice(&text[..len]);
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Each octet's decimal digits (left-aligned) and their count.
const OCTETS: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut n = 0;
    while n < 256 {
        let (h, t, o) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        table[n] = if n >= 100 {
            ([b'0' + h, b'0' + t, b'0' + o], 3)
        } else if n >= 10 {
            ([b'0' + t, b'0' + o, 0], 2)
        } else {
            ([b'0' + o, 0, 0], 1)
        };
        n += 1;
    }
    table
};

/// `1.2.3.4:80` / `[::1]:80`, as `Display` writes them.
fn socket_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => ip_text(out, IpAddr::V4(*a.ip())),
        SocketAddr::V6(a) => {
            let _ = write!(out, "[{}", a.ip());
            if a.scope_id() != 0 {
                let _ = write!(out, "%{}", a.scope_id());
            }
            out.push(b']');
        }
    }
    out.push(b':');
    number(out, addr.port() as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written address formatting writes what `Display` does.
    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut addrs: Vec<SocketAddr> = vec![
            "0.0.0.0:0".parse().unwrap(),
            "255.255.255.255:65535".parse().unwrap(),
            "10.0.100.9:8080".parse().unwrap(),
            "[::1]:443".parse().unwrap(),
            "[2001:db8::7%3]:1".parse().unwrap(),
        ];
        for n in 0..=255u8 {
            addrs.push(SocketAddr::from(([n, n.wrapping_mul(7), 1, n / 3], u16::from(n) * 257)));
        }
        for addr in addrs {
            let mut out = Vec::new();
            socket_addr(&mut out, addr);
            assert_eq!(String::from_utf8(out).unwrap(), addr.to_string());
            let mut out = Vec::new();
            ip_text(&mut out, addr.ip());
            assert_eq!(String::from_utf8(out).unwrap(), addr.ip().to_string());
        }
    }
}
