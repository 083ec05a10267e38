//! A route's policies, and a listener's IP rules: the file shape
//! (`[routes.auth]`, `[routes.ip_rules]`, `error_format`,
//! `[listeners.ip_rules]`), their checks, and the plain data the policy
//! stages read (`crate::policy`).
//!
//! Where it sits: beside `validate.rs` in `file -> validate -> Config`.
//! Everything a stage needs is decided here, once per load: lowercase
//! header names, parsed ranges, the challenge string of a 401. The
//! request path compares bytes and never parses config text.

use serde::Deserialize;

use super::spans::FieldPath;
use super::validate::Check;
use super::values::parse_header_name;
use super::Cidr;
use crate::error::ErrorFormat;

/// Where an API key is read when a route sets `api_key = {}`.
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";
/// The header that carries the consumer's name upstream.
pub const DEFAULT_CONSUMER_HEADER: &str = "x-consumer";

/// `ip_rules = { allow = [...], deny = [...] }` on a route or a listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRulesFile {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

/// `[routes.auth]`: how a route's clients prove who they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub api_key: Option<ApiKeyFile>,
    pub consumer_header: Option<String>,
}

/// `api_key = { header = "x-api-key" }`, `{ query = "api_key" }` or
/// `{ cookie = "session_key" }`; `{}` is the default header.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyFile {
    pub header: Option<String>,
    pub query: Option<String>,
    pub cookie: Option<String>,
}

/// What a route does before its action, compiled from its config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePolicies {
    /// How refusals and errors of this route are written.
    pub error_format: ErrorFormat,
    /// `None`: every client address may use the route.
    pub ip_rules: Option<IpRules>,
    /// `None`: no authentication.
    pub auth: Option<ApiKeyAuth>,
}

impl RoutePolicies {
    /// `key=value` words for `shardgate check`; empty when all default.
    pub fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.error_format != ErrorFormat::default() {
            out.push(format!("error_format={}", self.error_format.word()));
        }
        if let Some(rules) = &self.ip_rules {
            out.extend(rules.summary());
        }
        if let Some(auth) = &self.auth {
            let at = match &auth.location {
                KeyLocation::Header(n) => format!("header:{n}"),
                KeyLocation::Query(n) => format!("query:{n}"),
                KeyLocation::Cookie(n) => format!("cookie:{n}"),
            };
            out.push(format!("auth=api_key({at}) consumer_header={}", auth.consumer_header));
        }
        out
    }
}

/// Client address rules (nginx `allow`/`deny`, Envoy's RBAC on
/// `remote_ip`): a client in `deny` is refused; with an `allow` list, a
/// client outside it is refused too. Judged on the effective client
/// address (`downstream/client_addr.rs`, with `trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRules {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
}

impl IpRules {
    /// Why `ip` is refused, if it is.
    pub fn refusal(&self, ip: std::net::IpAddr) -> Option<&'static str> {
        if super::cidr::any_contains(&self.deny, ip) {
            Some("in a denied range")
        } else if !self.allow.is_empty() && !super::cidr::any_contains(&self.allow, ip) {
            Some("not in an allowed range")
        } else {
            None
        }
    }

    fn summary(&self) -> Vec<String> {
        let list = |v: &[Cidr]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
        let mut out = Vec::new();
        if !self.allow.is_empty() {
            out.push(format!("ip_allow={}", list(&self.allow)));
        }
        if !self.deny.is_empty() {
            out.push(format!("ip_deny={}", list(&self.deny)));
        }
        out
    }
}

/// `[routes.auth] api_key`: the request must carry a key of a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyAuth {
    pub location: KeyLocation,
    /// Lowercase; set upstream to the consumer's name, never taken from
    /// the client (it is among `Config::asserted_headers`).
    pub consumer_header: String,
    /// The `WWW-Authenticate` value of a 401, naming where the key goes
    /// (`ApiKey header="x-api-key"`).
    pub challenge: String,
}

/// Where a route reads its API key. Names as configured, header names
/// lowercase; query parameter and cookie names compare exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    Header(String),
    /// Removed from the query before the request goes upstream.
    Query(String),
    Cookie(String),
}

/// A query parameter or cookie name: a non-empty token a client can send
/// without escaping.
fn check_param_name(text: &str, what: &str) -> Result<String, String> {
    let ok =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not a usable {what} name (letters, digits, - _ . ~)"))
    }
}

impl Check<'_> {
    /// `ip_rules` of a route or listener.
    pub(super) fn ip_rules(&mut self, path: &FieldPath, f: &IpRulesFile) -> IpRules {
        let allow = self.ip_list(&path.key("allow"), f.allow.as_deref());
        let deny = self.ip_list(&path.key("deny"), f.deny.as_deref());
        if f.allow.is_none() && f.deny.is_none() {
            self.error(path, "empty: set allow, deny or both (or remove ip_rules)");
        }
        if f.allow.as_ref().is_some_and(|a| a.is_empty()) {
            self.error(&path.key("allow"), "an empty allow list refuses every client: list ranges or remove allow");
        }
        for c in &deny {
            if allow.contains(c) {
                self.error(&path.key("deny"), format!("{c} is in both allow and deny"));
            }
        }
        IpRules { allow, deny }
    }

    fn ip_list(&mut self, path: &FieldPath, list: Option<&[String]>) -> Vec<Cidr> {
        let mut ranges: Vec<Cidr> = Vec::new();
        for (i, text) in list.unwrap_or_default().iter().enumerate() {
            let ipath = path.index(i);
            let Some(cidr) = self.ok(&ipath, Cidr::parse(text)) else { continue };
            if ranges.contains(&cidr) {
                self.error(&ipath, format!("{cidr} is listed twice"));
            } else {
                ranges.push(cidr);
            }
        }
        ranges
    }

    /// A route's `error_format`, `ip_rules` and `auth`.
    pub(super) fn route_policies(
        &mut self,
        path: &FieldPath,
        error_format: Option<&str>,
        ip_rules: Option<&IpRulesFile>,
        auth: Option<&AuthFile>,
    ) -> RoutePolicies {
        let error_format =
            self.word(&path.key("error_format"), error_format, ErrorFormat::WORDS, ErrorFormat::default());
        let ip_rules = ip_rules.map(|f| self.ip_rules(&path.key("ip_rules"), f));
        let auth = auth.and_then(|a| self.auth(&path.key("auth"), a));
        RoutePolicies { error_format, ip_rules, auth }
    }

    fn auth(&mut self, path: &FieldPath, f: &AuthFile) -> Option<ApiKeyAuth> {
        // Checked before the method, so both errors show in one run.
        let consumer_header = match &f.consumer_header {
            None => Some(DEFAULT_CONSUMER_HEADER.to_owned()),
            Some(name) => self.ok(&path.key("consumer_header"), parse_header_name(name)),
        };
        let Some(k) = &f.api_key else {
            self.error(path, "no method: set api_key (e.g. api_key = { header = \"x-api-key\" })");
            return None;
        };
        let consumer_header = consumer_header?;
        let kpath = path.key("api_key");
        let set = [k.header.is_some(), k.query.is_some(), k.cookie.is_some()].iter().filter(|&&s| s).count();
        if set > 1 {
            self.error(&kpath, "set one of header, query or cookie");
            return None;
        }
        let location = if let Some(q) = &k.query {
            KeyLocation::Query(self.ok(&kpath.key("query"), check_param_name(q, "query parameter"))?)
        } else if let Some(c) = &k.cookie {
            KeyLocation::Cookie(self.ok(&kpath.key("cookie"), check_param_name(c, "cookie"))?)
        } else {
            let name = k.header.as_deref().unwrap_or(DEFAULT_API_KEY_HEADER);
            let name = self.ok(&kpath.key("header"), parse_header_name(name))?;
            if matches!(name.as_str(), "host" | "cookie" | "content-length" | "transfer-encoding" | "connection") {
                self.error(&kpath.key("header"), format!("{name} cannot carry an API key"));
                return None;
            }
            if name == consumer_header {
                let msg = format!("{name} is also the consumer_header: the proxy replaces it before forwarding");
                self.error(&kpath.key("header"), msg);
                return None;
            }
            KeyLocation::Header(name)
        };
        let challenge = match &location {
            KeyLocation::Header(n) => format!("ApiKey header=\"{n}\""),
            KeyLocation::Query(n) => format!("ApiKey query=\"{n}\""),
            KeyLocation::Cookie(n) => format!("ApiKey cookie=\"{n}\""),
        };
        Some(ApiKeyAuth { location, consumer_header, challenge })
    }
}

impl Check<'_> {
    /// What concerns policies across sections: a key header must not be
    /// logged, and an authenticating route without consumers admits no one.
    pub(super) fn check_policies(
        &mut self,
        routes: &[super::Route],
        access_log: Option<&super::access_log::AccessLog>,
        consumers: &super::Consumers,
    ) {
        for (i, route) in routes.iter().enumerate() {
            let Some(auth) = &route.policies.auth else { continue };
            let path = FieldPath::root("routes").index(i).key("auth");
            if consumers.is_empty() {
                self.warn(&path, "no [[consumers]] are configured: every request on this route gets 401");
            }
            let KeyLocation::Header(name) = &auth.location else { continue };
            if let Some(log) = access_log {
                if let Some(j) = log.headers.iter().position(|h| h.eq_ignore_ascii_case(name)) {
                    let msg = format!("{name} carries API keys (routes[{i}].auth.api_key): it is never logged");
                    self.error(&FieldPath::root("access_log").key("headers").index(j), msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const ACME: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn policies_compile_into_plain_data_and_show_in_check() {
        let text = format!(
            "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\
             [listeners.ip_rules]\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny = [\"10.9.0.0/16\"]\n\
             [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:9\"]\n\
             [[routes]]\nname = \"q\"\ncluster = \"c\"\nerror_format = \"problem+json\"\n\
             ip_rules = {{ deny = [\"::1\"] }}\n\
             [routes.auth]\napi_key = {{ query = \"api_key\" }}\n\
             [[routes]]\nname = \"h\"\ncluster = \"c\"\n[routes.auth]\napi_key = {{}}\nconsumer_header = \"X-Who\"\n\
             [[routes]]\nname = \"open\"\ncluster = \"c\"\n\
             [[consumers]]\nname = \"acme\"\nplan = \"gold\"\ntags = [\"partner\", \"partner\"]\napi_keys = [\"{ACME}\"]\n"
        );
        let c = Config::parse(&text, "t.toml").unwrap();
        let rules = c.listeners[0].ip_rules.as_ref().unwrap();
        assert_eq!(rules.allow.len(), 2);
        assert_eq!(rules.refusal("10.9.1.1".parse().unwrap()), Some("in a denied range"));
        let q = &c.routes[0].policies;
        assert_eq!(q.error_format, ErrorFormat::ProblemJson);
        let auth = q.auth.as_ref().unwrap();
        assert_eq!(auth.location, KeyLocation::Query("api_key".into()));
        assert_eq!(auth.consumer_header, DEFAULT_CONSUMER_HEADER);
        assert_eq!(auth.challenge, "ApiKey query=\"api_key\"");
        let h = c.routes[1].policies.auth.as_ref().unwrap();
        assert_eq!(h.location, KeyLocation::Header(DEFAULT_API_KEY_HEADER.into()));
        assert_eq!(h.consumer_header, "x-who", "lowercased");
        assert_eq!(c.routes[2].policies, RoutePolicies::default());
        // Both consumer headers are the proxy's alone, on every route.
        assert!(c.asserted_headers.contains(b"X-Consumer") && c.asserted_headers.contains(b"x-who"));
        assert_eq!(c.consumers.list[0].tags, ["partner"]);
        assert_eq!(c.consumers.find(b"abc"), Some(0));

        let summary = c.summary();
        assert!(summary.contains("  ip_allow=10.0.0.0/8,2001:db8::/32 ip_deny=10.9.0.0/16\n"), "{summary}");
        assert!(
            summary.contains(
                "    error_format=problem+json ip_deny=::1/128 auth=api_key(query:api_key) consumer_header=x-consumer\n"
            ),
            "{summary}"
        );
        assert!(summary.contains("consumer \"acme\" plan=\"gold\" tags=partner api_keys=1\n"), "{summary}");
        assert!(!summary.contains("ba7816bf"), "digests are not shown");
    }

    #[test]
    fn errors_name_the_field_path_and_line() {
        let base = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ndirect = {}\n";
        let errs =
            Config::parse(&format!("{base}[routes.auth]\napi_key = {{ cookie = \"a b\" }}\n"), "t.toml").unwrap_err();
        assert_eq!((errs.0[0].path.as_str(), errs.0[0].line), ("routes[0].auth.api_key.cookie", Some(7)));
        let errs = Config::parse(&format!("{base}ip_rules = {{ deny = [\"::1/200\"] }}\n"), "t.toml").unwrap_err();
        assert_eq!((errs.0[0].path.as_str(), errs.0[0].line), ("routes[0].ip_rules.deny[0]", Some(6)));
        let errs =
            Config::parse(&format!("{base}[[consumers]]\nname = \"a\"\napi_keys = [\"k\"]\n"), "t.toml").unwrap_err();
        assert_eq!((errs.0[0].path.as_str(), errs.0[0].line), ("consumers[0].api_keys[0]", Some(8)));
        // A misplaced route key after [routes.auth] gets the hint.
        let errs = Config::parse(&format!("{base}[routes.auth]\napi_key = {{}}\nerror_format = \"text\"\n"), "t.toml")
            .unwrap_err();
        assert!(errs.0[0].message.contains("belong to it"), "{}", errs.0[0].message);
    }
}
