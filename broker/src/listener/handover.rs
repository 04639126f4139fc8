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
//! is made `0600`, and the peer's credentials are checked as well. A
//! balancer that sends what cannot be read is cut off: the node reads no
//! more from it (its sends fail) and closes the link once the sessions it
//! passed before are over. The balancer is trusted as the one in this
//! process is: the addresses and the PROXY header it sends are believed.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// Largest pass message taken: the listener's largest packet (a
    /// CONNECT beyond it is refused anyway) and room for the rest.
    max_message: usize,
    /// How long a passed client may wait for a place under the
    /// listener's `max_connections`: its handshake timeout.
    wait: Duration,
}

/// Where the passed clients go: the listener's queue of handed-over
/// connections, its connection limit, its address.
pub(super) struct Destination {
    pub(super) listener: Arc<str>,
    pub(super) queue: mpsc::Sender<HandedOff>,
    pub(super) limit: Arc<Semaphore>,
    pub(super) local: SocketAddr,
}

/// Told to the balancer when a passed connection closes: dropped with the
/// connection's [`Permit`]. Until then the balancer keeps a duplicate of
/// the socket (to shut it down when it ends the session), so a socket the
/// node drops without a `shutdown` sends its FIN once the balancer has
/// read this report.
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
    /// Binds `path` for the listener `cfg`. A stale socket file that
    /// nobody listens on (left by a node that did not stop cleanly) is
    /// replaced; a live socket, or a file that is not a socket, is an
    /// error.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub(super) fn bind(path: &Path, cfg: &skerry_config::Listener) -> io::Result<HandoverSocket> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is there",
                ));
            }
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
            // At most 256 MiB (the configuration's limit on packets).
            max_message: usize::try_from(cfg.max_packet_size.bytes())
                .map_or(usize::MAX, |n| PASS_HEADER_LEN + n + PASS_SLACK),
            wait: cfg.handshake_timeout.get(),
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
                        balancers.spawn(take_clients(socket, Arc::clone(&to), self.max_message, self.wait));
                    }
                    Err(error) => {
                        warn!(listener = %to.listener, %error, "handover socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
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

/// Whether a process listens on the socket file at `path`. The probe does
/// not block: a listener whose backlog is full (`EAGAIN`) is live too.
fn listened_on(path: &Path) -> io::Result<bool> {
    use rustix::net::{connect, socket_with, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let probe = socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, flags, None)?;
    match connect(&probe, &SocketAddrUnix::new(path)?) {
        Ok(()) | Err(rustix::io::Errno::AGAIN) => Ok(true),
        Err(rustix::io::Errno::CONNREFUSED) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// One balancer's clients, until it disconnects or sends what cannot be
/// read (it is then cut off: the sessions it still counts are the ones it
/// passed before).
async fn take_clients(socket: UnixSeqpacket, to: Arc<Destination>, max_message: usize, wait: Duration) {
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
    let mut buf = vec![0u8; max_message + 1];
    loop {
        let (len, fd) = match receive(&socket, &mut buf).await {
            Ok(Some(received)) => received,
            Ok(None) => break,
            Err(error) => {
                warn!(listener = %to.listener, %error, "handover socket read failed");
                break;
            }
        };
        // A message longer than the buffer arrives cut to its length: the
        // fixed part is whole, the client's bytes are not.
        let pass = match decode_pass(&buf[..len]) {
            Ok(pass) => pass,
            Err(error) => {
                warn!(listener = %to.listener, %error, "bad handover message, balancer cut off");
                break;
            }
        };
        // Whatever becomes of the client from here, dropping this tells
        // the balancer its session is over.
        let closing = Closing {
            id: pass.id,
            report: report.clone(),
        };
        if len > max_message {
            warn!(listener = %to.listener, len, "passed client's first bytes too large, closed");
            continue;
        }
        let Some(stream) = fd.and_then(|fd| tcp_stream(fd, &to.listener)) else {
            continue;
        };
        // At the cap, a passed client waits for a place as one in the
        // accept backlog does, for as long as its handshake may take.
        let place = match tokio::time::timeout(wait, Arc::clone(&to.limit).acquire_owned()).await {
            Ok(Ok(place)) => place,
            Ok(Err(_)) => break,
            Err(_) => {
                debug!(listener = %to.listener, peer = %pass.peer, "no room for a passed client in time, closed");
                continue;
            }
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
    // No more clients from this balancer: its next sends fail, and the
    // link closes once every session it passed here has been reported.
    if let Err(error) = socket.shutdown(std::net::Shutdown::Read) {
        debug!(listener = %to.listener, %error, "handover link already closed");
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
