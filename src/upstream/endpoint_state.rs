//! A shard's own view of its endpoints, one entry per stable endpoint slot
//! (`EndpointId::slot`), so a reload that keeps an endpoint keeps what the
//! shard learned about it: the passive mark (below), requests in flight
//! (`in_flight.rs`) and slow-start ramps (`balance/slow_start.rs`). The
//! load-balancing work adds health and ejection here.
//!
//! Passive mark (nginx's defaults, `max_fails=1 fail_timeout=10s`): an
//! endpoint that refused a connection or did not accept one within the
//! connect timeout is passed over by selection for `PASSIVE_FAIL_TIMEOUT`,
//! then tried again. Shard-local, like everything a shard decides on.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use super::balance::slow_start::Ramps;
use super::in_flight::InFlight;
use super::EndpointId;

/// How long an endpoint that failed to connect is passed over.
pub const PASSIVE_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct EndpointStates {
    /// Per slot: marked down until then.
    down_until: RefCell<Vec<Option<Instant>>>,
    /// How many slots are marked: while none is, selection reads no clock.
    marked: Cell<usize>,
    /// Tries in flight per slot.
    pub in_flight: InFlight,
    /// Slow-start ramps per slot: an endpoint whose mark is lifted ramps.
    pub ramps: Ramps,
}

impl EndpointStates {
    /// Whether selection may choose the endpoint (a mark past its time is
    /// lifted here).
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
}
