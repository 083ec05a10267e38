//! `GET /routes`: every route of the running generation, in match order of
//! the config file, with its stable name (the `name` written in the file,
//! or `route-` + a hash of its match and action: see
//! `config/validate/route_name.rs`), the listeners that serve it, its
//! match rules, its action and its cluster.
//!
//! ```text
//! {"generation":1,"routes":[{"name":"api","listeners":["main"],
//!   "match":{"host":"api.example.com","path":{"prefix":"/v1/"},
//!            "path_case_insensitive":false,"methods":["GET"],
//!            "headers":[{"name":"x-tenant","value":"a"}]},
//!   "action":{"type":"proxy"},"cluster":"api"},…]}
//! ```
//! A suffix host (`*.example.com`) is shown as written; a condition that
//! is absent is `null` (host, path) or empty (methods, headers).

use std::fmt::Write;

use super::json::{key, string, string_or_null, strings};
use crate::config::{HostMatch, PathMatch, Route, RouteAction};
use crate::shard::generation::Generation;

/// The `/routes` document of `generation`.
pub fn routes_json(generation: &Generation) -> String {
    let config = &generation.config;
    let mut out = String::with_capacity(256 + 256 * config.routes.len());
    let _ = write!(out, "{{\"generation\":{},\"routes\":[", generation.number);
    for (i, route) in config.routes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let listeners = config.listeners.iter().filter(|l| l.routes.contains(&i)).map(|l| l.name.as_str());
        let cluster = match route.action {
            RouteAction::Proxy { cluster } => config.clusters.get(cluster).map(|c| c.name.as_str()),
            _ => None,
        };
        out.push('{');
        key(&mut out, "name");
        string(&mut out, &route.name);
        out.push(',');
        key(&mut out, "listeners");
        strings(&mut out, listeners);
        out.push(',');
        key(&mut out, "match");
        match_json(&mut out, route);
        out.push(',');
        key(&mut out, "action");
        action_json(&mut out, &route.action);
        out.push(',');
        key(&mut out, "cluster");
        string_or_null(&mut out, cluster);
        out.push('}');
    }
    out.push_str("]}\n");
    out
}

fn match_json(out: &mut String, route: &Route) {
    let m = &route.matcher;
    out.push('{');
    key(out, "host");
    match &m.host {
        Some(HostMatch::Exact(host)) => string(out, host),
        Some(HostMatch::Suffix(suffix)) => string(out, &format!("*{suffix}")),
        None => out.push_str("null"),
    }
    out.push(',');
    key(out, "path");
    match &m.path {
        Some(PathMatch::Exact(path)) => {
            out.push('{');
            key(out, "exact");
            string(out, path);
            out.push('}');
        }
        Some(PathMatch::Prefix(prefix)) => {
            out.push('{');
            key(out, "prefix");
            string(out, prefix);
            out.push('}');
        }
        None => out.push_str("null"),
    }
    let _ = write!(out, ",\"path_case_insensitive\":{},", m.path_case_insensitive);
    key(out, "methods");
    strings(out, m.methods.iter().map(String::as_str));
    out.push(',');
    key(out, "headers");
    out.push('[');
    for (i, (name, value)) in m.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        key(out, "name");
        string(out, name);
        out.push(',');
        key(out, "value");
        string(out, value);
        out.push('}');
    }
    out.push_str("]}");
}

fn action_json(out: &mut String, action: &RouteAction) {
    match action {
        RouteAction::Proxy { .. } => out.push_str("{\"type\":\"proxy\"}"),
        RouteAction::Direct { status, .. } => {
            let _ = write!(out, "{{\"type\":\"direct\",\"status\":{status}}}");
        }
        RouteAction::Redirect { status, location, keep_path } => {
            let _ = write!(out, "{{\"type\":\"redirect\",\"status\":{status},");
            key(out, "location");
            string(out, location);
            let _ = write!(out, ",\"keep_path\":{keep_path}}}");
        }
        RouteAction::HttpsRedirect { status, port } => {
            let port = port.map_or("null".to_string(), |p| p.to_string());
            let _ = write!(out, "{{\"type\":\"https_redirect\",\"status\":{status},\"port\":{port}}}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::shard::identity::Identities;

    pub(crate) fn generation(toml: &str) -> Generation {
        let config = Config::parse(toml, "t.toml").expect("test config");
        Generation::build(1, Arc::new(config), &mut Identities::default(), None).expect("generation").0
    }

    const CONFIG: &str = r#"
[[listeners]]
name = "main"
listen = "127.0.0.1:0"
[[listeners]]
name = "side"
listen = "127.0.0.1:0"

[[clusters]]
name = "api"
endpoints = ["127.0.0.1:1"]

[[routes]]
name = "api"
cluster = "api"
listeners = ["main"]
[routes.match]
host = "*.example.com"
path_prefix = "/v1/"
methods = ["GET", "POST"]
headers = { "X-Tenant" = "a\"b" }

[[routes]]
name = "teapot"
direct = { status = 418 }

[[routes]]
redirect = { location = "https://example.com", status = 301 }
[routes.match]
path = "/old"
"#;

    #[test]
    fn routes_show_names_listeners_matches_actions_and_clusters() {
        let g = generation(CONFIG);
        let doc = routes_json(&g);
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert_eq!(v["generation"], 1);
        let routes = v["routes"].as_array().unwrap();
        assert_eq!(routes.len(), 3, "{doc}");
        let api = &routes[0];
        assert_eq!(api["name"], "api");
        assert_eq!(api["listeners"], serde_json::json!(["main"]), "{doc}");
        assert_eq!(api["match"]["host"], "*.example.com");
        assert_eq!(api["match"]["path"]["prefix"], "/v1/");
        assert_eq!(api["match"]["methods"], serde_json::json!(["GET", "POST"]));
        assert_eq!(api["match"]["headers"][0]["name"], "x-tenant");
        assert_eq!(api["match"]["headers"][0]["value"], "a\"b");
        assert_eq!(api["action"]["type"], "proxy");
        assert_eq!(api["cluster"], "api");
        let teapot = &routes[1];
        assert_eq!(teapot["listeners"], serde_json::json!(["main", "side"]), "{doc}");
        assert_eq!(teapot["action"], serde_json::json!({"type": "direct", "status": 418}));
        assert!(teapot["cluster"].is_null());
        assert!(teapot["match"]["host"].is_null() && teapot["match"]["path"].is_null());
        let old = &routes[2];
        assert_eq!(old["name"], g.config.routes[2].name.as_str(), "the derived name");
        assert!(old["name"].as_str().unwrap().starts_with("route-"));
        assert_eq!(old["match"]["path"]["exact"], "/old");
        assert_eq!(old["action"]["location"], "https://example.com");
        assert_eq!(old["action"]["status"], 301);
    }
}
