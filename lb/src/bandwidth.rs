//! Per-connection bandwidth limits: a governor rate limiter whose cells are
//! bytes (or larger units at high rates). The copy loop reads at most one
//! chunk (never more than the burst), charges it, and sleeps when the
//! limiter says so; not reading is what slows the sender down (TCP
//! back-pressure), no data is dropped.
//!
//! Two governor pitfalls are handled here: `check_n` with more cells than
//! the burst fails for ever (`InsufficientCapacity`) instead of waiting, so
//! a chunk never exceeds the burst; and the time per cell is kept in whole
//! nanoseconds, so cells are made big enough that there are at most a
//! million per second (>= 1 us each: the rounding costs under 0.1 %).

use std::num::NonZeroU32;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use skerry_config::units::Bandwidth;

/// At most this many cells per second (see the module doc).
const MAX_CELLS_PER_SEC: u64 = 1_000_000;
/// Credit a quiet connection may build up: 100 ms worth of its rate.
const BURST_DIVISOR: u64 = 10;

/// One direction's limiter.
#[derive(Debug)]
pub(crate) struct Throttle {
    limiter: DefaultDirectRateLimiter,
    /// Bytes per cell.
    unit: u64,
    /// Largest read, in bytes: at most the burst.
    chunk: usize,
}

impl Throttle {
    /// A limiter for `bw`, for a copy loop whose buffer holds `buf_len` bytes.
    pub(crate) fn new(bw: Bandwidth, buf_len: usize) -> Throttle {
        let bps = bw.bytes_per_sec.get();
        let unit = bps.div_ceil(MAX_CELLS_PER_SEC).max(1);
        let cells_per_sec = to_nonzero(bps / unit);
        let buf_cells = (buf_len as u64).div_ceil(unit);
        let burst = to_nonzero((bps / unit / BURST_DIVISOR).max(buf_cells));
        let quota = Quota::per_second(cells_per_sec).allow_burst(burst);
        let burst_bytes = u64::from(burst.get()) * unit;
        Throttle {
            limiter: RateLimiter::direct(quota),
            unit,
            chunk: usize::try_from(burst_bytes).unwrap_or(usize::MAX).min(buf_len).max(1),
        }
    }

    /// The most bytes to read before the next [`Throttle::charge`].
    pub(crate) fn chunk(&self) -> usize {
        self.chunk
    }

    /// Waits until `bytes` (at most [`Throttle::chunk`]) may pass.
    pub(crate) async fn charge(&self, bytes: usize) {
        let cells = to_nonzero((bytes as u64).div_ceil(self.unit));
        loop {
            match self.limiter.check_n(cells) {
                Ok(Ok(())) => return,
                Ok(Err(not_until)) => {
                    let wait = not_until.wait_time_from(self.limiter.clock().now());
                    tokio::time::sleep(wait).await;
                }
                // Cannot happen: a chunk never exceeds the burst. Letting
                // the bytes through beats stalling the connection for ever.
                Err(_) => return,
            }
        }
    }
}

fn to_nonzero(n: u64) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;
    use std::time::{Duration, Instant};

    use super::*;

    fn bw(bytes_per_sec: u64) -> Bandwidth {
        Bandwidth {
            bytes_per_sec: NonZeroU64::new(bytes_per_sec).unwrap(),
        }
    }

    #[test]
    fn chunk_never_exceeds_buffer_or_burst() {
        assert_eq!(Throttle::new(bw(64 * 1024), 8192).chunk(), 8192);
        assert_eq!(Throttle::new(bw(100), 8192).chunk(), 8192, "burst grows to one buffer");
        let fast = Throttle::new(bw(10 << 30), 8192);
        assert_eq!(fast.chunk(), 8192);
        assert!(fast.unit > 1, "10 GiB/s needs cells bigger than a byte");
    }

    #[tokio::test]
    async fn slow_rate_makes_the_copy_wait() {
        let t = Throttle::new(bw(64 * 1024), 8192);
        let start = Instant::now();
        // 8 KiB of burst, then 16 KiB at 64 KiB/s: about 250 ms.
        for _ in 0..3 {
            t.charge(8192).await;
        }
        assert!(start.elapsed() >= Duration::from_millis(200), "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn fast_rate_does_not() {
        let t = Throttle::new(bw(1 << 30), 8192);
        let start = Instant::now();
        for _ in 0..100 {
            t.charge(8192).await;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    }
}
