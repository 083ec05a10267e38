//! `GET /dashboard` (and `GET /`): the live dashboard, one self-contained
//! HTML page (`dashboard.html`: inline CSS and JavaScript, no external
//! script, style, font or image; its Content-Security-Policy allows
//! fetches to the admin listener only).
//!
//! The page polls `/stats` and `/clusters` once a second and draws
//! per-shard requests per second (from the change of `requests` between
//! two polls), active connections, status classes, latency percentiles
//! over time (from each shard's `latency_seconds` when `/stats` carries
//! it, `–` when not) and the endpoints with their health.
//!
//! The page itself is served WITHOUT the admin token and holds no data:
//! a browser cannot add an `Authorization` header to a page it navigates
//! to, so the token travels in the URL fragment (`/dashboard#token=T`),
//! which the browser never sends to any server; the page's script reads
//! it and sends it as `Authorization: Bearer T` on its own fetches, which
//! the admin checks like any other request.

/// The page, compiled into the binary.
pub const PAGE: &str = include_str!("dashboard.html");

/// Its content type.
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Whether `method` and `path` ask for the page: the one admin resource
/// served without the token (it carries no data).
pub fn is_page(method: &str, path: &str) -> bool {
    method == "GET" && matches!(path, "/dashboard" | "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        let lower = PAGE.to_ascii_lowercase();
        // Nothing loaded from elsewhere: no external script, stylesheet,
        // font, image or frame, and no absolute URL in an attribute.
        for needle in
            ["src=", "href=", "@import", "url(", "@font-face", "<link", "<iframe", "//cdn", "http://", "https://"]
        {
            let allowed = |at: usize| lower[at..].starts_with("http://www.w3.org/2000/svg");
            let hits: Vec<usize> = lower.match_indices(needle).map(|(i, _)| i).filter(|&i| !allowed(i)).collect();
            assert!(hits.is_empty(), "{needle:?} at {hits:?}");
        }
        assert!(lower.contains("content-security-policy") && lower.contains("default-src 'none'"));
        assert!(lower.contains("connect-src 'self'"));
        assert!(PAGE.contains("fetch(path"), "it polls the admin");
        for id in
            ["total-requests", "total-rps", "total-active", "status-2xx", "rps-chart", "latency-chart", "upstreams"]
        {
            assert!(PAGE.contains(&format!("id=\"{id}\"")), "{id}");
        }
    }

    #[test]
    fn only_get_of_the_page_is_public() {
        assert!(is_page("GET", "/dashboard") && is_page("GET", "/"));
        assert!(!is_page("POST", "/dashboard") && !is_page("GET", "/stats") && !is_page("GET", "/dashboard/x"));
    }
}
