//! `skerry run`: starts what the YAML asks for on this host — broker nodes,
//! the balancer, the admin endpoint — in one process, and supervises them.
//! A part that stops on its own brings the whole process down (exit 1) rather
//! than leaving it half alive; SIGTERM/SIGINT drain within the grace period;
//! SIGHUP reloads what can change without dropping connections.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use skerry_broker::Node;
use skerry_config::Config;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState};

/// Run the appliance.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The YAML configuration. Without it Skerry runs its embedded default:
    /// a balancer on 1883 (localhost) and 8883 (TLS with client
    /// certificates from a CA it creates) in front of one node, admin on
    /// 127.0.0.1:8888, state in ./skerry-data.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let config = load(args.config.as_deref())?;
    crate::logging::init(&config.logging);
    crate::tls_auto::prepare(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(supervise(config, args.config))
}

fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Ok(skerry_config::load(p)?),
        None => {
            let cwd = std::env::current_dir().context("reading the working directory")?;
            Ok(skerry_config::embedded_default(&cwd)?)
        }
    }
}

/// How long shutdown may take when no balancer sets a grace period (a
/// balancer's `grace_period` plus time for the nodes otherwise).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

async fn supervise(config: Config, path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut nodes = Vec::new();
    for n in &config.broker.nodes {
        let node = Node::start(n, &config.broker)
            .await
            .with_context(|| format!("starting node {}", n.name))?;
        nodes.push(node);
    }
    let handles: Vec<_> = nodes.iter().map(Node::handle).collect();
    let lb = match &config.lb {
        Some(cfg) => Some(skerry_lb::Balancer::start(cfg).context("starting the balancer")?),
        None => None,
    };
    let shutdown = CancellationToken::new();
    let admin_state = match &config.admin {
        Some(a) => {
            let view = lb.as_ref().map(skerry_lb::BalancerHandle::view);
            let state = Arc::new(AdminState::new(handles.clone(), view, admin::read_token(a)?));
            admin::serve(a.bind, Arc::clone(&state), shutdown.clone()).await?;
            Some(state)
        }
        None => None,
    };
    if let Some(state) = &admin_state {
        state.ready.store(true, Ordering::Release);
    }
    notify_systemd(sd_notify::NotifyState::Ready);
    info!(nodes = nodes.len(), balancer = lb.is_some(), "skerry running");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let failure = loop {
        let failed = async {
            let waits = nodes.iter_mut().map(|n| Box::pin(n.failed()));
            futures_select_all(waits).await
        };
        tokio::select! {
            _ = term.recv() => break None,
            _ = int.recv() => break None,
            _ = hup.recv() => reload(path.as_deref(), &config, &handles),
            why = failed => break Some(why),
        }
    };
    notify_systemd(sd_notify::NotifyState::Stopping);
    if let Some(state) = &admin_state {
        state.ready.store(false, Ordering::Release);
    }
    let grace = config
        .lb
        .as_ref()
        .map_or(DEFAULT_GRACE, |l| l.grace_period.get() + Duration::from_secs(5));
    let stop = async {
        // The balancer first: it stops taking clients and spreads their
        // closes over its drain window; then the nodes behind it.
        if let Some(lb) = lb {
            lb.shutdown().await;
        }
        for node in nodes {
            node.shutdown().await;
        }
    };
    if tokio::time::timeout(grace, stop).await.is_err() {
        warn!(?grace, "shutdown did not finish within the grace period");
    }
    shutdown.cancel();
    match failure {
        None => {
            info!("skerry stopped");
            Ok(ExitCode::SUCCESS)
        }
        Some(why) => {
            error!(reason = %why, "a part of skerry failed; stopped everything");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The first of several futures to finish (pending forever when there are none).
async fn futures_select_all<F: std::future::Future<Output = String> + Unpin>(futs: impl Iterator<Item = F>) -> String {
    let futs: Vec<F> = futs.collect();
    if futs.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(futs).await.0
}

/// SIGHUP: re-reads the file and applies what can change live (users,
/// ACLs); names the changes that need a restart.
fn reload(path: Option<&Path>, running: &Config, nodes: &[skerry_broker::NodeHandle]) {
    let Some(path) = path else {
        info!("SIGHUP: running the embedded default, nothing to reload");
        return;
    };
    let new = match skerry_config::load(path) {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "SIGHUP: configuration rejected, keeping the running one");
            return;
        }
    };
    for node in nodes {
        if let Err(e) = node.reload(&new.broker) {
            error!(node = node.name(), error = %e, "SIGHUP: reload failed, keeping the running settings");
        }
    }
    let needs_restart: Vec<&str> = [
        ("broker.nodes", running.broker.nodes != new.broker.nodes),
        ("broker.sessions", running.broker.sessions != new.broker.sessions),
        ("lb", running.lb != new.lb),
        ("admin", running.admin != new.admin),
        ("logging", running.logging != new.logging),
    ]
    .into_iter()
    .filter_map(|(section, changed)| changed.then_some(section))
    .collect();
    if needs_restart.is_empty() {
        info!("SIGHUP: reloaded users and ACLs");
    } else {
        warn!(sections = ?needs_restart, "SIGHUP: reloaded users and ACLs; these changes need a restart");
    }
}

fn notify_systemd(state: sd_notify::NotifyState<'_>) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    let _ = sd_notify::notify(&[state]);
}
