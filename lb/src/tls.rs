//! TLS termination: what a finished handshake tells about the client, for
//! the PROXY header and the rate classes. The rustls server configuration
//! is `skerry_certs::tls::server_config`, shared with the broker's
//! listeners, built once at start from a listener's files (so a bad path
//! is an error that names it, never a panic inside pingora): client
//! certificates required with `client_ca` + `require_certificate`,
//! optional with `client_ca` alone, not asked for without it; the CRL
//! checked for the client's own certificate.
//!
//! The handshake itself runs in the connection task with tokio-rustls
//! rather than through pingora's `TlsSettings`: that bounds it by our own
//! deadline (pingora's is a fixed 60 s), lets failures be counted, and
//! keeps the ring provider explicit.

use rustls::{CipherSuite, ProtocolVersion, ServerConnection};
use skerry_certs::tls::common_name;

/// What a TLS client's handshake established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsInfo {
    /// `TLSv1.2` / `TLSv1.3`, as OpenSSL (and so HAProxy) names them.
    pub(crate) version: &'static str,
    /// The cipher suite's OpenSSL name where it has one.
    pub(crate) cipher: &'static str,
    /// The client certificate's subject CN.
    pub(crate) cn: Option<String>,
    /// The client's DER leaf certificate, if it presented one.
    pub(crate) cert_der: Option<Vec<u8>>,
    /// The server name the client asked for (SNI).
    pub(crate) sni: Option<String>,
    /// The negotiated ALPN protocol.
    pub(crate) alpn: Option<Vec<u8>>,
}

impl TlsInfo {
    /// Reads what the PROXY header and the rate classes need.
    pub(crate) fn of(conn: &ServerConnection) -> TlsInfo {
        let leaf = conn.peer_certificates().and_then(|c| c.first());
        TlsInfo {
            version: version_name(conn.protocol_version()),
            cipher: conn.negotiated_cipher_suite().map_or("", |s| cipher_name(s.suite())),
            cn: leaf.and_then(|c| common_name(c)),
            cert_der: leaf.map(|c| c.to_vec()),
            sni: conn.server_name().map(str::to_owned),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        }
    }

    /// Whether the client presented a (verified) certificate.
    pub(crate) fn has_cert(&self) -> bool {
        self.cert_der.is_some()
    }
}

fn version_name(v: Option<ProtocolVersion>) -> &'static str {
    match v {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    }
}

/// OpenSSL's names for the suites rustls offers with ring; brokers that
/// log or compare the cipher expect them.
fn cipher_name(suite: CipherSuite) -> &'static str {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        other => other.as_str().unwrap_or(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_openssl() {
        assert_eq!(version_name(Some(ProtocolVersion::TLSv1_3)), "TLSv1.3");
        assert_eq!(
            cipher_name(CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            cipher_name(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            "ECDHE-RSA-AES128-GCM-SHA256"
        );
    }
}
