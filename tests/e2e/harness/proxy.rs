//! Starts the real `shardgate` binary and learns where it listens.
//!
//! Listen addresses use port 0; once every shard listens, the process logs
//! one stderr line per listener containing `listening listener=NAME
//! addr=IP:PORT`. The harness reads stderr until it has seen every expected
//! listener (10 s deadline), then keeps draining it on a thread and keeps the
//! lines, which are printed when a test fails.
//!
//! Every start passes `--no-pin` (tests run many proxies on few cores) and
//! `--io-driver $SHARDGATE_TEST_IO_DRIVER` when that variable is set, so the
//! suite can run once per I/O driver. The process is killed (through its own
//! `Child` handle, nothing else) when the `Proxy` is dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::{Client, Response};
use super::config::ProxyConfig;
use super::tempdir::TempDir;

/// How long a process gets to report all its listeners.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// A `Command` for the binary under test.
pub fn shardgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shardgate"));
    // Plain log lines (no ANSI colours) and the `listening` lines at info.
    command.env("NO_COLOR", "1");
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "info");
    }
    command
}

/// How long a one-shot command (`check`, a `run` that must fail) may take.
const ONE_SHOT_DEADLINE: Duration = Duration::from_secs(20);

/// Runs the binary to completion (for `check` and other one-shot
/// commands); kills it and panics if it is still running after 20 s.
pub fn shardgate_output(args: &[&str]) -> Output {
    let mut command = shardgate();
    command.args(args);
    run_to_completion(command, b"", ONE_SHOT_DEADLINE)
}

/// Runs `command` with `stdin` as its input and collects its output;
/// kills it and panics if it is still running after `deadline`.
pub fn run_to_completion(mut command: Command, stdin: &[u8], deadline: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    let _ = input.write_all(stdin);
    drop(input);
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = collect(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = collect(Box::new(child.stderr.take().expect("piped stderr")));
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() }
}

/// `--no-pin`, and `--io-driver X` when `SHARDGATE_TEST_IO_DRIVER=X`.
pub fn runtime_args() -> Vec<String> {
    let mut args = vec!["--no-pin".to_string()];
    if let Ok(driver) = std::env::var("SHARDGATE_TEST_IO_DRIVER") {
        if !driver.is_empty() {
            args.push("--io-driver".into());
            args.push(driver);
        }
    }
    args
}

/// Per-shard counters from the admin `/stats` endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardStats {
    pub shard: u64,
    pub accepted: u64,
    pub requests: u64,
    pub active: u64,
    pub idle_without_buffer: u64,
}

/// A running shardgate process.
pub struct Proxy {
    child: Child,
    exited: Option<ExitStatus>,
    listeners: HashMap<String, SocketAddr>,
    /// The listener `addr()` returns.
    primary: String,
    log: Arc<Mutex<Vec<String>>>,
    command_line: String,
    /// The config file of `shardgate run -c FILE` (rewritten by reload tests).
    config_file: Option<std::path::PathBuf>,
    _dir: Option<TempDir>,
}

impl Proxy {
    /// `shardgate run -c FILE` on `config`, plus `extra` arguments.
    pub fn run(config: &ProxyConfig, extra: &[&str]) -> Proxy {
        Proxy::run_with_env(config, extra, &[])
    }

    /// `run`, with environment variables set (`Some`) or removed (`None`)
    /// for the process, e.g. the service manager's `NOTIFY_SOCKET`.
    pub fn run_with_env(config: &ProxyConfig, extra: &[&str], env: &[(&str, Option<&str>)]) -> Proxy {
        let dir = TempDir::new();
        let file = dir.write("shardgate.toml", &config.to_toml());
        let mut args = vec!["run".to_string(), "-c".to_string(), file.display().to_string()];
        args.extend(runtime_args());
        args.extend(extra.iter().map(|a| a.to_string()));
        Proxy::spawn_with_env(&args, env, &config.listener_names(), "main", Some(dir))
            .unwrap_or_else(|e| panic!("{e}\n--- config ---\n{}", config.to_toml()))
    }

    /// `shardgate run -c FILE` on config text written by the test; waits
    /// for the listeners `names` (`main` is `addr()`).
    pub fn run_toml(text: &str, names: &[&str]) -> Proxy {
        let dir = TempDir::new();
        let file = dir.write("shardgate.toml", text);
        let mut args = vec!["run".to_string(), "-c".to_string(), file.display().to_string()];
        args.extend(runtime_args());
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut proxy =
            Proxy::spawn(&args, &names, "main", Some(dir)).unwrap_or_else(|e| panic!("{e}\n--- config ---\n{text}"));
        proxy.config_file = Some(file);
        proxy
    }

    /// Replaces the config file's text (for a reload).
    pub fn write_config(&self, text: &str) {
        let file = self.config_file.as_ref().expect("a proxy started from a config file");
        std::fs::write(file, text).expect("rewrite the config file");
    }

    /// `POST /reload` on the admin listener.
    pub fn reload(&self) -> Response {
        Client::connect(self.admin()).request(b"POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    }

    /// `shardgate proxy --listen 127.0.0.1:0 --upstream A,B --shards 1`, plus `extra`.
    pub fn proxy_command(upstreams: &[SocketAddr], extra: &[&str]) -> Proxy {
        let upstreams: Vec<String> = upstreams.iter().map(|a| a.to_string()).collect();
        let mut args = vec![
            "proxy".to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--upstream".into(),
            upstreams.join(","),
            "--shards".into(),
            "1".into(),
        ];
        args.extend(runtime_args());
        args.extend(extra.iter().map(|a| a.to_string()));
        Proxy::spawn(&args, &["proxy".to_string()], "proxy", None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `shardgate echo --listen 127.0.0.1:0 --shards 1`: the built-in
    /// upstream (`--io-driver` as for the proxy; echo has no pinning).
    pub fn echo() -> Proxy {
        Proxy::echo_with(&[])
    }

    /// `echo` with extra arguments (`--delay-ms 200`).
    pub fn echo_with(extra: &[&str]) -> Proxy {
        let mut args: Vec<String> =
            ["echo", "--listen", "127.0.0.1:0", "--shards", "1"].iter().map(|a| a.to_string()).collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(runtime_args().into_iter().filter(|a| a != "--no-pin"));
        Proxy::spawn(&args, &["echo".to_string()], "echo", None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the binary with `args` and waits until every listener in
    /// `expected` has been reported.
    pub fn spawn(args: &[String], expected: &[String], primary: &str, dir: Option<TempDir>) -> Result<Proxy, String> {
        Proxy::spawn_with_env(args, &[], expected, primary, dir)
    }

    /// `spawn` with environment variables set or removed.
    pub fn spawn_with_env(
        args: &[String],
        env: &[(&str, Option<&str>)],
        expected: &[String],
        primary: &str,
        dir: Option<TempDir>,
    ) -> Result<Proxy, String> {
        let command_line = format!("shardgate {}", args.join(" "));
        let mut command = shardgate();
        for (name, value) in env {
            match value {
                Some(v) => command.env(name, v),
                None => command.env_remove(name),
            };
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("could not start `{command_line}`: {e}"))?;

        let log = Arc::new(Mutex::new(Vec::new()));
        let (lines_tx, lines_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        drain_lines(stderr, "", log.clone(), Some(lines_tx));
        let stdout = child.stdout.take().expect("piped stdout");
        drain_lines(stdout, "[stdout] ", log.clone(), None);

        let mut proxy = Proxy {
            child,
            exited: None,
            listeners: HashMap::new(),
            primary: primary.to_string(),
            log,
            command_line,
            config_file: None,
            _dir: dir,
        };

        let deadline = Instant::now() + STARTUP_DEADLINE;
        while !expected.iter().all(|name| proxy.listeners.contains_key(name)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((name, addr)) = parse_listening(&line) {
                        proxy.listeners.entry(name).or_insert(addr);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(proxy.startup_failure(&format!(
                        "did not report listeners {expected:?} within {STARTUP_DEADLINE:?}"
                    )));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = proxy.wait_exit(Duration::from_secs(2));
                    return Err(proxy.startup_failure(&format!(
                        "closed stderr (exit status {status:?}) before reporting listeners {expected:?}"
                    )));
                }
            }
        }
        Ok(proxy)
    }

    fn startup_failure(&mut self, what: &str) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Give the drain threads a moment to collect the last lines.
        std::thread::sleep(Duration::from_millis(50));
        format!(
            "`{}` {what}; seen listeners {:?}\n--- shardgate output ---\n{}",
            self.command_line,
            self.listeners,
            self.log()
        )
    }

    /// The address of the primary listener (`main`, `proxy` or `echo`).
    pub fn addr(&self) -> SocketAddr {
        self.listener(&self.primary)
    }

    pub fn listener(&self, name: &str) -> SocketAddr {
        *self.listeners.get(name).unwrap_or_else(|| panic!("no listener {name:?}; have {:?}", self.listeners))
    }

    pub fn admin(&self) -> SocketAddr {
        self.listener("admin")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }

    /// Sends a signal by name (`TERM`, `INT`) with `kill(1)`, to this
    /// process only.
    pub fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args([format!("-{name}"), self.pid().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits up to `within` for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Per-shard counters from `GET /stats` on the admin listener.
    pub fn stats(&self) -> Vec<ShardStats> {
        let json = self.stats_json();
        parse_stats(&json).unwrap_or_else(|| panic!("unexpected /stats body: {json}"))
    }

    /// The body of `GET /stats` on the admin listener.
    pub fn stats_json(&self) -> String {
        let response = Client::connect(self.admin())
            .request(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        assert_eq!(response.status, 200, "GET /stats: {}", response.text());
        response.text()
    }

    /// Resident memory of the process right now, in bytes.
    pub fn rss(&self) -> u64 {
        super::proc_status::vm_rss(self.pid())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            std::thread::sleep(Duration::from_millis(50));
            eprintln!("--- output of `{}` ---\n{}\n--- end ---", self.command_line, self.log());
        }
    }
}

/// Reads `pipe` line by line on a thread, keeping every line in `log` and
/// forwarding it to `tx` while someone listens.
fn drain_lines(
    pipe: impl Read + Send + 'static,
    prefix: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = strip_ansi(&String::from_utf8_lossy(&raw)).trim_end().to_string();
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{prefix}{line}"));
                    if let Some(tx) = &tx {
                        let _ = tx.send(line);
                    }
                }
            }
        }
    });
}

/// Removes ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// `... listening listener=NAME addr=IP:PORT ...` -> (NAME, addr).
fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    if !line.contains("listening") {
        return None;
    }
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|token| token.strip_prefix(key))
            .map(|v| v.trim_matches(|c| c == '"' || c == ',').to_string())
    };
    let name = field("listener=")?;
    let addr = field("addr=")?.parse().ok()?;
    Some((name, addr))
}

/// `{"shards":[{"shard":0,"accepted":N,"requests":N,"active":N},...]}`.
pub fn parse_stats(json: &str) -> Option<Vec<ShardStats>> {
    shard_objects(json)?
        .into_iter()
        .map(|object| {
            Some(ShardStats {
                shard: json_u64(object, "shard")?,
                accepted: json_u64(object, "accepted")?,
                requests: json_u64(object, "requests")?,
                active: json_u64(object, "active")?,
                idle_without_buffer: json_u64(object, "idle_without_buffer")?,
            })
        })
        .collect()
}

/// The inside of each `{...}` in the `"shards"` array of a `/stats` body;
/// nested objects (`"latency_seconds"`, `"statuses"`) stay inside their
/// shard's (the body has no braces or brackets inside strings).
pub fn shard_objects(json: &str) -> Option<Vec<&str>> {
    let start = json.find("\"shards\"")?;
    let rest = &json[start..];
    let open = rest.find('[')?;
    let mut objects = Vec::new();
    let (mut depth, mut from) = (0usize, 0usize);
    for (i, ch) in rest[open + 1..].char_indices() {
        let at = open + 1 + i;
        match ch {
            '{' => {
                if depth == 0 {
                    from = at + 1;
                }
                depth += 1;
            }
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    objects.push(&rest[from..at]);
                }
            }
            ']' if depth == 0 => return Some(objects),
            _ => {}
        }
    }
    None
}

/// The unsigned integer member `key` of a flat JSON object's inside.
pub fn json_u64(object: &str, key: &str) -> Option<u64> {
    let at = object.find(&format!("\"{key}\""))?;
    let after = object[at + key.len() + 2..].trim_start().strip_prefix(':')?;
    let digits: String = after.trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_parses_listening_lines_and_stats() {
        let line = "2025-01-01T00:00:00Z  INFO shardgate::listener: listening listener=main addr=127.0.0.1:4321";
        assert_eq!(parse_listening(line), Some(("main".to_string(), "127.0.0.1:4321".parse().unwrap())));
        let colored = "\u{1b}[32m INFO\u{1b}[0m listening \u{1b}[3mlistener\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"admin\" \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:9";
        assert_eq!(parse_listening(&strip_ansi(colored)), Some(("admin".to_string(), "127.0.0.1:9".parse().unwrap())));
        let stats = parse_stats(
            r#"{"shards":[{"shard":0,"accepted":3,"requests":5,"active":1,"idle_without_buffer":1}, {"shard": 1, "accepted": 0, "requests": 0, "active": 0, "idle_without_buffer": 0}]}"#,
        )
        .unwrap();
        let nested =
            r#"{"shards":[{"shard":0,"latency_seconds":{"p50":0.1,"count":2},"statuses":{"2xx":2}},{"shard":1}]}"#;
        let objects = shard_objects(nested).unwrap();
        assert_eq!(objects.len(), 2, "nested objects stay inside their shard's");
        assert_eq!((json_u64(objects[0], "count"), json_u64(objects[1], "shard")), (Some(2), Some(1)));
        assert_eq!(
            stats,
            vec![
                ShardStats { shard: 0, accepted: 3, requests: 5, active: 1, idle_without_buffer: 1 },
                ShardStats { shard: 1, accepted: 0, requests: 0, active: 0, idle_without_buffer: 0 },
            ]
        );
    }
}
