//! The steady state of a connection: one task, one loop, every branch with
//! an exit. Reads packets, sends deliveries, enforces keep alive, obeys
//! takeover and shutdown; at the end parks the session state and decides
//! what happens to the will.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use skerry_codec::{ByteStr, Disconnect, LastWill, Packet, ProtocolVersion, ReasonCode};
use tokio::time::Instant;
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

/// A connection's topic aliases (v5).
#[derive(Default)]
pub(super) struct Aliases {
    /// Set by the client.
    pub(super) incoming: HashMap<u16, ByteStr>,
    /// Set by us towards the client.
    pub(super) outgoing: HashMap<ByteStr, u16>,
}

/// What ended a connection's wait.
enum Woken {
    /// The node is shutting down.
    Shutdown,
    /// Bytes from the client (`Ok(false)`: it closed).
    Read(Result<bool, ConnError>),
    /// Deliveries wait in the mailbox and the window has room for them.
    Deliveries,
    /// Something may have arrived in the mailbox.
    Mail,
    /// Nothing was read within the keep alive.
    KeepAlive,
    /// Nothing to do for a while: hibernate.
    Drowsy,
}

/// Whether the loop goes on after a packet.
pub(super) enum Flow {
    Continue,
    Stop(Ending),
    /// Hibernate until something happens.
    Sleep,
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
    /// The node clock's tick in which the connection last had something to
    /// do (a packet, deliveries); 0: nothing since it started serving.
    active: u32,
    /// The stream is more than a bare socket, or the dormitory could not
    /// watch it: it does not hibernate.
    pub(super) insomniac: bool,
    /// Deliveries waiting for room in the inflight window.
    pub(super) pending: VecDeque<Delivery>,
    /// Boxed: most clients have none, and every byte here is per connection.
    pub(super) will: Option<Box<LastWill>>,
    /// Topic aliases, once the client or we use one (v5).
    aliases: Option<Box<Aliases>>,
    pub(super) limiter: Option<Box<crate::node::RateLimiter>>,
    last_read: Instant,
    /// This turn routed a QoS 1/2 message: the subscribers it woke write
    /// it out before this connection writes the acknowledgement.
    pub(super) routed: bool,
    /// The node clock's tick at whose end the alarm set last rings (the
    /// clock then wakes the mailbox); 0: none set.
    alarm: u32,
    /// Store commits the acknowledgements in the write buffer wait for
    /// (`sync` durability): the buffer is flushed only once they resolve.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes in every connection instead of 24; rarely used"
    )]
    pub(super) commits: Option<Box<Vec<skerry_store::Commit>>>,
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
            active: 0,
            insomniac: false,
            pending: a.queue,
            will: will.map(Box::new),
            aliases: None,
            limiter,
            last_read: Instant::now(),
            routed: false,
            alarm: 0,
            commits: None,
        }
    }

    /// Runs the connection to its end and detaches the session, or until
    /// it hibernates (`None`: its task ends, and a new one serves it on
    /// when it wakes). What runs once (resume, finish) and what runs per
    /// packet (`on_read`) is boxed while it runs, and no result is held
    /// across a wait, so a waiting connection's future holds only the wait.
    pub(super) async fn run(mut self: Box<Self>) -> Option<Result<(), ConnError>> {
        NodeStats::inc(&self.node.stats.clients_connected);
        if let Err(e) = Box::pin(self.resume()).await {
            return Some(self.end(Ending::Abnormal, Err(e)).await);
        }
        self.serve_on().await
    }

    /// Serves until the connection ends (then detaches the session) or
    /// hibernates (`None`).
    pub(super) async fn serve_on(mut self: Box<Self>) -> Option<Result<(), ConnError>> {
        loop {
            if let Some((ending, result)) = self.serve().await {
                return Some(self.end(ending, result).await);
            }
            self = match self.hibernate() {
                Ok(()) => return None,
                Err(awake) => awake,
            };
        }
    }

    async fn end(self: Box<Self>, ending: Ending, result: Result<(), ConnError>) -> Result<(), ConnError> {
        NodeStats::dec(&self.node.stats.clients_connected);
        Box::pin(self.finish(ending, result)).await
    }

    /// Marks the connection active now.
    pub(super) fn woke(&mut self) {
        self.active = self.node.alarms.tick(Instant::now());
    }

    /// The connection's mailbox.
    pub(super) fn mailbox(&self) -> &Mailbox {
        &self.mailbox
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

    /// Turns until the connection ends, or `None` when it is time to
    /// hibernate.
    async fn serve(&mut self) -> Option<(Ending, Result<(), ConnError>)> {
        loop {
            let stop = match self.turn().await {
                Ok(Flow::Continue) => None,
                Ok(Flow::Sleep) => return None,
                Ok(Flow::Stop(ending)) => Some((ending, None)),
                Err(e) => {
                    let ConnError::Decode(d) = &e else {
                        return Some((Ending::Abnormal, Err(e)));
                    };
                    NodeStats::inc(&self.node.stats.mqtt_invalid_packet);
                    self.send_disconnect(d.reason_code());
                    Some((Ending::Abnormal, Some(e)))
                }
            };
            if std::mem::take(&mut self.routed) {
                // The subscribers' tasks run first (tokio gives the last task
                // woken the next turn): a delivery does not wait for the
                // publisher's acknowledgement to be written (a loopback write
                // costs the receiving side's work too).
                tokio::task::yield_now().await;
            }
            let flushed = self.flush().await;
            match (stop, flushed) {
                (None, Ok(())) => {}
                (None, Err(e)) => return Some((Ending::Abnormal, Err(e))),
                (Some((ending, None)), flushed) => return Some((ending, flushed)),
                // The DISCONNECT for a malformed packet goes out if it can.
                (Some((ending, Some(e))), _) => return Some((ending, Err(e))),
            }
        }
    }

    /// One wait for whatever happens first, after what is in the mailbox.
    /// The wait is a poll of the connection's own state (socket, mailbox,
    /// keep-alive alarm), so an idle connection's task holds no future
    /// beyond a reference to it.
    async fn turn(&mut self) -> Result<Flow, ConnError> {
        if let Some(cmd) = self.mailbox.take_command() {
            return Ok(self.on_control(cmd));
        }
        // Deliveries are taken only while none wait for the window: the
        // backlog stays in the mailbox, bounded, where publishers see it.
        let take_mail = self.pending.is_empty() && self.mailbox.len() > 0;
        match std::future::poll_fn(|cx| self.poll_woken(cx, take_mail)).await {
            Woken::Read(Ok(true)) => {}
            woken => return self.on_woken(woken),
        }
        self.woke();
        Box::pin(self.on_read()).await
    }

    /// What to do when woken by anything but bytes to decode.
    fn on_woken(&mut self, woken: Woken) -> Result<Flow, ConnError> {
        match woken {
            Woken::Shutdown => {
                self.send_disconnect(ReasonCode::ServerShuttingDown);
                Ok(Flow::Stop(Ending::Abnormal))
            }
            Woken::Read(Ok(true)) | Woken::Mail => Ok(Flow::Continue),
            Woken::Read(Ok(false)) => {
                debug!("client closed the connection");
                Ok(Flow::Stop(Ending::Abnormal))
            }
            Woken::Read(Err(e)) => Err(e),
            Woken::Drowsy => Ok(Flow::Sleep),
            Woken::Deliveries => {
                self.woke();
                self.mailbox.take_deliveries(&mut self.pending, DELIVERY_BATCH);
                self.fill_window()?;
                Ok(Flow::Continue)
            }
            Woken::KeepAlive => {
                debug!("keep alive expired");
                self.send_disconnect(ReasonCode::KeepAliveTimeout);
                Ok(Flow::Stop(Ending::Abnormal))
            }
        }
    }

    /// The first of: the node shutting down (it wakes every mailbox), bytes
    /// from the client (first, so a flood of deliveries cannot starve its
    /// acknowledgements and pings), deliveries to take, the mailbox, the
    /// keep-alive deadline (its alarm wakes the mailbox), and when none of
    /// them is there, the time to hibernate.
    fn poll_woken(&mut self, cx: &mut Context<'_>, take_mail: bool) -> Poll<Woken> {
        if self.node.shutdown.is_cancelled() {
            return Poll::Ready(Woken::Shutdown);
        }
        if let Poll::Ready(filled) = self.io.poll_fill(cx) {
            return Poll::Ready(Woken::Read(filled));
        }
        if take_mail {
            return Poll::Ready(Woken::Deliveries);
        }
        if self.mailbox.poll_arrived(cx).is_ready() {
            return Poll::Ready(Woken::Mail);
        }
        let now = Instant::now();
        let tick = self.node.alarms.tick(now);
        if self.poll_keep_alive(now, tick).is_ready() {
            return Poll::Ready(Woken::KeepAlive);
        }
        if self.drowsy(tick) {
            return Poll::Ready(Woken::Drowsy);
        }
        Poll::Pending
    }

    /// Ready when nothing was read for 1.5 times the keep alive. Otherwise
    /// makes sure an alarm will wake the connection at the deadline.
    fn poll_keep_alive(&mut self, now: Instant, tick: u32) -> Poll<()> {
        if self.p.keep_alive == 0 {
            return Poll::Pending;
        }
        let deadline = self.last_read + Duration::from_millis(u64::from(self.p.keep_alive) * 1500);
        if now >= deadline {
            return Poll::Ready(());
        }
        self.arm(self.node.alarms.tick(deadline), tick);
        Poll::Pending
    }

    /// Whether to hibernate rather than wait: nothing to do since the
    /// connection started serving (a client that connects and stays quiet
    /// costs no task from the start), or for `hibernate_after` (counted in
    /// whole ticks of the node's clock, so up to a tick more); never with
    /// bytes buffered either way. Otherwise makes sure an alarm wakes the
    /// connection when that time is up.
    fn drowsy(&mut self, tick: u32) -> bool {
        let Some(after) = self.node.limits().hibernate_after_ticks else {
            return false;
        };
        if self.insomniac || !self.io.is_idle() {
            return false;
        }
        if self.active == 0 {
            return true;
        }
        // Awake from the end of tick `active` for `after`: asleep from the
        // tick after the last one that covers it.
        let last = self.active.saturating_add(after);
        if tick > last {
            return true;
        }
        self.arm(last, tick);
        false
    }

    /// Makes sure the node's clock wakes the connection at the end of tick
    /// `at`: an alarm is set once per deadline, not at every packet, and
    /// only when none set earlier is still to ring by then.
    fn arm(&mut self, at: u32, tick: u32) {
        if self.alarm >= tick && self.alarm <= at {
            return;
        }
        self.node.alarms.set(at, self.session.key);
        self.alarm = at;
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

    /// The topic aliases, made on first use.
    pub(super) fn aliases(&mut self) -> &mut Aliases {
        self.aliases.get_or_insert_with(Box::default)
    }

    /// Queues a packet for the client.
    pub(super) fn send(&mut self, packet: &Packet) -> Result<(), ConnError> {
        self.io.queue(packet, self.p.version).map(drop)
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Writes out the write buffer once the store commits it waits for are
    /// done: one wait covers every PUBLISH read this turn (they share a
    /// group commit).
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnError>> {
        if let Some(commits) = &mut self.commits {
            while let Some(commit) = commits.last_mut() {
                let committed = ready!(Pin::new(commit).poll(cx));
                commits.pop();
                committed?;
            }
            self.commits = None;
        }
        let n = ready!(self.io.poll_flush(cx))?;
        NodeStats::add(&self.node.stats.bytes_sent, n as u64);
        Poll::Ready(Ok(()))
    }
}
