//! The PROXY protocol header written to a backend before the client's
//! bytes: v1 text, or v2 binary with the SSL TLV built here (ppp has no
//! helper for it), as HAProxy's `send-proxy`, `send-proxy-v2`,
//! `send-proxy-v2-ssl` and `send-proxy-v2-ssl-cn` do.
//!
//! Two interoperability rules: a mixed IPv4/IPv6 address pair is written
//! as IPv6 with the IPv4 side mapped (`::ffff:a.b.c.d`), because ppp would
//! emit family UNSPEC, which EMQX and Mosquitto refuse; and with
//! `compat: mosquitto` the header stays within the 500 bytes Mosquitto 2.1
//! accepts, dropping the client certificate first.

use std::net::{IpAddr, SocketAddr};

use ppp::v2::{AddressFamily, Builder, Command, Protocol, Type, Version};
use skerry_config::{Compat, ProxyMode};
use tracing::warn;

use crate::tls::TlsInfo;

/// The v1 header of a connection whose addresses are not told (health checks).
pub(crate) const V1_UNKNOWN: &[u8] = b"PROXY UNKNOWN\r\n";
/// Largest header Mosquitto 2.1 accepts (`PROXY_PACKET_LIMIT`).
pub(crate) const MOSQUITTO_LIMIT: usize = 500;

/// PP2_CLIENT_SSL: the client connected over TLS.
pub(crate) const PP2_CLIENT_SSL: u8 = 0x01;
/// PP2_CLIENT_CERT_CONN: it presented a certificate on this connection.
pub(crate) const PP2_CLIENT_CERT_CONN: u8 = 0x02;
/// PP2_CLIENT_CERT_SESS: it presented one in this TLS session.
pub(crate) const PP2_CLIENT_CERT_SESS: u8 = 0x04;
/// PP2_SUBTYPE_SSL_CLIENT_CERT: the client's DER leaf certificate.
pub(crate) const PP2_SUBTYPE_SSL_CLIENT_CERT: u8 = 0x28;

/// The addresses a header tells: the client's and the one it connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Addrs {
    pub(crate) client: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// What may go into the SSL TLV; dropped piece by piece to fit a limit.
#[derive(Debug, Clone, Copy)]
struct SslParts {
    cn: bool,
    cert: bool,
}

/// The header for a pool's `mode`, empty for [`ProxyMode::None`].
pub(crate) fn header(mode: ProxyMode, compat: Compat, send_cert: bool, addrs: Addrs, tls: Option<&TlsInfo>) -> Vec<u8> {
    let with_ssl = matches!(mode, ProxyMode::V2Ssl | ProxyMode::V2SslCn);
    let mut parts = SslParts {
        cn: mode == ProxyMode::V2SslCn,
        cert: send_cert,
    };
    match mode {
        ProxyMode::None => Vec::new(),
        ProxyMode::V1 => v1(addrs),
        ProxyMode::V2 | ProxyMode::V2Ssl | ProxyMode::V2SslCn => {
            let ssl = tls.filter(|_| with_ssl);
            let mut out = v2(addrs, ssl, parts);
            if compat == Compat::Mosquitto && out.len() > MOSQUITTO_LIMIT {
                parts.cert = false;
                out = v2(addrs, ssl, parts);
            }
            if compat == Compat::Mosquitto && out.len() > MOSQUITTO_LIMIT {
                warn!(
                    len = out.len(),
                    "PROXY header too long for Mosquitto even without the certificate; sending addresses only"
                );
                out = v2(addrs, None, parts);
            }
            out
        }
    }
}

/// Both addresses in one family: IPv4 when both are IPv4 (mapped ones
/// included), else IPv6 with any IPv4 side mapped.
fn same_family(addrs: Addrs) -> (SocketAddr, SocketAddr) {
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (src, dst) = (canon(addrs.client), canon(addrs.local));
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if src.is_ipv4() == dst.is_ipv4() {
        (src, dst)
    } else {
        (v6(src), v6(dst))
    }
}

fn v1(addrs: Addrs) -> Vec<u8> {
    let (src, dst) = same_family(addrs);
    let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// The 16-byte v2 `LOCAL` header of a health check.
pub(crate) fn v2_local() -> Vec<u8> {
    let fam = AddressFamily::Unspecified | Protocol::Unspecified;
    // Cannot fail: no payload.
    Builder::new(Version::Two | Command::Local, fam)
        .build()
        .unwrap_or_default()
}

fn v2(addrs: Addrs, tls: Option<&TlsInfo>, parts: SslParts) -> Vec<u8> {
    let (src, dst) = same_family(addrs);
    let builder = Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, (src, dst));
    let builder = match tls {
        None => Ok(builder),
        Some(tls) => add_tls_tlvs(builder, tls, parts),
    };
    // Every TLV is bounded far below u16::MAX except the certificate;
    // without it the header always builds.
    match builder.and_then(Builder::build) {
        Ok(out) => out,
        Err(_) if parts.cert => v2(addrs, tls, SslParts { cert: false, ..parts }),
        Err(_) => v2(addrs, None, parts),
    }
}

fn add_tls_tlvs(builder: Builder, tls: &TlsInfo, parts: SslParts) -> std::io::Result<Builder> {
    let mut builder = builder;
    if let Some(alpn) = &tls.alpn {
        builder = builder.write_tlv(Type::ALPN, alpn)?;
    }
    if let Some(sni) = &tls.sni {
        builder = builder.write_tlv(Type::Authority, sni.as_bytes())?;
    }
    builder.write_tlv(Type::SSL, &ssl_tlv(tls, parts))
}

/// The PP2_TYPE_SSL value: client flags, verify result, then the VERSION,
/// CN, CIPHER (and client certificate) sub-TLVs.
fn ssl_tlv(tls: &TlsInfo, parts: SslParts) -> Vec<u8> {
    let mut client = PP2_CLIENT_SSL;
    if tls.has_cert() {
        client |= PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS;
    }
    let mut v = Vec::with_capacity(64);
    v.push(client);
    // 0: verified. rustls fails the handshake on any certificate it could
    // not verify, so a certificate that is here is a verified one.
    v.extend_from_slice(&0u32.to_be_bytes());
    sub_tlv(&mut v, Type::SSLVersion.into(), tls.version.as_bytes());
    if let Some(cn) = tls.cn.as_deref().filter(|_| parts.cn) {
        sub_tlv(&mut v, Type::SSLCommonName.into(), cn.as_bytes());
    }
    sub_tlv(&mut v, Type::SSLCipher.into(), tls.cipher.as_bytes());
    if let Some(der) = tls.cert_der.as_deref().filter(|_| parts.cert) {
        sub_tlv(&mut v, PP2_SUBTYPE_SSL_CLIENT_CERT, der);
    }
    v
}

fn sub_tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    // A value too long for the 16-bit length is cut; only a certificate
    // could be, and then the whole header fails to build and is redone
    // without it.
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&value[..usize::from(len)]);
}

#[cfg(test)]
mod tests;
