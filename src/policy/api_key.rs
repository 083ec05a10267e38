//! The authentication stage, by API key: the key is read where the route
//! says (a header, a query parameter or a cookie), hashed, and looked up
//! among the consumers' key digests (`config::consumers`). The consumer
//! found goes on the exchange (for the upstream's consumer header, the
//! access log and the trace span); no key, or one no consumer has, is
//! 401 with a `WWW-Authenticate` challenge naming where the key goes.
//!
//! Where it sits: after the IP rules, before rate limits. Sans-io: it
//! reads the request head in the connection buffer.
//!
//! Keys are never logged: the key's span in the buffer is kept on the
//! exchange (`Exchange::credential`) so the access log writes the query
//! with it masked, and no error cause holds it. A key sent twice (two
//! fields, two parameters, two cookies of the name) is refused with 400:
//! which one counts would be a guess that the upstream might make
//! differently. A query-parameter key is removed from the query the
//! upstream receives; the other parameters keep their bytes and order.

use std::ops::Range;

use crate::config::consumers::MAX_API_KEY_BYTES;
use crate::config::{ApiKeyAuth, Consumers, KeyLocation};
use crate::downstream::exchange::Exchange;
use crate::error::{Error, ErrorKind};
use crate::http1::parse::RequestHead;

/// Runs the stage for a route with `auth`: `Ok` with `x.consumer` set,
/// or the refusal.
pub fn authenticate(auth: &ApiKeyAuth, consumers: &Consumers, rbuf: &[u8], x: &mut Exchange) -> Result<(), Error> {
    let span = match &auth.location {
        KeyLocation::Header(name) => header_value(&x.head, rbuf, name.as_bytes())?,
        KeyLocation::Cookie(name) => cookie_value(&x.head, rbuf, name.as_bytes())?,
        KeyLocation::Query(name) => {
            let Some(query) = x.query.clone() else { return Err(missing(auth)) };
            let found = query_value(rbuf, query.clone(), name.as_bytes())?;
            if found.is_some() {
                x.upstream_query = Some(without_param(&rbuf[query], name.as_bytes()));
            }
            found
        }
    };
    let Some(span) = span else { return Err(missing(auth)) };
    x.credential = Some(span.clone());
    let raw = &rbuf[span];
    if raw.is_empty() {
        return Err(missing(auth));
    }
    let mut decoded = [0u8; MAX_API_KEY_BYTES];
    let key = match &auth.location {
        KeyLocation::Query(_) => match percent_decode(raw, &mut decoded) {
            Some(key) => key,
            // Longer than any key, or a malformed escape: no consumer has it.
            None => return Err(unknown(auth)),
        },
        _ => raw,
    };
    match consumers.find(key) {
        Some(consumer) => {
            x.consumer = Some(consumer);
            Ok(())
        }
        None => Err(unknown(auth)),
    }
}

fn missing(auth: &ApiKeyAuth) -> Error {
    let cause = match &auth.location {
        KeyLocation::Header(_) => "API key missing: send it in the header the WWW-Authenticate challenge names",
        KeyLocation::Query(_) => "API key missing: send it in the query parameter the WWW-Authenticate challenge names",
        KeyLocation::Cookie(_) => "API key missing: send it in the cookie the WWW-Authenticate challenge names",
    };
    Error::new(ErrorKind::Unauthorized, cause).with_header("www-authenticate", auth.challenge.clone())
}

fn unknown(auth: &ApiKeyAuth) -> Error {
    Error::new(ErrorKind::Unauthorized, "API key unknown").with_header("www-authenticate", auth.challenge.clone())
}

fn twice(what: &'static str) -> Error {
    Error::new(ErrorKind::BadRequest, what)
}

fn range_of(rbuf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - rbuf.as_ptr() as usize;
    start..start + part.len()
}

/// The value of the one field `name` (lowercase), if sent.
fn header_value(head: &RequestHead, rbuf: &[u8], name: &[u8]) -> Result<Option<Range<usize>>, Error> {
    let mut found = None;
    for h in head.headers.iter().filter(|h| h.name.of(rbuf).eq_ignore_ascii_case(name)) {
        if found.is_some() {
            return Err(twice("the API key header is sent twice"));
        }
        found = Some(h.value.start as usize..h.value.end as usize);
    }
    Ok(found)
}

/// The value of cookie `name` over every Cookie field (RFC 6265 section
/// 4.2.1: `a=b; c=d`; a value may be in double quotes).
fn cookie_value(head: &RequestHead, rbuf: &[u8], name: &[u8]) -> Result<Option<Range<usize>>, Error> {
    let mut found = None;
    for h in head.headers.iter().filter(|h| h.name.of(rbuf).eq_ignore_ascii_case(b"cookie")) {
        for pair in h.value.of(rbuf).split(|&b| b == b';') {
            let pair = trim(pair);
            let Some(eq) = pair.iter().position(|&b| b == b'=') else { continue };
            if trim(&pair[..eq]) != name {
                continue;
            }
            if found.is_some() {
                return Err(twice("the API key cookie is sent twice"));
            }
            let mut value = trim(&pair[eq + 1..]);
            if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
                value = &value[1..value.len() - 1];
            }
            found = Some(range_of(rbuf, value));
        }
    }
    Ok(found)
}

/// The raw value of query parameter `name` (compared as sent).
fn query_value(rbuf: &[u8], query: Range<usize>, name: &[u8]) -> Result<Option<Range<usize>>, Error> {
    let mut found = None;
    for pair in rbuf[query].split(|&b| b == b'&') {
        let (n, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        if n != name {
            continue;
        }
        if found.is_some() {
            return Err(twice("the API key query parameter is sent twice"));
        }
        found = Some(range_of(rbuf, value));
    }
    Ok(found)
}

/// `query` without the parameters named `name`, the others as sent and
/// in order (empty when none is left).
pub fn without_param(query: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(query.len());
    for pair in query.split(|&b| b == b'&') {
        let n = pair.iter().position(|&b| b == b'=').map_or(pair, |eq| &pair[..eq]);
        if n == name {
            continue;
        }
        if !out.is_empty() {
            out.push(b'&');
        }
        out.extend_from_slice(pair);
    }
    out
}

/// `%XX` escapes decoded into `buf`; `None` for a malformed escape or a
/// result longer than `buf`. (`+` stays `+`: keys are not form text.)
fn percent_decode<'b>(raw: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = if raw[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let (h, l) = (hex(*raw.get(i + 1)?)?, hex(*raw.get(i + 2)?)?);
            i += 3;
            (h * 16 + l) as u8
        } else {
            i += 1;
            raw[i - 1]
        };
        *buf.get_mut(n)? = b;
        n += 1;
    }
    Some(&buf[..n])
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let e = v.iter().rposition(|b| !matches!(b, b' ' | b'\t')).map_or(s, |i| i + 1);
    &v[s..e]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::consumers::KeyDigest;
    use crate::config::Config;
    use crate::http1::parse::{parse_request, HeadLimits};

    const LIMITS: HeadLimits = HeadLimits { max_head_bytes: 8192, max_headers: 64, max_uri_bytes: 1024 };

    fn consumers() -> Consumers {
        let digest = |k: &str| KeyDigest::of(k.as_bytes()).to_string();
        let text = format!(
            "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ndirect = {{}}\n\
             [[consumers]]\nname = \"acme\"\nplan = \"gold\"\napi_keys = [\"{}\", \"{}\"]\n\
             [[consumers]]\nname = \"globex\"\napi_keys = [\"{}\"]\n",
            digest("acme-key"),
            digest("k+y/=="),
            digest("globex-key")
        );
        Config::parse(&text, "t.toml").unwrap().consumers
    }

    fn auth(location: KeyLocation) -> ApiKeyAuth {
        ApiKeyAuth { location, consumer_header: "x-consumer".into(), challenge: "ApiKey header=\"x-api-key\"".into() }
    }

    /// Runs the stage on `raw`: the consumer, or the refusal's (status, cause).
    fn run(location: KeyLocation, raw: &[u8]) -> (Result<Option<usize>, (u16, String)>, Exchange) {
        let mut x = Exchange::new();
        assert!(parse_request(raw, &LIMITS, &mut x.head).unwrap());
        let target = x.head.target.of(raw);
        if let Some(q) = target.iter().position(|&b| b == b'?') {
            let start = x.head.target.start as usize + q + 1;
            x.query = Some(start..x.head.target.end as usize);
        }
        let result = authenticate(&auth(location), &consumers(), raw, &mut x)
            .map(|()| x.consumer)
            .map_err(|e| (e.kind.status().unwrap(), e.cause.into_owned()));
        (result, x)
    }

    fn header(name: &str) -> KeyLocation {
        KeyLocation::Header(name.into())
    }

    #[test]
    fn header_key_hit_miss_missing_and_twice() {
        let (r, x) = run(header("x-api-key"), b"GET / HTTP/1.1\r\nHost: a\r\nX-Api-Key: acme-key\r\n\r\n");
        assert_eq!(r, Ok(Some(0)));
        assert!(x.credential.is_some(), "the key's span is kept for masking");
        let (r, _) = run(header("x-api-key"), b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: globex-key\r\n\r\n");
        assert_eq!(r, Ok(Some(1)));
        let (r, _) = run(header("x-api-key"), b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: nope\r\n\r\n");
        assert_eq!(r, Err((401, "API key unknown".into())));
        let (r, _) = run(header("x-api-key"), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(matches!(r, Err((401, ref c)) if c.starts_with("API key missing")), "{r:?}");
        let (r, _) = run(header("x-api-key"), b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key:\r\n\r\n");
        assert!(matches!(r, Err((401, ref c)) if c.starts_with("API key missing")), "{r:?}");
        let twice = b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: acme-key\r\nx-api-key: globex-key\r\n\r\n";
        assert_eq!(run(header("x-api-key"), twice).0, Err((400, "the API key header is sent twice".into())));
    }

    #[test]
    fn query_key_is_found_decoded_and_removed() {
        let q = || KeyLocation::Query("api_key".into());
        let (r, x) = run(q(), b"GET /p?a=1&api_key=acme-key&b=2&c HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r, Ok(Some(0)));
        assert_eq!(x.upstream_query.as_deref(), Some(&b"a=1&b=2&c"[..]));
        // Percent-escapes decoded; `+` kept.
        let (r, x) = run(q(), b"GET /p?api_key=k+y%2F%3d%3D HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r, Ok(Some(0)));
        assert_eq!(x.upstream_query.as_deref(), Some(&b""[..]));
        let (r, x) = run(q(), b"GET /p?api_key=bad%zz HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r, Err((401, "API key unknown".into())));
        assert_eq!(x.upstream_query.as_deref(), Some(&b""[..]), "removed even when refused");
        let (r, x) = run(q(), b"GET /p?a=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(matches!(r, Err((401, _))));
        assert_eq!(x.upstream_query, None);
        assert!(matches!(run(q(), b"GET /p HTTP/1.1\r\nHost: a\r\n\r\n").0, Err((401, _))));
        // A parameter that only starts with the name is another parameter.
        assert!(matches!(run(q(), b"GET /p?api_keys=acme-key HTTP/1.1\r\nHost: a\r\n\r\n").0, Err((401, _))));
        let twice = b"GET /p?api_key=acme-key&api_key=globex-key HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(run(q(), twice).0, Err((400, "the API key query parameter is sent twice".into())));
    }

    #[test]
    fn cookie_key_over_every_cookie_field() {
        let c = || KeyLocation::Cookie("k".into());
        let (r, _) = run(c(), b"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1; k=globex-key; b=2\r\n\r\n");
        assert_eq!(r, Ok(Some(1)));
        let (r, _) = run(c(), b"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: k=\"acme-key\"\r\n\r\n");
        assert_eq!(r, Ok(Some(0)));
        assert!(matches!(run(c(), b"GET / HTTP/1.1\r\nHost: a\r\nCookie: kk=acme-key\r\n\r\n").0, Err((401, _))));
        let twice = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: k=acme-key\r\nCookie: k=acme-key\r\n\r\n";
        assert_eq!(run(c(), twice).0, Err((400, "the API key cookie is sent twice".into())));
    }

    #[test]
    fn refusals_carry_the_challenge_and_never_the_key() {
        let mut x = Exchange::new();
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nx-api-key: secret-guess\r\n\r\n";
        assert!(parse_request(raw, &LIMITS, &mut x.head).unwrap());
        let e = authenticate(&auth(header("x-api-key")), &consumers(), raw, &mut x).unwrap_err();
        assert_eq!(e.headers, [("www-authenticate", "ApiKey header=\"x-api-key\"".into())]);
        assert!(!format!("{e} {e:?}").contains("secret-guess"));
    }

    #[test]
    fn without_param_keeps_the_rest_in_order() {
        const CASES: &[(&str, &str)] = &[
            ("api_key=x", ""),
            ("a=1&api_key=x", "a=1"),
            ("api_key=x&a=1", "a=1"),
            ("a=1&api_key=x&b=2", "a=1&b=2"),
            ("a=%20&api_key&b", "a=%20&b"),
            ("api_key2=x&a", "api_key2=x&a"),
        ];
        for &(query, want) in CASES {
            assert_eq!(String::from_utf8(without_param(query.as_bytes(), b"api_key")).unwrap(), want, "{query}");
        }
    }

    #[test]
    fn percent_decode_bounds() {
        let mut buf = [0u8; 4];
        assert_eq!(percent_decode(b"a%41", &mut buf), Some(&b"aA"[..]));
        assert_eq!(percent_decode(b"abcde", &mut buf), None, "longer than the buffer");
        assert_eq!(percent_decode(b"a%4", &mut buf), None);
        assert_eq!(percent_decode(b"%g1", &mut buf), None);
    }
}
