//! Bad input gives an error that names the problem, and the CA directory is
//! left exactly as it was (same files, same bytes, same modes).

use std::path::Path;

use rcgen::{CertificateParams, DnType, KeyPair};
use time::{Duration, OffsetDateTime};

use super::{new_ca, snapshot};
use crate::{Ca, CaError, CaOptions, CertKind, IssueRequest, KeySource, RevocationReason, Selector, Validity};

/// Runs `op`, which must fail, and checks the CA directory did not change.
fn fails_cleanly(ca_dir: &Path, op: impl FnOnce() -> Result<(), CaError>) -> CaError {
    let before = snapshot(ca_dir);
    let err = op().expect_err("operation must fail");
    assert_eq!(snapshot(ca_dir), before, "CA dir changed by a failed operation: {err}");
    err
}

#[test]
fn init_over_an_existing_ca_is_refused() {
    let (_tmp, ca) = new_ca();
    let err = fails_cleanly(ca.dir(), || Ca::create_in(ca.dir(), &CaOptions::new("Again")).map(drop));
    assert!(matches!(err, CaError::CaExists { .. }), "{err}");
    assert!(
        err.to_string().contains("refusing to overwrite an existing CA"),
        "{err}"
    );
}

#[test]
fn an_expired_ca_signs_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let now = OffsetDateTime::now_utc();
    let mut opts = CaOptions::new("Old CA");
    opts.validity = Validity::between(now - Duration::days(20), now - Duration::days(10));
    let mut ca = Ca::create_in(tmp.path(), &opts).expect("create expired CA");
    let dir = ca.dir().to_owned();
    let out = tmp.path().join("dev");
    let err = fails_cleanly(&dir, || ca.issue(&IssueRequest::client("dev").out(&out)).map(drop));
    assert!(matches!(err, CaError::CaNotValidNow { .. }), "{err}");
    assert!(err.to_string().contains("create a new CA"), "{err}");
    assert!(!out.with_extension("crt").exists());
    let err = fails_cleanly(&dir, || ca.crl(Duration::days(7), None).map(drop));
    assert!(matches!(err, CaError::CaNotValidNow { .. }), "{err}");
}

#[test]
fn a_cert_may_not_outlive_its_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut opts = CaOptions::new("Short CA");
    opts.validity = Validity::days(10);
    let mut ca = Ca::create_in(tmp.path(), &opts).expect("create");
    let dir = ca.dir().to_owned();
    let err = fails_cleanly(&dir, || ca.issue(&IssueRequest::client("dev")).map(drop));
    assert!(matches!(err, CaError::OutlivesCa { .. }), "{err}");
}

#[test]
fn unknown_serial_and_cn_are_named() {
    let (_tmp, mut ca) = new_ca();
    ca.issue(&IssueRequest::client("dev")).expect("issue");
    let dir = ca.dir().to_owned();
    let serial = "0123456789ABCDEF".parse().expect("serial");
    let err = fails_cleanly(&dir, || {
        ca.revoke(&Selector::Serial(serial), RevocationReason::Unspecified)
            .map(drop)
    });
    assert!(
        err.to_string().contains("no certificate with serial 0123456789ABCDEF"),
        "{err}"
    );
    let err = fails_cleanly(&dir, || {
        ca.revoke(&Selector::Cn("ghost".into()), RevocationReason::Unspecified)
            .map(drop)
    });
    assert!(err.to_string().contains("CN \"ghost\""), "{err}");
    let err = fails_cleanly(&dir, || {
        ca.renew(&Selector::Either("ghost".into()), None, None, false).map(drop)
    });
    assert!(matches!(err, CaError::UnknownCn { .. }), "{err}");
}

#[test]
fn revoking_twice_is_an_error() {
    let (_tmp, mut ca) = new_ca();
    let issued = ca.issue(&IssueRequest::client("dev")).expect("issue");
    let sel = Selector::Serial(issued.entry.serial);
    ca.revoke(&sel, RevocationReason::KeyCompromise).expect("first");
    let dir = ca.dir().to_owned();
    let err = fails_cleanly(&dir, || ca.revoke(&sel, RevocationReason::KeyCompromise).map(drop));
    assert!(matches!(err, CaError::AlreadyRevoked { .. }), "{err}");
}

#[test]
fn a_csr_with_a_bad_signature_is_refused() {
    let (tmp, mut ca) = new_ca();
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "evil");
    let mut der = params.serialize_request(&key).expect("csr").der().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x55;
    let csr_path = tmp.path().join("evil.csr");
    std::fs::write(&csr_path, &der).expect("write csr");
    let dir = ca.dir().to_owned();
    let req = IssueRequest::from_csr(CertKind::Client, KeySource::CsrFile(csr_path)).out(tmp.path().join("evil"));
    let err = fails_cleanly(&dir, || ca.issue(&req).map(drop));
    assert!(matches!(err, CaError::CsrSignature { .. }), "{err}");
    assert!(err.to_string().contains("evil.csr"), "the error names the file: {err}");
    assert!(!tmp.path().join("evil.crt").exists());
}

#[test]
fn garbage_csr_and_bad_names_are_refused() {
    let (tmp, mut ca) = new_ca();
    let dir = ca.dir().to_owned();
    let req = IssueRequest::from_csr(
        CertKind::Client,
        KeySource::Csr(b"-----BEGIN CERTIFICATE REQUEST-----\n!!\n".to_vec()),
    );
    let err = fails_cleanly(&dir, || ca.issue(&req).map(drop));
    assert!(matches!(err, CaError::BadCsr { .. }), "{err}");
    let bad_dns = IssueRequest::server("x", vec![crate::San::Dns("bad name".into())]);
    let err = fails_cleanly(&dir, || ca.issue(&bad_dns).map(drop));
    assert!(err.to_string().contains("invalid DNS name \"bad name\""), "{err}");
    let err = fails_cleanly(&dir, || ca.issue(&IssueRequest::server("not a host", vec![])).map(drop));
    assert!(matches!(err, CaError::NoServerName { .. }), "{err}");
    let err = fails_cleanly(&dir, || ca.issue(&IssueRequest::client("")).map(drop));
    assert!(err.to_string().contains("invalid CN"), "{err}");
    // An existing output is not overwritten without `overwrite`.
    std::fs::write(tmp.path().join("dev.crt"), b"keep me").expect("write");
    let err = fails_cleanly(&dir, || {
        ca.issue(&IssueRequest::client("dev").out(tmp.path().join("dev")))
            .map(drop)
    });
    assert!(matches!(err, CaError::OutputExists { .. }), "{err}");
    assert_eq!(std::fs::read(tmp.path().join("dev.crt")).expect("read"), b"keep me");
    assert!(!tmp.path().join("dev.key").exists(), "no half-written output");
}

#[test]
fn an_unwritable_output_leaves_no_trace() {
    let (tmp, mut ca) = new_ca();
    let dir = ca.dir().to_owned();
    // The output's directory cannot be created: a plain file is in the way.
    std::fs::write(tmp.path().join("a-file"), b"").expect("write");
    let out = tmp.path().join("a-file").join("dev");
    let err = fails_cleanly(&dir, || ca.issue(&IssueRequest::client("dev").out(&out)).map(drop));
    assert!(matches!(err, CaError::Io { .. }), "{err}");
    // A missing directory is created.
    let nested = tmp.path().join("new").join("dir").join("dev");
    let issued = ca.issue(&IssueRequest::client("dev").out(&nested)).expect("issue");
    assert!(issued.cert_path.is_some_and(|p| p.is_file()));
}

#[test]
fn a_mismatched_ca_key_is_detected() {
    let (_tmp, ca) = new_ca();
    let (_tmp2, other) = new_ca();
    std::fs::copy(other.key_path(), ca.key_path()).expect("swap key");
    let err = Ca::open(ca.dir()).expect_err("mismatch");
    assert!(matches!(err, CaError::KeyMismatch { .. }), "{err}");
    let err = Ca::open(&ca.dir().join("nowhere")).expect_err("no CA");
    assert!(err.to_string().contains("is not a CA directory"), "{err}");
}
