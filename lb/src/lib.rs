//! Skerry's MQTT-aware load balancer, built on pingora.
//!
//! Per connection, in the connection's own task: connect-rate limits (in
//! pingora's connection filter, before any TLS work) -> optional PROXY
//! header from a trusted balancer in front -> optional TLS termination
//! (rustls, client certificates and CRL) -> the MQTT CONNECT, read whole
//! under a deadline and a size cap -> connection caps, rate class, backend
//! choice (consistent hash of the client id or source IP over member
//! *names*, round robin or least connections; healthy, undrained members
//! only; bounded load) -> PROXY v1/v2 header (with the TLS and client
//! certificate details) and the CONNECT replayed to the backend -> bytes
//! relayed both ways under per-connection bandwidth limits, or, for a
//! backend listener in the same process, the client handed over to it
//! ([`LocalBackends`]), and for a node in another process on this host,
//! the client's socket passed to it over its `handover_socket`. A client
//! refused after its CONNECT gets a CONNACK with the reason in its own
//! protocol version.
//!
//! ```no_run
//! # async fn demo(cfg: &skerry_config::Lb) -> Result<(), skerry_lb::LbError> {
//! let lb = skerry_lb::Balancer::start(cfg)?;
//! for (name, addr) in lb.local_addrs() {
//!     println!("{name} listening on {addr}");
//! }
//! lb.drain("nodes", "node1", true)?;
//! println!("{:?}", lb.metrics());
//! lb.shutdown().await;
//! # Ok(()) }
//! ```

mod app;
mod bandwidth;
mod classes;
mod error;
mod handoff;
mod health;
mod limits;
mod metrics;
mod mqtt;
mod pass;
mod pool;
mod prefixed;
mod proxy_in;
mod proxy_out;
mod reload;
pub mod ring;
mod sched;
mod server;
mod session;
mod splice;
mod tls;
mod view;

pub use error::LbError;
pub use handoff::{ClientStream, Handoff, LocalBackends, LocalPlace};
pub use metrics::{MetricsSnapshot, Outcome, Refusal};
pub use pool::BackendStatus;
pub use reload::Reload;
pub use server::{Balancer, BalancerHandle};
pub use view::BalancerView;

/// A balancer configuration for unit tests: one listener on pool `p`,
/// `lb_extra` at the `lb:` level, `pool` the rest of the pool's lines.
#[cfg(test)]
pub(crate) fn test_lb(lb_extra: &str, pool: &str) -> skerry_config::Lb {
    let yaml =
        format!("lb:\n{lb_extra}  listeners:\n    - {{bind: 127.0.0.1:0, pool: p}}\n  pools:\n    - name: p\n{pool}");
    let config = skerry_config::parse(&yaml, std::path::Path::new(".")).expect("test config");
    config.lb.expect("an lb section")
}
