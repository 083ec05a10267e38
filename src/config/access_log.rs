//! `[access_log]`: where the access log goes, in which format, which
//! fields, and which fraction of successful requests — the file shape, its
//! checks (the `validate` stage for this section) and the typed runtime
//! value the record step (`observe/access_log/`) reads from the request's
//! generation, so a reload applies a changed format, field list or ratio
//! to the next request.
//!
//! ```toml
//! [access_log]
//! path = "/var/log/shardgate/access.log"   # or "stdout" (the default)
//! format = "json"                          # or "combined"
//! fields = ["time", "client", "method", "path", "status", "total_us"]  # absent: LogField::DEFAULT; ["all"]: every field
//! headers = ["x-forwarded-for"]            # json only; never credentials
//! sample = 0.1                             # of successful requests
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use super::spans::FieldPath;
use super::validate::Check;

/// `[access_log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogFile {
    /// A file name, or `"stdout"`.
    pub path: Option<String>,
    /// `"json"` or `"combined"`.
    pub format: Option<String>,
    /// JSON keys, in output order (json only).
    pub fields: Option<Vec<String>>,
    /// Request header names whose values go under `"headers"` (json only).
    pub headers: Option<Vec<String>>,
    /// Fraction of successful requests logged, 0..=1.
    pub sample: Option<f64>,
}

/// The validated section.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    pub target: LogTarget,
    pub format: LogFormat,
    /// What a JSON line holds, in order (the combined format is fixed).
    pub fields: Vec<LogField>,
    /// Lowercase request header names logged under `"headers"` (json).
    pub headers: Vec<String>,
    /// Fraction of successful requests (status below 400, no error)
    /// written; failed requests are always written.
    pub sample: f64,
}

/// Where lines go. A reload may change it: the writer thread opens the
/// new target and closes the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    /// Opened for appending; reopened on SIGUSR1 (log rotation).
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, keys from `fields`.
    Json,
    /// nginx's and Apache's `combined`, exactly:
    /// `client - - [time] "request" status bytes "referer" "user-agent"`.
    Combined,
}

/// A field of a JSON line; the name is its key. Timings are integers of
/// microseconds (the `_us` suffix says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogField {
    RequestId,
    /// RFC 3339 UTC with milliseconds: when the request's first byte came.
    Time,
    /// The effective client address (the peer, or whom a trusted proxy names).
    Client,
    /// The TCP peer, `ip:port`.
    Peer,
    Listener,
    Method,
    Path,
    Query,
    Host,
    Protocol,
    Status,
    BytesReceived,
    BytesSent,
    UserAgent,
    Referer,
    Route,
    /// The authenticated consumer (`[[consumers]]`), null when none.
    Consumer,
    Cluster,
    Endpoint,
    UpstreamStatus,
    Retries,
    Error,
    HeadReadUs,
    UpstreamConnectUs,
    UpstreamFirstByteUs,
    TotalUs,
    TlsVersion,
    TraceId,
}

impl LogField {
    /// The fields of a line when `fields` is absent: who asked what, what
    /// came back, where it went and how long it took — what nginx's
    /// `combined` and Envoy's default format carry, in JSON. Kept lean on
    /// purpose: a log line's cost is mostly its bytes (the kernel's
    /// page-cache write, ~2 ns a byte here: docs/benchmarks.md), and the
    /// rest (`ALL`) is one `fields` list away.
    pub const DEFAULT: &'static [LogField] = &[
        LogField::Time,
        LogField::RequestId,
        LogField::Client,
        LogField::Method,
        LogField::Host,
        LogField::Path,
        LogField::Query,
        LogField::Status,
        LogField::BytesSent,
        LogField::Route,
        LogField::Consumer,
        LogField::Cluster,
        LogField::Endpoint,
        LogField::UpstreamStatus,
        LogField::Error,
        LogField::UpstreamFirstByteUs,
        LogField::TotalUs,
    ];

    /// Every field, in the order of a line's.
    pub const ALL: &'static [LogField] = &[
        LogField::Time,
        LogField::RequestId,
        LogField::TraceId,
        LogField::Listener,
        LogField::Client,
        LogField::Peer,
        LogField::TlsVersion,
        LogField::Protocol,
        LogField::Method,
        LogField::Host,
        LogField::Path,
        LogField::Query,
        LogField::Status,
        LogField::BytesReceived,
        LogField::BytesSent,
        LogField::UserAgent,
        LogField::Referer,
        LogField::Route,
        LogField::Consumer,
        LogField::Cluster,
        LogField::Endpoint,
        LogField::UpstreamStatus,
        LogField::Retries,
        LogField::Error,
        LogField::HeadReadUs,
        LogField::UpstreamConnectUs,
        LogField::UpstreamFirstByteUs,
        LogField::TotalUs,
    ];

    /// The JSON key, and the word written in `fields`.
    pub fn name(self) -> &'static str {
        use LogField::*;
        match self {
            RequestId => "request_id",
            Time => "time",
            Client => "client",
            Peer => "peer",
            Listener => "listener",
            Method => "method",
            Path => "path",
            Query => "query",
            Host => "host",
            Protocol => "protocol",
            Status => "status",
            BytesReceived => "bytes_received",
            BytesSent => "bytes_sent",
            UserAgent => "user_agent",
            Referer => "referer",
            Route => "route",
            Consumer => "consumer",
            Cluster => "cluster",
            Endpoint => "endpoint",
            UpstreamStatus => "upstream_status",
            Retries => "retries",
            Error => "error",
            HeadReadUs => "head_read_us",
            UpstreamConnectUs => "upstream_connect_us",
            UpstreamFirstByteUs => "upstream_first_byte_us",
            TotalUs => "total_us",
            TlsVersion => "tls_version",
            TraceId => "trace_id",
        }
    }

    /// `"name":` as it starts the field in a JSON line.
    pub fn json_key(self) -> &'static [u8] {
        use LogField::*;
        match self {
            RequestId => b"\"request_id\":",
            Time => b"\"time\":",
            Client => b"\"client\":",
            Peer => b"\"peer\":",
            Listener => b"\"listener\":",
            Method => b"\"method\":",
            Path => b"\"path\":",
            Query => b"\"query\":",
            Host => b"\"host\":",
            Protocol => b"\"protocol\":",
            Status => b"\"status\":",
            BytesReceived => b"\"bytes_received\":",
            BytesSent => b"\"bytes_sent\":",
            UserAgent => b"\"user_agent\":",
            Referer => b"\"referer\":",
            Route => b"\"route\":",
            Consumer => b"\"consumer\":",
            Cluster => b"\"cluster\":",
            Endpoint => b"\"endpoint\":",
            UpstreamStatus => b"\"upstream_status\":",
            Retries => b"\"retries\":",
            Error => b"\"error\":",
            HeadReadUs => b"\"head_read_us\":",
            UpstreamConnectUs => b"\"upstream_connect_us\":",
            UpstreamFirstByteUs => b"\"upstream_first_byte_us\":",
            TotalUs => b"\"total_us\":",
            TlsVersion => b"\"tls_version\":",
            TraceId => b"\"trace_id\":",
        }
    }

    pub fn from_name(name: &str) -> Option<LogField> {
        LogField::ALL.iter().copied().find(|f| f.name() == name)
    }
}

/// What `path = "stdout"` means.
pub const STDOUT: &str = "stdout";

/// Request header names that carry credentials or session state: never
/// written to a log (a log file is read by more people, and kept longer,
/// than the secrets in it should be). Matched as lowercase substrings, so
/// `x-api-key`, `x-auth-token` and `x-session-id` are refused too.
const SECRET_HEADER_WORDS: &[&str] =
    &["authorization", "cookie", "api-key", "api_key", "apikey", "token", "secret", "password", "session", "auth"];

/// Why a header name may not be logged, if it may not.
pub fn refused_header(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    SECRET_HEADER_WORDS.iter().copied().find(|w| lower.contains(w))
}

impl Check<'_> {
    pub(super) fn access_log(&mut self, a: &AccessLogFile) -> AccessLog {
        let root = FieldPath::root("access_log");
        let target = match a.path.as_deref() {
            None | Some(STDOUT) => LogTarget::Stdout,
            Some("") => {
                self.error(&root.key("path"), "must not be empty: a file name, or \"stdout\"");
                LogTarget::Stdout
            }
            Some(p) => LogTarget::File(self.base_dir.join(p)),
        };
        let format = match a.format.as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("combined") => LogFormat::Combined,
            Some(other) => {
                self.error(&root.key("format"), format!("unknown format {other:?}: use \"json\" or \"combined\""));
                LogFormat::Json
            }
        };
        let mut fields = Vec::new();
        match &a.fields {
            None => fields.extend_from_slice(LogField::DEFAULT),
            Some(names) => {
                let fpath = root.key("fields");
                if names.is_empty() {
                    self.error(&fpath, "empty list: omit fields for the default set, or write [\"all\"]");
                }
                for (i, name) in names.iter().enumerate() {
                    if name == "all" && names.len() == 1 {
                        fields.extend_from_slice(LogField::ALL);
                        continue;
                    }
                    match LogField::from_name(name) {
                        Some(f) if fields.contains(&f) => {
                            self.error(&fpath.index(i), format!("field {name:?} is listed twice"))
                        }
                        Some(f) => fields.push(f),
                        None => {
                            let known: Vec<&str> = LogField::ALL.iter().map(|f| f.name()).collect();
                            let msg =
                                format!("unknown field {name:?}: one of {} (or [\"all\"] alone)", known.join(", "));
                            self.error(&fpath.index(i), msg);
                        }
                    }
                }
                if format == LogFormat::Combined {
                    self.error(&fpath, "the combined format has fixed fields: remove fields or use format = \"json\"");
                }
            }
        }
        let mut headers: Vec<String> = Vec::new();
        if let Some(names) = &a.headers {
            let hpath = root.key("headers");
            if format == LogFormat::Combined {
                self.error(&hpath, "the combined format has fixed fields: remove headers or use format = \"json\"");
            }
            for (i, name) in names.iter().enumerate() {
                let lower = name.to_ascii_lowercase();
                if name.is_empty() || !name.bytes().all(is_token_byte) {
                    self.error(&hpath.index(i), format!("{name:?} is not a header name"));
                } else if let Some(word) = refused_header(name) {
                    let msg = format!(
                        "header {name:?} is never logged: a name containing {word:?} carries credentials or session state"
                    );
                    self.error(&hpath.index(i), msg);
                } else if headers.contains(&lower) {
                    self.error(&hpath.index(i), format!("header {name:?} is listed twice"));
                } else {
                    headers.push(lower);
                }
            }
        }
        let sample = match a.sample {
            None => 1.0,
            Some(r) if (0.0..=1.0).contains(&r) => r,
            Some(r) => {
                let msg = format!("{r} is out of range: a fraction from 0 (errors only) to 1 (every request)");
                self.error(&root.key("sample"), msg);
                1.0
            }
        };
        AccessLog { target, format, fields, headers, sample }
    }
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl AccessLog {
    /// One line for `shardgate check`.
    pub fn summary(&self) -> String {
        let target = match &self.target {
            LogTarget::Stdout => STDOUT.to_owned(),
            LogTarget::File(p) => p.display().to_string(),
        };
        let mut out = match self.format {
            LogFormat::Json => {
                let fields: Vec<&str> = self.fields.iter().map(|f| f.name()).collect();
                format!("access_log: {target} format=json fields={}", fields.join(","))
            }
            LogFormat::Combined => format!("access_log: {target} format=combined"),
        };
        if !self.headers.is_empty() {
            out += &format!(" headers={}", self.headers.join(","));
        }
        if self.sample < 1.0 {
            out += &format!(" sample={} (errors always logged)", self.sample);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_are_the_quoted_names() {
        for f in LogField::ALL {
            assert_eq!(f.json_key(), format!("\"{}\":", f.name()).as_bytes(), "{f:?}");
        }
    }
    use crate::config::Config;

    const BASE: &str = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n";

    fn load(section: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{section}"), "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn absent_section_is_no_log_and_empty_section_is_json_to_stdout() {
        assert!(load("").unwrap().access_log.is_none());
        let a = load("[access_log]\n").unwrap().access_log.unwrap();
        assert_eq!(a.target, LogTarget::Stdout);
        assert_eq!(a.format, LogFormat::Json);
        assert_eq!(a.fields, LogField::DEFAULT);
        assert_eq!(a.sample, 1.0);
    }

    #[test]
    fn all_alone_is_every_field() {
        let a = load("[access_log]\nfields = [\"all\"]\n").unwrap().access_log.unwrap();
        assert_eq!(a.fields, LogField::ALL);
        assert!(LogField::DEFAULT.iter().all(|f| LogField::ALL.contains(f)));
    }

    #[test]
    fn chosen_fields_keep_their_order() {
        let a = load("[access_log]\npath = \"/tmp/a.log\"\nfields = [\"status\", \"time\"]\nsample = 0.25\n")
            .unwrap()
            .access_log
            .unwrap();
        assert_eq!(a.target, LogTarget::File("/tmp/a.log".into()));
        assert_eq!(a.fields, [LogField::Status, LogField::Time]);
        assert_eq!(a.sample, 0.25);
        // Integers are ratios too.
        for (text, want) in [("sample = 0", 0.0), ("sample = 1", 1.0)] {
            let got = load(&format!("[access_log]\n{text}\n")).map(|c| c.access_log.unwrap().sample);
            assert_eq!(got, Ok(want), "{text}");
        }
        assert!(a.summary().contains("fields=status,time sample=0.25"), "{}", a.summary());
    }

    /// Every refusal names the field path and the line.
    #[test]
    fn bad_values_name_field_and_line() {
        const CASES: &[(&str, &str)] = &[
            ("format = \"clf\"", "access_log.format: unknown format \"clf\""),
            ("fields = [\"time\", \"nope\"]", "access_log.fields[1]: unknown field \"nope\""),
            ("fields = [\"time\", \"time\"]", "access_log.fields[1]: field \"time\" is listed twice"),
            ("fields = []", "access_log.fields: empty list"),
            ("sample = 1.5", "access_log.sample: 1.5 is out of range"),
            ("sample = -0.1", "access_log.sample: -0.1 is out of range"),
            ("headers = [\"Authorization\"]", "access_log.headers[0]: header \"Authorization\" is never logged"),
            ("headers = [\"x-ok\", \"Cookie\"]", "access_log.headers[1]: header \"Cookie\" is never logged"),
            ("headers = [\"X-Api-Key\"]", "access_log.headers[0]: header \"X-Api-Key\" is never logged"),
            ("headers = [\"proxy-authorization\"]", "access_log.headers[0]: header \"proxy-authorization\""),
            ("headers = [\"bad name\"]", "access_log.headers[0]: \"bad name\" is not a header name"),
            ("path = \"\"", "access_log.path: must not be empty"),
            ("colour = \"red\"", "unknown field `colour`"),
        ];
        for (line, want) in CASES {
            let err = load(&format!("[access_log]\n{line}\n")).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
            assert!(err.contains("(line 5)"), "{line}: {err}");
        }
        let err = load("[access_log]\nformat = \"combined\"\nfields = [\"time\"]\n").unwrap_err();
        assert!(err.starts_with("access_log.fields: the combined format has fixed fields"), "{err}");
        assert!(err.ends_with("(line 6)"), "{err}");
    }

    #[test]
    fn credential_headers_are_refused_by_substring() {
        for name in ["authorization", "Cookie", "set-cookie", "x-api-key", "apikey", "x-auth-token", "x-session-id"] {
            assert!(refused_header(name).is_some(), "{name}");
        }
        for name in ["x-forwarded-for", "accept", "x-request-id", "content-type"] {
            assert_eq!(refused_header(name), None, "{name}");
        }
    }
}
