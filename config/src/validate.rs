//! Raw -> validated. Every check runs, and every problem is collected with
//! its key path and position, so `skerry config check` lists them all.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::ConfigError;
use crate::model::{Broker, Ca, Config, Listener, Logging, Node, TlsFiles, Transport};
use crate::raw::{RawBroker, RawConfig, RawListener, RawNode, RawTls, Text};
use crate::span::{join, SpanIndex};
use crate::units::{ByteSize, Duration, Rate, UnitError};

/// Collects errors while raw values are turned into validated ones.
pub(crate) struct Ctx<'a> {
    spans: &'a SpanIndex,
    /// Relative paths in the file are resolved against this directory.
    base: &'a Path,
    /// Every listener address seen so far, with its key path.
    binds: Vec<(SocketAddr, String)>,
    pub(crate) errors: Vec<ConfigError>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(spans: &'a SpanIndex, base: &'a Path) -> Self {
        Self {
            spans,
            base,
            binds: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn error(&mut self, path: &str, message: impl Display) {
        let pos = self.spans.find(path);
        self.errors.push(ConfigError {
            path: path.to_owned(),
            pos,
            message: message.to_string(),
        });
    }

    /// Parses a unit value; on failure records `"<text>" is not <expected>`.
    fn unit<T: FromStr<Err = UnitError>>(&mut self, path: &str, text: &Text) -> Option<T> {
        match text.0.parse() {
            Ok(v) => Some(v),
            Err(UnitError(expected)) => {
                self.error(path, format_args!("{:?} is not {expected}", text.0));
                None
            }
        }
    }

    fn socket_addr(&mut self, path: &str, text: &Text) -> Option<SocketAddr> {
        let parsed = text.0.parse().ok();
        if parsed.is_none() {
            self.error(
                path,
                format_args!(
                    "{:?} is not a socket address (expected IP:PORT, e.g. 0.0.0.0:1883 or [::]:1883)",
                    text.0
                ),
            );
        }
        parsed
    }

    fn path_buf(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    /// A file that must exist when the process starts.
    fn existing_file(&mut self, path: &str, p: &Path) -> PathBuf {
        let full = self.path_buf(p);
        if !full.is_file() {
            self.error(path, format_args!("file {} does not exist", full.display()));
        }
        full
    }
}

/// Builds the validated configuration, or every error found.
pub(crate) fn build(raw: RawConfig, cx: &mut Ctx<'_>) -> Config {
    let logging = raw.logging.map_or_else(Logging::default, |l| {
        let mut logging = Logging::default();
        if let Some(level) = l.level {
            check_log_filter(cx, &level);
            logging.level = level;
        }
        logging.format = l.format.unwrap_or(logging.format);
        logging
    });
    let ca = Ca {
        dir: raw
            .ca
            .and_then(|c| c.dir)
            .map_or_else(|| cx.path_buf(&Ca::default().dir), |d| cx.path_buf(&d)),
    };
    let broker = raw.broker.map(|b| broker(cx, b)).unwrap_or_default();
    Config { logging, ca, broker }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

fn check_log_filter(cx: &mut Ctx<'_>, filter: &str) {
    for directive in filter.split(',').map(str::trim) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            cx.error(
                "logging.level",
                format_args!(
                    "{directive:?} is not a log level (expected one of {} or target=level)",
                    LEVELS.join(", ")
                ),
            );
        }
    }
}

fn broker(cx: &mut Ctx<'_>, raw: RawBroker) -> Broker {
    let max_message_rate = raw
        .max_message_rate
        .and_then(|t| cx.unit::<Rate>("broker.max_message_rate", &t));
    let mut nodes = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, raw_node) in raw.nodes.unwrap_or_default().into_iter().enumerate() {
        let path = format!("broker.nodes[{i}]");
        if let Some(first) = names.insert(raw_node.name.clone(), i) {
            cx.error(
                &join(&path, "name"),
                format_args!("node name {:?} is already used by broker.nodes[{first}]", raw_node.name),
            );
        }
        nodes.push(node(cx, &path, raw_node));
    }
    Broker {
        max_message_rate,
        nodes,
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
    let tls = tls(cx, path, transport, raw.tls);
    let bind = bind?;
    let name = raw
        .name
        .unwrap_or_else(|| format!("{}-{}", transport_name(transport), bind.port()));
    Some(Listener {
        name,
        bind,
        transport,
        max_connections: max_connections?,
        handshake_timeout: handshake_timeout?,
        max_packet_size: max_packet_size?,
        tls,
    })
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

fn tls(cx: &mut Ctx<'_>, path: &str, transport: Transport, raw: Option<RawTls>) -> Option<TlsFiles> {
    let tls_path = join(path, "tls");
    match (transport, raw) {
        (Transport::Tcp, Some(_)) => {
            cx.error(
                &tls_path,
                "tls settings on a listener with transport: tcp (set transport: tls, or remove tls)",
            );
            None
        }
        (Transport::Tcp, None) => None,
        (Transport::Tls, None) => {
            cx.error(&tls_path, "transport: tls needs tls.cert and tls.key");
            None
        }
        (Transport::Tls, Some(raw)) => {
            let mut file = |key: &str, value: Option<PathBuf>| match value {
                Some(p) => Some(cx.existing_file(&join(&tls_path, key), &p)),
                None => {
                    cx.error(
                        &join(&tls_path, key),
                        format_args!("missing {key}: a TLS listener needs a PEM {key} file"),
                    );
                    None
                }
            };
            let cert = file("cert", raw.cert);
            let key = file("key", raw.key);
            Some(TlsFiles { cert: cert?, key: key? })
        }
    }
}

/// Two listeners cannot share a port when their addresses overlap (the
/// same IP, or either is the wildcard address).
fn claim_port(cx: &mut Ctx<'_>, path: String, a: SocketAddr) {
    let overlaps = |b: &SocketAddr| {
        a.port() == b.port()
            && a.port() != 0
            && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
    };
    if let Some((_, other)) = cx.binds.iter().find(|(b, _)| overlaps(b)) {
        let message = format!("port {} is already used by {other}", a.port());
        cx.error(&path, message);
    }
    cx.binds.push((a, path));
}
