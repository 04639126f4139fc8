//! After issue: revoking certificates, publishing the CRL that lists them,
//! and renewing a certificate with the same subject and names.

use std::path::{Path, PathBuf};

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::{Duration, OffsetDateTime};

use crate::ca::{now, Ca, Validity, LAST_X509_TIME};
use crate::error::{CaError, Result};
use crate::index::{IndexEntry, RevocationReason, Selector, Status};
use crate::inspect::pem_encode;
use crate::issue::{IssueRequest, Issued, KeyMaterial, KeySource, DEFAULT_LEAF_DAYS};
use crate::key::KeyKind;
use crate::store;

/// Default time until a CRL's next-update: a week.
pub const DEFAULT_CRL_DAYS: u32 = 7;

/// A signed certificate revocation list.
#[derive(Debug, Clone)]
pub struct Crl {
    /// PEM text (`-----BEGIN X509 CRL-----`).
    pub pem: String,
    /// DER bytes.
    pub der: Vec<u8>,
    /// Its CRL number; each CRL gets the next one.
    pub number: u64,
    /// When it was made.
    pub this_update: OffsetDateTime,
    /// When relying parties should fetch a new one; after it, OpenSSL and
    /// rustls (with expiration checks) reject the CRL.
    pub next_update: OffsetDateTime,
    /// Serials it lists.
    pub revoked: Vec<IndexEntry>,
}

impl Ca {
    /// Revokes what `sel` names: one serial, or every unrevoked certificate
    /// with a CN. Returns the entries as revoked. Takes effect for relying
    /// parties with the next CRL.
    pub fn revoke(&mut self, sel: &Selector, reason: RevocationReason) -> Result<Vec<IndexEntry>> {
        let _lock = self.lock()?;
        let index_path = self.dir.join(store::INDEX);
        let hits = self.index.select(sel, true, &index_path)?;
        if let Some(done) = hits
            .iter()
            .map(|&i| &self.index.certs[i])
            .find(|e| e.status == Status::Revoked)
        {
            return Err(CaError::AlreadyRevoked {
                serial: done.serial.to_string(),
                cn: done.cn.clone(),
            });
        }
        let mut updated = self.index.clone();
        let at = now();
        for &i in &hits {
            let entry = &mut updated.certs[i];
            entry.status = Status::Revoked;
            entry.revoked_at = Some(at);
            entry.reason = Some(reason);
            tracing::debug!(serial = %entry.serial, cn = %entry.cn, %reason, "revoked certificate");
        }
        updated.save(&self.dir)?;
        self.index = updated;
        Ok(hits.into_iter().map(|i| self.index.certs[i].clone()).collect())
    }

    /// Signs a CRL listing every revoked certificate, valid for
    /// `next_update` from now, and writes it to `out` when given. Each call
    /// uses the next CRL number.
    pub fn crl(&mut self, next_update: Duration, out: Option<&Path>) -> Result<Crl> {
        self.check_valid_now()?;
        if next_update <= Duration::ZERO {
            return Err(CaError::InvalidValidity {
                detail: "the CRL's next-update must be in the future".into(),
            });
        }
        let _lock = self.lock()?;
        let this_update = now();
        let next = this_update
            .checked_add(next_update)
            .filter(|t| *t <= LAST_X509_TIME)
            .ok_or_else(|| CaError::InvalidValidity {
                detail: format!("the CRL's next-update {next_update} from now is past year 9999"),
            })?;
        let revoked: Vec<IndexEntry> = self
            .index
            .certs
            .iter()
            .filter(|e| e.status == Status::Revoked)
            .cloned()
            .collect();
        let params = CertificateRevocationListParams {
            this_update,
            next_update: next,
            crl_number: SerialNumber::from(self.index.next_crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked.iter().map(revoked_params).collect(),
            key_identifier_method: key_id_method(self.cert_der()),
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(CaError::sign("signing the CRL"))?;
        let der = crl.der().to_vec();
        let pem = pem_encode("X509 CRL", &der);
        if let Some(out) = out {
            store::write_atomic(out, pem.as_bytes(), store::PUBLIC_MODE, true)?;
        }
        // The number is spent once the CRL may have been seen, so it is saved
        // after the write; a failed save only means a later CRL reuses it.
        let number = self.index.next_crl_number;
        let mut updated = self.index.clone();
        updated.next_crl_number += 1;
        updated.save(&self.dir)?;
        self.index = updated;
        tracing::debug!(number, revoked = revoked.len(), "signed CRL");
        Ok(Crl {
            pem,
            der,
            number,
            this_update,
            next_update: next,
            revoked,
        })
    }

    /// Re-issues the certificate `sel` names (for a CN: its newest unrevoked
    /// one) with the same subject, SANs and key type, a new serial and
    /// `validity` (default [`DEFAULT_LEAF_DAYS`]). A CSR-signed certificate
    /// keeps the device's public key; otherwise a new key is generated. The
    /// old certificate stays valid until it expires or is revoked.
    pub fn renew(
        &mut self,
        sel: &Selector,
        validity: Option<Validity>,
        out: Option<PathBuf>,
        overwrite: bool,
    ) -> Result<Issued> {
        let index_path = self.dir.join(store::INDEX);
        let hits = self.index.select(sel, true, &index_path)?;
        let old = hits
            .iter()
            .map(|&i| &self.index.certs[i])
            .max_by_key(|e| e.not_before)
            .cloned()
            .ok_or_else(|| CaError::UnknownSerial {
                serial: format!("{sel:?}"),
                index: index_path.clone(),
            })?;
        if old.status == Status::Revoked {
            return Err(CaError::AlreadyRevoked {
                serial: old.serial.to_string(),
                cn: old.cn,
            });
        }
        let material = if old.from_csr {
            KeyMaterial::from_cert(&self.dir.join(old.file_name()))?
        } else {
            KeyMaterial::generate(old.key_kind.unwrap_or(KeyKind::default()))?
        };
        let req = IssueRequest {
            kind: old.kind,
            common_name: Some(old.cn.clone()),
            ou: old.ou.clone(),
            sans: old.sans.clone(),
            key: KeySource::Generate(old.key_kind.unwrap_or_default()),
            validity: Some(validity.unwrap_or_else(|| Validity::days(DEFAULT_LEAF_DAYS))),
            out,
            overwrite,
        };
        self.issue_with(&req, &material, Some(old.serial))
    }
}

/// The CRL's authority key identifier must equal the CA certificate's
/// subject key identifier, whatever method made that one.
fn key_id_method(ca_der: &[u8]) -> KeyIdMethod {
    use x509_parser::extensions::ParsedExtension;
    let ski = x509_parser::parse_x509_certificate(ca_der).ok().and_then(|(_, x509)| {
        x509.extensions().iter().find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
    });
    ski.map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified)
}

fn revoked_params(entry: &IndexEntry) -> RevokedCertParams {
    RevokedCertParams {
        serial_number: entry.serial.to_rcgen(),
        revocation_time: entry.revoked_at.unwrap_or(entry.not_before),
        reason_code: entry.reason.map(RevocationReason::to_rcgen),
        invalidity_date: None,
    }
}
