//! Routing: host (exact, wildcard), path (exact, prefix, normalised),
//! methods, headers, listeners; direct responses and redirects; file order;
//! round robin over a cluster's endpoints.

use crate::harness::client::get_host;
use crate::harness::*;

#[test]
fn exact_host_matches_ignoring_port_and_case() {
    let api = Upstream::ok("api");
    let proxy = ProxyConfig::new()
        .cluster("api", &[api.addr()])
        .route(Route::new("api").host("api.example.com").cluster("api"))
        .route(Route::new("fallback").direct(200, "fallback"))
        .start();

    assert_eq!(get_host(proxy.addr(), "api.example.com", "/").text(), "api");
    assert_eq!(get_host(proxy.addr(), "API.Example.COM", "/").text(), "api");
    assert_eq!(get_host(proxy.addr(), "api.example.com:8080", "/").text(), "api");
    assert_eq!(get_host(proxy.addr(), "www.example.com", "/").text(), "fallback");
    assert_eq!(get_host(proxy.addr(), "api.example.com.evil", "/").text(), "fallback");
    assert_eq!(api.requests().len(), 3);
}

#[test]
fn wildcard_host_matches_subdomains_but_not_the_domain_itself() {
    let wild = Upstream::ok("wild");
    let proxy = ProxyConfig::new()
        .cluster("wild", &[wild.addr()])
        .route(Route::new("wild").host("*.example.com").cluster("wild"))
        .start();

    assert_eq!(get_host(proxy.addr(), "a.example.com", "/").text(), "wild");
    assert_eq!(get_host(proxy.addr(), "a.b.example.com", "/").text(), "wild");
    assert_eq!(get_host(proxy.addr(), "A.EXAMPLE.com:81", "/").text(), "wild");
    assert_eq!(get_host(proxy.addr(), "example.com", "/").status, 404);
    assert_eq!(get_host(proxy.addr(), "badexample.com", "/").status, 404);
    assert_eq!(wild.requests().len(), 3);
}

#[test]
fn exact_path_matches_only_that_path_and_keeps_the_query() {
    let exact = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .cluster("exact", &[exact.addr()])
        .route(Route::new("exact").path("/exact").cluster("exact"))
        .start();

    assert_eq!(get(proxy.addr(), "/exact").text(), "GET /exact");
    assert_eq!(get(proxy.addr(), "/exact?x=1&y").text(), "GET /exact?x=1&y");
    assert_eq!(get(proxy.addr(), "/exact/").status, 404);
    assert_eq!(get(proxy.addr(), "/exactly").status, 404);
    assert_eq!(get(proxy.addr(), "/").status, 404);
    assert_eq!(exact.requests().len(), 2);
}

#[test]
fn path_prefix_matches_everything_below_it() {
    let api = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .cluster("api", &[api.addr()])
        .route(Route::new("api").path_prefix("/api/").cluster("api"))
        .start();

    assert_eq!(get(proxy.addr(), "/api/").text(), "GET /api/");
    assert_eq!(get(proxy.addr(), "/api/users/7").text(), "GET /api/users/7");
    assert_eq!(get(proxy.addr(), "/api").status, 404);
    assert_eq!(get(proxy.addr(), "/apis/x").status, 404);
    assert_eq!(api.requests().len(), 2);
}

#[test]
fn methods_restrict_a_route() {
    let reads = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .cluster("reads", &[reads.addr()])
        .route(Route::new("reads").methods(&["GET"]).cluster("reads"))
        .start();

    assert_eq!(get(proxy.addr(), "/thing").text(), "GET /thing");
    let post = send_raw(proxy.addr(), b"POST /thing HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(post.status, 404);
    let delete = send_raw(proxy.addr(), b"DELETE /thing HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(delete.status, 404);
    assert_eq!(reads.requests().len(), 1);
}

#[test]
fn header_equality_selects_a_route() {
    let prod = Upstream::ok("prod");
    let proxy = ProxyConfig::new()
        .cluster("prod", &[prod.addr()])
        .route(Route::new("prod").header("x-env", "prod").cluster("prod"))
        .route(Route::new("other").direct(200, "other"))
        .start();

    let with = |value: &str| {
        Client::connect(proxy.addr())
            .request(format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Env: {value}\r\n\r\n").as_bytes())
            .text()
    };
    assert_eq!(with("prod"), "prod");
    assert_eq!(with("production"), "other");
    assert_eq!(with("PROD"), "other", "header values match exactly");
    assert_eq!(get(proxy.addr(), "/").text(), "other", "absent header");
    assert_eq!(prod.requests().len(), 1);
}

#[test]
fn routes_are_tried_in_file_order_and_the_first_match_wins() {
    let proxy = ProxyConfig::new()
        .route(Route::new("x-general").path_prefix("/x/").direct(200, "x-general"))
        .route(Route::new("x-specific").path_prefix("/x/y/").direct(200, "never"))
        .route(Route::new("a-specific").path_prefix("/a/b/").direct(200, "a-specific"))
        .route(Route::new("a-general").path_prefix("/a/").direct(200, "a-general"))
        .start();

    assert_eq!(get(proxy.addr(), "/x/y/z").text(), "x-general");
    assert_eq!(get(proxy.addr(), "/a/b/c").text(), "a-specific");
    assert_eq!(get(proxy.addr(), "/a/c").text(), "a-general");
}

#[test]
fn a_request_no_route_matches_gets_404_and_reaches_no_upstream() {
    let only = Upstream::ok("only");
    let proxy = ProxyConfig::new()
        .cluster("only", &[only.addr()])
        .route(Route::new("only").path("/only").cluster("only"))
        .start();

    let response = get(proxy.addr(), "/elsewhere");

    assert_eq!(response.status, 404);
    assert_eq!(only.connections(), 0);
}

#[test]
fn direct_response_has_the_configured_status_headers_and_body() {
    let proxy = ProxyConfig::new()
        .route(Route::new("health").path("/healthz").direct_with_headers(
            200,
            "ok\n",
            &[("content-type", "text/plain"), ("x-served-by", "config")],
        ))
        .route(Route::new("maintenance").direct(503, "down for maintenance"))
        .start();

    let health = get(proxy.addr(), "/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.body, b"ok\n");
    assert_eq!(health.header("content-type"), Some("text/plain"));
    assert_eq!(health.header("x-served-by"), Some("config"));

    let other = get(proxy.addr(), "/anything");
    assert_eq!(other.status, 503);
    assert_eq!(other.text(), "down for maintenance");
}

#[test]
fn redirect_sends_location_and_status() {
    let proxy = ProxyConfig::new()
        .route(Route::new("moved").path_prefix("/old/").redirect("https://example.com", 301, false))
        .route(Route::new("keep").path_prefix("/keep/").redirect("https://example.com", 302, true))
        .start();

    let moved = get(proxy.addr(), "/old/page?q=1");
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), Some("https://example.com"));

    let kept = get(proxy.addr(), "/keep/page?q=1&r=2");
    assert_eq!(kept.status, 302);
    assert_eq!(kept.header("location"), Some("https://example.com/keep/page?q=1&r=2"));
}

#[test]
fn dot_segments_cannot_climb_out_of_a_prefix() {
    let public = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .cluster("public", &[public.addr()])
        .route(Route::new("public").path_prefix("/public/").cluster("public"))
        .start();

    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/./../admin",
        "/public/x/../../admin",
    ] {
        let response = get(proxy.addr(), path);
        assert_eq!(response.status, 404, "{path} must not reach /public/");
    }
    assert_eq!(public.connections(), 0);

    // Dot-segments that stay inside the prefix are resolved, not refused.
    assert_eq!(get(proxy.addr(), "/public/a/../b").text(), "GET /public/b");
    assert_eq!(get(proxy.addr(), "/public/./c").text(), "GET /public/c");
}

#[test]
fn repeated_slashes_are_collapsed_before_matching_and_forwarding() {
    let public = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .cluster("public", &[public.addr()])
        .route(Route::new("public").path_prefix("/public/").cluster("public"))
        .start();

    let response = get(proxy.addr(), "//public//x?y=//z");

    assert_eq!(response.status, 200);
    assert_eq!(public.only_request().target, "/public/x?y=//z");
}

#[test]
fn percent_encoded_unreserved_characters_are_decoded_and_the_query_is_kept() {
    let public = Upstream::path_echo();
    let proxy = ProxyConfig::new()
        .cluster("public", &[public.addr()])
        .route(Route::new("public").path_prefix("/public/").cluster("public"))
        .paths("main", r#"escaped_slashes = "keep""#)
        .start();

    // %70 = 'p': the encoded form still matches the /public/ prefix.
    assert_eq!(get(proxy.addr(), "/%70ublic/%7Euser/%41b%63").status, 200);
    // An encoded '/' is reserved: kept (by this listener's choice), it stays
    // encoded and is not a separator.
    assert_eq!(get(proxy.addr(), "/public/a%2Fb?q=%2e%2E&x=/../").status, 200);

    let targets: Vec<String> = public.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, vec!["/public/~user/Abc".to_string(), "/public/a%2Fb?q=%2e%2E&x=/../".to_string()]);
}

#[test]
fn a_route_limited_to_a_listener_is_only_served_there() {
    let proxy = ProxyConfig::new()
        .listener("internal", "")
        .route(Route::new("secret").listeners(&["internal"]).path("/secret").direct(200, "secret"))
        .route(Route::new("rest").direct(200, "public"))
        .start();

    assert_eq!(get(proxy.listener("internal"), "/secret").text(), "secret");
    assert_eq!(get(proxy.addr(), "/secret").text(), "public");
}

#[test]
fn a_cluster_spreads_requests_over_its_endpoints_round_robin() {
    let first = Upstream::ok("first");
    let second = Upstream::ok("second");
    let proxy = ProxyConfig::new()
        .cluster("both", &[first.addr(), second.addr()])
        .route(Route::new("all").cluster("both"))
        .start();

    let mut client = Client::connect(proxy.addr());
    let bodies: Vec<String> = (0..4).map(|_| client.get("/").text()).collect();

    assert_eq!(first.requests().len(), 2, "bodies: {bodies:?}");
    assert_eq!(second.requests().len(), 2, "bodies: {bodies:?}");
    assert_ne!(bodies[0], bodies[1], "consecutive requests alternate");
}
