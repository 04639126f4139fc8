//! The key layout. All records live in one ordered key space, each kind
//! under its own first byte, so one atomic batch covers every kind:
//!
//! | kind | key | value |
//! | --- | --- | --- |
//! | session | `s` client id | [`SessionRecord`](crate::SessionRecord) |
//! | queue entry | `q` len(client id) as u16 BE, client id, seq u64 BE | [`QueueEntry`](crate::QueueEntry) |
//! | message | `m` id u64 BE | [`StoredMessage`](crate::StoredMessage) |
//! | retained | `r` topic | [`StoredMessage`](crate::StoredMessage) |
//! | meta | `x` name | engine-independent bookkeeping |
//!
//! Big-endian numbers make key order numeric order, so a client's queue
//! reads back oldest first; the length prefix keeps client `ab` from
//! matching the queue of client `abc`.

use crate::record::{MsgId, Seq};

pub(crate) const SESSION: u8 = b's';
pub(crate) const QUEUE: u8 = b'q';
pub(crate) const MESSAGE: u8 = b'm';
pub(crate) const RETAINED: u8 = b'r';

/// Highest message id or sequence number ever handed to a batch.
pub(crate) const HIGH_WATER: &[u8] = b"xids";

pub(crate) fn session(client: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(client.len() + 1);
    k.push(SESSION);
    k.extend_from_slice(client.as_bytes());
    k
}

pub(crate) fn queue_prefix(client: &str) -> Vec<u8> {
    let len = u16::try_from(client.len()).unwrap_or(u16::MAX);
    let mut k = Vec::with_capacity(client.len() + 11);
    k.push(QUEUE);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(client.as_bytes());
    k
}

pub(crate) fn queue(client: &str, seq: Seq) -> Vec<u8> {
    let mut k = queue_prefix(client);
    k.extend_from_slice(&seq.0.to_be_bytes());
    k
}

/// Splits a queue key into client id bytes and sequence.
pub(crate) fn parse_queue(key: &[u8]) -> Option<(&[u8], Seq)> {
    let rest = key.strip_prefix(&[QUEUE])?;
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() != len + 8 {
        return None;
    }
    let (client, seq) = rest.split_at(len);
    Some((client, Seq(u64::from_be_bytes(seq.try_into().ok()?))))
}

pub(crate) fn message(id: MsgId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(MESSAGE);
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

pub(crate) fn parse_message(key: &[u8]) -> Option<MsgId> {
    let rest = key.strip_prefix(&[MESSAGE])?;
    Some(MsgId(u64::from_be_bytes(rest.try_into().ok()?)))
}

pub(crate) fn retained(topic: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(topic.len() + 1);
    k.push(RETAINED);
    k.extend_from_slice(topic.as_bytes());
    k
}

/// A key as a person reads it, for error messages.
pub(crate) fn describe(key: &[u8]) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match key.split_first() {
        Some((&SESSION, client)) => format!("session of client {:?}", text(client)),
        Some((&QUEUE, _)) => match parse_queue(key) {
            Some((client, seq)) => format!("queue entry {} of client {:?}", seq.0, text(client)),
            None => format!("malformed queue key {key:02x?}"),
        },
        Some((&MESSAGE, _)) => match parse_message(key) {
            Some(id) => format!("message {}", id.0),
            None => format!("malformed message key {key:02x?}"),
        },
        Some((&RETAINED, topic)) => format!("retained message of topic {:?}", text(topic)),
        _ => format!("key {:?}", text(key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_sort_by_client_then_sequence() {
        let a = queue("ab", Seq(2));
        let b = queue("ab", Seq(10));
        let c = queue("abc", Seq(1));
        assert!(a < b);
        assert!(!c.starts_with(&queue_prefix("ab")));
        assert_eq!(parse_queue(&b), Some((&b"ab"[..], Seq(10))));
        assert_eq!(describe(&b), "queue entry 10 of client \"ab\"");
    }

    #[test]
    fn message_keys_round_trip() {
        assert_eq!(parse_message(&message(MsgId(7))), Some(MsgId(7)));
        assert_eq!(parse_message(b"m\0"), None);
    }
}
