//! Relaying a session's bytes both ways once the backend has its CONNECT:
//! one buffer per direction, reused for every read; it starts small (most
//! MQTT sessions are idle devices) and doubles, up to a limit, each time a
//! read fills it (a busy stream makes fewer, larger reads). Each write is
//! flushed (TLS records and pingora's buffered streams hold bytes back
//! otherwise); bandwidth is charged per read.
//!
//! A session ends when both sides have closed, on the first error, when
//! its backend is marked down under `shutdown_sessions`, or, once the
//! balancer stops, after this session's share of the drain window.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::bandwidth::Throttle;
use crate::metrics::Metrics;

/// First buffer size per direction: an idle device costs 8 KiB in all.
const COPY_BUF_MIN: usize = 4 * 1024;
/// Largest buffer per direction. Measured on loopback, 32 KiB reads relay
/// about 1.5x the bytes per second of 8 KiB reads (fewer syscalls).
pub(crate) const COPY_BUF_MAX: usize = 32 * 1024;
/// Time a closing session may spend telling its client (TLS close_notify).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Both sides closed.
    Closed,
    /// A read or write failed.
    Failed(io::Error),
    /// Its backend was marked down (`on_marked_down: shutdown_sessions`).
    Evicted,
    /// The balancer is stopping.
    Drained,
}

impl End {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Failed(_) => "failed",
            End::Evicted => "backend down",
            End::Drained => "drained",
        }
    }
}

/// What a relay watches besides the bytes.
pub(crate) struct Relay<'a> {
    pub(crate) to_backend: Option<Throttle>,
    pub(crate) to_client: Option<Throttle>,
    pub(crate) metrics: &'a Metrics,
    pub(crate) shutdown: ShutdownWatch,
    pub(crate) evicted: watch::Receiver<u64>,
    /// How long after the balancer starts stopping this session closes.
    pub(crate) drain_delay: Duration,
}

/// Relays until the session ends.
pub(crate) async fn relay<C>(client: C, backend: TcpStream, relay: Relay<'_>) -> End
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut backend_rx, mut backend_tx) = backend.into_split();
    let m = relay.metrics;
    let end = {
        let up = pump(
            &mut client_rx,
            &mut backend_tx,
            relay.to_backend.as_ref(),
            &m.bytes_to_backends,
        );
        let down = pump(
            &mut backend_rx,
            &mut client_tx,
            relay.to_client.as_ref(),
            &m.bytes_to_clients,
        );
        tokio::select! {
            r = async { tokio::try_join!(up, down) } => match r {
                Ok(_) => End::Closed,
                Err(e) => End::Failed(e),
            },
            end = ended_outside(relay.evicted, relay.shutdown, relay.drain_delay) => end,
        }
    };
    if matches!(end, End::Evicted | End::Drained) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, client_tx.shutdown()).await;
    }
    end
}

/// Copies one direction until EOF (then half-closes the other side).
async fn pump<R, W>(rx: &mut R, tx: &mut W, throttle: Option<&Throttle>, counter: &AtomicU64) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Never read more than the limiter may charge at once.
    let max = throttle.map_or(COPY_BUF_MAX, |t| t.chunk().min(COPY_BUF_MAX));
    let mut buf = vec![0u8; COPY_BUF_MIN.min(max)];
    loop {
        let n = rx.read(&mut buf).await?;
        if n == 0 {
            // The peer may already be gone; the other direction reports that.
            let _ = tx.shutdown().await;
            return Ok(());
        }
        if let Some(t) = throttle {
            t.charge(n).await;
        }
        tx.write_all(&buf[..n]).await?;
        tx.flush().await?;
        counter.fetch_add(n as u64, Relaxed);
        if n == buf.len() && buf.len() < max {
            buf.resize((buf.len() * 2).min(max), 0);
        }
    }
}

/// Completes when the session must end for a reason outside it: its
/// backend was marked down (`shutdown_sessions`), or the balancer is
/// stopping and this session's share of the drain window has passed.
pub(crate) async fn ended_outside(
    evicted: watch::Receiver<u64>,
    shutdown: ShutdownWatch,
    drain_delay: Duration,
) -> End {
    tokio::select! {
        () = evicted_now(evicted) => End::Evicted,
        () = drained(shutdown, drain_delay) => End::Drained,
    }
}

async fn evicted_now(mut rx: watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn drained(mut shutdown: ShutdownWatch, delay: Duration) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
    tokio::time::sleep(delay).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn relays_both_ways_and_ends_on_close() {
        let (mut client, lb_client_side) = pair().await;
        let (lb_backend_side, mut backend) = pair().await;
        let metrics = Metrics::default();
        let (_stop, shutdown) = watch::channel(false);
        let (_evict, evicted) = watch::channel(0);
        let relay_task = relay(
            lb_client_side,
            lb_backend_side,
            Relay {
                to_backend: None,
                to_client: None,
                metrics: &metrics,
                shutdown,
                evicted,
                drain_delay: Duration::ZERO,
            },
        );
        let peers = async {
            client.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            backend.read_exact(&mut got).await.unwrap();
            backend.write_all(b"pong!").await.unwrap();
            let mut back = [0u8; 5];
            client.read_exact(&mut back).await.unwrap();
            assert_eq!((&got, &back), (b"ping", b"pong!"));
            drop(client);
            let mut rest = Vec::new();
            backend.read_to_end(&mut rest).await.unwrap();
            drop(backend);
        };
        let (end, ()) = tokio::join!(relay_task, peers);
        assert!(matches!(end, End::Closed), "{end:?}");
        assert_eq!(metrics.bytes_to_backends.load(Relaxed), 4);
        assert_eq!(metrics.bytes_to_clients.load(Relaxed), 5);
    }

    #[tokio::test]
    async fn eviction_ends_the_session() {
        let (_client, lb_client_side) = pair().await;
        let (lb_backend_side, _backend) = pair().await;
        let metrics = Metrics::default();
        let (_stop, shutdown) = watch::channel(false);
        let (evict, evicted) = watch::channel(0);
        let r = Relay {
            to_backend: None,
            to_client: None,
            metrics: &metrics,
            shutdown,
            evicted,
            drain_delay: Duration::ZERO,
        };
        evict.send_modify(|n| *n += 1);
        assert!(matches!(relay(lb_client_side, lb_backend_side, r).await, End::Evicted));
    }
}
