//! MQTT listeners of a broker node: `tcp`, `tls`, `ws` and `wss` sockets,
//! each optionally behind a PROXY protocol header.
//!
//! [`MqttListener::bind`] does everything that can fail because of the
//! configuration (TLS files, the socket) before a single connection is
//! accepted. [`MqttListener::run`] is the accept loop, shaped like
//! mini-redis's: a permit from the connection semaphore is taken *before*
//! `accept`, so at the cap new clients wait in the kernel's backlog rather
//! than being accepted and dropped; accept errors pause the loop instead of
//! spinning. Every socket then gets its own task, where the PROXY header,
//! TLS and the WebSocket upgrade run under one deadline (see `handshake`);
//! a slow client never holds up the loop. What comes out is an
//! [`Accepted`]: a plain byte stream plus who is on the other end, handed to
//! the caller's handler in that same task.
//!
//! A `tcp` listener also has an [`Inlet`]: where the balancer running in
//! the same process hands over a client it would otherwise relay to this
//! listener over loopback. The connection then goes through the same
//! steps, and from there on the node reads and writes the client's own
//! socket. With a `handover_socket`, a `skerry lb` in another process on
//! this host does the same: it passes the client's socket itself.

mod error;
mod handover;
mod handshake;
mod proxy;
mod stats;
mod stream;
mod ws;

#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use skerry_config::Transport;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

pub use error::ListenerError;
pub use skerry_certs::tls::{ServerTls, TlsError};
pub use stats::ListenerStats;
pub use stream::{BoxedStream, Io};

use handover::{Closing, Destination, HandoverSocket};
use handshake::{Arrival, Handshake};

/// Connections the kernel queues for us while the loop waits for a permit.
const BACKLOG: u32 = 1024;
/// Handed-over connections waiting for the accept loop, as the backlog.
const INLET_BACKLOG: usize = BACKLOG as usize;
/// Pause after running out of file descriptors, as pingora does: retrying
/// at once cannot succeed before some connection closes.
const FD_EXHAUSTED_PAUSE: Duration = Duration::from_secs(1);
/// First and largest pause after any other accept error.
const BACKOFF_START: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// `ENFILE` and `EMFILE` (the same numbers on Linux and the BSDs).
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;

/// A connection past its transport handshake, ready for MQTT.
pub struct Accepted {
    /// The client's bytes: TCP, TLS or WebSocket, all the same here.
    pub stream: BoxedStream,
    /// The client's address: from the PROXY header if there was one.
    pub peer: SocketAddr,
    /// The local end of the socket.
    pub local: SocketAddr,
    /// Name of the listener, for logs and metrics.
    pub listener: Arc<str>,
    /// What the listener speaks.
    pub transport: Transport,
    /// CN of a verified client certificate: from our TLS handshake or from a
    /// trusted PROXY v2 SSL TLV.
    pub cert_cn: Option<String>,
    /// `cert_cn`, when the listener says the certificate identity is the
    /// username (`use_identity_as_username`, `use_cn_as_username`). `None`
    /// when it says so but no certificate came: the MQTT layer decides.
    pub identity_username: Option<String>,
    /// The listener's largest MQTT packet.
    pub max_packet_size: u32,
    /// Accept time plus the listener's `handshake_timeout`: the transport
    /// handshake *and* the CONNECT must be done by then, so a client slow
    /// in one step gets no fresh allowance for the next.
    pub handshake_deadline: tokio::time::Instant,
    /// The connection's place under `max_connections`; keep it until the
    /// connection closes.
    pub permit: Permit,
}

/// A connection's place under its listener's `max_connections` and, for a
/// client a balancer in another process passed, what tells that balancer
/// the connection has closed. Hold it as long as the connection.
pub struct Permit {
    _place: OwnedSemaphorePermit,
    _passed: Option<Box<Closing>>,
}

impl Permit {
    fn new(place: OwnedSemaphorePermit) -> Permit {
        Permit {
            _place: place,
            _passed: None,
        }
    }

    fn passed(place: OwnedSemaphorePermit, closing: Closing) -> Permit {
        Permit {
            _place: place,
            _passed: Some(Box::new(closing)),
        }
    }
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("listener", &self.listener)
            .field("transport", &self.transport)
            .field("cert_cn", &self.cert_cn)
            .field("identity_username", &self.identity_username)
            .field("max_packet_size", &self.max_packet_size)
            .field("handshake_deadline", &self.handshake_deadline)
            .finish_non_exhaustive()
    }
}

/// A bound listening socket with its TLS configuration, ready to run.
pub struct MqttListener {
    tcp: TcpListener,
    local: SocketAddr,
    limit: Arc<Semaphore>,
    handshake: Arc<Handshake>,
    stats: Arc<ListenerStats>,
    /// Connections handed over in-process (`tcp` listeners only).
    inlet: Option<(Inlet, mpsc::Receiver<HandedOff>)>,
    /// Where a balancer in another process passes clients.
    handover: Option<HandoverSocket>,
}

/// Where the balancer in this process hands a `tcp` listener a client it
/// has accepted, instead of relaying it over loopback; see
/// [`Inlet::reserve`]. Cloneable; valid while the listener runs.
#[derive(Clone)]
pub struct Inlet {
    tx: mpsc::Sender<HandedOff>,
    limit: Arc<Semaphore>,
    local: SocketAddr,
}

/// A place for one connection at a listener: a permit under its
/// `max_connections` and a slot in its queue.
pub struct InletPlace {
    slot: mpsc::OwnedPermit<HandedOff>,
    permit: OwnedSemaphorePermit,
    local: SocketAddr,
}

struct HandedOff {
    stream: BoxedStream,
    first_bytes: BytesMut,
    peer: SocketAddr,
    local: SocketAddr,
    permit: Permit,
}

impl Inlet {
    /// The listener's address: the one a balancer would connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A place for one connection, or `None` when the listener is at
    /// `max_connections` (its accept loop keeps one place for the next
    /// socket), its queue is full, or it has stopped.
    pub fn reserve(&self) -> Option<InletPlace> {
        let permit = Arc::clone(&self.limit).try_acquire_owned().ok()?;
        let slot = self.tx.clone().try_reserve_owned().ok()?;
        Some(InletPlace {
            slot,
            permit,
            local: self.local,
        })
    }
}

impl InletPlace {
    /// Hands over `stream`, the client's, from `peer`, with the bytes the
    /// balancer has read or would have sent first (the PROXY header the
    /// listener expects, then the CONNECT): the listener goes on as if
    /// they had come on its socket.
    pub fn hand_over(self, stream: BoxedStream, first_bytes: BytesMut, peer: SocketAddr) {
        self.slot.send(HandedOff {
            stream,
            first_bytes,
            peer,
            local: self.local,
            permit: Permit::new(self.permit),
        });
    }
}

impl fmt::Debug for Inlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inlet")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl MqttListener {
    /// Loads the TLS files and binds the socket of `cfg`. Errors name the
    /// listener and the file or address at fault.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, as Tokio's own sockets do.
    pub fn bind(cfg: &skerry_config::Listener) -> Result<MqttListener, ListenerError> {
        let handshake = Handshake::new(cfg)?;
        let bind_error = |source| ListenerError::Bind {
            listener: cfg.name.clone(),
            addr: cfg.bind,
            source,
        };
        let tcp = listen(cfg).map_err(bind_error)?;
        let local = tcp.local_addr().map_err(bind_error)?;
        let permits = usize::try_from(cfg.max_connections.get())
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        let limit = Arc::new(Semaphore::new(permits));
        let inlet = (cfg.transport == Transport::Tcp).then(|| {
            let (tx, rx) = mpsc::channel(INLET_BACKLOG);
            let inlet = Inlet {
                tx,
                limit: Arc::clone(&limit),
                local,
            };
            (inlet, rx)
        });
        let handover = match (&cfg.handover_socket, &inlet) {
            (Some(path), Some(_)) => {
                Some(
                    HandoverSocket::bind(path, cfg).map_err(|source| ListenerError::Handover {
                        listener: cfg.name.clone(),
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            _ => None,
        };
        Ok(MqttListener {
            tcp,
            local,
            limit,
            handshake: Arc::new(handshake),
            stats: Arc::default(),
            inlet,
            handover,
        })
    }

    /// The bound address; with port 0 in the configuration, the real port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Name of the listener.
    pub fn name(&self) -> &str {
        self.handshake.listener()
    }

    /// The TLS configuration of a `tls` or `wss` listener, to reload.
    pub fn tls(&self) -> Option<Arc<ServerTls>> {
        self.handshake.tls().cloned()
    }

    /// Where the balancer in this process can hand this listener its
    /// clients: `tcp` listeners only.
    pub fn inlet(&self) -> Option<Inlet> {
        self.inlet.as_ref().map(|(inlet, _)| inlet.clone())
    }

    /// The listener's counters; they stay readable after `run` returns.
    pub fn stats(&self) -> Arc<ListenerStats> {
        Arc::clone(&self.stats)
    }

    /// Accepts connections until `shutdown` completes, handing each one to
    /// `handler` in its own task once its handshake is done. Connections
    /// already handed over are left alone: stopping them is the caller's
    /// business (and so is waiting for them to drain).
    pub async fn run<H, Fut, S>(mut self, handler: H, shutdown: S)
    where
        H: Fn(Accepted) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        S: Future<Output = ()>,
    {
        let handler = Arc::new(handler);
        let name = Arc::clone(self.handshake.listener());
        info!(listener = %name, addr = %self.local, "listener accepting connections");
        let (queue, mut handed_off) = self.inlet.take().map(|(inlet, rx)| (inlet.tx, rx)).unzip();
        // Clients passed by a balancer in another process join the queue of
        // handed-over ones; stopped with this loop.
        let _passing = self.handover.take().zip(queue).map(|(socket, queue)| {
            let to = Destination {
                listener: Arc::clone(&name),
                queue,
                limit: Arc::clone(&self.limit),
                local: self.local,
            };
            AbortOnDropHandle::new(tokio::spawn(socket.run(to)))
        });
        tokio::pin!(shutdown);
        loop {
            let (arrival, peer, permit) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(h) = next_handed_off(&mut handed_off) => {
                    let arrival = Arrival::HandedOff { stream: h.stream, first_bytes: h.first_bytes, local: h.local };
                    (arrival, h.peer, h.permit)
                }
                next = self.accept() => match next {
                    Some((tcp, peer, permit)) => (Arrival::Socket(tcp), peer, permit),
                    None => break,
                },
            };
            let handshake = Arc::clone(&self.handshake);
            tokio::spawn(handshake.serve(arrival, peer, permit, Arc::clone(&self.stats), Arc::clone(&handler)));
        }
        info!(listener = %name, addr = %self.local, "listener stopped accepting connections");
    }

    /// Waits for a permit, then for a connection. Returns `None` only if the
    /// semaphore was closed, which this module never does.
    async fn accept(&self) -> Option<(TcpStream, SocketAddr, Permit)> {
        let permit = Permit::new(Arc::clone(&self.limit).acquire_owned().await.ok()?);
        let mut backoff = BACKOFF_START;
        loop {
            match self.tcp.accept().await {
                Ok((tcp, peer)) => return Some((tcp, peer, permit)),
                Err(error) => {
                    let pause = if fd_exhausted(&error) {
                        FD_EXHAUSTED_PAUSE
                    } else {
                        backoff
                    };
                    warn!(listener = %self.handshake.listener(), %error, pause_ms = pause.as_millis(), "accept failed");
                    tokio::time::sleep(pause).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// The next handed-over connection; pending forever without an inlet.
async fn next_handed_off(rx: &mut Option<mpsc::Receiver<HandedOff>>) -> Option<HandedOff> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl fmt::Debug for MqttListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttListener")
            .field("name", &self.name())
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// The listening socket. Buffer sizes are set here rather than on each
/// accepted socket: accepted sockets inherit them, and the receive buffer
/// must be in place before the handshake for TCP to scale its window to it.
fn listen(cfg: &skerry_config::Listener) -> io::Result<TcpListener> {
    let socket = if cfg.bind.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restarted broker binds again while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    if let Some(size) = cfg.send_buffer {
        socket.set_send_buffer_size(u32::try_from(size.bytes()).unwrap_or(u32::MAX))?;
    }
    if let Some(size) = cfg.receive_buffer {
        socket.set_recv_buffer_size(u32::try_from(size.bytes()).unwrap_or(u32::MAX))?;
    }
    socket.bind(cfg.bind)?;
    socket.listen(BACKLOG)
}

fn fd_exhausted(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(ENFILE | EMFILE))
}
