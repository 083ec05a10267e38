//! `[routes.https_redirect]` on a plain listener: `Location:
//! https://{host}{:port}{path}{?query}`, 308 by default.

use crate::harness::client::get_host;
use crate::harness::*;

#[test]
fn http_is_redirected_to_https_keeping_host_path_and_query() {
    let proxy = ProxyConfig::new().route(Route::new("to-https").https_redirect(None, None)).start();

    for (host, target, location) in [
        ("shop.test", "/cart/items?id=7&x=%20y", "https://shop.test/cart/items?id=7&x=%20y"),
        ("shop.test:8080", "/a/b", "https://shop.test/a/b"),
        ("shop.test", "/", "https://shop.test/"),
    ] {
        let response = get_host(proxy.addr(), host, target);
        assert_eq!(response.status, 308, "Host {host}, {target}: {}", response.text());
        assert_eq!(response.header("location"), Some(location), "Host {host}, {target}");
    }
}

#[test]
fn https_redirect_with_a_port_and_another_status() {
    let proxy = ProxyConfig::new()
        .route(Route::new("to-8443").path_prefix("/p/").https_redirect(None, Some(8443)))
        .route(Route::new("moved").https_redirect(Some(301), Some(8443)))
        .start();

    let response = get_host(proxy.addr(), "shop.test:8080", "/p/x?q=1");
    assert_eq!(response.status, 308, "{}", response.text());
    assert_eq!(response.header("location"), Some("https://shop.test:8443/p/x?q=1"));

    let response = get_host(proxy.addr(), "shop.test", "/other?q=2");
    assert_eq!(response.status, 301, "{}", response.text());
    assert_eq!(response.header("location"), Some("https://shop.test:8443/other?q=2"));
}
