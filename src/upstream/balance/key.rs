//! The request key of the hashing algorithms (`hash_key`): read from the
//! parsed request once per request, before the first try, and only for a
//! cluster whose `lb` hashes — other clusters pay one match on `None`.
//! A request without the key (no such header, cookie or query parameter)
//! has no key and is balanced round robin.

use super::hash::hash64;
use crate::config::{Balance, HashKey};
use crate::downstream::client_addr::ClientAddr;
use crate::downstream::exchange::Exchange;

/// The hash of the request's key under `balance`, if the cluster hashes
/// and the request has the key. `rbuf` holds the request head.
#[inline]
pub fn request_key(balance: &Balance, x: &Exchange, client: &ClientAddr, rbuf: &[u8]) -> Option<u64> {
    let key = balance.hash_key.as_ref()?;
    key_bytes(key, x, client, rbuf).map(|bytes| hash64(0, bytes))
}

fn key_bytes<'a>(key: &'a HashKey, x: &'a Exchange, client: &'a ClientAddr, rbuf: &'a [u8]) -> Option<&'a [u8]> {
    match key {
        HashKey::Header(name) => header(x, rbuf, name.as_bytes()).next(),
        HashKey::Cookie(name) => header(x, rbuf, b"cookie").find_map(|v| cookie(v, name.as_bytes())),
        HashKey::ClientAddress => Some(client.text()),
        HashKey::Path => Some(&x.path),
        HashKey::Query(name) => query_param(&rbuf[x.query.clone()?], name.as_bytes()),
    }
}

/// Values of the headers named `name` (lowercase), in order.
fn header<'a>(x: &'a Exchange, rbuf: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    x.head.headers.iter().filter(move |h| h.name.of(rbuf).eq_ignore_ascii_case(name)).map(move |h| h.value.of(rbuf))
}

/// The value of cookie `name` in one Cookie header (`a=1; b=2`, RFC 6265
/// §4.2.1; spaces around pairs tolerated).
pub fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (pair[..eq].trim_ascii() == name).then(|| pair[eq + 1..].trim_ascii())
    })
}

/// The raw (not percent-decoded) value of the first query parameter
/// `name`; a parameter without `=` has the empty value.
pub fn query_param<'a>(query: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (n, v) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        (n == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Input, name looked for, value expected.
    type Case = (&'static [u8], &'static [u8], Option<&'static [u8]>);

    #[test]
    fn cookies_are_found_by_exact_name() {
        const CASES: &[Case] = &[
            (b"sid=abc", b"sid", Some(b"abc")),
            (b"theme=dark; sid=abc; x=1", b"sid", Some(b"abc")),
            (b"theme=dark;sid=abc", b"sid", Some(b"abc")),
            (b"xsid=abc; sidx=def", b"sid", None),
            (b"sid=", b"sid", Some(b"")),
            (b"sid", b"sid", None),
            (b"", b"sid", None),
        ];
        for &(header, name, expected) in CASES {
            assert_eq!(cookie(header, name), expected, "{:?}", String::from_utf8_lossy(header));
        }
    }

    #[test]
    fn query_parameters_are_found_by_exact_name() {
        const CASES: &[Case] = &[
            (b"user=7", b"user", Some(b"7")),
            (b"a=1&user=7&user=8", b"user", Some(b"7")),
            (b"username=7", b"user", None),
            (b"user", b"user", Some(b"")),
            (b"a=%20&user=x%2Fy", b"user", Some(b"x%2Fy")),
            (b"", b"user", None),
        ];
        for &(query, name, expected) in CASES {
            assert_eq!(query_param(query, name), expected, "{:?}", String::from_utf8_lossy(query));
        }
    }
}
