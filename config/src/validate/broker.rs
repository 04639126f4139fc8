//! The `broker` section: nodes, listeners, limits, auth.

use std::collections::HashMap;
use std::num::{NonZeroU16, NonZeroU32};
use std::path::PathBuf;

use ipnet::IpNet;

use super::tls::tls;
use super::{claim_port, claim_socket, Ctx};
use crate::model::{AclRule, Broker, Listener, Node, ProxyProtocol, Sessions, Store, Transport};
use crate::raw::{RawAclRule, RawBroker, RawListener, RawNode, RawProxy, RawSessions, RawStore, Text};
use crate::span::join;
use crate::units::{ByteSize, Duration, Rate};

pub(super) fn broker(cx: &mut Ctx<'_>, raw: RawBroker) -> Broker {
    let d = Broker::default();
    let max_message_rate = raw
        .max_message_rate
        .and_then(|t| cx.unit::<Rate>("broker.max_message_rate", &t));
    let max_message_size = cx.unit_or("broker.max_message_size", raw.max_message_size, d.max_message_size);
    let max_keep_alive = cx.unit_or("broker.max_keep_alive", raw.max_keep_alive, d.max_keep_alive);
    if max_keep_alive.get().as_secs() > u64::from(u16::MAX) {
        cx.error("broker.max_keep_alive", "MQTT keep alive is at most 65535s (18h12m15s)");
    }
    let sys_interval = cx.unit_or("broker.sys_interval", raw.sys_interval, d.sys_interval);
    let users_file = raw.users_file.map(|p| cx.existing_file("broker.users_file", &p));
    let acl = raw
        .acl
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| acl_rule(cx, i, r))
        .collect();
    let sessions = raw.sessions.map(|s| sessions(cx, s)).unwrap_or_default();
    let store = raw.store.map(|s| store(cx, s)).unwrap_or_default();
    let mut nodes = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, raw_node) in raw.nodes.unwrap_or_default().into_iter().enumerate() {
        let path = format!("broker.nodes[{i}]");
        if let Some(first) = names.insert(raw_node.name.clone(), i) {
            let message = format!("node name {:?} is already used by broker.nodes[{first}]", raw_node.name);
            cx.error(&join(&path, "name"), message);
        }
        nodes.push(node(cx, &path, raw_node));
    }
    Broker {
        max_message_rate,
        max_message_size,
        max_keep_alive,
        topic_alias_maximum: raw.topic_alias_maximum.unwrap_or(d.topic_alias_maximum),
        shared_subscription_policy: raw.shared_subscription_policy.unwrap_or(d.shared_subscription_policy),
        sys_interval,
        allow_anonymous: raw.allow_anonymous.unwrap_or(d.allow_anonymous),
        users_file,
        acl,
        sessions,
        store,
        nodes,
    }
}

fn store(cx: &mut Ctx<'_>, raw: RawStore) -> Store {
    let d = Store::default();
    let fsync_interval = cx.unit_or("broker.store.fsync_interval", raw.fsync_interval, d.fsync_interval);
    if fsync_interval.get().is_zero() {
        cx.error(
            "broker.store.fsync_interval",
            "0 would fsync continuously (expected at least 1ms; use durability: sync to fsync every commit)",
        );
    }
    Store {
        engine: raw.engine.unwrap_or(d.engine),
        durability: raw.durability.unwrap_or(d.durability),
        fsync_interval,
    }
}

fn acl_rule(cx: &mut Ctx<'_>, i: usize, raw: RawAclRule) -> AclRule {
    let path = format!("broker.acl[{i}]");
    if let Err(why) = check_filter(&raw.topic) {
        cx.error(
            &join(&path, "topic"),
            format_args!("{:?} is not a topic filter: {why}", raw.topic),
        );
    }
    let users = raw.users.unwrap_or_default();
    if users.iter().any(String::is_empty) {
        cx.error(&join(&path, "users"), "a username cannot be empty");
    }
    AclRule {
        access: raw.access,
        topic: raw.topic,
        users,
    }
}

/// The MQTT filter rules: not empty, `#` only as the whole last level, `+` only as a whole level.
fn check_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("it is empty");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (n, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || n + 1 != levels.len()) {
            return Err("'#' must be the whole last level");
        }
        if level.contains('+') && *level != "+" {
            return Err("'+' must be a whole level");
        }
    }
    Ok(())
}

fn sessions(cx: &mut Ctx<'_>, raw: RawSessions) -> Sessions {
    let d = Sessions::default();
    let max_inflight_messages = match raw.max_inflight_messages {
        None => d.max_inflight_messages,
        Some(n) => NonZeroU16::new(n).unwrap_or_else(|| {
            cx.error(
                "broker.sessions.max_inflight_messages",
                "0 would stall every QoS 1/2 delivery (expected at least 1)",
            );
            d.max_inflight_messages
        }),
    };
    let max_session_expiry = cx.unit_or(
        "broker.sessions.max_session_expiry",
        raw.max_session_expiry,
        d.max_session_expiry,
    );
    let mut or_never = |key: &str, raw: Option<Text>, default: Option<Duration>| match raw {
        Some(t) if t.0 == "never" => None,
        Some(t) => cx.unit::<Duration>(key, &t),
        None => default,
    };
    let persistent_client_expiration = or_never(
        "broker.sessions.persistent_client_expiration",
        raw.persistent_client_expiration,
        d.persistent_client_expiration,
    );
    let hibernate_after = or_never(
        "broker.sessions.hibernate_after",
        raw.hibernate_after,
        d.hibernate_after,
    );
    Sessions {
        max_offline_messages: raw.max_offline_messages.unwrap_or(d.max_offline_messages),
        max_online_messages: raw.max_online_messages.unwrap_or(d.max_online_messages),
        max_inflight_messages,
        queue_type: raw.queue_type.unwrap_or(d.queue_type),
        max_session_expiry,
        persistent_client_expiration,
        hibernate_after,
    }
}

fn node(cx: &mut Ctx<'_>, path: &str, raw: RawNode) -> Node {
    let valid = !raw.name.is_empty() && raw.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid {
        cx.error(
            &join(path, "name"),
            format_args!("{:?} is not a node name (letters, digits, '-', '_' and '.')", raw.name),
        );
    }
    let data_dir = raw
        .data_dir
        .unwrap_or_else(|| PathBuf::from("skerry-data").join(&raw.name));
    if raw.listeners.is_empty() {
        cx.error(&join(path, "listeners"), "a node needs at least one listener");
    }
    let listeners = raw
        .listeners
        .into_iter()
        .enumerate()
        .filter_map(|(i, l)| listener(cx, &format!("{path}.listeners[{i}]"), l))
        .collect();
    Node {
        name: raw.name,
        data_dir: cx.path_buf(&data_dir),
        listeners,
    }
}

fn listener(cx: &mut Ctx<'_>, path: &str, raw: RawListener) -> Option<Listener> {
    let bind_path = join(path, "bind");
    let bind = cx.socket_addr(&bind_path, &raw.bind);
    if let Some(addr) = bind {
        claim_port(cx, bind_path, addr);
    }
    let transport = raw.transport.unwrap_or(Transport::Tcp);
    let max_connections = match raw.max_connections {
        None => NonZeroU32::new(Listener::DEFAULT_MAX_CONNECTIONS),
        Some(n) => {
            let n = NonZeroU32::new(n);
            if n.is_none() {
                cx.error(
                    &join(path, "max_connections"),
                    "0 would refuse every connection (expected at least 1)",
                );
            }
            n
        }
    };
    let handshake_timeout = match &raw.handshake_timeout {
        Some(t) => cx.unit::<Duration>(&join(path, "handshake_timeout"), t),
        None => Some(Listener::DEFAULT_HANDSHAKE_TIMEOUT),
    };
    let max_packet_size = match &raw.max_packet_size {
        Some(t) => cx.unit::<ByteSize>(&join(path, "max_packet_size"), t).filter(|s| {
            let ok = (2..=268_435_460).contains(&s.bytes());
            if !ok {
                cx.error(
                    &join(path, "max_packet_size"),
                    format_args!("{s} is outside what MQTT allows (2 bytes to 256MiB)"),
                );
            }
            ok
        }),
        None => Some(Listener::DEFAULT_MAX_PACKET_SIZE),
    };
    let send_buffer = raw
        .send_buffer
        .and_then(|t| cx.unit::<ByteSize>(&join(path, "send_buffer"), &t));
    let receive_buffer = raw
        .receive_buffer
        .and_then(|t| cx.unit::<ByteSize>(&join(path, "receive_buffer"), &t));
    let websocket_path = websocket_path(cx, path, transport, raw.websocket_path);
    let default_name = bind
        .map(|b| format!("{}-{}", transport.as_str(), b.port()))
        .unwrap_or_default();
    let name = raw.name.unwrap_or(default_name);
    let tls = match (transport.is_tls(), raw.tls) {
        (false, Some(_)) => {
            let message = format!(
                "tls settings on a listener with transport: {} (use tls or wss)",
                transport.as_str()
            );
            cx.error(&join(path, "tls"), message);
            None
        }
        (true, None) => {
            let message = format!("transport: {} needs tls (auto, or cert and key)", transport.as_str());
            cx.error(&join(path, "tls"), message);
            None
        }
        (_, raw_tls) => raw_tls.and_then(|t| tls(cx, &join(path, "tls"), &name, t)),
    };
    let proxy_protocol = raw
        .proxy_protocol
        .as_ref()
        .map(|p| proxy(cx, &join(path, "proxy_protocol"), p));
    let handover_socket = raw.handover_socket.and_then(|p| {
        let key = join(path, "handover_socket");
        if transport != Transport::Tcp {
            let message = format!(
                "handover_socket only applies to transport: tcp (this listener is {})",
                transport.as_str()
            );
            cx.error(&key, message);
            return None;
        }
        let full = cx.unix_socket(&key, &p)?;
        claim_socket(cx, key, &full);
        Some(full)
    });
    let bind = bind?;
    Some(Listener {
        name,
        bind,
        transport,
        max_connections: max_connections?,
        handshake_timeout: handshake_timeout?,
        max_packet_size: max_packet_size?,
        send_buffer,
        receive_buffer,
        websocket_path,
        tls,
        proxy_protocol,
        handover_socket,
    })
}

fn websocket_path(cx: &mut Ctx<'_>, path: &str, transport: Transport, raw: Option<String>) -> String {
    let key = join(path, "websocket_path");
    match raw {
        Some(_) if !matches!(transport, Transport::Ws | Transport::Wss) => {
            cx.error(&key, "websocket_path only applies to transport: ws or wss");
            String::new()
        }
        Some(p) if !p.starts_with('/') => {
            cx.error(
                &key,
                format_args!("{p:?} is not an HTTP path (expected it to start with '/', e.g. /mqtt)"),
            );
            p
        }
        Some(p) => p,
        None => Listener::DEFAULT_WEBSOCKET_PATH.to_owned(),
    }
}

pub(super) fn proxy(cx: &mut Ctx<'_>, path: &str, raw: &RawProxy) -> ProxyProtocol {
    let trusted_path = join(path, "trusted");
    if raw.trusted.is_empty() {
        cx.error(
            &trusted_path,
            "list the networks allowed to send PROXY headers (e.g. 10.0.0.0/8); an empty list would trust nobody",
        );
    }
    let trusted = raw
        .trusted
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let net =
                t.0.parse::<IpNet>()
                    .or_else(|_| t.0.parse::<std::net::IpAddr>().map(IpNet::from))
                    .ok();
            if net.is_none() {
                cx.error(
                    &format!("{trusted_path}[{i}]"),
                    format_args!("{:?} is not a network (expected CIDR like 10.0.0.0/8 or an IP)", t.0),
                );
            }
            net
        })
        .collect();
    ProxyProtocol {
        trusted,
        use_cn_as_username: raw.use_cn_as_username.unwrap_or(false),
    }
}
