//! PROXY v1/v2 headers from a balancer in front of this one (a cloud L4
//! load balancer), accepted only from the listener's `trusted` networks.
//! The header is read before TLS, with a size cap; bytes read past it
//! belong to the client and are handed on.

use std::net::SocketAddr;

use bytes::BytesMut;
use ipnet::IpNet;
use ppp::v1::{self, Addresses as V1Addresses};
use ppp::v2::{self, Addresses as V2Addresses, Command};
use ppp::PartialResult;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest header read. A v1 header is at most 107 bytes; a v2 header may
/// declare 64 KiB of TLVs, far more than any balancer sends.
const MAX_HEADER: usize = 4096;
const V1_SIGNATURE: &[u8] = b"PROXY ";
const V1_MAX: usize = 107;
const READ_CHUNK: usize = 256;

/// The addresses a PROXY header reports; `None` keeps the socket's own
/// (v2 `LOCAL`, v1 `UNKNOWN`, non-IP families).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reported {
    pub(crate) client: Option<SocketAddr>,
    pub(crate) local: Option<SocketAddr>,
}

/// Why no usable header was read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyInError {
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
    #[error("PROXY header longer than {0} bytes")]
    TooLong(usize),
    #[error("connection closed inside the PROXY header")]
    Eof,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// Whether `peer` may send a PROXY header.
pub(crate) fn is_trusted(trusted: &[IpNet], peer: SocketAddr) -> bool {
    let ip = peer.ip().to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// Reads one header; returns what it reports and the bytes read past it.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(Reported, BytesMut), ProxyInError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if let Some((reported, len)) = parse(&buf)? {
            let rest = buf.split_off(len);
            return Ok((reported, rest));
        }
        if buf.len() >= MAX_HEADER {
            return Err(ProxyInError::TooLong(MAX_HEADER));
        }
        buf.reserve(READ_CHUNK);
        let mut limited = (&mut *stream).take((MAX_HEADER - buf.len()) as u64);
        if limited.read_buf(&mut buf).await? == 0 {
            return Err(ProxyInError::Eof);
        }
    }
}

/// `Ok(None)` while the header is incomplete.
fn parse(buf: &[u8]) -> Result<Option<(Reported, usize)>, ProxyInError> {
    let n = buf.len().min(V1_SIGNATURE.len());
    if buf[..n] == V1_SIGNATURE[..n] {
        parse_v1(buf)
    } else {
        parse_v2(buf)
    }
}

/// ppp judges a v1 line cut after its last space as an invalid port, so a
/// v1 header is only parsed once its CRLF is there.
fn parse_v1(buf: &[u8]) -> Result<Option<(Reported, usize)>, ProxyInError> {
    let searched = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = searched.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX {
            return Err(ProxyInError::TooLong(V1_MAX));
        }
        return Ok(None);
    };
    let len = end + 2;
    let header = v1::Header::try_from(&buf[..len]).map_err(|e| ProxyInError::Invalid(e.to_string()))?;
    let reported = match header.addresses {
        V1Addresses::Tcp4(a) => Reported {
            client: Some(SocketAddr::from((a.source_address, a.source_port))),
            local: Some(SocketAddr::from((a.destination_address, a.destination_port))),
        },
        V1Addresses::Tcp6(a) => Reported {
            client: Some(SocketAddr::from((a.source_address, a.source_port))),
            local: Some(SocketAddr::from((a.destination_address, a.destination_port))),
        },
        V1Addresses::Unknown => Reported::default(),
    };
    Ok(Some((reported, len)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Reported, usize)>, ProxyInError> {
    let header = match v2::Header::try_from(buf) {
        Ok(header) => header,
        Err(e) if e.is_incomplete() => return Ok(None),
        Err(e) => return Err(ProxyInError::Invalid(e.to_string())),
    };
    if header.command == Command::Local {
        return Ok(Some((Reported::default(), header.len())));
    }
    let reported = match header.addresses {
        V2Addresses::IPv4(a) => Reported {
            client: Some(SocketAddr::from((a.source_address, a.source_port))),
            local: Some(SocketAddr::from((a.destination_address, a.destination_port))),
        },
        V2Addresses::IPv6(a) => Reported {
            client: Some(SocketAddr::from((a.source_address, a.source_port))),
            local: Some(SocketAddr::from((a.destination_address, a.destination_port))),
        },
        V2Addresses::Unspecified | V2Addresses::Unix(_) => Reported::default(),
    };
    Ok(Some((reported, header.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn v1_byte_by_byte_keeps_the_rest() {
        let input = b"PROXY TCP4 10.1.2.3 10.0.0.1 4000 1883\r\n\x10\x00";
        for split in 1..input.len() {
            let (a, b) = input.split_at(split);
            let mut reader = tokio_test_reader(a, b);
            let (rep, rest) = read_header(&mut reader).await.unwrap();
            assert_eq!(rep.client, Some("10.1.2.3:4000".parse().unwrap()), "split {split}");
            assert_eq!(rep.local, Some("10.0.0.1:1883".parse().unwrap()));
            let mut all = rest.to_vec();
            reader.read_to_end(&mut all).await.unwrap();
            assert_eq!(all, b"\x10\x00");
        }
    }

    #[tokio::test]
    async fn v2_header_and_local() {
        let src: SocketAddr = "[2001:db8::5]:4000".parse().unwrap();
        let dst: SocketAddr = "[2001:db8::1]:1883".parse().unwrap();
        let mut h = v2::Builder::with_addresses(v2::Version::Two | Command::Proxy, v2::Protocol::Stream, (src, dst))
            .build()
            .unwrap();
        h.push(0x10);
        let (rep, rest) = read_header(&mut &h[..]).await.unwrap();
        assert_eq!((rep.client, rep.local), (Some(src), Some(dst)));
        assert_eq!(&rest[..], &[0x10]);
        let local = crate::proxy_out::v2_local();
        assert_eq!(read_header(&mut &local[..]).await.unwrap().0, Reported::default());
    }

    #[tokio::test]
    async fn garbage_and_truncation_fail() {
        assert!(matches!(
            read_header(&mut &b"GET / HTTP/1.1\r\n"[..]).await,
            Err(ProxyInError::Invalid(_))
        ));
        assert!(matches!(
            read_header(&mut &b"PROXY TCP4 1.2"[..]).await,
            Err(ProxyInError::Eof)
        ));
        let long = [b'P', b'R', b'O', b'X', b'Y', b' ']
            .iter()
            .copied()
            .chain(std::iter::repeat_n(b'1', 200))
            .collect::<Vec<_>>();
        assert!(matches!(
            read_header(&mut &long[..]).await,
            Err(ProxyInError::TooLong(_))
        ));
    }

    #[test]
    fn trust_understands_mapped_ipv4() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(is_trusted(&trusted, "10.1.2.3:5000".parse().unwrap()));
        assert!(is_trusted(&trusted, "[::ffff:10.1.2.3]:5000".parse().unwrap()));
        assert!(!is_trusted(&trusted, "192.168.1.1:5000".parse().unwrap()));
    }

    /// A reader that returns `a` and then `b` in two reads.
    fn tokio_test_reader(a: &[u8], b: &[u8]) -> impl AsyncRead + Unpin {
        let first = std::io::Cursor::new(a.to_vec());
        let second = std::io::Cursor::new(b.to_vec());
        first.chain(second)
    }
}
