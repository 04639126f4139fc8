//! The store through its public API, on every engine: every op round trips
//! through a reopen, fanned-out messages are stored once and deleted with
//! their last reference, expiry is applied at load, and what a commit
//! acknowledged survives a copy of the files taken mid-run (what `kill -9`
//! leaves behind).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use skerry_store::{
    open, Durability, Engine, MsgId, Op, QueueEntry, Seq, SessionRecord, Snapshot, Store, StoredInflight,
    StoredMessage, StoredProperties, StoredSubscription, NEVER_EXPIRES,
};

const DURABLE: [Engine; 2] = [Engine::Sled, Engine::Redb];
const ALL: [Engine; 3] = [Engine::Memory, Engine::Sled, Engine::Redb];
const INTERVAL: Durability = Durability::Interval(Duration::from_millis(10));

fn message(topic: &str, payload: &str) -> StoredMessage {
    StoredMessage {
        topic: topic.to_owned(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: 1,
        retain: false,
        expires_at: None,
        properties: StoredProperties::default(),
    }
}

fn entry(msg: MsgId) -> QueueEntry {
    QueueEntry {
        msg,
        qos: 1,
        retain: false,
        subscription_ids: vec![],
    }
}

fn session(expiry: u32) -> SessionRecord {
    SessionRecord {
        expiry,
        disconnected_at: SystemTime::now(),
        username: None,
        subscriptions: vec![],
        inflight: vec![],
        awaiting_rel: vec![],
        last_packet_id: 0,
    }
}

fn client(id: &str) -> Arc<str> {
    Arc::from(id)
}

/// Stores `msg` once, queued for each of `clients`.
async fn fan_out(store: &dyn Store, clients: &[&str], msg: StoredMessage) -> (MsgId, Vec<Seq>) {
    let id = store.next_message_id();
    let mut ops = vec![Op::PutMessage { id, message: msg }];
    let mut seqs = Vec::new();
    for c in clients {
        let seq = store.next_seq();
        seqs.push(seq);
        ops.push(Op::Enqueue {
            client: client(c),
            seq,
            entry: entry(id),
        });
    }
    store.submit(ops).await.expect("commit");
    (id, seqs)
}

async fn put_sessions(store: &dyn Store, clients: &[&str]) {
    let ops = clients
        .iter()
        .map(|c| Op::PutSession {
            client: client(c),
            session: session(3600),
        })
        .collect();
    store.submit(ops).await.expect("commit");
}

fn queue_of<'a>(snap: &'a Snapshot, client: &str) -> Vec<&'a str> {
    let s = snap.sessions.iter().find(|s| s.client_id == client).expect("session");
    s.queue
        .iter()
        .map(|q| std::str::from_utf8(&snap.messages[&q.entry.msg].payload).expect("utf8"))
        .collect()
}

/// A session with everything a record can hold, inflight entry included.
fn full_session(inflight_msg: MsgId) -> SessionRecord {
    SessionRecord {
        expiry: NEVER_EXPIRES,
        disconnected_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        username: Some("alice".to_owned()),
        subscriptions: vec![StoredSubscription {
            filter: "$share/g/a/+".to_owned(),
            qos: 2,
            no_local: true,
            retain_as_published: true,
            retain_handling: 2,
            id: Some(268_435_455),
        }],
        inflight: vec![
            StoredInflight::Publish {
                packet_id: 7,
                delivery: QueueEntry {
                    msg: inflight_msg,
                    qos: 2,
                    retain: true,
                    subscription_ids: vec![1, 9],
                },
            },
            StoredInflight::Release { packet_id: 8 },
        ],
        awaiting_rel: vec![3, 65535],
        last_packet_id: 8,
    }
}

fn rich_message() -> StoredMessage {
    StoredMessage {
        topic: "a/b".to_owned(),
        payload: Bytes::from_static(b"\0\xffbinary"),
        qos: 2,
        retain: true,
        expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(4_000_000_000_000)),
        properties: StoredProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(86_400_000),
            content_type: Some("text/plain".to_owned()),
            response_topic: Some("reply/here".to_owned()),
            correlation_data: Some(Bytes::from_static(b"corr")),
            user_properties: vec![("k".to_owned(), "v".to_owned()), ("k".to_owned(), "w".to_owned())],
        },
    }
}

/// Every op, then a reopen: the snapshot holds exactly what the ops left.
async fn every_op_round_trips(engine: Engine, durability: Durability) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(engine, dir.path(), durability).expect("open");
    store.load().expect("load empty");
    put_sessions(&*store, &["c1", "c2"]).await;
    let (_, s1) = fan_out(&*store, &["c1", "c2"], message("t", "one")).await;
    fan_out(&*store, &["c1"], message("t", "two")).await;
    fan_out(&*store, &["c1", "c2"], message("t", "three")).await;
    let (inflight_id, _) = fan_out(&*store, &["gone"], rich_message()).await;
    let c = client("c1");
    let ops = vec![
        Op::Dequeue {
            client: client("c2"),
            seq: s1[1],
        },
        Op::RetainQueue {
            client: Arc::clone(&c),
            keep: vec![s1[0]],
        },
        Op::PutSession {
            client: Arc::clone(&c),
            session: full_session(inflight_id),
        },
        Op::RemoveSession { client: client("gone") },
        Op::SetRetained {
            message: rich_message(),
        },
        Op::SetRetained {
            message: message("r/cleared", "x"),
        },
        Op::ClearRetained {
            topic: "r/cleared".to_owned(),
        },
    ];
    store.submit(ops).await.expect("commit");
    let snap = if engine == Engine::Memory {
        store.load().expect("load")
    } else {
        store.close().await.expect("close");
        drop(store);
        open(engine, dir.path(), durability)
            .expect("reopen")
            .load()
            .expect("load")
    };
    let c1 = snap.sessions.iter().find(|s| s.client_id == "c1").expect("c1");
    assert_eq!(c1.session, full_session(inflight_id), "{engine:?}");
    assert_eq!(queue_of(&snap, "c1"), ["one"], "{engine:?}");
    assert_eq!(queue_of(&snap, "c2"), ["three"], "{engine:?}");
    assert_eq!(*snap.messages[&inflight_id], rich_message(), "{engine:?}");
    assert_eq!(snap.messages.len(), 3, "one, three and the inflight one: {engine:?}");
    assert_eq!(snap.retained, vec![rich_message()], "{engine:?}");
    assert_eq!(snap.sessions.len(), 2, "{engine:?}");
    assert_eq!(snap.report.orphans, 0, "{engine:?}");
}

#[tokio::test]
async fn every_op_round_trips_on_every_engine() {
    for engine in ALL {
        every_op_round_trips(engine, Durability::Sync).await;
        every_op_round_trips(engine, INTERVAL).await;
    }
}

#[tokio::test]
async fn a_message_lives_while_a_queue_refers_to_it() {
    for engine in ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(engine, dir.path(), Durability::Sync).expect("open");
        store.load().expect("load");
        put_sessions(&*store, &["a", "b", "c"]).await;
        let (id, seqs) = fan_out(&*store, &["a", "b", "c"], message("t", "shared")).await;
        let dequeue = |c: &str, seq| Op::Dequeue { client: client(c), seq };
        store
            .submit(vec![dequeue("a", seqs[0]), dequeue("b", seqs[1])])
            .await
            .expect("commit");
        let snap = store.load().expect("load");
        assert_eq!(snap.messages.len(), 1, "{engine:?}: still queued for c");
        assert_eq!(queue_of(&snap, "c"), ["shared"]);
        store.submit(vec![dequeue("c", seqs[2])]).await.expect("commit");
        let snap = store.load().expect("load");
        assert!(snap.messages.is_empty(), "{engine:?}: deleted with its last reference");
        assert_eq!(
            snap.report.orphans, 0,
            "{engine:?}: deleted by the commit, not by the load"
        );
        assert!(!snap.messages.contains_key(&id));
    }
}

#[tokio::test]
async fn inflight_entries_hold_their_message() {
    for engine in ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(engine, dir.path(), Durability::Sync).expect("open");
        store.load().expect("load");
        let (id, seqs) = fan_out(&*store, &["a"], message("t", "sent")).await;
        // The session goes offline with the message in flight: it moves
        // from the queue to the session record in one batch.
        let mut record = session(3600);
        record.inflight.push(StoredInflight::Publish {
            packet_id: 1,
            delivery: entry(id),
        });
        let ops = vec![
            Op::RetainQueue {
                client: client("a"),
                keep: vec![],
            },
            Op::PutSession {
                client: client("a"),
                session: record,
            },
        ];
        store.submit(ops).await.expect("commit");
        assert_eq!(store.load().expect("load").messages.len(), 1, "{engine:?}");
        assert!(seqs.len() == 1);
        store
            .submit(vec![Op::PutSession {
                client: client("a"),
                session: session(3600),
            }])
            .await
            .expect("commit");
        assert!(
            store.load().expect("load").messages.is_empty(),
            "{engine:?}: released with the record"
        );
    }
}

#[tokio::test]
async fn expired_sessions_and_messages_go_at_load() {
    for engine in DURABLE {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(engine, dir.path(), Durability::Sync).expect("open");
        store.load().expect("load");
        let mut old = session(60);
        old.disconnected_at = SystemTime::now() - Duration::from_secs(61);
        let ops = vec![
            Op::PutSession {
                client: client("old"),
                session: old,
            },
            Op::PutSession {
                client: client("live"),
                session: session(60),
            },
        ];
        store.submit(ops).await.expect("commit");
        fan_out(&*store, &["old", "live"], message("t", "both")).await;
        let mut stale = message("t", "stale");
        stale.expires_at = Some(SystemTime::now() + Duration::from_millis(50));
        fan_out(&*store, &["live"], stale.clone()).await;
        stale.topic = "retained".to_owned();
        store
            .submit(vec![Op::SetRetained { message: stale }])
            .await
            .expect("commit");
        store.close().await.expect("close");
        drop(store);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let store = open(engine, dir.path(), Durability::Sync).expect("reopen");
        let snap = store.load().expect("load");
        assert_eq!(snap.sessions.len(), 1, "{engine:?}");
        assert_eq!(queue_of(&snap, "live"), ["both"], "{engine:?}");
        let r = snap.report;
        assert_eq!(
            (r.expired_sessions, r.expired_messages, r.expired_retained),
            (1, 1, 1),
            "{engine:?}"
        );
        // The removals were written: a second load finds nothing to remove.
        let again = store.load().expect("load");
        assert_eq!(
            (again.report.expired_sessions, again.report.expired_messages),
            (0, 0),
            "{engine:?}"
        );
    }
}

#[tokio::test]
async fn ids_are_not_reused_after_a_restart() {
    for engine in DURABLE {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(engine, dir.path(), INTERVAL).expect("open");
        store.load().expect("load");
        let (id, seqs) = fan_out(&*store, &["a"], message("t", "x")).await;
        drop(store);
        let store = open(engine, dir.path(), INTERVAL).expect("reopen");
        assert!(store.next_message_id() > id, "{engine:?}");
        assert!(store.next_seq() > seqs[0], "{engine:?}");
    }
}

#[tokio::test]
async fn concurrent_batches_are_committed_together() {
    for engine in ALL {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(engine, dir.path(), Durability::Sync).expect("open");
        store.load().expect("load");
        put_sessions(&*store, &["a"]).await;
        let commits: Vec<_> = (0..200)
            .map(|i| {
                let id = store.next_message_id();
                let seq = store.next_seq();
                store.submit(vec![
                    Op::PutMessage {
                        id,
                        message: message("t", &i.to_string()),
                    },
                    Op::Enqueue {
                        client: client("a"),
                        seq,
                        entry: entry(id),
                    },
                ])
            })
            .collect();
        for c in commits {
            c.await.expect("commit");
        }
        let snap = store.load().expect("load");
        let expected: Vec<String> = (0..200).map(|i: i32| i.to_string()).collect();
        assert_eq!(queue_of(&snap, "a"), expected, "{engine:?}: in submit order");
    }
}

#[tokio::test]
async fn submits_after_close_fail_and_name_the_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(Engine::Redb, dir.path(), Durability::Sync).expect("open");
    store.close().await.expect("close");
    let err = store
        .submit(vec![Op::ClearRetained { topic: "t".to_owned() }])
        .await
        .expect_err("closed");
    assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
}

#[test]
fn a_second_open_of_the_same_dir_fails_with_the_dir() {
    for engine in DURABLE {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = open(engine, dir.path(), Durability::Sync).expect("open");
        let err = open(engine, dir.path(), Durability::Sync).expect_err("locked");
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{engine:?}: {err}"
        );
    }
}

/// Copies a store's files while it runs: what a process killed at this
/// moment leaves (the page cache survives a process crash).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

#[tokio::test]
async fn what_a_commit_acknowledged_survives_a_crash() {
    for engine in DURABLE {
        for durability in [Durability::Sync, INTERVAL] {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = open(engine, dir.path(), durability).expect("open");
            store.load().expect("load");
            put_sessions(&*store, &["a", "b"]).await;
            let mut seqs = Vec::new();
            for i in 0..50 {
                seqs.push(fan_out(&*store, &["a", "b"], message("t", &i.to_string())).await.1);
            }
            let acked: Vec<_> = seqs
                .iter()
                .take(20)
                .map(|s| Op::Dequeue {
                    client: client("a"),
                    seq: s[0],
                })
                .collect();
            store.submit(acked).await.expect("commit");
            if let Durability::Interval(every) = durability {
                // Acknowledged means applied; on disk one interval later.
                tokio::time::sleep(every * 5).await;
            }
            let crashed = tempfile::tempdir().expect("tempdir");
            copy_dir(dir.path(), crashed.path());
            drop(store);
            let snap = open(engine, crashed.path(), durability)
                .expect("open the copy")
                .load()
                .expect("load");
            let expected: Vec<String> = (0..50).map(|i: i32| i.to_string()).collect();
            assert_eq!(
                queue_of(&snap, "a"),
                expected[20..].to_vec(),
                "{engine:?} {durability:?}"
            );
            assert_eq!(queue_of(&snap, "b"), expected, "{engine:?} {durability:?}");
        }
    }
}
