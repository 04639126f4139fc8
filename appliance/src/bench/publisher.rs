//! A publishing connection: sends stamped messages from the start of the
//! run to the end of the measured window, paced by its turns of `--rate`
//! (see [`super::metronome`]) and, at QoS 1/2, by its window of
//! unacknowledged messages; then waits for the remaining acknowledgements
//! until the run stops.
//!
//! Each wake-up sends everything that is due in one batch (one write).

use std::num::NonZeroU16;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use skerry_codec::{Ack, Packet, QoS};
use tokio::sync::watch;
use tokio::time::{Instant, Interval};

use super::metronome::Pacer;
use super::net::{ping_interval, Client};
use super::payload::{now_ns, PublishTemplate, Stamp};
use super::scenario::Phase;
use super::stats::{Counters, Recorder, Window};

/// Bytes of publishes written per batch at most.
const BATCH_BYTES: usize = 64 * 1024;

/// What one publisher sends.
#[derive(Debug)]
pub(crate) struct PublisherSpec {
    /// Index of the publisher, written into every sequence number.
    pub(crate) index: u32,
    pub(crate) template: PublishTemplate,
    pub(crate) qos: QoS,
    /// Its turns of `--rate`.
    pub(crate) pacer: Pacer,
    /// Unacknowledged QoS 1/2 messages allowed.
    pub(crate) inflight: u16,
}

/// Shared state a publisher reports into.
#[derive(Debug)]
pub(crate) struct PublisherCtx {
    pub(crate) counters: Arc<Counters>,
    /// Where acknowledgement latency goes, when it is what the run measures.
    pub(crate) ack_latency: Option<Recorder>,
    pub(crate) phase: watch::Receiver<Phase>,
    pub(crate) keep_alive: Duration,
}

/// Runs a connected publisher until the run stops.
pub(crate) async fn run(mut client: Client, spec: PublisherSpec, ctx: PublisherCtx) -> anyhow::Result<()> {
    let PublisherCtx {
        counters,
        ack_latency,
        mut phase,
        keep_alive,
    } = ctx;
    let mut done = DoneFlag {
        counters: Arc::clone(&counters),
        marked: false,
    };
    let mut ping = ping_interval(keep_alive);
    let Some(window) = started(&mut client, &mut phase, &mut ping, &counters).await? else {
        client.close().await;
        return Ok(());
    };
    let window_end =
        tokio::time::sleep_until(Instant::now() + Duration::from_nanos(window.end_ns.saturating_sub(now_ns())));
    tokio::pin!(window_end);
    let limit = client
        .server_receive_maximum
        .map_or(spec.inflight, |m| m.get().min(spec.inflight));
    let mut state = Publisher::new(spec, limit, window, counters, ack_latency);
    loop {
        let can_send = state.sending && state.inflight.as_ref().is_none_or(InFlight::has_room);
        tokio::select! {
            biased;
            changed = phase.changed() => if changed.is_err() || *phase.borrow() == Phase::Stopping { break },
            read = client.fill() => {
                read?;
                state.on_readable(&mut client)?;
                client.flush().await?;
            }
            () = &mut window_end, if state.sending => state.sending = false,
            () = state.spec.pacer.ready(), if can_send => {
                state.send_batch(&mut client);
                client.flush().await?;
            }
            _ = ping.tick() => {
                client.queue(&Packet::PingReq)?;
                client.flush().await?;
            }
        }
        if !state.sending {
            done.mark();
        }
    }
    client.close().await;
    Ok(())
}

/// Waits for the run to start, pinging meanwhile (connecting thousands of
/// clients can outlast a keep alive); the window, or `None` if the run
/// stopped instead.
async fn started(
    client: &mut Client,
    phase: &mut watch::Receiver<Phase>,
    ping: &mut Interval,
    counters: &Counters,
) -> anyhow::Result<Option<Window>> {
    loop {
        tokio::select! {
            running = leaves_connecting(phase) => {
                return Ok(running.then(|| counters.window.get().copied()).flatten());
            }
            _ = ping.tick() => {
                client.queue(&Packet::PingReq)?;
                client.flush().await?;
            }
        }
    }
}

/// Whether the run moves on from connecting to running (not stopping).
async fn leaves_connecting(phase: &mut watch::Receiver<Phase>) -> bool {
    let next = phase.wait_for(|p| *p != Phase::Connecting).await;
    matches!(next.as_deref(), Ok(Phase::Running))
}

/// Counts the publisher as done sending exactly once, also when it fails.
struct DoneFlag {
    counters: Arc<Counters>,
    marked: bool,
}

impl DoneFlag {
    fn mark(&mut self) {
        if !std::mem::replace(&mut self.marked, true) {
            self.counters.publishers_done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for DoneFlag {
    fn drop(&mut self) {
        self.mark();
    }
}

/// The sending state of one publisher.
struct Publisher {
    spec: PublisherSpec,
    window: Window,
    counters: Arc<Counters>,
    ack_latency: Option<Recorder>,
    /// `None` at QoS 0.
    inflight: Option<InFlight>,
    sending: bool,
    next_count: u64,
    batch_max: u64,
}

impl Publisher {
    fn new(
        spec: PublisherSpec,
        limit: u16,
        window: Window,
        counters: Arc<Counters>,
        ack_latency: Option<Recorder>,
    ) -> Self {
        let inflight = (spec.qos != QoS::AtMostOnce).then(|| InFlight::new(limit));
        let batch_max = (BATCH_BYTES / spec.template.len()).max(1) as u64;
        Self {
            spec,
            window,
            counters,
            ack_latency,
            inflight,
            sending: true,
            next_count: 0,
            batch_max,
        }
    }

    /// Writes the messages that are due into the client's buffer.
    fn send_batch(&mut self, client: &mut Client) {
        let now = now_ns();
        if now >= self.window.end_ns {
            self.sending = false;
            return;
        }
        let room = self.inflight.as_ref().map_or(u64::MAX, |w| w.free.len() as u64);
        let n = self.spec.pacer.due().min(room).min(self.batch_max);
        let buf = client.write_buf();
        for _ in 0..n {
            let id = self.inflight.as_mut().and_then(|w| w.take(now));
            let stamp = Stamp::new(now, self.spec.index, self.next_count);
            self.spec.template.append(buf, id, stamp);
            self.next_count += 1;
        }
        self.spec.pacer.sent(n);
        Counters::add(&self.counters.sent, n);
        if self.window.contains(now) {
            Counters::add(&self.counters.sent_measured, n);
        }
    }

    /// Handles the acknowledgements in the read buffer.
    fn on_readable(&mut self, client: &mut Client) -> anyhow::Result<()> {
        let now = now_ns();
        let (mut acked, mut measured) = (0, 0);
        while let Some(packet) = client.next_packet()? {
            let done = match packet {
                Packet::PubAck(ack) | Packet::PubComp(ack) if !ack.reason.is_error() => ack.packet_id,
                Packet::PubAck(ack) | Packet::PubComp(ack) => {
                    // Refused by the broker: never acknowledged, so lost.
                    self.inflight.as_mut().and_then(|w| w.complete(ack.packet_id));
                    continue;
                }
                Packet::PubRec(ack) if !ack.reason.is_error() => {
                    client.queue(&Packet::PubRel(Ack::new(ack.packet_id)))?;
                    continue;
                }
                _ => continue,
            };
            let Some(sent) = self.inflight.as_mut().and_then(|w| w.complete(done)) else {
                continue;
            };
            acked += 1;
            if self.window.contains(sent) {
                measured += 1;
                if let Some(rec) = self.ack_latency.as_mut() {
                    rec.record_ns(now.saturating_sub(sent));
                }
            }
        }
        Counters::add(&self.counters.acked, acked);
        Counters::add(&self.counters.acked_measured, measured);
        if let Some(rec) = self.ack_latency.as_mut() {
            rec.flush();
        }
        Ok(())
    }
}

/// Packet identifiers of unacknowledged messages and when each was sent.
struct InFlight {
    free: Vec<NonZeroU16>,
    /// Send time by packet identifier - 1; `None` when free.
    sent_at: Vec<Option<u64>>,
}

impl InFlight {
    fn new(size: u16) -> Self {
        Self {
            free: (1..=size).rev().filter_map(NonZeroU16::new).collect(),
            sent_at: vec![None; usize::from(size)],
        }
    }

    fn has_room(&self) -> bool {
        !self.free.is_empty()
    }

    fn take(&mut self, now: u64) -> Option<NonZeroU16> {
        let id = self.free.pop()?;
        self.sent_at[usize::from(id.get() - 1)] = Some(now);
        Some(id)
    }

    /// Frees `id`; its send time, or `None` if it was not in flight.
    fn complete(&mut self, id: NonZeroU16) -> Option<u64> {
        let sent = self.sent_at.get_mut(usize::from(id.get() - 1))?.take()?;
        self.free.push(id);
        Some(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_window_hands_out_and_takes_back_ids() {
        let mut w = InFlight::new(2);
        let a = w.take(10).unwrap();
        let b = w.take(20).unwrap();
        assert!(!w.has_room() && w.take(30).is_none());
        assert_eq!(w.complete(b), Some(20));
        assert_eq!(w.complete(b), None, "acknowledged twice");
        assert_eq!(w.complete(a), Some(10));
        assert_eq!(w.free.len(), 2);
    }
}
