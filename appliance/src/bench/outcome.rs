//! Turns what the tasks of a message scenario counted into a [`Report`]:
//! receipts, losses and duplicates according to how messages should be
//! delivered, and connection successes and failures.

use skerry_codec::{topic, QoS};
use tokio::sync::mpsc;

use super::report::{per_sec, LatencyKind, Report};
use super::scenario::{Delivery, Run};
use super::seqset::SeqSet;
use super::stats::{Counters, Percentiles};
use super::subscriber::SubscriberReport;

/// A connection task's line to [`Tally::collect`], used once: the tally
/// ends when every line is gone.
#[derive(Debug, Clone)]
pub(crate) struct Ready(mpsc::UnboundedSender<Result<(), String>>);

impl Ready {
    /// A line and the receiving end to hand to [`Tally::collect`].
    pub(crate) fn channel() -> (Self, mpsc::UnboundedReceiver<Result<(), String>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Says how connecting `client_id` went.
    pub(crate) fn announce<T>(self, connected: &anyhow::Result<T>, client_id: &str) {
        let _ = self.0.send(
            connected
                .as_ref()
                .map(|_| ())
                .map_err(|e| format!("{client_id}: {e:#}")),
        );
    }
}

/// How the connects of one group of clients went.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) ok: u32,
    pub(crate) errors: u32,
    pub(crate) first_error: Option<String>,
}

impl Tally {
    /// Counts the outcomes sent on `ready` until every sender is gone.
    pub(crate) async fn collect(mut ready: mpsc::UnboundedReceiver<Result<(), String>>) -> Self {
        let mut tally = Self::default();
        while let Some(outcome) = ready.recv().await {
            match outcome {
                Ok(()) => tally.ok += 1,
                Err(e) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert(e);
                }
            }
        }
        tally
    }
}

/// What the connection tasks returned once stopped.
#[derive(Debug, Default)]
pub(crate) struct TaskResults {
    pub(crate) subscribers: Vec<SubscriberReport>,
    /// Connections that ended before the run did.
    pub(crate) failures: Vec<anyhow::Error>,
}

/// Measured receipts, by the scenario's delivery rule.
#[derive(Debug, Default, PartialEq, Eq)]
struct Receipts {
    received: u64,
    duplicates: u64,
    lost: u64,
}

fn receipts(
    delivery: Delivery,
    subs: &[SubscriberReport],
    sent: u64,
    copies: u64,
    acked: Option<u64>,
    shared: bool,
) -> Receipts {
    let local_duplicates: u64 = subs.iter().map(|s| s.duplicates).sum();
    match delivery {
        Delivery::Nobody => Receipts {
            lost: acked.map_or(0, |a| sent.saturating_sub(a)),
            ..Receipts::default()
        },
        Delivery::EverySubscriber => {
            let received = subs.iter().map(|s| s.distinct).sum();
            Receipts {
                received,
                duplicates: local_duplicates,
                lost: (sent * copies).saturating_sub(received),
            }
        }
        Delivery::OneOfGroup => {
            let (union, across) = union(subs);
            let received = union.iter().map(SeqSet::len).sum();
            Receipts {
                received,
                duplicates: local_duplicates + across,
                lost: sent.saturating_sub(received),
            }
        }
        Delivery::Foreign => {
            // Nothing says what was sent: a gap in a publisher's sequence
            // numbers is a loss. A shared group splits the stream, so its
            // members are looked at together.
            let lost = if shared {
                union(subs).0.iter().map(SeqSet::gaps).sum()
            } else {
                subs.iter().flat_map(|s| &s.seqs).map(SeqSet::gaps).sum()
            };
            Receipts {
                received: subs.iter().map(|s| s.distinct).sum(),
                duplicates: local_duplicates,
                lost,
            }
        }
    }
}

/// Every subscriber's sequence numbers together, and how many of them
/// more than one subscriber received.
fn union(subs: &[SubscriberReport]) -> (Vec<SeqSet>, u64) {
    let mut all: Vec<SeqSet> = Vec::new();
    let mut across = 0;
    for sub in subs {
        if all.len() < sub.seqs.len() {
            all.resize_with(sub.seqs.len(), SeqSet::default);
        }
        for (mine, theirs) in all.iter_mut().zip(&sub.seqs) {
            across += mine.merge(theirs);
        }
    }
    (all, across)
}

/// The report of a finished message scenario.
pub(crate) fn report(run: &Run, [subs, pubs]: [Tally; 2], results: &TaskResults, copies: u64) -> Report {
    let (layout, traffic) = (&run.layout, &run.traffic);
    let sent = Counters::get(&run.counters.sent_measured);
    let acked = (traffic.qos != QoS::AtMostOnce && layout.delivery != Delivery::Foreign)
        .then(|| Counters::get(&run.counters.acked_measured));
    let shared = topic::parse_shared(&layout.filter).is_some();
    let r = receipts(layout.delivery, &results.subscribers, sent, copies, acked, shared);
    let latency = match layout.delivery {
        Delivery::Nobody => acked.map(|_| LatencyKind::Ack),
        Delivery::EverySubscriber | Delivery::OneOfGroup => Some(LatencyKind::EndToEnd),
        Delivery::Foreign => None,
    };
    let mut failures = results
        .subscribers
        .iter()
        .filter_map(|s| s.error.as_ref())
        .chain(&results.failures);
    let disconnects = failures.clone().count() as u64;
    let first_error = subs
        .first_error
        .or(pubs.first_error)
        .or_else(|| failures.next().map(|e| format!("{e:#}")));
    let secs = traffic.duration.as_secs_f64();
    let foreign = layout.delivery == Delivery::Foreign;
    Report {
        scenario: layout.scenario,
        summary: summary(run, subs.ok, pubs.ok),
        mqtt_version: run.target.version_name(),
        qos: traffic.qos as u8,
        // `sub` does not know what others publish.
        payload_size: if foreign { 0 } else { traffic.payload_size },
        publishers: pubs.ok,
        subscribers: subs.ok,
        connections: u64::from(subs.ok + pubs.ok),
        connect_errors: u64::from(subs.errors + pubs.errors),
        disconnects,
        duration_s: secs,
        sent,
        acked,
        received: r.received,
        expected: matches!(layout.delivery, Delivery::EverySubscriber | Delivery::OneOfGroup).then_some(sent * copies),
        lost: r.lost,
        duplicates: r.duplicates,
        sent_per_sec: per_sec(sent, secs),
        received_per_sec: per_sec(r.received, secs),
        latency,
        latency_ms: latency
            .map(|_| Percentiles::of(&run.latency.merged()))
            .unwrap_or_default(),
        connect_per_sec: None,
        first_error,
    }
}

fn summary(run: &Run, subscribers: u32, publishers: u32) -> String {
    let (layout, traffic) = (&run.layout, &run.traffic);
    let n = |count: u32, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    let who = match layout.delivery {
        Delivery::Nobody => format!("{} to {}/<i>", n(publishers, "publisher"), layout.prefix),
        Delivery::Foreign => format!("{} on {}", n(subscribers, "subscriber"), layout.filter),
        _ => format!(
            "{} -> {} on {}",
            n(publishers, "publisher"),
            n(subscribers, "subscriber"),
            layout.filter
        ),
    };
    let payload = match layout.delivery {
        Delivery::Foreign => String::new(),
        _ => format!(", {}-byte payloads", traffic.payload_size),
    };
    let (scenario, qos, version) = (layout.scenario, traffic.qos as u8, run.target.version_name());
    format!("{scenario}: {who}, QoS {qos}{payload}, MQTT {version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(seqs: &[u64], duplicates: u64) -> SubscriberReport {
        let mut set = SeqSet::default();
        for &s in seqs {
            set.insert(s);
        }
        SubscriberReport {
            seqs: vec![set],
            distinct: seqs.len() as u64,
            duplicates,
            error: None,
        }
    }

    #[test]
    fn every_subscriber_must_get_every_message() {
        let subs = [sub(&[0, 1, 2], 0), sub(&[0, 2], 1)];
        let r = receipts(Delivery::EverySubscriber, &subs, 3, 2, None, false);
        assert_eq!(
            r,
            Receipts {
                received: 5,
                duplicates: 1,
                lost: 1
            }
        );
    }

    #[test]
    fn a_group_must_get_each_message_once() {
        let subs = [sub(&[0, 1], 0), sub(&[1, 2, 3], 0)];
        let r = receipts(Delivery::OneOfGroup, &subs, 5, 1, Some(5), true);
        assert_eq!(
            r,
            Receipts {
                received: 4,
                duplicates: 1,
                lost: 1
            }
        );
    }

    #[test]
    fn publish_only_loses_what_was_not_acknowledged() {
        let r = receipts(Delivery::Nobody, &[], 10, 0, Some(7), false);
        assert_eq!(r.lost, 3);
        assert_eq!(receipts(Delivery::Nobody, &[], 10, 0, None, false).lost, 0);
    }

    #[test]
    fn foreign_traffic_loses_the_gaps() {
        let r = receipts(Delivery::Foreign, &[sub(&[0, 1, 4], 0)], 0, 0, None, false);
        assert_eq!((r.received, r.lost), (3, 2));
    }
}
