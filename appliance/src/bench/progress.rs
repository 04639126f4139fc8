//! The progress line: once a second on stderr while a run goes on, so an
//! operator sees a stall or a collapse as it happens, not after the end.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use super::scenario::Phase;

/// Prints `line(elapsed)` every second until the run stops; elapsed is
/// counted from now. Does nothing when `quiet`.
pub(crate) fn spawn(
    quiet: bool,
    mut phase: watch::Receiver<Phase>,
    mut line: impl FnMut(Duration) -> String + Send + 'static,
) -> Option<JoinHandle<()>> {
    if quiet {
        return None;
    }
    let start = Instant::now();
    Some(tokio::spawn(async move {
        let mut tick = interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = phase.changed() => if changed.is_err() || *phase.borrow() == Phase::Stopping { break },
                _ = tick.tick() => eprintln!("{}", line(start.elapsed())),
            }
        }
    }))
}

/// A count per second with thousands separators, for the progress line
/// and the text report.
pub(crate) fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped_by_three() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1_000), "1,000");
        assert_eq!(group_digits(12_345_678), "12,345,678");
    }
}
