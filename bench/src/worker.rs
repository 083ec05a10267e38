//! One worker thread: its own monoio runtime, pinned if asked, driving its
//! share of the connections until the timeline ends.
//!
//! Like a shardgate shard, a worker shares nothing on the hot path: its
//! connections record into one `Rc<RefCell<Stats>>`, and only the progress
//! counters (written by this thread alone) are read from outside.

use crate::cli::Plan;
use crate::client::{ClientStream, Connection, ExchangeError, Response};
use crate::outcome::{classify_failure, classify_status};
use crate::progress::ThreadProgress;
use crate::schedule::{latency, wake_at, Schedule, Timeline};
use crate::stats::Stats;
use crate::tls::Handshake;
use monoio::time::{sleep_until, timeout_at};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Instant;

/// io_uring submission queue entries per worker: about two in-flight ops
/// (read + timer/cancel) per connection, within the 32768 known to work.
fn ring_entries(connections: usize) -> u32 {
    (connections * 2).clamp(256, 32768).next_power_of_two() as u32
}

/// io_uring setup flags. COOP_TASKRUN + TASKRUN_FLAG: when a response
/// arrives, the kernel queues the completion work for this thread without
/// interrupting it (no IPI; it runs at our next ring entry, which comes
/// within one event-loop turn). Without them, the *server's* CPU pays for
/// an IPI into this thread on every response it sends (the loopback
/// receive path runs in the sender's context), which inflated an epoll
/// server's CPU per request by ~15-25 % compared with wrk (epoll) as the
/// client: the load generator must not tax the server it measures (with
/// them, about half of that gap is gone; docs/benchmarks.md). Kernels
/// before 5.19 refuse the flags: `build_runtime` then sets the ring up
/// without them.
fn ring_setup() -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    b.setup_coop_taskrun().setup_taskrun_flag();
    b
}

type Runtime = monoio::FusionRuntime<
    monoio::time::TimeDriver<monoio::IoUringDriver>,
    monoio::time::TimeDriver<monoio::LegacyDriver>,
>;

/// io_uring (epoll where refused) runtime with a timer; `flags`: with
/// `ring_setup`'s flags.
fn build_runtime(entries: u32, flags: bool) -> std::io::Result<Runtime> {
    let builder = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().with_entries(entries);
    let builder = if flags { builder.uring_builder(ring_setup()) } else { builder };
    builder.enable_timer().build()
}

/// What every thread needs to start together.
pub struct Start {
    /// Everyone (workers and main) waits here twice: once when all
    /// runtimes are built, once after main has published the start time.
    pub barrier: Barrier,
    pub at: OnceLock<Instant>,
}

/// Build the runtime, wait for the common start, run, return the stats.
pub fn run(
    plan: Arc<Plan>,
    thread: usize,
    start: Arc<Start>,
    progress: Arc<[ThreadProgress]>,
) -> Result<Stats, String> {
    // Pin before building the runtime so its ring memory is allocated on
    // the node of the CPU that will use it.
    let pinned = match plan.cpu_of(thread) {
        Some(cpu) if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) => {
            Err(format!("thread {thread}: cannot pin to CPU {cpu}"))
        }
        _ => Ok(()),
    };
    let conns = plan.connections_of(thread);
    let runtime = pinned.and_then(|()| {
        build_runtime(ring_entries(conns.len()), true)
            .or_else(|_| build_runtime(ring_entries(conns.len()), false))
            .map_err(|e| format!("thread {thread}: cannot build runtime: {e}"))
    });
    // Reach both barriers even on failure, or everyone else would wait
    // forever.
    start.barrier.wait();
    start.barrier.wait();
    let mut runtime = runtime?;
    let begin = *start.at.get().ok_or("start time not published")?;
    let timeline = Timeline::new(begin, plan.warmup, plan.duration, plan.timeout);

    runtime.block_on(async move {
        let stats = Rc::new(RefCell::new(Stats::new()));
        let request = Rc::new(plan.wire.clone());
        let handles: Vec<_> = conns
            .map(|index| {
                let ctx = ConnCtx {
                    plan: plan.clone(),
                    timeline,
                    index,
                    request: request.clone(),
                    stats: stats.clone(),
                    progress: progress.clone(),
                    thread,
                };
                monoio::spawn(drive_connection(ctx))
            })
            .collect();
        for h in handles {
            h.await;
        }
        let stats = stats.borrow().clone();
        Ok(stats)
    })
}

struct ConnCtx {
    plan: Arc<Plan>,
    timeline: Timeline,
    /// Global connection index: fixes this connection's open-loop offset.
    index: usize,
    request: Rc<Vec<u8>>,
    stats: Rc<RefCell<Stats>>,
    progress: Arc<[ThreadProgress]>,
    thread: usize,
}

/// One connection slot: send, wait, record, repeat until the end. Returns by
/// `timeline.hard_stop` at the latest, whatever the server does.
async fn drive_connection(ctx: ConnCtx) {
    let plan = &*ctx.plan;
    let tl = ctx.timeline;
    let mut schedule = plan.rate.map(|rate| Schedule::for_connection(tl.start, rate, plan.connections, ctx.index));
    let mut conn: Option<Connection<ClientStream>> = None;

    loop {
        let now = Instant::now();
        let intended = match &schedule {
            Some(s) => s.next_intended(),
            None => now,
        };
        if intended >= tl.end || now >= tl.end {
            break;
        }
        if let Some(wake) = wake_at(intended, now) {
            sleep_until(monoio::time::Instant::from_std(wake)).await;
        }
        if let Some(s) = &mut schedule {
            s.advance();
        }

        let sent = Instant::now();
        let request_deadline = sent + plan.timeout;
        let deadline = request_deadline.min(tl.hard_stop);
        let mut retried = false;
        let result = timeout_at(
            monoio::time::Instant::from_std(deadline),
            exchange(&mut conn, plan, ctx.request.clone(), &mut retried),
        )
        .await;
        if retried && tl.records(intended) {
            ctx.stats.borrow_mut().retried += 1;
        }
        let done = Instant::now();

        let result = match result {
            Ok(r) => r,
            // The run's hard stop, not the request's timeout, cut it short:
            // neither a success nor (yet) a timeout. Counted whatever its
            // phase: a request stuck since warmup must not vanish from the
            // report just because it was sent early.
            Err(_) if request_deadline > tl.hard_stop => {
                ctx.stats.borrow_mut().unfinished += 1;
                break;
            }
            Err(_) => Err(ExchangeError::Timeout),
        };

        let error = match result {
            Ok((resp, handshake)) => {
                if let Some(h) = &handshake {
                    ctx.stats.borrow_mut().tls.record(h, tl.records(intended));
                }
                if !resp.keep_alive || plan.new_conn {
                    conn = None;
                }
                let ok = classify_status(resp.status, plan.expect_status).is_ok();
                if tl.records(intended) {
                    ctx.stats.borrow_mut().record_response(
                        latency(intended, sent, done),
                        resp.status,
                        resp.bytes_read,
                        ok,
                    );
                }
                !ok
            }
            Err(e) => {
                // Whatever failed, the connection's state is unknown now.
                conn = None;
                if tl.records(intended) {
                    ctx.stats.borrow_mut().record_failure(classify_failure(&e), &e);
                }
                true
            }
        };
        ctx.stats.borrow_mut().exchanges += 1;
        ctx.progress[ctx.thread].add(error);
    }

    if let Some(s) = &schedule {
        ctx.stats.borrow_mut().unsent += s.unsent_in(tl.measure_from, tl.end);
    }
}

/// Connect (and shake hands) if needed, then one request/response; the
/// handshake is returned only with a complete response, so a handshake is
/// counted once, with the request it served. An idempotent request whose
/// reused connection closed before any response byte is sent once more on
/// a new connection, as HTTP clients do (`retried` says so).
async fn exchange(
    conn: &mut Option<Connection<ClientStream>>,
    plan: &Plan,
    request: Rc<Vec<u8>>,
    retried: &mut bool,
) -> Result<(Response, Option<Handshake>), ExchangeError> {
    match exchange_once(conn, plan, request.clone()).await {
        Err(e)
            if plan.request.is_idempotent()
                && conn.as_ref().is_some_and(|c| c.closed_before_response_when_reused(&e)) =>
        {
            *retried = true;
            *conn = None;
            exchange_once(conn, plan, request).await
        }
        other => other,
    }
}

async fn exchange_once(
    conn: &mut Option<Connection<ClientStream>>,
    plan: &Plan,
    request: Rc<Vec<u8>>,
) -> Result<(Response, Option<Handshake>), ExchangeError> {
    let mut handshake = None;
    if conn.is_none() {
        let (opened, h) = Connection::open(plan.addr, plan.tls.as_ref(), plan.request.is_head()).await?;
        *conn = Some(opened);
        handshake = h;
    }
    match conn {
        Some(c) => Ok((c.exchange(request).await?, handshake)),
        None => unreachable!("connection was just opened"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_entries_are_bounded_powers_of_two() {
        assert_eq!(ring_entries(1), 256);
        assert_eq!(ring_entries(200), 512);
        assert_eq!(ring_entries(60_000), 32768);
    }
}
