//! Starting and stopping the balancer.
//!
//! [`Balancer::start`] checks everything that can fail (TLS files, pools,
//! binding every listener) before anything runs, then runs the pingora
//! listening services on a dedicated thread with its own tokio runtime
//! ([`Balancer::start_on`]: on the caller's runtime).
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
use skerry_certs::tls::ServerTls;
use skerry_config::{Lb, LbListener, Scheduling};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::app::{Core, ListenerApp};
use crate::error::LbError;
use crate::handoff::LocalBackends;
use crate::health;
use crate::limits::ConnectFilter;
use crate::metrics::MetricsSnapshot;
use crate::pool::BackendStatus;
use crate::sched;
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
        Balancer::start_with(cfg, None)
    }

    /// As [`Balancer::start`], but serving on `runtime` (the caller's) instead
    /// of a thread of its own. Where the balancer and the broker nodes it
    /// feeds live in one process, one runtime serves both ends of each
    /// loopback hop: a relayed write is read by the node on the same worker,
    /// without waking another thread.
    /// Clients whose backend is one of `local`'s listeners are handed over
    /// to it instead of relayed.
    pub fn start_on(
        cfg: &Lb,
        runtime: &tokio::runtime::Handle,
        local: Arc<dyn LocalBackends>,
    ) -> Result<BalancerHandle, LbError> {
        Balancer::start_with(cfg, Some((runtime, local)))
    }

    fn start_with(
        cfg: &Lb,
        in_process: Option<(&tokio::runtime::Handle, Arc<dyn LocalBackends>)>,
    ) -> Result<BalancerHandle, LbError> {
        pingora::tls::install_default_crypto_provider();
        let (runtime, local) = in_process.unzip();
        if runtime.is_some() && cfg.scheduling == Scheduling::Batch {
            return Err(LbError::Scheduling(
                "batch needs the balancer's own threads (`skerry lb`, or `skerry run` without broker nodes); here \
                 it runs on the broker nodes' threads"
                    .to_owned(),
            ));
        }
        let core = Arc::new(Core::new(cfg, local));
        if let Some(pool) = core.pools.iter().find(|p| p.members().list.is_empty()) {
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
        let tls = prepared
            .iter()
            .filter_map(|p| Some((p.app.name.to_string(), Arc::clone(p.app.tls.as_ref()?))))
            .collect();
        let started = match runtime {
            None => spawn_thread(Arc::clone(&core), prepared, cfg.scheduling)?,
            Some(handle) => spawn_task(Arc::clone(&core), prepared, handle),
        };
        Ok(BalancerHandle {
            core,
            local_addrs,
            tls,
            running: parking_lot::Mutex::new(cfg.clone()),
            runtime: started.runtime,
            shutdown: started.shutdown,
            failure: started.failure,
            stop: Some(started.stop),
            runner: Some(started.runner),
        })
    }
}

/// The running balancer, as its handle sees it.
struct Started {
    runner: Runner,
    stop: oneshot::Sender<Stop>,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Receiver<bool>,
    failure: watch::Receiver<Option<String>>,
}

/// Where the balancer runs.
#[derive(Debug)]
enum Runner {
    /// A thread with its own runtime.
    Thread(JoinHandle<()>),
    /// A task on the caller's runtime.
    Task(tokio::task::JoinHandle<()>),
}

/// The channels between a handle and its running balancer.
fn channels() -> (
    Signals,
    oneshot::Sender<Stop>,
    watch::Receiver<bool>,
    watch::Receiver<Option<String>>,
) {
    let (stop_tx, stop_rx) = oneshot::channel();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (failure_tx, failure_rx) = watch::channel(None);
    let signals = Signals {
        stop: stop_rx,
        shutdown: shutdown_tx,
        failure: failure_tx,
    };
    (signals, stop_tx, shutdown_rx, failure_rx)
}

/// Starts the balancer as a task on `runtime`.
fn spawn_task(core: Arc<Core>, prepared: Vec<Prepared>, runtime: &tokio::runtime::Handle) -> Started {
    let (signals, stop, shutdown, failure) = channels();
    let task = runtime.spawn(async move { serve(&core, prepared, signals).await });
    Started {
        runner: Runner::Task(task),
        stop,
        runtime: runtime.clone(),
        shutdown,
        failure,
    }
}

/// Starts the balancer thread with its runtime; returns once the runtime
/// runs. The runtime is built on that thread (a runtime must not be
/// dropped inside another, the caller's, even on an error path), after
/// the thread took `scheduling`, which the runtime's threads inherit.
fn spawn_thread(core: Arc<Core>, prepared: Vec<Prepared>, scheduling: Scheduling) -> Result<Started, LbError> {
    let (signals, stop, shutdown, failure) = channels();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("skerry-lb-main".into())
        .spawn(move || {
            if scheduling == Scheduling::Batch {
                if let Err(e) = sched::apply(scheduling) {
                    let _ = ready_tx.send(Err(LbError::Scheduling(format!("cannot set SCHED_BATCH: {e}"))));
                    return;
                }
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .thread_name("skerry-lb")
                .enable_all()
                .build()
                .map_err(LbError::Runtime);
            match runtime {
                Ok(runtime) => {
                    let _ = ready_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(serve(&core, prepared, signals));
                    // Whatever is left (sessions past the grace period) is
                    // dropped: their sockets close. Blocking work (a DNS
                    // lookup) is not waited for long.
                    runtime.shutdown_timeout(RUNTIME_STOP_TIMEOUT);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(LbError::Runtime)?;
    let runtime = ready_rx.recv().unwrap_or_else(|_| {
        Err(LbError::Runtime(std::io::Error::other(
            "the balancer thread ended at start",
        )))
    })?;
    Ok(Started {
        runner: Runner::Thread(thread),
        stop,
        runtime,
        shutdown,
        failure,
    })
}

fn prepare(l: &LbListener, core: &Arc<Core>) -> Result<Prepared, LbError> {
    let pool = core.pool(&l.pool).ok_or_else(|| LbError::UnknownPool {
        listener: l.name.clone(),
        pool: l.pool.clone(),
    })?;
    let tls = match &l.tls {
        None => None,
        Some(files) => Some(Arc::new(ServerTls::load(files).map_err(|source| LbError::Tls {
            listener: l.name.clone(),
            source: Box::new(source),
        })?)),
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

/// How the balancer is told to stop and tells of a failure.
struct Signals {
    stop: oneshot::Receiver<Stop>,
    /// Turns true when the listeners must stop accepting.
    shutdown: watch::Sender<bool>,
    /// Why the balancer cannot serve as configured any more.
    failure: watch::Sender<Option<String>>,
}

/// The balancer: serve until told to stop, then drain. A listener that
/// ends on its own is reported as a failure; the others go on until the
/// owner stops the balancer.
async fn serve(core: &Arc<Core>, listeners: Vec<Prepared>, signals: Signals) {
    let Signals {
        mut stop,
        shutdown: shutdown_tx,
        failure,
    } = signals;
    let shutdown = shutdown_tx.subscribe();
    let mut serving = JoinSet::new();
    for prepared in listeners {
        let name = prepared.app.name.to_string();
        let task = serve_listener(prepared, Arc::clone(core), shutdown.clone());
        serving.spawn(async move {
            task.await;
            name
        });
    }
    health::spawn_all(&core.pools, &shutdown);
    tokio::spawn(housekeeping(Arc::clone(core), shutdown.clone()));
    let how = loop {
        tokio::select! {
            how = &mut stop => break how.unwrap_or(Stop::Fast),
            Some(ended) = serving.join_next() => {
                let why = match ended {
                    Ok(name) => format!("balancer listener {name} stopped on its own"),
                    Err(e) => format!("a balancer listener failed: {e}"),
                };
                error!(reason = %why, "balancer failure");
                failure.send_replace(Some(why));
            }
        }
    };
    info!(?how, "balancer stopping");
    // Listeners stop accepting; sessions start their drain countdown.
    let _ = shutdown_tx.send(true);
    if how == Stop::Graceful {
        drain(core).await;
    }
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
    pub(crate) core: Arc<Core>,
    local_addrs: Vec<(String, SocketAddr)>,
    /// Each TLS listener's configuration, to re-read on reload.
    pub(crate) tls: Vec<(String, Arc<ServerTls>)>,
    /// The configuration started with, its live settings as last reloaded.
    pub(crate) running: parking_lot::Mutex<Lb>,
    /// The balancer's runtime, for health checks of new members.
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) shutdown: watch::Receiver<bool>,
    failure: watch::Receiver<Option<String>>,
    stop: Option<oneshot::Sender<Stop>>,
    runner: Option<Runner>,
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

    /// Completes when the balancer can no longer serve as configured (a
    /// listener stopped, the balancer's thread or task died), with the reason. Pending while
    /// all is well, and after a requested stop.
    pub fn failed(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut failure = self.failure.clone();
        async move {
            loop {
                if let Some(why) = failure.borrow_and_update().clone() {
                    return why;
                }
                if failure.changed().await.is_err() {
                    // The balancer ended. Asked to (then nobody waits here
                    // any more), or it died: a failure either way.
                    return "the balancer ended".to_owned();
                }
            }
        }
    }

    /// Stops accepting, closes sessions spread over `drain_window`, and
    /// returns when none is left or `grace_period` is over.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Stop::Graceful);
        }
        match self.runner.take() {
            Some(Runner::Thread(thread)) => {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            Some(Runner::Task(task)) => {
                let _ = task.await;
            }
            None => {}
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
