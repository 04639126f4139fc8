//! The steady state of a connection: one task, one loop, every branch with
//! an exit. Reads packets, sends deliveries, enforces keep alive, obeys
//! takeover and shutdown; at the end parks the session state and decides
//! what happens to the will.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use skerry_codec::{ByteStr, Disconnect, LastWill, Packet, ProtocolVersion, ReasonCode};
use tokio::time::{sleep_until, Instant};
use tracing::debug;

use super::io::{ConnError, Framed};
use super::Params;
use crate::mailbox::Mailbox;
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

/// A connected client. It lives boxed (see `run`): the task's future then
/// holds a pointer, not the whole state twice.
pub(crate) struct Conn {
    pub(super) node: Arc<NodeShared>,
    pub(super) io: Framed,
    pub(super) p: Params,
    pub(super) session: Arc<Session>,
    pub(super) state: SessionState,
    mailbox: Arc<Mailbox>,
    /// Deliveries waiting for room in the inflight window.
    pub(super) pending: VecDeque<Delivery>,
    /// Boxed: most clients have none, and every byte here is per connection.
    pub(super) will: Option<Box<LastWill>>,
    /// Topic aliases the client set (v5).
    pub(super) aliases_in: HashMap<u16, ByteStr>,
    /// Topic aliases we set towards the client (v5).
    pub(super) aliases_out: HashMap<ByteStr, u16>,
    pub(super) limiter: Option<Box<crate::node::RateLimiter>>,
    last_read: Instant,
    /// Store commits the acknowledgements in the write buffer wait for
    /// (`sync` durability): the buffer is flushed only once they resolve.
    pub(super) commits: Vec<skerry_store::Commit>,
}

impl Conn {
    pub(super) fn new(node: Arc<NodeShared>, io: Framed, p: Params, a: Attached, will: Option<LastWill>) -> Self {
        let limiter = node.message_rate_limiter().map(Box::new);
        Self {
            node,
            io,
            p,
            session: a.session,
            state: a.state,
            mailbox: a.mailbox,
            pending: a.queue,
            will: will.map(Box::new),
            aliases_in: HashMap::new(),
            aliases_out: HashMap::new(),
            limiter,
            last_read: Instant::now(),
            commits: Vec::new(),
        }
    }

    /// Runs the connection to its end and detaches the session. What runs
    /// once (resume, finish) and what runs per packet (`on_read`) is boxed
    /// while it runs, so an idle connection's future holds only the wait.
    pub(super) async fn run(mut self: Box<Self>) -> Result<(), ConnError> {
        NodeStats::inc(&self.node.stats.clients_connected);
        let (ending, result) = match Box::pin(self.resume()).await {
            Ok(()) => self.serve().await,
            Err(e) => (Ending::Abnormal, Err(e)),
        };
        NodeStats::dec(&self.node.stats.clients_connected);
        Box::pin(self.finish(ending, result)).await
    }

    /// Parks the session, handles the will, closes the socket.
    async fn finish(self: Box<Self>, ending: Ending, result: Result<(), ConnError>) -> Result<(), ConnError> {
        let Conn {
            node,
            mut io,
            session,
            state,
            mailbox,
            pending,
            will,
            p,
            ..
        } = *self;
        node.detach(
            &session,
            Leaving {
                state,
                mailbox: &mailbox,
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
        while let Some(cmd) = mailbox.take_command() {
            if let Control::TakeOver(done) = cmd {
                done.notify_one();
            }
        }
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

    /// One wait for whatever happens first, after what is in the mailbox.
    async fn turn(&mut self) -> Result<Flow, ConnError> {
        if let Some(cmd) = self.mailbox.take_command() {
            return Ok(self.on_control(cmd));
        }
        // Deliveries are taken only while none wait for the window: the
        // backlog stays in the mailbox, bounded, where publishers see it.
        let take_mail = self.pending.is_empty() && self.mailbox.len() > 0;
        let keep_alive = self.p.keep_alive.map(|ka| self.last_read + ka.mul_f32(1.5));
        let mailbox = Arc::clone(&self.mailbox);
        let shutdown = self.node.shutdown.clone();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                self.send_disconnect(ReasonCode::ServerShuttingDown);
                Ok(Flow::Stop(Ending::Abnormal))
            }
            // The client first, so a flood of deliveries cannot starve its
            // acknowledgements and pings.
            filled = self.io.fill() => match filled {
                Ok(true) => Box::pin(self.on_read()).await,
                Ok(false) => {
                    debug!("client closed the connection");
                    Ok(Flow::Stop(Ending::Abnormal))
                }
                Err(e) => Err(e),
            },
            () = std::future::ready(()), if take_mail => {
                self.mailbox.take_deliveries(&mut self.pending, DELIVERY_BATCH);
                self.fill_window()?;
                Ok(Flow::Continue)
            }
            () = mailbox.arrived() => Ok(Flow::Continue),
            () = sleep_until(keep_alive.unwrap_or_else(Instant::now)), if keep_alive.is_some() => {
                debug!("keep alive expired");
                self.send_disconnect(ReasonCode::KeepAliveTimeout);
                Ok(Flow::Stop(Ending::Abnormal))
            }
        }
    }

    fn on_control(&mut self, cmd: Control) -> Flow {
        match cmd {
            Control::TakeOver(done) => {
                debug!("session taken over by a new connection");
                NodeStats::inc(&self.node.stats.session_takeover);
                self.send_disconnect(ReasonCode::SessionTakenOver);
                Flow::Stop(Ending::TakenOver(done))
            }
            Control::Disconnect(reason) => {
                debug!(?reason, "disconnected by an operator");
                self.send_disconnect(reason);
                Flow::Stop(Ending::Abnormal)
            }
        }
    }

    /// Handles the packets buffered (a batch of them before paying for a
    /// flush); an incomplete one waits for more bytes.
    async fn on_read(&mut self) -> Result<Flow, ConnError> {
        for _ in 0..PACKET_BATCH {
            let Some((packet, n)) = self.io.try_decode()? else {
                break;
            };
            self.last_read = Instant::now();
            NodeStats::add(&self.node.stats.bytes_received, n as u64);
            if let Flow::Stop(e) = self.handle(packet).await? {
                return Ok(Flow::Stop(e));
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
