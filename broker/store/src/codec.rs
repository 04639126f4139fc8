//! The on-disk form of records: a small hand-written binary format. Every
//! value starts with a format version byte; integers are LEB128 varints;
//! strings and byte strings are length-prefixed. Decoding never panics: a
//! short or malformed value is an error the caller reports with its key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::record::{
    MsgId, QueueEntry, SessionRecord, StoredInflight, StoredMessage, StoredProperties, StoredSubscription,
};

/// Format version of every value written by this code.
const VERSION: u8 = 1;

/// Why a value could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) &'static str);

type Result<T> = std::result::Result<T, DecodeError>;

/// Appends encoded fields to a buffer.
struct Writer(Vec<u8>);

impl Writer {
    fn new(capacity: usize) -> Self {
        let mut v = Vec::with_capacity(capacity + 1);
        v.push(VERSION);
        Self(v)
    }

    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.var(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn opt_var(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.var(v);
            }
        }
    }

    fn opt_bytes(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.u8(0),
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
        }
    }

    fn time(&mut self, t: SystemTime) {
        self.var(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64));
    }
}

/// Reads fields back, checking every length against what is left.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Result<Self> {
        match b.split_first() {
            Some((&VERSION, rest)) => Ok(Self(rest)),
            Some(_) => Err(DecodeError("unknown format version")),
            None => Err(DecodeError("empty value")),
        }
    }

    fn u8(&mut self) -> Result<u8> {
        let (&v, rest) = self.0.split_first().ok_or(DecodeError("value ends early"))?;
        self.0 = rest;
        Ok(v)
    }

    fn var(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("integer too long"))
    }

    fn narrow<T: TryFrom<u64>>(&mut self, what: &'static str) -> Result<T> {
        T::try_from(self.var()?).map_err(|_| DecodeError(what))
    }

    fn slice(&mut self) -> Result<&'a [u8]> {
        let len = usize::try_from(self.var()?).map_err(|_| DecodeError("length too large"))?;
        if len > self.0.len() {
            return Err(DecodeError("length beyond the value"));
        }
        let (b, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(b)
    }

    fn string(&mut self) -> Result<String> {
        String::from_utf8(self.slice()?.to_vec()).map_err(|_| DecodeError("string is not UTF-8"))
    }

    fn flag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError("bad flag")),
        }
    }

    fn opt_var(&mut self) -> Result<Option<u64>> {
        if self.flag()? {
            self.var().map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_string(&mut self) -> Result<Option<String>> {
        if self.flag()? {
            self.string().map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_u32(&mut self, what: &'static str) -> Result<Option<u32>> {
        self.opt_var()?
            .map(|v| u32::try_from(v).map_err(|_| DecodeError(what)))
            .transpose()
    }

    fn time(&mut self) -> Result<SystemTime> {
        Ok(UNIX_EPOCH + Duration::from_millis(self.var()?))
    }

    /// A count of items that follow, bounded by what is left (each item
    /// takes at least one byte), so a bad count cannot allocate much.
    fn count(&mut self) -> Result<usize> {
        let n = usize::try_from(self.var()?).map_err(|_| DecodeError("count too large"))?;
        if n > self.0.len() {
            return Err(DecodeError("count beyond the value"));
        }
        Ok(n)
    }

    fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}

/// Encodes a message.
pub(crate) fn encode_message(m: &StoredMessage) -> Vec<u8> {
    let mut w = Writer::new(m.topic.len() + m.payload.len() + 16);
    w.bytes(m.topic.as_bytes());
    w.bytes(&m.payload);
    w.u8(m.qos | if m.retain { 0x80 } else { 0 });
    match m.expires_at {
        None => w.u8(0),
        Some(t) => {
            w.u8(1);
            w.time(t);
        }
    }
    let p = &m.properties;
    let empty = *p == StoredProperties::default();
    w.u8(u8::from(!empty));
    if !empty {
        w.opt_var(p.payload_format_indicator.map(u64::from));
        w.opt_var(p.message_expiry_interval.map(u64::from));
        w.opt_bytes(p.content_type.as_deref().map(str::as_bytes));
        w.opt_bytes(p.response_topic.as_deref().map(str::as_bytes));
        w.opt_bytes(p.correlation_data.as_deref());
        w.var(p.user_properties.len() as u64);
        for (k, v) in &p.user_properties {
            w.bytes(k.as_bytes());
            w.bytes(v.as_bytes());
        }
    }
    w.0
}

/// Decodes a message.
pub(crate) fn decode_message(b: &[u8]) -> Result<StoredMessage> {
    let mut r = Reader::new(b)?;
    let topic = r.string()?;
    let payload = Bytes::copy_from_slice(r.slice()?);
    let flags = r.u8()?;
    let (qos, retain) = (flags & 0x7f, flags & 0x80 != 0);
    if qos > 2 {
        return Err(DecodeError("QoS above 2"));
    }
    let expires_at = if r.flag()? { Some(r.time()?) } else { None };
    let properties = if r.flag()? {
        properties(&mut r)?
    } else {
        StoredProperties::default()
    };
    r.finish()?;
    Ok(StoredMessage {
        topic,
        payload,
        qos,
        retain,
        expires_at,
        properties,
    })
}

fn properties(r: &mut Reader<'_>) -> Result<StoredProperties> {
    let payload_format_indicator = r
        .opt_var()?
        .map(|v| u8::try_from(v).map_err(|_| DecodeError("bad payload format")))
        .transpose()?;
    let message_expiry_interval = r.opt_u32("bad expiry interval")?;
    let content_type = r.opt_string()?;
    let response_topic = r.opt_string()?;
    let correlation_data = if r.flag()? {
        Some(Bytes::copy_from_slice(r.slice()?))
    } else {
        None
    };
    let n = r.count()?;
    let mut user_properties = Vec::with_capacity(n);
    for _ in 0..n {
        user_properties.push((r.string()?, r.string()?));
    }
    Ok(StoredProperties {
        payload_format_indicator,
        message_expiry_interval,
        content_type,
        response_topic,
        correlation_data,
        user_properties,
    })
}

fn put_entry(w: &mut Writer, e: &QueueEntry) {
    w.var(e.msg.0);
    w.u8(e.qos | if e.retain { 0x80 } else { 0 });
    w.var(e.subscription_ids.len() as u64);
    for id in &e.subscription_ids {
        w.var(u64::from(*id));
    }
}

fn get_entry(r: &mut Reader<'_>) -> Result<QueueEntry> {
    let msg = MsgId(r.var()?);
    let flags = r.u8()?;
    let (qos, retain) = (flags & 0x7f, flags & 0x80 != 0);
    if qos > 2 {
        return Err(DecodeError("QoS above 2"));
    }
    let n = r.count()?;
    let mut subscription_ids = Vec::with_capacity(n);
    for _ in 0..n {
        subscription_ids.push(r.narrow("bad subscription id")?);
    }
    Ok(QueueEntry {
        msg,
        qos,
        retain,
        subscription_ids,
    })
}

/// Encodes a queue entry.
pub(crate) fn encode_entry(e: &QueueEntry) -> Vec<u8> {
    let mut w = Writer::new(12);
    put_entry(&mut w, e);
    w.0
}

/// Decodes a queue entry.
pub(crate) fn decode_entry(b: &[u8]) -> Result<QueueEntry> {
    let mut r = Reader::new(b)?;
    let e = get_entry(&mut r)?;
    r.finish()?;
    Ok(e)
}

/// Encodes a session.
pub(crate) fn encode_session(s: &SessionRecord) -> Vec<u8> {
    let mut w = Writer::new(64);
    w.var(u64::from(s.expiry));
    w.time(s.disconnected_at);
    w.opt_bytes(s.username.as_deref().map(str::as_bytes));
    w.var(s.subscriptions.len() as u64);
    for sub in &s.subscriptions {
        w.bytes(sub.filter.as_bytes());
        let flags =
            sub.qos | u8::from(sub.no_local) << 2 | u8::from(sub.retain_as_published) << 3 | sub.retain_handling << 4;
        w.u8(flags);
        w.opt_var(sub.id.map(u64::from));
    }
    w.var(s.inflight.len() as u64);
    for i in &s.inflight {
        match i {
            StoredInflight::Publish { packet_id, delivery } => {
                w.u8(0);
                w.var(u64::from(*packet_id));
                put_entry(&mut w, delivery);
            }
            StoredInflight::Release { packet_id } => {
                w.u8(1);
                w.var(u64::from(*packet_id));
            }
        }
    }
    w.var(s.awaiting_rel.len() as u64);
    for id in &s.awaiting_rel {
        w.var(u64::from(*id));
    }
    w.var(u64::from(s.last_packet_id));
    w.0
}

/// Decodes a session.
pub(crate) fn decode_session(b: &[u8]) -> Result<SessionRecord> {
    let mut r = Reader::new(b)?;
    let expiry = r.narrow("bad session expiry")?;
    let disconnected_at = r.time()?;
    let username = r.opt_string()?;
    let n = r.count()?;
    let mut subscriptions = Vec::with_capacity(n);
    for _ in 0..n {
        let filter = r.string()?;
        let flags = r.u8()?;
        let id = r.opt_u32("bad subscription id")?;
        let (qos, retain_handling) = (flags & 0x3, flags >> 4);
        if qos > 2 || retain_handling > 2 {
            return Err(DecodeError("bad subscription options"));
        }
        subscriptions.push(StoredSubscription {
            filter,
            qos,
            no_local: flags & 0x4 != 0,
            retain_as_published: flags & 0x8 != 0,
            retain_handling,
            id,
        });
    }
    let n = r.count()?;
    let mut inflight = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = r.u8()?;
        let packet_id = r.narrow("bad packet id")?;
        inflight.push(match kind {
            0 => StoredInflight::Publish {
                packet_id,
                delivery: get_entry(&mut r)?,
            },
            1 => StoredInflight::Release { packet_id },
            _ => return Err(DecodeError("bad inflight kind")),
        });
    }
    let n = r.count()?;
    let mut awaiting_rel = Vec::with_capacity(n);
    for _ in 0..n {
        awaiting_rel.push(r.narrow("bad packet id")?);
    }
    let last_packet_id = r.narrow("bad packet id")?;
    r.finish()?;
    Ok(SessionRecord {
        expiry,
        disconnected_at,
        username,
        subscriptions,
        inflight,
        awaiting_rel,
        last_packet_id,
    })
}

/// Encodes the id high-water mark.
pub(crate) fn encode_u64(v: u64) -> Vec<u8> {
    let mut w = Writer::new(9);
    w.var(v);
    w.0
}

/// Decodes the id high-water mark.
pub(crate) fn decode_u64(b: &[u8]) -> Result<u64> {
    let mut r = Reader::new(b)?;
    let v = r.var()?;
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionRecord {
        SessionRecord {
            expiry: 3600,
            disconnected_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000),
            username: Some("u".to_owned()),
            subscriptions: vec![StoredSubscription {
                filter: "a/#".to_owned(),
                qos: 1,
                no_local: false,
                retain_as_published: true,
                retain_handling: 1,
                id: Some(5),
            }],
            inflight: vec![
                StoredInflight::Publish {
                    packet_id: 1,
                    delivery: QueueEntry {
                        msg: MsgId(300),
                        qos: 1,
                        retain: false,
                        subscription_ids: vec![5],
                    },
                },
                StoredInflight::Release { packet_id: 2 },
            ],
            awaiting_rel: vec![9],
            last_packet_id: 2,
        }
    }

    fn message() -> StoredMessage {
        StoredMessage {
            topic: "t".to_owned(),
            payload: Bytes::from_static(b"payload"),
            qos: 2,
            retain: true,
            expires_at: Some(UNIX_EPOCH + Duration::from_millis(5)),
            properties: StoredProperties {
                user_properties: vec![("a".to_owned(), "b".to_owned())],
                correlation_data: Some(Bytes::from_static(b"c")),
                ..Default::default()
            },
        }
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(decode_session(&encode_session(&session())), Ok(session()));
        assert_eq!(decode_message(&encode_message(&message())), Ok(message()));
        assert_eq!(decode_u64(&encode_u64(u64::MAX)), Ok(u64::MAX));
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let (session, message) = (encode_session(&session()), encode_message(&message()));
        for cut in 0..session.len() {
            assert!(decode_session(&session[..cut]).is_err(), "session cut at {cut}");
        }
        for cut in 0..message.len() {
            assert!(decode_message(&message[..cut]).is_err(), "message cut at {cut}");
        }
        for bytes in [session, message] {
            for i in 0..bytes.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut b = bytes.clone();
                    b[i] ^= flip;
                    let _ = decode_session(&b);
                    let _ = decode_message(&b);
                    let _ = decode_entry(&b);
                }
            }
        }
        assert_eq!(decode_message(&[2, 0]), Err(DecodeError("unknown format version")));
        assert_eq!(
            decode_entry(&[VERSION, 0xff, 0xff]),
            Err(DecodeError("value ends early"))
        );
    }
}
