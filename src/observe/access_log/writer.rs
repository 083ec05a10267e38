//! The access log's one writer thread: the only place log bytes meet a
//! file descriptor, so a slow disk, a full disk or a pipe nobody reads
//! stalls this thread and never a shard.
//!
//! Shards hand it whole buffers of lines over a bounded channel
//! ([`Sink::offer`] never waits: a full channel gives the buffer back and
//! the shard counts its lines as dropped). The thread opens the target
//! itself (a FIFO without a reader is opened non-blocking, so even the
//! open cannot hang it), appends each buffer, and on failure (directory
//! gone, permission, disk full, reader gone) counts the lines lost and
//! reports them in the process log at most once per [`REPORT_INTERVAL`],
//! retrying the open at most once per [`RETRY_INTERVAL`].
//!
//! SIGUSR1 ([`reopen`]) closes and reopens the file after log rotation
//! has renamed it; a reload that names another target ([`retarget`])
//! switches to it the same way.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::access_log::LogTarget;

/// Buffers queued for the writer thread (each up to `FLUSH_BYTES` plus
/// one line, ~1 MiB at most): enough to ride out a short stall of the
/// disk, small enough that a target that stays stuck costs bounded memory.
pub const QUEUE_BUFFERS: usize = 16;
/// A failing target is reported in the process log at most this often.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// A target that could not be opened is tried again at most this often.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How often the thread looks at the reopen and stop flags when idle.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// A buffer of whole lines from one shard.
pub struct Batch {
    pub bytes: Vec<u8>,
    pub lines: u64,
}

/// A shard's end of the channel.
#[derive(Clone)]
pub struct Sink {
    tx: SyncSender<Batch>,
}

impl Sink {
    /// Queues `batch` without waiting; gives it back when the queue is
    /// full (the writer is behind) or the writer is gone.
    pub fn offer(&self, batch: Batch) -> Result<(), Batch> {
        self.tx.try_send(batch).map_err(|e| match e {
            TrySendError::Full(b) | TrySendError::Disconnected(b) => b,
        })
    }
}

/// The process's writer: one per process, like stdout.
struct Writer {
    sink: Sink,
    control: Arc<Control>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the main thread and the signal thread tell the writer thread.
struct Control {
    reopen: AtomicBool,
    stop: AtomicBool,
    /// A target to switch to (a reload changed it).
    next_target: Mutex<Option<LogTarget>>,
    /// Lines that reached the writer but could not be written.
    failed_lines: AtomicU64,
    written_lines: AtomicU64,
}

static WRITER: OnceLock<Writer> = OnceLock::new();

/// Starts the writer thread for `target` (the first call), or points the
/// running one at `target` (later calls: a reload).
pub fn start_or_retarget(target: &LogTarget) {
    let mut started = false;
    let writer = WRITER.get_or_init(|| {
        started = true;
        spawn(target.clone())
    });
    if !started {
        retarget(writer, target);
    }
}

fn retarget(writer: &Writer, target: &LogTarget) {
    *writer.control.next_target.lock().unwrap_or_else(|e| e.into_inner()) = Some(target.clone());
}

fn spawn(target: LogTarget) -> Writer {
    let (tx, rx) = sync_channel(QUEUE_BUFFERS);
    let control = Arc::new(Control {
        reopen: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        next_target: Mutex::new(None),
        failed_lines: AtomicU64::new(0),
        written_lines: AtomicU64::new(0),
    });
    let thread_control = control.clone();
    let thread = std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || Output::new(target, thread_control).run(rx))
        .map_err(|e| tracing::error!(error = %e, "access log: cannot start the writer thread; lines are dropped"))
        .ok();
    Writer { sink: Sink { tx }, control, thread: Mutex::new(thread) }
}

/// The shards' way in, once the writer runs.
pub fn sink() -> Option<Sink> {
    WRITER.get().map(|w| w.sink.clone())
}

/// SIGUSR1: close and reopen the file (after rotation renamed it).
pub fn reopen() {
    if let Some(w) = WRITER.get() {
        w.control.reopen.store(true, Ordering::Relaxed);
    }
}

/// Lines written, and lines that reached the writer but were lost.
pub fn totals() -> (u64, u64) {
    WRITER.get().map_or((0, 0), |w| {
        (w.control.written_lines.load(Ordering::Relaxed), w.control.failed_lines.load(Ordering::Relaxed))
    })
}

/// At exit, after the shards handed over their last lines: writes what is
/// queued and stops the thread, waiting at most `within` (a target that
/// blocks, such as a pipe nobody reads, must not hold the exit).
pub fn finish(within: Duration) {
    let Some(w) = WRITER.get() else { return };
    w.control.stop.store(true, Ordering::Relaxed);
    let Some(thread) = w.thread.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
    let deadline = Instant::now() + within;
    while !thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if thread.is_finished() {
        let _ = thread.join();
    } else {
        tracing::warn!("access log: the writer is still blocked at exit; queued lines are lost");
    }
}

/// The writer thread's state.
struct Output {
    target: LogTarget,
    control: Arc<Control>,
    file: Option<Box<dyn Write + Send>>,
    last_open_attempt: Option<Instant>,
    /// Lines lost since the last report, and the first error among them.
    unreported: u64,
    error: Option<String>,
    last_report: Option<Instant>,
}

impl Output {
    fn new(target: LogTarget, control: Arc<Control>) -> Output {
        Output { target, control, file: None, last_open_attempt: None, unreported: 0, error: None, last_report: None }
    }

    fn run(mut self, rx: Receiver<Batch>) {
        self.open();
        loop {
            match rx.recv_timeout(IDLE_WAKE) {
                Ok(batch) => self.write(batch),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.take_control();
            if self.control.stop.load(Ordering::Relaxed) {
                while let Ok(batch) = rx.try_recv() {
                    self.write(batch);
                }
                break;
            }
            self.report_due();
        }
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
        self.report(true);
    }

    /// Reopen or switch target when asked.
    fn take_control(&mut self) {
        let next = self.control.next_target.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(next) = next {
            if next != self.target {
                tracing::info!(target = ?next, "access log: switching target");
                self.target = next;
                self.file = None;
                self.open();
            }
        }
        if self.control.reopen.swap(false, Ordering::Relaxed) {
            tracing::info!(target = ?self.target, "access log: reopening");
            self.file = None;
            self.open();
        }
    }

    fn open(&mut self) {
        self.last_open_attempt = Some(Instant::now());
        match open_target(&self.target) {
            Ok(f) => self.file = Some(f),
            Err(e) => self.failed(0, format!("cannot open {}: {e}", describe(&self.target))),
        }
    }

    fn write(&mut self, batch: Batch) {
        if self.file.is_none() && self.last_open_attempt.is_none_or(|t| t.elapsed() >= RETRY_INTERVAL) {
            self.open();
        }
        let Some(file) = &mut self.file else {
            self.failed(batch.lines, String::new());
            return;
        };
        match file.write_all(&batch.bytes) {
            Ok(()) => {
                self.control.written_lines.fetch_add(batch.lines, Ordering::Relaxed);
            }
            Err(e) => {
                // Reopen on the next batch: the file may be back (space
                // freed, directory recreated).
                self.file = None;
                self.last_open_attempt = Some(Instant::now());
                self.failed(batch.lines, format!("cannot write {}: {e}", describe(&self.target)));
            }
        }
    }

    /// Counts lost lines; the first error since the last report is kept.
    fn failed(&mut self, lines: u64, error: String) {
        self.control.failed_lines.fetch_add(lines, Ordering::Relaxed);
        self.unreported += lines;
        if self.error.is_none() && !error.is_empty() {
            self.error = Some(error);
        }
        self.report_due();
    }

    fn report_due(&mut self) {
        self.report(false);
    }

    /// One process log line per interval while lines are lost.
    fn report(&mut self, last: bool) {
        if self.error.is_none() && self.unreported == 0 {
            return;
        }
        if !last && self.last_report.is_some_and(|t| t.elapsed() < REPORT_INTERVAL) {
            return;
        }
        let error = self.error.take().unwrap_or_else(|| format!("{} not open", describe(&self.target)));
        tracing::error!(lines_lost = self.unreported, "access log: {error}");
        self.unreported = 0;
        self.last_report = Some(Instant::now());
    }
}

fn describe(target: &LogTarget) -> String {
    match target {
        LogTarget::Stdout => "stdout".to_owned(),
        LogTarget::File(p) => p.display().to_string(),
    }
}

/// Opens `target` for appending. Non-blocking open, so a FIFO without a
/// reader fails (ENXIO) instead of hanging; then blocking again, so a
/// full pipe or a slow disk makes this thread wait, not lose lines.
fn open_target(target: &LogTarget) -> io::Result<Box<dyn Write + Send>> {
    match target {
        LogTarget::Stdout => Ok(Box::new(io::stdout())),
        LogTarget::File(path) => {
            let file: File = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(path)?;
            set_blocking(&file)?;
            Ok(Box::new(file))
        }
    }
}

fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function's caller owns and keeps
    // open; F_GETFL/F_SETFL touch only its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(path: &std::path::Path) -> Output {
        Output::new(LogTarget::File(path.to_path_buf()), Arc::new(test_control()))
    }

    fn test_control() -> Control {
        Control {
            reopen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            next_target: Mutex::new(None),
            failed_lines: AtomicU64::new(0),
            written_lines: AtomicU64::new(0),
        }
    }

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("shardgate-alog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn batch(text: &str) -> Batch {
        Batch { bytes: text.as_bytes().to_vec(), lines: text.matches('\n').count() as u64 }
    }

    #[test]
    fn appends_and_reopens_after_rotation() {
        let dir = tempdir("rotate");
        let path = dir.join("access.log");
        std::fs::write(&path, "old\n").unwrap();
        let mut out = output(&path);
        out.open();
        out.write(batch("a\nb\n"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\na\nb\n");
        // logrotate renames, then signals: lines go to a new file.
        std::fs::rename(&path, dir.join("access.log.1")).unwrap();
        out.write(batch("c\n"));
        out.control.reopen.store(true, Ordering::Relaxed);
        out.take_control();
        out.write(batch("d\n"));
        assert_eq!(std::fs::read_to_string(dir.join("access.log.1")).unwrap(), "old\na\nb\nc\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "d\n");
        assert_eq!(out.control.written_lines.load(Ordering::Relaxed), 4);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_directory_loses_lines_counted_then_recovers() {
        let dir = tempdir("gone");
        let path = dir.join("sub").join("access.log");
        let mut out = output(&path);
        out.open();
        assert!(out.file.is_none());
        // Reported at once (the first report of an interval).
        let reported = out.last_report.expect("reported");
        out.write(batch("a\nb\n"));
        assert_eq!(out.control.failed_lines.load(Ordering::Relaxed), 2);
        // Not again within the interval: counted for the next report.
        assert_eq!(out.last_report, Some(reported));
        assert_eq!(out.unreported, 2);
        // The directory comes back: the next batch after the retry
        // interval opens the file again.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        out.last_open_attempt = Some(Instant::now() - RETRY_INTERVAL);
        out.write(batch("c\n"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c\n");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_disk_is_a_write_error_counted() {
        // /dev/full: every write fails with ENOSPC.
        let mut out = Output::new(LogTarget::File("/dev/full".into()), Arc::new(test_control()));
        out.open();
        assert!(out.file.is_some());
        out.write(batch("a\nb\nc\n"));
        assert_eq!(out.control.failed_lines.load(Ordering::Relaxed), 3);
        assert!(out.file.is_none());
    }

    #[test]
    fn a_fifo_without_reader_does_not_block_the_open() {
        let dir = tempdir("fifo");
        let path = dir.join("pipe");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = Instant::now();
        let e = open_target(&LogTarget::File(path.clone())).err().expect("no reader: ENXIO");
        assert_eq!(e.raw_os_error(), Some(libc::ENXIO));
        assert!(started.elapsed() < Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_queue_gives_the_batch_back() {
        let (tx, _rx) = sync_channel(1);
        let sink = Sink { tx };
        assert!(sink.offer(batch("a\n")).is_ok());
        let back = sink.offer(batch("b\nc\n")).expect_err("full");
        assert_eq!(back.lines, 2);
    }
}
