//! The steady state of a connection: one task, one loop, every branch with
//! an exit. Reads packets, sends deliveries, enforces keep alive, obeys
//! takeover and shutdown; at the end parks the session state and decides
//! what happens to the will.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use skerry_codec::{ByteStr, Disconnect, LastWill, Packet, ProtocolVersion, ReasonCode};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::debug;

use super::io::{ConnError, Framed};
use super::Params;
use crate::message::Delivery;
use crate::node::{Attached, Ending, Leaving, NodeShared};
use crate::session::{Control, Session, SessionState};
use crate::stats::NodeStats;

/// Deliveries taken from the channel in one turn before flushing.
const DELIVERY_BATCH: usize = 256;
/// Packets already buffered handled in one turn before flushing.
const PACKET_BATCH: usize = 64;

/// Whether the loop goes on after a packet.
pub(super) enum Flow {
    Continue,
    Stop(Ending),
}

/// A connected client.
pub(super) struct Conn {
    pub(super) node: Arc<NodeShared>,
    pub(super) io: Framed,
    pub(super) p: Params,
    pub(super) session: Arc<Session>,
    pub(super) state: SessionState,
    rx: mpsc::Receiver<Delivery>,
    control: mpsc::UnboundedReceiver<Control>,
    /// Deliveries waiting for room in the inflight window.
    pub(super) pending: VecDeque<Delivery>,
    pub(super) will: Option<LastWill>,
    /// Topic aliases the client set (v5).
    pub(super) aliases_in: HashMap<u16, ByteStr>,
    /// Topic aliases we set towards the client (v5).
    pub(super) aliases_out: HashMap<ByteStr, u16>,
    pub(super) limiter: Option<crate::node::RateLimiter>,
    last_read: Instant,
    /// Store commits the acknowledgements in the write buffer wait for
    /// (`sync` durability): the buffer is flushed only once they resolve.
    pub(super) commits: Vec<skerry_store::Commit>,
}

impl Conn {
    pub(super) fn new(node: Arc<NodeShared>, io: Framed, p: Params, a: Attached, will: Option<LastWill>) -> Self {
        let limiter = node.message_rate_limiter();
        Self {
            node,
            io,
            p,
            session: a.session,
            state: a.state,
            rx: a.rx,
            control: a.control,
            pending: a.queue,
            will,
            aliases_in: HashMap::new(),
            aliases_out: HashMap::new(),
            limiter,
            last_read: Instant::now(),
            commits: Vec::new(),
        }
    }

    /// Runs the connection to its end and detaches the session.
    pub(super) async fn run(mut self) -> Result<(), ConnError> {
        NodeStats::inc(&self.node.stats.clients_connected);
        let (ending, result) = match self.resume().await {
            Ok(()) => self.serve().await,
            Err(e) => (Ending::Abnormal, Err(e)),
        };
        NodeStats::dec(&self.node.stats.clients_connected);
        let Conn {
            node,
            mut io,
            session,
            state,
            rx,
            pending,
            will,
            p,
            mut control,
            ..
        } = self;
        node.detach(
            &session,
            Leaving {
                state,
                rx,
                pending,
                ending: &ending,
                will,
            },
            &p,
        );
        if let Ending::TakenOver(done) = &ending {
            done.notify_one();
        }
        // A takeover that raced the end of this connection still found the
        // link up and waits to hear it is gone.
        while let Ok(cmd) = control.try_recv() {
            if let Control::TakeOver(done) = cmd {
                done.notify_one();
            }
        }
        drop(control);
        // Close last: a client that sees the close finds its session parked
        // and its will handled.
        io.close().await;
        result
    }

    /// After CONNACK: resend what was in flight, then queued messages.
    async fn resume(&mut self) -> Result<(), ConnError> {
        self.resend_inflight()?;
        self.fill_window()?;
        self.flush().await
    }

    async fn serve(&mut self) -> (Ending, Result<(), ConnError>) {
        loop {
            match self.turn().await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop(ending)) => return (ending, self.flush().await),
                Err(e) => {
                    if let ConnError::Decode(d) = &e {
                        NodeStats::inc(&self.node.stats.mqtt_invalid_packet);
                        self.send_disconnect(d.reason_code());
                        let _ = self.flush().await;
                    }
                    return (Ending::Abnormal, Err(e));
                }
            }
            if let Err(e) = self.flush().await {
                return (Ending::Abnormal, Err(e));
            }
        }
    }

    /// One wait for whatever happens first.
    async fn turn(&mut self) -> Result<Flow, ConnError> {
        let keep_alive = self.p.keep_alive.map(|ka| self.last_read + ka.mul_f32(1.5));
        let shutdown = self.node.shutdown.clone();
        tokio::select! {
            biased;
            cmd = self.control.recv() => Ok(self.on_control(cmd)),
            () = shutdown.cancelled() => {
                self.send_disconnect(ReasonCode::ServerShuttingDown);
                Ok(Flow::Stop(Ending::Abnormal))
            }
            read = self.io.read_packet() => self.on_read(read).await,
            Some(d) = self.rx.recv(), if self.pending.is_empty() => {
                self.deliver(d)?;
                for _ in 1..DELIVERY_BATCH {
                    match self.rx.try_recv() {
                        Ok(d) if self.pending.is_empty() => self.deliver(d)?,
                        Ok(d) => self.pending.push_back(d),
                        Err(_) => break,
                    }
                }
                Ok(Flow::Continue)
            }
            () = sleep_until(keep_alive.unwrap_or_else(Instant::now)), if keep_alive.is_some() => {
                debug!("keep alive expired");
                self.send_disconnect(ReasonCode::KeepAliveTimeout);
                Ok(Flow::Stop(Ending::Abnormal))
            }
        }
    }

    fn on_control(&mut self, cmd: Option<Control>) -> Flow {
        match cmd {
            Some(Control::TakeOver(done)) => {
                debug!("session taken over by a new connection");
                NodeStats::inc(&self.node.stats.session_takeover);
                self.send_disconnect(ReasonCode::SessionTakenOver);
                Flow::Stop(Ending::TakenOver(done))
            }
            Some(Control::Disconnect(reason)) => {
                debug!(?reason, "disconnected by an operator");
                self.send_disconnect(reason);
                Flow::Stop(Ending::Abnormal)
            }
            None => Flow::Stop(Ending::Abnormal),
        }
    }

    async fn on_read(&mut self, read: Result<Option<(Packet, usize)>, ConnError>) -> Result<Flow, ConnError> {
        let Some((packet, n)) = read? else {
            debug!("client closed the connection");
            return Ok(Flow::Stop(Ending::Abnormal));
        };
        self.last_read = Instant::now();
        NodeStats::add(&self.node.stats.bytes_received, n as u64);
        if let Flow::Stop(e) = self.handle(packet).await? {
            return Ok(Flow::Stop(e));
        }
        // Handle what is already buffered before paying for a flush.
        for _ in 1..PACKET_BATCH {
            match self.io.try_decode()? {
                Some((packet, n)) => {
                    NodeStats::add(&self.node.stats.bytes_received, n as u64);
                    if let Flow::Stop(e) = self.handle(packet).await? {
                        return Ok(Flow::Stop(e));
                    }
                }
                None => break,
            }
        }
        Ok(Flow::Continue)
    }

    /// Queues a v5 DISCONNECT with `reason` (3.x has no server DISCONNECT).
    pub(super) fn send_disconnect(&mut self, reason: ReasonCode) {
        if self.p.version == ProtocolVersion::V5 {
            let _ = self
                .io
                .queue(&Packet::Disconnect(Disconnect::new(reason)), self.p.version);
        }
    }

    /// Queues a packet for the client.
    pub(super) fn send(&mut self, packet: &Packet) -> Result<(), ConnError> {
        self.io.queue(packet, self.p.version).map(drop)
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        // One wait covers every PUBLISH read this turn: they share a group commit.
        for commit in std::mem::take(&mut self.commits) {
            commit.await?;
        }
        let n = self.io.flush().await?;
        NodeStats::add(&self.node.stats.bytes_sent, n as u64);
        Ok(())
    }
}
