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
use crate::local::LocalNodes;

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
        // Alone, as under `skerry lb`: on threads of its own, which
        // `lb.scheduling` applies to.
        Some(cfg) if nodes.is_empty() => Some(skerry_lb::Balancer::start(cfg).context("starting the balancer")?),
        // On this runtime, beside the nodes, which take over the clients
        // bound for their listeners instead of having them relayed.
        Some(cfg) => {
            let local = LocalNodes::new(nodes.iter().flat_map(|n| n.inlets().iter().cloned()).collect());
            Some(
                skerry_lb::Balancer::start_on(cfg, &tokio::runtime::Handle::current(), Arc::new(local))
                    .context("starting the balancer")?,
            )
        }
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
        let node_failed = async {
            let waits = nodes.iter_mut().map(|n| Box::pin(n.failed()));
            futures_select_all(waits).await
        };
        let lb_failed = async {
            match &lb {
                Some(lb) => lb.failed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => break None,
            _ = int.recv() => break None,
            _ = hup.recv() => reload(path.as_deref(), &config, &handles, lb.as_ref()),
            why = node_failed => break Some(why),
            why = lb_failed => break Some(why),
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
/// ACLs, TLS files and CRLs, the balancer's rates, caps, classes and pool
/// members); names the changes that need a restart.
fn reload(
    path: Option<&Path>,
    running: &Config,
    nodes: &[skerry_broker::NodeHandle],
    lb: Option<&skerry_lb::BalancerHandle>,
) {
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
        for e in node.reload(&new.broker) {
            error!(error = %e, "SIGHUP: not reloaded, keeping the running setting");
        }
    }
    let mut needs_restart = broker_needs_restart(&running.broker, &new.broker);
    match (lb, &new.lb) {
        (Some(lb), Some(new_lb)) => {
            let done = lb.reload(new_lb);
            for e in done.errors {
                error!(error = %e, "SIGHUP: not reloaded, keeping the running setting");
            }
            needs_restart.extend(done.needs_restart);
        }
        (None, None) => {}
        _ => needs_restart.push("lb".to_owned()),
    }
    needs_restart.extend(
        [
            ("admin", running.admin != new.admin),
            ("logging", running.logging != new.logging),
        ]
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(section, _)| section.to_owned()),
    );
    if needs_restart.is_empty() {
        info!("SIGHUP: configuration reloaded");
    } else {
        warn!(keys = ?needs_restart, "SIGHUP: configuration reloaded except these changes, which need a restart");
    }
}

/// The broker settings `new` changes that only a restart applies: all but
/// `users_file`, `allow_anonymous` and `acl` (the TLS files behind a
/// listener are re-read, but a listener whose settings change is restarted).
fn broker_needs_restart(running: &skerry_config::Broker, new: &skerry_config::Broker) -> Vec<String> {
    let live = skerry_config::Broker {
        users_file: new.users_file.clone(),
        allow_anonymous: new.allow_anonymous,
        acl: new.acl.clone(),
        ..running.clone()
    };
    if live == *new {
        return Vec::new();
    }
    let changed = [
        ("broker.max_message_rate", live.max_message_rate != new.max_message_rate),
        ("broker.max_message_size", live.max_message_size != new.max_message_size),
        ("broker.max_keep_alive", live.max_keep_alive != new.max_keep_alive),
        (
            "broker.topic_alias_maximum",
            live.topic_alias_maximum != new.topic_alias_maximum,
        ),
        (
            "broker.shared_subscription_policy",
            live.shared_subscription_policy != new.shared_subscription_policy,
        ),
        ("broker.sys_interval", live.sys_interval != new.sys_interval),
        ("broker.sessions", live.sessions != new.sessions),
        ("broker.store", live.store != new.store),
        ("broker.nodes", live.nodes != new.nodes),
    ];
    let keys: Vec<String> = changed
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| key.to_owned())
        .collect();
    if keys.is_empty() {
        vec!["broker".to_owned()]
    } else {
        keys
    }
}

fn notify_systemd(state: sd_notify::NotifyState<'_>) {
    // Outside systemd NOTIFY_SOCKET is unset and this does nothing.
    let _ = sd_notify::notify(&[state]);
}
