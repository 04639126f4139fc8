//! Skerry's durable session store: persistent session state, per-client
//! offline queues and retained messages of one broker node, on one of
//! three engines (`memory`, `sled`, `redb`) behind the [`Store`] trait.
//!
//! Writes are batches of [`Op`]s submitted from async code; one writer
//! thread per store commits every waiting batch in one transaction (group
//! commit) and resolves each batch's [`Commit`] when it is as durable as
//! the [`Durability`] policy says. A message fanned out to many offline
//! sessions is stored once and reference counted (VerneMQ's layout:
//! `{msg, Ref}` plus `{idx, ClientId, Ref}`), deleted with its last
//! reference. [`Store::load`] reads everything back at start-up and
//! removes what expired meanwhile.

mod apply;
mod codec;
mod engine;
mod error;
mod keys;
mod kv;
mod load;
mod record;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

pub use error::{Source, StoreError};
pub use record::{
    LoadReport, LoadedSession, MsgId, Op, QueueEntry, Queued, Seq, SessionRecord, Snapshot, StoredInflight,
    StoredMessage, StoredProperties, StoredSubscription, NEVER_EXPIRES,
};
pub use writer::Commit;

use kv::Kv;
use writer::{Queue, State};

/// Which engine holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Nothing on disk: clean sessions and tests.
    Memory,
    /// sled 0.34, in `<data_dir>/sled/`.
    Sled,
    /// redb, in `<data_dir>/store.redb`.
    Redb,
}

impl Engine {
    /// The name used in YAML and logs.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Memory => "memory",
            Engine::Sled => "sled",
            Engine::Redb => "redb",
        }
    }
}

/// When a [`Commit`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After the transaction is on disk (fsync).
    Sync,
    /// After the transaction is applied; an fsync follows within this interval.
    Interval(Duration),
}

/// The store of one node.
pub trait Store: Send + Sync + fmt::Debug {
    /// The engine in use.
    fn engine(&self) -> Engine;

    /// The durability policy in use.
    fn durability(&self) -> Durability;

    /// A fresh message id (never reused, also across restarts).
    fn next_message_id(&self) -> MsgId;

    /// A fresh queue position, after every one handed out before.
    fn next_seq(&self) -> Seq;

    /// Queues a batch for the writer; the batch is applied atomically.
    fn submit(&self, ops: Vec<Op>) -> Commit;

    /// Reads everything back, removing expired sessions and messages.
    /// Call once, at start-up, before the first [`Store::submit`].
    fn load(&self) -> Result<Snapshot, StoreError>;

    /// Stops taking batches; resolves when everything submitted before is
    /// durable and the writer has stopped.
    fn close(&self) -> Commit;
}

/// Opens (creating if needed) the store of the node whose data directory is `dir`.
pub fn open(engine: Engine, dir: &Path, durability: Durability) -> Result<Arc<dyn Store>, StoreError> {
    if engine != Engine::Memory {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            dir: dir.to_owned(),
            engine: engine.name(),
            source: Arc::new(e),
        })?;
    }
    Ok(match engine {
        Engine::Memory => Arc::new(KvStore::start(engine::memory::Memory::default(), dir, durability)?),
        Engine::Sled => Arc::new(KvStore::start(engine::sled::Sled::open(dir)?, dir, durability)?),
        Engine::Redb => Arc::new(KvStore::start(engine::redb::Redb::open(dir)?, dir, durability)?),
    })
}

/// The store on any engine.
struct KvStore<K: Kv> {
    dir: PathBuf,
    durability: Durability,
    queue: Arc<Queue>,
    state: Arc<Mutex<State<K>>>,
    next_id: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl<K: Kv> KvStore<K> {
    fn start(kv: K, dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        let high_water = {
            let reader = kv.reader()?;
            match kv::KvRead::get(&reader, keys::HIGH_WATER)? {
                Some(v) => codec::decode_u64(&v).map_err(|e| StoreError::Corrupt {
                    dir: dir.to_owned(),
                    key: keys::describe(keys::HIGH_WATER),
                    reason: e.0.to_owned(),
                })?,
                None => 0,
            }
        };
        let queue = Arc::new(Queue::new(dir));
        let state = Arc::new(Mutex::new(State {
            kv,
            refs: None,
            high_water,
        }));
        let writer = {
            let (queue, state) = (Arc::clone(&queue), Arc::clone(&state));
            std::thread::Builder::new()
                .name(format!("skerry-store-{}", K::NAME))
                .spawn(move || writer::run(&queue, &state, durability))
                .map_err(|e| StoreError::Open {
                    dir: dir.to_owned(),
                    engine: K::NAME,
                    source: Arc::new(e),
                })?
        };
        Ok(Self {
            dir: dir.to_owned(),
            durability,
            queue,
            state,
            next_id: AtomicU64::new(high_water + 1),
            writer: Mutex::new(Some(writer)),
        })
    }
}

impl<K: Kv> fmt::Debug for KvStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("engine", &K::NAME)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl<K: Kv> Store for KvStore<K> {
    fn engine(&self) -> Engine {
        match K::NAME {
            "sled" => Engine::Sled,
            "redb" => Engine::Redb,
            _ => Engine::Memory,
        }
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn next_message_id(&self) -> MsgId {
        MsgId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn next_seq(&self) -> Seq {
        Seq(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn submit(&self, ops: Vec<Op>) -> Commit {
        if ops.is_empty() {
            return Commit::ready(Ok(()));
        }
        self.queue.submit(ops)
    }

    fn load(&self) -> Result<Snapshot, StoreError> {
        let mut state = self.state.lock();
        load::load(&self.dir, &mut state, SystemTime::now())
    }

    fn close(&self) -> Commit {
        self.queue.close()
    }
}

impl<K: Kv> Drop for KvStore<K> {
    fn drop(&mut self) {
        drop(self.queue.close());
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
    }
}
