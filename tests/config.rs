//! `skerry config check` and `skerry config example`, run as an operator would.

use std::path::Path;

use skerry_tests::skerry;

fn reference_path() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/skerry.yaml"))
}

#[test]
fn example_prints_the_committed_reference_file() {
    let out = skerry(&["config", "example"]);
    assert!(out.status.success());
    let committed = std::fs::read(reference_path()).unwrap();
    assert_eq!(
        out.stdout, committed,
        "`skerry config example` and packaging/skerry.yaml differ"
    );
}

#[test]
fn check_accepts_the_reference_file() {
    let out = skerry(&["config", "check", reference_path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(": ok\n"));
}

#[test]
fn check_lists_every_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "broker:\n  max_message_rate: 0/s\n  nodes:\n    - name: n1\n      listeners:\n        - bind: 0.0.0.0:88833\n",
    )
    .unwrap();
    let out = skerry(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("2 errors in configuration"), "{stderr}");
    assert!(
        stderr.contains("broker.max_message_rate: line 2 col 21: \"0/s\" is not a non-zero rate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("broker.nodes[0].listeners[0].bind: line 6 col 17: \"0.0.0.0:88833\" is not a socket address"),
        "{stderr}"
    );
}

#[test]
fn check_of_a_missing_file_names_it() {
    let out = skerry(&["config", "check", "/nonexistent/skerry.yaml"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read /nonexistent/skerry.yaml"), "{stderr}");
}
