//! `tls: auto` at start-up: creates the bundled CA on first run, then has it
//! issue (or renew) the server certificate of every listener that asks for
//! one, before any part binds a port.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use skerry_certs::{ensure_server_cert, Ca, CaOptions, San};
use skerry_config::{AutoTls, Config, TlsFiles};
use tracing::info;

/// Renew an automatic certificate this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// Every `tls` block in the configuration.
fn tls_blocks(config: &Config) -> impl Iterator<Item = &TlsFiles> {
    let nodes = config
        .broker
        .nodes
        .iter()
        .flat_map(|n| &n.listeners)
        .filter_map(|l| l.tls.as_ref());
    let lb = config
        .lb
        .iter()
        .flat_map(|lb| &lb.listeners)
        .filter_map(|l| l.tls.as_ref());
    nodes.chain(lb)
}

/// Issues what `tls: auto` listeners need.
pub(crate) fn prepare(config: &Config) -> anyhow::Result<()> {
    for tls in tls_blocks(config) {
        let Some(auto) = &tls.auto else { continue };
        ensure_ca(&auto.ca_dir)?;
        let out = tls.cert.parent().unwrap_or(Path::new("."));
        let sans = names(auto);
        let cert = ensure_server_cert(&auto.ca_dir, out, &sans, RENEW_BEFORE)
            .with_context(|| format!("issuing the automatic server certificate in {}", out.display()))?;
        if let Some(reason) = cert.reissued {
            info!(cert = %cert.cert_path.display(), ?reason, "issued a server certificate from the bundled CA");
        }
    }
    Ok(())
}

/// Creates the CA in `dir` unless one is there.
fn ensure_ca(dir: &Path) -> anyhow::Result<()> {
    if dir.join("ca.crt").exists() {
        return Ok(());
    }
    let name = format!("Skerry CA {}", host_name());
    Ca::create_in(dir, &CaOptions::new(name))
        .with_context(|| format!("creating the bundled CA in {}", dir.display()))?;
    info!(dir = %dir.display(), "created the bundled CA");
    Ok(())
}

/// The configured names, or localhost, 127.0.0.1 and the host name.
fn names(auto: &AutoTls) -> Vec<San> {
    let names = if auto.names.is_empty() {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned(), host_name()]
    } else {
        auto.names.clone()
    };
    let mut sans: Vec<San> = names
        .into_iter()
        .map(|n| n.parse::<IpAddr>().map_or(San::Dns(n), San::Ip))
        .collect();
    sans.dedup();
    sans
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
