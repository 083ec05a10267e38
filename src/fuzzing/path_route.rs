//! Fuzz target: path normalisation (`pipeline::path`) and route matching
//! (`pipeline::route`), as the pipeline's route stage runs them.
//!
//! Input: the first byte picks the listener's path rules (two bits per
//! rule) and the second the method and whether an `x-env: canary` field
//! is sent; the rest is the request target, then (after a `\n`) the Host.
//!
//! Properties, for every request the head parser accepts:
//! 1. A normalised path starts with `/`, has no empty, `.` or `..`
//!    segment, and normalises to itself with no query.
//! 2. Its match form (`matrix_parameters = "strip"`) has no `;` and the
//!    same shape, and is its own match form.
//! 3. The route selected is the one a reference matcher (written here
//!    over the same route table, with plain string operations) selects:
//!    first route in order whose host (exact or `*.suffix`, any case, a
//!    trailing dot ignored), path (exact or prefix, case-insensitive
//!    where asked), method and header all hold.

use std::sync::OnceLock;

use super::show;
use crate::config::{
    Backslash, Config, DoubleEncoding, EscapedSlashes, MatrixParameters, PathRules, TrailingDotsAndSpaces,
};
use crate::http1::parse::{host_without_port, origin_form, parse_request, RequestHead};
use crate::pipeline::path::{match_form, normalise};
use crate::pipeline::route::{select, MatchInput};

/// The route table, as a config file says it.
const ROUTES_TOML: &str = r#"
[[listeners]]
name = "public"
listen = "127.0.0.1:8080"

[[routes]]
name = "deny-admin"
direct = { status = 403 }
[routes.match]
path_prefix = "/admin/"

[[routes]]
name = "admin-exact"
direct = { status = 403 }
[routes.match]
path = "/admin"

[[routes]]
name = "api-v1"
cluster = "api"
[routes.match]
host = "api.example.com"
path_prefix = "/v1/"
methods = ["GET", "POST"]

[[routes]]
name = "tenants"
cluster = "api"
[routes.match]
host = "*.tenants.example"
path_prefix = "/Reports/"
path_case_insensitive = true

[[routes]]
name = "canary"
cluster = "api"
[routes.match]
path_prefix = "/app"
headers = { x-env = "canary" }

[[routes]]
name = "static-exact"
cluster = "api"
[routes.match]
path = "/static/index.html"
path_case_insensitive = true

[[routes]]
name = "fallback"
cluster = "api"

[[clusters]]
name = "api"
endpoints = ["127.0.0.1:9000"]
"#;

/// The same table for the reference matcher:
/// (name, host, path, path is a prefix, case-insensitive, methods, needs x-env: canary).
type RefRoute = (&'static str, Option<&'static str>, Option<&'static str>, bool, bool, &'static [&'static str], bool);
const REFERENCE_ROUTES: &[RefRoute] = &[
    ("deny-admin", None, Some("/admin/"), true, false, &[], false),
    ("admin-exact", None, Some("/admin"), false, false, &[], false),
    ("api-v1", Some("api.example.com"), Some("/v1/"), true, false, &["GET", "POST"], false),
    ("tenants", Some("*.tenants.example"), Some("/reports/"), true, true, &[], false),
    ("canary", None, Some("/app"), true, false, &[], true),
    ("static-exact", None, Some("/static/index.html"), false, true, &[], false),
    ("fallback", None, None, false, false, &[], false),
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "get"];

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::parse(ROUTES_TOML, "path_route routes").expect("the route table is valid"))
}

/// Two bits per rule, each option of the rule reachable.
pub fn rules_from(bits: u8) -> PathRules {
    let pick = |shift: u32| (bits >> shift) & 3;
    PathRules {
        escaped_slashes: [EscapedSlashes::Reject, EscapedSlashes::Keep, EscapedSlashes::Decode, EscapedSlashes::Reject]
            [pick(0) as usize],
        backslash: if pick(2) & 1 == 1 { Backslash::Slash } else { Backslash::Reject },
        matrix_parameters: [
            MatrixParameters::Reject,
            MatrixParameters::Keep,
            MatrixParameters::Strip,
            MatrixParameters::Strip,
        ][pick(4) as usize],
        trailing_dots_and_spaces: [
            TrailingDotsAndSpaces::Reject,
            TrailingDotsAndSpaces::Keep,
            TrailingDotsAndSpaces::Strip,
            TrailingDotsAndSpaces::Strip,
        ][pick(6) as usize],
        double_encoding: if pick(2) & 2 == 2 { DoubleEncoding::Keep } else { DoubleEncoding::Reject },
    }
}

pub fn path_route(data: &[u8]) {
    let [rule_bits, request_bits, rest @ ..] = data else { return };
    let rules = rules_from(*rule_bits);
    let method = METHODS[usize::from(request_bits & 7)];
    let canary = request_bits & 8 == 8;
    let (target, host) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"api.example.com"[..]),
    };
    let mut raw = format!("{method} ").into_bytes();
    raw.extend_from_slice(target);
    raw.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    raw.extend_from_slice(host);
    raw.extend_from_slice(b"\r\n");
    if canary {
        raw.extend_from_slice(b"x-env: canary\r\n");
    }
    raw.extend_from_slice(b"\r\n");
    let mut head = RequestHead::default();
    let Ok(true) = parse_request(&raw, &super::request_head::LIMITS, &mut head) else { return };
    if head.head_len != raw.len() {
        return; // the fuzzed bytes held a head of their own
    }

    let target = head.target.of(&raw);
    let mut path = Vec::new();
    let Ok(query) = normalise(origin_form(target), &rules, &mut path) else { return };
    if let Some(q) = query {
        assert!(!q.contains(&b'#'), "a fragment in the query of {:?}", show(target));
    }
    check_shape(&path, target, &rules);
    let mut again = Vec::new();
    assert_eq!(normalise(&path, &rules, &mut again), Ok(None), "normalising {:?} again", show(&path));
    assert_eq!(show(&again), show(&path), "not idempotent for {:?} under {rules:?}", show(target));
    let Ok(matched) = match_form(&path, &rules) else { return };
    if let Some(m) = &matched {
        assert!(!m.contains(&b';'), "a parameter left in the match form {:?}", show(m));
        check_shape(m, target, &rules);
        assert_eq!(match_form(m, &rules), Ok(None), "match form of {:?} again", show(m));
    }

    let route_path = matched.as_deref().unwrap_or(&path);
    let input = MatchInput::new(&head, &raw, route_path);
    let config = config();
    let got = select(config, 0, &input).map(|i| config.routes[i].name.as_str());
    let want = reference_select(head.host.map(|h| h.of(&raw)).unwrap_or(b""), route_path, method, canary);
    assert_eq!(got, want, "route for {method} {:?} host {:?} (path {:?})", show(target), show(host), show(route_path));
}

fn check_shape(path: &[u8], target: &[u8], rules: &PathRules) {
    let text = show(path);
    assert!(text.starts_with('/'), "{:?} -> {text:?} under {rules:?}", show(target));
    let inner = &text[1..];
    let segments: Vec<&str> = inner.split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        // An empty segment only as the last one (a trailing slash) or the root.
        let last = i + 1 == segments.len();
        assert!(!s.is_empty() || last, "empty segment: {:?} -> {text:?} under {rules:?}", show(target));
        assert!(*s != "." && *s != "..", "dot segment: {:?} -> {text:?} under {rules:?}", show(target));
    }
}

fn reference_select(host_field: &[u8], path: &[u8], method: &str, canary: bool) -> Option<&'static str> {
    let host = String::from_utf8_lossy(host_without_port(host_field)).to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let path = String::from_utf8_lossy(path).into_owned();
    let lower_path = path.to_ascii_lowercase();
    REFERENCE_ROUTES.iter().find_map(|&(name, want_host, want_path, prefix, ci, methods, needs_canary)| {
        let host_ok = match want_host {
            None => true,
            Some(w) => match w.strip_prefix('*') {
                Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
                None => host == w,
            },
        };
        let p = if ci { &lower_path } else { &path };
        let path_ok = match want_path {
            None => true,
            Some(w) if prefix => p.starts_with(w),
            Some(w) => p == w,
        };
        let method_ok = methods.is_empty() || methods.contains(&method);
        (host_ok && path_ok && method_ok && (canary || !needs_canary)).then_some(name)
    })
}
