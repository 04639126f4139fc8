//! Hibernation: a connection with nothing to do gives up its task and its
//! socket's place in tokio's reactor (together about 650 bytes, most of
//! what an idle client costs) and waits in its node's [`Dormitory`]: one
//! epoll set for every hibernating socket, watched by one thread, and a
//! waker in the connection's mailbox. Whatever comes first (bytes or a
//! hang-up from the client, a delivery, a command, the keep-alive alarm,
//! the node shutting down) wakes it: the socket goes back to the reactor
//! and the connection gets a new task, in the state it left.
//!
//! A hibernating connection is a [`Sleeper`]: the connection, its bare
//! socket and its log span, behind the waker both sources share. The first
//! wake-up takes them out; later ones find nothing.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use parking_lot::Mutex;
use slab::Slab;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::{debug, Instrument, Span};

use super::conn::Conn;
use crate::stats::NodeStats;

/// Readiness events taken from the epoll set at a time.
const EVENTS: usize = 256;
/// The watch's own token: time to stop (slab keys stay far below it).
const STOP: Token = Token(usize::MAX);

/// Where a node's connections hibernate.
pub(crate) struct Dormitory {
    registry: Registry,
    sleepers: Mutex<Slab<Arc<Sleeper>>>,
    runtime: Handle,
    conns: TaskTracker,
}

/// The watch over a dormitory's sockets, on a thread of its own. Dropping
/// it stops the watch; connections still hibernating then are closed.
pub(crate) struct Watching {
    stop: Arc<mio::Waker>,
    failed: Option<oneshot::Receiver<io::Error>>,
}

/// What the watch thread owns.
struct Watch {
    poll: Poll,
    dorm: Arc<Dormitory>,
    /// Its eventfd stays open until the watch has seen the wake-up.
    _stop: Arc<mio::Waker>,
}

impl Dormitory {
    /// A dormitory whose connections wake into `conns` on the current
    /// runtime, and the watch over its sockets.
    pub(crate) fn start(conns: TaskTracker) -> io::Result<(Arc<Self>, Watching)> {
        let poll = Poll::new()?;
        let dorm = Arc::new(Self {
            registry: poll.registry().try_clone()?,
            sleepers: Mutex::default(),
            runtime: Handle::current(),
            conns,
        });
        let stop = Arc::new(mio::Waker::new(poll.registry(), STOP)?);
        let watch = Watch {
            poll,
            dorm: Arc::clone(&dorm),
            _stop: Arc::clone(&stop),
        };
        let (failed, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("skerry-hibernate".to_owned())
            .spawn(move || {
                if let Err(e) = watch.run() {
                    let _ = failed.send(e);
                }
            })?;
        Ok((dorm, Watching { stop, failed: Some(rx) }))
    }

    /// Puts `conn` to sleep on `socket`. Gives both back when something
    /// arrived meanwhile or the socket cannot be watched: the caller goes
    /// on serving.
    pub(super) fn put(
        &self,
        mut conn: Box<Conn>,
        socket: std::net::TcpStream,
    ) -> Result<(), (Box<Conn>, std::net::TcpStream)> {
        let sleeper = {
            let mut sleepers = self.sleepers.lock();
            let entry = sleepers.vacant_entry();
            let sleeper = Arc::new(Sleeper {
                key: entry.key(),
                state: Mutex::new(State::Settling { woken: false }),
            });
            entry.insert(Arc::clone(&sleeper));
            sleeper
        };
        // The mailbox first: from here on a delivery or a command wakes
        // the sleeper, and one that came since the connection last looked
        // keeps it awake.
        let waker = Waker::from(Arc::clone(&sleeper));
        let arrived = conn.mailbox().poll_arrived(&mut Context::from_waker(&waker)).is_ready();
        let fd = socket.as_raw_fd();
        let registered = !arrived
            && match self
                .registry
                .register(&mut SourceFd(&fd), Token(sleeper.key), Interest::READABLE)
            {
                Ok(()) => true,
                Err(e) => {
                    // Trying again at every wait would spin on the error
                    // (no memory, `max_user_watches`): it stays awake.
                    debug!(error = %e, "socket could not join the dormitory");
                    conn.insomniac = true;
                    false
                }
            };
        if !registered {
            *sleeper.state.lock() = State::Awake;
            self.forget(&sleeper);
            return Err((conn, socket));
        }
        let mut state = sleeper.state.lock();
        if matches!(*state, State::Settling { woken: true }) {
            *state = State::Awake;
            drop(state);
            self.evict(&sleeper, &socket);
            return Err((conn, socket));
        }
        NodeStats::inc(&conn.node.stats.clients_hibernating);
        *state = State::Asleep(Asleep {
            conn,
            socket,
            span: Some(Span::current()).filter(|span| !span.is_disabled()).map(Box::new),
        });
        Ok(())
    }

    /// Takes a sleeper's socket out of the epoll set and the sleeper out of
    /// the dormitory.
    fn evict(&self, sleeper: &Sleeper, socket: &std::net::TcpStream) {
        let _ = self.registry.deregister(&mut SourceFd(&socket.as_raw_fd()));
        self.forget(sleeper);
    }

    /// Takes the sleeper out of the dormitory, if it is still there (a
    /// stopping watch empties it, and its key may be another's since).
    fn forget(&self, sleeper: &Sleeper) {
        let mut sleepers = self.sleepers.lock();
        if sleepers.get(sleeper.key).is_some_and(|s| std::ptr::eq(&**s, sleeper)) {
            sleepers.remove(sleeper.key);
        }
    }
}

impl Watching {
    /// Resolves only if the watch fails: hibernating connections would no
    /// longer hear from their clients.
    pub(crate) async fn failed(&mut self) -> io::Error {
        if let Some(rx) = &mut self.failed {
            if let Ok(e) = rx.await {
                self.failed = None;
                return e;
            }
            self.failed = None;
        }
        std::future::pending().await
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.stop.wake();
    }
}

impl Watch {
    /// Wakes the connections whose sockets turn readable (bytes, a
    /// hang-up or an error) until told to stop, then closes those still
    /// asleep (at a node's shutdown, every connection was woken before).
    fn run(mut self) -> io::Result<()> {
        let watched = self.watch();
        let left: Vec<Arc<Sleeper>> = self.dorm.sleepers.lock().drain().collect();
        for sleeper in left {
            // Dropped (the socket closed) outside the sleeper's lock.
            let state = std::mem::replace(&mut *sleeper.state.lock(), State::Awake);
            drop(state);
        }
        watched
    }

    fn watch(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if events.iter().any(|event| event.token() == STOP) {
                return Ok(());
            }
            let woken: Vec<Arc<Sleeper>> = {
                let sleepers = self.dorm.sleepers.lock();
                events
                    .iter()
                    .filter_map(|event| sleepers.get(event.token().0).cloned())
                    .collect()
            };
            for sleeper in woken {
                sleeper.rouse();
            }
        }
    }
}

/// A hibernating connection; its waker.
struct Sleeper {
    key: usize,
    state: Mutex<State>,
}

enum State {
    /// Being put to sleep: a wake-up now is remembered and keeps it awake.
    Settling {
        woken: bool,
    },
    Asleep(Asleep),
    /// Woken (or never asleep): nothing left to wake.
    Awake,
}

/// Not counted among the node's connection tasks while asleep: a node
/// shutting down wakes every mailbox before it waits for its connections,
/// and a connection woken gets its counted task at once.
struct Asleep {
    conn: Box<Conn>,
    socket: std::net::TcpStream,
    /// The connection's log span, when logging at its level is on.
    span: Option<Box<Span>>,
}

impl Sleeper {
    /// Wakes the connection into a new task, once.
    fn rouse(&self) {
        let asleep = {
            let mut state = self.state.lock();
            match std::mem::replace(&mut *state, State::Awake) {
                State::Asleep(asleep) => asleep,
                State::Settling { .. } => {
                    *state = State::Settling { woken: true };
                    return;
                }
                State::Awake => return,
            }
        };
        let Asleep { conn, socket, span } = asleep;
        let dorm = Arc::clone(&conn.node.dorm);
        dorm.evict(self, &socket);
        NodeStats::dec(&conn.node.stats.clients_hibernating);
        let span = span.map_or_else(Span::none, |span| *span);
        let task = dorm.conns.track_future(conn.wake(socket).instrument(span));
        dorm.runtime.spawn(task);
    }
}

impl Wake for Sleeper {
    fn wake(self: Arc<Self>) {
        self.rouse();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.rouse();
    }
}

impl Conn {
    /// The connection back from hibernation on `socket`, served on. It
    /// counts as active: it stays awake at least `hibernate_after`, since
    /// what woke it may be bytes the reactor, which has just been given the
    /// socket, has yet to report.
    async fn wake(mut self: Box<Self>, socket: std::net::TcpStream) {
        self.rejoin(socket);
        self.woke();
        if let Some(ended) = self.serve_on().await {
            super::closed(ended);
        }
    }

    /// Hibernates if the stream is a bare socket. Gives the connection
    /// back when it is not, or when something arrived meanwhile.
    pub(super) fn hibernate(mut self: Box<Self>) -> Result<(), Box<Self>> {
        let Some(tcp) = self.io.take_tcp() else {
            self.insomniac = true;
            return Err(self);
        };
        let socket = match tcp.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                // The socket is gone with the error: the connection ends on
                // its next read.
                debug!(error = %e, "socket could not leave the reactor");
                return Err(self);
            }
        };
        let dorm = Arc::clone(&self.node.dorm);
        dorm.put(self, socket).map_err(|(mut conn, socket)| {
            conn.rejoin(socket);
            conn
        })
    }

    /// Gives the socket back to the connection and tokio's reactor. If the
    /// reactor refuses it, the connection ends on its next read, through
    /// the usual path.
    fn rejoin(&mut self, socket: std::net::TcpStream) {
        if let Err(e) = self.io.restore_tcp(socket) {
            debug!(error = %e, "socket could not rejoin the reactor");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_watch_stops_when_dropped() {
        let (dorm, watching) = Dormitory::start(TaskTracker::new()).unwrap();
        drop(watching);
        // The watch thread held the only other reference.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&dorm) > 1 {
            assert!(std::time::Instant::now() < deadline, "the watch did not stop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
