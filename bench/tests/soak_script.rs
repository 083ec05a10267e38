//! The soak (`scripts/soak.sh`, Python, standard library only) has unit
//! tests of its bookkeeping: how load reports become injected and
//! unexpected errors, the verdict, the plot. This runs them from `cargo
//! test`, so the project's one test command covers them. Nothing is
//! started; the soak itself is a long run, not a test.

use std::path::Path;
use std::process::Command;

#[test]
fn soak_unit_tests_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/soak");
    let out = Command::new("python3")
        .args(["-B", "-m", "unittest", "test_soak"])
        .current_dir(&dir)
        .output()
        .expect("python3 runs (the soak needs it too)");
    assert!(
        out.status.success(),
        "soak unit tests failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
