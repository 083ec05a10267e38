//! Path and host spellings that would slip past a deny route: a `direct`
//! 403 route in front of a catch-all proxy route must hold whatever the
//! spelling (`[listeners.paths]`, `path_case_insensitive`, Host
//! validation). Each spelling is either refused (400) or folded into the
//! denied path (403); the upstream receives nothing. The relaxed options
//! let their spelling through, and the upstream receives what the docs say.

use crate::harness::client::get_host;
use crate::harness::*;

/// A deny route for `/admin/` (any case) in front of a catch-all proxy
/// route to `upstream`; `paths` are the `[listeners.paths]` lines.
fn deny_admin(upstream: &Upstream, paths: &str) -> Proxy {
    let mut config = ProxyConfig::new()
        .cluster("backend", &[upstream.addr()])
        .route(Route::new("deny").path_prefix("/admin/").path_case_insensitive().direct(403, "denied"))
        .route(Route::new("all").path_prefix("/").cluster("backend"));
    if !paths.is_empty() {
        config = config.paths("main", paths);
    }
    config.start()
}

/// Sends `GET path` with `Host: localhost` (the path is written raw).
fn status_of(proxy: &Proxy, path: &str) -> (u16, String) {
    let response = get(proxy.addr(), path);
    (response.status, response.text())
}

#[test]
fn ambiguous_spellings_of_a_denied_prefix_never_reach_the_upstream() {
    let upstream = Upstream::path_echo();
    let proxy = deny_admin(&upstream, "");

    const CASES: &[(&str, u16)] = &[
        ("/admin;x/secret", 400),
        ("/public/..;/admin/x", 400),
        ("/admin%2Fsecret", 400),
        ("/admin%2fsecret", 400),
        ("/admin%5Csecret", 400),
        ("/admin\\secret", 400),
        ("/admin./x", 400),
        ("/admin%2E/x", 400),
        ("/admin%20/x", 400),
        ("/admin.%20/x", 400),
        ("/admin%252Fx", 400),
        ("/public/%252e%252e/admin/x", 400),
        ("/Admin/x", 403),
        ("/ADMIN/secret", 403),
        ("/%61dmin/x", 403),
    ];
    for &(path, want) in CASES {
        let (status, body) = status_of(&proxy, path);
        assert_eq!(status, want, "{path}: {body}");
        assert_eq!(upstream.connections(), 0, "{path} reached the upstream");
    }

    // Plain paths, and a `%25` that is not a double encoding, still pass.
    assert_eq!(status_of(&proxy, "/public/x").0, 200);
    assert_eq!(status_of(&proxy, "/public/100%25").0, 200);
    let targets: Vec<String> = upstream.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/public/x", "/public/100%25"]);
}

#[test]
fn a_refused_spelling_gets_a_reason() {
    let upstream = Upstream::path_echo();
    let proxy = deny_admin(&upstream, "");

    for (path, reason) in [
        ("/admin;x/secret", "matrix parameter"),
        ("/admin%2Fsecret", "escaped slash"),
        ("/admin\\secret", "backslash"),
        ("/admin./x", "ends in a dot or space"),
        ("/admin%20/x", "ends in a dot or space"),
        ("/admin%252Fx", "double"),
    ] {
        let (status, body) = status_of(&proxy, path);
        assert_eq!(status, 400, "{path}");
        assert!(body.contains(reason), "{path}: {body:?} should name {reason:?}");
    }
    assert_eq!(upstream.connections(), 0);
}

#[test]
fn path_case_insensitive_is_per_route() {
    let proxy = ProxyConfig::new()
        .route(Route::new("any-case").path_prefix("/admin/").path_case_insensitive().direct(403, "denied"))
        .route(Route::new("exact-case").path("/api/v1").direct(200, "api"))
        .route(Route::new("rest").direct(200, "rest"))
        .start();

    assert_eq!(status_of(&proxy, "/AdMiN/x"), (403, "denied".to_string()));
    assert_eq!(status_of(&proxy, "/api/v1").1, "api");
    assert_eq!(status_of(&proxy, "/API/V1").1, "rest", "routes match case-sensitively unless they say otherwise");
}

#[test]
fn escaped_slashes_keep_forwards_them_as_data() {
    let upstream = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .cluster("backend", &[upstream.addr()])
        .route(Route::new("deny").path_prefix("/a/").direct(403, "denied"))
        .route(Route::new("all").path_prefix("/").cluster("backend"))
        .paths("main", r#"escaped_slashes = "keep""#)
        .start();

    // An escaped slash is data: `/a%2Fb` is one segment, not below `/a/`.
    assert_eq!(status_of(&proxy, "/a%2Fb").0, 200);
    assert_eq!(status_of(&proxy, "/a%2fb").0, 200);
    assert_eq!(status_of(&proxy, "/a%5Cb").0, 200);
    assert_eq!(status_of(&proxy, "/a/b").0, 403);
    let targets: Vec<String> = upstream.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/a%2Fb", "/a%2Fb", "/a%5Cb"]);
}

#[test]
fn escaped_slashes_decode_makes_them_separators() {
    let upstream = Upstream::path_echo();
    let proxy = deny_admin(&upstream, r#"escaped_slashes = "decode""#);

    assert_eq!(status_of(&proxy, "/admin%2Fsecret").0, 403);
    assert_eq!(status_of(&proxy, "/public%2F..%2Fadmin%2Fx").0, 403);
    // A decoded %5C is a backslash, refused by the default backslash rule.
    assert_eq!(status_of(&proxy, "/admin%5Csecret").0, 400);
    assert_eq!(upstream.connections(), 0);

    assert_eq!(status_of(&proxy, "/public%2Fx").0, 200);
    assert_eq!(upstream.only_request().target, "/public/x", "the upstream receives the decoded path");
}

#[test]
fn backslash_as_slash_folds_it_into_the_path() {
    let upstream = Upstream::path_echo();
    let proxy = deny_admin(&upstream, "backslash = \"slash\"\nescaped_slashes = \"decode\"");

    assert_eq!(status_of(&proxy, "/admin\\secret").0, 403);
    assert_eq!(status_of(&proxy, "/admin%5Csecret").0, 403);
    assert_eq!(status_of(&proxy, "/public\\..\\admin\\x").0, 403);
    assert_eq!(upstream.connections(), 0);

    assert_eq!(status_of(&proxy, "/public\\x").0, 200);
    assert_eq!(upstream.only_request().target, "/public/x");
}

#[test]
fn matrix_parameters_strip_matches_without_them_and_forwards_them() {
    let upstream = Upstream::path_echo();
    let proxy = deny_admin(&upstream, r#"matrix_parameters = "strip""#);

    assert_eq!(status_of(&proxy, "/admin;x/secret").0, 403);
    assert_eq!(status_of(&proxy, "/ADMIN;x=1/secret").0, 403);
    // Tomcat reads `..;` as `..`: matched as `/admin/x`.
    assert_eq!(status_of(&proxy, "/public/..;/admin/x").0, 403);
    assert_eq!(upstream.connections(), 0);

    assert_eq!(status_of(&proxy, "/public;jsessionid=1/x;v=2").0, 200);
    assert_eq!(upstream.only_request().target, "/public;jsessionid=1/x;v=2", "parameters are kept for the upstream");
}

#[test]
fn matrix_parameters_keep_forwards_them_as_part_of_the_segment() {
    let upstream = Upstream::path_echo();
    let proxy = deny_admin(&upstream, r#"matrix_parameters = "keep""#);

    // `admin;x` is a different segment than `admin` for a backend that
    // gives `;` no meaning: the operator chose this.
    assert_eq!(status_of(&proxy, "/admin;x/secret").0, 200);
    assert_eq!(upstream.only_request().target, "/admin;x/secret");
}

#[test]
fn trailing_dots_and_spaces_strip_folds_them_away() {
    let upstream = Upstream::path_echo();
    let proxy = deny_admin(&upstream, r#"trailing_dots_and_spaces = "strip""#);

    for path in ["/admin./x", "/admin%20/x", "/admin.%20./x", "/Admin%2E/x"] {
        assert_eq!(status_of(&proxy, path).0, 403, "{path}");
    }
    // Nothing but dots and spaces: Windows may read `..%20` as `..`.
    assert_eq!(status_of(&proxy, "/public/..%20/admin/x").0, 400);
    assert_eq!(upstream.connections(), 0);

    assert_eq!(status_of(&proxy, "/public./x.%20").0, 200);
    assert_eq!(upstream.only_request().target, "/public/x", "the upstream receives the stripped path");
}

#[test]
fn trailing_dots_and_spaces_keep_forwards_them() {
    let upstream = Upstream::path_echo();
    let proxy = deny_admin(&upstream, r#"trailing_dots_and_spaces = "keep""#);

    assert_eq!(status_of(&proxy, "/v1./x%20").0, 200);
    assert_eq!(upstream.only_request().target, "/v1./x%20");
}

#[test]
fn double_encoding_keep_forwards_it_unchanged() {
    let upstream = Upstream::path_echo();
    let proxy = deny_admin(&upstream, r#"double_encoding = "keep""#);

    assert_eq!(status_of(&proxy, "/files/a%252Fb").0, 200);
    assert_eq!(upstream.only_request().target, "/files/a%252Fb");
}

#[test]
fn host_spellings_that_are_not_host_names_are_refused() {
    let upstream = Upstream::ok("public");
    let proxy = ProxyConfig::new()
        .cluster("backend", &[upstream.addr()])
        .route(Route::new("internal").host("internal.example.com").direct(403, "denied"))
        .route(Route::new("all").cluster("backend"))
        .start();

    for host in [
        "internal.example.com..",
        "internal%2eexample.com",
        "internal..example.com",
        ".internal.example.com",
        "-internal.example.com",
        "internal-.example.com",
        "internal.example.com:99999",
        "internal.example.com:8x",
        "[v1.internal]",
        "[::1",
        "[::g]",
        "internal.example.com;x",
        "internal.example.com\\",
        "user@internal.example.com",
    ] {
        let response = get_host(proxy.addr(), host, "/");
        assert_eq!(response.status, 400, "Host: {host}");
        assert!(response.text().contains("Host"), "Host: {host}: the reason names the Host: {:?}", response.text());
    }
    let absolute = send_raw(proxy.addr(), b"GET http://internal%2eexample.com/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(absolute.status, 400);
    assert_eq!(upstream.connections(), 0);

    // Spellings of the same host fold into the denied route.
    for host in ["internal.example.com", "INTERNAL.Example.com", "internal.example.com.", "internal.example.com.:80"] {
        assert_eq!(get_host(proxy.addr(), host, "/").status, 403, "Host: {host}");
    }
    assert_eq!(upstream.connections(), 0);

    // Valid names and literals pass.
    for host in ["public.example.com", "10.0.0.1:8080", "[::1]:8080", "[::ffff:10.0.0.1]", "under_score.example"] {
        assert_eq!(get_host(proxy.addr(), host, "/").text(), "public", "Host: {host}");
    }
    assert_eq!(upstream.requests().len(), 5);
}
