//! `skerry lb -c FILE`: runs only the load balancer of a configuration
//! (its `lb:` section), in front of brokers it did not start (Skerry
//! nodes, Mosquitto, EMQX, VerneMQ), until SIGTERM or SIGINT; then it
//! stops accepting and drains its sessions over `lb.drain_window`, within
//! `lb.grace_period`. A second signal while draining exits at once.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use skerry_config::Lb;
use skerry_lb::Balancer;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

const AFTER_HELP: &str = "\
Only the lb: section of FILE is used (see `skerry config example`); broker
nodes in the same file are not started. Listeners, pools, limits and rate
classes are checked and every listener is bound before any client is
served.

Examples:
  skerry lb -c /etc/skerry/skerry.yaml
  systemctl kill -s TERM skerry-lb   # drain, then exit";

/// Arguments of `skerry lb`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct LbArgs {
    /// The configuration file with an `lb:` section.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: PathBuf,
}

pub(crate) fn run(args: LbArgs) -> anyhow::Result<ExitCode> {
    let LbArgs { config: path } = args;
    let config = skerry_config::load(&path)?;
    crate::logging::init(&config.logging);
    crate::tls_auto::prepare(&config)?;
    let lb = config
        .lb
        .with_context(|| format!("{}: no lb: section to run", path.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    runtime.block_on(serve(&lb))
}

async fn serve(lb: &Lb) -> anyhow::Result<ExitCode> {
    let balancer = Balancer::start(lb)?;
    for (listener, addr) in balancer.local_addrs() {
        info!(%listener, %addr, "balancer listening");
    }
    let first = wait_for_signal().await?;
    info!(signal = first, "stopping: draining connections");
    tokio::select! {
        () = balancer.shutdown() => info!("balancer stopped"),
        second = wait_for_signal() => {
            warn!(signal = second.unwrap_or("signal"), "second signal: exiting without draining");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGTERM or SIGINT and names it.
async fn wait_for_signal() -> anyhow::Result<&'static str> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
