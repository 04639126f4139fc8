//! Messages towards the client: the inflight window, packet ids, DUP on
//! resend, outgoing topic aliases, expiry and the client's maximum packet size.

use std::num::NonZeroU16;
use std::time::SystemTime;

use skerry_codec::{Ack, ByteStr, Packet, ProtocolVersion, Publish, QoS};

use super::conn::Conn;
use super::io::{ConnError, Framed};
use crate::message::Delivery;
use crate::session::Inflight;
use crate::stats::NodeStats;

impl Conn {
    /// Sends `d` now if the window allows, else parks it.
    pub(super) fn deliver(&mut self, d: Delivery) -> Result<(), ConnError> {
        if d.qos == QoS::AtMostOnce {
            return self.send_publish(&d, None, false).map(drop);
        }
        if self.state.inflight.len() >= usize::from(self.p.inflight_window) {
            self.pending.push_back(d);
            return Ok(());
        }
        let Some(id) = self.state.next_packet_id() else {
            self.pending.push_back(d);
            return Ok(());
        };
        if self.send_publish(&d, Some(id), false)? {
            self.state.inflight.push_back((id, Inflight::Publish(d)));
        }
        Ok(())
    }

    /// Moves parked deliveries into the window while there is room.
    pub(super) fn fill_window(&mut self) -> Result<(), ConnError> {
        while let Some(d) = self.pending.front() {
            if d.qos != QoS::AtMostOnce && self.state.inflight.len() >= usize::from(self.p.inflight_window) {
                break;
            }
            let Some(d) = self.pending.pop_front() else { break };
            self.deliver(d)?;
        }
        Ok(())
    }

    /// On session resume: every unacknowledged PUBLISH again with DUP set,
    /// every PUBREL again.
    pub(super) fn resend_inflight(&mut self) -> Result<(), ConnError> {
        let inflight = std::mem::take(&mut self.state.inflight);
        for (id, entry) in inflight {
            let keep = match &entry {
                Inflight::Publish(d) => self.send_publish(d, Some(id), true)?,
                Inflight::Release => self.send(&Packet::PubRel(Ack::new(id))).map(|()| true)?,
            };
            if keep {
                self.state.inflight.push_back((id, entry));
            }
        }
        Ok(())
    }

    /// Encodes one PUBLISH for this client, or drops it (counted) when it
    /// expired or exceeds the client's maximum packet size; says which.
    fn send_publish(&mut self, d: &Delivery, id: Option<NonZeroU16>, dup: bool) -> Result<bool, ConnError> {
        let msg = &d.msg;
        let Ok(expiry) = msg.remaining_expiry(SystemTime::now()) else {
            NodeStats::inc(&self.node.stats.queue_message_expired);
            return Ok(false);
        };
        let mut publish = Publish::new(msg.topic.clone(), msg.payload.clone());
        publish.qos = d.qos;
        publish.retain = d.retain;
        publish.dup = dup;
        publish.packet_id = id;
        let mut new_alias = None;
        if self.p.version == ProtocolVersion::V5 {
            publish.properties = msg.properties.clone();
            publish.properties.message_expiry_interval = expiry;
            publish
                .properties
                .subscription_identifiers
                .clone_from(&d.subscription_ids);
            new_alias = self.apply_alias(&mut publish);
        }
        let packet = Packet::Publish(publish);
        if Framed::size_of(&packet, self.p.version) > self.p.client_max_packet as usize {
            // The client never sees this topic, so it must not learn an alias from it.
            if let Some(topic) = new_alias {
                self.aliases().outgoing.remove(&topic);
            }
            NodeStats::inc(&self.node.stats.mqtt_publish_too_large_for_client);
            return Ok(false);
        }
        self.send(&packet)?;
        NodeStats::inc(&self.node.stats.mqtt_publish_sent);
        Ok(true)
    }

    /// Uses (or sets up) an outgoing topic alias when the client allows them:
    /// the first message on a topic carries topic and alias, later ones only
    /// the alias. Once every alias is taken, new topics go out in full.
    /// Returns the topic when this message sets up a new alias.
    fn apply_alias(&mut self, publish: &mut Publish) -> Option<ByteStr> {
        if self.p.client_alias_max == 0 {
            return None;
        }
        let aliases = self.aliases();
        if let Some(alias) = aliases.outgoing.get(&publish.topic) {
            publish.properties.topic_alias = NonZeroU16::new(*alias);
            publish.topic = ByteStr::from("");
            return None;
        }
        let next = aliases.outgoing.len() + 1;
        if let Ok(alias) = u16::try_from(next) {
            if alias <= self.p.client_alias_max {
                self.aliases().outgoing.insert(publish.topic.clone(), alias);
                publish.properties.topic_alias = NonZeroU16::new(alias);
                return Some(publish.topic.clone());
            }
        }
        None
    }
}
