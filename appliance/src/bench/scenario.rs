//! Runs the message scenarios (`pub`, `sub`, `fanin`, `fanout`, `shared`):
//! connect the subscribers, then the publishers, then warm up, measure,
//! drain, stop, and hand what the tasks counted to [`super::outcome`].
//!
//! Every connection is one task. The run talks to them through a
//! [`Phase`] watch channel and reads their progress from shared counters.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use skerry_codec::QoS;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::args::TrafficArgs;
use super::metronome::{Metronome, Pacer};
use super::net::{Client, Target};
use super::outcome::{self, Ready, Tally, TaskResults};
use super::payload::{now_ns, PublishTemplate};
use super::progress::{self, group_digits};
use super::publisher::{self, PublisherCtx, PublisherSpec};
use super::report::Report;
use super::stats::{Counters, LatencySink, Window};
use super::subscriber::{self, Measure, SubscriberCtx, SubscriberReport};

/// Handshakes in progress at once: enough to connect thousands of clients
/// a second without overflowing the broker's listen backlog.
pub(crate) const MAX_PENDING_CONNECTS: usize = 100;

/// A publisher's task: its error, if it failed.
type PublisherTask = JoinHandle<Option<anyhow::Error>>;

/// How often the drain checks whether everything arrived.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// How long stopped tasks get to say goodbye before they are aborted.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a run is; connection tasks watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Clients connect and subscribe; nothing is published yet.
    Connecting,
    /// Publishers publish (warmup, then the measured window).
    Running,
    /// Everyone disconnects.
    Stopping,
}

/// How published messages are expected to arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Nobody subscribes (`pub`).
    Nobody,
    /// Every subscriber receives every message (`fanin`, `fanout`).
    EverySubscriber,
    /// Each message reaches one member of a shared group (`shared`).
    OneOfGroup,
    /// Subscribers only, of traffic published by others (`sub`).
    Foreign,
}

/// The connections of a scenario and their topics.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) scenario: &'static str,
    pub(crate) publishers: u32,
    pub(crate) subscribers: u32,
    /// Filter every subscriber subscribes to.
    pub(crate) filter: String,
    pub(crate) prefix: String,
    /// All publishers on `<prefix>/0` instead of `<prefix>/<i>`.
    pub(crate) one_topic: bool,
    pub(crate) delivery: Delivery,
}

impl Layout {
    fn topic(&self, publisher: u32) -> String {
        let i = if self.one_topic { 0 } else { publisher };
        format!("{}/{i}", self.prefix)
    }
}

/// Settings of the generator itself.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) quiet: bool,
    pub(crate) threads: usize,
    /// Prefix of every client identifier of this run.
    pub(crate) run_id: String,
}

/// What every task of one run shares.
pub(crate) struct Run {
    pub(crate) layout: Layout,
    pub(crate) traffic: TrafficArgs,
    pub(crate) target: Target,
    pub(crate) counters: Arc<Counters>,
    pub(crate) latency: Arc<LatencySink>,
    phase: watch::Sender<Phase>,
    connect_limit: Semaphore,
    run_id: String,
}

/// Runs a message scenario to its end.
pub(crate) async fn run(
    layout: Layout,
    traffic: TrafficArgs,
    target: Target,
    options: Options,
) -> anyhow::Result<Report> {
    let run = Arc::new(Run {
        layout,
        traffic,
        target,
        counters: Arc::default(),
        latency: LatencySink::new(options.threads * 4),
        phase: watch::Sender::new(Phase::Connecting),
        connect_limit: Semaphore::new(MAX_PENDING_CONNECTS),
        run_id: options.run_id,
    });
    let (subs, sub_tally) = run.spawn_subscribers().await;
    if run.layout.delivery != Delivery::Nobody && sub_tally.ok == 0 {
        run.phase.send_replace(Phase::Stopping);
        bail!(
            "no subscriber could connect: {}",
            sub_tally.first_error.unwrap_or_default()
        );
    }
    let (pubs, pub_tally, clock) = run.spawn_publishers().await?;
    if run.layout.delivery != Delivery::Foreign && pub_tally.ok == 0 {
        run.phase.send_replace(Phase::Stopping);
        bail!(
            "no publisher could connect: {}",
            pub_tally.first_error.unwrap_or_default()
        );
    }
    let copies = match run.layout.delivery {
        Delivery::EverySubscriber => u64::from(sub_tally.ok),
        Delivery::OneOfGroup => 1,
        Delivery::Nobody | Delivery::Foreign => 0,
    };
    let window = run.start();
    if let Some(clock) = clock {
        clock.start()?;
    }
    let progress = progress::spawn(options.quiet, run.phase.subscribe(), run.progress_line(window, copies));
    run.wait_until_drained(window, pub_tally.ok, copies).await;
    run.phase.send_replace(Phase::Stopping);
    let results = collect(subs, pubs).await;
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    Ok(outcome::report(&run, [sub_tally, pub_tally], &results, copies))
}

impl Run {
    /// Connects and subscribes every subscriber; returns once each has
    /// succeeded or failed.
    async fn spawn_subscribers(self: &Arc<Self>) -> (Vec<JoinHandle<Option<SubscriberReport>>>, Tally) {
        let (ready_tx, ready_rx) = Ready::channel();
        let handles = (0..self.layout.subscribers)
            .map(|i| tokio::spawn(Arc::clone(self).subscriber(i, ready_tx.clone())))
            .collect();
        drop(ready_tx);
        (handles, Tally::collect(ready_rx).await)
    }

    async fn subscriber(self: Arc<Self>, i: u32, ready: Ready) -> Option<SubscriberReport> {
        let phase = self.phase.subscribe();
        let client_id = format!("{}-s{i}", self.run_id);
        let connected = async {
            let _permit = self.connect_limit.acquire().await?;
            let mut client = Client::connect(&self.target, &client_id).await?;
            client.subscribe(&self.layout.filter, self.traffic.qos).await?;
            anyhow::Ok(client)
        }
        .await;
        ready.announce(&connected, &client_id);
        let measure = match self.layout.delivery {
            Delivery::Foreign => Measure::ForeignTraffic,
            _ => Measure::OwnTraffic,
        };
        let ctx = SubscriberCtx {
            counters: Arc::clone(&self.counters),
            latency: self.latency.recorder(i as usize),
            phase,
            keep_alive: self.target.keep_alive,
            measure,
        };
        let mut report = subscriber::run(connected.ok()?, ctx).await;
        report.error = report.error.map(|e| e.context(client_id));
        Some(report)
    }

    /// Connects every publisher; they wait for [`Phase::Running`]. Also
    /// returns the clock that paces them, if `--rate` asks for one.
    async fn spawn_publishers(self: &Arc<Self>) -> anyhow::Result<(Vec<PublisherTask>, Tally, Option<Metronome>)> {
        let (ready_tx, ready_rx) = Ready::channel();
        let publishers = self.layout.publishers;
        let clock = Metronome::new(self.traffic.rate, publishers);
        let mut handles = Vec::with_capacity(publishers as usize);
        for index in 0..publishers {
            let t = &self.traffic;
            let template = PublishTemplate::new(&self.layout.topic(index), t.qos, t.payload_size, self.target.version)?;
            let spec = PublisherSpec {
                index,
                template,
                qos: t.qos,
                pacer: clock.as_ref().map_or(Pacer::Unlimited, |c| c.pacer(index)),
                inflight: t.inflight,
            };
            handles.push(tokio::spawn(Arc::clone(self).publisher(spec, ready_tx.clone())));
        }
        drop(ready_tx);
        Ok((handles, Tally::collect(ready_rx).await, clock))
    }

    async fn publisher(self: Arc<Self>, spec: PublisherSpec, ready: Ready) -> Option<anyhow::Error> {
        let phase = self.phase.subscribe();
        let client_id = format!("{}-p{}", self.run_id, spec.index);
        let connected = async {
            let _permit = self.connect_limit.acquire().await?;
            Client::connect(&self.target, &client_id).await
        }
        .await;
        ready.announce(&connected, &client_id);
        let measures_acks = self.layout.delivery == Delivery::Nobody && spec.qos != QoS::AtMostOnce;
        let ctx = PublisherCtx {
            counters: Arc::clone(&self.counters),
            ack_latency: measures_acks.then(|| self.latency.recorder(spec.index as usize)),
            phase,
            keep_alive: self.target.keep_alive,
        };
        let result = publisher::run(connected.ok()?, spec, ctx).await;
        result.map_err(|e| e.context(client_id)).err()
    }

    /// Fixes the measured window and lets the publishers go.
    fn start(&self) -> Window {
        let start_ns = now_ns() + nanos(self.traffic.warmup);
        let window = Window {
            start_ns,
            end_ns: start_ns + nanos(self.traffic.duration),
        };
        let _ = self.counters.window.set(window);
        self.phase.send_replace(Phase::Running);
        window
    }

    /// Sleeps through the window, then waits until every measured message
    /// arrived or the drain time is up.
    async fn wait_until_drained(&self, window: Window, publishers: u32, copies: u64) {
        let end = Instant::now() + Duration::from_nanos(window.end_ns.saturating_sub(now_ns()));
        tokio::time::sleep_until(end).await;
        if self.layout.delivery == Delivery::Foreign {
            return;
        }
        let deadline = end + self.traffic.drain;
        while !self.drained(publishers, copies) && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    fn drained(&self, publishers: u32, copies: u64) -> bool {
        let c = &self.counters;
        if c.publishers_done.load(std::sync::atomic::Ordering::Relaxed) < publishers {
            return false;
        }
        let sent = Counters::get(&c.sent_measured);
        let acked = self.traffic.qos == QoS::AtMostOnce || Counters::get(&c.acked_measured) >= sent;
        acked && Counters::get(&c.received_measured) >= sent * copies
    }

    /// The closure behind the progress line.
    fn progress_line(&self, window: Window, copies: u64) -> impl FnMut(Duration) -> String + Send + 'static {
        let counters = Arc::clone(&self.counters);
        let acks = self.layout.delivery == Delivery::Nobody && self.traffic.qos != QoS::AtMostOnce;
        let mut last = (0, 0, Duration::ZERO);
        move |elapsed| {
            let (sent, received, acked) = (
                Counters::get(&counters.sent),
                Counters::get(&counters.received),
                Counters::get(&counters.acked),
            );
            let secs = (elapsed - last.2).as_secs_f64().max(1e-3);
            let rate = |now: u64, before: u64| group_digits(((now - before) as f64 / secs).round() as u64);
            let in_flight = if acks {
                sent - acked
            } else {
                (sent * copies).saturating_sub(received)
            };
            let now = now_ns();
            let stage = if now < window.start_ns {
                "warmup"
            } else if now < window.end_ns {
                "measure"
            } else {
                "drain"
            };
            let line = format!(
                "[{stage:>7} {:>6.1}s] sent {:>9}/s  received {:>9}/s  in-flight {}",
                elapsed.as_secs_f64(),
                rate(sent, last.0),
                rate(received, last.1),
                group_digits(in_flight)
            );
            last = (sent, received, elapsed);
            line
        }
    }
}

/// Waits for every task after [`Phase::Stopping`]; stragglers are aborted.
async fn collect(subs: Vec<JoinHandle<Option<SubscriberReport>>>, pubs: Vec<PublisherTask>) -> TaskResults {
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut results = TaskResults::default();
    for mut handle in subs {
        match tokio::time::timeout_at(deadline, &mut handle).await {
            Ok(Ok(Some(report))) => results.subscribers.push(report),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => results.failures.push(anyhow::anyhow!("subscriber task: {e}")),
            Err(_) => {
                handle.abort();
                results
                    .failures
                    .push(anyhow::anyhow!("a subscriber did not stop in time"));
            }
        }
    }
    for mut handle in pubs {
        match tokio::time::timeout_at(deadline, &mut handle).await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(e))) => results.failures.push(e),
            Ok(Err(e)) => results.failures.push(anyhow::anyhow!("publisher task: {e}")),
            Err(_) => {
                handle.abort();
                results
                    .failures
                    .push(anyhow::anyhow!("a publisher did not stop in time"));
            }
        }
    }
    results
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
