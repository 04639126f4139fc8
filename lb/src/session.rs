//! A connection after its CONNECT: admission (connection caps, the rate
//! class's connect rate, a backend that accepts), then the PROXY header and
//! the CONNECT replayed to the backend, then the relay; or, for a backend
//! listener in this process, the client handed over to it. A client
//! refused here gets a CONNACK saying why, in its protocol version.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::BytesMut;
use skerry_codec::{Connect, ProtocolVersion};
use skerry_config::Balance;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tracing::{debug, info, warn, Span};

use crate::app::{Conn, ListenerApp};
use crate::bandwidth::Throttle;
use crate::classes::Identity;
use crate::handoff::{ClientStream, Handoff, Held, LocalBackends, LocalPlace};
use crate::limits::CapGuard;
use crate::metrics::{Outcome, Refusal};
use crate::pass::{NodeLink, NotPassed, PlainSocket};
use crate::pool::{Backend, Lease};
use crate::splice::{self, Relay, COPY_BUF_MAX};
use crate::tls::TlsInfo;
use crate::{mqtt, proxy_out};

/// Where an admitted client goes.
enum Link {
    /// A backend connection to relay to.
    Relay(TcpStream),
    /// Room at a broker listener in this process.
    Local(Box<dyn LocalPlace>),
    /// The client's socket, passed to a node on this host: what completes
    /// when the node reports the session closed, and the balancer's
    /// duplicate of the socket.
    Passed(oneshot::Receiver<()>, OwnedFd),
}

/// A plain client whose socket may be passed to a node on this host.
struct Passing<'a> {
    socket: BorrowedFd<'a>,
    /// The PROXY header and the CONNECT: what the node reads first.
    first_bytes: &'a [u8],
    id: u64,
    peer: SocketAddr,
}

/// A client allowed through, with its backend.
struct Admitted {
    link: Link,
    lease: Lease,
    cap: CapGuard,
    to_backend: Option<Throttle>,
    to_client: Option<Throttle>,
    class: Option<Arc<str>>,
}

/// The bytes a pool hashes on: the client id, or the source IP when the
/// pool says so or the client id is empty (the broker will assign one).
fn hash_key(balance: Balance, client_id: &str, ip: IpAddr) -> Vec<u8> {
    if balance == Balance::ClientId && !client_id.is_empty() {
        client_id.as_bytes().to_vec()
    } else {
        ip.to_canonical().to_string().into_bytes()
    }
}

impl ListenerApp {
    pub(crate) async fn session<S>(
        &self,
        mut client: S,
        buf: BytesMut,
        connect: Connect,
        tls: Option<TlsInfo>,
        conn: Conn,
    ) -> Outcome
    where
        S: AsyncRead + AsyncWrite + PlainSocket + Unpin + Send + 'static,
    {
        let version = connect.protocol;
        // What the backend reads first: the PROXY header the pool sends,
        // then the CONNECT and whatever came after it.
        let mut first_bytes = BytesMut::from(
            &proxy_out::header(
                self.pool.proxy,
                self.pool.compat,
                self.pool.send_client_cert,
                conn.addrs,
                tls.as_ref(),
            )[..],
        );
        let replayed = buf.len() as u64;
        first_bytes.extend_from_slice(&buf);
        drop(buf);
        let passing = client.plain_socket().map(|socket| Passing {
            socket,
            first_bytes: &first_bytes,
            id: conn.id,
            peer: conn.addrs.client,
        });
        let admitted = match self.admit(&connect, tls.as_ref(), &conn, passing).await {
            Ok(a) => a,
            Err(reason) => return self.refuse(&mut client, version, reason).await,
        };
        drop(connect);
        let mut backend = match admitted.link {
            Link::Relay(backend) => backend,
            Link::Local(place) => {
                let ending = splice::ended_outside(
                    admitted.lease.evicted.clone(),
                    conn.shutdown.clone(),
                    self.core.drain_delay(conn.id),
                );
                let held = Held {
                    lease: admitted.lease,
                    cap: admitted.cap,
                    open: self.core.metrics.open(),
                };
                place.hand_over(Handoff {
                    stream: ClientStream::new(client, tls.is_none(), ending, held),
                    first_bytes,
                    peer: conn.addrs.client,
                });
                self.core.metrics.handed_off.fetch_add(1, Relaxed);
                debug!("session handed to the node");
                return Outcome::Proxied;
            }
            Link::Passed(closed, socket) => {
                // The node has the socket; this stream's registration and
                // descriptor go, the duplicate stays.
                drop(client);
                let ending = splice::ended_outside(
                    admitted.lease.evicted.clone(),
                    conn.shutdown.clone(),
                    self.core.drain_delay(conn.id),
                );
                self.core.metrics.passed.fetch_add(1, Relaxed);
                debug!("session passed to the node");
                passed(closed, socket, ending).await;
                return Outcome::Proxied;
            }
        };
        if let Err(error) = send_first_bytes(&mut backend, &first_bytes).await {
            warn!(%error, "backend closed before taking the CONNECT");
            return self.refuse(&mut client, version, Refusal::BackendUnreachable).await;
        }
        drop(first_bytes);
        let m = &self.core.metrics;
        m.bytes_to_backends.fetch_add(replayed, Relaxed);
        debug!(class = admitted.class.as_deref().unwrap_or(""), "session started");
        let relay = Relay {
            to_backend: admitted.to_backend,
            to_client: admitted.to_client,
            metrics: m,
            shutdown: conn.shutdown.clone(),
            evicted: admitted.lease.evicted.clone(),
            drain_delay: self.core.drain_delay(conn.id),
        };
        let end = splice::relay(client, backend, relay).await;
        match &end {
            splice::End::Failed(error) => info!(end = end.as_str(), %error, "session ended"),
            _ => info!(end = end.as_str(), "session ended"),
        }
        drop(admitted.lease);
        Outcome::Proxied
    }

    /// Passes the client's socket to `node` over its handover socket; what
    /// completes when the session closes there, and the balancer's
    /// duplicate of the socket. `None`: not passed, to be relayed.
    async fn pass(&self, node: &Backend, link: &NodeLink, p: &Passing<'_>) -> Option<(oneshot::Receiver<()>, OwnedFd)> {
        let limit = self.pool.connect_timeout;
        match link.pass(p.id, p.peer, p.first_bytes, p.socket, limit).await {
            Ok(passed) => Some(passed),
            Err(NotPassed::Unreachable) => None,
            Err(error) => {
                warn!(backend = %node.name, %error, "passing the client to the node failed, relaying it");
                None
            }
        }
    }

    /// Caps first (they cost nothing to give back), then the class's
    /// connect rate, then a backend. `passing`: the client's socket, when
    /// it could be passed to a node on this host.
    async fn admit(
        &self,
        connect: &Connect,
        tls: Option<&TlsInfo>,
        conn: &Conn,
        passing: Option<Passing<'_>>,
    ) -> Result<Admitted, Refusal> {
        if *conn.shutdown.borrow() {
            return Err(Refusal::ShuttingDown);
        }
        let ip = conn.addrs.client.ip();
        let cap = self.core.caps.acquire(ip)?;
        let who = Identity {
            cn: tls.and_then(|t| t.cn.as_deref()),
            username: connect.username.as_deref(),
            client_id: &connect.client_id,
        };
        let classes = Arc::clone(&self.core.classes.read());
        let class = classes.find(&who);
        if class.is_some_and(|c| !c.admit()) {
            return Err(Refusal::ClassConnectRate);
        }
        let key = hash_key(self.pool.balance, &connect.client_id, ip);
        let to_backend = class
            .and_then(|c| c.bandwidth_in)
            .map(|bw| Throttle::new(bw, COPY_BUF_MAX));
        let to_client = class
            .and_then(|c| c.bandwidth_out)
            .map(|bw| Throttle::new(bw, COPY_BUF_MAX));
        // Bandwidth limits live in the relay.
        let unthrottled = to_backend.is_none() && to_client.is_none();
        let local = self.core.local.as_deref().filter(|_| unthrottled);
        let passing = passing.filter(|_| unthrottled);
        let (link, lease) = self.connect_backend(&key, local, passing).await?;
        Ok(Admitted {
            link,
            lease,
            cap,
            to_backend,
            to_client,
            class: class.map(|c| c.name.clone()),
        })
    }

    /// Tries the pool's candidates in order until one takes the client: a
    /// `local` listener with room, a node on this host that takes the
    /// client's socket (`passing`), or a backend that connects.
    async fn connect_backend(
        &self,
        key: &[u8],
        local: Option<&dyn LocalBackends>,
        passing: Option<Passing<'_>>,
    ) -> Result<(Link, Lease), Refusal> {
        let candidates = self.pool.candidates(key);
        if candidates.is_empty() {
            return Err(Refusal::NoBackend);
        }
        for backend in candidates {
            if let Some(place) = local.and_then(|l| l.reserve(&backend.address)) {
                Span::current().record("backend", &*backend.name);
                return Ok((Link::Local(place), backend.lease()));
            }
            if let (Some(p), Some(link)) = (&passing, &backend.handover) {
                if let Some((closed, socket)) = self.pass(&backend, link, p).await {
                    Span::current().record("backend", &*backend.name);
                    return Ok((Link::Passed(closed, socket), backend.lease()));
                }
            }
            match backend.connect_within(self.pool.connect_timeout).await {
                Ok(stream) => {
                    Span::current().record("backend", &*backend.name);
                    return Ok((Link::Relay(stream), backend.lease()));
                }
                Err(error) => {
                    warn!(backend = %backend.name, address = %backend.address, %error, "backend connect failed")
                }
            }
        }
        Err(Refusal::BackendUnreachable)
    }

    /// Answers the CONNECT with a refusing CONNACK and counts it.
    async fn refuse<S>(&self, client: &mut S, version: ProtocolVersion, reason: Refusal) -> Outcome
    where
        S: AsyncWrite + Unpin,
    {
        info!(reason = reason.as_str(), "client refused");
        self.core.metrics.refused(reason);
        mqtt::refuse(client, version, reason).await;
        Outcome::Refused
    }
}

/// The PROXY header and the client's first bytes, in one write.
async fn send_first_bytes(backend: &mut TcpStream, first_bytes: &[u8]) -> std::io::Result<()> {
    backend.write_all(first_bytes).await?;
    backend.flush().await
}

/// Holds a passed session's place (the caller's guards) until the node
/// reports it closed. Ending it here (`ending`: eviction, drain) shuts
/// its socket down both ways: the node reads the end of the stream and
/// closes it.
async fn passed(mut closed: oneshot::Receiver<()>, socket: OwnedFd, ending: impl Future<Output = splice::End>) {
    tokio::select! {
        _ = &mut closed => info!(end = "closed", "passed session ended"),
        end = ending => {
            info!(end = end.as_str(), "passed session ended by the balancer");
            if let Err(error) = rustix::net::shutdown(&socket, rustix::net::Shutdown::Both) {
                debug!(%error, "passed socket already closed");
            }
            let _ = closed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_client_id_hashes_the_source_ip() {
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(hash_key(Balance::ClientId, "dev-1", ip), b"dev-1");
        assert_eq!(hash_key(Balance::ClientId, "", ip), b"10.0.0.7");
        assert_eq!(hash_key(Balance::SourceIp, "dev-1", ip), b"10.0.0.7");
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(hash_key(Balance::SourceIp, "", mapped), b"10.0.0.7");
    }
}
