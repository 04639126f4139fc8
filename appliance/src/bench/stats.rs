//! Measurements shared by the tasks of a run: the measured window, live
//! counters (read once a second by the progress line and by the drain
//! check) and latency histograms.
//!
//! Tasks count locally and add to the atomics once per batch, and record
//! latencies into a few sharded histograms once per batch too, so neither
//! costs an atomic or a lock per message, and memory does not grow with
//! the number of connections.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency tracked, in microseconds (one minute); higher values
/// are recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Significant figures: microsecond resolution up to a millisecond, 0.1 %
/// above.
const SIGNIFICANT_FIGURES: u8 = 3;

/// The measured window, in [`super::payload::now_ns`] time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start_ns: u64,
    pub(crate) end_ns: u64,
}

impl Window {
    /// Whether a message sent at `ns` is measured.
    pub(crate) fn contains(&self, ns: u64) -> bool {
        (self.start_ns..self.end_ns).contains(&ns)
    }
}

/// Counters every task adds to; totals include warmup, `*_measured` only
/// the window.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Set when publishing starts.
    pub(crate) window: OnceLock<Window>,
    pub(crate) sent: AtomicU64,
    pub(crate) sent_measured: AtomicU64,
    /// QoS 1/2 publishes the broker acknowledged (PUBACK / PUBCOMP).
    pub(crate) acked: AtomicU64,
    pub(crate) acked_measured: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Distinct measured messages, counted per receiving connection.
    pub(crate) received_measured: AtomicU64,
    /// Publishers past the end of the window.
    pub(crate) publishers_done: AtomicU32,
}

impl Counters {
    /// Adds `n` to `counter` unless it is zero.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads `counter`.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Latency histograms, sharded so that tasks on different threads rarely
/// wait for each other.
#[derive(Debug)]
pub(crate) struct LatencySink {
    shards: Vec<Mutex<Histogram<u64>>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_FIGURES).expect("constant histogram bounds are valid")
}

impl LatencySink {
    /// A sink with `shards` histograms (at least one).
    pub(crate) fn new(shards: usize) -> Arc<Self> {
        Arc::new(Self {
            shards: (0..shards.max(1)).map(|_| Mutex::new(histogram())).collect(),
        })
    }

    /// A recorder for task number `task`.
    pub(crate) fn recorder(self: &Arc<Self>, task: usize) -> Recorder {
        Recorder {
            sink: Arc::clone(self),
            shard: task % self.shards.len(),
            pending: Vec::new(),
        }
    }

    /// Every shard added together.
    pub(crate) fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            all.add(&*shard).expect("histograms with the same bounds add up");
        }
        all
    }
}

/// One task's handle on a [`LatencySink`]: latencies wait in a local
/// buffer until [`Recorder::flush`].
#[derive(Debug)]
pub(crate) struct Recorder {
    sink: Arc<LatencySink>,
    shard: usize,
    pending: Vec<u64>,
}

impl Recorder {
    /// Notes a latency given in nanoseconds.
    pub(crate) fn record_ns(&mut self, ns: u64) {
        self.pending.push((ns / 1_000).max(1));
    }

    /// Moves the buffered latencies into the shared histogram.
    pub(crate) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut hist = self.sink.shards[self.shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for us in self.pending.drain(..) {
            hist.saturating_record(us);
        }
    }
}

/// Latency percentiles in milliseconds with three decimals (the histogram
/// counts microseconds); `None` without samples.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Percentiles {
    pub(crate) p50: Option<f64>,
    pub(crate) p90: Option<f64>,
    pub(crate) p99: Option<f64>,
    pub(crate) p999: Option<f64>,
    pub(crate) max: Option<f64>,
}

impl Percentiles {
    /// Reads the percentiles of `hist`.
    pub(crate) fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| Some(us as f64 / 1_000.0);
        let q = |quantile: f64| ms(hist.value_at_quantile(quantile).min(hist.max()));
        Self {
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(hist.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_ordered_milliseconds() {
        let sink = LatencySink::new(2);
        let (mut a, mut b) = (sink.recorder(0), sink.recorder(1));
        for i in 1..=1000u64 {
            a.record_ns(i * 1_000);
            b.record_ns(i * 2_000);
        }
        a.flush();
        b.flush();
        let p = Percentiles::of(&sink.merged());
        let (p50, p99, p999, max) = (p.p50.unwrap(), p.p99.unwrap(), p.p999.unwrap(), p.max.unwrap());
        assert!(p50 <= p99 && p99 <= p999 && p999 <= max, "{p:?}");
        // Half of the 2,000 samples are at most 667 us.
        assert!((0.666..=0.668).contains(&p50), "{p50}");
        assert_eq!(max, 2.0);
    }

    #[test]
    fn no_samples_no_percentiles() {
        assert!(Percentiles::of(&LatencySink::new(1).merged()).p50.is_none());
    }
}
