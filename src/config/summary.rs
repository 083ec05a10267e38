//! What `shardgate check` prints after `file -> validate -> Config`
//! succeeds: the typed [`Config`] written back in config file syntax.

use super::units::{fmt_duration, fmt_size};
use super::{
    defaults, ClusterTls, Config, ForwardedHeaders, HostMatch, IoDriver, Limits, ListenerTls, PathMatch, Route,
    RouteAction, TlsVersion,
};

impl Config {
    /// What `shardgate check` prints after a successful load (like
    /// `nginx -t`): the server settings, each listener with its limits that
    /// differ from the defaults and its routes in match order, then the
    /// clusters. Values are written in config file syntax.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let s = &self.server;
        let shards = s.shards.map_or("auto (one per CPU)".to_owned(), |n| n.to_string());
        let cpus = s.cpus.as_deref().map_or("all".to_owned(), fmt_cpus);
        let driver = match s.io_driver {
            IoDriver::Auto => "auto",
            IoDriver::Uring => "uring",
            IoDriver::Epoll => "epoll",
        };
        let _ = writeln!(
            out,
            "server: shards={shards} cpus={cpus} pin={} io_driver={driver} ring_entries={} drain_timeout={}",
            s.pin,
            s.ring_entries,
            fmt_duration(s.drain_timeout)
        );
        if let Some(admin) = &self.admin {
            // A token shows where it is read from (`<secret from env:T>`), never its value.
            let token = admin.token.as_ref().map(|t| format!(" token={t}")).unwrap_or_default();
            let _ = writeln!(out, "admin: {}{token}", admin.listen);
        }
        let _ = writeln!(out, "{}", self.metrics.summary());
        for l in &self.listeners {
            let scheme = if l.tls.is_some() { " https" } else { "" };
            let deferred = if l.defer_accept { " defer_accept" } else { "" };
            let sndbuf = l.send_buffer_bytes.map(|n| format!(" send_buffer_bytes={n}")).unwrap_or_default();
            let _ = writeln!(out, "listener {:?} {}{scheme}{deferred}{sndbuf}", l.name, l.addr);
            if let Some(tls) = &l.tls {
                out += &fmt_listener_tls(tls);
            }
            // Shown when not the default (nothing trusted, replace).
            if !l.trusted_proxies.is_empty() || l.forwarded_headers != ForwardedHeaders::Replace {
                let trusted: Vec<String> = l.trusted_proxies.iter().map(|c| c.to_string()).collect();
                let trusted = if trusted.is_empty() { "none".to_owned() } else { trusted.join(",") };
                let mode = match l.forwarded_headers {
                    ForwardedHeaders::Replace => "replace",
                    ForwardedHeaders::Append => "append",
                };
                let _ = writeln!(out, "  trusted_proxies={trusted} forwarded_headers={mode}");
            }
            let limits = fmt_limits(&l.limits);
            if !limits.is_empty() {
                let _ = writeln!(out, "  limits: {limits}");
            }
            let paths = l.paths.non_defaults();
            if !paths.is_empty() {
                let _ = writeln!(out, "  paths: {}", paths.join(" "));
            }
            if let Some(rules) = &l.ip_rules {
                let policies = super::RoutePolicies { ip_rules: Some(rules.clone()), ..Default::default() };
                let _ = writeln!(out, "  {}", policies.summary().join(" "));
            }
            if l.routes.is_empty() {
                let _ = writeln!(out, "  (no routes: every request gets 404)");
            }
            for &i in &l.routes {
                if let Some(r) = self.routes.get(i) {
                    let _ = writeln!(out, "  route {:?}{}", r.name, self.fmt_route(r));
                    let policies = r.policies.summary();
                    if !policies.is_empty() {
                        let _ = writeln!(out, "    {}", policies.join(" "));
                    }
                }
            }
        }
        for c in &self.clusters {
            let endpoints: Vec<String> = c.endpoints.iter().map(|e| e.to_string()).collect();
            let _ = write!(out, "cluster {:?} endpoints={}", c.name, endpoints.join(","));
            let durations = [
                ("connect_timeout", c.connect_timeout, defaults::CONNECT_TIMEOUT),
                ("response_timeout", c.response_timeout, defaults::RESPONSE_TIMEOUT),
                ("idle_timeout", c.idle_timeout, defaults::POOL_IDLE_TIMEOUT),
            ];
            for (key, v, default) in durations {
                if v != default {
                    let _ = write!(out, " {key}={}", fmt_duration(v));
                }
            }
            if c.max_idle_per_endpoint != defaults::MAX_IDLE_PER_ENDPOINT {
                let _ = write!(out, " max_idle_per_endpoint={}", c.max_idle_per_endpoint);
            }
            out += &c.balance_summary();
            if c.healthy_panic_threshold != crate::config::outlier::DEFAULT_HEALTHY_PANIC_THRESHOLD {
                let _ = write!(out, " healthy_panic_threshold={}", c.healthy_panic_threshold);
            }
            if let Some(tls) = &c.tls {
                out += &fmt_cluster_tls(tls);
            }
            out.push('\n');
            if let Some(h) = &c.health_check {
                let _ = writeln!(out, "  {}", h.summary());
            }
            if let Some(o) = &c.outlier {
                let _ = writeln!(out, "  {}", o.summary());
            }
        }
        for c in &self.consumers.list {
            // Key digests are not shown: only how many there are.
            let plan = c.plan.as_ref().map(|p| format!(" plan={p:?}")).unwrap_or_default();
            let tags = if c.tags.is_empty() { String::new() } else { format!(" tags={}", c.tags.join(",")) };
            let _ = writeln!(out, "consumer {:?}{plan}{tags} api_keys={}", c.name, c.keys);
        }
        if self.tracing.enabled {
            let _ = writeln!(out, "{}", self.tracing.summary());
        }
        if let Some(a) = &self.access_log {
            let _ = writeln!(out, "{}", a.summary());
        }
        out
    }

    /// ` host=.. path_prefix=.. -> action` for one route in [`Config::summary`].
    fn fmt_route(&self, r: &Route) -> String {
        let mut out = String::new();
        let m = &r.matcher;
        match &m.host {
            Some(HostMatch::Exact(h)) => out += &format!(" host={h}"),
            Some(HostMatch::Suffix(s)) => out += &format!(" host=*{s}"),
            None => {}
        }
        match &m.path {
            Some(PathMatch::Exact(p)) => out += &format!(" path={p}"),
            Some(PathMatch::Prefix(p)) => out += &format!(" path_prefix={p}"),
            None => {}
        }
        if m.path_case_insensitive {
            out += " path_case_insensitive";
        }
        if !m.methods.is_empty() {
            out += &format!(" methods={}", m.methods.join(","));
        }
        for (name, value) in &m.headers {
            out += &format!(" header {name}={value:?}");
        }
        if m.host.is_none() && m.path.is_none() && m.methods.is_empty() && m.headers.is_empty() {
            out += " (any request)";
        }
        if let Some(n) = r.max_request_body_bytes {
            out += &format!(" max_request_body_bytes={}", fmt_size(n));
        }
        match &r.action {
            RouteAction::Proxy { cluster } => {
                let name = self.clusters.get(*cluster).map_or("?", |c| c.name.as_str());
                out += &format!(" -> cluster {name:?}");
            }
            RouteAction::Direct { status, headers, body } => {
                out += &format!(" -> direct {status} ({} body bytes", body.len());
                for (name, value) in headers {
                    out += &format!(", {name}: {value}");
                }
                out += ")";
            }
            RouteAction::Redirect { status, location, keep_path } => {
                let keep = if *keep_path { " + request path" } else { "" };
                out += &format!(" -> redirect {status} {location}{keep}");
            }
            RouteAction::HttpsRedirect { status, port } => {
                out += &format!(" -> https_redirect {status}");
                if let Some(port) = port {
                    out += &format!(" port={port}");
                }
            }
        }
        out
    }
}

/// `  tls: …` and one `  certificate …` line per certificate.
fn fmt_listener_tls(t: &ListenerTls) -> String {
    let version = match t.min_version {
        TlsVersion::Tls12 => "1.2",
        TlsVersion::Tls13 => "1.3",
    };
    let mut out = format!("  tls: min_version={version}");
    if t.strict_sni {
        out += " strict_sni";
    }
    if t.ticket_lifetime != defaults::TICKET_LIFETIME {
        out += &format!(" ticket_lifetime={}", fmt_duration(t.ticket_lifetime));
    }
    if let Some(ca) = &t.client_ca {
        out += &format!(" client_ca={}", ca.display());
    }
    if let Some(h) = &t.client_cert_header {
        out += &format!(" client_cert_header={h}");
    }
    if let Some(h) = &t.hsts {
        out += &format!(" hsts={h:?}");
    }
    out.push('\n');
    for (i, c) in t.certificates.iter().enumerate() {
        let names =
            if c.server_names.is_empty() { "(from the certificate)".to_owned() } else { c.server_names.join(",") };
        let default = if i == 0 && !t.strict_sni { " (default)" } else { "" };
        out += &format!("  certificate {} key={} server_names={names}{default}\n", c.cert.display(), c.key.display());
    }
    out
}

/// ` tls(server_name=… ca=… …)` after a cluster's endpoints.
fn fmt_cluster_tls(t: &ClusterTls) -> String {
    let mut parts = Vec::new();
    if let Some(name) = &t.server_name {
        parts.push(format!("server_name={name}"));
    }
    if !t.verify {
        parts.push("verify=false (INSECURE: any certificate accepted)".to_owned());
    } else {
        match &t.ca {
            Some(ca) => parts.push(format!("ca={}", ca.display())),
            None => parts.push("ca=(system roots)".to_owned()),
        }
    }
    if let Some(c) = &t.client_cert {
        parts.push(format!("client_cert={}", c.cert.display()));
    }
    format!(" tls({})", parts.join(" "))
}

/// `key=value` for each limit that differs from [`Limits::default`].
fn fmt_limits(l: &Limits) -> String {
    let d = Limits::default();
    let mut parts = Vec::new();
    let sizes = [
        ("max_request_head_bytes", l.max_request_head_bytes as u64, d.max_request_head_bytes as u64),
        ("max_uri_bytes", l.max_uri_bytes as u64, d.max_uri_bytes as u64),
        ("max_request_body_bytes", l.max_request_body_bytes, d.max_request_body_bytes),
    ];
    for (key, v, default) in sizes {
        if v != default {
            parts.push(format!("{key}={}", fmt_size(v)));
        }
    }
    let counts = [
        ("max_header_count", l.max_header_count, d.max_header_count),
        ("max_connections_per_shard", l.max_connections_per_shard, d.max_connections_per_shard),
    ];
    for (key, v, default) in counts {
        if v != default {
            parts.push(format!("{key}={v}"));
        }
    }
    let durations = [
        ("header_timeout", l.header_timeout, d.header_timeout),
        ("body_timeout", l.body_timeout, d.body_timeout),
        ("idle_timeout", l.idle_timeout, d.idle_timeout),
    ];
    for (key, v, default) in durations {
        if v != default {
            parts.push(format!("{key}={}", fmt_duration(v)));
        }
    }
    parts.join(" ")
}

/// `[0, 2, 3]` -> `"0,2-3"`.
fn fmt_cpus(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        if j > i {
            parts.push(format!("{}-{}", cpus[i], cpus[j]));
        } else {
            parts.push(cpus[i].to_string());
        }
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_collapse_to_ranges() {
        assert_eq!(fmt_cpus(&[0, 2, 3, 5]), "0,2-3,5");
        assert_eq!(fmt_cpus(&[3, 1, 2]), "3,1-2");
    }

    #[test]
    fn summary_shows_limits_that_differ_from_defaults() {
        let text = "[server]\nshards = 2\ncpus = \"0-1\"\n\
                    [[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n\
                    [listeners.limits]\nmax_header_count = 50\nheader_timeout = \"5s\"\nmax_uri_bytes = \"4KiB\"\n\
                    [[routes]]\nname = \"r\"\ndirect = { status = 204 }\n";
        let summary = Config::parse(text, "t.toml").unwrap().summary();
        assert!(summary.starts_with("server: shards=2 cpus=0-1 pin=true io_driver=auto"), "{summary}");
        assert!(summary.contains("  limits: max_uri_bytes=4KiB max_header_count=50 header_timeout=5s\n"), "{summary}");
        assert!(summary.contains("  route \"r\" (any request) -> direct 204 (0 body bytes)\n"), "{summary}");
    }
}
