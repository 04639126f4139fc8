//! One client connection: read CONNECT under the handshake deadline,
//! authenticate, attach the session (taking it over from another connection
//! if needed), answer CONNACK, then run the packet loop until the client,
//! the node or a protocol error ends it.

mod conn;
mod hibernate;
mod inbound;
mod io;
mod outbound;

use std::future::Future;
use std::num::NonZeroU16;
use std::sync::Arc;

use skerry_codec::{ConnAck, Connect, Packet, ProtocolVersion, ReasonCode};
use tokio::time::timeout_at;
use tracing::{debug, debug_span, Instrument};

pub(crate) use hibernate::{Dormitory, Watching};
pub(crate) use io::ConnError;
use io::Framed;

use crate::auth::{AuthError, AuthRequest};
use crate::listener::Accepted;
use crate::node::{Attached, NodeShared};
use crate::stats::NodeStats;

/// Packet ids a client may have awaiting PUBREL at once (our Receive Maximum).
pub(crate) const RECEIVE_MAXIMUM: u16 = 128;

/// Serves one accepted connection to its end. Not an `async fn`: the
/// handshake is boxed before the returned future exists, so that future
/// holds neither the `Accepted` nor the handshake's state, only the packet
/// loop's (every byte of it is paid per idle connection).
pub(crate) fn serve(node: Arc<NodeShared>, accepted: Accepted) -> impl Future<Output = ()> + Send {
    let span =
        debug_span!("conn", peer = %accepted.peer, listener = %accepted.listener, client_id = tracing::field::Empty);
    let handshake = Box::pin(async move {
        match handshake(node, accepted).await {
            Ok(Some(conn)) => Some(conn),
            ended => {
                closed(ended.map(drop));
                None
            }
        }
    });
    async move {
        let Some(conn) = handshake.await else {
            return;
        };
        if let Some(ended) = conn.run().await {
            closed(ended);
        }
    }
    .instrument(span)
}

fn closed(ended: Result<(), ConnError>) {
    match ended {
        Ok(()) => debug!("connection closed"),
        Err(e) => debug!(error = %e, "connection closed"),
    }
}

/// CONNECT, authentication, session, CONNACK: the connection ready to run,
/// or `None` when it ended here.
async fn handshake(node: Arc<NodeShared>, accepted: Accepted) -> Result<Option<Box<conn::Conn>>, ConnError> {
    // One deadline from accept on: time spent on TLS or a PROXY header is
    // not given again for the CONNECT.
    let deadline = accepted.handshake_deadline;
    let mut io = Framed::new(accepted.stream, accepted.max_packet_size, accepted.permit);
    let connect = match timeout_at(deadline, io.read_packet()).await {
        Err(_) => {
            debug!("no CONNECT before the handshake deadline");
            return Ok(None);
        }
        Ok(Ok(Some((Packet::Connect(c), n)))) => {
            NodeStats::add(&node.stats.bytes_received, n as u64);
            c
        }
        Ok(Ok(_)) => return Ok(None),
        Ok(Err(ConnError::Decode(e)))
            if matches!(
                e.reason_code(),
                ReasonCode::UnsupportedProtocolVersion | ReasonCode::ClientIdentifierNotValid
            ) =>
        {
            // An unknown version, or a client id 3.1 / 3.1.1 forbid (MQTT-3.1.3-8
            // wants CONNACK 0x02): answer in the 3.1.1 form older clients read.
            let connack = Packet::ConnAck(ConnAck::new(e.reason_code()));
            io.queue(&connack, ProtocolVersion::V311)?;
            io.close().await;
            return Err(ConnError::Decode(e));
        }
        Ok(Err(e)) => {
            NodeStats::inc(&node.stats.mqtt_invalid_packet);
            return Err(e);
        }
    };
    NodeStats::inc(&node.stats.mqtt_connect_received);
    let version = connect.protocol;
    match admit(&node, &connect, accepted.identity_username).await {
        Ok(admitted) => {
            tracing::Span::current().record("client_id", admitted.client_id.as_str());
            let attached = node
                .attach(&admitted.client_id, &connect, admitted.username.clone())
                .await;
            let params = Params::new(&node, &connect, &admitted, &attached, accepted.max_packet_size);
            let connack = params.connack(&connect, &admitted, attached.session_present);
            io.queue(&Packet::ConnAck(connack), version)?;
            node.stats.connack_sent.inc(ReasonCode::Success as u8);
            Ok(Some(Box::new(conn::Conn::new(
                node,
                io,
                params,
                attached,
                connect.will,
            ))))
        }
        Err(reason) => {
            node.stats.connack_sent.inc(reason as u8);
            debug!(reason = ?reason, "connection refused");
            io.queue(&Packet::ConnAck(ConnAck::new(reason)), version)?;
            io.close().await;
            Ok(None)
        }
    }
}

/// Who a connection turned out to be.
pub(crate) struct Admitted {
    /// The client id in use (assigned when the client sent none).
    pub(crate) client_id: String,
    /// Whether the server assigned the client id.
    pub(crate) assigned: bool,
    /// The authenticated username.
    pub(crate) username: Option<String>,
}

/// Client-id rules and authentication; `Err` is the CONNACK reason.
async fn admit(node: &NodeShared, c: &Connect, identity: Option<String>) -> Result<Admitted, ReasonCode> {
    if c.properties.authentication_method.is_some() {
        // Enhanced authentication (AUTH exchanges) is not offered.
        return Err(ReasonCode::BadAuthenticationMethod);
    }
    let (client_id, assigned) = match (c.client_id.is_empty(), c.protocol) {
        (false, _) => (c.client_id.clone(), false),
        // 3.1 requires an id; 3.1.1 allows none only with a clean session.
        (true, ProtocolVersion::V31) => return Err(ReasonCode::ClientIdentifierNotValid),
        (true, ProtocolVersion::V311) if !c.clean_start => return Err(ReasonCode::ClientIdentifierNotValid),
        (true, _) => (node.assign_client_id(), true),
    };
    let request = AuthRequest {
        client_id: client_id.clone(),
        username: c.username.clone(),
        password: c.password.clone(),
        identity_username: identity,
    };
    let auth = node.authenticator();
    let identity = if auth.verifies_password(&request) {
        tokio::task::spawn_blocking(move || auth.authenticate(&request))
            .await
            .map_err(|_| ReasonCode::UnspecifiedError)?
    } else {
        auth.authenticate(&request)
    };
    match identity {
        Ok(identity) => Ok(Admitted {
            client_id,
            assigned,
            username: identity.username,
        }),
        Err(AuthError::BadCredentials) => Err(ReasonCode::BadUserNameOrPassword),
        Err(AuthError::NotAuthorized) => Err(ReasonCode::NotAuthorized),
    }
}

/// What was agreed at CONNECT for the life of the connection.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub(crate) version: ProtocolVersion,
    /// Keep alive enforced, in seconds (1.5x of it is the read deadline);
    /// 0: off.
    pub(crate) keep_alive: u16,
    /// Keep alive the server imposes, when it differs from the client's (v5).
    pub(crate) server_keep_alive: Option<u16>,
    /// Most QoS 1/2 messages in flight towards the client.
    pub(crate) inflight_window: u16,
    /// Largest packet the client accepts.
    pub(crate) client_max_packet: u32,
    /// Aliases we may use towards the client.
    pub(crate) client_alias_max: u16,
    /// Aliases the client may use towards us.
    pub(crate) server_alias_max: u16,
    /// Largest packet we accept from the client (the listener's limit).
    pub(crate) server_max_packet: u32,
    /// Session expiry granted, in seconds, when it differs from the request.
    pub(crate) granted_expiry: Option<u32>,
    /// Username in use (for ACL `%u`).
    pub(crate) username: Option<String>,
}

impl Params {
    fn new(node: &NodeShared, c: &Connect, admitted: &Admitted, attached: &Attached, max_packet: u32) -> Self {
        let limits = node.limits();
        let max_ka = limits.max_keep_alive;
        let (keep_alive, server_keep_alive) = match c.protocol {
            ProtocolVersion::V5 if c.keep_alive == 0 || c.keep_alive > max_ka => (max_ka, Some(max_ka)),
            _ => (c.keep_alive, None),
        };
        let props = &c.properties;
        let receive_max = props.receive_maximum.map_or(u16::MAX, NonZeroU16::get);
        Self {
            version: c.protocol,
            keep_alive,
            server_keep_alive,
            inflight_window: receive_max.min(limits.max_inflight.get()),
            client_max_packet: props.maximum_packet_size.map_or(u32::MAX, |m| m.get()),
            client_alias_max: props.topic_alias_maximum.unwrap_or(0),
            server_alias_max: limits.topic_alias_maximum,
            server_max_packet: max_packet,
            granted_expiry: (attached.expiry != c.properties.session_expiry_interval.unwrap_or(0)
                && c.protocol == ProtocolVersion::V5)
                .then_some(attached.expiry),
            username: admitted.username.clone(),
        }
    }

    fn connack(&self, c: &Connect, admitted: &Admitted, session_present: bool) -> ConnAck {
        let mut ack = ConnAck::new(ReasonCode::Success);
        ack.session_present = session_present && !c.clean_start;
        if c.protocol != ProtocolVersion::V5 {
            return ack;
        }
        let p = &mut ack.properties;
        p.receive_maximum = NonZeroU16::new(RECEIVE_MAXIMUM);
        p.maximum_packet_size = std::num::NonZeroU32::new(self.server_max_packet);
        p.topic_alias_maximum = Some(self.server_alias_max);
        p.server_keep_alive = self.server_keep_alive;
        p.session_expiry_interval = self.granted_expiry;
        p.assigned_client_identifier = admitted.assigned.then(|| admitted.client_id.clone());
        p.retain_available = Some(true);
        p.wildcard_subscription_available = Some(true);
        p.subscription_identifiers_available = Some(true);
        p.shared_subscription_available = Some(true);
        ack
    }
}
