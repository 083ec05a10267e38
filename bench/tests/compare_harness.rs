//! The comparison harness (`bench/compare`, Python, standard library only)
//! has unit tests of its own; this runs them from `cargo test`, so the
//! project's one test command covers them too. No contender is started.

use std::process::Command;

#[test]
fn harness_unit_tests_pass() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .args(["-B", "-m", "unittest", "harness.test_harness"])
        .current_dir(dir)
        .output()
        .expect("python3 runs (bench/compare needs it too)");
    assert!(
        out.status.success(),
        "harness unit tests failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
