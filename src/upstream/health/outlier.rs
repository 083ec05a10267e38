//! Passive outlier detection on one shard (`[clusters.outlier]`, Envoy's
//! rules): each endpoint's consecutive 5xx responses and consecutive
//! gateway failures, counted from this shard's own requests; at the
//! configured count the endpoint is ejected for `base_ejection_time` ×
//! the times it was ejected (capped at `max_ejection_time`), unless the
//! cluster already has `max_ejection_percent` of its endpoints ejected.
//!
//! What counts (Envoy's default, `split_external_local_origin_errors`
//! off): a gateway failure is a connect refused or timed out, a TLS
//! handshake that failed, the connection closed or reset or the response
//! head not in within `response_timeout`, and a 502, 503 or 504 from the
//! upstream. Every gateway failure and every other 5xx counts as a 5xx.
//! Any other response resets both counts. A request the client abandoned
//! counts for nothing.
//!
//! The times-ejected multiplier goes back to zero once the endpoint has
//! served `max_ejection_time` since its last ejection ended (Envoy lowers
//! it step by step; one rule is easier to reason about).

use std::time::Instant;

use crate::config::outlier::Outlier;
use crate::error::ErrorKind;

/// What one try told about its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// A response below 500.
    Success,
    /// A 5xx response; `gateway`: 502, 503 or 504.
    Status5xx { gateway: bool },
    /// No response: refused, timed out, reset, closed.
    GatewayFailure,
}

impl Observed {
    /// From a try's upstream status (when a response head came) or the
    /// error that ended it; `None` for outcomes that say nothing about the
    /// endpoint (the client left, a bad request).
    pub fn from_try(upstream_status: Option<u16>, error: Option<ErrorKind>) -> Option<Observed> {
        match (upstream_status, error) {
            (Some(s), _) if s >= 500 => Some(Observed::Status5xx { gateway: matches!(s, 502..=504) }),
            (Some(_), _) => Some(Observed::Success),
            (None, Some(kind)) if is_gateway_failure(kind) => Some(Observed::GatewayFailure),
            (None, _) => None,
        }
    }
}

/// Errors that are the endpoint's (or the network's to it) fault.
pub fn is_gateway_failure(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UpstreamConnectFailed
            | ErrorKind::UpstreamConnectTimeout
            | ErrorKind::UpstreamTlsFailed
            | ErrorKind::UpstreamClosed
            | ErrorKind::UpstreamResponseTimeout
    )
}

/// One endpoint's outlier state on one shard.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutlierSlot {
    pub consecutive_5xx: u32,
    pub consecutive_gateway: u32,
    /// Ejected until then.
    pub ejected_until: Option<Instant>,
    pub times_ejected: u32,
    /// When its last ejection ended (for resetting the multiplier).
    pub returned_at: Option<Instant>,
}

/// What [`OutlierSlot::observe`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Eject (if the cluster's ejection cap allows).
    Eject,
}

impl OutlierSlot {
    /// Counts `observed`; `Eject` when a rule's count is reached.
    pub fn observe(&mut self, rules: &Outlier, observed: Observed) -> Verdict {
        match observed {
            Observed::Success => {
                self.consecutive_5xx = 0;
                self.consecutive_gateway = 0;
                return Verdict::Keep;
            }
            Observed::Status5xx { gateway } => {
                self.consecutive_5xx += 1;
                if gateway {
                    self.consecutive_gateway += 1;
                } else {
                    self.consecutive_gateway = 0;
                }
            }
            Observed::GatewayFailure => {
                self.consecutive_5xx += 1;
                self.consecutive_gateway += 1;
            }
        }
        let reached = |n: u32, rule: u32| rule > 0 && n >= rule;
        if reached(self.consecutive_5xx, rules.consecutive_5xx)
            || reached(self.consecutive_gateway, rules.consecutive_gateway_failure)
        {
            self.consecutive_5xx = 0;
            self.consecutive_gateway = 0;
            if self.ejected_until.is_none() {
                return Verdict::Eject;
            }
        }
        Verdict::Keep
    }

    /// Ejects the endpoint from `now`; returns until when.
    pub fn eject(&mut self, rules: &Outlier, now: Instant) -> Instant {
        if self.returned_at.is_some_and(|at| now.saturating_duration_since(at) >= rules.max_ejection_time) {
            self.times_ejected = 0;
        }
        self.times_ejected += 1;
        let until = now + rules.ejection_time(self.times_ejected);
        self.ejected_until = Some(until);
        until
    }

    /// Whether the endpoint is ejected at `now`; an ejection past its time
    /// ends here (returns `(false, true)`: not ejected, just returned).
    pub fn check(&mut self, now: Instant) -> (bool, bool) {
        match self.ejected_until {
            Some(until) if now >= until => {
                self.ejected_until = None;
                self.returned_at = Some(now);
                (false, true)
            }
            Some(_) => (true, false),
            None => (false, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rules() -> Outlier {
        Outlier {
            consecutive_5xx: 3,
            consecutive_gateway_failure: 2,
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(25),
            max_ejection_percent: 10,
        }
    }

    #[test]
    fn outcomes_map_to_what_they_say_about_the_endpoint() {
        let cases: &[(Option<u16>, Option<ErrorKind>, Option<Observed>)] = &[
            (Some(200), None, Some(Observed::Success)),
            (Some(404), None, Some(Observed::Success)),
            (Some(500), None, Some(Observed::Status5xx { gateway: false })),
            (Some(503), None, Some(Observed::Status5xx { gateway: true })),
            (Some(200), Some(ErrorKind::DownstreamClosed), Some(Observed::Success)),
            (None, Some(ErrorKind::UpstreamConnectFailed), Some(Observed::GatewayFailure)),
            (None, Some(ErrorKind::UpstreamResponseTimeout), Some(Observed::GatewayFailure)),
            (None, Some(ErrorKind::UpstreamClosed), Some(Observed::GatewayFailure)),
            (None, Some(ErrorKind::DownstreamClosed), None),
            (None, None, None),
        ];
        for &(status, kind, want) in cases {
            assert_eq!(Observed::from_try(status, kind), want, "{status:?} {kind:?}");
        }
    }

    #[test]
    fn consecutive_counts_eject_and_a_success_resets() {
        let r = rules();
        let mut s = OutlierSlot::default();
        let five = Observed::Status5xx { gateway: false };
        assert_eq!(s.observe(&r, five), Verdict::Keep);
        assert_eq!(s.observe(&r, five), Verdict::Keep);
        assert_eq!(s.observe(&r, Observed::Success), Verdict::Keep);
        assert_eq!(s.observe(&r, five), Verdict::Keep);
        assert_eq!(s.observe(&r, five), Verdict::Keep);
        assert_eq!(s.observe(&r, five), Verdict::Eject, "third in a row");
        // Two gateway failures in a row reach the gateway rule first.
        let mut g = OutlierSlot::default();
        assert_eq!(g.observe(&r, Observed::GatewayFailure), Verdict::Keep);
        assert_eq!(g.observe(&r, Observed::Status5xx { gateway: true }), Verdict::Eject);
        // A plain 500 between breaks the gateway run (not the 5xx one).
        let mut m = OutlierSlot::default();
        m.observe(&r, Observed::GatewayFailure);
        m.observe(&r, five);
        assert_eq!(m.observe(&r, Observed::GatewayFailure), Verdict::Eject, "5xx rule: 3 in a row");
    }

    #[test]
    fn ejection_time_grows_is_capped_and_resets_after_good_service() {
        let r = rules();
        let mut s = OutlierSlot::default();
        let t0 = Instant::now();
        assert_eq!(s.eject(&r, t0), t0 + Duration::from_secs(10));
        assert_eq!(s.check(t0 + Duration::from_secs(5)), (true, false));
        assert_eq!(s.observe(&r, Observed::GatewayFailure), Verdict::Keep);
        assert_eq!(s.observe(&r, Observed::GatewayFailure), Verdict::Keep, "already ejected");
        let back = t0 + Duration::from_secs(10);
        assert_eq!(s.check(back), (false, true));
        assert_eq!(s.check(back), (false, false));
        assert_eq!(s.eject(&r, back), back + Duration::from_secs(20), "second: twice as long");
        let back = back + Duration::from_secs(20);
        s.check(back);
        assert_eq!(s.eject(&r, back), back + Duration::from_secs(25), "capped");
        let back = back + Duration::from_secs(25);
        s.check(back);
        let later = back + Duration::from_secs(25);
        assert_eq!(s.eject(&r, later), later + Duration::from_secs(10), "served max_ejection_time: reset");
    }
}
