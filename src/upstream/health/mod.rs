//! Endpoint health: what the select phase (`balance::select`) asks of an
//! endpoint besides "not tried by this request".
//!
//! Three sources, combined per shard in `endpoint_state.rs`:
//! - **Active health checks** (`prober.rs`, `probe.rs`): one prober
//!   thread per process probes every endpoint of every cluster with
//!   `[clusters.health_check]`, so probe traffic does not grow with the
//!   shard count. Each result is stored in the generation's
//!   [`ActiveHealth`] table (one atomic byte per endpoint slot), which
//!   every shard reads with a relaxed load, only for clusters that have
//!   checks: a change is seen by the next request of every shard.
//! - **Passive outlier detection** (`outlier.rs`): each shard counts its
//!   own requests' consecutive 5xx and gateway failures per endpoint and
//!   ejects an endpoint for a growing time (`[clusters.outlier]`). What a
//!   shard ejected is shown to the admin thread through `gauge.rs`.
//! - **The connect-failure mark** (nginx's default, in `endpoint_state.rs`)
//!   for clusters without `[clusters.outlier]`.
//!
//! With fewer healthy endpoints than the cluster's
//! `healthy_panic_threshold`, selection ignores active health and
//! ejections and spreads over all endpoints (Envoy's panic mode).

pub mod gauge;
pub mod outlier;
pub mod probe;
pub mod prober;

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// An endpoint's active health as the prober last judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Active {
    /// Not probed yet (or the cluster has no checks): selected as healthy
    /// (nginx's default; Envoy waits for the first check).
    Unknown = 0,
    Healthy = 1,
    Unhealthy = 2,
}

impl Active {
    fn from_u8(v: u8) -> Active {
        match v {
            1 => Active::Healthy,
            2 => Active::Unhealthy,
            _ => Active::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Active::Unknown => "unknown",
            Active::Healthy => "healthy",
            Active::Unhealthy => "unhealthy",
        }
    }
}

/// Active health per endpoint slot, one per generation (it has a cell for
/// every slot the generation's endpoints use). Written by the prober
/// thread, read by every shard and the admin thread.
#[derive(Debug, Default)]
pub struct ActiveHealth {
    cells: Box<[AtomicU8]>,
}

impl ActiveHealth {
    /// A table for slots `0..slots`, starting from `previous`'s values (a
    /// reload keeps what the prober learned).
    pub fn new(slots: usize, previous: Option<&ActiveHealth>) -> ActiveHealth {
        let cells = (0..slots).map(|s| AtomicU8::new(previous.map_or(0, |p| p.get(s) as u8))).collect();
        ActiveHealth { cells }
    }

    #[inline]
    pub fn get(&self, slot: usize) -> Active {
        self.cells.get(slot).map_or(Active::Unknown, |c| Active::from_u8(c.load(Relaxed)))
    }

    pub fn set(&self, slot: usize, state: Active) {
        if let Some(c) = self.cells.get(slot) {
            c.store(state as u8, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_keeps_previous_values_and_ignores_unknown_slots() {
        let a = ActiveHealth::new(3, None);
        assert_eq!(a.get(1), Active::Unknown);
        a.set(1, Active::Unhealthy);
        a.set(2, Active::Healthy);
        a.set(9, Active::Healthy);
        let b = ActiveHealth::new(5, Some(&a));
        assert_eq!(
            (b.get(1), b.get(2), b.get(4), b.get(9)),
            (Active::Unhealthy, Active::Healthy, Active::Unknown, Active::Unknown)
        );
    }
}
