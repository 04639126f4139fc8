//! What happens to one accepted socket before MQTT: the PROXY header, TLS
//! and the WebSocket upgrade, in that order, under one deadline, inside the
//! connection's own task. Then the handler gets the connection. A
//! connection handed over by the balancer in this process goes through the
//! same steps, its first bytes (PROXY header, CONNECT) replayed in memory.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use skerry_certs::tls::ServerTls;
use skerry_config::{ProxyProtocol, Transport};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::error::{HandshakeError, ListenerError};
use super::stats::ListenerStats;
use super::stream::{BoxedStream, Io, Prefixed};
use super::{proxy, ws, Accepted, Permit};

/// A listener's settings for the per-connection work, shared by its tasks.
pub(super) struct Handshake {
    listener: Arc<str>,
    transport: Transport,
    timeout: Duration,
    proxy: Option<ProxyProtocol>,
    tls: Option<Arc<ServerTls>>,
    use_identity_as_username: bool,
    websocket_path: String,
    max_packet_size: u32,
}

/// How a connection reached the listener.
pub(super) enum Arrival {
    /// Accepted on the listener's socket.
    Socket(TcpStream),
    /// Handed over by the balancer in this process, or passed by one in
    /// another: the client's stream, the bytes the balancer would have
    /// sent first, and this listener's address (the one the balancer would
    /// have connected to).
    HandedOff {
        stream: BoxedStream,
        first_bytes: BytesMut,
        local: SocketAddr,
    },
}

/// A connection past its transport handshake.
struct Established {
    stream: BoxedStream,
    peer: SocketAddr,
    cert_cn: Option<String>,
    identity_username: Option<String>,
}

impl Handshake {
    /// Checks and loads everything the handshake needs from `cfg`.
    pub(super) fn new(cfg: &skerry_config::Listener) -> Result<Self, ListenerError> {
        let tls = match (&cfg.tls, cfg.transport.is_tls()) {
            (Some(files), true) => Some(Arc::new(ServerTls::load(files).map_err(|source| {
                ListenerError::Tls {
                    listener: cfg.name.clone(),
                    source: Box::new(source),
                }
            })?)),
            (None, true) => {
                return Err(ListenerError::MissingTls {
                    listener: cfg.name.clone(),
                    transport: cfg.transport.as_str(),
                })
            }
            (_, false) => None,
        };
        Ok(Self {
            listener: Arc::from(cfg.name.as_str()),
            transport: cfg.transport,
            timeout: cfg.handshake_timeout.get(),
            proxy: cfg.proxy_protocol.clone(),
            use_identity_as_username: tls.is_some() && cfg.tls.as_ref().is_some_and(|t| t.use_identity_as_username),
            tls,
            websocket_path: cfg.websocket_path.clone(),
            max_packet_size: u32::try_from(cfg.max_packet_size.bytes()).unwrap_or(u32::MAX),
        })
    }

    pub(super) fn listener(&self) -> &Arc<str> {
        &self.listener
    }

    pub(super) fn tls(&self) -> Option<&Arc<ServerTls>> {
        self.tls.as_ref()
    }

    /// Runs in the connection's task: handshake, then `handler` until it
    /// returns. Failures end the connection; they are logged and counted.
    /// The transport handshake runs boxed and is gone once the handler
    /// runs: the task then holds the handler's future and little else.
    pub(super) fn serve<H, Fut>(
        self: Arc<Self>,
        arrival: Arrival,
        peer: SocketAddr,
        permit: Permit,
        stats: Arc<ListenerStats>,
        handler: Arc<H>,
    ) -> impl Future<Output = ()> + Send
    where
        H: Fn(Accepted) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let active = stats.on_accept();
        let establish = Box::pin(self.establish(arrival, peer, permit, stats));
        async move {
            let _active = active;
            let Some(accepted) = establish.await else {
                return;
            };
            handler(accepted).await;
        }
    }

    /// PROXY header, TLS, WebSocket under the handshake deadline: what the
    /// handler gets, or `None` when the connection ended here.
    async fn establish(
        self: Arc<Self>,
        arrival: Arrival,
        peer: SocketAddr,
        permit: Permit,
        stats: Arc<ListenerStats>,
    ) -> Option<Accepted> {
        let handshake_deadline = tokio::time::Instant::now() + self.timeout;
        let handshake = match arrival {
            Arrival::Socket(tcp) => {
                let local = self.checked_socket(&tcp, peer, &stats)?;
                (
                    local,
                    tokio::time::timeout_at(handshake_deadline, self.handshake(tcp, peer)).await,
                )
            }
            // The balancer that hands it over is ours: no trust check, and
            // its socket already has TCP_NODELAY.
            Arrival::HandedOff {
                stream,
                first_bytes,
                local,
            } => {
                let replayed = Prefixed::new(first_bytes, stream);
                (
                    local,
                    tokio::time::timeout_at(handshake_deadline, self.handshake(replayed, peer)).await,
                )
            }
        };
        let (local, established) = match handshake {
            (local, Ok(Ok(established))) => (local, established),
            (_, Ok(Err(error))) => {
                self.failed(&stats, peer, &error);
                return None;
            }
            (_, Err(_)) => {
                self.failed(&stats, peer, &HandshakeError::Timeout);
                return None;
            }
        };
        Some(Accepted {
            stream: established.stream,
            peer: established.peer,
            local,
            listener: Arc::clone(&self.listener),
            transport: self.transport,
            cert_cn: established.cert_cn,
            identity_username: established.identity_username,
            max_packet_size: self.max_packet_size,
            handshake_deadline,
            permit,
        })
    }

    /// A socket's PROXY trust and options; its local address, or `None`
    /// when it must close.
    fn checked_socket(&self, tcp: &TcpStream, peer: SocketAddr, stats: &ListenerStats) -> Option<SocketAddr> {
        if let Some(proxy) = &self.proxy {
            if !proxy::is_trusted(&proxy.trusted, peer) {
                stats.on_proxy_refused();
                debug!(listener = %self.listener, %peer, "PROXY protocol peer not trusted, connection closed");
                return None;
            }
        }
        // Nagle would hold back small MQTT packets such as PUBACK.
        if let Err(error) = tcp.set_nodelay(true) {
            debug!(listener = %self.listener, %peer, %error, "cannot set TCP_NODELAY");
        }
        match tcp.local_addr() {
            Ok(local) => Some(local),
            Err(error) => {
                stats.on_handshake_failed();
                debug!(listener = %self.listener, %peer, %error, "connection lost before its handshake");
                None
            }
        }
    }

    fn failed(&self, stats: &ListenerStats, peer: SocketAddr, error: &HandshakeError) {
        stats.on_handshake_failed();
        debug!(listener = %self.listener, %peer, %error, "handshake failed");
    }

    async fn handshake<S: Io + 'static>(&self, mut raw: S, peer: SocketAddr) -> Result<Established, HandshakeError> {
        let (mut stream, peer, proxy_cn): (BoxedStream, _, _) = match &self.proxy {
            None => (Box::new(raw), peer, None),
            Some(_) => {
                let (info, rest) = proxy::read_header(&mut raw).await?;
                let stream = Box::new(Prefixed::new(rest, raw));
                (stream, info.source.unwrap_or(peer), info.cert_cn)
            }
        };
        let mut tls_cn = None;
        if let Some(config) = &self.tls {
            let tls = TlsAcceptor::from(config.config())
                .accept(stream)
                .await
                .map_err(HandshakeError::Tls)?;
            tls_cn = skerry_certs::tls::client_common_name(tls.get_ref().1);
            stream = Box::new(tls);
        }
        if matches!(self.transport, Transport::Ws | Transport::Wss) {
            stream = Box::new(ws::upgrade(stream, &self.websocket_path, self.max_packet_size).await?);
        }
        Ok(Established {
            stream,
            peer,
            identity_username: self.identity(&proxy_cn, &tls_cn),
            // The balancer speaks for the original client; a certificate
            // from our own TLS would then belong to the hop in between.
            cert_cn: proxy_cn.or(tls_cn),
        })
    }

    /// The username a client certificate stands for, where the listener
    /// says so: the balancer's CN first, then our own TLS peer's.
    fn identity(&self, proxy_cn: &Option<String>, tls_cn: &Option<String>) -> Option<String> {
        let from_proxy = self.proxy.as_ref().is_some_and(|p| p.use_cn_as_username);
        let from_proxy = proxy_cn.as_ref().filter(|_| from_proxy);
        let from_tls = tls_cn.as_ref().filter(|_| self.use_identity_as_username);
        from_proxy.or(from_tls).cloned()
    }
}
