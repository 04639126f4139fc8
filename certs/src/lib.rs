//! Skerry's bundled certificate authority: create a CA in a directory, issue
//! server and device (client) certificates, sign device CSRs, revoke, publish
//! CRLs, renew, and describe any certificate. Built on rcgen (writing) and
//! x509-parser (reading), with ring as the only crypto provider.
//!
//! A CA directory holds `ca.crt`, `ca.key` (0600), `index.json` (what was
//! issued and revoked) and `issued/SERIAL.crt`. Every write is atomic and a
//! failed operation leaves the directory as it was.
//!
//! Tests across the workspace make their certificates with this crate:
//!
//! ```no_run
//! # fn main() -> Result<(), skerry_certs::CaError> {
//! use skerry_certs::{Ca, CaOptions, San};
//! let dir = std::path::Path::new("/tmp/test-ca");
//! let mut ca = Ca::create_in(dir, &CaOptions::new("Test CA"))?;
//! let server = ca.issue_server("localhost", &[San::Ip([127, 0, 0, 1].into())], &dir.join("server"))?;
//! let device = ca.issue_client("device-1", &dir.join("device-1"))?;
//! println!("{} {:?} {:?}", ca.cert_pem(), server.cert_path, device.key_pem);
//! # Ok(()) }
//! ```

mod auto;
mod ca;
mod csr;
mod error;
mod index;
mod inspect;
mod issue;
mod key;
mod lifecycle;
mod serial;
mod store;

pub use auto::{ensure_server_cert, ReissueReason, ServerCert, SERVER_CERT_FILE, SERVER_KEY_FILE};
pub use ca::{Ca, CaOptions, Validity, DEFAULT_CA_DAYS};
pub use error::{CaError, Result};
pub use index::{CertKind, IndexEntry, RevocationReason, San, Selector, Status, UnknownReason};
pub use inspect::{format_time, inspect_file, parse_certificates, read_certificates, CertInfo};
pub use issue::{IssueRequest, Issued, KeySource, DEFAULT_LEAF_DAYS};
pub use key::{KeyKind, UnknownKeyKind};
pub use lifecycle::{Crl, DEFAULT_CRL_DAYS};
pub use serial::Serial;
pub use store::{CA_CERT as CA_CERT_FILE, CA_KEY as CA_KEY_FILE, CRL as CRL_FILE, INDEX as INDEX_FILE};

#[cfg(test)]
mod tests;
pub mod tls;
