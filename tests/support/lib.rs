//! Helpers for Skerry's end-to-end tests: the built binary, broker nodes
//! started in-process on ephemeral ports, and a raw MQTT client built on the
//! codec for the packets friendly clients never send.

pub mod broker;
pub mod hostile;
pub mod process;
pub mod raw;
pub mod stream;
pub mod tls;
pub mod wait;

use std::path::{Path, PathBuf};
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

/// Writes `yaml` to `dir/skerry.yaml` and runs `skerry run -c` on it,
/// expecting it to fail at start: its first `error: ` line (empty if none)
/// and its whole stderr.
pub fn run_start_error(dir: &Path, yaml: &str) -> (String, String) {
    let file = dir.join("skerry.yaml");
    std::fs::write(&file, yaml).expect("write the config");
    let out = skerry(&["run", "-c", file.to_str().expect("utf-8 path")]);
    assert!(!out.status.success(), "skerry run started: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default()
        .to_owned();
    (line, stderr)
}

/// Whether an outside tool is installed; tests that need one say so and skip
/// only when it is absent (`tests/run` installs them).
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}
