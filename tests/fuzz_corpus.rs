//! Replays every committed fuzz input — the seed corpora in
//! `fuzz/corpus/TARGET/` and the reduced crashes in
//! `fuzz/regressions/TARGET/` — through the target's library function
//! (`shardgate::fuzzing`), with plain `cargo test`: no libFuzzer, no
//! sanitizer build. A violated property panics inside the target; this
//! test names the file and the target.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use shardgate::fuzzing::TARGETS;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        entries.map(|e| e.expect("a directory entry").path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_keeps_its_target_properties() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = Vec::new();
    for (name, target) in TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "no seed corpus for target {name} in fuzz/corpus/{name}/");
        for file in corpus.iter().chain(inputs(&root.join("regressions").join(name)).iter()) {
            let data = std::fs::read(file).expect("a readable input");
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&data))) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name}: {}: {why}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{} input(s) broke a property:\n{}", failures.len(), failures.join("\n"));
}

/// Every target has its cargo-fuzz binary, so `scripts/fuzz.sh` runs them all.
#[test]
fn every_target_has_a_fuzz_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in TARGETS {
        assert!(root.join("fuzz_targets").join(format!("{name}.rs")).is_file(), "fuzz/fuzz_targets/{name}.rs");
        assert!(manifest.contains(&format!("name = \"{name}\"")), "[[bin]] {name} in fuzz/Cargo.toml");
    }
}
