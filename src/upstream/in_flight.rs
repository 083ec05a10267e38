//! Requests in flight per endpoint on this shard, by stable slot: what
//! least_request compares, and what `/clusters` and `/metrics` can show.
//!
//! A try counts from the moment it is sent to an endpoint (selection,
//! then connect or pool checkout) until its exchange ends, however it
//! ends: response relayed, upstream error, client gone, request future
//! dropped. The count is held by an [`InFlightGuard`] whose `Drop` gives
//! it back, so no path can leak one.

use std::cell::RefCell;

#[derive(Debug, Default)]
pub struct InFlight {
    counts: RefCell<Vec<u32>>,
}

impl InFlight {
    /// Requests in flight to the endpoint in `slot`.
    #[inline]
    pub fn get(&self, slot: usize) -> u32 {
        self.counts.borrow().get(slot).copied().unwrap_or(0)
    }

    /// A try to the endpoint in `slot` starts; it ends when the guard drops.
    pub fn start(&self, slot: usize) -> InFlightGuard<'_> {
        let mut counts = self.counts.borrow_mut();
        if counts.len() <= slot {
            counts.resize(slot + 1, 0);
        }
        counts[slot] += 1;
        InFlightGuard { table: self, slot }
    }
}

/// One try in flight; dropping it ends the try.
#[derive(Debug)]
pub struct InFlightGuard<'a> {
    table: &'a InFlight,
    slot: usize,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut counts = self.table.counts.borrow_mut();
        counts[self.slot] = counts[self.slot].saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_counts_until_dropped_on_every_path() {
        let table = InFlight::default();
        let a = table.start(3);
        let b = table.start(3);
        assert_eq!((table.get(3), table.get(0), table.get(99)), (2, 0, 0));
        drop(a);
        assert_eq!(table.get(3), 1);
        // An early return with `?` and a panic unwinding both drop it.
        fn fails(table: &InFlight) -> Result<(), ()> {
            let _try = table.start(1);
            Err(())?;
            Ok(())
        }
        assert!(fails(&table).is_err());
        assert_eq!(table.get(1), 0);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _try = table.start(1);
            panic!("exchange failed");
        }));
        assert!(unwound.is_err());
        assert_eq!(table.get(1), 0);
        drop(b);
        assert_eq!(table.get(3), 0);
    }

    #[test]
    fn a_dropped_future_gives_its_count_back() {
        use std::future::Future;
        // A request future dropped mid-exchange (client gone, shard
        // draining) drops its guard with it.
        let table = InFlight::default();
        let future = async {
            let _try = table.start(0);
            std::future::pending::<()>().await;
        };
        let mut future = Box::pin(future);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(future.as_mut().poll(&mut cx).is_pending());
        assert_eq!(table.get(0), 1);
        drop(future);
        assert_eq!(table.get(0), 0);
    }
}
