//! What a bare-metal install uses besides `run`: `shardgate version`,
//! shell completions, the manual page, and the default config the Debian
//! package installs (`packaging/shardgate.toml`, which `check` must pass).

use std::path::Path;

use crate::harness::proxy::shardgate_output;
use crate::harness::tempdir::TempDir;

const SUBCOMMANDS: &[&str] = &["run", "check", "proxy", "echo", "demo", "version", "completions", "man"];

fn stdout_of(args: &[&str]) -> String {
    let output = shardgate_output(args);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[test]
fn version_prints_the_build_details() {
    let text = stdout_of(&["version"]);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} line in:\n{text}"))
            .to_string()
    };
    assert_eq!(text.lines().next(), Some(format!("shardgate {}", env!("CARGO_PKG_VERSION")).as_str()), "{text}");
    let commit = field("commit: ");
    assert!(commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()), "commit {commit:?}");
    assert!(field("rustc: ").starts_with("rustc 1."), "{text}");
    assert!(field("target: ").contains("linux"), "{text}");
    assert_eq!(field("io drivers: "), "io_uring, epoll");
    assert!(!field("io_uring on this kernel: ").is_empty());
    // clap's flag still answers with the short form.
    assert_eq!(stdout_of(&["--version"]).trim(), format!("shardgate {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn completions_name_every_subcommand_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completions lack {sub:?}");
        }
        // And the flags of `run`, which operators type most.
        assert!(script.contains("drain-timeout"), "{shell} completions lack --drain-timeout");
    }
    let bash = stdout_of(&["completions", "bash"]);
    assert!(bash.contains("complete -F _shardgate"), "not a bash completion script");
    assert!(stdout_of(&["completions", "zsh"]).starts_with("#compdef shardgate"));
    assert!(stdout_of(&["completions", "fish"]).contains("complete -c shardgate"));
    assert_eq!(shardgate_output(&["completions", "tcsh"]).status.code(), Some(2), "an unknown shell is a usage error");
}

/// The `.SH` section names of a roff page.
fn sections(page: &str) -> Vec<&str> {
    page.lines().filter_map(|l| l.strip_prefix(".SH ")).map(|s| s.trim_matches('"')).collect()
}

#[test]
fn man_prints_a_roff_page_with_name_synopsis_and_subcommands() {
    let page = stdout_of(&["man"]);
    assert!(page.lines().any(|l| l.starts_with(".TH shardgate 1")), "no .TH title:\n{page}");
    let names = sections(&page);
    for wanted in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SUBCOMMANDS", "SIGNALS", "FILES", "VERSION"] {
        assert!(names.contains(&wanted), "no {wanted} section; sections: {names:?}");
    }
    assert!(page.contains("shardgate \\- "), "NAME line missing");
    for sub in SUBCOMMANDS {
        assert!(page.contains(&format!("shardgate\\-{sub}(1)")), "SUBCOMMANDS lacks {sub}");
    }
}

#[test]
fn man_out_dir_writes_a_page_per_subcommand() {
    let dir = TempDir::new();
    let out = dir.path().join("man1");
    stdout_of(&["man", "--out-dir", &out.display().to_string()]);
    let top = std::fs::read_to_string(out.join("shardgate.1")).expect("shardgate.1");
    assert!(sections(&top).contains(&"SIGNALS"), "the top page lacks our sections");
    for sub in SUBCOMMANDS {
        let page = std::fs::read_to_string(out.join(format!("shardgate-{sub}.1")))
            .unwrap_or_else(|e| panic!("shardgate-{sub}.1: {e}"));
        assert!(sections(&page).contains(&"SYNOPSIS"), "shardgate-{sub}.1 has no SYNOPSIS");
    }
    let run = std::fs::read_to_string(out.join("shardgate-run.1")).unwrap();
    assert!(run.contains("\\-\\-drain\\-timeout"), "shardgate-run.1 does not list the tuning flags");
}

#[test]
fn the_packaged_default_config_passes_check() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/shardgate.toml");
    let output = shardgate_output(&["check", "-c", &file.display().to_string()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
