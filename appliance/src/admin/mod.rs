//! The admin endpoint on hyper: Prometheus `/metrics`, `/health`
//! (liveness), `/ready` (every part up) and the JSON API `skerry ctl` uses.
//! The API wants the bearer token when one is configured; metrics and
//! probes stay open for scrapers and kubelets.

mod api;
mod metrics;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use skerry_broker::NodeHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// What the admin endpoint reports on and acts on.
pub(crate) struct AdminState {
    pub(crate) nodes: Vec<NodeHandle>,
    pub(crate) lb: Option<skerry_lb::BalancerView>,
    /// Bearer token the API requires, when configured.
    pub(crate) token: Option<String>,
    /// Set once every part has started.
    pub(crate) ready: AtomicBool,
    registry: prometheus_client::registry::Registry,
}

impl AdminState {
    pub(crate) fn new(nodes: Vec<NodeHandle>, lb: Option<skerry_lb::BalancerView>, token: Option<String>) -> Self {
        let registry = metrics::registry(&nodes, lb.as_ref());
        Self {
            nodes,
            lb,
            token,
            ready: AtomicBool::new(false),
            registry,
        }
    }
}

/// Reads the token file, if any (whitespace around the token is ignored).
pub(crate) fn read_token(cfg: &skerry_config::Admin) -> anyhow::Result<Option<String>> {
    let Some(path) = &cfg.token_file else { return Ok(None) };
    let token = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let token = token.trim().to_owned();
    anyhow::ensure!(
        !token.is_empty(),
        "{} is empty: the admin token cannot be empty",
        path.display()
    );
    Ok(Some(token))
}

/// Binds the admin endpoint; serves until `shutdown`.
pub(crate) async fn serve(
    bind: SocketAddr,
    state: Arc<AdminState>,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("admin: cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    info!(%addr, "admin endpoint listening");
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = shutdown.cancelled() => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(Arc::clone(&state), req));
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(%peer, error = %e, "admin connection ended");
                }
            });
        }
    });
    Ok((addr, task))
}

pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn handle(state: Arc<AdminState>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_owned();
    let response = match (req.method(), path.as_str()) {
        (&Method::GET, "/health") => reply(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/ready") => ready(&state),
        (&Method::GET, "/metrics") => metrics::render(&state.registry),
        (_, p) if p.starts_with("/api/") => {
            if authorized(&state, &req) {
                api::route(&state, req.method(), p, req.uri().query().unwrap_or(""))
            } else {
                reply(
                    StatusCode::UNAUTHORIZED,
                    "application/json",
                    r#"{"error":"missing or wrong bearer token"}"#,
                )
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    };
    Ok(response)
}

fn ready(state: &AdminState) -> Reply {
    let nodes_up = state.nodes.iter().all(NodeHandle::is_ready);
    if state.ready.load(Ordering::Acquire) && nodes_up {
        reply(StatusCode::OK, "text/plain", "ready\n")
    } else {
        reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n")
    }
}

fn authorized(state: &AdminState, req: &Request<Incoming>) -> bool {
    let Some(token) = &state.token else { return true };
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(given) = given.and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    // Compare in constant time so the token cannot be guessed byte by byte.
    given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}
