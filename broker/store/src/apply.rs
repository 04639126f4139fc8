//! Ops to key/value writes, with message reference counts.
//!
//! The counts live in memory only (as in VerneMQ's message store): they are
//! rebuilt at load from the queue entries and the sessions' inflight
//! entries, so an enqueue writes two records and never rewrites a counter.
//! A group's count changes are worked out on the side and merged only once
//! its transaction committed; a message whose count ends the group at zero
//! is deleted in that same transaction.

use std::collections::HashMap;
use std::path::Path;

use crate::codec;
use crate::error::StoreError;
use crate::keys;
use crate::kv::{KvRead, Txn};
use crate::record::{MsgId, Op, SessionRecord};

/// References to each live message.
pub(crate) type RefCounts = HashMap<MsgId, u32>;

/// One group of ops being turned into writes.
pub(crate) struct Group<'a, 'r, R> {
    dir: &'a Path,
    pub(crate) txn: Txn<'r, R>,
    refs: &'a RefCounts,
    /// New counts of the messages this group touched.
    pub(crate) changed: RefCounts,
    /// Highest id or sequence number the group used.
    pub(crate) high_water: u64,
}

impl<'a, 'r, R: KvRead> Group<'a, 'r, R> {
    pub(crate) fn new(dir: &'a Path, base: &'r R, refs: &'a RefCounts) -> Self {
        Self {
            dir,
            txn: Txn::new(base),
            refs,
            changed: RefCounts::new(),
            high_water: 0,
        }
    }

    fn count(&mut self, id: MsgId) -> &mut u32 {
        let base = self.refs.get(&id).copied().unwrap_or(0);
        self.changed.entry(id).or_insert(base)
    }

    fn add_ref(&mut self, id: MsgId) {
        *self.count(id) += 1;
    }

    fn drop_ref(&mut self, id: MsgId) {
        let c = self.count(id);
        *c = c.saturating_sub(1);
    }

    fn corrupt(&self, key: &[u8], e: codec::DecodeError) -> StoreError {
        StoreError::Corrupt {
            dir: self.dir.to_owned(),
            key: keys::describe(key),
            reason: e.0.to_owned(),
        }
    }

    /// Adds one op to the transaction.
    pub(crate) fn apply(&mut self, op: &Op) -> Result<(), StoreError> {
        match op {
            Op::PutMessage { id, message } => {
                self.high_water = self.high_water.max(id.0);
                self.count(*id);
                self.txn
                    .put(keys::message(*id), codec::encode_message(message), false)?;
            }
            Op::Enqueue { client, seq, entry } => {
                self.high_water = self.high_water.max(seq.0);
                // Sequence numbers are fresh, so there is no old entry to read.
                self.add_ref(entry.msg);
                self.txn
                    .put(keys::queue(client, *seq), codec::encode_entry(entry), false)?;
            }
            Op::Dequeue { client, seq } => self.remove_entry(&keys::queue(client, *seq))?,
            Op::RetainQueue { client, keep } => {
                for (key, _) in self.txn.scan(&keys::queue_prefix(client))? {
                    let kept = keys::parse_queue(&key).is_some_and(|(_, seq)| keep.contains(&seq));
                    if !kept {
                        self.remove_entry(&key)?;
                    }
                }
            }
            Op::PutSession { client, session } => {
                session.message_refs().for_each(|id| self.add_ref(id));
                let key = keys::session(client);
                let old = self.txn.put(key.clone(), codec::encode_session(session), true)?;
                self.release_session(&key, old)?;
            }
            Op::RemoveSession { client } => {
                let key = keys::session(client);
                let old = self.txn.remove(key.clone())?;
                self.release_session(&key, old)?;
                for (key, _) in self.txn.scan(&keys::queue_prefix(client))? {
                    self.remove_entry(&key)?;
                }
            }
            Op::SetRetained { message } => {
                self.txn
                    .put(keys::retained(&message.topic), codec::encode_message(message), false)?;
            }
            Op::ClearRetained { topic } => {
                self.txn.remove(keys::retained(topic))?;
            }
        }
        Ok(())
    }

    fn remove_entry(&mut self, key: &[u8]) -> Result<(), StoreError> {
        if let Some(old) = self.txn.remove(key.to_vec())? {
            let old = codec::decode_entry(&old).map_err(|e| self.corrupt(key, e))?;
            self.drop_ref(old.msg);
        }
        Ok(())
    }

    /// Drops the references a replaced or removed session record held.
    fn release_session(&mut self, key: &[u8], old: Option<Vec<u8>>) -> Result<(), StoreError> {
        let Some(old) = old else { return Ok(()) };
        let old: SessionRecord = codec::decode_session(&old).map_err(|e| self.corrupt(key, e))?;
        old.message_refs().for_each(|id| self.drop_ref(id));
        Ok(())
    }

    /// Deletes the messages nothing refers to any more; call after the last op.
    pub(crate) fn collect_garbage(&mut self) {
        let dead: Vec<MsgId> = self
            .changed
            .iter()
            .filter(|(_, c)| **c == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.txn.writes.insert(keys::message(id), None);
        }
    }
}

/// Merges a committed group's counts.
pub(crate) fn merge(refs: &mut RefCounts, changed: RefCounts) {
    for (id, c) in changed {
        if c == 0 {
            refs.remove(&id);
        } else {
            refs.insert(id, c);
        }
    }
}
