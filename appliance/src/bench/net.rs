//! One MQTT client connection of the generator, on the project's codec:
//! where to connect ([`Target`]), the handshake, and buffered reads and
//! writes. Callers queue any number of packets with [`Client::queue`] or
//! straight into [`Client::write_buf`] and send them with one
//! [`Client::flush`], so a batch costs one write.

use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroU16;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use skerry_codec::{
    encode, ConnAck, Connect, Decoder, Disconnect, Packet, ProtocolVersion, QoS, ReasonCode, Subscribe,
    SubscriptionOptions, MAX_PACKET_SIZE,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::args::TargetArgs;
use super::tls::Tls;

/// A byte stream the client runs over: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// First read size: small, so that thousands of idle connections cost
/// little memory.
const MIN_READ: usize = 4 * 1024;
/// Largest read size, reached by connections that fill every read.
const MAX_READ: usize = 64 * 1024;
/// How long closing a connection may take before it is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where and how every connection of a run connects.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The broker's address, resolved once.
    pub(crate) addr: SocketAddr,
    /// Protocol version of every connection.
    pub(crate) version: ProtocolVersion,
    username: Option<String>,
    password: Option<Bytes>,
    /// Keep alive in CONNECT.
    pub(crate) keep_alive: Duration,
    connect_timeout: Duration,
    tls: Option<Tls>,
}

impl Target {
    /// Resolves the host and reads the TLS files.
    pub(crate) fn new(args: &TargetArgs) -> anyhow::Result<Self> {
        let addr = (args.host.as_str(), args.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", args.host))?
            .next()
            .with_context(|| format!("{} has no address", args.host))?;
        let tls = match &args.cafile {
            None => None,
            Some(ca) => {
                let client = args.cert.as_deref().zip(args.key.as_deref());
                let name = args.tls_server_name.as_deref().unwrap_or(&args.host);
                Some(Tls::new(ca, client, name)?)
            }
        };
        Ok(Self {
            addr,
            version: args.mqtt_version,
            username: args.username.clone(),
            password: args.password.clone().map(Bytes::from),
            keep_alive: args.keep_alive,
            connect_timeout: args.connect_timeout,
            tls,
        })
    }

    /// The version as written on the command line.
    pub(crate) fn version_name(&self) -> &'static str {
        if self.version.is_v5() {
            "5"
        } else {
            "3.1.1"
        }
    }
}

/// A connected MQTT client.
pub(crate) struct Client {
    io: Box<dyn Io>,
    rbuf: BytesMut,
    /// Bytes the next read asks for; doubles while reads come back full.
    read_size: usize,
    wbuf: BytesMut,
    decoder: Decoder,
    version: ProtocolVersion,
    /// Receive Maximum the broker announced in CONNACK (MQTT 5 only).
    pub(crate) server_receive_maximum: Option<NonZeroU16>,
}

impl Client {
    /// Connects, sends CONNECT (clean start) and waits for a successful
    /// CONNACK, all within the target's connect timeout.
    pub(crate) async fn connect(target: &Target, client_id: &str) -> anyhow::Result<Self> {
        tokio::time::timeout(target.connect_timeout, Self::handshake(target, client_id))
            .await
            .map_err(|_| anyhow::anyhow!("no CONNACK within {:?}", target.connect_timeout))?
    }

    async fn handshake(target: &Target, client_id: &str) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(target.addr).await?;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match &target.tls {
            None => Box::new(tcp),
            Some(tls) => Box::new(tls.connector.connect(tls.server_name.clone(), tcp).await?),
        };
        let mut client = Self {
            io,
            rbuf: BytesMut::new(),
            read_size: MIN_READ,
            wbuf: BytesMut::new(),
            decoder: Decoder::with_version(target.version, MAX_PACKET_SIZE),
            version: target.version,
            server_receive_maximum: None,
        };
        let mut connect = Connect::new(target.version, client_id);
        connect.keep_alive = u16::try_from(target.keep_alive.as_secs()).unwrap_or(u16::MAX);
        connect.username.clone_from(&target.username);
        connect.password.clone_from(&target.password);
        // Subscribers acknowledge at once, so let the broker send all it can.
        connect.properties.receive_maximum = target.version.is_v5().then_some(NonZeroU16::MAX);
        client.queue(&connect.into())?;
        client.flush().await?;
        let connack = client
            .read_until(|p| if let Packet::ConnAck(c) = p { Some(c) } else { None })
            .await?;
        client.accept_connack(&connack)?;
        Ok(client)
    }

    fn accept_connack(&mut self, connack: &ConnAck) -> anyhow::Result<()> {
        if connack.reason != ReasonCode::Success {
            bail!("broker refused the connection: {}", connack.reason);
        }
        self.server_receive_maximum = connack.properties.receive_maximum;
        Ok(())
    }

    /// Subscribes to `filter` and waits for a SUBACK granting it.
    pub(crate) async fn subscribe(&mut self, filter: &str, qos: QoS) -> anyhow::Result<()> {
        let subscribe = Subscribe {
            packet_id: NonZeroU16::MIN,
            filters: vec![(filter.to_owned(), SubscriptionOptions::new(qos))],
            properties: Default::default(),
        };
        self.queue(&subscribe.into())?;
        self.flush().await?;
        let suback = self
            .read_until(|p| if let Packet::SubAck(s) = p { Some(s) } else { None })
            .await?;
        match suback.return_codes.first() {
            Some(code) if code.granted_qos().is_some() => Ok(()),
            Some(code) => bail!("subscription to {filter} refused: {code}"),
            None => bail!("SUBACK for {filter} has no return code"),
        }
    }

    /// Reads packets until `pick` takes one; anything else is dropped.
    async fn read_until<T>(&mut self, mut pick: impl FnMut(Packet) -> Option<T>) -> anyhow::Result<T> {
        loop {
            while let Some(packet) = self.next_packet()? {
                if let Some(t) = pick(packet) {
                    return Ok(t);
                }
            }
            self.fill().await?;
        }
    }

    /// Reads what the socket has into the read buffer (cancel safe); an
    /// error when the broker closed the connection.
    pub(crate) async fn fill(&mut self) -> anyhow::Result<()> {
        if self.rbuf.capacity() - self.rbuf.len() < self.read_size / 4 {
            self.rbuf.reserve(self.read_size);
        }
        let spare = self.rbuf.capacity() - self.rbuf.len();
        match self.io.read_buf(&mut self.rbuf).await? {
            0 => bail!("connection closed by the broker"),
            n if n == spare && self.read_size < MAX_READ => self.read_size *= 2,
            _ => {}
        }
        Ok(())
    }

    /// The next whole packet in the read buffer. A DISCONNECT from the
    /// broker is an error that carries its reason.
    pub(crate) fn next_packet(&mut self) -> anyhow::Result<Option<Packet>> {
        match self
            .decoder
            .decode(&mut self.rbuf)
            .context("bad packet from the broker")?
        {
            Some(Packet::Disconnect(d)) => bail!("broker disconnected the client: {}", d.reason),
            other => Ok(other),
        }
    }

    /// Encodes `packet` into the write buffer.
    pub(crate) fn queue(&mut self, packet: &Packet) -> anyhow::Result<()> {
        encode(packet, self.version, &mut self.wbuf).context("cannot encode packet")
    }

    /// The write buffer, for callers that encode packets themselves.
    pub(crate) fn write_buf(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Sends DISCONNECT and closes; errors are of no interest any more.
    pub(crate) async fn close(mut self) {
        let bye = async {
            self.wbuf.clear();
            self.queue(&Disconnect::default().into())?;
            self.flush().await?;
            self.io.shutdown().await?;
            anyhow::Ok(())
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, bye).await;
    }
}

/// A timer for keep-alive pings at half the keep alive.
pub(crate) fn ping_interval(keep_alive: Duration) -> tokio::time::Interval {
    let period = (keep_alive / 2).max(Duration::from_millis(500));
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}
