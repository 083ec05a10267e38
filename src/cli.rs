//! The command line: `run`, `check`, `proxy`, `echo`, `demo`, `version`,
//! and for packagers `completions` and `man` (`crate::manual`).
//!
//! Tuning flags (`--shards`, `--cpus`, `--io-driver`, timeouts, limits)
//! override the config file, field by field, for every listener and
//! cluster, so a bare-metal install can be tuned without editing files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::{units, Cidr, Config, ConfigError, ConfigErrors, IoDriver, ListenerTls};
use crate::shard::reload::ConfigSource;

#[derive(Debug, Parser)]
#[command(name = "shardgate", version, about = "Thread-per-core HTTP/1.1 reverse proxy, API gateway and load balancer")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway from a config file.
    Run {
        /// The TOML config file.
        #[arg(short, long)]
        config: PathBuf,
        #[command(flatten)]
        tuning: Tuning,
        #[command(flatten)]
        upgrade: UpgradeArgs,
    },
    /// Validate a config file and print a summary (like `nginx -t`): exit 0
    /// if valid, else print every error and exit 1.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// A plain reverse proxy without a config file: every path to the
    /// upstreams, round robin.
    Proxy {
        /// Address to listen on, e.g. 0.0.0.0:8080.
        #[arg(long)]
        listen: SocketAddr,
        /// Upstream endpoints, comma separated: 127.0.0.1:9000,127.0.0.1:9001.
        #[arg(long, value_delimiter = ',', required = true)]
        upstream: Vec<SocketAddr>,
        /// Terminate TLS with this PEM certificate chain (leaf first).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        #[command(flatten)]
        tuning: Tuning,
    },
    /// The built-in HTTP/1.1 upstream: echoes the request; `/bytes/N`,
    /// `/delay/MS`, `/status/N`.
    Echo {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// Echo server threads.
        #[arg(long, default_value_t = 1)]
        shards: usize,
        /// io driver: uring, epoll or auto.
        #[arg(long, value_enum, default_value_t = DriverArg::Auto)]
        io_driver: DriverArg,
        /// Delay every answer by this many milliseconds (a slow endpoint).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
        delay_ms: u64,
    },
    /// Start the echo upstream and a proxy in front of it, send a request
    /// through, print it and the curl lines to try; serve until Ctrl-C.
    Demo {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Exit after the self-test instead of serving.
        #[arg(long)]
        once: bool,
    },
    /// API keys: `shardgate key hash` prints the digest a `[[consumers]]`
    /// entry stores.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Print the version and build details: commit, compiler, target, io drivers.
    Version,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout: `shardgate man | man -l -`.
    Man {
        /// Write shardgate.1 and a page per subcommand (shardgate-run.1 …) into this directory instead.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Print the SHA-256 digest (`sha256:HEX`) of an API key read from
    /// stdin (one trailing newline dropped), for `api_keys` or an
    /// `api_keys_file`. The key itself is never stored in the config.
    Hash {
        /// The key as an argument instead of stdin (it then shows in the
        /// process list and the shell history: prefer stdin).
        key: Option<String>,
    },
}

/// `shardgate key hash`: the digest line, or why there is none.
fn key_hash(key: Option<String>) -> Result<String, String> {
    let key = match key {
        Some(k) => k.into_bytes(),
        None => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            if buf.ends_with(b"\n") {
                buf.pop();
                if buf.ends_with(b"\r") {
                    buf.pop();
                }
            }
            buf
        }
    };
    if key.is_empty() {
        return Err("the key is empty".to_owned());
    }
    if key.len() > crate::config::consumers::MAX_API_KEY_BYTES {
        let max = crate::config::consumers::MAX_API_KEY_BYTES;
        return Err(format!("the key is longer than {max} bytes: the proxy would refuse it unhashed"));
    }
    Ok(crate::config::consumers::KeyDigest::of(&key).to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    Auto,
    Uring,
    Epoll,
}

impl From<DriverArg> for IoDriver {
    fn from(d: DriverArg) -> IoDriver {
        match d {
            DriverArg::Auto => IoDriver::Auto,
            DriverArg::Uring => IoDriver::Uring,
            DriverArg::Epoll => IoDriver::Epoll,
        }
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    units::parse_duration_text(s)
}

fn size(s: &str) -> Result<u64, String> {
    units::parse_size_text(s)
}

/// A CPU list flag value. A newtype, because clap reads a bare
/// `Option<Vec<_>>` field as "several values" rather than one parsed list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

fn cpus(s: &str) -> Result<CpuList, String> {
    units::parse_cpu_list(s).map(CpuList)
}

/// Zero-downtime binary upgrade (`crate::upgrade`, docs/architecture.md).
#[derive(Debug, Clone, Default, Args)]
pub struct UpgradeArgs {
    /// Offer the listening sockets to a new shardgate process on this Unix socket (created mode 0600); the process drains and exits once the new one serves.
    #[arg(long, value_name = "PATH")]
    pub upgrade_socket: Option<PathBuf>,
    /// Take the listening sockets of the shardgate process offering them on this Unix socket instead of binding; once every shard serves, that process drains.
    #[arg(long, value_name = "PATH")]
    pub upgrade_from: Option<PathBuf>,
}

/// Flags that override the config for a bare-metal install. Each default
/// named here is the built-in one, used when neither flag nor config sets it.
#[derive(Debug, Clone, Default, Args)]
pub struct Tuning {
    /// Shards (threads, one runtime each) [default: one per CPU in --cpus, or per available core].
    #[arg(long)]
    pub shards: Option<usize>,
    /// CPUs to pin shards to, e.g. 0,2-3 [default: all].
    #[arg(long, value_parser = cpus)]
    pub cpus: Option<CpuList>,
    /// Do not pin shards to CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Accept connections only once the client has sent data (TCP_DEFER_ACCEPT, as nginx's `listen ... deferred`), on every listener.
    #[arg(long)]
    pub defer_accept: bool,
    /// io driver: uring, epoll, or auto (io_uring, falling back to epoll) [default: auto].
    #[arg(long, value_enum)]
    pub io_driver: Option<DriverArg>,
    /// io_uring submission queue entries per shard [default: 1024].
    #[arg(long)]
    pub ring_entries: Option<u32>,
    /// Time for a whole request head to arrive; then 408 [default: 10s].
    #[arg(long, value_parser = duration)]
    pub header_timeout: Option<Duration>,
    /// Idle keep-alive connection lifetime between requests [default: 60s].
    #[arg(long, value_parser = duration)]
    pub idle_timeout: Option<Duration>,
    /// Longest wait for body bytes in either direction [default: 30s].
    #[arg(long, value_parser = duration)]
    pub body_timeout: Option<Duration>,
    /// Largest request head; larger gets 431 [default: 16KiB].
    #[arg(long, value_parser = size)]
    pub max_request_head_bytes: Option<u64>,
    /// Most header fields in a request; more gets 431 [default: 100].
    #[arg(long)]
    pub max_header_count: Option<usize>,
    /// Longest request target; longer gets 414 [default: 8KiB].
    #[arg(long, value_parser = size)]
    pub max_uri_bytes: Option<u64>,
    /// Largest request body; larger gets 413 [default: 1GiB].
    #[arg(long, value_parser = size)]
    pub max_request_body_bytes: Option<u64>,
    /// Open downstream connections per shard; above it 503 [default: 16384].
    #[arg(long)]
    pub max_connections_per_shard: Option<usize>,
    /// Time in-flight requests get after SIGTERM/SIGINT [default: 30s].
    #[arg(long, value_parser = duration)]
    pub drain_timeout: Option<Duration>,
    /// Upstream TCP connect timeout, every cluster [default: 5s].
    #[arg(long, value_parser = duration)]
    pub connect_timeout: Option<Duration>,
    /// Upstream response-head timeout per try, every cluster [default: 15s].
    #[arg(long, value_parser = duration)]
    pub response_timeout: Option<Duration>,
    /// Believe the forwarding headers and request id of peers in this range (CIDR or address; repeat for more), on every listener, added to any in the config [default: none].
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = Cidr::parse)]
    pub trusted_proxies: Vec<Cidr>,
}

impl Tuning {
    /// Applies the flags over `config`. Each flag must lie within the same
    /// [`bounds`](crate::config::bounds) as the config file setting it
    /// overrides; the first one outside them is returned as an error naming
    /// the flag, before anything is changed.
    pub fn apply(&self, config: &mut Config) -> Result<(), String> {
        use crate::config::bounds::{self, check_count, check_duration, check_ring_entries, check_size};

        /// Prefixes a bounds message with the flag's name.
        fn flag(name: &str) -> impl FnOnce(String) -> String + '_ {
            move |e| format!("--{name}: {e}")
        }
        if let Some(n) = self.shards {
            check_count(n, bounds::MIN_SHARDS, bounds::MAX_SHARDS).map_err(flag("shards"))?;
        }
        if let Some(n) = self.ring_entries {
            check_ring_entries(n).map_err(flag("ring-entries"))?;
        }
        let timeouts = [
            ("header-timeout", self.header_timeout, bounds::MIN_TIMEOUT),
            ("idle-timeout", self.idle_timeout, bounds::MIN_TIMEOUT),
            ("body-timeout", self.body_timeout, bounds::MIN_TIMEOUT),
            ("drain-timeout", self.drain_timeout, bounds::MIN_DRAIN_TIMEOUT),
            ("connect-timeout", self.connect_timeout, bounds::MIN_TIMEOUT),
            ("response-timeout", self.response_timeout, bounds::MIN_TIMEOUT),
        ];
        for (name, d, min) in timeouts {
            if let Some(d) = d {
                check_duration(d, min, bounds::MAX_TIMEOUT).map_err(flag(name))?;
            }
        }
        let sizes = [
            (
                "max-request-head-bytes",
                self.max_request_head_bytes,
                bounds::MIN_REQUEST_HEAD_BYTES,
                bounds::MAX_REQUEST_HEAD_BYTES_CEILING,
            ),
            ("max-uri-bytes", self.max_uri_bytes, bounds::MIN_URI_BYTES, bounds::MAX_URI_BYTES_CEILING),
        ];
        for (name, n, min, max) in sizes {
            if let Some(n) = n {
                check_size(n, min, max).map_err(flag(name))?;
            }
        }
        let counts = [
            ("max-header-count", self.max_header_count, bounds::MIN_HEADER_COUNT, bounds::MAX_HEADER_COUNT_CEILING),
            (
                "max-connections-per-shard",
                self.max_connections_per_shard,
                bounds::MIN_CONNECTIONS_PER_SHARD,
                bounds::MAX_CONNECTIONS_PER_SHARD_CEILING,
            ),
        ];
        for (name, n, min, max) in counts {
            if let Some(n) = n {
                check_count(n, min, max).map_err(flag(name))?;
            }
        }
        // --max-request-body-bytes takes any size, like the file; --cpus
        // was checked when parsed.

        let s = &mut config.server;
        if let Some(n) = self.shards {
            s.shards = Some(n);
        }
        if let Some(CpuList(c)) = &self.cpus {
            s.cpus = Some(c.clone());
        }
        if self.no_pin {
            s.pin = false;
        }
        if let Some(d) = self.io_driver {
            s.io_driver = d.into();
        }
        set(&mut s.ring_entries, self.ring_entries);
        set(&mut s.drain_timeout, self.drain_timeout);
        for l in &mut config.listeners {
            l.defer_accept |= self.defer_accept;
            for range in &self.trusted_proxies {
                if !l.trusted_proxies.contains(range) {
                    l.trusted_proxies.push(*range);
                }
            }
            let m = &mut l.limits;
            set(&mut m.header_timeout, self.header_timeout);
            set(&mut m.idle_timeout, self.idle_timeout);
            set(&mut m.body_timeout, self.body_timeout);
            set(&mut m.max_request_head_bytes, self.max_request_head_bytes.map(|n| n as usize));
            set(&mut m.max_header_count, self.max_header_count);
            set(&mut m.max_uri_bytes, self.max_uri_bytes.map(|n| n as usize));
            set(&mut m.max_request_body_bytes, self.max_request_body_bytes);
            set(&mut m.max_connections_per_shard, self.max_connections_per_shard);
        }
        for c in &mut config.clusters {
            set(&mut c.connect_timeout, self.connect_timeout);
            set(&mut c.response_timeout, self.response_timeout);
        }
        Ok(())
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Run { config, tuning, upgrade } => {
            let mut cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(1);
                }
            };
            // A reload reads the file again and applies the same flags.
            let flags = tuning.clone();
            let source: ConfigSource = Box::new(move || {
                let mut c = Config::load(&config)?;
                flags
                    .apply(&mut c)
                    .map_err(|message| ConfigErrors(vec![ConfigError { path: String::new(), line: None, message }]))?;
                Ok(c)
            });
            let upgrade = crate::shard::supervisor::UpgradePaths {
                offer_at: upgrade.upgrade_socket,
                take_from: upgrade.upgrade_from,
            };
            run_with(&mut cfg, &tuning, Some(source), upgrade)
        }
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                print!("{}", c.summary());
                println!("configuration file {} is valid", config.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("configuration file {} is invalid", config.display());
                ExitCode::from(1)
            }
        },
        Command::Proxy { listen, upstream, tls_cert, tls_key, tuning } => {
            let mut cfg = Config::quick_proxy(listen, upstream);
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                cfg.listeners[0].tls = Some(ListenerTls::single(cert, key));
            }
            run_with(&mut cfg, &tuning, None, Default::default())
        }
        Command::Echo { listen, shards, io_driver, delay_ms } => {
            // Handlers first, so a signal right after the `listening` line
            // ends the process through them (exit 0), not by default action.
            let termination = termination_signals();
            match crate::echo::start_background(listen, shards, io_driver.into(), Duration::from_millis(delay_ms)) {
                Ok(addr) => {
                    tracing::info!(listener = %"echo", addr = %addr, "listening");
                    if let Some(mut signals) = termination {
                        let _ = signals.forever().next();
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("echo: cannot listen on {listen}: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Demo { listen, once } => crate::demo::run(listen, once),
        Command::Key { action: KeyAction::Hash { key } } => match key_hash(key) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("shardgate key hash: {e}");
                ExitCode::from(2)
            }
        },
        Command::Version => {
            print!("{}", crate::build_info::describe());
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "shardgate", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { out_dir: None } => crate::manual::print(Cli::command()),
        Command::Man { out_dir: Some(dir) } => crate::manual::write_pages(Cli::command(), &dir),
    }
}

fn run_with(
    cfg: &mut Config,
    tuning: &Tuning,
    source: Option<ConfigSource>,
    upgrade: crate::shard::supervisor::UpgradePaths,
) -> ExitCode {
    if let Err(e) = tuning.apply(cfg) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    match crate::shard::supervisor::serve_upgrading(cfg.clone(), source, upgrade) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardgate: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGTERM and SIGINT caught (for the echo server, whose threads need no
/// drain: the first one ends the process).
fn termination_signals() -> Option<signal_hook::iterator::Signals> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).ok()
}

fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHARDGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).expect("arguments parse")
    }

    #[test]
    fn cpu_list_flag_parses_as_one_list() {
        let cli =
            parse(&["shardgate", "proxy", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1", "--cpus", "0,2-3"]);
        let Command::Proxy { tuning, .. } = cli.command else { panic!("proxy") };
        assert_eq!(tuning.cpus, Some(CpuList(vec![0, 2, 3])));
        let mut config = Config::quick_proxy("127.0.0.1:0".parse().unwrap(), vec!["127.0.0.1:1".parse().unwrap()]);
        tuning.apply(&mut config).unwrap();
        assert_eq!(config.server.cpus, Some(vec![0, 2, 3]));
    }

    #[test]
    fn every_tuning_flag_overrides_its_field() {
        let cli = parse(&[
            "shardgate",
            "run",
            "-c",
            "x.toml",
            "--shards",
            "3",
            "--no-pin",
            "--io-driver",
            "epoll",
            "--ring-entries",
            "512",
            "--header-timeout",
            "2s",
            "--idle-timeout",
            "3s",
            "--body-timeout",
            "4s",
            "--max-request-head-bytes",
            "8KiB",
            "--max-header-count",
            "50",
            "--max-uri-bytes",
            "2048",
            "--max-request-body-bytes",
            "1MiB",
            "--max-connections-per-shard",
            "10",
            "--drain-timeout",
            "5s",
            "--connect-timeout",
            "6s",
            "--response-timeout",
            "7s",
        ]);
        let Command::Run { tuning, .. } = cli.command else { panic!("run") };
        let mut config = Config::quick_proxy("127.0.0.1:0".parse().unwrap(), vec!["127.0.0.1:1".parse().unwrap()]);
        tuning.apply(&mut config).unwrap();
        let s = &config.server;
        assert_eq!((s.shards, s.pin, s.io_driver, s.ring_entries), (Some(3), false, IoDriver::Epoll, 512));
        assert_eq!(s.drain_timeout, Duration::from_secs(5));
        let l = &config.listeners[0].limits;
        assert_eq!(
            (l.header_timeout, l.idle_timeout, l.body_timeout),
            (Duration::from_secs(2), Duration::from_secs(3), Duration::from_secs(4))
        );
        assert_eq!((l.max_request_head_bytes, l.max_header_count, l.max_uri_bytes), (8192, 50, 2048));
        assert_eq!((l.max_request_body_bytes, l.max_connections_per_shard), (1 << 20, 10));
        let c = &config.clusters[0];
        assert_eq!((c.connect_timeout, c.response_timeout), (Duration::from_secs(6), Duration::from_secs(7)));
    }

    #[test]
    fn out_of_range_flags_name_the_flag() {
        let cli = parse(&["shardgate", "run", "-c", "x.toml", "--max-header-count", "100000"]);
        let Command::Run { tuning, .. } = cli.command else { panic!("run") };
        let mut config = Config::quick_proxy("127.0.0.1:0".parse().unwrap(), vec!["127.0.0.1:1".parse().unwrap()]);
        let err = tuning.apply(&mut config).unwrap_err();
        assert!(err.starts_with("--max-header-count"), "{err}");
    }
}
