//! Pacing for `--rate`: one clock thread spaces the run's messages evenly
//! over time and across its publishers (message k belongs to publisher
//! k mod n), so that 4,000 msg/s from 8 publishers leave one every 250 µs
//! instead of 8 at once every 2 ms. tokio's timers tick in whole
//! milliseconds and publishers started together would all wake on the same
//! tick, queueing behind each other in the broker: a latency run would
//! measure the generator's bursts. The thread sleeps on the OS's
//! high-resolution timer and only counts messages as due; a publisher
//! stamps each message when it writes it, so a late wake-up delays a
//! message but never shows as latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Notify;

/// Shortest sleep of the clock: at high rates it releases a batch per
/// wake-up instead of spinning.
const MIN_SLEEP: Duration = Duration::from_micros(50);
/// Longest sleep, so that the thread notices a finished run at low rates.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// One publisher's count of messages due and not yet sent.
#[derive(Debug, Default)]
pub(crate) struct Beat {
    due: AtomicU64,
    notify: Notify,
}

impl Beat {
    fn release(&self, n: u64) {
        self.due.fetch_add(n, Ordering::AcqRel);
        self.notify.notify_one();
    }
}

/// What a publisher paces itself by.
#[derive(Debug)]
pub(crate) enum Pacer {
    /// No `--rate`: everything is due at once.
    Unlimited,
    Paced(Arc<Beat>),
}

impl Pacer {
    /// Messages due now; at least one once [`Pacer::ready`] returned.
    pub(crate) fn due(&self) -> u64 {
        match self {
            Pacer::Unlimited => u64::MAX,
            Pacer::Paced(beat) => beat.due.load(Ordering::Acquire),
        }
    }

    /// Counts `n` due messages as sent.
    pub(crate) fn sent(&self, n: u64) {
        if let Pacer::Paced(beat) = self {
            beat.due.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Waits until a message is due.
    pub(crate) async fn ready(&self) {
        let Pacer::Paced(beat) = self else { return };
        // `notify_one` keeps a permit when nobody waits, so a release
        // between the check and the wait is not missed.
        while beat.due.load(Ordering::Acquire) == 0 {
            beat.notify.notified().await;
        }
    }
}

/// The clock of a paced run, before it starts.
#[derive(Debug)]
pub(crate) struct Metronome {
    /// Messages per second across all publishers.
    rate: f64,
    beats: Vec<Arc<Beat>>,
}

impl Metronome {
    /// `None` when the run is not paced (`rate` 0).
    pub(crate) fn new(rate: u64, publishers: u32) -> Option<Self> {
        (rate > 0).then(|| Self {
            rate: rate as f64,
            beats: (0..publishers.max(1)).map(|_| Arc::default()).collect(),
        })
    }

    /// The pacer of publisher `index`.
    pub(crate) fn pacer(&self, index: u32) -> Pacer {
        Pacer::Paced(Arc::clone(&self.beats[index as usize % self.beats.len()]))
    }

    /// Starts the clock; it stops once every publisher has dropped its
    /// pacer.
    pub(crate) fn start(self) -> anyhow::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("skerry-bench-clock".into())
            .spawn(move || self.run())
            .context("cannot start the pacing thread")
    }

    fn run(self) {
        let start = Instant::now();
        let n = self.beats.len() as u64;
        let mut released = vec![0u64; self.beats.len()];
        while self.beats.iter().any(|b| Arc::strong_count(b) > 1) {
            let total = due_total(start.elapsed(), self.rate);
            for (i, (beat, done)) in self.beats.iter().zip(&mut released).enumerate() {
                let due = share(total, i as u64, n);
                if due > *done {
                    beat.release(due - *done);
                    *done = due;
                }
            }
            // Message number `total` (counted from 0) is the next one due.
            let next = Duration::from_secs_f64(total as f64 / self.rate);
            std::thread::sleep(next.saturating_sub(start.elapsed()).clamp(MIN_SLEEP, MAX_SLEEP));
        }
    }
}

/// Messages due across the run `elapsed` after its start: the first at once.
fn due_total(elapsed: Duration, rate: f64) -> u64 {
    (elapsed.as_secs_f64() * rate) as u64 + 1
}

/// How many of the first `total` messages belong to publisher `i` of `n`.
fn share(total: u64, i: u64, n: u64) -> u64 {
    if total > i {
        (total - i).div_ceil(n)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_dealt_in_turn_and_spaced_by_the_rate() {
        assert_eq!(due_total(Duration::ZERO, 4000.0), 1);
        assert_eq!(due_total(Duration::from_micros(249), 4000.0), 1);
        assert_eq!(due_total(Duration::from_micros(250), 4000.0), 2);
        assert_eq!(due_total(Duration::from_millis(2), 4000.0), 9);
        // 9 messages over 8 publishers: the first has two, the others one.
        let shares: Vec<u64> = (0..8).map(|i| share(9, i, 8)).collect();
        assert_eq!(shares, [2, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!((0..3).map(|i| share(2, i, 3)).collect::<Vec<_>>(), [1, 1, 0]);
        assert_eq!((0..3).map(|i| share(1000, i, 3)).sum::<u64>(), 1000);
    }

    /// Fails instead of hanging when what it waits for never happens.
    async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .unwrap_or_else(|_| panic!("{what}"))
    }

    #[tokio::test]
    async fn publishers_wake_when_due_and_the_clock_stops_with_them() {
        let clock = Metronome::new(2000, 2).unwrap();
        let (a, b) = (clock.pacer(0), clock.pacer(1));
        assert_eq!((a.due(), b.due()), (0, 0));
        let thread = clock.start().unwrap();
        within("a's first message", a.ready()).await;
        within("b's first message", b.ready()).await;
        let due = a.due();
        assert!(due >= 1);
        a.sent(due);
        within("a's next message", a.ready()).await;
        drop((a, b));
        within(
            "the clock stops",
            tokio::task::spawn_blocking(move || thread.join().unwrap()),
        )
        .await
        .unwrap();
        assert_eq!(Pacer::Unlimited.due(), u64::MAX);
    }
}
