//! `skerry bench conn`: opens N MQTT 3.1.1/5 connections (clean session)
//! at a given rate, measures how fast and how quickly they are accepted
//! (TCP connect to CONNACK), then holds them idle for `--duration` with
//! only keep-alive pings: the load an operator uses to measure the
//! broker's memory per idle connection. Then every client disconnects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use skerry_codec::Packet;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::net::{ping_interval, Client, Target};
use super::outcome::{Ready, Tally};
use super::progress::{self, group_digits};
use super::report::{per_sec, LatencyKind, Report};
use super::scenario::{Options, Phase, MAX_PENDING_CONNECTS};
use super::stats::{LatencySink, Percentiles, Recorder};

/// How long stopped connections get to disconnect before being dropped.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What `conn` opens.
#[derive(Debug, Clone)]
pub(crate) struct ConnPlan {
    pub(crate) clients: u32,
    /// New connections per second; 0 = as fast as possible.
    pub(crate) rate: u32,
    /// How long to hold them once all are up.
    pub(crate) hold: Duration,
}

/// What every connection task shares.
struct Shared {
    target: Target,
    phase: watch::Sender<Phase>,
    connect_limit: Semaphore,
    latency: Arc<LatencySink>,
    open: AtomicU64,
    dropped: AtomicU64,
    run_id: String,
}

/// Runs `conn` to its end.
pub(crate) async fn run(plan: ConnPlan, target: Target, options: Options) -> anyhow::Result<Report> {
    let shared = Arc::new(Shared {
        target,
        phase: watch::Sender::new(Phase::Connecting),
        connect_limit: Semaphore::new(MAX_PENDING_CONNECTS),
        latency: LatencySink::new(options.threads * 4),
        open: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        run_id: options.run_id,
    });
    let progress = progress::spawn(
        options.quiet,
        shared.phase.subscribe(),
        progress_line(&shared, plan.clients),
    );
    let started = Instant::now();
    let (tasks, tally) = open_all(&shared, &plan).await;
    let connecting = started.elapsed().as_secs_f64();
    shared.phase.send_replace(Phase::Running);
    tokio::time::sleep(plan.hold).await;
    shared.phase.send_replace(Phase::Stopping);
    let deadline = Instant::now() + STOP_TIMEOUT;
    for mut task in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
        }
    }
    if let Some(progress) = progress {
        let _ = progress.await;
    }
    Ok(report(&shared, &plan, tally, connecting))
}

/// Opens the connections at the planned rate and waits until each one
/// connected or failed.
async fn open_all(shared: &Arc<Shared>, plan: &ConnPlan) -> (Vec<JoinHandle<()>>, Tally) {
    let (ready_tx, ready_rx) = Ready::channel();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(plan.clients as usize);
    for i in 0..plan.clients {
        if plan.rate > 0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(f64::from(i) / f64::from(plan.rate))).await;
        }
        let recorder = shared.latency.recorder(i as usize);
        tasks.push(tokio::spawn(hold(Arc::clone(shared), i, recorder, ready_tx.clone())));
    }
    drop(ready_tx);
    (tasks, Tally::collect(ready_rx).await)
}

/// One connection: connect, report, then idle until the run stops.
async fn hold(shared: Arc<Shared>, i: u32, mut latency: Recorder, ready: Ready) {
    let mut phase = shared.phase.subscribe();
    let client_id = format!("{}-c{i}", shared.run_id);
    let connected = async {
        let _permit = shared.connect_limit.acquire().await?;
        let begun = Instant::now();
        let client = Client::connect(&shared.target, &client_id).await?;
        latency.record_ns(u64::try_from(begun.elapsed().as_nanos()).unwrap_or(u64::MAX));
        latency.flush();
        anyhow::Ok(client)
    }
    .await;
    ready.announce(&connected, &client_id);
    let Ok(mut client) = connected else { return };
    shared.open.fetch_add(1, Ordering::Relaxed);
    let mut ping = ping_interval(shared.target.keep_alive);
    let idle = async {
        loop {
            tokio::select! {
                changed = phase.changed() => if changed.is_err() || *phase.borrow() == Phase::Stopping { break },
                read = client.fill() => {
                    read?;
                    while client.next_packet()?.is_some() {}
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
    shared.open.fetch_sub(1, Ordering::Relaxed);
    match idle {
        Ok(()) => client.close().await,
        Err(_) => {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn progress_line(shared: &Arc<Shared>, clients: u32) -> impl FnMut(Duration) -> String + Send + 'static {
    let shared = Arc::clone(shared);
    let mut last = (0, Duration::ZERO);
    move |elapsed| {
        let open = shared.open.load(Ordering::Relaxed);
        let secs = (elapsed - last.1).as_secs_f64().max(1e-3);
        let rate = (open.saturating_sub(last.0) as f64 / secs).round() as u64;
        last = (open, elapsed);
        format!(
            "[{:>6.1}s] open {} of {}  (+{}/s)  dropped {}",
            elapsed.as_secs_f64(),
            group_digits(open),
            group_digits(u64::from(clients)),
            group_digits(rate),
            shared.dropped.load(Ordering::Relaxed)
        )
    }
}

fn report(shared: &Shared, plan: &ConnPlan, tally: Tally, connecting_secs: f64) -> Report {
    let summary = format!(
        "conn: {} clients at {}, held {:?}, MQTT {}",
        plan.clients,
        if plan.rate == 0 {
            "full speed".to_owned()
        } else {
            format!("{}/s", plan.rate)
        },
        plan.hold,
        shared.target.version_name()
    );
    Report {
        scenario: "conn",
        summary,
        mqtt_version: shared.target.version_name(),
        qos: 0,
        payload_size: 0,
        publishers: 0,
        subscribers: 0,
        connections: u64::from(tally.ok),
        connect_errors: u64::from(tally.errors),
        disconnects: shared.dropped.load(Ordering::Relaxed),
        duration_s: plan.hold.as_secs_f64(),
        sent: 0,
        acked: None,
        received: 0,
        expected: None,
        lost: 0,
        duplicates: 0,
        sent_per_sec: 0.0,
        received_per_sec: 0.0,
        latency: Some(LatencyKind::Connect),
        latency_ms: Percentiles::of(&shared.latency.merged()),
        connect_per_sec: Some(per_sec(u64::from(tally.ok), connecting_secs)),
        first_error: tally.first_error,
    }
}
