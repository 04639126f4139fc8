//! Group commit. Async code submits batches of ops and gets a [`Commit`]
//! future; one writer thread per store drains every batch waiting, applies
//! them in one transaction and resolves their futures together. With
//! `sync` durability the transaction is fsynced before the futures resolve;
//! with `interval` they resolve once it is applied, and the writer fsyncs
//! at most one interval later.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;
use tracing::error;

use crate::apply::{merge, Group, RefCounts};
use crate::codec;
use crate::error::StoreError;
use crate::keys;
use crate::kv::Kv;
use crate::record::Op;
use crate::Durability;

type Done = oneshot::Sender<Result<(), StoreError>>;

/// Resolves when a submitted batch is as durable as the policy says (or
/// failed). Dropping it does not cancel the batch.
#[must_use = "a batch is durable only once its Commit resolves"]
#[derive(Debug)]
pub struct Commit {
    state: CommitState,
}

#[derive(Debug)]
enum CommitState {
    Waiting(oneshot::Receiver<Result<(), StoreError>>, Arc<Path>),
    Ready(Option<Result<(), StoreError>>),
}

impl Commit {
    /// A commit that is already resolved.
    pub fn ready(result: Result<(), StoreError>) -> Self {
        Self {
            state: CommitState::Ready(Some(result)),
        }
    }
}

impl Future for Commit {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            CommitState::Waiting(rx, dir) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(r)) => Poll::Ready(r),
                Poll::Ready(Err(_)) => Poll::Ready(Err(StoreError::Closed { dir: dir.to_path_buf() })),
                Poll::Pending => Poll::Pending,
            },
            CommitState::Ready(r) => Poll::Ready(r.take().unwrap_or(Ok(()))),
        }
    }
}

/// Batches waiting for the writer.
#[derive(Default)]
struct Pending {
    batches: Vec<(Vec<Op>, Done)>,
    closers: Vec<Done>,
    closed: bool,
}

/// The submit side, shared by the store handle and its writer thread.
pub(crate) struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    dir: Arc<Path>,
}

impl Queue {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            pending: Mutex::default(),
            wake: Condvar::new(),
            dir: Arc::from(dir),
        }
    }

    pub(crate) fn submit(&self, ops: Vec<Op>) -> Commit {
        let (tx, rx) = oneshot::channel();
        let mut p = self.pending.lock();
        if p.closed {
            return Commit::ready(Err(StoreError::Closed {
                dir: self.dir.to_path_buf(),
            }));
        }
        p.batches.push((ops, tx));
        drop(p);
        self.wake.notify_one();
        Commit {
            state: CommitState::Waiting(rx, Arc::clone(&self.dir)),
        }
    }

    /// Stops taking batches; resolves once every batch before is durable.
    pub(crate) fn close(&self) -> Commit {
        let (tx, rx) = oneshot::channel();
        let mut p = self.pending.lock();
        p.closed = true;
        p.closers.push(tx);
        drop(p);
        self.wake.notify_one();
        Commit {
            state: CommitState::Waiting(rx, Arc::clone(&self.dir)),
        }
    }
}

/// What the writer owns; `load` borrows it before the first write.
pub(crate) struct State<K> {
    pub(crate) kv: K,
    /// Message reference counts; `None` until loaded.
    pub(crate) refs: Option<RefCounts>,
    /// Highest id persisted in the high-water record.
    pub(crate) high_water: u64,
}

/// The writer thread's loop; returns when the store is closed.
pub(crate) fn run<K: Kv>(queue: &Queue, state: &Mutex<State<K>>, durability: Durability) {
    let mut sync_due: Option<Instant> = None;
    loop {
        let (batches, closers, closed) = {
            let mut p = queue.pending.lock();
            while p.batches.is_empty() && !p.closed {
                match sync_due {
                    Some(at) if queue.wake.wait_until(&mut p, at).timed_out() => break,
                    Some(_) => {}
                    None => queue.wake.wait(&mut p),
                }
            }
            let closers = if p.closed {
                std::mem::take(&mut p.closers)
            } else {
                Vec::new()
            };
            (std::mem::take(&mut p.batches), closers, p.closed)
        };
        let mut state = state.lock();
        if !batches.is_empty() {
            let interval = match durability {
                Durability::Sync => None,
                Durability::Interval(every) => Some(every),
            };
            let applied = commit_batches(&queue.dir, &mut state, batches, interval.is_none());
            if applied && sync_due.is_none() {
                sync_due = interval.map(|every: Duration| Instant::now() + every);
            }
        }
        let mut synced = Ok(());
        if sync_due.is_some_and(|at| closed || Instant::now() >= at) {
            sync_due = None;
            synced = state.kv.sync();
            if let Err(e) = &synced {
                error!(error = %e, "store fsync failed");
            }
        }
        if closed {
            for c in closers {
                let _ = c.send(synced.clone());
            }
            return;
        }
    }
}

/// Commits every batch in one transaction; if that fails, each batch on its
/// own, so one bad batch does not fail the others. Says whether anything
/// was applied.
fn commit_batches<K: Kv>(dir: &Path, state: &mut State<K>, batches: Vec<(Vec<Op>, Done)>, durable: bool) -> bool {
    let together = batches.len() > 1 && {
        let ops = batches.iter().flat_map(|(ops, _)| ops.iter());
        commit_group(dir, state, ops, durable).is_ok()
    };
    if together {
        for (_, done) in batches {
            let _ = done.send(Ok(()));
        }
        return true;
    }
    let mut applied = false;
    for (ops, done) in batches {
        let r = commit_group(dir, state, ops.iter(), durable);
        if let Err(e) = &r {
            error!(error = %e, "store commit failed");
        }
        applied |= r.is_ok();
        let _ = done.send(r);
    }
    applied
}

/// Applies ops in one transaction.
pub(crate) fn commit_group<'o, K: Kv>(
    dir: &Path,
    state: &mut State<K>,
    ops: impl Iterator<Item = &'o Op>,
    durable: bool,
) -> Result<(), StoreError> {
    if state.refs.is_none() {
        state.refs = Some(crate::load::count_refs(dir, &state.kv)?);
    }
    let State { kv, refs, high_water } = state;
    let counts = refs.get_or_insert_with(RefCounts::new);
    let (mut writes, changed, used) = {
        let reader = kv.reader()?;
        let mut group = Group::new(dir, &reader, counts);
        for op in ops {
            group.apply(op)?;
        }
        group.collect_garbage();
        (group.txn.writes, group.changed, group.high_water)
    };
    if writes.is_empty() {
        // Nothing changed (say, removing a session that was never stored): no commit, no fsync.
        return Ok(());
    }
    if used > *high_water {
        writes.insert(keys::HIGH_WATER.to_vec(), Some(codec::encode_u64(used)));
    }
    kv.apply(writes, durable)?;
    merge(counts, changed);
    *high_water = (*high_water).max(used);
    Ok(())
}
