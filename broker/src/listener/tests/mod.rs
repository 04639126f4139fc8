//! Listener tests against real sockets on `127.0.0.1:0`, with real TLS and
//! WebSocket clients and certificates generated at test time.

mod handed_off;
mod handover;
mod pki;
mod proxy_header;
mod tcp;
mod tls_client;
mod websocket;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use skerry_config::units::{ByteSize, Duration as ConfDuration};
use skerry_config::{Listener, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Accepted, ListenerStats, MqttListener};

/// Bound on every wait for something that should happen.
const PATIENCE: Duration = Duration::from_secs(5);

/// A listener configuration for tests: loopback, ephemeral port.
fn config(transport: Transport) -> Listener {
    Listener {
        name: format!("test-{}", transport.as_str()),
        bind: "127.0.0.1:0".parse().unwrap(),
        transport,
        max_connections: NonZeroU32::new(16).unwrap(),
        handshake_timeout: ConfDuration::millis(200),
        max_packet_size: ByteSize::kib(256),
        send_buffer: None,
        receive_buffer: None,
        websocket_path: Listener::DEFAULT_WEBSOCKET_PATH.to_owned(),
        tls: None,
        proxy_protocol: None,
        handover_socket: None,
    }
}

/// A running listener whose handler passes each connection to the test.
struct Running {
    addr: SocketAddr,
    inlet: Option<super::Inlet>,
    accepted: mpsc::UnboundedReceiver<Accepted>,
    stats: Arc<ListenerStats>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

fn start(cfg: &Listener) -> Running {
    let listener = MqttListener::bind(cfg).unwrap();
    let addr = listener.local_addr();
    let inlet = listener.inlet();
    let stats = listener.stats();
    let (tx, accepted) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let handler = move |a: Accepted| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(a);
        }
    };
    let task = tokio::spawn(listener.run(handler, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        inlet,
        accepted,
        stats,
        stop: Some(stop),
        task,
    }
}

impl Running {
    /// The next connection handed to the handler.
    async fn next(&mut self) -> Accepted {
        tokio::time::timeout(PATIENCE, self.accepted.recv())
            .await
            .expect("no connection reached the handler")
            .expect("listener stopped")
    }

    /// Asserts that no connection reaches the handler for `wait`.
    async fn assert_no_connection(&mut self, wait: Duration) {
        if let Ok(Some(a)) = tokio::time::timeout(wait, self.accepted.recv()).await {
            panic!("unexpected connection reached the handler: {a:?}");
        }
    }

    /// Waits until `check` holds on the listener's counters.
    async fn stats_eventually(&self, what: &str, check: impl Fn(&ListenerStats) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !check(&self.stats) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "stats never showed {what}: {:?}",
                self.stats
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A handed-over or passed connection reads the replayed `CONNECT`, then
/// what `client` sends, and `client` reads what it writes back.
async fn replays_then_reads_on(client: &mut (impl AsyncRead + AsyncWrite + Unpin), accepted: &mut Accepted) {
    client.write_all(b" and more").await.unwrap();
    let mut got = [0u8; 16];
    accepted.stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"CONNECT and more");
    accepted.stream.write_all(b"CONNACK").await.unwrap();
    let mut back = [0u8; 7];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"CONNACK");
}

/// Reads until the peer closes (EOF or error); fails if it stays open.
async fn assert_closed(stream: &mut (impl AsyncRead + Unpin)) {
    let closed = async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, closed)
        .await
        .expect("the server did not close the connection");
}
