//! Starting and stopping the balancer.
//!
//! [`Balancer::start`] checks everything that can fail (TLS files, pools,
//! binding every listener) before anything runs, then runs the pingora
//! listening services on a dedicated thread with its own tokio runtime.
//! The caller keeps a [`BalancerHandle`] to read addresses, backends and
//! counters, drain a backend, and shut down.
//!
//! Why not `pingora::server::Server::run`: its listeners bind inside the
//! service task from an address string, so a listener on port 0 cannot
//! report its port and a bind failure is a panic in that task; and its
//! graceful stop ends in an unconditional `thread::sleep` of the grace
//! period (300 s unless set), even with no connection left. So each
//! listener is bound here, its socket handed to pingora through the same
//! `ListenFds` table pingora uses for graceful upgrades, and its
//! `Service` started on our runtime with our shutdown watch. Stopping is
//! then ours: stop accepting, let sessions close spread over
//! `drain_window`, and end as soon as none is left, or when
//! `grace_period` is over.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use pingora::listeners::{L4BufferSettings, ListenerConfig, TcpSocketOptions};
use pingora::protocols::TcpKeepalive;
use pingora::server::{Fds, ListenFds};
use pingora::services::listening::Service as ListeningService;
use pingora::services::Service as _;
use skerry_config::{Lb, LbListener};
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::app::{Core, ListenerApp};
use crate::error::LbError;
use crate::health;
use crate::limits::ConnectFilter;
use crate::metrics::MetricsSnapshot;
use crate::pool::BackendStatus;
use crate::view::BalancerView;

/// How often idle per-IP rate state is forgotten.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);
/// How often a stopping balancer looks whether sessions are left.
const DRAIN_POLL: Duration = Duration::from_millis(50);
/// Time blocking work may take to finish once the balancer has stopped.
const RUNTIME_STOP_TIMEOUT: Duration = Duration::from_secs(1);
/// TCP keepalive on client sockets: finds clients that vanished without a
/// FIN well before any MQTT keepalive a broker would wait for.
const CLIENT_KEEPALIVE: (Duration, Duration, usize) = (Duration::from_secs(60), Duration::from_secs(10), 6);

/// The balancer; see [`Balancer::start`].
#[derive(Debug)]
pub struct Balancer;

/// A listener checked and bound, ready to serve.
struct Prepared {
    app: ListenerApp,
    socket: TcpListener,
    addr: SocketAddr,
}

/// How the balancer is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Drain sessions within the grace period.
    Graceful,
    /// Close everything now.
    Fast,
}

impl Balancer {
    /// Checks `cfg`, binds every listener and starts serving on a thread of
    /// its own. Fails, naming the listener or file, before serving anything.
    pub fn start(cfg: &Lb) -> Result<BalancerHandle, LbError> {
        pingora::tls::install_default_crypto_provider();
        let core = Arc::new(Core::new(cfg));
        if let Some(pool) = core.pools.iter().find(|p| p.members.is_empty()) {
            return Err(LbError::EmptyPool {
                pool: pool.name.to_string(),
            });
        }
        let prepared = cfg
            .listeners
            .iter()
            .map(|l| prepare(l, &core))
            .collect::<Result<Vec<_>, _>>()?;
        let local_addrs = prepared.iter().map(|p| (p.app.name.to_string(), p.addr)).collect();
        let (thread, stop_tx) = spawn_thread(Arc::clone(&core), prepared)?;
        Ok(BalancerHandle {
            core,
            local_addrs,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

/// Starts the balancer thread with its runtime; returns once the runtime
/// runs. The runtime is built on that thread: a runtime must not be
/// dropped inside another (the caller's), even on an error path.
fn spawn_thread(core: Arc<Core>, prepared: Vec<Prepared>) -> Result<(JoinHandle<()>, oneshot::Sender<Stop>), LbError> {
    let (stop_tx, stop_rx) = oneshot::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("skerry-lb-main".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .thread_name("skerry-lb")
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => {
                    let _ = ready_tx.send(Ok(()));
                    run(runtime, &core, prepared, stop_rx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(LbError::Runtime)?;
    ready_rx
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the balancer thread ended at start")))
        .map_err(LbError::Runtime)?;
    Ok((thread, stop_tx))
}

fn prepare(l: &LbListener, core: &Arc<Core>) -> Result<Prepared, LbError> {
    let pool = core.pool(&l.pool).ok_or_else(|| LbError::UnknownPool {
        listener: l.name.clone(),
        pool: l.pool.clone(),
    })?;
    let tls = match &l.tls {
        None => None,
        Some(files) => Some(TlsAcceptor::from(skerry_certs::tls::server_config(files).map_err(
            |source| LbError::Tls {
                listener: l.name.clone(),
                source: Box::new(source),
            },
        )?)),
    };
    let bind_error = |source| LbError::Bind {
        listener: l.name.clone(),
        addr: l.bind,
        source,
    };
    let socket = TcpListener::bind(l.bind).map_err(bind_error)?;
    // pingora registers the socket with tokio as it is: it must not block.
    socket.set_nonblocking(true).map_err(bind_error)?;
    let addr = socket.local_addr().map_err(bind_error)?;
    let app = ListenerApp {
        name: l.name.as_str().into(),
        core: Arc::clone(core),
        pool: Arc::clone(pool),
        tls,
        proxy_in: l.proxy_protocol.clone(),
    };
    Ok(Prepared { app, socket, addr })
}

/// The balancer thread: serve until told to stop, then drain.
fn run(runtime: tokio::runtime::Runtime, core: &Arc<Core>, listeners: Vec<Prepared>, stop: oneshot::Receiver<Stop>) {
    let (shutdown_tx, shutdown) = watch::channel(false);
    runtime.block_on(async {
        for prepared in listeners {
            tokio::spawn(serve_listener(prepared, Arc::clone(core), shutdown.clone()));
        }
        health::spawn_all(&core.pools, &shutdown);
        tokio::spawn(housekeeping(Arc::clone(core), shutdown.clone()));
        let how = stop.await.unwrap_or(Stop::Fast);
        info!(?how, "balancer stopping");
        // Listeners stop accepting; sessions start their drain countdown.
        let _ = shutdown_tx.send(true);
        if how == Stop::Graceful {
            drain(core).await;
        }
    });
    // Whatever is left (sessions past the grace period) is dropped: their
    // sockets close. Blocking work (a DNS lookup) is not waited for long.
    runtime.shutdown_timeout(RUNTIME_STOP_TIMEOUT);
}

/// Waits until no connection is left, or the grace period is over.
async fn drain(core: &Core) {
    let deadline = tokio::time::Instant::now() + core.grace_period;
    while core.metrics.active() > 0 {
        if tokio::time::Instant::now() >= deadline {
            warn!(
                left = core.metrics.active(),
                "grace period over; closing the remaining connections"
            );
            return;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    info!("all connections drained");
}

/// Runs one listener's pingora service on its pre-bound socket.
async fn serve_listener(prepared: Prepared, core: Arc<Core>, shutdown: watch::Receiver<bool>) {
    let Prepared { app, socket, addr } = prepared;
    let name = app.name.to_string();
    let key = addr.to_string();
    let filter = ConnectFilter {
        rates: Arc::clone(&core.rates),
        metrics: Arc::clone(&core.metrics),
        per_ip: app.proxy_in.is_none(),
    };
    let mut options = TcpSocketOptions::default();
    let (idle, interval, count) = CLIENT_KEEPALIVE;
    options.tcp_keepalive = Some(TcpKeepalive {
        idle,
        interval,
        count,
        #[cfg(target_os = "linux")]
        user_timeout: Duration::ZERO,
    });
    let mut service = ListeningService::new(name.clone(), app);
    service.add_listener(
        ListenerConfig::tcp(key.clone())
            .tcp_socket_options(options)
            // Our own buffers do the batching; pingora's would copy twice.
            .l4_buffer(L4BufferSettings::unbuffered()),
    );
    service.set_connection_filter(Arc::new(filter));
    let mut fds = Fds::new();
    fds.add(key, socket.into_raw_fd());
    let fds: ListenFds = Arc::new(parking_lot::Mutex::new(fds));
    info!(listener = %name, %addr, "listening");
    service.start_service(Some(fds), shutdown, 1).await;
    info!(listener = %name, "listener stopped");
}

async fn housekeeping(core: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => core.rates.housekeeping(),
            _ = shutdown.changed() => return,
        }
    }
}

/// A running balancer.
#[derive(Debug)]
pub struct BalancerHandle {
    core: Arc<Core>,
    local_addrs: Vec<(String, SocketAddr)>,
    stop: Option<oneshot::Sender<Stop>>,
    thread: Option<JoinHandle<()>>,
}

impl BalancerHandle {
    /// Each listener's name and the address it is bound to (the real port
    /// when the configuration said 0).
    pub fn local_addrs(&self) -> &[(String, SocketAddr)] {
        &self.local_addrs
    }

    /// The address of the listener called `name`.
    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        self.local_addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// A cheap, cloneable view for the admin endpoint: backends, drain,
    /// counters. It shares the balancer's state; after shutdown it still
    /// answers, with the last figures.
    pub fn view(&self) -> BalancerView {
        BalancerView::new(Arc::clone(&self.core))
    }

    /// Every backend of every pool, with health, drain state and counts.
    pub fn backends(&self) -> Vec<BackendStatus> {
        self.view().backends()
    }

    /// Drains (`true`: no new clients; its sessions stay) or undrains a
    /// pool member.
    pub fn drain(&self, pool: &str, member: &str, drain: bool) -> Result<(), LbError> {
        self.view().drain(pool, member, drain)
    }

    /// The balancer-wide counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.view().metrics()
    }

    /// Stops accepting, closes sessions spread over `drain_window`, and
    /// returns when none is left or `grace_period` is over.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Stop::Graceful);
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for BalancerHandle {
    /// A handle dropped without [`BalancerHandle::shutdown`] stops the
    /// balancer at once, without waiting for it.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Stop::Fast);
        }
    }
}
