//! Secrets by reference, part of `validate` in `file -> validate -> Config`.
//!
//! A secret field (today `admin.token`; later HMAC keys, JWT secrets, the
//! Redis password) is written as `file:PATH`, `env:NAME`, or, where the
//! field allows it, the value itself. The value is read while the config
//! is built, so every load (startup, `shardgate check`, a reload) reads it
//! afresh: rotating a secret is "change the file or the variable, reload".
//!
//! A [`Secret`] never shows its value: `Debug` and `Display` print where it
//! came from (`<secret from file:/etc/shardgate/admin.token>`), so a config
//! that is logged, printed by `shardgate check` or served on `/config`
//! carries no secret bytes. Errors name the field, the line and the source,
//! never the value.
//!
//! A secret file, or a TLS private key file, that group or other users may
//! read draws a warning (not an error): see [`loose_mode`].

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::spans::FieldPath;
use super::validate::Check;

/// Largest secret read from a file or a variable. A secret is a token or a
/// key, a few hundred bytes at most; a larger file is a wrong path (a log,
/// a device), and reading stops here instead of reading it all.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Where a secret's value comes from, as written in the config (a `file:`
/// path resolved against the config file's directory).
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `file:PATH`: the file's contents, without trailing CR/LF.
    File(PathBuf),
    /// `env:NAME`: the environment variable's value.
    Env(String),
    /// The value itself, written in the config file.
    Inline,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(p) => write!(f, "file:{}", p.display()),
            SecretSource::Env(name) => write!(f, "env:{name}"),
            SecretSource::Inline => f.write_str("the config file"),
        }
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Whether a field accepts its value written inline in the config file,
/// besides `file:` and `env:`. Said per field, in the docs' table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inline {
    Allowed,
    Refused,
}

/// A secret value and where it came from. Cloning shares the bytes; the
/// last clone dropped overwrites them with zeros.
#[derive(Clone)]
pub struct Secret {
    source: SecretSource,
    value: Arc<Zeroizing<Vec<u8>>>,
}

impl Secret {
    /// A secret with a known value (tests, and values made in code).
    pub fn new(source: SecretSource, value: Vec<u8>) -> Secret {
        Secret { source, value: Arc::new(Zeroizing::new(value)) }
    }

    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// The secret bytes. Named so that every use is easy to find.
    pub fn expose(&self) -> &[u8] {
        &self.value
    }

    /// Whether `presented` equals the secret, in time that does not depend
    /// on where the first differing byte is (a timing side channel would
    /// let a client guess a token byte by byte). A different length is
    /// refused at once: the length is not hidden, the bytes are.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.value.as_slice().ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret from {}>", self.source)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret from {}>", self.source)
    }
}

/// A secret reference as written: its source, and for an inline value the
/// value itself. Nothing is read yet.
#[derive(PartialEq, Eq)]
pub enum Reference<'a> {
    File(&'a str),
    Env(&'a str),
    Inline(&'a str),
}

impl fmt::Debug for Reference<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::File(p) => write!(f, "File({p:?})"),
            Reference::Env(n) => write!(f, "Env({n:?})"),
            Reference::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

/// Reads the config text of a secret field. An inline value cannot start
/// with `file:` or `env:` (such a value goes in a file instead).
pub fn parse_reference(text: &str, inline: Inline) -> Result<Reference<'_>, String> {
    if let Some(path) = text.strip_prefix("file:") {
        if path.is_empty() {
            return Err("file: needs a path, as in \"file:/etc/shardgate/admin.token\"".into());
        }
        return Ok(Reference::File(path));
    }
    if let Some(name) = text.strip_prefix("env:") {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(format!(
                "env:{name} is not an environment variable name: write env:NAME, as in \"env:SHARDGATE_ADMIN_TOKEN\""
            ));
        }
        return Ok(Reference::Env(name));
    }
    match inline {
        Inline::Allowed if text.is_empty() => Err("must not be empty".into()),
        Inline::Allowed => Ok(Reference::Inline(text)),
        Inline::Refused => {
            Err("a secret here is read from a file or the environment: write \"file:PATH\" or \"env:NAME\"".into())
        }
    }
}

/// Reads the value of `reference`: a `file:` path relative to `base_dir`,
/// an `env:` name looked up with `env` (the process environment, or a map
/// in tests). Errors name the source, never a value.
pub fn load(
    reference: &Reference<'_>,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Secret, String> {
    let (source, value) = match *reference {
        Reference::File(path) => {
            let path = base_dir.join(path);
            let value = read_capped(&path)?;
            (SecretSource::File(path), value)
        }
        Reference::Env(name) => {
            let Some(value) = env(name) else {
                return Err(format!("environment variable {name} is not set"));
            };
            (SecretSource::Env(name.to_owned()), os_bytes(value))
        }
        Reference::Inline(text) => (SecretSource::Inline, text.as_bytes().to_vec()),
    };
    if value.is_empty() {
        return Err(format!("the secret from {source} is empty"));
    }
    if value.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "the secret from {source} is larger than {MAX_SECRET_BYTES} bytes: is it the right {}?",
            if matches!(source, SecretSource::File(_)) { "file" } else { "variable" }
        ));
    }
    Ok(Secret::new(source, value))
}

/// A file's contents without trailing CR/LF (`echo token > file` adds a
/// newline nobody means to be part of the token), reading at most one byte
/// past [`MAX_SECRET_BYTES`] so that a wrong path such as a device or a
/// growing log cannot stall the load.
fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read secret file {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    if file.metadata().map_err(cannot)?.is_dir() {
        return Err(format!("cannot read secret file {}: it is a directory", path.display()));
    }
    let mut value = Vec::new();
    file.take(MAX_SECRET_BYTES as u64 + 1).read_to_end(&mut value).map_err(cannot)?;
    while value.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        value.pop();
    }
    Ok(value)
}

#[cfg(unix)]
fn os_bytes(value: OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    value.into_vec()
}

#[cfg(not(unix))]
fn os_bytes(value: OsString) -> Vec<u8> {
    value.to_string_lossy().into_owned().into_bytes()
}

/// The permission bits of `path` when group or other users may read,
/// write or run it (`mode & 0o077 != 0`), else `None` (also when it cannot
/// be examined: reading it reports that).
///
/// A warning, not an error, as ssh's "UNPROTECTED PRIVATE KEY FILE" is
/// advice and nginx reads `ssl_certificate_key` whatever its mode: the
/// file may sit in a directory nobody else can enter, or the group may be
/// shardgate's alone, which a mode cannot show; refusing to start over it
/// would turn a hardening hint into an outage.
pub fn loose_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The warning for a file of secrets with mode `mode`.
pub fn loose_mode_warning(what: &str, path: &Path, mode: u32) -> String {
    format!(
        "{what} {} is readable by other users (mode {mode:04o}): chmod 600 it, owned by the user shardgate runs as",
        path.display()
    )
}

/// RFC 6750 §2.1 `b64token`: what a bearer token can be, so that a client
/// can send it in `Authorization: Bearer TOKEN`.
pub fn check_bearer_token(secret: &Secret) -> Result<(), String> {
    let v = secret.expose();
    let body_end = v.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let body_ok = body_end > 0
        && v[..body_end]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'));
    if body_ok {
        Ok(())
    } else {
        Err(format!(
            "the secret from {} cannot be a bearer token: use letters, digits and - . _ ~ + / (= only at the end)",
            secret.source
        ))
    }
}

impl Check<'_> {
    /// Reads secret field `path` written as `text`; records an error (and
    /// returns `None`) if it is malformed or cannot be read, a warning if
    /// its file or the config file holding it inline is readable by others.
    pub(super) fn secret(&mut self, path: &FieldPath, text: &str, inline: Inline) -> Option<Secret> {
        let reference = self.ok(path, parse_reference(text, inline))?;
        let env = |name: &str| std::env::var_os(name);
        let secret = self.ok(path, load(&reference, &self.base_dir, &env))?;
        match secret.source() {
            SecretSource::File(file) => {
                if let Some(mode) = loose_mode(file) {
                    self.warn(path, loose_mode_warning("secret file", file, mode));
                }
            }
            SecretSource::Inline => {
                let config_file = self.config_file.clone();
                if let Some((file, mode)) = config_file.and_then(|f| loose_mode(&f).map(|m| (f, m))) {
                    let msg = format!(
                        "the secret is written inline in config file {}, which other users can read (mode {mode:04o}): chmod 600 the file, or move the secret to file: or env:",
                        file.display()
                    );
                    self.warn(path, msg);
                }
            }
            SecretSource::Env(_) => {}
        }
        Some(secret)
    }

    /// A TLS private key's path as written: a plain path or `file:PATH`
    /// (the same spelling as every other secret); `env:` is refused, a key
    /// is read from a file. Relative to the config's directory.
    pub(super) fn key_file_path(&mut self, path: &FieldPath, text: &str) -> Option<PathBuf> {
        if text.starts_with("env:") {
            self.error(path, "a TLS private key is read from a file: write its path (or \"file:PATH\")");
            return None;
        }
        let text = text.strip_prefix("file:").unwrap_or(text);
        let file = self.file_path(path, text)?;
        if let Some(mode) = loose_mode(&file) {
            self.warn(path, loose_mode_warning("private key file", &file, mode));
        }
        Some(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    /// A file in a directory of its own, both removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &[u8]) -> TempFile {
            let dir = std::env::temp_dir().join(format!("shardgate-secret-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("s");
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl std::ops::Deref for TempFile {
        type Target = PathBuf;
        fn deref(&self) -> &PathBuf {
            &self.0
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }

    fn temp_file(name: &str, contents: &[u8]) -> TempFile {
        TempFile::new(name, contents)
    }

    #[test]
    fn references_parse_per_field_rule() {
        use Inline::*;
        const CASES: &[(&str, Inline, Result<Reference<'static>, &str>)] = &[
            ("file:/etc/x", Refused, Ok(Reference::File("/etc/x"))),
            ("file:rel/x", Allowed, Ok(Reference::File("rel/x"))),
            ("env:TOKEN", Refused, Ok(Reference::Env("TOKEN"))),
            ("abc", Allowed, Ok(Reference::Inline("abc"))),
            ("abc", Refused, Err("write \"file:PATH\" or \"env:NAME\"")),
            ("", Allowed, Err("must not be empty")),
            ("file:", Allowed, Err("file: needs a path")),
            ("env:", Allowed, Err("is not an environment variable name")),
            ("env:A=B", Allowed, Err("is not an environment variable name")),
        ];
        for (text, inline, want) in CASES {
            let got = parse_reference(text, *inline);
            match (want, &got) {
                (Ok(want), Ok(got)) => assert_eq!(got, want, "{text}"),
                (Err(want), Err(got)) => assert!(got.contains(want), "{text}: {got}"),
                _ => panic!("{text}: {got:?}"),
            }
        }
    }

    #[test]
    fn file_secrets_lose_trailing_newlines_and_resolve_against_the_base_dir() {
        let path = temp_file("newline", b"s3cr3t-token\r\n\n");
        let (dir, name) = (path.parent().unwrap(), path.file_name().unwrap().to_str().unwrap());
        let s = load(&Reference::File(name), dir, &no_env).unwrap();
        assert_eq!(s.expose(), b"s3cr3t-token");
        assert_eq!(s.source(), &SecretSource::File(path.to_path_buf()));
        assert!(s.matches(b"s3cr3t-token"));
        assert!(!s.matches(b"s3cr3t-tokem"));
        assert!(!s.matches(b"s3cr3t-token\n"));
        assert!(!s.matches(b""));
    }

    #[test]
    fn env_secrets_come_from_the_lookup() {
        let env = |name: &str| (name == "TOKEN").then(|| OsString::from("from-env"));
        let s = load(&Reference::Env("TOKEN"), Path::new(""), &env).unwrap();
        assert_eq!(s.expose(), b"from-env");
        let e = load(&Reference::Env("OTHER"), Path::new(""), &env).unwrap_err();
        assert_eq!(e, "environment variable OTHER is not set");
        let empty = |_: &str| Some(OsString::new());
        let e = load(&Reference::Env("TOKEN"), Path::new(""), &empty).unwrap_err();
        assert_eq!(e, "the secret from env:TOKEN is empty");
    }

    #[test]
    fn unreadable_empty_and_oversized_files_are_errors() {
        let e = load(&Reference::File("/nonexistent/shardgate/secret"), Path::new(""), &no_env).unwrap_err();
        assert!(e.starts_with("cannot read secret file /nonexistent/shardgate/secret: No such file"), "{e}");
        let e = load(&Reference::File("/"), Path::new(""), &no_env).unwrap_err();
        assert_eq!(e, "cannot read secret file /: it is a directory");
        let path = temp_file("empty", b"\n");
        let e = load(&Reference::File(path.to_str().unwrap()), Path::new(""), &no_env).unwrap_err();
        assert!(e.ends_with("is empty"), "{e}");
        let path = temp_file("big", &vec![b'a'; MAX_SECRET_BYTES + 1]);
        let e = load(&Reference::File(path.to_str().unwrap()), Path::new(""), &no_env).unwrap_err();
        assert!(e.contains("larger than 65536 bytes"), "{e}");
        let path = temp_file("max", &vec![b'a'; MAX_SECRET_BYTES]);
        assert!(load(&Reference::File(path.to_str().unwrap()), Path::new(""), &no_env).is_ok(), "exactly the cap");
    }

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new(SecretSource::File("/etc/x".into()), b"hunter2-value".to_vec());
        assert_eq!(format!("{s}"), "<secret from file:/etc/x>");
        assert_eq!(format!("{s:?}"), "<secret from file:/etc/x>");
        let s = Secret::new(SecretSource::Env("T".into()), b"hunter2-value".to_vec());
        assert_eq!(format!("{:?}", Some(&s)), "Some(<secret from env:T>)");
        let s = Secret::new(SecretSource::Inline, b"hunter2-value".to_vec());
        assert_eq!(s.to_string(), "<secret from the config file>");
        assert!(!format!("{:?}", Reference::Inline("hunter2-value")).contains("hunter2"));
    }

    #[test]
    fn loose_modes_are_those_open_to_group_or_others() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_file("mode", b"x");
        for (mode, loose) in
            [(0o600, false), (0o400, false), (0o700, false), (0o640, true), (0o644, true), (0o604, true)]
        {
            std::fs::set_permissions(&*path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(loose_mode(&path), loose.then_some(mode), "{mode:o}");
        }
        assert_eq!(loose_mode(Path::new("/nonexistent/shardgate/secret")), None);
        let msg = loose_mode_warning("secret file", &path, 0o644);
        assert!(msg.contains("(mode 0644)") && msg.contains(&path.display().to_string()), "{msg}");
    }

    #[test]
    fn bearer_tokens_are_b64token() {
        let t = |v: &str| check_bearer_token(&Secret::new(SecretSource::Env("T".into()), v.as_bytes().to_vec()));
        for good in ["abc", "A-b.c_d~e+f/g", "abc==", "0123456789"] {
            assert!(t(good).is_ok(), "{good}");
        }
        for bad in ["=", "a b", "a=b", "tök", "a\tb", "a,b"] {
            let e = t(bad).unwrap_err();
            assert!(e.starts_with("the secret from env:T cannot be a bearer token"), "{e}");
        }
    }

    /// A config file in a fresh directory, with other files beside it.
    struct ConfigDir(PathBuf);

    impl ConfigDir {
        fn new(name: &str) -> ConfigDir {
            let dir = std::env::temp_dir().join(format!("shardgate-secret-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            ConfigDir(dir)
        }

        fn write(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }

        fn load(&self, config: &str, mode: u32) -> (Result<super::super::Config, String>, Vec<String>) {
            let file = self.write("shardgate.toml", config.as_bytes(), mode);
            let (result, warnings) = super::super::validate::load_file_with_warnings(&file);
            (result.map_err(|e| e.to_string()), warnings.iter().map(|w| w.to_string()).collect())
        }
    }

    impl Drop for ConfigDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const LISTENER: &str = "[[listeners]]\nname = \"l\"\nlisten = \"127.0.0.1:0\"\n";

    fn admin_with_token(token: &str) -> String {
        format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n{LISTENER}")
    }

    #[test]
    fn admin_token_file_is_relative_to_the_config_and_warns_when_others_can_read_it() {
        let dir = ConfigDir::new("admin-file");
        let token = dir.write("admin.token", b"file-token-1\n", 0o600);
        let (config, warnings) = dir.load(&admin_with_token("file:admin.token"), 0o600);
        let config = config.unwrap();
        let secret = config.admin.as_ref().unwrap().token.as_ref().unwrap();
        assert_eq!(secret.expose(), b"file-token-1");
        assert_eq!(secret.source(), &SecretSource::File(token.clone()));
        assert!(warnings.is_empty(), "{warnings:?}");
        let debug = format!("{config:?}");
        assert!(!debug.contains("file-token-1") && debug.contains("<secret from file:"), "{debug}");
        assert!(!config.summary().contains("file-token-1"));

        // Re-read at each load: a changed file is the new token.
        dir.write("admin.token", b"file-token-2", 0o644);
        let (config, warnings) = dir.load(&admin_with_token("file:admin.token"), 0o600);
        assert_eq!(config.unwrap().admin.unwrap().token.unwrap().expose(), b"file-token-2");
        assert_eq!(
            warnings,
            [format!(
                "admin.token: secret file {} is readable by other users (mode 0644): chmod 600 it, owned by the user shardgate runs as (line 3)",
                token.display()
            )]
        );
    }

    #[test]
    fn inline_tokens_warn_when_the_config_file_is_readable_by_others() {
        let dir = ConfigDir::new("admin-inline");
        let (config, warnings) = dir.load(&admin_with_token("inline-token"), 0o600);
        assert_eq!(config.unwrap().admin.unwrap().token.unwrap().expose(), b"inline-token");
        assert!(warnings.is_empty(), "{warnings:?}");
        let (_, warnings) = dir.load(&admin_with_token("inline-token"), 0o640);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("admin.token: the secret is written inline in config file "), "{warnings:?}");
        assert!(warnings[0].contains("(mode 0640)") && !warnings[0].contains("inline-token"), "{warnings:?}");
        // From the environment: nothing to warn about.
        let (config, warnings) = dir.load(&admin_with_token("env:SHARDGATE_TEST_SECRET_NEVER_SET"), 0o644);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            config.unwrap_err(),
            "admin.token: environment variable SHARDGATE_TEST_SECRET_NEVER_SET is not set (line 3)"
        );
    }

    #[test]
    fn tls_key_files_draw_the_same_warning_on_listeners_and_clusters() {
        let tls = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/tls");
        let dir = ConfigDir::new("tls-keys");
        for name in ["localhost.pem", "client.pem", "ca.pem"] {
            dir.write(name, &std::fs::read(tls.join(name)).unwrap(), 0o644);
        }
        dir.write("localhost.key", &std::fs::read(tls.join("localhost.key")).unwrap(), 0o600);
        let client_key = dir.write("client.key", &std::fs::read(tls.join("client.key")).unwrap(), 0o640);
        let config = format!(
            "{LISTENER}[listeners.tls]\ncertificates = [{{ cert = \"localhost.pem\", key = \"file:localhost.key\" }}]\n\
             [[routes]]\ncluster = \"c\"\n\
             [[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n[clusters.tls]\nca = \"ca.pem\"\n\
             server_name = \"localhost\"\nclient_cert = {{ cert = \"client.pem\", key = \"client.key\" }}\n"
        );
        let (result, warnings) = dir.load(&config, 0o600);
        let config = result.unwrap();
        assert_eq!(config.listeners[0].tls.as_ref().unwrap().certificates[0].key, dir.0.join("localhost.key"));
        assert_eq!(
            warnings,
            [format!(
                "clusters[0].tls.client_cert.key: private key file {} is readable by other users (mode 0640): chmod 600 it, owned by the user shardgate runs as (line 14)",
                client_key.display()
            )]
        );
    }
}
