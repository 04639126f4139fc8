//! Waiting for an event instead of sleeping for a guessed time.

use std::time::Duration;

use tokio::time::{sleep, Instant};

/// How long [`eventually`] waits before failing the test.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds; fails the test with `what` after [`PATIENCE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20)).await;
    }
}
