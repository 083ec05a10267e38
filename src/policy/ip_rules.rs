//! The IP rules stage: the listener's `ip_rules`, then the route's,
//! judged on the effective client address (`Exchange::client`: the peer,
//! or whom a trusted proxy names). A refused address gets 403 naming
//! which rules refused it.
//!
//! Where it sits: right after route selection, before authentication.
//! A request that matched no route is judged by the listener's rules
//! before it gets its 404, so a refused client learns nothing of the
//! route table.

use std::net::IpAddr;

use crate::config::{IpRules, Listener, Route};
use crate::error::{Error, ErrorKind};

/// `Ok` when `client` may go on.
pub fn admit(listener: &Listener, route: Option<&Route>, client: IpAddr) -> Result<(), Error> {
    judge(listener.ip_rules.as_ref(), "listener", client)?;
    judge(route.and_then(|r| r.policies.ip_rules.as_ref()), "route", client)
}

fn judge(rules: Option<&IpRules>, whose: &'static str, client: IpAddr) -> Result<(), Error> {
    match rules.and_then(|r| r.refusal(client)) {
        None => Ok(()),
        Some(why) => Err(Error::new(
            ErrorKind::Forbidden,
            format!("client address {client} refused by the {whose}'s ip_rules ({why})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cidr;

    fn rules(allow: &[&str], deny: &[&str]) -> IpRules {
        let parse = |v: &[&str]| v.iter().map(|t| Cidr::parse(t).unwrap()).collect();
        IpRules { allow: parse(allow), deny: parse(deny) }
    }

    #[test]
    fn deny_wins_and_allow_lists_close() {
        /// (allow, deny, client, refused because)
        type Case = (&'static [&'static str], &'static [&'static str], &'static str, Option<&'static str>);
        const CASES: &[Case] = &[
            (&[], &["10.0.0.0/8"], "10.1.2.3", Some("in a denied range")),
            (&[], &["10.0.0.0/8"], "11.1.2.3", None),
            (&["10.0.0.0/8"], &[], "10.1.2.3", None),
            (&["10.0.0.0/8"], &[], "192.0.2.1", Some("not in an allowed range")),
            (&["10.0.0.0/8"], &["10.9.0.0/16"], "10.9.1.1", Some("in a denied range")),
            (&["10.0.0.0/8"], &["10.9.0.0/16"], "10.8.1.1", None),
            (&["2001:db8::/32"], &[], "2001:db8::7", None),
            (&["2001:db8::/32"], &[], "2001:db9::7", Some("not in an allowed range")),
            (&[], &["::1"], "::1", Some("in a denied range")),
            (&["::/0"], &[], "127.0.0.1", Some("not in an allowed range")),
            // A dual-stack socket's IPv4-mapped address is the IPv4 one.
            (&["127.0.0.0/8"], &[], "::ffff:127.0.0.1", None),
        ];
        for &(allow, deny, client, want) in CASES {
            let got = rules(allow, deny).refusal(client.parse().unwrap());
            assert_eq!(got, want, "allow={allow:?} deny={deny:?} client={client}");
        }
    }

    #[test]
    fn refusal_is_403_naming_whose_rules() {
        let r = rules(&[], &["127.0.0.1"]);
        let e = judge(Some(&r), "route", "127.0.0.1".parse().unwrap()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Forbidden);
        assert_eq!(e.kind.status(), Some(403));
        assert_eq!(e.cause, "client address 127.0.0.1 refused by the route's ip_rules (in a denied range)");
        assert!(judge(None, "route", "127.0.0.1".parse().unwrap()).is_ok());
    }
}
