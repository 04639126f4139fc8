//! Logging: `tracing` to stderr, as text or JSON. The level comes from the
//! YAML (`logging.level`) unless `RUST_LOG` is set; pingora's `log` records
//! are bridged in.

use skerry_config::{LogFormat, Logging};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, early in `main`.
pub(crate) fn init(cfg: &Logging) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    // Colours only on a terminal: journald and `docker logs` get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let result = match cfg.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = result {
        eprintln!("warning: logging was already initialised: {e}");
    }
}
