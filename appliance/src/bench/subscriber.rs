//! A subscribing connection: acknowledges what it receives (PUBACK at QoS
//! 1, PUBREC then PUBCOMP at QoS 2, all acknowledgements of one read sent
//! in one write) and checks every stamp: latency, and which sequence
//! numbers arrived, to find losses and duplicates afterwards.

use std::sync::Arc;
use std::time::Duration;

use skerry_codec::{Ack, Packet, Publish, QoS};
use tokio::sync::watch;

use super::net::{ping_interval, Client};
use super::payload::{now_ns, Stamp};
use super::scenario::Phase;
use super::seqset::{Insert, SeqSet};
use super::stats::{Counters, Recorder, Window};

/// Most publisher indices a subscriber tracks for traffic it did not
/// send itself (`sub`); stamps naming a higher one are not tracked.
const MAX_FOREIGN_PUBLISHERS: u32 = 1 << 16;

/// Which messages a subscriber measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    /// Messages of this run: measured when *sent* in the window, with
    /// end-to-end latency (sender and receiver share a clock).
    OwnTraffic,
    /// Messages from another process: measured when *received* in the
    /// window; no latency, since the sender's clock is not ours.
    ForeignTraffic,
}

/// Shared state a subscriber reports into.
#[derive(Debug)]
pub(crate) struct SubscriberCtx {
    pub(crate) counters: Arc<Counters>,
    pub(crate) latency: Recorder,
    pub(crate) phase: watch::Receiver<Phase>,
    pub(crate) keep_alive: Duration,
    pub(crate) measure: Measure,
}

/// What one subscriber saw in the measured window.
#[derive(Debug, Default)]
pub(crate) struct SubscriberReport {
    /// Sequence numbers received, by publisher index.
    pub(crate) seqs: Vec<SeqSet>,
    /// Distinct measured messages.
    pub(crate) distinct: u64,
    /// Measured messages received more than once by this subscriber.
    pub(crate) duplicates: u64,
    /// Why the connection ended before the run did, if it did.
    pub(crate) error: Option<anyhow::Error>,
}

/// Runs a connected, subscribed client until the run stops; the report
/// comes back also when the connection failed midway.
pub(crate) async fn run(mut client: Client, ctx: SubscriberCtx) -> SubscriberReport {
    let SubscriberCtx {
        counters,
        latency,
        mut phase,
        keep_alive,
        measure,
    } = ctx;
    let mut state = Receiver {
        counters,
        latency,
        measure,
        report: SubscriberReport::default(),
    };
    let mut ping = ping_interval(keep_alive);
    let result = async {
        loop {
            tokio::select! {
                biased;
                changed = phase.changed() => if changed.is_err() || *phase.borrow() == Phase::Stopping { break },
                read = client.fill() => {
                    read?;
                    state.on_readable(&mut client)?;
                    client.flush().await?;
                }
                _ = ping.tick() => {
                    client.queue(&Packet::PingReq)?;
                    client.flush().await?;
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    match result {
        Ok(()) => client.close().await,
        Err(e) => state.report.error = Some(e),
    }
    state.report
}

/// The receiving state of one subscriber.
struct Receiver {
    counters: Arc<Counters>,
    latency: Recorder,
    measure: Measure,
    report: SubscriberReport,
}

impl Receiver {
    /// Handles every packet in the read buffer and queues the answers.
    fn on_readable(&mut self, client: &mut Client) -> anyhow::Result<()> {
        let now = now_ns();
        let window = self.counters.window.get().copied();
        let (mut received, distinct_before) = (0, self.report.distinct);
        while let Some(packet) = client.next_packet()? {
            match packet {
                Packet::Publish(publish) => {
                    received += 1;
                    if let Some(answer) = acknowledgement(&publish) {
                        client.queue(&answer)?;
                    }
                    if let Some(window) = window {
                        self.measure(&publish, window, now);
                    }
                }
                Packet::PubRel(ack) => client.queue(&Packet::PubComp(Ack::new(ack.packet_id)))?,
                _ => {}
            }
        }
        Counters::add(&self.counters.received, received);
        Counters::add(&self.counters.received_measured, self.report.distinct - distinct_before);
        self.latency.flush();
        Ok(())
    }

    fn measure(&mut self, publish: &Publish, window: Window, now: u64) {
        let Some(stamp) = Stamp::parse(&publish.payload) else {
            return;
        };
        let measured = match self.measure {
            Measure::OwnTraffic => window.contains(stamp.sent_ns),
            Measure::ForeignTraffic => window.contains(now) && stamp.publisher() < MAX_FOREIGN_PUBLISHERS,
        };
        if !measured {
            return;
        }
        let index = stamp.publisher() as usize;
        if index >= self.report.seqs.len() {
            self.report.seqs.resize_with(index + 1, SeqSet::default);
        }
        match self.report.seqs[index].insert(stamp.count()) {
            Insert::Duplicate => self.report.duplicates += 1,
            Insert::New | Insert::OutOfRange => {
                self.report.distinct += 1;
                if self.measure == Measure::OwnTraffic {
                    self.latency.record_ns(now.saturating_sub(stamp.sent_ns));
                }
            }
        }
    }
}

/// PUBACK for QoS 1, PUBREC for QoS 2.
fn acknowledgement(publish: &Publish) -> Option<Packet> {
    let id = publish.packet_id?;
    match publish.qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce => Some(Packet::PubAck(Ack::new(id))),
        QoS::ExactlyOnce => Some(Packet::PubRec(Ack::new(id))),
    }
}
