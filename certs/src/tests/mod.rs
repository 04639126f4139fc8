//! Tests of the whole library: chain verification with rustls/webpki (ring
//! provider), CSR signing, revocation and CRLs, renewal, `tls: auto`, and
//! that failed operations leave the CA directory byte-for-byte unchanged.

mod auto;
mod failures;
mod lifecycle;
mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Ca, CaOptions};

/// A fresh CA in a fresh temporary directory.
fn new_ca() -> (tempfile::TempDir, Ca) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::create_in(&dir.path().join("ca"), &CaOptions::new("Test CA")).expect("create CA");
    (dir, ca)
}

/// Every file under `dir` with its bytes and permission bits.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32)>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path.clone(), (std::fs::read(&path).expect("read"), mode(&path)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[cfg(not(unix))]
fn mode(_path: &Path) -> u32 {
    0
}
