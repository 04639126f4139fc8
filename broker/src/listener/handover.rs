//! Clients passed by a `skerry lb` in another process on this host: the
//! listener's `handover_socket`, a Unix `SOCK_SEQPACKET` socket where the
//! balancer sends each client's TCP socket (`SCM_RIGHTS`) with the bytes
//! it has read from it and would have sent first (the PROXY header, the
//! CONNECT). The connection then goes through the listener's steps as if
//! accepted on its socket, and the node reads and writes the client's
//! socket itself: no relay, no second socket pair. When it closes, the
//! balancer is told (its id, on the same socket), so that its connection
//! caps and backend counts let go of it. Message format:
//! [`skerry_codec::handover`].
//!
//! Only the user the node runs as, and root, may connect: the socket file
//! is made `0600`, and the peer's credentials are checked as well. The
//! balancer is trusted as the one in this process is: the addresses and
//! the PROXY header it sends are believed.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use skerry_codec::handover::{decode_pass, encode_closed, peer_allowed, PASS_HEADER_LEN};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_seqpacket::ancillary::OwnedAncillaryMessage;
use tokio_seqpacket::{UnixSeqpacket, UnixSeqpacketListener};
use tracing::{debug, info, warn};

use super::{HandedOff, Permit};

/// Room past the largest packet for the PROXY header before the CONNECT
/// and whatever the balancer read after it.
const PASS_SLACK: usize = 64 * 1024;
/// Ids reported closed in one message.
const CLOSED_BATCH: usize = 1024;
/// Enough control-message space for a few descriptors; one is expected.
const CMSG_SPACE: usize = 128;

/// A bound handover socket. Its file is removed when it is dropped.
pub(super) struct HandoverSocket {
    socket: UnixSeqpacketListener,
    path: PathBuf,
}

/// Where the passed clients go: the listener's queue of handed-over
/// connections, its connection limit, its address.
pub(super) struct Destination {
    pub(super) listener: Arc<str>,
    pub(super) queue: mpsc::Sender<HandedOff>,
    pub(super) limit: Arc<Semaphore>,
    pub(super) local: SocketAddr,
    /// Largest pass message taken; a larger one is refused.
    pub(super) max_message: usize,
}

impl Destination {
    pub(super) fn max_message(max_packet_size: u32) -> usize {
        PASS_HEADER_LEN + max_packet_size as usize + PASS_SLACK
    }
}

/// Told to the balancer when a passed connection closes: dropped with the
/// connection's [`Permit`].
pub(super) struct Closing {
    id: u64,
    report: mpsc::UnboundedSender<u64>,
}

impl Drop for Closing {
    fn drop(&mut self) {
        // The balancer may be gone already; then nobody is counting.
        let _ = self.report.send(self.id);
    }
}

impl HandoverSocket {
    /// Binds `path`, replacing a stale socket file that nobody listens on
    /// (one left by a node that did not stop cleanly); a live one is an
    /// error.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub(super) fn bind(path: &Path) -> io::Result<HandoverSocket> {
        if path.exists() {
            if listened_on(path)? {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another process listens on this socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        let socket = UnixSeqpacketListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(HandoverSocket {
            socket,
            path: path.to_owned(),
        })
    }

    /// Takes balancers until dropped (with every balancer's task).
    pub(super) async fn run(mut self, to: Destination) {
        let to = Arc::new(to);
        info!(listener = %to.listener, path = %self.path.display(), "taking clients passed by a balancer");
        let mut balancers = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.socket.accept() => match accepted {
                    Ok(socket) => {
                        balancers.spawn(take_clients(socket, Arc::clone(&to)));
                    }
                    Err(error) => {
                        warn!(listener = %to.listener, %error, "handover socket accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                Some(_) = balancers.join_next() => {}
            }
        }
    }
}

impl Drop for HandoverSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a process listens on the socket file at `path` (connecting to a
/// Unix socket completes at once, or is refused, without blocking).
fn listened_on(path: &Path) -> io::Result<bool> {
    use rustix::net::{connect, socket, AddressFamily, SocketAddrUnix, SocketType};
    let probe = socket(AddressFamily::UNIX, SocketType::SEQPACKET, None)?;
    match connect(&probe, &SocketAddrUnix::new(path)?) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::CONNREFUSED) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// One balancer's clients, until it disconnects or sends what cannot be
/// read (it is then cut off: the sessions it still counts are the ones it
/// passed before).
async fn take_clients(socket: UnixSeqpacket, to: Arc<Destination>) {
    match socket.peer_cred() {
        Ok(cred) if peer_allowed(cred.uid(), rustix::process::getuid().as_raw()) => {}
        Ok(cred) => {
            warn!(listener = %to.listener, uid = cred.uid(), "handover from another user refused");
            return;
        }
        Err(error) => {
            warn!(listener = %to.listener, %error, "handover peer unknown, refused");
            return;
        }
    }
    info!(listener = %to.listener, "balancer connected to the handover socket");
    let socket = Arc::new(socket);
    let (report, closed) = mpsc::unbounded_channel();
    tokio::spawn(report_closed(Arc::clone(&socket), closed));
    let mut buf = vec![0u8; to.max_message + 1];
    loop {
        // As the accept loop: at the cap, passed clients wait in the
        // balancer's socket buffer, not here.
        let Ok(place) = Arc::clone(&to.limit).acquire_owned().await else {
            return;
        };
        let (len, fd) = match receive(&socket, &mut buf).await {
            Ok(Some(received)) => received,
            Ok(None) => break,
            Err(error) => {
                warn!(listener = %to.listener, %error, "handover socket read failed");
                break;
            }
        };
        if len > to.max_message {
            warn!(listener = %to.listener, len, "handover message too large, balancer cut off");
            break;
        }
        let pass = match decode_pass(&buf[..len]) {
            Ok(pass) => pass,
            Err(error) => {
                warn!(listener = %to.listener, %error, "bad handover message, balancer cut off");
                break;
            }
        };
        let closing = Closing {
            id: pass.id,
            report: report.clone(),
        };
        let Some(stream) = fd.and_then(|fd| tcp_stream(fd, &to.listener)) else {
            // `closing` tells the balancer the session is over.
            continue;
        };
        let handed = HandedOff {
            stream: Box::new(stream),
            first_bytes: BytesMut::from(pass.first_bytes),
            peer: pass.peer,
            local: to.local,
            permit: Permit::passed(place, closing),
        };
        if to.queue.send(handed).await.is_err() {
            // The listener stopped; dropping the connection reports it.
            break;
        }
    }
    info!(listener = %to.listener, "balancer left the handover socket");
}

/// The next message and the descriptor that came with it; `None` when
/// the balancer has closed its end.
async fn receive(socket: &UnixSeqpacket, buf: &mut [u8]) -> io::Result<Option<(usize, Option<OwnedFd>)>> {
    let mut cmsg = [0u8; CMSG_SPACE];
    let (len, ancillary) = socket
        .recv_vectored_with_ancillary(&mut [IoSliceMut::new(buf)], &mut cmsg)
        .await?;
    let mut fds = Vec::new();
    for message in ancillary.into_messages() {
        if let OwnedAncillaryMessage::FileDescriptors(list) = message {
            fds.extend(list);
        }
    }
    if len == 0 && fds.is_empty() {
        return Ok(None);
    }
    // Any descriptor past the first is closed here.
    Ok(Some((len, fds.into_iter().next())))
}

/// The passed descriptor as a Tokio socket, if it is a connected TCP one.
fn tcp_stream(fd: OwnedFd, listener: &str) -> Option<TcpStream> {
    let std = std::net::TcpStream::from(fd);
    let ready = std
        .peer_addr()
        .and_then(|_| std.set_nonblocking(true))
        .and_then(|()| TcpStream::from_std(std));
    match ready {
        Ok(stream) => Some(stream),
        Err(error) => {
            debug!(listener, %error, "passed descriptor is not a connected TCP socket");
            None
        }
    }
}

/// Reports closed sessions to the balancer, as many per message as have
/// closed meanwhile, until every [`Closing`] of it is gone.
async fn report_closed(socket: Arc<UnixSeqpacket>, mut closed: mpsc::UnboundedReceiver<u64>) {
    let mut ids = Vec::with_capacity(CLOSED_BATCH);
    while closed.recv_many(&mut ids, CLOSED_BATCH).await > 0 {
        if let Err(error) = socket.send(&encode_closed(&ids)).await {
            debug!(%error, "balancer gone, closed sessions not reported");
            return;
        }
        ids.clear();
    }
}
