//! Bad input through the CLI: a clear error, exit code 1, and the CA
//! directory byte-for-byte as before (every file's bytes and mode).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{openssl, Pki};

/// Bytes and mode of every file under `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path.clone(), (std::fs::read(&path).unwrap(), super::mode(&path)));
            }
        }
    }
    out
}

/// `skerry LINE` fails with `expect` in its error and leaves `pki`'s CA alone.
fn refused(pki: &Pki, line: &str, expect: &str) {
    let before = snapshot(&pki.ca());
    let err = pki.fails(line);
    assert!(err.contains(expect), "skerry {line}: expected {expect:?} in:\n{err}");
    assert_eq!(snapshot(&pki.ca()), before, "skerry {line} changed the CA dir");
}

#[test]
fn ca_refuses_garbage_and_unknown_targets() {
    let pki = Pki::new();
    let serial = pki.client("dev-1", "dev");
    let garbage = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
    std::fs::write(pki.path("garbage.pem"), garbage).unwrap();
    refused(&pki, "ca show {tmp}/garbage.pem", "garbage.pem: not a certificate");
    refused(
        &pki,
        "ca init --dir {ca} --cn Again",
        "refusing to overwrite an existing CA",
    );
    refused(
        &pki,
        "ca revoke --dir {ca} --serial 0123456789ABCDEF",
        "no certificate with serial 0123456789ABCDEF",
    );
    refused(&pki, "ca revoke --dir {ca} --serial nothex", "is not a serial number");
    refused(
        &pki,
        "ca revoke --dir {ca} nobody",
        "no unrevoked certificate with CN \"nobody\"",
    );
    refused(&pki, "ca renew --dir {ca} --cn nobody --out {tmp}/x", "CN \"nobody\"");
    let csr = "ca issue client --dir {ca} --csr {tmp}/garbage.pem --out {tmp}/g";
    refused(&pki, csr, "not a certificate signing request");
    refused(
        &pki,
        "ca issue server --dir {ca} --cn srv --dns bad_name! --out {tmp}/s",
        "invalid DNS name",
    );
    refused(
        &pki,
        "ca issue client --dir {ca} --cn dev-1 --out {tmp}/dev",
        "use --force",
    );
    pki.ok(&format!("ca revoke --dir {{ca}} {serial}"));
    refused(
        &pki,
        &format!("ca revoke --dir {{ca}} --serial {serial}"),
        "already revoked",
    );
    let err = pki.fails("ca list --dir {tmp}/nowhere");
    assert!(err.contains("is not a CA directory"), "{err}");
}

#[test]
fn ca_refuses_a_csr_with_a_bad_signature() {
    let pki = Pki::new();
    let (csr, key) = (pki.path("dev.csr"), pki.path("t.key"));
    let newkey = "-newkey ec -pkeyopt ec_paramgen_curve:P-256";
    let files = format!("-keyout {} -outform DER -out {}", key.display(), csr.display());
    openssl(&format!("req -new -nodes {newkey} {files} -subj /CN=tampered"));
    let mut der = std::fs::read(&csr).unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    std::fs::write(&csr, der).unwrap();
    let line = "ca issue client --dir {ca} --csr {tmp}/dev.csr --out {tmp}/t";
    refused(&pki, line, "dev.csr: the CSR's signature does not verify");
    assert!(!pki.path("t.crt").exists(), "nothing written");
}

#[test]
fn ca_refuses_to_sign_with_an_expired_ca() {
    let pki = Pki::new();
    // The CLI only makes valid CAs; the library makes an expired one.
    let old = pki.path("old-ca");
    let now = time::OffsetDateTime::now_utc();
    let mut opts = skerry_certs::CaOptions::new("Expired CA");
    opts.validity = skerry_certs::Validity::between(now - time::Duration::days(30), now - time::Duration::days(1));
    skerry_certs::Ca::create_in(&old, &opts).unwrap();
    let before = snapshot(&old);
    let err = pki.fails("ca issue client --dir {tmp}/old-ca --cn late --out {tmp}/late");
    assert!(err.contains("not now: create a new CA"), "{err}");
    let err = pki.fails("ca crl --dir {tmp}/old-ca --out {tmp}/old.crl");
    assert!(err.contains("not now: create a new CA"), "{err}");
    assert_eq!(snapshot(&old), before);
    assert!(!pki.path("late.crt").exists() && !pki.path("old.crl").exists());
}
