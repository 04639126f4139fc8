//! Index bookkeeping across issue, revoke, CRL and renew.

use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData};
use time::Duration;

use super::new_ca;
use crate::{inspect_file, Ca, CertKind, IssueRequest, KeySource, RevocationReason, San, Selector, Status, Validity};

#[test]
fn files_are_laid_out_and_keys_are_private() {
    let (tmp, mut ca) = new_ca();
    let dir = ca.dir().to_owned();
    for name in ["ca.crt", "ca.key", "index.json"] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    assert_eq!(super::mode(&dir.join("ca.key")), 0o600);
    let issued = ca.issue_client("dev", &tmp.path().join("dev")).expect("issue");
    assert_eq!(super::mode(issued.key_path.as_deref().expect("key path")), 0o600);
    assert_eq!(super::mode(issued.cert_path.as_deref().expect("cert path")), 0o644);
    assert!(
        dir.join(format!("issued/{}.crt", issued.entry.serial)).is_file(),
        "CA keeps a copy"
    );
    // A reopened CA sees the same index.
    let reopened = Ca::open(&dir).expect("open");
    assert_eq!(reopened.entries(), ca.entries());
    assert_eq!(reopened.cert_pem(), ca.cert_pem());
}

#[test]
fn serials_are_unique_and_16_bytes() {
    let (_tmp, mut ca) = new_ca();
    for i in 0..20 {
        ca.issue(&IssueRequest::client(format!("d{i}"))).expect("issue");
    }
    let mut serials: Vec<_> = ca.entries().iter().map(|e| e.serial.clone()).collect();
    assert!(serials.iter().all(|s| s.as_bytes().len() == 16));
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 20);
}

#[test]
fn revoke_by_cn_takes_every_unrevoked_cert_of_that_cn() {
    let (_tmp, mut ca) = new_ca();
    let a = ca.issue(&IssueRequest::client("dev")).expect("a");
    let b = ca.issue(&IssueRequest::client("dev")).expect("b");
    ca.issue(&IssueRequest::client("other")).expect("other");
    let revoked = ca
        .revoke(&Selector::Cn("dev".into()), RevocationReason::CessationOfOperation)
        .expect("revoke");
    let mut serials: Vec<_> = revoked.iter().map(|e| e.serial.clone()).collect();
    serials.sort();
    let mut expected = vec![a.entry.serial, b.entry.serial];
    expected.sort();
    assert_eq!(serials, expected);
    assert!(revoked
        .iter()
        .all(|e| e.reason == Some(RevocationReason::CessationOfOperation) && e.revoked_at.is_some()));
    let now = time::OffsetDateTime::now_utc();
    let states: Vec<_> = ca.entries().iter().map(|e| e.state(now)).collect();
    assert_eq!(states, ["revoked", "revoked", "valid"]);
}

#[test]
fn crl_numbers_grow_and_next_update_is_honoured() {
    let (tmp, mut ca) = new_ca();
    let out = tmp.path().join("crl.pem");
    let first = ca.crl(Duration::days(7), Some(&out)).expect("crl 1");
    let second = ca.crl(Duration::days(2), Some(&out)).expect("crl 2");
    assert_eq!((first.number, second.number), (1, 2));
    assert_eq!(second.next_update - second.this_update, Duration::days(2));
    let text = std::fs::read_to_string(&out).expect("read");
    assert!(text.starts_with("-----BEGIN X509 CRL-----"));
    let (_, crl) = x509_parser::parse_x509_crl(&second.der).expect("parse");
    assert_eq!(crl.crl_number().map(|n| n.to_u64_digits()), Some(vec![2]));
    let reopened = Ca::open(ca.dir()).expect("reopen");
    drop(reopened);
    let mut again = Ca::open(ca.dir()).expect("reopen");
    assert_eq!(
        again.crl(Duration::days(1), None).expect("crl 3").number,
        3,
        "the number survives reopening"
    );
}

#[test]
fn renew_keeps_subject_and_names_with_a_new_serial_and_key() {
    let (tmp, mut ca) = new_ca();
    let mut req = IssueRequest::server(
        "broker",
        vec![San::Dns("broker.local".into()), San::Ip([10, 0, 0, 5].into())],
    );
    req.validity = Some(Validity::days(30));
    let old = ca.issue(&req.out(tmp.path().join("old"))).expect("issue");
    let new = ca
        .renew(
            &Selector::Cn("broker".into()),
            None,
            Some(tmp.path().join("new")),
            false,
        )
        .expect("renew");
    assert_ne!(new.entry.serial, old.entry.serial);
    assert_eq!(new.entry.renewed_from.as_ref(), Some(&old.entry.serial));
    assert_eq!(
        (&new.entry.cn, &new.entry.sans, new.entry.kind),
        (&old.entry.cn, &old.entry.sans, old.entry.kind)
    );
    assert!(new.entry.not_after > old.entry.not_after, "default validity is a year");
    assert_ne!(new.key_pem, old.key_pem, "a generated key is replaced");
    let info = inspect_file(new.cert_path.as_deref().expect("path"))
        .expect("inspect")
        .remove(0);
    assert_eq!(info.sans, ["DNS:broker.local", "IP:10.0.0.5"]);
    assert_eq!(info.extended_key_usage, ["serverAuth"]);
    assert_eq!(
        ca.entries().iter().filter(|e| e.status == Status::Valid).count(),
        2,
        "the old one stays valid"
    );
}

#[test]
fn renewing_a_csr_cert_keeps_the_device_key() {
    let (_tmp, mut ca) = new_ca();
    let device_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "meter-9");
    let csr = params.serialize_request(&device_key).expect("csr").pem().expect("pem");
    let old = ca
        .issue(&IssueRequest::from_csr(
            CertKind::Client,
            KeySource::Csr(csr.into_bytes()),
        ))
        .expect("sign");
    let new = ca
        .renew(&Selector::Serial(old.entry.serial), None, None, false)
        .expect("renew");
    assert!(new.key_pem.is_none() && new.entry.from_csr);
    let der = crate::parse_certificates(new.cert_pem.as_bytes(), std::path::Path::new("m"))
        .expect("parse")
        .remove(0);
    let (_, x509) = x509_parser::parse_x509_certificate(&der).expect("x509");
    assert_eq!(x509.public_key().raw, device_key.subject_public_key_info().as_slice());
}

#[test]
fn concurrent_writers_lose_no_index_entry() {
    let (_tmp, ca) = new_ca();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let dir = ca.dir().to_owned();
            std::thread::spawn(move || {
                let mut ca = Ca::open(&dir).expect("open");
                for i in 0..5 {
                    ca.issue(&IssueRequest::client(format!("w{w}-{i}"))).expect("issue");
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().expect("join"));
    assert_eq!(Ca::open(ca.dir()).expect("open").entries().len(), 20);
}
