//! A shard's own view of its endpoints, one entry per stable endpoint slot
//! (`EndpointId::slot`), so a reload that keeps an endpoint keeps what the
//! shard learned about it: its passive mark, its outlier counts and
//! ejection, requests in flight (`in_flight.rs`) and slow-start ramps
//! (`balance/slow_start.rs`). Active health comes from the prober's table
//! in the generation (`upstream/health/`); [`Eligibility`] combines the
//! three for the select phase.
//!
//! Passive mark (nginx's defaults, `max_fails=1 fail_timeout=10s`), for
//! clusters without `[clusters.outlier]`: an endpoint that refused a
//! connection or did not accept one within the connect timeout is passed
//! over by selection for `PASSIVE_FAIL_TIMEOUT`, then tried again. A
//! cluster with `[clusters.outlier]` has no such mark: its connect
//! failures count as gateway failures there instead (ejection after
//! `consecutive_gateway_failure`, for a growing time). Shard-local, like
//! everything a shard decides on.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::balance::slow_start::Ramps;
use super::health::gauge::{EjectionCells, EjectionGauge};
use super::health::outlier::{Observed, OutlierSlot, Verdict};
use super::health::{Active, ActiveHealth};
use super::in_flight::InFlight;
use super::EndpointId;
use crate::config::Cluster;

/// How long an endpoint that failed to connect is passed over.
pub const PASSIVE_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct EndpointStates {
    /// Per slot: marked down until then.
    down_until: RefCell<Vec<Option<Instant>>>,
    /// How many slots are marked: while none is, selection reads no clock.
    marked: Cell<usize>,
    /// Tries in flight per slot.
    pub in_flight: InFlight,
    /// Slow-start ramps per slot: an endpoint whose mark is lifted or
    /// whose ejection ends ramps.
    pub ramps: Ramps,
    /// Per slot: outlier detection's counts and ejection.
    outlier: RefCell<Vec<OutlierSlot>>,
    /// How many slots are ejected: while none is, no clock is read.
    ejected: Cell<usize>,
    /// What the admin thread sees of the ejections.
    gauge: RefCell<EjectionCells>,
}

impl Default for EndpointStates {
    fn default() -> Self {
        EndpointStates::new(Arc::new(EjectionGauge::default()))
    }
}

impl EndpointStates {
    pub fn new(gauge: Arc<EjectionGauge>) -> EndpointStates {
        EndpointStates {
            down_until: RefCell::default(),
            marked: Cell::new(0),
            in_flight: InFlight::default(),
            ramps: Ramps::default(),
            outlier: RefCell::default(),
            ejected: Cell::new(0),
            gauge: RefCell::new(EjectionCells::new(gauge)),
        }
    }

    /// Whether the endpoint's passive mark lets selection choose it (a
    /// mark past its time is lifted here).
    #[inline]
    pub fn usable(&self, id: EndpointId) -> bool {
        if self.marked.get() == 0 {
            return true;
        }
        let mut down = self.down_until.borrow_mut();
        match down.get(id.slot()).copied().flatten() {
            None => true,
            Some(until) if Instant::now() >= until => {
                down[id.slot()] = None;
                self.marked.set(self.marked.get() - 1);
                self.ramps.start(id.slot(), Instant::now());
                true
            }
            Some(_) => false,
        }
    }

    /// Whether any endpoint is marked on this shard (while none is,
    /// selection need not ask about each).
    #[inline]
    pub fn any_marked(&self) -> bool {
        self.marked.get() > 0
    }

    /// A connection to the endpoint was refused or timed out.
    pub fn connect_failed(&self, id: EndpointId) {
        let mut down = self.down_until.borrow_mut();
        if down.len() <= id.slot() {
            down.resize(id.slot() + 1, None);
        }
        if down[id.slot()].replace(Instant::now() + PASSIVE_FAIL_TIMEOUT).is_none() {
            self.marked.set(self.marked.get() + 1);
        }
    }

    /// Lifts the endpoint's mark.
    pub fn clear(&self, id: EndpointId) {
        let mut down = self.down_until.borrow_mut();
        if let Some(slot) = down.get_mut(id.slot()) {
            if slot.take().is_some() {
                self.marked.set(self.marked.get() - 1);
                self.ramps.start(id.slot(), Instant::now());
            }
        }
    }

    /// Whether `slot` is ejected at `now` (`None`: nothing is ejected on
    /// this shard). An ejection past its time ends here.
    fn is_ejected(&self, slot: usize, now: Option<Instant>) -> bool {
        let Some(now) = now else {
            return false;
        };
        let mut slots = self.outlier.borrow_mut();
        let Some(s) = slots.get_mut(slot) else {
            return false;
        };
        let (ejected, returned) = s.check(now);
        if returned {
            self.ejected.set(self.ejected.get() - 1);
            self.gauge.borrow().returned(slot);
            self.ramps.start(slot, now);
        }
        ejected
    }

    /// Counts what a try to `ids[index]` of `cluster` told about it
    /// (`[clusters.outlier]` must be set); ejects it when a rule says so
    /// and the cluster's ejection cap allows.
    pub fn observe(&self, cluster: &Cluster, ids: &[EndpointId], index: usize, observed: Observed) {
        let Some(rules) = &cluster.outlier else {
            return;
        };
        let slot = ids[index].slot();
        let verdict = {
            let mut slots = self.outlier.borrow_mut();
            if slots.len() <= slot {
                slots.resize(slot + 1, OutlierSlot::default());
            }
            slots[slot].observe(rules, observed)
        };
        if verdict != Verdict::Eject {
            return;
        }
        let now = Instant::now();
        let already = ids.iter().filter(|id| self.is_ejected(id.slot(), Some(now))).count();
        if already >= rules.max_ejected(ids.len()) {
            return;
        }
        let mut slots = self.outlier.borrow_mut();
        let until = slots[slot].eject(rules, now);
        self.ejected.set(self.ejected.get() + 1);
        let times = slots[slot].times_ejected;
        self.gauge.borrow_mut().ejected(slot, until, times);
        tracing::info!(cluster = %cluster.name, endpoint = %cluster.endpoints[index], times, until = ?until.duration_since(now), "endpoint ejected by outlier detection");
    }

    /// What selection may choose among `ids` (one cluster's endpoints) on
    /// this shard now. Clusters without health checks and outlier
    /// detection pay one branch: only the passive mark applies.
    #[inline]
    pub fn eligibility<'a>(
        &'a self,
        cluster: &Cluster,
        active: &'a ActiveHealth,
        ids: &[EndpointId],
    ) -> Eligibility<'a> {
        let checked = cluster.health_check.is_some();
        let outlier = cluster.outlier.is_some();
        let mut e = Eligibility { states: self, active: None, outlier, panic: false, now: None };
        if !checked && !outlier {
            return e;
        }
        e.active = checked.then_some(active);
        e.now = (outlier && self.ejected.get() > 0).then(Instant::now);
        let threshold = cluster.healthy_panic_threshold as usize;
        if threshold > 0 {
            let healthy = ids.iter().filter(|id| e.healthy(**id)).count();
            e.panic = healthy * 100 < threshold * ids.len();
        }
        e
    }
}

/// What selection may choose among one cluster's endpoints, for one pick.
pub struct Eligibility<'a> {
    states: &'a EndpointStates,
    /// The prober's results, when the cluster has health checks.
    active: Option<&'a ActiveHealth>,
    /// The cluster has outlier detection (ejections instead of the mark).
    outlier: bool,
    /// Too few healthy endpoints: health and ejections are ignored.
    pub panic: bool,
    /// When something is ejected on this shard: now.
    now: Option<Instant>,
}

impl Eligibility<'_> {
    /// Healthy by active checks (or not checked) and not ejected.
    fn healthy(&self, id: EndpointId) -> bool {
        self.active.is_none_or(|a| a.get(id.slot()) != Active::Unhealthy)
            && !(self.outlier && self.states.is_ejected(id.slot(), self.now))
    }

    /// Whether every endpoint is usable without asking one by one: no
    /// passive mark that applies, no failing active check to consult, no
    /// ejection (or panic mode, which ignores both).
    #[inline]
    pub fn none_excluded(&self) -> bool {
        (self.outlier || self.states.marked.get() == 0)
            && (self.panic || (self.active.is_none() && (!self.outlier || self.now.is_none())))
    }

    /// Whether selection may choose the endpoint.
    #[inline]
    pub fn usable(&self, id: EndpointId) -> bool {
        if !self.outlier && !self.states.usable(id) {
            return false;
        }
        self.panic || self.healthy(id)
    }

    /// Why no endpoint of `ids` was usable, when health checks or
    /// ejections are the reason (`None`: the passive marks are).
    pub fn unhealthy_reason(&self, name: &str, ids: &[EndpointId]) -> Option<String> {
        if self.panic {
            return None;
        }
        let failing = self.active.map_or(0, |a| ids.iter().filter(|id| a.get(id.slot()) == Active::Unhealthy).count());
        let ejected = match self.outlier {
            true => ids.iter().filter(|id| self.states.is_ejected(id.slot(), self.now)).count(),
            false => 0,
        };
        if failing == 0 && ejected == 0 {
            return None;
        }
        Some(format!(
            "no healthy endpoint in cluster {name:?}: {failing} of {} failing active health checks, {ejected} \
             ejected by outlier detection",
            ids.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::shard::generation::Generation;
    use crate::shard::identity::Identities;

    fn generation(cluster_lines: &str) -> Generation {
        let toml = format!(
            "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n[[clusters]]\n\
             name = \"c\"\nendpoints = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\", \"127.0.0.1:4\"]\n{cluster_lines}"
        );
        let config = Arc::new(Config::parse(&toml, "t.toml").unwrap());
        Generation::build(1, config, &mut Identities::default(), None).unwrap().0
    }

    #[test]
    fn ejections_stop_at_the_cap_and_at_least_one_is_allowed() {
        let g = generation("[clusters.outlier]\nconsecutive_5xx = 1\nmax_ejection_percent = 10\n");
        let (cluster, ids) = (&g.config.clusters[0], &g.endpoints[0]);
        let gauge = Arc::new(EjectionGauge::default());
        let states = EndpointStates::new(gauge.clone());
        let five = Observed::Status5xx { gateway: false };
        states.observe(cluster, ids, 0, five);
        states.observe(cluster, ids, 1, five);
        let e = states.eligibility(cluster, &g.health, ids);
        let usable: Vec<bool> = ids.iter().map(|id| e.usable(*id)).collect();
        assert_eq!(usable, [false, true, true, true], "10 % of 4 rounds to 0: one may still go, not two");
        assert_eq!(gauge.ejections(), 1);
        assert!(!e.panic, "3 of 4 healthy");
    }

    #[test]
    fn panic_below_the_threshold_and_the_reason_when_disabled() {
        for (threshold, panic) in [(50, true), (0, false)] {
            let g = generation(&format!("healthy_panic_threshold = {threshold}\n[clusters.health_check]\n"));
            let (cluster, ids) = (&g.config.clusters[0], &g.endpoints[0]);
            let states = EndpointStates::default();
            for id in &ids[..3] {
                g.health.set(id.slot(), Active::Unhealthy);
            }
            let e = states.eligibility(cluster, &g.health, ids);
            assert_eq!(e.panic, panic, "1 of 4 healthy, threshold {threshold}");
            let usable = ids.iter().filter(|id| e.usable(**id)).count();
            assert_eq!(usable, if panic { 4 } else { 1 });
            g.health.set(ids[3].slot(), Active::Unhealthy);
            let e = states.eligibility(cluster, &g.health, ids);
            let reason = e.unhealthy_reason("c", ids);
            match panic {
                true => assert!(reason.is_none() && ids.iter().all(|id| e.usable(*id))),
                false => assert_eq!(
                    reason.as_deref(),
                    Some("no healthy endpoint in cluster \"c\": 4 of 4 failing active health checks, 0 ejected by outlier detection")
                ),
            }
        }
    }

    #[test]
    fn a_cluster_without_health_settings_sees_only_the_connect_mark() {
        let g = generation("");
        let (cluster, ids) = (&g.config.clusters[0], &g.endpoints[0]);
        let states = EndpointStates::default();
        // Ignored: the cluster has no checks.
        g.health.set(ids[0].slot(), Active::Unhealthy);
        states.connect_failed(ids[1]);
        let e = states.eligibility(cluster, &g.health, ids);
        let usable: Vec<bool> = ids.iter().map(|id| e.usable(*id)).collect();
        assert_eq!(usable, [true, false, true, true]);
    }
}
