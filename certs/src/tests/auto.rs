//! `ensure_server_cert`: issue once, keep while fine, re-issue when needed.

use std::time::Duration;

use super::new_ca;
use crate::{ensure_server_cert, ReissueReason, RevocationReason, San, Selector};

const MONTH: Duration = Duration::from_secs(30 * 24 * 3600);

#[test]
fn issues_keeps_and_reissues() {
    let (tmp, mut ca) = new_ca();
    let out = tmp.path().join("tls");
    let sans = vec![San::Dns("node-1.local".into()), San::Ip([127, 0, 0, 1].into())];

    let first = ensure_server_cert(ca.dir(), &out, &sans, MONTH).expect("first");
    assert_eq!(first.reissued, Some(ReissueReason::Missing));
    assert_eq!(super::mode(&first.key_path), 0o600);

    let again = ensure_server_cert(ca.dir(), &out, &sans, MONTH).expect("again");
    assert_eq!(again.reissued, None, "a good certificate is kept");
    assert_eq!(again.not_after, first.not_after);

    let changed = vec![San::Dns("node-1.local".into())];
    let moved = ensure_server_cert(ca.dir(), &out, &changed, MONTH).expect("sans changed");
    assert_eq!(moved.reissued, Some(ReissueReason::SansChanged));

    // A renewal window longer than the certificate's life forces re-issue.
    let long = Duration::from_secs(400 * 24 * 3600);
    let expiring = ensure_server_cert(ca.dir(), &out, &changed, long).expect("expiring");
    assert!(
        matches!(expiring.reissued, Some(ReissueReason::Expiring(_))),
        "{:?}",
        expiring.reissued
    );

    let serial = crate::inspect_file(&expiring.cert_path)
        .expect("inspect")
        .remove(0)
        .serial;
    ca.revoke(&Selector::Serial(serial), RevocationReason::Superseded)
        .expect("revoke");
    let after_revoke = ensure_server_cert(ca.dir(), &out, &changed, MONTH).expect("revoked");
    assert_eq!(after_revoke.reissued, Some(ReissueReason::Revoked));

    std::fs::write(
        &after_revoke.key_path,
        crate::KeyKind::EcdsaP256.generate().expect("k").serialize_pem(),
    )
    .expect("w");
    let rekeyed = ensure_server_cert(ca.dir(), &out, &changed, MONTH).expect("mismatch");
    assert_eq!(rekeyed.reissued, Some(ReissueReason::KeyMismatch));

    let (_tmp2, other) = new_ca();
    let other_ca = ensure_server_cert(other.dir(), &out, &changed, MONTH).expect("other CA");
    assert_eq!(other_ca.reissued, Some(ReissueReason::OtherCa));
}

#[test]
fn needs_at_least_one_name() {
    let (tmp, ca) = new_ca();
    let err = ensure_server_cert(ca.dir(), tmp.path(), &[], MONTH).expect_err("no sans");
    assert!(err.to_string().contains("at least one DNS name or IP address"), "{err}");
}

#[test]
fn concurrent_callers_issue_once_and_leave_a_matching_pair() {
    let (tmp, ca) = new_ca();
    let out = tmp.path().join("tls");
    let sans = vec![San::Dns("node.local".into())];
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (dir, out, sans) = (ca.dir().to_owned(), out.clone(), sans.clone());
            std::thread::spawn(move || ensure_server_cert(&dir, &out, &sans, MONTH).expect("ensure"))
        })
        .collect();
    let results: Vec<_> = workers.into_iter().map(|w| w.join().expect("join")).collect();
    assert_eq!(
        results.iter().filter(|r| r.reissued.is_some()).count(),
        1,
        "{results:?}"
    );
    let again = ensure_server_cert(ca.dir(), &out, &sans, MONTH).expect("again");
    assert_eq!(again.reissued, None, "certificate and key match");
    assert_eq!(crate::Ca::open(ca.dir()).expect("open").entries().len(), 1);
}

#[test]
fn the_output_may_be_the_ca_directory_itself() {
    let (_tmp, ca) = new_ca();
    let sans = [San::Ip([127, 0, 0, 1].into())];
    let cert = ensure_server_cert(ca.dir(), ca.dir(), &sans, MONTH).expect("no self-deadlock");
    assert_eq!(cert.cert_path, ca.dir().join(crate::SERVER_CERT_FILE));
}
