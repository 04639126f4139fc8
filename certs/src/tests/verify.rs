//! Certificates from this CA pass rustls' webpki verifiers (ring provider),
//! and a CRL from it makes the verifier refuse exactly the revoked ones.

use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use time::Duration;

use super::new_ca;
use crate::{
    parse_certificates, Ca, CaOptions, CertKind, IssueRequest, KeyKind, KeySource, RevocationReason, San, Selector,
};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &Ca) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).expect("add CA root");
    Arc::new(roots)
}

fn der(pem: &str) -> CertificateDer<'static> {
    parse_certificates(pem.as_bytes(), std::path::Path::new("mem"))
        .expect("parse")
        .remove(0)
}

fn verify_server(ca: &Ca, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca), provider())
        .build()
        .expect("verifier");
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    verifier
        .verify_server_cert(&der(cert_pem), &[], &name, &[], UnixTime::now())
        .map(|_| ())
}

fn verify_client(
    ca: &Ca,
    cert_pem: &str,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<(), rustls::Error> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca), provider())
        .with_crls(crls)
        .enforce_revocation_expiration()
        .build()
        .expect("verifier");
    verifier
        .verify_client_cert(&der(cert_pem), &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn server_cert_verifies_for_its_names_only() {
    let (_tmp, mut ca) = new_ca();
    let sans = vec![
        San::Dns("broker.example.net".into()),
        San::Ip("127.0.0.1".parse().expect("ip")),
    ];
    let issued = ca.issue(&IssueRequest::server("broker", sans)).expect("issue");
    verify_server(&ca, &issued.cert_pem, "broker.example.net").expect("DNS SAN verifies");
    verify_server(&ca, &issued.cert_pem, "127.0.0.1").expect("IP SAN verifies");
    assert!(
        verify_server(&ca, &issued.cert_pem, "other.example.net").is_err(),
        "wrong name refused"
    );
    // A server certificate is not a client certificate (EKU).
    assert!(
        verify_client(&ca, &issued.cert_pem, vec![]).is_err(),
        "server cert refused as client"
    );
}

#[test]
fn client_cert_verifies_and_is_not_a_server_cert() {
    let (_tmp, mut ca) = new_ca();
    let mut req = IssueRequest::client("device-1");
    req.ou = Some("line-3".into());
    let issued = ca.issue(&req).expect("issue");
    verify_client(&ca, &issued.cert_pem, vec![]).expect("client verifies");
    assert!(issued.key_pem.as_deref().is_some_and(|k| k.contains("PRIVATE KEY")));
    let (_tmp2, other) = new_ca();
    assert!(
        verify_client(&other, &issued.cert_pem, vec![]).is_err(),
        "another CA's root refuses it"
    );
}

#[test]
fn every_key_kind_issues_verifiable_certs() {
    // RSA-4096 is left out: generating it in a debug build takes minutes.
    for kind in [KeyKind::EcdsaP256, KeyKind::Ed25519, KeyKind::Rsa2048] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut opts = CaOptions::new(format!("{kind} CA"));
        opts.key_kind = kind;
        let mut ca = Ca::create_in(tmp.path(), &opts).expect("create");
        let mut req = IssueRequest::server("localhost", vec![]);
        req.key = KeySource::Generate(kind);
        let issued = ca.issue(&req).expect("issue");
        assert_eq!(issued.entry.key_kind, Some(kind));
        verify_server(&ca, &issued.cert_pem, "localhost").unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

#[test]
fn csr_signed_cert_verifies_and_keeps_the_device_key() {
    let (_tmp, mut ca) = new_ca();
    let device_key = KeyPair::generate().expect("device key");
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "sensor-42");
    let csr = params.serialize_request(&device_key).expect("csr").pem().expect("pem");
    let issued = ca
        .issue(&IssueRequest::from_csr(
            CertKind::Client,
            KeySource::Csr(csr.into_bytes()),
        ))
        .expect("sign");
    assert_eq!(issued.entry.cn, "sensor-42", "CN taken from the CSR");
    assert!(issued.entry.from_csr && issued.key_pem.is_none());
    verify_client(&ca, &issued.cert_pem, vec![]).expect("verifies");
    let cert = der(&issued.cert_pem);
    let (_, x509) = x509_parser::parse_x509_certificate(&cert).expect("x509");
    assert_eq!(x509.public_key().raw, device_key.subject_public_key_info().as_slice());
}

#[test]
fn crl_makes_rustls_refuse_the_revoked_cert_only() {
    let (_tmp, mut ca) = new_ca();
    let good = ca.issue(&IssueRequest::client("good")).expect("good");
    let bad = ca.issue(&IssueRequest::client("bad")).expect("bad");
    let revoked = ca
        .revoke(&Selector::Cn("bad".into()), RevocationReason::KeyCompromise)
        .expect("revoke");
    assert_eq!(revoked.len(), 1);
    let crl = ca.crl(Duration::days(7), None).expect("crl");
    assert_eq!(
        crl.revoked.iter().map(|e| &e.serial).collect::<Vec<_>>(),
        [&bad.entry.serial]
    );
    let (_, parsed) = x509_parser::parse_x509_crl(&crl.der).expect("parse CRL");
    let listed: Vec<_> = parsed
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    assert_eq!(listed, [bad.entry.serial.as_bytes().to_vec()]);
    let crls = || vec![CertificateRevocationListDer::from(crl.der.clone())];
    verify_client(&ca, &good.cert_pem, crls()).expect("unrevoked passes");
    let err = verify_client(&ca, &bad.cert_pem, crls()).expect_err("revoked refused");
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
        ),
        "{err:?}"
    );
}
