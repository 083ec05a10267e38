//! The config a test's proxy runs from, built in code and written out as
//! the TOML an operator would write.
//!
//! ```ignore
//! let proxy = ProxyConfig::new()
//!     .limits(r#"header_timeout = "1s""#)
//!     .cluster("api", &[api.addr()])
//!     .route(Route::new("api").path_prefix("/api/").cluster("api"))
//!     .start();
//! ```
//! Defaults keep tests small and fast: one shard, an admin listener, one
//! listener named `main`, a 5 s drain timeout.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::proxy::Proxy;

/// One `[[routes]]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    name: String,
    listeners: Vec<String>,
    max_request_body_bytes: Option<u64>,
    host: Option<String>,
    path: Option<String>,
    path_prefix: Option<String>,
    path_case_insensitive: bool,
    methods: Vec<String>,
    headers: Vec<(String, String)>,
    action: Option<String>,
}

impl Route {
    pub fn new(name: &str) -> Route {
        Route {
            name: name.to_string(),
            listeners: Vec::new(),
            max_request_body_bytes: None,
            host: None,
            path: None,
            path_prefix: None,
            path_case_insensitive: false,
            methods: Vec::new(),
            headers: Vec::new(),
            action: None,
        }
    }

    /// Only on these listeners.
    pub fn listeners(mut self, names: &[&str]) -> Route {
        self.listeners = names.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn max_request_body_bytes(mut self, bytes: u64) -> Route {
        self.max_request_body_bytes = Some(bytes);
        self
    }

    /// `api.example.com` or `*.example.com`.
    pub fn host(mut self, host: &str) -> Route {
        self.host = Some(host.to_string());
        self
    }

    pub fn path(mut self, path: &str) -> Route {
        self.path = Some(path.to_string());
        self
    }

    pub fn path_prefix(mut self, prefix: &str) -> Route {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    /// `path_case_insensitive = true`: `path` / `path_prefix` ignore ASCII case.
    pub fn path_case_insensitive(mut self) -> Route {
        self.path_case_insensitive = true;
        self
    }

    pub fn methods(mut self, methods: &[&str]) -> Route {
        self.methods = methods.iter().map(|m| m.to_string()).collect();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Route {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Action: proxy to cluster `name`.
    pub fn cluster(mut self, name: &str) -> Route {
        self.action = Some(format!("cluster = {}", toml_str(name)));
        self
    }

    /// Action: answer directly with `status` and `body`.
    pub fn direct(self, status: u16, body: &str) -> Route {
        self.direct_with_headers(status, body, &[])
    }

    pub fn direct_with_headers(mut self, status: u16, body: &str, headers: &[(&str, &str)]) -> Route {
        let mut direct = format!("direct = {{ status = {status}, body = {}", toml_str(body));
        if !headers.is_empty() {
            direct.push_str(", headers = ");
            direct.push_str(&inline_table(headers));
        }
        direct.push_str(" }");
        self.action = Some(direct);
        self
    }

    /// Action: redirect to `https://{host}{:port}{path}{?query}`
    /// (`[routes.https_redirect]`; `None` = the proxy's default).
    pub fn https_redirect(mut self, status: Option<u16>, port: Option<u16>) -> Route {
        let mut fields = Vec::new();
        if let Some(status) = status {
            fields.push(format!("status = {status}"));
        }
        if let Some(port) = port {
            fields.push(format!("port = {port}"));
        }
        self.action = Some(if fields.is_empty() {
            "https_redirect = {}".to_string()
        } else {
            format!("https_redirect = {{ {} }}", fields.join(", "))
        });
        self
    }

    /// Action: redirect to `location` with `status`.
    pub fn redirect(mut self, location: &str, status: u16, keep_path: bool) -> Route {
        self.action = Some(format!(
            "redirect = {{ location = {}, status = {status}, keep_path = {keep_path} }}",
            toml_str(location)
        ));
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str("\n[[routes]]\n");
        let _ = writeln!(out, "name = {}", toml_str(&self.name));
        if !self.listeners.is_empty() {
            let _ = writeln!(out, "listeners = {}", toml_array(&self.listeners));
        }
        if let Some(bytes) = self.max_request_body_bytes {
            let _ = writeln!(out, "max_request_body_bytes = {bytes}");
        }
        if let Some(action) = &self.action {
            let _ = writeln!(out, "{action}");
        }
        let mut matcher = Vec::new();
        if let Some(host) = &self.host {
            matcher.push(format!("host = {}", toml_str(host)));
        }
        if let Some(path) = &self.path {
            matcher.push(format!("path = {}", toml_str(path)));
        }
        if let Some(prefix) = &self.path_prefix {
            matcher.push(format!("path_prefix = {}", toml_str(prefix)));
        }
        if self.path_case_insensitive {
            matcher.push("path_case_insensitive = true".to_string());
        }
        if !self.methods.is_empty() {
            matcher.push(format!("methods = {}", toml_array(&self.methods)));
        }
        if !self.headers.is_empty() {
            let pairs: Vec<(&str, &str)> = self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            matcher.push(format!("headers = {}", inline_table(&pairs)));
        }
        if !matcher.is_empty() {
            out.push_str("[routes.match]\n");
            for line in matcher {
                let _ = writeln!(out, "{line}");
            }
        }
    }
}

/// The whole config file.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    shards: usize,
    drain_timeout: String,
    admin: bool,
    /// Lines under `[admin]` besides `listen`.
    admin_lines: Vec<String>,
    limits: Vec<String>,
    /// (name, `[listeners.limits]` lines, `[listeners.tls]` lines)
    listeners: Vec<(String, Vec<String>, Vec<String>)>,
    /// (listener name, a line among the listener's own keys)
    listener_lines: Vec<(String, String)>,
    /// (listener name, `[listeners.paths]` lines)
    listener_paths: Vec<(String, String)>,
    routes: Vec<Route>,
    clusters: Vec<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig::new()
    }
}

impl ProxyConfig {
    pub fn new() -> ProxyConfig {
        ProxyConfig {
            shards: 1,
            drain_timeout: "5s".into(),
            admin: true,
            admin_lines: Vec::new(),
            limits: Vec::new(),
            listeners: vec![("main".into(), Vec::new(), Vec::new())],
            listener_lines: Vec::new(),
            listener_paths: Vec::new(),
            routes: Vec::new(),
            clusters: Vec::new(),
        }
    }

    pub fn shards(mut self, shards: usize) -> ProxyConfig {
        self.shards = shards;
        self
    }

    /// e.g. `"1s"`.
    pub fn drain_timeout(mut self, timeout: &str) -> ProxyConfig {
        self.drain_timeout = timeout.to_string();
        self
    }

    /// A line under `[admin]`, e.g. `token = "env:ADMIN_TOKEN"`.
    pub fn admin_option(mut self, line: &str) -> ProxyConfig {
        self.admin_lines.push(line.to_string());
        self
    }

    /// TOML lines for `[limits]`, e.g. `r#"header_timeout = "1s""#`.
    pub fn limits(mut self, lines: &str) -> ProxyConfig {
        self.limits.push(lines.to_string());
        self
    }

    /// Another listener on 127.0.0.1:0, with optional `[listeners.limits]` lines.
    pub fn listener(mut self, name: &str, limits: &str) -> ProxyConfig {
        let limits = if limits.is_empty() { Vec::new() } else { vec![limits.to_string()] };
        self.listeners.push((name.to_string(), limits, Vec::new()));
        self
    }

    /// Makes listener `name` (already added; `main` always is) an HTTPS
    /// listener: `lines` go under its `[listeners.tls]`, e.g.
    /// `certificates = [{ cert = "/tmp/a.pem", key = "/tmp/a.key" }]`.
    pub fn tls(mut self, name: &str, lines: &str) -> ProxyConfig {
        let listener = self
            .listeners
            .iter_mut()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no listener {name:?} to make HTTPS"));
        listener.2.push(lines.to_string());
        self
    }

    /// A line among listener `name`'s own keys (already added; `main`
    /// always is), e.g. `trusted_proxies = ["127.0.0.1/32"]`.
    pub fn listener_option(mut self, name: &str, line: &str) -> ProxyConfig {
        assert!(self.listeners.iter().any(|(n, _, _)| n == name), "no listener {name:?}");
        self.listener_lines.push((name.to_string(), line.to_string()));
        self
    }

    /// TOML lines for listener `name`'s `[listeners.paths]`, e.g.
    /// `r#"escaped_slashes = "keep""#`.
    pub fn paths(mut self, name: &str, lines: &str) -> ProxyConfig {
        self.listener_paths.push((name.to_string(), lines.to_string()));
        self
    }

    /// A cluster with default timeouts.
    pub fn cluster(self, name: &str, endpoints: &[SocketAddr]) -> ProxyConfig {
        self.cluster_with(name, endpoints, "")
    }

    /// A cluster plus extra TOML lines, e.g. `r#"response_timeout = "1s""#`.
    pub fn cluster_with(mut self, name: &str, endpoints: &[SocketAddr], extra: &str) -> ProxyConfig {
        let endpoints: Vec<String> = endpoints.iter().map(|a| a.to_string()).collect();
        let mut cluster =
            format!("\n[[clusters]]\nname = {}\nendpoints = {}\n", toml_str(name), toml_array(&endpoints));
        if !extra.is_empty() {
            cluster.push_str(extra);
            cluster.push('\n');
        }
        self.clusters.push(cluster);
        self
    }

    pub fn route(mut self, route: Route) -> ProxyConfig {
        self.routes.push(route);
        self
    }

    /// Shorthand: one cluster `name` with one endpoint, and a catch-all
    /// route (`path_prefix = "/"`) to it.
    pub fn everything_to(self, endpoint: SocketAddr) -> ProxyConfig {
        self.cluster("backend", &[endpoint]).route(Route::new("all").path_prefix("/").cluster("backend"))
    }

    /// Listener names the proxy will report, admin included.
    pub fn listener_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.listeners.iter().map(|(n, _, _)| n.clone()).collect();
        if self.admin {
            names.push("admin".into());
        }
        names
    }

    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "[server]\nshards = {}", self.shards);
        let _ = writeln!(out, "drain_timeout = {}", toml_str(&self.drain_timeout));
        if self.admin {
            out.push_str("\n[admin]\nlisten = \"127.0.0.1:0\"\n");
            for line in &self.admin_lines {
                let _ = writeln!(out, "{line}");
            }
        }
        if !self.limits.is_empty() {
            out.push_str("\n[limits]\n");
            for line in &self.limits {
                let _ = writeln!(out, "{line}");
            }
        }
        for (name, limits, tls) in &self.listeners {
            let _ = writeln!(out, "\n[[listeners]]\nname = {}\nlisten = \"127.0.0.1:0\"", toml_str(name));
            for (_, line) in self.listener_lines.iter().filter(|(n, _)| n == name) {
                let _ = writeln!(out, "{line}");
            }
            if !limits.is_empty() {
                out.push_str("[listeners.limits]\n");
                for line in limits {
                    let _ = writeln!(out, "{line}");
                }
            }
            if !tls.is_empty() {
                out.push_str("[listeners.tls]\n");
                for line in tls {
                    let _ = writeln!(out, "{line}");
                }
            }
            let paths: Vec<&String> = self.listener_paths.iter().filter(|(n, _)| n == name).map(|(_, l)| l).collect();
            if !paths.is_empty() {
                out.push_str("[listeners.paths]\n");
                for line in paths {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
        for route in &self.routes {
            route.render(&mut out);
        }
        for cluster in &self.clusters {
            out.push_str(cluster);
        }
        out
    }

    /// Writes the config and starts `shardgate run` on it.
    pub fn start(&self) -> Proxy {
        Proxy::run(self, &[])
    }

    /// Same, with extra command-line arguments after `run -c FILE`.
    pub fn start_with_args(&self, args: &[&str]) -> Proxy {
        Proxy::run(self, args)
    }
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| toml_str(i)).collect();
    format!("[{}]", items.join(", "))
}

fn inline_table(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{} = {}", toml_str(k), toml_str(v))).collect();
    format!("{{ {} }}", pairs.join(", "))
}
