//! The example configs in `configs/` load, and every broken config in
//! `configs/invalid/` fails with exactly the errors in its `.expected` file
//! (one error per line, as `shardgate check` prints them).
//!
//! To add a case: write `configs/invalid/NAME.toml` and `NAME.expected`.
//! File names in errors are shown relative to the crate root.

use std::fs;
use std::path::{Path, PathBuf};

use shardgate::config::{
    Backslash, Config, EscapedSlashes, HostMatch, PathMatch, PathRules, RouteAction, TlsVersion, TrailingDotsAndSpaces,
};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

/// `*.toml` files directly in `dir`, sorted.
fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn load(name: &str) -> Config {
    let path = configs_dir().join(name);
    Config::load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()))
}

#[test]
fn every_example_config_loads() {
    let files = toml_files(&configs_dir());
    assert!(files.len() >= 3, "examples missing: {files:?}");
    for path in files {
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
        let summary = config.summary();
        for l in &config.listeners {
            assert!(summary.contains(&format!("listener {:?}", l.name)), "{summary}");
        }
    }
}

#[test]
fn every_invalid_config_gives_its_expected_errors() {
    let dir = configs_dir().join("invalid");
    let files = toml_files(&dir);
    assert!(files.len() >= 20, "invalid cases missing: {files:?}");
    let mut failures = Vec::new();
    for path in files {
        let expected_path = path.with_extension("expected");
        let expected =
            fs::read_to_string(&expected_path).unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let got = match Config::load(&path) {
            Ok(_) => "(loaded without errors)".to_owned(),
            // Errors about the whole file name it; keep that relative.
            Err(errors) => errors.to_string().replace(concat!(env!("CARGO_MANIFEST_DIR"), "/"), ""),
        };
        // Each expected line (trimmed) must be in the errors, as the
        // `check` e2e test reads the same files: a line may be a prefix or
        // a piece of a message whose rest varies (a path, a list that grows
        // with each new config section).
        let missing: Vec<&str> =
            expected.lines().map(str::trim).filter(|l| !l.is_empty() && !got.contains(l)).collect();
        if expected.trim().is_empty() || !missing.is_empty() {
            failures.push(format!("{}\n--- missing\n{}\n--- got\n{}", path.display(), missing.join("\n"), got));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn quickstart_resolves_to_the_documented_shape() {
    let c = load("quickstart.toml");
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.listeners[0].routes, vec![0, 1, 2]);
    let names: Vec<&str> = c.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["healthz", "docs", "echo"]);
    assert_eq!(c.routes[0].matcher.path, Some(PathMatch::Exact("/healthz".into())));
    match &c.routes[0].action {
        RouteAction::Direct { status, headers, body } => {
            assert_eq!(*status, 200);
            assert_eq!(&body[..], b"ok\n");
            assert_eq!(headers, &[("content-type".to_owned(), "text/plain".to_owned())]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.routes[1].action, RouteAction::Redirect { status: 302, keep_path: true, .. }));
    assert!(matches!(c.routes[2].action, RouteAction::Proxy { cluster: 0 }));
    assert_eq!(c.clusters[0].endpoints[0].to_string(), "127.0.0.1:9000");
}

#[test]
fn gateway_resolves_listeners_limits_and_hosts() {
    let c = load("gateway.toml");
    let public = &c.listeners[0];
    let internal = &c.listeners[1];
    // Per-listener overrides on top of [limits].
    assert_eq!(public.limits.header_timeout.as_secs(), 5);
    assert_eq!(public.limits.max_request_body_bytes, 10 << 20);
    assert_eq!(internal.limits.header_timeout.as_secs(), 10);
    assert_eq!(internal.limits.max_request_body_bytes, 4 << 30);
    // Routes limited to one listener appear only there, in file order.
    let name = |i: &usize| c.routes[*i].name.as_str();
    let public_routes: Vec<&str> = public.routes.iter().map(name).collect();
    let internal_routes: Vec<&str> = internal.routes.iter().map(name).collect();
    assert_eq!(public_routes, ["no-admin", "api-canary", "api-write", "api-read", "static", "www-moved", "not-found"]);
    assert_eq!(internal_routes, ["static", "www-moved", "reports", "not-found"]);
    let stat = c.routes.iter().find(|r| r.name == "static").unwrap();
    assert_eq!(stat.matcher.host, Some(HostMatch::Suffix(".static.example.com".into())));
    let canary = &c.routes[1];
    assert_eq!(canary.matcher.headers, [("x-env".to_owned(), "canary".to_owned())]);
    assert_eq!(c.admin.as_ref().unwrap().listen.port(), 9901);
    // Path rules: refusing defaults on public, IIS folding on internal.
    assert_eq!(public.paths, PathRules::default());
    assert_eq!(internal.paths.backslash, Backslash::Slash);
    assert_eq!(internal.paths.trailing_dots_and_spaces, TrailingDotsAndSpaces::Strip);
    assert_eq!(internal.paths.escaped_slashes, EscapedSlashes::Reject);
    assert!(c.routes[0].matcher.path_case_insensitive);
    let summary = c.summary();
    assert!(summary.contains("header_timeout=5s"), "{summary}");
    assert!(summary.contains("paths: backslash=slash trailing_dots_and_spaces=strip"), "{summary}");
}

#[test]
fn tls_example_resolves_files_names_and_redirect() {
    let c = load("tls.toml");
    let dir = configs_dir();
    let https = &c.listeners[0];
    let tls = https.tls.as_ref().expect("https listener has tls");
    // Relative file names are relative to the config file's directory.
    assert_eq!(tls.certificates[0].cert, dir.join("tls/localhost.pem"));
    assert_eq!(tls.certificates[0].key, dir.join("tls/localhost.key"));
    assert!(tls.certificates[0].server_names.is_empty(), "empty = the certificate's SANs");
    assert_eq!(tls.certificates[1].server_names, ["*.example.test", "example.test"]);
    assert_eq!((tls.strict_sni, tls.min_version), (false, TlsVersion::Tls12));
    assert_eq!(tls.ticket_lifetime.as_secs(), 6 * 3600);
    assert_eq!(tls.hsts.as_deref(), Some("max-age=31536000"));
    let mtls = c.listeners[1].tls.as_ref().unwrap();
    assert_eq!(mtls.client_ca.as_deref(), Some(dir.join("tls/ca.pem").as_path()));
    assert_eq!(mtls.client_cert_header.as_deref(), Some("x-client-cert"));
    assert!(c.listeners[2].tls.is_none());

    let to_https = c.routes.iter().position(|r| r.name == "to-https").unwrap();
    assert!(matches!(c.routes[to_https].action, RouteAction::HttpsRedirect { status: 308, port: Some(8443) }));
    assert_eq!(c.listeners[2].routes, vec![to_https]);

    let backend = &c.clusters[1];
    assert_eq!(backend.endpoint_hosts, ["127.0.0.1", "localhost"]);
    let ctls = backend.tls.as_ref().unwrap();
    assert_eq!(ctls.server_name.as_deref(), Some("localhost"));
    assert_eq!(ctls.ca.as_deref(), Some(dir.join("tls/ca.pem").as_path()));
    assert!(ctls.verify);
    assert_eq!(ctls.client_cert.as_ref().unwrap().cert, dir.join("tls/client.pem"));
    assert!(c.clusters[0].tls.is_none());

    let summary = c.summary();
    assert!(summary.contains("listener \"https\" 127.0.0.1:8443 https\n  tls: min_version=1.2 hsts="), "{summary}");
    assert!(summary.contains("route \"to-https\" (any request) -> https_redirect 308 port=8443"), "{summary}");
    assert!(summary.contains("tls(server_name=localhost ca="), "{summary}");

    // The committed files build real rustls configs.
    for l in c.listeners.iter().filter_map(|l| l.tls.as_ref()) {
        shardgate::tls::server_config::build_server_config(l).unwrap();
    }
    shardgate::tls::client_config::build_client_config(ctls).unwrap();
}

#[test]
fn https_redirect_defaults_to_308_without_port() {
    let text = "[[listeners]]\nname = \"http\"\nlisten = \"127.0.0.1:0\"\n\
                [[routes]]\nhttps_redirect = {}\n[[routes]]\nhttps_redirect = { status = 301, port = 443 }\n";
    let c = Config::parse(text, "t.toml").unwrap();
    assert!(matches!(c.routes[0].action, RouteAction::HttpsRedirect { status: 308, port: None }));
    assert!(matches!(c.routes[1].action, RouteAction::HttpsRedirect { status: 301, port: None }));
}
