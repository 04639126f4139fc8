//! `tls: auto`: a listener's server certificate issued by the bundled CA at
//! start-up and re-issued when it is missing, expiring, for other names, from
//! another CA, revoked, or its key does not match.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PublicKeyData};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::ca::{now, Ca, Validity};
use crate::error::{CaError, Result};
use crate::index::{San, Status};
use crate::inspect::read_certificates;
use crate::issue::{IssueRequest, DEFAULT_LEAF_DAYS};
use crate::serial::Serial;
use crate::store::{self, DirLock};

/// File name of the auto-issued certificate inside the output directory.
pub const SERVER_CERT_FILE: &str = "server.crt";
/// File name of its private key.
pub const SERVER_KEY_FILE: &str = "server.key";

/// Serializes [`ensure_server_cert`] calls on one output directory; a file
/// of its own, so an output directory that is also the CA directory works.
const AUTO_LOCK: &str = ".server-cert.lock";

/// Why [`ensure_server_cert`] issued a new certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReissueReason {
    /// No certificate or key file yet.
    Missing,
    /// A file exists but does not parse.
    Unreadable(String),
    /// The certificate was not signed by this CA (the CA was replaced).
    OtherCa,
    /// The key file does not hold the certificate's key.
    KeyMismatch,
    /// The certificate expires within the renewal window.
    Expiring(OffsetDateTime),
    /// The configured names differ from the certificate's SANs.
    SansChanged,
    /// This CA revoked the certificate.
    Revoked,
}

/// What [`ensure_server_cert`] left in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCert {
    /// `out_dir/server.crt`.
    pub cert_path: PathBuf,
    /// `out_dir/server.key` (mode 0600).
    pub key_path: PathBuf,
    /// End of the certificate's validity.
    pub not_after: OffsetDateTime,
    /// `None` when the existing certificate was kept.
    pub reissued: Option<ReissueReason>,
}

/// Makes sure `out_dir` holds a server certificate from the CA in `ca_dir`
/// for exactly `sans`, valid for longer than `renew_before`; issues one (a
/// year, or until the CA expires if sooner) when not.
pub fn ensure_server_cert(
    ca_dir: &Path,
    out_dir: &Path,
    sans: &[San],
    renew_before: std::time::Duration,
) -> Result<ServerCert> {
    let Some(first) = sans.first() else {
        return Err(CaError::InvalidName {
            what: "SAN list",
            value: String::new(),
            detail: "an automatic server certificate needs at least one DNS name or IP address".into(),
        });
    };
    let mut ca = Ca::open(ca_dir)?;
    let cert_path = out_dir.join(SERVER_CERT_FILE);
    let key_path = out_dir.join(SERVER_KEY_FILE);
    let renew_before = time::Duration::try_from(renew_before).map_err(|e| CaError::InvalidValidity {
        detail: format!("renewal window: {e}"),
    })?;
    fs::create_dir_all(out_dir).map_err(CaError::io(out_dir))?;
    // Two nodes sharing `out_dir` must not interleave their key and
    // certificate writes; the CA directory has its own lock.
    let _out_lock = DirLock::acquire_file(&out_dir.join(AUTO_LOCK))?;
    let reason = match check_existing(&ca, &cert_path, &key_path, sans, renew_before) {
        Ok(not_after) => {
            return Ok(ServerCert {
                cert_path,
                key_path,
                not_after,
                reissued: None,
            });
        }
        Err(reason) => reason,
    };
    let validity = auto_validity(&ca);
    let issued = ca.issue(&auto_request(out_dir, first, sans, validity))?;
    tracing::info!(
        serial = %issued.entry.serial,
        path = %cert_path.display(),
        reason = ?reason,
        "issued server certificate from the bundled CA"
    );
    if validity.not_after - now() <= renew_before {
        tracing::warn!(
            ca_not_after = %validity.not_after,
            "the CA expires within the renewal window: the server certificate will be re-issued at every start"
        );
    }
    Ok(ServerCert {
        cert_path,
        key_path,
        not_after: validity.not_after,
        reissued: Some(reason),
    })
}

/// A year, or until the CA expires if that is sooner: an automatic
/// certificate should not stop the node from starting near the CA's end.
fn auto_validity(ca: &Ca) -> Validity {
    let mut validity = Validity::days(DEFAULT_LEAF_DAYS);
    validity.not_after = validity.not_after.min(ca.validity().not_after);
    validity
}

/// The server certificate for `sans`, named after the first of them,
/// replacing `out_dir/server.crt` and `server.key`.
fn auto_request(out_dir: &Path, first: &San, sans: &[San], validity: Validity) -> IssueRequest {
    let cn = match first {
        San::Dns(d) => d.clone(),
        San::Ip(ip) => ip.to_string(),
    };
    let mut req = IssueRequest::server(cn, sans.to_vec()).out(out_dir.join("server"));
    req.overwrite = true;
    req.validity = Some(validity);
    req
}

/// `Ok(not_after)` when the files can stay, else why not.
fn check_existing(
    ca: &Ca,
    cert_path: &Path,
    key_path: &Path,
    sans: &[San],
    renew_before: time::Duration,
) -> Result<OffsetDateTime, ReissueReason> {
    if !cert_path.exists() || !key_path.exists() {
        return Err(ReissueReason::Missing);
    }
    let unreadable = |e: CaError| ReissueReason::Unreadable(e.to_string());
    let der = read_certificates(cert_path)
        .map_err(unreadable)?
        .into_iter()
        .next()
        .ok_or(ReissueReason::Missing)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| ReissueReason::Unreadable(e.to_string()))?;
    let (_, ca_cert) =
        x509_parser::parse_x509_certificate(ca.cert_der()).map_err(|e| ReissueReason::Unreadable(e.to_string()))?;
    if cert.verify_signature(Some(ca_cert.public_key())).is_err() {
        return Err(ReissueReason::OtherCa);
    }
    let key_pem = String::from_utf8(store::read(key_path).map_err(unreadable)?)
        .map_err(|_| ReissueReason::Unreadable(format!("{}: not PEM text", key_path.display())))?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| ReissueReason::Unreadable(e.to_string()))?;
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(ReissueReason::KeyMismatch);
    }
    if cert_sans(&cert) != sans.iter().cloned().collect::<BTreeSet<_>>() {
        return Err(ReissueReason::SansChanged);
    }
    let serial = Serial::from_be_bytes(cert.raw_serial());
    if ca
        .entries()
        .iter()
        .any(|e| e.serial == serial && e.status == Status::Revoked)
    {
        return Err(ReissueReason::Revoked);
    }
    let not_after = cert.validity().not_after.to_datetime();
    if not_after - now() <= renew_before {
        return Err(ReissueReason::Expiring(not_after));
    }
    Ok(not_after)
}

fn cert_sans(cert: &X509Certificate<'_>) -> BTreeSet<San> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return BTreeSet::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(d) => Some(San::Dns((*d).to_owned())),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b).ok().map(|a| San::Ip(IpAddr::from(a))),
                16 => <[u8; 16]>::try_from(*b).ok().map(|a| San::Ip(IpAddr::from(a))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}
