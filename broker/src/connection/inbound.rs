//! Packets from the client once connected: PUBLISH and its QoS flows,
//! acknowledgements of our messages, SUBSCRIBE / UNSUBSCRIBE, PINGREQ and
//! DISCONNECT. Anything else is a protocol error.

use std::num::NonZeroU16;

use skerry_codec::{
    Ack, ByteStr, Disconnect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, SubAck, Subscribe, UnsubAck,
    Unsubscribe,
};
use tracing::debug;

use super::conn::{Conn, Flow};
use super::io::ConnError;
use super::RECEIVE_MAXIMUM;
use crate::message::Message;
use crate::node::Ending;
use crate::session::Inflight;
use crate::stats::NodeStats;

impl Conn {
    /// Handles one packet from the client.
    pub(super) async fn handle(&mut self, packet: Packet) -> Result<Flow, ConnError> {
        match packet {
            Packet::Publish(p) => self.on_publish(p).await,
            Packet::PubAck(a) => self.on_ack(a.packet_id, QoS::AtLeastOnce).map(|()| Flow::Continue),
            Packet::PubRec(a) => self.on_pubrec(&a).map(|()| Flow::Continue),
            Packet::PubComp(a) => self.on_ack(a.packet_id, QoS::ExactlyOnce).map(|()| Flow::Continue),
            Packet::PubRel(a) => self.on_pubrel(a.packet_id).map(|()| Flow::Continue),
            Packet::Subscribe(s) => self.on_subscribe(s).map(|()| Flow::Continue),
            Packet::Unsubscribe(u) => self.on_unsubscribe(&u).map(|()| Flow::Continue),
            Packet::PingReq => self.send(&Packet::PingResp).map(|()| Flow::Continue),
            Packet::Disconnect(d) => Ok(self.on_disconnect(&d)),
            other => {
                debug!(packet = ?other.packet_type(), "unexpected packet from client");
                NodeStats::inc(&self.node.stats.mqtt_invalid_packet);
                self.send_disconnect(ReasonCode::ProtocolError);
                Ok(Flow::Stop(Ending::Abnormal))
            }
        }
    }

    /// Closes with `reason` (v5 DISCONNECT first) after a protocol violation.
    fn violation(&mut self, reason: ReasonCode, why: &'static str) -> Flow {
        debug!(?reason, why, "protocol violation");
        NodeStats::inc(&self.node.stats.mqtt_invalid_packet);
        self.send_disconnect(reason);
        Flow::Stop(Ending::Abnormal)
    }

    async fn on_publish(&mut self, mut p: Publish) -> Result<Flow, ConnError> {
        NodeStats::inc(&self.node.stats.mqtt_publish_received);
        if let Some(limiter) = &self.limiter {
            // Stop reading from this client until its rate allows more.
            limiter.until_ready().await;
        }
        if p.payload.len() > self.node.limits().max_message_size {
            return Ok(self.violation(ReasonCode::PacketTooLarge, "payload exceeds max_message_size"));
        }
        if let Err(reason) = self.resolve_alias(&mut p) {
            return Ok(self.violation(reason, "bad topic alias"));
        }
        if p.qos == QoS::ExactlyOnce {
            let id = p.packet_id.unwrap_or(NonZeroU16::MIN);
            if self.state.awaiting_rel.contains(&id) {
                // A resend of a message already routed: acknowledge again only.
                return self.send(&Packet::PubRec(Ack::new(id))).map(|()| Flow::Continue);
            }
            if self.state.awaiting_rel.len() >= usize::from(RECEIVE_MAXIMUM) {
                return Ok(self.violation(ReasonCode::ReceiveMaximumExceeded, "too many QoS 2 messages unreleased"));
            }
        }
        let allowed = self
            .node
            .acl()
            .can_publish(&self.session.client_id, self.p.username.as_deref(), &p.topic);
        let reason = if allowed {
            let msg = Message::new(
                p.topic,
                p.payload,
                p.qos,
                p.retain,
                p.properties,
                Some(self.session.key),
            );
            let published = self.node.publish_durable(msg);
            // An acknowledgement follows (QoS 1/2): it waits for the deliveries.
            self.routed |= p.qos != QoS::AtMostOnce && published.delivered > 0;
            // The acknowledgement queued below leaves only once this is durable.
            if let Some(commit) = published.commit.filter(|_| p.qos != QoS::AtMostOnce) {
                self.commits.get_or_insert_with(Box::default).push(commit);
            }
            // Backpressure: a subscriber that cannot keep up slows its
            // publishers down (they are not acknowledged, and not read from)
            // instead of losing their messages, up to a bound.
            let deadline = tokio::time::Instant::now() + crate::node::CONGESTION_WAIT;
            for c in published.congested {
                self.node.wait_for_room(c, deadline).await;
            }
            ReasonCode::Success
        } else {
            debug!(topic = %p.topic, "publish denied by ACL");
            NodeStats::inc(&self.node.stats.mqtt_publish_auth_error);
            // 3.x has no negative acknowledgement: acknowledge and drop.
            if self.p.version == ProtocolVersion::V5 {
                ReasonCode::NotAuthorized
            } else {
                ReasonCode::Success
            }
        };
        let ack = |id| Ack { reason, ..Ack::new(id) };
        match (p.qos, p.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.send(&Packet::PubAck(ack(id)))?,
            (QoS::ExactlyOnce, Some(id)) => {
                if reason == ReasonCode::Success {
                    self.state.awaiting_rel.insert(id);
                }
                self.send(&Packet::PubRec(ack(id)))?;
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    /// Resolves or records an incoming topic alias (v5).
    fn resolve_alias(&mut self, p: &mut Publish) -> Result<(), ReasonCode> {
        let Some(alias) = p.properties.topic_alias.take() else {
            return Ok(());
        };
        if alias.get() > self.p.server_alias_max {
            return Err(ReasonCode::TopicAliasInvalid);
        }
        if p.topic.is_empty() {
            p.topic = self
                .aliases()
                .incoming
                .get(&alias.get())
                .cloned()
                .ok_or(ReasonCode::ProtocolError)?;
        } else {
            self.aliases().incoming.insert(alias.get(), ByteStr::clone(&p.topic));
        }
        Ok(())
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2): the message is done.
    fn on_ack(&mut self, id: NonZeroU16, qos: QoS) -> Result<(), ConnError> {
        let pos = self.state.inflight.iter().position(|(p, entry)| {
            *p == id
                && match entry {
                    Inflight::Publish(d) => qos == QoS::AtLeastOnce && d.qos == QoS::AtLeastOnce,
                    Inflight::Release => qos == QoS::ExactlyOnce,
                }
        });
        match pos {
            Some(pos) => {
                if let Some((_, Inflight::Publish(d))) = self.state.inflight.remove(pos) {
                    self.node.delivered(&self.session, &d);
                }
                self.fill_window()
            }
            None => {
                debug!(packet_id = id.get(), "acknowledgement for an unknown packet id");
                Ok(())
            }
        }
    }

    /// PUBREC: answer PUBREL, or end the flow when the client refused it.
    fn on_pubrec(&mut self, a: &Ack) -> Result<(), ConnError> {
        let Some(entry) = self.state.inflight.iter_mut().find(|(p, _)| *p == a.packet_id) else {
            // Unknown id: PUBREL with "not found" lets the client finish its side.
            let rel = Ack {
                reason: ReasonCode::PacketIdentifierNotFound,
                ..Ack::new(a.packet_id)
            };
            return self.send(&Packet::PubRel(rel));
        };
        if a.reason.is_error() {
            self.state.inflight.retain(|(p, _)| *p != a.packet_id);
            return self.fill_window();
        }
        if let Inflight::Publish(d) = &entry.1 {
            // The client has the message now; only the PUBREL is left to resend.
            self.node.delivered(&self.session, d);
        }
        entry.1 = Inflight::Release;
        self.send(&Packet::PubRel(Ack::new(a.packet_id)))
    }

    /// PUBREL: the client releases a QoS 2 message we already routed.
    fn on_pubrel(&mut self, id: NonZeroU16) -> Result<(), ConnError> {
        let reason = if self.state.awaiting_rel.remove(&id) {
            ReasonCode::Success
        } else {
            ReasonCode::PacketIdentifierNotFound
        };
        self.send(&Packet::PubComp(Ack { reason, ..Ack::new(id) }))
    }

    fn on_subscribe(&mut self, s: Subscribe) -> Result<(), ConnError> {
        NodeStats::inc(&self.node.stats.mqtt_subscribe_received);
        let sub_id = s.properties.subscription_identifier;
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        for (filter, options) in s.filters {
            let acl = self.node.acl();
            if !acl.can_subscribe(&self.session.client_id, self.p.username.as_deref(), &filter) {
                debug!(%filter, "subscribe denied by ACL");
                NodeStats::inc(&self.node.stats.mqtt_subscribe_auth_error);
                codes.push(ReasonCode::NotAuthorized);
                continue;
            }
            let shared = skerry_codec::topic::parse_shared(&filter).is_some();
            if shared && options.no_local {
                // MQTT-3.8.3-4: No Local on a shared subscription is a protocol error.
                codes.push(ReasonCode::ProtocolError);
                continue;
            }
            let outcome = self
                .node
                .subscribe(&self.session, &mut self.state, &filter, options, sub_id);
            if !shared && outcome.send_retained(options) {
                retained.push((filter, options));
            }
            codes.push(ReasonCode::granted(options.qos));
        }
        let ack = SubAck {
            packet_id: s.packet_id,
            return_codes: codes,
            properties: Default::default(),
        };
        self.send(&Packet::SubAck(ack))?;
        for (filter, options) in retained {
            for d in self.node.retained_for(&filter, options, sub_id) {
                self.deliver(d)?;
            }
        }
        Ok(())
    }

    fn on_unsubscribe(&mut self, u: &Unsubscribe) -> Result<(), ConnError> {
        let codes = u
            .filters
            .iter()
            .map(|f| {
                if self.node.unsubscribe(&self.session, &mut self.state, f) {
                    ReasonCode::Success
                } else {
                    ReasonCode::NoSubscriptionExisted
                }
            })
            .collect();
        let ack = UnsubAck {
            packet_id: u.packet_id,
            reason_codes: codes,
            properties: Default::default(),
        };
        self.send(&Packet::UnsubAck(ack))
    }

    fn on_disconnect(&mut self, d: &Disconnect) -> Flow {
        if let Some(expiry) = d.properties.session_expiry_interval {
            let mut inner = self.session.inner.lock();
            if inner.expiry == 0 && expiry != 0 {
                drop(inner);
                // MQTT-3.14.2-2: a session that was to end at close cannot be revived here.
                return self.violation(ReasonCode::ProtocolError, "session expiry set on DISCONNECT after 0");
            }
            inner.expiry = expiry.min(self.node.limits().max_session_expiry);
        }
        // Only 0x00 discards the will (MQTT-3.14.4-3): 0x04 and every error
        // reason leave it to be published.
        if d.reason == ReasonCode::Success {
            self.will = None;
            Flow::Stop(Ending::Normal)
        } else {
            Flow::Stop(Ending::Abnormal)
        }
    }
}
