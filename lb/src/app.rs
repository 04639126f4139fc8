//! The pingora `ServerApp` of one listener, and the first phases of every
//! connection: PROXY header from a trusted balancer in front, TLS
//! handshake, CONNECT. Everything here runs in the connection's own task
//! under `sniff_timeout`, never in the accept loop. What follows the
//! CONNECT (limits, backend choice, relaying) is in `session`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use parking_lot::RwLock;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use skerry_certs::tls::ServerTls;
use skerry_config::{Lb, ProxyProtocol};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::TlsAcceptor;
use tracing::field::{display, Empty};
use tracing::{debug, Instrument, Span};

use crate::classes::Classes;
use crate::handoff::LocalBackends;
use crate::limits::{Caps, ConnectRates};
use crate::metrics::{Metrics, Outcome, Refusal};
use crate::pass::PlainSocket;
use crate::pool::PoolState;
use crate::prefixed::Prefixed;
use crate::proxy_in;
use crate::proxy_out::Addrs;
use crate::tls::TlsInfo;
use crate::{mqtt, ring};

/// Balancer-wide settings and state every listener shares.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) sniff_timeout: Duration,
    pub(crate) max_connect_size: u32,
    pub(crate) drain_window: Duration,
    pub(crate) grace_period: Duration,
    pub(crate) pools: Vec<Arc<PoolState>>,
    pub(crate) rates: Arc<ConnectRates>,
    pub(crate) caps: Arc<Caps>,
    pub(crate) classes: RwLock<Arc<Classes>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Broker listeners in this process that take clients handed over.
    pub(crate) local: Option<Arc<dyn LocalBackends>>,
    next_id: AtomicU64,
}

impl Core {
    pub(crate) fn new(cfg: &Lb, local: Option<Arc<dyn LocalBackends>>) -> Core {
        Core {
            sniff_timeout: cfg.sniff_timeout.get(),
            max_connect_size: u32::try_from(cfg.max_connect_size.bytes()).unwrap_or(u32::MAX),
            drain_window: cfg.drain_window.get(),
            grace_period: cfg.grace_period.get(),
            pools: cfg.pools.iter().map(|p| Arc::new(PoolState::new(p))).collect(),
            rates: Arc::new(ConnectRates::new(cfg)),
            caps: Arc::new(Caps::new(cfg)),
            classes: RwLock::new(Arc::new(Classes::new(&cfg.rate_classes))),
            metrics: Arc::new(Metrics::default()),
            local,
            next_id: AtomicU64::new(0),
        }
    }

    pub(crate) fn pool(&self, name: &str) -> Option<&Arc<PoolState>> {
        self.pools.iter().find(|p| &*p.name == name)
    }

    /// When, within the drain window, connection `id` closes at shutdown:
    /// spread evenly (by a hash of the id) so clients do not all reconnect
    /// at the same instant.
    pub(crate) fn drain_delay(&self, id: u64) -> Duration {
        let share = ring::fmix64(id) as f64 / u64::MAX as f64;
        self.drain_window.mul_f64(share)
    }
}

/// One listener: where its clients go and how they arrive.
pub(crate) struct ListenerApp {
    pub(crate) name: Arc<str>,
    pub(crate) core: Arc<Core>,
    pub(crate) pool: Arc<PoolState>,
    pub(crate) tls: Option<Arc<ServerTls>>,
    pub(crate) proxy_in: Option<ProxyProtocol>,
}

/// One connection's identity in logs and in the PROXY header.
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) addrs: Addrs,
    pub(crate) shutdown: ShutdownWatch,
}

#[async_trait]
impl ServerApp for ListenerApp {
    async fn process_new(self: &Arc<Self>, io: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let _open = self.core.metrics.open();
        let conn = Conn {
            id: self.core.next_id.fetch_add(1, Relaxed),
            addrs: socket_addrs(&io),
            shutdown: shutdown.clone(),
        };
        let span = tracing::info_span!(
            "connection",
            listener = %self.name,
            peer = Empty,
            client_id = Empty,
            backend = Empty,
        );
        let outcome = self.serve(io, conn).instrument(span).await;
        self.core.metrics.ended(outcome);
        // MQTT connections are never reused for another request.
        None
    }
}

fn socket_addrs(io: &Stream) -> Addrs {
    let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
    let digest = io.get_socket_digest();
    let inet = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| a.and_then(|a| a.as_inet()).copied();
    Addrs {
        client: digest.as_ref().and_then(|d| inet(d.peer_addr())).unwrap_or(unknown),
        local: digest.as_ref().and_then(|d| inet(d.local_addr())).unwrap_or(unknown),
    }
}

impl ListenerApp {
    async fn serve(&self, mut io: Stream, mut conn: Conn) -> Outcome {
        let deadline = Instant::now() + self.core.sniff_timeout;
        let mut first_bytes = BytesMut::new();
        if let Some(pp) = &self.proxy_in {
            match self.inbound_proxy(pp, &mut io, &mut conn.addrs, deadline).await {
                Ok(rest) => first_bytes = rest,
                Err(reason) => return self.reject(reason),
            }
        }
        Span::current().record("peer", display(conn.addrs.client));
        let Some(config) = &self.tls else {
            return self.sniff(io, first_bytes, None, conn).await;
        };
        let acceptor = TlsAcceptor::from(config.config());
        let tls = match timeout_at(deadline, acceptor.accept(Prefixed::new(first_bytes, io))).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                debug!(%error, "TLS handshake failed");
                return self.reject(Refusal::TlsHandshake);
            }
            Err(_) => return self.reject(Refusal::TlsHandshake),
        };
        let info = TlsInfo::of(tls.get_ref().1);
        self.sniff(tls, BytesMut::new(), Some(info), conn).await
    }

    /// Reads the PROXY header of a trusted balancer in front; its client
    /// address replaces the socket's and is rate-limited here (the
    /// connection filter only saw the balancer's).
    async fn inbound_proxy(
        &self,
        pp: &ProxyProtocol,
        io: &mut Stream,
        addrs: &mut Addrs,
        deadline: Instant,
    ) -> Result<BytesMut, Refusal> {
        if !proxy_in::is_trusted(&pp.trusted, addrs.client) {
            debug!(peer = %addrs.client, "PROXY header from an untrusted address");
            return Err(Refusal::UntrustedProxy);
        }
        let (reported, rest) = match timeout_at(deadline, proxy_in::read_header(io)).await {
            Ok(Ok(found)) => found,
            Ok(Err(error)) => {
                debug!(peer = %addrs.client, %error, "bad PROXY header");
                return Err(Refusal::BadProxyHeader);
            }
            Err(_) => return Err(Refusal::BadProxyHeader),
        };
        addrs.client = reported.client.unwrap_or(addrs.client);
        addrs.local = reported.local.unwrap_or(addrs.local);
        self.core.rates.check_ip(addrs.client.ip())?;
        Ok(rest)
    }

    /// Reads the CONNECT, then hands over to the session.
    async fn sniff<S>(&self, mut client: S, mut buf: BytesMut, tls: Option<TlsInfo>, conn: Conn) -> Outcome
    where
        S: AsyncRead + AsyncWrite + PlainSocket + Unpin + Send + 'static,
    {
        let max = self.core.max_connect_size;
        let read = timeout(self.core.sniff_timeout, mqtt::read_connect(&mut client, &mut buf, max)).await;
        let connect = match read {
            Ok(Ok(connect)) => connect,
            Ok(Err(error)) => {
                debug!(%error, "no valid CONNECT");
                return self.reject(error.refusal());
            }
            Err(_) => return self.reject(Refusal::SniffTimeout),
        };
        Span::current().record("client_id", connect.client_id.as_str());
        self.session(client, buf, connect, tls, conn).await
    }

    /// Counts a connection closed without an MQTT answer.
    pub(crate) fn reject(&self, reason: Refusal) -> Outcome {
        debug!(reason = reason.as_str(), "connection closed");
        self.core.metrics.refused(reason);
        Outcome::Rejected
    }
}
