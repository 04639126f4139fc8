//! PROXY protocol v1 (text) and v2 (binary) headers from a load balancer in
//! front of the broker.
//!
//! Only peers inside the configured trusted networks may send one: anyone
//! else could forge a client address or certificate CN. The header is read
//! with a hard size cap; bytes read past it belong to the client and are
//! handed on. A v2 `LOCAL` header (a balancer's health check) and v1
//! `UNKNOWN` keep the socket's own addresses.

use std::net::SocketAddr;

use bytes::BytesMut;
use ipnet::IpNet;
use ppp::v1::{self, Addresses as V1Addresses};
use ppp::v2::{self, Addresses as V2Addresses, Command, TypeLengthValues};
use ppp::PartialResult;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::HandshakeError;

/// Largest header accepted. A v1 header is at most 107 bytes; a v2 header
/// may declare up to 64 KiB of TLVs, far more than any balancer sends.
pub(super) const MAX_HEADER: usize = 16 * 1024;

/// How every v1 header starts, and its longest form (`PROXY TCP6 ...\r\n`).
const V1_SIGNATURE: &[u8] = b"PROXY ";
const V1_MAX: usize = 107;
/// Signature, version/command, family/protocol and length of a v2 header.
const V2_FIXED: usize = 16;
/// How much room to make for each read while looking for the header's end.
const READ_CHUNK: usize = 512;
/// PP2_TYPE_SSL: details of the client's TLS connection to the balancer.
const PP2_TYPE_SSL: u8 = 0x20;
/// PP2_SUBTYPE_SSL_CN: the client certificate's common name.
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
/// Client flags: a certificate was presented on this connection / session.
const PP2_CLIENT_CERT_CONN: u8 = 0x02;
const PP2_CLIENT_CERT_SESS: u8 = 0x04;
/// The SSL TLV's value starts with 1 byte of client flags and 4 of verify result.
const SSL_TLV_FIXED: usize = 5;

/// What a PROXY header tells about the client.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ProxyInfo {
    /// The client's address; `None` keeps the socket's peer address.
    pub(super) source: Option<SocketAddr>,
    /// CN of the client certificate the balancer verified.
    pub(super) cert_cn: Option<String>,
}

/// Whether `peer` may send a PROXY header.
pub(super) fn is_trusted(trusted: &[IpNet], peer: SocketAddr) -> bool {
    let ip = peer.ip().to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// Reads one header from `stream`; returns what it says and the bytes read
/// past it.
pub(super) async fn read_header<S>(stream: &mut S) -> Result<(ProxyInfo, BytesMut), HandshakeError>
where
    S: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if let Some(found) = parse(&buf)? {
            let (info, len) = found;
            let rest = buf.split_off(len);
            return Ok((info, rest));
        }
        if buf.len() >= MAX_HEADER {
            return Err(HandshakeError::ProxyTooLong(MAX_HEADER));
        }
        buf.reserve(READ_CHUNK);
        let mut limited = (&mut *stream).take((MAX_HEADER - buf.len()) as u64);
        if limited.read_buf(&mut buf).await? == 0 {
            return Err(HandshakeError::ProxyEof);
        }
    }
}

/// Parses a complete header at the start of `buf`: `Ok(None)` when more
/// bytes are needed, else the header's meaning and length.
fn parse(buf: &[u8]) -> Result<Option<(ProxyInfo, usize)>, HandshakeError> {
    let n = buf.len().min(V1_SIGNATURE.len());
    if buf[..n] == V1_SIGNATURE[..n] {
        parse_v1(buf)
    } else {
        parse_v2(buf)
    }
}

/// A v1 header is parsed only once its line is complete: ppp would take a
/// line cut after the last space for a header with an invalid port.
fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyInfo, usize)>, HandshakeError> {
    let searched = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = searched.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX {
            return Err(HandshakeError::ProxyTooLong(V1_MAX));
        }
        return Ok(None);
    };
    let len = end + 2;
    let header = v1::Header::try_from(&buf[..len]).map_err(|e| HandshakeError::ProxyInvalid(e.to_string()))?;
    Ok(Some((v1_info(&header.addresses), len)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyInfo, usize)>, HandshakeError> {
    match v2::Header::try_from(buf) {
        Ok(header) => Ok(Some((v2_info(&header), header.len()))),
        Err(v2::ParseError::Partial(_, len)) if V2_FIXED + len > MAX_HEADER => {
            Err(HandshakeError::ProxyTooLong(MAX_HEADER))
        }
        Err(e) if e.is_incomplete() => Ok(None),
        Err(e) => Err(HandshakeError::ProxyInvalid(e.to_string())),
    }
}

fn v1_info(addresses: &V1Addresses) -> ProxyInfo {
    let source = match addresses {
        V1Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        V1Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        V1Addresses::Unknown => None,
    };
    ProxyInfo { source, cert_cn: None }
}

fn v2_info(header: &v2::Header<'_>) -> ProxyInfo {
    if header.command == Command::Local {
        return ProxyInfo::default();
    }
    let source = match header.addresses {
        V2Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        V2Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        V2Addresses::Unspecified | V2Addresses::Unix(_) => None,
    };
    let cert_cn = header
        .tlvs()
        .map_while(Result::ok)
        .find(|tlv| tlv.kind == PP2_TYPE_SSL)
        .and_then(|tlv| ssl_tlv_cn(&tlv.value));
    ProxyInfo { source, cert_cn }
}

/// The CN sub-TLV of a PP2_TYPE_SSL value, trusted only when the balancer
/// says a client certificate was presented and verified.
pub(super) fn ssl_tlv_cn(value: &[u8]) -> Option<String> {
    let (fixed, subs) = value.split_at_checked(SSL_TLV_FIXED)?;
    let client = fixed[0];
    let verify = u32::from_be_bytes([fixed[1], fixed[2], fixed[3], fixed[4]]);
    if client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS) == 0 || verify != 0 {
        return None;
    }
    let cn = TypeLengthValues::from(subs)
        .map_while(Result::ok)
        .find(|tlv| tlv.kind == PP2_SUBTYPE_SSL_CN)?;
    let cn = std::str::from_utf8(&cn.value).ok()?;
    (!cn.is_empty()).then(|| cn.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssl_value(client: u8, verify: u32, cn: &[u8]) -> Vec<u8> {
        let mut v = vec![client];
        v.extend_from_slice(&verify.to_be_bytes());
        v.extend_from_slice(&[0x21, 0, 7]);
        v.extend_from_slice(b"TLSv1.3");
        v.push(PP2_SUBTYPE_SSL_CN);
        v.extend_from_slice(&(cn.len() as u16).to_be_bytes());
        v.extend_from_slice(cn);
        v
    }

    #[test]
    fn ssl_tlv_with_verified_cert_gives_cn() {
        assert_eq!(ssl_tlv_cn(&ssl_value(0x07, 0, b"dev-42")).as_deref(), Some("dev-42"));
        assert_eq!(ssl_tlv_cn(&ssl_value(0x05, 0, b"dev-42")).as_deref(), Some("dev-42"));
    }

    #[test]
    fn ssl_tlv_without_cert_or_failed_verify_is_ignored() {
        assert_eq!(ssl_tlv_cn(&ssl_value(0x01, 0, b"dev-42")), None);
        assert_eq!(ssl_tlv_cn(&ssl_value(0x03, 1, b"dev-42")), None);
        assert_eq!(ssl_tlv_cn(&ssl_value(0x03, 0, b"")), None);
        assert_eq!(ssl_tlv_cn(&ssl_value(0x03, 0, b"\xff\xfe")), None);
    }

    #[test]
    fn truncated_ssl_tlv_is_ignored() {
        let value = ssl_value(0x03, 0, b"dev-42");
        for len in 0..value.len() {
            assert_eq!(ssl_tlv_cn(&value[..len]), None, "prefix of {len} bytes");
        }
    }

    #[test]
    fn trust_check_understands_mapped_ipv4() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(is_trusted(&trusted, "10.1.2.3:5000".parse().unwrap()));
        assert!(is_trusted(&trusted, "[::ffff:10.1.2.3]:5000".parse().unwrap()));
        assert!(!is_trusted(&trusted, "127.0.0.1:5000".parse().unwrap()));
        assert!(!is_trusted(&[], "10.1.2.3:5000".parse().unwrap()));
    }

    #[test]
    fn parse_needs_more_bytes_then_finds_the_end() {
        let text = b"PROXY TCP4 192.0.2.1 192.0.2.2 40000 1883\r\nMQTT";
        let v2 = v2::Builder::with_addresses(
            v2::Version::Two | Command::Proxy,
            v2::Protocol::Stream,
            (
                "[2001:db8::5]:1".parse::<SocketAddr>().unwrap(),
                "[2001:db8::6]:2".parse().unwrap(),
            ),
        )
        .build()
        .unwrap();
        for len in 0..v2.len() {
            assert!(parse(&v2[..len]).unwrap().is_none(), "v2 prefix of {len} bytes");
        }
        assert_eq!(parse(&v2).unwrap().unwrap().1, v2.len());
        for len in 0..text.len() - 4 {
            assert!(parse(&text[..len]).unwrap().is_none(), "prefix of {len} bytes");
        }
        let (info, len) = parse(text).unwrap().unwrap();
        assert_eq!(len, text.len() - 4);
        assert_eq!(info.source, Some("192.0.2.1:40000".parse().unwrap()));
    }

    #[test]
    fn parse_rejects_garbage_and_oversized_headers() {
        assert!(matches!(parse(&[b'P'; 200]), Err(HandshakeError::ProxyInvalid(_))));
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(200, b'1');
        assert!(matches!(parse(&long), Err(HandshakeError::ProxyTooLong(_))));
        assert!(parse(b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02id").is_err());
        let mut big = v2::PROTOCOL_PREFIX.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(parse(&big), Err(HandshakeError::ProxyTooLong(_))));
    }

    #[test]
    fn v1_unknown_keeps_socket_address() {
        let (info, _) = parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap();
        assert_eq!(info, ProxyInfo::default());
    }
}
