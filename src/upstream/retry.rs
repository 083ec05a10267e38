//! When a failed try is sent again.
//!
//! Rule (pingora's `ReusedOnly`, as narrow as nginx's): a try that failed
//! on a REUSED pooled connection before a single response byte arrived is
//! sent once more, on a fresh connection, if the whole request is still in
//! hand (its body was not streamed) and either the method is idempotent or
//! the write itself failed (so the upstream cannot have processed it). A
//! pooled connection the upstream closed while it sat idle is caught before
//! it is used (`UpstreamStream::is_reusable`); what remains is the upstream
//! closing it in the instant between that check and the request's arrival,
//! the same window nginx has.
//!
//! A try that could not connect at all sent nothing: the pipeline gives it
//! to the next eligible endpoint whatever the method (`pipeline::proxy`,
//! `balance::Tried`). The load-balancing issue extends these rules (retry
//! conditions per route, budgets); they are stated here only.

use crate::error::Error;
use crate::http1::parse::Method;

/// How a try ended without a response.
#[derive(Debug)]
pub enum TryFailure {
    /// Writing the request failed: the upstream has not processed it.
    WriteFailed(Error),
    /// The connection ended before any response byte.
    NothingReceived(Error),
}

impl TryFailure {
    pub fn into_error(self) -> Error {
        match self {
            TryFailure::WriteFailed(e) | TryFailure::NothingReceived(e) => e,
        }
    }
}

/// One try of a request at an upstream.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// 1 for the first try.
    pub number: u32,
}

impl Attempt {
    pub fn first() -> Attempt {
        Attempt { number: 1 }
    }

    pub fn next(self) -> Attempt {
        Attempt { number: self.number + 1 }
    }

    /// A retry always goes to a fresh connection.
    pub fn may_use_pool(&self) -> bool {
        self.number == 1
    }

    /// Whether `failure`, on a connection that was `reused`, is tried again.
    pub fn may_retry(&self, failure: &TryFailure, reused: bool, replayable: bool, method: Method) -> bool {
        let safe = match failure {
            TryFailure::WriteFailed(_) => true,
            TryFailure::NothingReceived(_) => method.is_idempotent(),
        };
        self.number == 1 && reused && replayable && safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn nothing() -> TryFailure {
        TryFailure::NothingReceived(Error::new(ErrorKind::UpstreamClosed, "x"))
    }

    fn write() -> TryFailure {
        TryFailure::WriteFailed(Error::new(ErrorKind::UpstreamClosed, "x"))
    }

    #[test]
    fn only_first_tries_on_reused_connections_with_the_request_in_hand_are_retried() {
        let first = Attempt::first();
        assert!(first.may_retry(&nothing(), true, true, Method::Get));
        assert!(!first.may_retry(&nothing(), true, true, Method::Post), "POST may have been processed");
        assert!(first.may_retry(&write(), true, true, Method::Post), "the write failed: not processed");
        assert!(!first.may_retry(&nothing(), false, true, Method::Get), "a fresh connection failing is real");
        assert!(!first.may_retry(&write(), true, false, Method::Post), "a streamed body cannot be sent again");
        assert!(!first.next().may_retry(&nothing(), true, true, Method::Get), "once");
    }
}
