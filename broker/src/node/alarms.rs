//! Keep-alive alarms: one clock for every connection of a node instead of
//! a timer in each. A connection sets an alarm for its keep-alive deadline,
//! once per deadline rather than per packet; when its tick comes, the clock
//! wakes the connection through its mailbox and the connection looks at
//! its own deadline, which may have moved on since (then it sets the next
//! alarm). An alarm costs its session key in a bucket: a tokio timer was
//! 128 bytes per connection, held for the connection's whole life.

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::{Instant, MissedTickBehavior};

use super::NodeShared;
use crate::router::SessionKey;

/// How often the clock looks: an alarm rings at most this late.
const TICK: Duration = Duration::from_millis(250);

/// Alarms by the tick they ring at (ticks counted from `start`).
pub(crate) struct Alarms {
    start: Instant,
    due: Mutex<BTreeMap<u64, Vec<SessionKey>>>,
}

impl Alarms {
    pub(super) fn new() -> Self {
        Self {
            start: Instant::now(),
            due: Mutex::default(),
        }
    }

    /// The tick `at` falls in, counted from 1 (0 can then mean "never").
    /// An alarm set for tick `n` rings when tick `n` ends.
    pub(crate) fn tick(&self, at: Instant) -> u32 {
        u32::try_from(self.tick_of(at) + 1).unwrap_or(u32::MAX)
    }

    /// Ticks that cover `d`, rounded up.
    pub(crate) fn ticks_in(d: Duration) -> u32 {
        u32::try_from(d.as_nanos().div_ceil(TICK.as_nanos())).unwrap_or(u32::MAX)
    }

    /// Sets an alarm for the connection of session `key` at the end of
    /// tick `tick`.
    pub(crate) fn set(&self, tick: u32, key: SessionKey) {
        self.due.lock().entry(u64::from(tick)).or_default().push(key);
    }

    /// Ticks from `start` to `at`, rounded down.
    fn tick_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.start);
        u64::try_from(since.as_nanos() / TICK.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Takes the alarms due at `now`.
    fn take_due(&self, now: Instant) -> Vec<SessionKey> {
        let mut due = self.due.lock();
        let later = due.split_off(&(self.tick_of(now) + 1));
        std::mem::replace(&mut *due, later).into_values().flatten().collect()
    }
}

impl NodeShared {
    /// Rings the keep-alive alarms as they come due, until the node shuts down.
    pub(super) async fn run_alarms(&self) {
        let mut clock = tokio::time::interval(TICK);
        clock.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = clock.tick() => self.ring(Instant::now()),
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Wakes the connections whose alarms are due (a session now attached
    /// to a newer connection wakes that one, which finds nothing to do).
    fn ring(&self, now: Instant) {
        let due = self.alarms.take_due(now);
        if due.is_empty() {
            return;
        }
        let sessions: Vec<_> = {
            let registry = self.sessions.lock();
            due.into_iter()
                .filter_map(|key| registry.by_key(key).cloned())
                .collect()
        };
        for session in sessions {
            session.wake_connection();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_rings_at_its_time_or_within_a_tick_after() {
        let alarms = Alarms::new();
        let at = alarms.start + Duration::from_millis(1_100);
        let tick = alarms.tick(at);
        alarms.set(tick, SessionKey(7));
        let rings = alarms.start + TICK * tick;
        assert!(
            rings >= at && rings - at <= TICK,
            "rings at {:?} for {:?}",
            rings - alarms.start,
            at - alarms.start
        );
        alarms.set(alarms.tick(alarms.start + Duration::from_secs(5)), SessionKey(8));
        assert!(alarms.take_due(at).is_empty(), "not yet at the deadline itself");
        assert_eq!(alarms.take_due(rings), [SessionKey(7)]);
        assert!(alarms.take_due(rings).is_empty(), "an alarm rings once");
        assert_eq!(alarms.take_due(alarms.start + Duration::from_secs(6)), [SessionKey(8)]);
        assert_eq!(Alarms::ticks_in(Duration::from_secs(1)), 4);
        assert_eq!(Alarms::ticks_in(Duration::from_millis(1_001)), 5);
    }
}
