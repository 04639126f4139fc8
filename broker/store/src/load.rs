//! Start-up: read everything back, drop what expired while stored (or
//! while the node was down), drop what nothing refers to, rebuild the
//! message reference counts, and write the removals in one durable batch.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::apply::RefCounts;
use crate::codec::{self, DecodeError};
use crate::error::StoreError;
use crate::keys;
use crate::kv::{Kv, KvRead, Writes};
use crate::record::{LoadReport, LoadedSession, MsgId, Queued, Snapshot, StoredInflight, StoredMessage};
use crate::writer::State;

/// A decoding failure as a store error naming the key.
fn corrupt(dir: &Path, key: &[u8], e: DecodeError) -> StoreError {
    StoreError::Corrupt {
        dir: dir.to_owned(),
        key: keys::describe(key),
        reason: e.0.to_owned(),
    }
}

/// What a load builds up.
struct Loading<'d> {
    dir: &'d Path,
    now: SystemTime,
    writes: Writes,
    report: LoadReport,
    messages: HashMap<MsgId, Arc<StoredMessage>>,
    expired: HashSet<MsgId>,
    sessions: Vec<LoadedSession>,
    by_client: HashMap<Vec<u8>, usize>,
    ended: HashSet<Vec<u8>>,
    refs: RefCounts,
    /// Bytes of every key and value read (what is kept, roughly).
    bytes: u64,
}

/// Loads the store's content; the writer must not have written yet.
pub(crate) fn load<K: Kv>(dir: &Path, state: &mut State<K>, now: SystemTime) -> Result<Snapshot, StoreError> {
    let mut l = Loading {
        dir,
        now,
        writes: Writes::new(),
        report: LoadReport::default(),
        messages: HashMap::new(),
        expired: HashSet::new(),
        sessions: Vec::new(),
        by_client: HashMap::new(),
        ended: HashSet::new(),
        refs: RefCounts::new(),
        bytes: 0,
    };
    let retained = {
        let reader = state.kv.reader()?;
        l.messages(&reader)?;
        l.sessions(&reader)?;
        l.queues(&reader)?;
        l.inflight();
        l.unreferenced();
        l.retained(&reader)?
    };
    if !l.writes.is_empty() {
        state.kv.apply(std::mem::take(&mut l.writes), true)?;
    }
    state.kv.compact(l.bytes)?;
    l.report.sessions = l.sessions.len();
    l.report.messages = l.messages.len();
    l.report.retained = retained.len();
    state.refs = Some(l.refs);
    Ok(Snapshot {
        sessions: l.sessions,
        messages: l.messages,
        retained,
        report: l.report,
    })
}

impl Loading<'_> {
    fn delete(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }

    fn messages(&mut self, reader: &impl KvRead) -> Result<(), StoreError> {
        let dir = self.dir;
        reader.scan(&[keys::MESSAGE], &mut |k, v| {
            self.bytes += (k.len() + v.len()) as u64;
            let id = keys::parse_message(k).ok_or_else(|| corrupt(dir, k, DecodeError("bad message key")))?;
            let msg = codec::decode_message(v).map_err(|e| corrupt(dir, k, e))?;
            if msg.expired(self.now) {
                self.expired.insert(id);
                self.delete(k);
            } else {
                self.messages.insert(id, Arc::new(msg));
            }
            Ok(())
        })
    }

    fn sessions(&mut self, reader: &impl KvRead) -> Result<(), StoreError> {
        let dir = self.dir;
        reader.scan(&[keys::SESSION], &mut |k, v| {
            self.bytes += (k.len() + v.len()) as u64;
            let client =
                std::str::from_utf8(&k[1..]).map_err(|_| corrupt(dir, k, DecodeError("client id is not UTF-8")))?;
            let session = codec::decode_session(v).map_err(|e| corrupt(dir, k, e))?;
            if session.expired(self.now) {
                self.report.expired_sessions += 1;
                self.ended.insert(k[1..].to_vec());
                self.delete(k);
            } else {
                self.by_client.insert(k[1..].to_vec(), self.sessions.len());
                self.sessions.push(LoadedSession {
                    client_id: client.to_owned(),
                    session,
                    queue: Vec::new(),
                });
            }
            Ok(())
        })
    }

    fn queues(&mut self, reader: &impl KvRead) -> Result<(), StoreError> {
        let dir = self.dir;
        // Entries come grouped by client: look each client up once.
        let mut last: Option<(Vec<u8>, Option<usize>)> = None;
        reader.scan(&[keys::QUEUE], &mut |k, v| {
            self.bytes += (k.len() + v.len()) as u64;
            let (client, seq) = keys::parse_queue(k).ok_or_else(|| corrupt(dir, k, DecodeError("bad queue key")))?;
            if last.as_ref().is_none_or(|(c, _)| c != client) {
                last = Some((client.to_vec(), self.by_client.get(client).copied()));
            }
            let Some(index) = last.as_ref().and_then(|(_, i)| *i) else {
                // The session expired (its queue goes with it) or is missing.
                if !self.ended.contains(client) {
                    self.report.orphans += 1;
                }
                self.delete(k);
                return Ok(());
            };
            let entry = codec::decode_entry(v).map_err(|e| corrupt(dir, k, e))?;
            if self.expired.contains(&entry.msg) {
                self.report.expired_messages += 1;
                self.delete(k);
            } else if !self.messages.contains_key(&entry.msg) {
                self.report.orphans += 1;
                self.delete(k);
            } else {
                *self.refs.entry(entry.msg).or_insert(0) += 1;
                self.sessions[index].queue.push(Queued { seq, entry });
                self.report.queued += 1;
            }
            Ok(())
        })
    }

    /// Drops inflight entries whose message expired (rewriting the session)
    /// and counts the references of the others.
    fn inflight(&mut self) {
        for s in &mut self.sessions {
            let before = s.session.inflight.len();
            s.session.inflight.retain(|i| match i {
                StoredInflight::Publish { delivery, .. } => self.messages.contains_key(&delivery.msg),
                StoredInflight::Release { .. } => true,
            });
            let dropped = before - s.session.inflight.len();
            if dropped > 0 {
                self.report.expired_messages += dropped;
                let key = keys::session(&s.client_id);
                self.writes.insert(key, Some(codec::encode_session(&s.session)));
            }
            for id in s.session.message_refs() {
                *self.refs.entry(id).or_insert(0) += 1;
            }
        }
    }

    /// Deletes messages nothing refers to.
    fn unreferenced(&mut self) {
        let dead: Vec<MsgId> = self
            .messages
            .keys()
            .filter(|id| !self.refs.contains_key(id))
            .copied()
            .collect();
        for id in dead {
            self.messages.remove(&id);
            self.report.orphans += 1;
            self.writes.insert(keys::message(id), None);
        }
    }

    fn retained(&mut self, reader: &impl KvRead) -> Result<Vec<StoredMessage>, StoreError> {
        let dir = self.dir;
        let mut out = Vec::new();
        reader.scan(&[keys::RETAINED], &mut |k, v| {
            let msg = codec::decode_message(v).map_err(|e| corrupt(dir, k, e))?;
            if msg.expired(self.now) {
                self.report.expired_retained += 1;
                self.delete(k);
            } else {
                out.push(msg);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// Reference counts from the queues and inflight entries, for a store that
/// is written to before it was loaded.
pub(crate) fn count_refs<K: Kv>(dir: &Path, kv: &K) -> Result<RefCounts, StoreError> {
    let mut refs = RefCounts::new();
    let reader = kv.reader()?;
    reader.scan(&[keys::QUEUE], &mut |k, v| {
        let entry = codec::decode_entry(v).map_err(|e| corrupt(dir, k, e))?;
        *refs.entry(entry.msg).or_insert(0) += 1;
        Ok(())
    })?;
    reader.scan(&[keys::SESSION], &mut |k, v| {
        let session = codec::decode_session(v).map_err(|e| corrupt(dir, k, e))?;
        for id in session.message_refs() {
            *refs.entry(id).or_insert(0) += 1;
        }
        Ok(())
    })?;
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::memory::Memory;
    use crate::record::Seq;

    #[test]
    fn a_corrupt_record_is_an_error_naming_its_key() {
        let mut state = State {
            kv: Memory::default(),
            refs: None,
            high_water: 0,
        };
        let mut writes = Writes::new();
        writes.insert(
            keys::session("dev-1"),
            Some(codec::encode_session(&crate::record::SessionRecord {
                expiry: 60,
                disconnected_at: SystemTime::now(),
                username: None,
                subscriptions: vec![],
                inflight: vec![],
                awaiting_rel: vec![],
                last_packet_id: 0,
            })),
        );
        writes.insert(keys::queue("dev-1", Seq(42)), Some(vec![1, 0x80]));
        state.kv.apply(writes, true).expect("apply");
        let err = load(Path::new("/data/n1"), &mut state, SystemTime::now()).expect_err("corrupt");
        assert_eq!(
            err.to_string(),
            "store in /data/n1: corrupt record queue entry 42 of client \"dev-1\": value ends early"
        );
    }
}
