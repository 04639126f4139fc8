//! The outbound PROXY headers, read back with ppp byte by byte.

use super::*;
use ppp::v2::{self, Addresses, TypeLengthValues};

fn addrs(client: &str, local: &str) -> Addrs {
    Addrs {
        client: client.parse().unwrap(),
        local: local.parse().unwrap(),
    }
}

fn tls(cn: Option<&str>, der: Option<Vec<u8>>) -> TlsInfo {
    TlsInfo {
        version: "TLSv1.3",
        cipher: "TLS_AES_128_GCM_SHA256",
        cn: cn.map(str::to_owned),
        cert_der: der,
        sni: None,
        alpn: None,
    }
}

fn ssl_value(header: &[u8]) -> Vec<u8> {
    let h = v2::Header::try_from(header).unwrap();
    let tlv = h.tlvs().map(Result::unwrap).find(|t| t.kind == 0x20).expect("SSL TLV");
    tlv.value.to_vec()
}

#[test]
fn v1_line_and_mixed_families() {
    let h = header(
        ProxyMode::V1,
        Compat::None,
        false,
        addrs("10.1.2.3:4000", "10.0.0.1:1883"),
        None,
    );
    assert_eq!(h, b"PROXY TCP4 10.1.2.3 10.0.0.1 4000 1883\r\n");
    let h = header(
        ProxyMode::V1,
        Compat::None,
        false,
        addrs("10.1.2.3:4000", "[2001:db8::1]:1883"),
        None,
    );
    assert_eq!(h, b"PROXY TCP6 ::ffff:10.1.2.3 2001:db8::1 4000 1883\r\n");
}

#[test]
fn v2_mixed_pair_is_ipv6_not_unspec() {
    let h = header(
        ProxyMode::V2,
        Compat::None,
        false,
        addrs("10.1.2.3:4000", "[2001:db8::1]:1883"),
        None,
    );
    let parsed = v2::Header::try_from(&h[..]).unwrap();
    assert_eq!(parsed.command, Command::Proxy);
    match parsed.addresses {
        Addresses::IPv6(a) => {
            assert_eq!(
                a.source_address,
                "::ffff:10.1.2.3".parse::<std::net::Ipv6Addr>().unwrap()
            );
            assert_eq!((a.source_port, a.destination_port), (4000, 1883));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn v2_mapped_ipv4_pair_is_ipv4() {
    let h = header(
        ProxyMode::V2,
        Compat::None,
        false,
        addrs("[::ffff:10.1.2.3]:4000", "10.0.0.1:1883"),
        None,
    );
    assert_eq!(h.len(), 16 + 12);
    assert!(matches!(
        v2::Header::try_from(&h[..]).unwrap().addresses,
        Addresses::IPv4(_)
    ));
}

#[test]
fn v2_ssl_cn_tlv_bytes() {
    let info = tls(Some("dev-1"), Some(vec![0x30, 0x03, 1, 2, 3]));
    let h = header(
        ProxyMode::V2SslCn,
        Compat::None,
        false,
        addrs("10.1.2.3:4000", "10.0.0.1:8883"),
        Some(&info),
    );
    let mut expected = vec![0x07, 0, 0, 0, 0];
    expected.extend_from_slice(&[0x21, 0, 7]);
    expected.extend_from_slice(b"TLSv1.3");
    expected.extend_from_slice(&[0x22, 0, 5]);
    expected.extend_from_slice(b"dev-1");
    expected.extend_from_slice(&[0x23, 0, 22]);
    expected.extend_from_slice(b"TLS_AES_128_GCM_SHA256");
    assert_eq!(ssl_value(&h), expected);
}

#[test]
fn v2_ssl_without_cn_or_cert() {
    let info = tls(Some("dev-1"), Some(vec![1]));
    let h = header(
        ProxyMode::V2Ssl,
        Compat::None,
        false,
        addrs("10.1.2.3:4000", "10.0.0.1:8883"),
        Some(&info),
    );
    let v = ssl_value(&h);
    let kinds: Vec<u8> = TypeLengthValues::from(&v[5..]).map(|t| t.unwrap().kind).collect();
    assert_eq!(kinds, [0x21, 0x23]);
    let plain = tls(None, None);
    let h = header(
        ProxyMode::V2Ssl,
        Compat::None,
        false,
        addrs("10.1.2.3:4000", "10.0.0.1:8883"),
        Some(&plain),
    );
    assert_eq!(ssl_value(&h)[0], PP2_CLIENT_SSL, "no certificate: only the SSL flag");
}

#[test]
fn plain_client_gets_no_ssl_tlv() {
    let h = header(
        ProxyMode::V2SslCn,
        Compat::None,
        false,
        addrs("10.1.2.3:4000", "10.0.0.1:1883"),
        None,
    );
    assert_eq!(h.len(), 28);
}

#[test]
fn client_cert_sub_tlv_and_mosquitto_limit() {
    let der = vec![0xAB; 600];
    let info = tls(Some("dev-1"), Some(der.clone()));
    let a = addrs("10.1.2.3:4000", "10.0.0.1:8883");
    let h = header(ProxyMode::V2SslCn, Compat::None, true, a, Some(&info));
    let v = ssl_value(&h);
    let cert = TypeLengthValues::from(&v[5..])
        .map(Result::unwrap)
        .find(|t| t.kind == 0x28)
        .expect("cert sub-TLV");
    assert_eq!(&cert.value[..], &der[..]);
    let m = header(ProxyMode::V2SslCn, Compat::Mosquitto, true, a, Some(&info));
    assert!(m.len() <= MOSQUITTO_LIMIT, "{}", m.len());
    let v = ssl_value(&m);
    assert!(TypeLengthValues::from(&v[5..]).all(|t| t.unwrap().kind != 0x28));
}

#[test]
fn oversized_certificate_is_dropped_not_fatal() {
    let info = tls(Some("dev-1"), Some(vec![0; 70_000]));
    let h = header(
        ProxyMode::V2SslCn,
        Compat::None,
        true,
        addrs("10.1.2.3:4000", "10.0.0.1:8883"),
        Some(&info),
    );
    assert!(h.len() < 200);
    assert!(!ssl_value(&h).is_empty());
}

#[test]
fn local_header_is_sixteen_bytes() {
    let h = v2_local();
    assert_eq!(h.len(), 16);
    assert_eq!(v2::Header::try_from(&h[..]).unwrap().command, Command::Local);
}
