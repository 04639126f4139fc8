//! Passing a client's socket to a broker node in another process on this
//! host, instead of relaying it: the member's `handover_socket`, a Unix
//! `SOCK_SEQPACKET` socket the node listens on. Each client goes over as
//! one message, its TCP socket alongside (`SCM_RIGHTS`), with the bytes
//! the node reads first (the PROXY header the pool sends, the CONNECT);
//! from then on the node reads and writes the client's socket itself. On
//! a core shared with the node this saves the relay's four socket writes
//! and wake-ups per QoS 1 message; see `handoff` for the same within one
//! process. Message format: [`skerry_codec::handover`]. Sockets go only to
//! a process of the balancer's own user, or root (`SO_PEERCRED`).
//!
//! The balancer keeps a duplicate of the socket, unread and unwatched,
//! and the session keeps its place under the caps and in its backend's
//! count until the node reports it closed. Ending a session (its backend
//! marked down under `shutdown_sessions`, its share of the drain window
//! when the balancer stops) shuts the socket down both ways through that
//! duplicate: the node reads the end of the stream, as after a client's
//! close. When the link closes (the node went away, or cut this balancer
//! off and its sessions from before have ended), every session passed over
//! it that is still counted counts as closed; a link the node no longer
//! reads from takes no more clients, and the next one goes over a new link.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rustix::net::AddressFamily;
use skerry_codec::handover::{decode_closed, encode_pass, peer_allowed};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_seqpacket::ancillary::AncillaryMessageWriter;
use tokio_seqpacket::UnixSeqpacket;
use tracing::{debug, info, warn};

/// Largest closed-id message read at once (the node sends up to 1,024 ids).
const CLOSED_BUF: usize = 16 * 1024;
/// Control-message space for one descriptor.
const CMSG_SPACE: usize = 64;
/// Pause after a failed connect to the node's socket.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// The sessions passed over one link and not yet reported closed, each
/// with what tells its waiting session; `None` once the link is down.
type Open = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<()>>>>>;

/// A member's handover socket, connected on first use and again after the
/// node went away.
#[derive(Debug)]
pub(crate) struct NodeLink {
    path: PathBuf,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    link: Option<Arc<Link>>,
    /// After a failed connect, none is tried again before this instant:
    /// meanwhile clients are relayed without a word in the log each.
    retry_at: Option<Instant>,
}

/// One connection to the node. Its reader runs until the node closes it,
/// even when a newer link has taken its place: the node still reports the
/// sessions passed over it.
struct Link {
    socket: Arc<UnixSeqpacket>,
    open: Open,
    /// The node reads no more from it (a send failed as on a closed link).
    refused: AtomicBool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

/// Why a client was not passed; it can still be relayed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotPassed {
    /// The node's socket could not be reached lately (logged once per
    /// try, not per client).
    #[error("the node's handover socket is unreachable")]
    Unreachable,
    /// This client could not be sent.
    #[error("{0}")]
    Failed(io::Error),
}

impl NodeLink {
    pub(crate) fn new(path: PathBuf) -> NodeLink {
        NodeLink {
            path,
            state: tokio::sync::Mutex::default(),
        }
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Passes `socket` with `first_bytes` as session `id` from `peer`,
    /// within `limit` (a node that reads no more for a while, as one whose
    /// listener waits for room under `max_connections`, lets the socket's
    /// buffer fill). Returns what completes when the node reports the
    /// session closed, or the link to the node is lost, and the balancer's
    /// duplicate of the socket.
    pub(crate) async fn pass(
        &self,
        id: u64,
        peer: SocketAddr,
        first_bytes: &[u8],
        socket: BorrowedFd<'_>,
        limit: Duration,
    ) -> Result<(oneshot::Receiver<()>, OwnedFd), NotPassed> {
        let link = self.link().await?;
        // Only a TCP socket is passed (pingora's unix-socket streams are not).
        let family = rustix::net::getsockname(socket).map(|a| a.address_family());
        if !matches!(family, Ok(AddressFamily::INET | AddressFamily::INET6)) {
            return Err(NotPassed::Failed(io::Error::other(
                "the client's socket is not a TCP socket",
            )));
        }
        let duplicate = socket.try_clone_to_owned().map_err(NotPassed::Failed)?;
        let (closed_tx, closed) = oneshot::channel();
        match link.open.lock().as_mut() {
            Some(open) => open.insert(id, closed_tx),
            None => return Err(NotPassed::Unreachable),
        };
        let msg = encode_pass(id, peer, first_bytes);
        let mut cmsg = [0u8; CMSG_SPACE];
        let mut ancillary = AncillaryMessageWriter::new(&mut cmsg);
        let sent = match ancillary.add_fds(&[socket]) {
            Ok(()) => {
                let bufs = [IoSlice::new(&msg)];
                let send = link.socket.send_vectored_with_ancillary(&bufs, &mut ancillary);
                // A message is sent whole or not at all: on the deadline,
                // the node never got this one.
                tokio::time::timeout(limit, send)
                    .await
                    .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "the node took no client")))
            }
            Err(_) => Err(io::Error::other("no room for the descriptor")),
        };
        // A packet socket sends the whole message or nothing.
        sent.map(|_| (closed, duplicate))
            .map_err(|error| Self::failed(&link, id, error))
    }

    /// Forgets session `id`. A link the node has stopped reading from
    /// takes no more clients; its reader stays for the sessions passed
    /// before.
    fn failed(link: &Link, id: u64, error: io::Error) -> NotPassed {
        if let Some(open) = link.open.lock().as_mut() {
            open.remove(&id);
        }
        let closed = matches!(
            error.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
        );
        if closed {
            link.refused.store(true, Relaxed);
        }
        NotPassed::Failed(error)
    }

    /// Connects to the node's socket, if a process of this user (or root)
    /// listens there: clients' sockets go to nobody else.
    async fn connect(&self) -> io::Result<UnixSeqpacket> {
        let socket = UnixSeqpacket::connect(&self.path).await?;
        let uid = socket.peer_cred()?.uid();
        if !peer_allowed(uid, rustix::process::getuid().as_raw()) {
            let message = format!("the process listening there runs as uid {uid}, another user");
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, message));
        }
        Ok(socket)
    }

    /// The link, connected now if it is not (or no longer) up.
    async fn link(&self) -> Result<Arc<Link>, NotPassed> {
        let mut state = self.state.lock().await;
        let usable = |l: &&Arc<Link>| l.open.lock().is_some() && !l.refused.load(Relaxed);
        if let Some(link) = state.link.as_ref().filter(usable) {
            return Ok(Arc::clone(link));
        }
        state.link = None;
        if state.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(NotPassed::Unreachable);
        }
        let socket = match self.connect().await {
            Ok(socket) => Arc::new(socket),
            Err(error) => {
                warn!(
                    path = %self.path.display(),
                    %error,
                    "cannot use the node's handover socket; relaying its clients, next try in 1 s"
                );
                state.retry_at = Some(Instant::now() + RETRY_PAUSE);
                return Err(NotPassed::Unreachable);
            }
        };
        info!(path = %self.path.display(), "connected to the node's handover socket");
        let open: Open = Arc::new(Mutex::new(Some(HashMap::new())));
        tokio::spawn(read_closed(Arc::clone(&socket), Arc::clone(&open), self.path.clone()));
        let link = Arc::new(Link {
            socket,
            open,
            refused: AtomicBool::new(false),
        });
        state.link = Some(Arc::clone(&link));
        state.retry_at = None;
        Ok(link)
    }
}

/// Tells each passed session when the node reports it closed; when the
/// link goes down, tells them all.
async fn read_closed(socket: Arc<UnixSeqpacket>, open: Open, path: PathBuf) {
    let mut buf = vec![0u8; CLOSED_BUF];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) => {
                debug!(path = %path.display(), %error, "handover socket read failed");
                break;
            }
        };
        let ids = match decode_closed(&buf[..n]) {
            Ok(ids) => ids,
            Err(error) => {
                warn!(path = %path.display(), %error, "bad message from the node, link dropped");
                break;
            }
        };
        if let Some(open) = open.lock().as_mut() {
            for id in ids {
                if let Some(closed) = open.remove(&id) {
                    let _ = closed.send(());
                }
            }
        }
    }
    let lost = open.lock().take().map_or(0, |o| o.len());
    warn!(path = %path.display(), sessions = lost, "link to the node's handover socket lost");
}

/// The client's own socket, when the balancer's stream to the client is
/// that socket and nothing more (no TLS, nothing buffered above it).
pub(crate) trait PlainSocket {
    fn plain_socket(&self) -> Option<BorrowedFd<'_>>;
}

impl PlainSocket for pingora::protocols::Stream {
    fn plain_socket(&self) -> Option<BorrowedFd<'_>> {
        // The balancer's listeners read unbuffered (`L4BufferSettings::
        // unbuffered()`) and never peek, so every byte read from the
        // socket is in the balancer's hands.
        let l4 = (**self)
            .as_any()
            .downcast_ref::<pingora::protocols::l4::stream::Stream>()?;
        borrow_socket(l4)
    }
}

impl<S> PlainSocket for tokio_rustls::server::TlsStream<S> {
    fn plain_socket(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

/// pingora's stream owns its socket but offers only `AsRawFd`; `None` for
/// a stream without one (pingora's virtual sockets give -1).
#[allow(unsafe_code)]
fn borrow_socket(l4: &pingora::protocols::l4::stream::Stream) -> Option<BorrowedFd<'_>> {
    use std::os::fd::AsRawFd;
    let fd = l4.as_raw_fd();
    // SAFETY: a descriptor other than -1 is the socket `l4` owns and keeps
    // open for as long as it lives, and the borrow cannot outlive `l4`.
    (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
}
