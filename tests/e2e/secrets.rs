//! Secrets by reference, end to end: the admin token given as `env:NAME`
//! or `file:PATH` guards the admin listener (401 without it or with a
//! wrong one, 200 with it), and its value appears nowhere an operator or
//! a client could read it: not in `/config`, `/stats`, the 401 bodies,
//! `shardgate check`'s output, nor the process's log. A token file that
//! other users can read draws a warning naming the field and the file.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::harness::proxy::{run_to_completion, runtime_args, shardgate};
use crate::harness::tempdir::TempDir;
use crate::harness::*;

/// The variable the `env:` test reads its token from.
const TOKEN_VAR: &str = "SHARDGATE_E2E_ADMIN_TOKEN";

/// A token no other output could contain by chance.
fn unique_token() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("e2e-admin-{:x}-{}", nanos, std::process::id())
}

/// `config` written to `dir` (so `shardgate check` can read the same file
/// the proxy runs from), served with `env` in the proxy's environment.
fn start(config: &ProxyConfig, dir: &TempDir, env: &[(&str, &str)]) -> (Proxy, PathBuf) {
    let file = dir.write("shardgate.toml", &config.to_toml());
    let mut args = vec!["run".to_string(), "-c".to_string(), file.display().to_string()];
    args.extend(runtime_args());
    let env: Vec<(&str, Option<&str>)> = env.iter().map(|&(name, value)| (name, Some(value))).collect();
    let proxy = Proxy::spawn_with_env(&args, &env, &config.listener_names(), "main", None)
        .unwrap_or_else(|e| panic!("{e}\n--- config ---\n{}", config.to_toml()));
    (proxy, file)
}

fn admin_get(proxy: &Proxy, path: &str, authorization: Option<&str>) -> Response {
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    Client::connect(proxy.admin()).request(head.as_bytes())
}

fn check(file: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = shardgate();
    command.args(["check", "-c", &file.display().to_string()]).envs(env.iter().copied());
    run_to_completion(command, b"", std::time::Duration::from_secs(20))
}

/// Everything a test asks of a token-guarded admin listener; `source` is
/// how `/config` and `check` must name the token (`env:NAME`, `file:PATH`).
fn assert_guarded_and_never_shown(
    token: &str,
    source: &str,
    config: &ProxyConfig,
    env: &[(&str, &str)],
    dir: &TempDir,
) {
    let (proxy, file) = start(config, dir, env);
    // Traffic through the proxy listener, so /stats has something to say.
    assert_eq!(get(proxy.addr(), "/").status, 200);

    let bearer = format!("Bearer {token}");
    let mut seen = Vec::new();
    for path in ["/stats", "/config", "/no-such-path"] {
        for auth in [None, Some("Bearer wrong-token".to_string()), Some(format!("Basic {token}"))] {
            let r = admin_get(&proxy, path, auth.as_deref());
            assert_eq!(r.status, 401, "{path} with {auth:?}: {}", r.text());
            assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"shardgate admin\""), "{path}");
            seen.push(r.text());
        }
    }
    let stats = admin_get(&proxy, "/stats", Some(&bearer));
    assert_eq!(stats.status, 200, "{}", stats.text());
    assert!(stats.text().contains("\"shards\""), "{}", stats.text());
    let lowercase = admin_get(&proxy, "/stats", Some(&format!("bearer {token}")));
    assert_eq!(lowercase.status, 200, "the scheme is case-insensitive (RFC 9110 §11.1)");
    let config_page = admin_get(&proxy, "/config", Some(&bearer));
    assert_eq!(config_page.status, 200, "{}", config_page.text());
    assert!(config_page.text().contains(&format!("token=<secret from {source}>")), "{}", config_page.text());
    assert_eq!(admin_get(&proxy, "/no-such-path", Some(&bearer)).status, 404);
    seen.push(stats.text());
    seen.push(config_page.text());

    let checked = check(&file, env);
    let (stdout, stderr) = (String::from_utf8_lossy(&checked.stdout), String::from_utf8_lossy(&checked.stderr));
    assert_eq!(checked.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(&format!("token=<secret from {source}>")), "{stdout}");
    seen.push(stdout.into_owned());
    seen.push(stderr.into_owned());

    // The log last, after everything above had its chance to write to it.
    std::thread::sleep(std::time::Duration::from_millis(100));
    seen.push(proxy.log());
    for text in &seen {
        assert!(!text.contains(token), "the token leaked into:\n{text}");
    }
}

#[test]
fn admin_token_from_env_guards_the_admin_and_is_never_shown() {
    let token = unique_token();
    let config = ProxyConfig::new()
        .admin_option(&format!("token = \"env:{TOKEN_VAR}\""))
        .route(Route::new("all").direct(200, "ok"));
    let dir = TempDir::new();
    assert_guarded_and_never_shown(&token, &format!("env:{TOKEN_VAR}"), &config, &[(TOKEN_VAR, &token)], &dir);
}

#[test]
fn admin_token_from_file_guards_the_admin_and_is_never_shown() {
    use std::os::unix::fs::PermissionsExt;
    let token = unique_token();
    let dir = TempDir::new();
    // As `echo TOKEN > file` writes it: the newline is not part of the token.
    let token_file = dir.write("admin.token", &format!("{token}\n"));
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = ProxyConfig::new()
        .admin_option(&format!("token = \"file:{}\"", token_file.display()))
        .route(Route::new("all").direct(200, "ok"));
    assert_guarded_and_never_shown(&token, &format!("file:{}", token_file.display()), &config, &[], &dir);
}

#[test]
fn a_token_file_other_users_can_read_draws_a_warning_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let token = unique_token();
    let dir = TempDir::new();
    let token_file = dir.write("admin.token", &token);
    let config = ProxyConfig::new()
        .admin_option(&format!("token = \"file:{}\"", token_file.display()))
        .route(Route::new("all").direct(200, "ok"));
    let warning = |log: &str| {
        log.lines()
            .find(|l| l.contains("WARN") && l.contains("admin.token") && l.contains("readable by other users"))
            .map(str::to_owned)
    };

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (proxy, file) = start(&config, &dir, &[]);
    assert_eq!(warning(&proxy.log()), None, "mode 0600 is private:\n{}", proxy.log());
    drop(proxy);

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (proxy, _) = start(&config, &dir, &[]);
    // A warning, not a refusal: the proxy serves, the token still guards.
    assert_eq!(admin_get(&proxy, "/stats", Some(&format!("Bearer {token}"))).status, 200);
    assert_eq!(admin_get(&proxy, "/stats", None).status, 401);
    let line = warning(&proxy.log()).unwrap_or_else(|| panic!("no warning in:\n{}", proxy.log()));
    assert!(line.contains(&token_file.display().to_string()) && line.contains("(mode 0644)"), "{line}");
    assert!(!proxy.log().contains(&token), "{}", proxy.log());

    let checked = check(&file, &[]);
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(checked.status.code(), Some(0), "{stderr}");
    let line = warning(&stderr).unwrap_or_else(|| panic!("no warning from check:\n{stderr}"));
    assert!(line.contains(&token_file.display().to_string()), "{line}");
}

#[test]
fn an_unset_token_variable_stops_the_start_with_the_field_and_line() {
    let config = ProxyConfig::new()
        .admin_option("token = \"env:SHARDGATE_E2E_TOKEN_NEVER_SET\"")
        .route(Route::new("all").direct(200, "ok"));
    let dir = TempDir::new();
    let file = dir.write("shardgate.toml", &config.to_toml());
    let mut command = shardgate();
    command.args(["run", "-c", &file.display().to_string()]).args(runtime_args());
    let output = run_to_completion(command, b"", std::time::Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let line = config.to_toml().lines().position(|l| l.contains("NEVER_SET")).unwrap() + 1;
    assert!(
        stderr.contains(&format!(
            "admin.token: environment variable SHARDGATE_E2E_TOKEN_NEVER_SET is not set (line {line})"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}
