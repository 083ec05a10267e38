//! shardgate-load: the load generator of the shardgate benchmarks.
//!
//! main parses the command line, starts one worker thread per `--threads`
//! (each its own monoio runtime, `worker.rs`), prints progress each second,
//! then merges the workers' stats and prints the report. It is bounded: the
//! workers stop by `Timeline::hard_stop`, and a watchdog here exits the
//! process if one somehow does not.
//!
//! Files: `cli` (flags -> Plan), `target` (URL), `request` (wire bytes),
//! `client` (one connection), `tls` (https: client config, handshake),
//! `response` (sans-io framing), `schedule` (open loop, timeline),
//! `outcome` (error kinds), `stats` (histogram, counters, merge),
//! `progress` (stderr line), `report` (text / JSON).

#![forbid(unsafe_code)]

mod cli;
mod client;
mod outcome;
mod progress;
mod report;
mod request;
mod response;
mod schedule;
mod stats;
mod target;
mod tls;
mod worker;

use clap::Parser;
use cli::{Args, Plan};
use progress::ThreadProgress;
use schedule::Timeline;
use stats::Stats;
use std::process::ExitCode;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};
use worker::Start;

/// How often main checks whether the workers are done.
const POLL: Duration = Duration::from_millis(50);
/// Grace past the hard stop before the watchdog gives up on a worker.
const WATCHDOG_SLACK: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let command = command_line();
    let args = Args::parse();
    let plan = match Plan::from_args(args, command) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("shardgate-load: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = check_cpus(&plan) {
        eprintln!("shardgate-load: {e}");
        return ExitCode::from(2);
    }
    match run(Arc::new(plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardgate-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(plan: Arc<Plan>) -> Result<(), String> {
    let progress: Arc<[ThreadProgress]> = (0..plan.threads).map(|_| ThreadProgress::default()).collect();
    let start = Arc::new(Start { barrier: Barrier::new(plan.threads + 1), at: OnceLock::new() });

    let mut handles = Vec::with_capacity(plan.threads);
    for thread in 0..plan.threads {
        let (plan, start, progress) = (plan.clone(), start.clone(), progress.clone());
        let handle = std::thread::Builder::new()
            .name(format!("load-{thread}"))
            .spawn(move || worker::run(plan, thread, start, progress))
            .map_err(|e| format!("cannot spawn thread: {e}"))?;
        handles.push(handle);
    }

    // All runtimes built: start the clock for everyone at once.
    start.barrier.wait();
    let begin = Instant::now();
    let _ = start.at.set(begin);
    start.barrier.wait();
    let timeline = Timeline::new(begin, plan.warmup, plan.duration, plan.timeout);

    watch(&handles, &progress, &timeline)?;

    let mut total = Stats::new();
    for h in handles {
        let stats = h.join().map_err(|_| "a worker thread panicked".to_string())??;
        total.merge(&stats);
    }
    let summary = report::Summary::new(&plan, &total);
    if plan.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}

/// Print a progress line each second until the workers finish; give up if
/// they outlive the hard stop by `WATCHDOG_SLACK`.
fn watch(
    handles: &[std::thread::JoinHandle<Result<Stats, String>>],
    progress: &[ThreadProgress],
    timeline: &Timeline,
) -> Result<(), String> {
    let mut prev = progress::snapshot(progress);
    let mut prev_at = timeline.start;
    let mut next_tick = timeline.start + Duration::from_secs(1);
    while !handles.iter().all(|h| h.is_finished()) {
        let now = Instant::now();
        if now > timeline.hard_stop + WATCHDOG_SLACK {
            // Workers are bounded by design; this is the belt to those
            // braces, so a wedged run cannot hang a benchmark script.
            return Err("workers did not stop after the hard deadline; giving up".into());
        }
        if now >= next_tick {
            let snap = progress::snapshot(progress);
            eprintln!(
                "{}",
                progress::line(
                    now - timeline.start,
                    // Label the interval by where it began: the line
                    // after warmup ends still reports warmup traffic.
                    prev_at < timeline.measure_from,
                    prev,
                    snap,
                    now - prev_at
                )
            );
            (prev, prev_at) = (snap, now);
            next_tick += Duration::from_secs(1);
        }
        std::thread::sleep(POLL.min(next_tick.saturating_duration_since(now)));
    }
    Ok(())
}

/// Refuse CPUs this process may not run on, before any thread starts.
fn check_cpus(plan: &Plan) -> Result<(), String> {
    let Some(cpus) = &plan.cpus else {
        return Ok(());
    };
    let allowed: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    match cpus.iter().find(|c| !allowed.contains(c)) {
        Some(c) => Err(format!("--cpus: CPU {c} is not available (allowed: {allowed:?})")),
        None => Ok(()),
    }
}

/// The command line as typed, quoted for a POSIX shell, for the report.
fn command_line() -> String {
    let quote = |a: String| {
        let plain = a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
        if plain && !a.is_empty() {
            a
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    let mut args = std::env::args();
    let prog = args
        .next()
        .map(|p| std::path::Path::new(&p).file_name().map_or(p.clone(), |f| f.to_string_lossy().into_owned()));
    prog.into_iter().chain(args.map(quote)).collect::<Vec<_>>().join(" ")
}
