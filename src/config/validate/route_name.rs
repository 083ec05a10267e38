//! The name of a route that has none, derived from what the route is
//! (its match and action), never from where it is in the file. Part of
//! `validate.rs` (the `Check` pass of `[[routes]]`).

use super::super::{RouteAction, RouteMatch};

/// The name of a route without one: `route-` and 12 hex digits of a
/// stable hash of its match and action (the cluster by name). State kept
/// per route (rate-limit buckets) is keyed by the name, so it must not
/// depend on the route's position: inserting a route before it would hand
/// its state to another route.
pub(super) fn content_name(matcher: &RouteMatch, action: &RouteAction, cluster: Option<&str>) -> String {
    let action = match (action, cluster) {
        (RouteAction::Proxy { .. }, Some(cluster)) => format!("cluster={cluster}"),
        (other, _) => format!("{other:?}"),
    };
    let hash = super::super::fingerprint::fingerprint(&format!("{matcher:?}|{action}"));
    format!("route-{:012x}", hash >> 16)
}

#[cfg(test)]
mod tests {
    use super::super::load_str;

    #[test]
    fn a_route_without_a_name_is_named_by_its_content_not_its_position() {
        let head = "[[listeners]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\n\
                    [[clusters]]\nname = \"api\"\nendpoints = [\"127.0.0.1:1\"]\n";
        let api = "[[routes]]\ncluster = \"api\"\n[routes.match]\npath_prefix = \"/api/\"\n";
        let teapot = "[[routes]]\ndirect = { status = 418 }\n";
        let one = load_str(&format!("{head}{api}{teapot}"), "t.toml").unwrap();
        let two = load_str(&format!("{head}{teapot}{api}"), "t.toml").unwrap();
        assert_eq!(one.routes[0].name, two.routes[1].name, "the /api/ route moved and kept its name");
        assert_eq!(one.routes[1].name, two.routes[0].name);
        assert_ne!(one.routes[0].name, one.routes[1].name);
        assert!(one.routes[0].name.starts_with("route-") && one.routes[0].name.len() == 18, "{}", one.routes[0].name);
        let other_cluster = format!(
            "{head}[[clusters]]\nname = \"b\"\nendpoints = [\"127.0.0.1:1\"]\n{}",
            api.replace("\"api\"\n[routes", "\"b\"\n[routes")
        );
        let three = load_str(&other_cluster, "t.toml").unwrap();
        assert_ne!(three.routes[0].name, one.routes[0].name, "another cluster: another route");

        let errs = load_str(&format!("{head}{teapot}{api}{teapot}"), "t.toml").unwrap_err();
        assert_eq!(errs.0.len(), 1, "{errs}");
        assert_eq!(errs.0[0].path, "routes[2]");
        assert!(errs.0[0].message.starts_with("same match and action as routes[0]: name one of them"), "{errs}");
        assert_eq!(errs.0[0].line, Some(13));
    }
}
