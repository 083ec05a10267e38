//! Who may use the admin listener: with `admin.token` set, every admin
//! request must carry `Authorization: Bearer TOKEN` (RFC 6750 §2.1), checked
//! before the path is even looked at, so a client without the token learns
//! nothing but 401. Without a token the listener is open to whoever can
//! reach its address (loopback by default).

use crate::config::Secret;

/// `WWW-Authenticate` of a 401 (RFC 9110 §11.6.1: a 401 names its scheme).
pub const CHALLENGE: &str = "Bearer realm=\"shardgate admin\"";

/// Whether a request with `headers` may be served. One `Authorization`
/// field, scheme `Bearer` (any case), one or more spaces, then the token,
/// compared in constant time; anything else (no field, two fields, another
/// scheme, a wrong token) is refused.
pub fn authorized(token: Option<&Secret>, headers: &[httparse::Header<'_>]) -> bool {
    let Some(token) = token else { return true };
    let mut fields = headers.iter().filter(|h| h.name.eq_ignore_ascii_case("authorization"));
    let (Some(field), None) = (fields.next(), fields.next()) else {
        return false;
    };
    let value = field.value;
    let scheme = b"bearer";
    if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return false;
    }
    let rest = &value[scheme.len()..];
    let presented = rest.trim_ascii_start();
    // At least one space after the scheme, none after the token.
    if presented.len() == rest.len() || presented.trim_ascii_end().len() != presented.len() {
        return false;
    }
    token.matches(presented)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::SecretSource;

    #[test]
    fn bearer_headers_table() {
        let token = Secret::new(SecretSource::Env("T".into()), b"tok-123".to_vec());
        /// (header fields, whether the request is let through)
        type Case = (&'static [(&'static str, &'static [u8])], bool);
        const CASES: &[Case] = &[
            (&[("Authorization", b"Bearer tok-123")], true),
            (&[("authorization", b"bearer tok-123")], true),
            (&[("AUTHORIZATION", b"BEARER   tok-123")], true),
            (&[], false),
            (&[("Authorization", b"Bearer tok-124")], false),
            (&[("Authorization", b"Bearer tok-12")], false),
            (&[("Authorization", b"Bearer tok-1234")], false),
            (&[("Authorization", b"Bearertok-123")], false),
            (&[("Authorization", b"Bearer tok-123 ")], false),
            (&[("Authorization", b"Bearer ")], false),
            (&[("Authorization", b"Basic dG9rLTEyMw==")], false),
            (&[("Authorization", b"tok-123")], false),
            (&[("Authorization", b"Bearer tok-123"), ("Authorization", b"Bearer tok-123")], false),
            (&[("X-Token", b"tok-123")], false),
        ];
        for (fields, want) in CASES {
            let headers: Vec<httparse::Header<'_>> =
                fields.iter().map(|(name, value)| httparse::Header { name, value }).collect();
            assert_eq!(authorized(Some(&token), &headers), *want, "{fields:?}");
            assert!(authorized(None, &headers), "no token configured: open");
        }
    }
}
