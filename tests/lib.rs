//! Helpers for Skerry's end-to-end tests: where the built binary is, and
//! running it as an operator would.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of the `skerry` binary built by this workspace (`cargo build`
/// puts it next to the test binary's `deps/` folder).
pub fn skerry_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let bin = dir.join(format!("skerry{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `bash tests/run` (it builds the binary first)",
        bin.display()
    );
    bin
}

/// Runs `skerry ARGS...` to completion and returns its output.
pub fn skerry(args: &[&str]) -> Output {
    Command::new(skerry_bin()).args(args).output().expect("spawn skerry")
}
