//! Validation of a route: its match (host, path, methods, headers) and
//! its action (proxy to a cluster, a direct answer, a redirect). Part of
//! `validate.rs` (the `Check` pass), kept apart so that file stays one
//! concern per screen.

use std::collections::HashMap;

use bytes::Bytes;

use super::super::file::{DirectFile, MatchFile, RedirectFile, RouteFile};
use super::super::spans::FieldPath;
use super::super::values::{
    check_header_value, check_location, check_route_path, parse_header_name, parse_host_pattern, parse_method,
};
use super::super::{PathMatch, Route, RouteAction, RouteMatch};
use super::route_name::content_name;
use super::Check;

impl Check<'_> {
    pub(super) fn route(
        &mut self,
        i: usize,
        r: &RouteFile,
        clusters: &HashMap<String, usize>,
        names: &mut HashMap<String, usize>,
    ) -> Route {
        let path = &FieldPath::root("routes").index(i);
        let errors_before = self.errors.len();
        if let Some(name) = &r.name {
            self.name("routes", i, name, names);
        }
        let matcher = match &r.matcher {
            Some(m) => self.matcher(&path.key("match"), m),
            None => RouteMatch::default(),
        };
        let max_request_body_bytes = r
            .max_request_body_bytes
            .as_ref()
            .and_then(|v| self.size(&path.key("max_request_body_bytes"), v, 0, u64::MAX));

        let set: Vec<&str> = [
            ("cluster", r.cluster.is_some()),
            ("direct", r.direct.is_some()),
            ("redirect", r.redirect.is_some()),
            ("https_redirect", r.https_redirect.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        const ONE_OF: &str = "set exactly one of cluster, direct, redirect or https_redirect";
        match set.len() {
            0 => self.error(path, format!("no action: {ONE_OF}")),
            1 => {}
            _ => self.error(path, format!("several actions ({}): {ONE_OF}", set.join(", "))),
        }
        // Each present action is checked even when there are several, so
        // their own errors show up in the same run.
        let mut action = None;
        if let Some(name) = &r.cluster {
            match clusters.get(name.as_str()) {
                Some(&cluster) => action = Some(RouteAction::Proxy { cluster }),
                None => self.error(&path.key("cluster"), format!("no cluster named {name:?}")),
            }
        }
        if let Some(d) = &r.direct {
            let a = self.direct(&path.key("direct"), d);
            action = action.or(a);
        }
        if let Some(d) = &r.redirect {
            let a = self.redirect(&path.key("redirect"), d);
            action = action.or(a);
        }
        if let Some(h) = &r.https_redirect {
            let a = self.https_redirect(&path.key("https_redirect"), h);
            action = action.or(a);
        }
        let action = action.unwrap_or(RouteAction::Proxy { cluster: 0 });
        let policies = self.route_policies(path, r.error_format.as_deref(), r.ip_rules.as_ref(), r.auth.as_ref());
        let name = match &r.name {
            Some(name) => name.clone(),
            None => {
                let name = content_name(&matcher, &action, r.cluster.as_deref());
                // A route with errors of its own stands on defaults: its
                // name would say nothing, and its errors are the news.
                if self.errors.len() > errors_before {
                    return Route { name, matcher, action, max_request_body_bytes, policies };
                }
                if let Some(&first) = names.get(&name) {
                    let msg = format!(
                        "same match and action as routes[{first}]: name one of them (a route without a name is \
                         named after its match and action, {name})"
                    );
                    self.error(path, msg);
                } else {
                    names.insert(name.clone(), i);
                }
                name
            }
        };
        Route { name, matcher, action, max_request_body_bytes, policies }
    }

    pub(super) fn matcher(&mut self, path: &FieldPath, m: &MatchFile) -> RouteMatch {
        let host = m.host.as_deref().and_then(|h| self.ok(&path.key("host"), parse_host_pattern(h)));
        let exact = m
            .path
            .as_deref()
            .and_then(|p| self.ok(&path.key("path"), check_route_path(p)))
            .map(|p| PathMatch::Exact(p.to_owned()));
        let prefix = m
            .path_prefix
            .as_deref()
            .and_then(|p| self.ok(&path.key("path_prefix"), check_route_path(p)))
            .map(|p| PathMatch::Prefix(p.to_owned()));
        if m.path.is_some() && m.path_prefix.is_some() {
            self.error(path, "both path and path_prefix are set: use one");
        }
        let path_case_insensitive = m.path_case_insensitive.unwrap_or(false);
        if path_case_insensitive && m.path.is_none() && m.path_prefix.is_none() {
            self.error(&path.key("path_case_insensitive"), "applies to path or path_prefix: set one of them");
        }
        let mut methods = Vec::new();
        if let Some(list) = &m.methods {
            let mpath = path.key("methods");
            if list.is_empty() {
                self.error(&mpath, "empty list matches no request: omit methods to match any method");
            }
            for (i, text) in list.iter().enumerate() {
                let Some(method) = self.ok(&mpath.index(i), parse_method(text)) else {
                    continue;
                };
                if methods.contains(&method) {
                    self.error(&mpath.index(i), format!("method {method} is listed twice"));
                } else {
                    methods.push(method);
                }
            }
        }
        let headers = match &m.headers {
            Some(h) => self.header_map(&path.key("headers"), h, false),
            None => Vec::new(),
        };
        RouteMatch { host, path: exact.or(prefix), path_case_insensitive, methods, headers }
    }

    /// Header names are lowercased; two names equal but for case are an
    /// error. `response` also refuses the framing headers the proxy writes.
    pub(super) fn header_map(
        &mut self,
        path: &FieldPath,
        map: &std::collections::BTreeMap<String, String>,
        response: bool,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(map.len());
        for (name, value) in map {
            let hpath = path.key(name);
            let Some(lower) = self.ok(&hpath, parse_header_name(name)) else {
                continue;
            };
            if response && matches!(lower.as_str(), "content-length" | "transfer-encoding") {
                self.error(&hpath, format!("{lower} is set by shardgate from the body"));
                continue;
            }
            if out.iter().any(|(n, _)| *n == lower) {
                self.error(&hpath, format!("header {lower} is set twice (names ignore case)"));
                continue;
            }
            if self.ok(&hpath, check_header_value(value)).is_some() {
                out.push((lower, value.clone()));
            }
        }
        out
    }

    pub(super) fn direct(&mut self, path: &FieldPath, d: &DirectFile) -> Option<RouteAction> {
        let spath = path.key("status");
        let status = match d.status {
            None => Some(200),
            Some(s @ 100..=199) => {
                self.error(&spath, format!("{s}: a 1xx status cannot be a direct response"));
                None
            }
            Some(s @ 200..=599) => Some(s as u16),
            Some(s) => {
                self.error(&spath, format!("{s} is not an HTTP status code (200-599)"));
                None
            }
        };
        let body = d.body.clone().unwrap_or_default();
        if let Some(s @ (204 | 304)) = status {
            if !body.is_empty() {
                self.error(&path.key("body"), format!("a {s} response has no body"));
            }
        }
        let headers = match &d.headers {
            Some(h) => self.header_map(&path.key("headers"), h, true),
            None => Vec::new(),
        };
        Some(RouteAction::Direct { status: status?, headers, body: Bytes::from(body) })
    }

    pub(super) fn redirect(&mut self, path: &FieldPath, r: &RedirectFile) -> Option<RouteAction> {
        let status = match r.status {
            None => Some(301),
            Some(s @ (301 | 302 | 303 | 307 | 308)) => Some(s as u16),
            Some(s) => {
                let msg = format!("{s} is not a redirect status: use 301, 302, 303, 307 or 308");
                self.error(&path.key("status"), msg);
                None
            }
        };
        let keep_path = r.keep_path.unwrap_or(false);
        let location = check_location(&r.location, keep_path);
        self.ok(&path.key("location"), location)?;
        Some(RouteAction::Redirect { status: status?, location: r.location.clone(), keep_path })
    }
}
