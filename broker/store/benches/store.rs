//! The store's figures, sled and redb side by side in one run:
//!
//! - enqueue rate with 8 concurrent submitters (256-byte payloads, each
//!   message queued for one client), at `sync` and at `interval` (10 ms),
//!   each submitter awaiting its commit; at `interval` also with 64 commits
//!   in flight per submitter, as the broker runs it (it acks at once);
//! - bytes on disk per live queued message after a delete-heavy workload
//!   (1,000 clients x rounds of append-one / delete-oldest beyond depth 20,
//!   one fsync per round), and again after a reopen (redb compacts then);
//! - time to restart (open + load) with 1M queued messages, after a clean
//!   close and after a crash (a copy of the files taken while running).
//!
//! `cargo bench -p skerry-store`. Scale with `SKERRY_BENCH_SECS` (per rate
//! figure, default 3), `SKERRY_BENCH_ROUNDS` (default 1000) and
//! `SKERRY_BENCH_QUEUED` (default 1000000).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use skerry_store::{open, Durability, Engine, Op, QueueEntry, Seq, SessionRecord, Store, StoredMessage};

const ENGINES: [Engine; 2] = [Engine::Sled, Engine::Redb];
const TASKS: usize = 8;
const PAYLOAD: usize = 256;
const CLIENTS: usize = 1000;
const DEPTH: usize = 20;
/// Commits a submitter keeps outstanding in the pipelined figure (the
/// broker does not wait for commits at `interval`).
const PIPELINE: usize = 64;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn message(i: u64) -> StoredMessage {
    let mut payload = vec![b'x'; PAYLOAD];
    payload[..8].copy_from_slice(&i.to_be_bytes());
    StoredMessage {
        topic: format!("fleet/device/{}/telemetry", i % CLIENTS as u64),
        payload: Bytes::from(payload),
        qos: 1,
        retain: false,
        expires_at: None,
        properties: Default::default(),
    }
}

fn client(i: usize) -> Arc<str> {
    Arc::from(format!("device-{i:05}").as_str())
}

/// A message stored and queued for one client.
fn enqueue(store: &dyn Store, client: &Arc<str>, i: u64) -> (Seq, Vec<Op>) {
    let id = store.next_message_id();
    let seq = store.next_seq();
    let entry = QueueEntry {
        msg: id,
        qos: 1,
        retain: false,
        subscription_ids: vec![],
    };
    (
        seq,
        vec![
            Op::PutMessage {
                id,
                message: message(i),
            },
            Op::Enqueue {
                client: Arc::clone(client),
                seq,
                entry,
            },
        ],
    )
}

fn sessions(clients: &[Arc<str>]) -> Vec<Op> {
    let record = SessionRecord {
        expiry: u32::MAX,
        disconnected_at: SystemTime::now(),
        username: None,
        subscriptions: vec![],
        inflight: vec![],
        awaiting_rel: vec![],
        last_packet_id: 0,
    };
    clients
        .iter()
        .map(|c| Op::PutSession {
            client: Arc::clone(c),
            session: record.clone(),
        })
        .collect()
}

/// Messages per second with `TASKS` submitters, each with up to
/// `in_flight` commits outstanding (1: each awaits its commit).
async fn enqueue_rate(engine: Engine, durability: Durability, in_flight: usize, secs: u64) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(engine, dir.path(), durability).expect("open");
    store.load().expect("load");
    let clients: Vec<_> = (0..TASKS).map(client).collect();
    store.submit(sessions(&clients)).await.expect("sessions");
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in clients {
        let (store, done) = (Arc::clone(&store), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut pending = std::collections::VecDeque::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let (_, ops) = enqueue(&*store, &c, i);
                pending.push_back(store.submit(ops));
                if pending.len() >= in_flight {
                    pending.pop_front().expect("pending").await.expect("commit");
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            for commit in pending {
                commit.await.expect("commit");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    store.close().await.expect("close");
    rate
}

/// Bytes on disk under `dir` (allocated blocks, so sparse files count as stored).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let m = e.metadata().expect("metadata");
        total += if m.is_dir() {
            disk_bytes(&e.path())
        } else {
            m.blocks() * 512
        };
    }
    total
}

/// Delete-heavy: bytes per live message, as left and after a reopen.
async fn delete_heavy(engine: Engine, rounds: u64) -> (f64, f64, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(engine, dir.path(), Durability::Sync).expect("open");
    store.load().expect("load");
    let clients: Vec<_> = (0..CLIENTS).map(client).collect();
    store.submit(sessions(&clients)).await.expect("sessions");
    let mut queues: Vec<std::collections::VecDeque<Seq>> = vec![Default::default(); CLIENTS];
    let start = Instant::now();
    for round in 0..rounds {
        let mut ops = Vec::with_capacity(CLIENTS * 3);
        for (c, queue) in clients.iter().zip(&mut queues) {
            let (seq, put) = enqueue(&*store, c, round);
            ops.extend(put);
            queue.push_back(seq);
            if queue.len() > DEPTH {
                let oldest = queue.pop_front().expect("non-empty");
                ops.push(Op::Dequeue {
                    client: Arc::clone(c),
                    seq: oldest,
                });
            }
        }
        store.submit(ops).await.expect("round");
    }
    let took = start.elapsed();
    store.close().await.expect("close");
    drop(store);
    let live = CLIENTS * DEPTH.min(rounds as usize);
    let as_left = disk_bytes(dir.path()) as f64 / live as f64;
    let store = open(engine, dir.path(), Durability::Sync).expect("reopen");
    assert_eq!(store.load().expect("load").report.queued, live);
    store.close().await.expect("close");
    drop(store);
    (as_left, disk_bytes(dir.path()) as f64 / live as f64, took)
}

/// Fills `queued` messages (interval durability, big batches).
async fn fill(store: &dyn Store, queued: u64) {
    let clients: Vec<_> = (0..CLIENTS).map(client).collect();
    store.submit(sessions(&clients)).await.expect("sessions");
    let mut i = 0;
    while i < queued {
        let mut ops = Vec::with_capacity(20_000);
        for _ in 0..10_000.min(queued - i) {
            ops.extend(enqueue(store, &clients[i as usize % CLIENTS], i).1);
            i += 1;
        }
        store.submit(ops).await.expect("fill");
    }
}

/// Open + load, checking the count.
fn restart(engine: Engine, dir: &Path, queued: u64) -> Duration {
    let start = Instant::now();
    let store = open(engine, dir, Durability::Sync).expect("open");
    let opened = start.elapsed();
    let snap = store.load().expect("load");
    let took = start.elapsed();
    eprintln!(
        "{}: open {:.2} s, load {:.2} s",
        engine.name(),
        opened.as_secs_f64(),
        (took - opened).as_secs_f64()
    );
    assert_eq!(snap.report.queued as u64, queued, "{engine:?}");
    took
}

/// Restart times after a clean close and after a crash.
async fn restart_times(engine: Engine, queued: u64) -> (Duration, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let crashed = tempfile::tempdir().expect("tempdir");
    {
        let store = open(engine, dir.path(), Durability::Interval(Duration::from_millis(10))).expect("open");
        store.load().expect("load");
        fill(&*store, queued).await;
        store
            .submit(vec![Op::ClearRetained { topic: "sync".into() }])
            .await
            .expect("sync");
        tokio::time::sleep(Duration::from_millis(100)).await;
        copy_dir(dir.path(), crashed.path());
        store.close().await.expect("close");
    }
    let clean = restart(engine, dir.path(), queued);
    let after_crash = restart(engine, crashed.path(), queued);
    (clean, after_crash)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

fn row(name: &str, cells: &[String]) {
    println!("| {name:<46} | {:>14} | {:>14} |", cells[0], cells[1]);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run small then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs = env("SKERRY_BENCH_SECS", if quick { 1 } else { 3 });
    let rounds = env("SKERRY_BENCH_ROUNDS", if quick { 20 } else { 1000 });
    let queued = env("SKERRY_BENCH_QUEUED", if quick { 20_000 } else { 1_000_000 });
    let interval = Durability::Interval(Duration::from_millis(10));
    let mut sync_rate = Vec::new();
    let mut interval_rate = Vec::new();
    let mut pipelined_rate = Vec::new();
    let mut heavy = Vec::new();
    let mut restarts = Vec::new();
    for engine in ENGINES {
        eprintln!("{}: enqueue rates...", engine.name());
        sync_rate.push(format!("{:.0}", enqueue_rate(engine, Durability::Sync, 1, secs).await));
        interval_rate.push(format!("{:.0}", enqueue_rate(engine, interval, 1, secs).await));
        pipelined_rate.push(format!("{:.0}", enqueue_rate(engine, interval, PIPELINE, secs).await));
        eprintln!("{}: delete-heavy, {rounds} rounds...", engine.name());
        heavy.push(delete_heavy(engine, rounds).await);
        eprintln!("{}: restart with {queued} queued...", engine.name());
        restarts.push(restart_times(engine, queued).await);
    }
    let fmt_d = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!();
    row("figure", &["sled 0.34".into(), "redb 4".into()]);
    println!("|{:-<48}|{:-<16}|{:-<16}|", "", "", "");
    row(&format!("enqueue msgs/s, sync, {TASKS} submitters"), &sync_rate);
    row(
        &format!("enqueue msgs/s, interval 10 ms, {TASKS} submitters"),
        &interval_rate,
    );
    row(
        &format!("  same, {PIPELINE} commits in flight per submitter"),
        &pipelined_rate,
    );
    row(
        &format!("delete-heavy {rounds} rounds, time"),
        &heavy.iter().map(|h| fmt_d(h.2)).collect::<Vec<_>>(),
    );
    row(
        "disk bytes per live message, as left",
        &heavy.iter().map(|h| format!("{:.0}", h.0)).collect::<Vec<_>>(),
    );
    row(
        "disk bytes per live message, after reopen",
        &heavy.iter().map(|h| format!("{:.0}", h.1)).collect::<Vec<_>>(),
    );
    row(
        &format!("restart with {queued} queued, clean"),
        &restarts.iter().map(|r| fmt_d(r.0)).collect::<Vec<_>>(),
    );
    row(
        &format!("restart with {queued} queued, after crash"),
        &restarts.iter().map(|r| fmt_d(r.1)).collect::<Vec<_>>(),
    );
}
