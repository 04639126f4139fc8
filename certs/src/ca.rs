//! The CA itself: creating one in a directory, opening it again, and the
//! validity rules every issued certificate follows. Issuing, revoking and
//! the CRL live in `issue.rs` and `revoke.rs` as further `impl Ca` blocks.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::error::{CaError, Result};
use crate::index::{Index, IndexEntry};
use crate::inspect::{pem_encode, read_certificates};
use crate::key::KeyKind;
use crate::serial::Serial;
use crate::store::{self, DirLock};

/// Default lifetime of a CA certificate: ten years.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// How far `not_before` is set into the past, so a device whose clock runs a
/// little behind accepts a certificate issued a moment ago.
const BACKDATE: Duration = Duration::minutes(5);
/// GeneralizedTime ends with year 9999.
pub(crate) const LAST_X509_TIME: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start (inclusive).
    pub not_before: OffsetDateTime,
    /// End (inclusive, as X.509 defines it).
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From a few minutes ago until `days` days from now.
    /// Saturates at the last time X.509 can express (9999-12-31).
    pub fn days(days: u32) -> Self {
        let now = now();
        let not_after = now
            .checked_add(Duration::days(i64::from(days)))
            .map_or(LAST_X509_TIME, |t| t.min(LAST_X509_TIME));
        Self {
            not_before: now - BACKDATE,
            not_after,
        }
    }

    /// An explicit period (tests use it to make expired CAs and certificates).
    pub fn between(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        Self {
            not_before: truncate(not_before),
            not_after: truncate(not_after),
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.not_after <= self.not_before {
            let detail = format!(
                "not_after {} is not after not_before {}",
                self.not_after, self.not_before
            );
            return Err(CaError::InvalidValidity { detail });
        }
        Ok(())
    }
}

/// The current time, whole seconds (X.509 times carry no fractions).
pub(crate) fn now() -> OffsetDateTime {
    truncate(OffsetDateTime::now_utc())
}

fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// What `skerry ca init` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOptions {
    /// Subject CN of the CA certificate, shown by every TLS tool.
    pub common_name: String,
    /// Optional subject O.
    pub organization: Option<String>,
    /// Key type of the CA key.
    pub key_kind: KeyKind,
    /// Lifetime of the CA certificate.
    pub validity: Validity,
}

impl CaOptions {
    /// A CA named `common_name` with an ECDSA P-256 key, valid ten years.
    pub fn new(common_name: impl Into<String>) -> Self {
        Self {
            common_name: common_name.into(),
            organization: None,
            key_kind: KeyKind::default(),
            validity: Validity::days(DEFAULT_CA_DAYS),
        }
    }
}

/// An open CA directory: `ca.crt`, `ca.key`, `index.json`, `issued/`.
pub struct Ca {
    pub(crate) dir: PathBuf,
    pub(crate) cert_pem: String,
    pub(crate) cert_der: CertificateDer<'static>,
    pub(crate) issuer: Issuer<'static, KeyPair>,
    pub(crate) validity: Validity,
    pub(crate) index: Index,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("dir", &self.dir)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Creates a new CA in `dir` (created if missing). Refuses, writing
    /// nothing, when `dir` already holds `ca.crt`, `ca.key` or `index.json`.
    pub fn create_in(dir: &Path, opts: &CaOptions) -> Result<Self> {
        opts.validity.check()?;
        crate::issue::check_name("CN", &opts.common_name)?;
        let existing = [store::CA_CERT, store::CA_KEY, store::INDEX].map(|f| dir.join(f));
        if let Some(path) = existing.iter().find(|p| p.exists()) {
            return Err(CaError::CaExists { path: path.clone() });
        }
        let key = opts.key_kind.generate()?;
        let params = ca_params(opts)?;
        let cert = params
            .self_signed(&key)
            .map_err(CaError::sign("self-signing the CA certificate"))?;

        fs::create_dir_all(dir.join(store::ISSUED)).map_err(CaError::io(dir))?;
        let _lock = DirLock::acquire(dir)?;
        let key_path = dir.join(store::CA_KEY);
        let cert_path = dir.join(store::CA_CERT);
        let index_path = dir.join(store::INDEX);
        let mut written = Vec::new();
        let result = (|| {
            store::write_atomic(&key_path, key.serialize_pem().as_bytes(), store::KEY_MODE, false)
                .map_err(|e| already_ca(e, &key_path))?;
            written.push(key_path.clone());
            store::write_atomic(&cert_path, cert.pem().as_bytes(), store::PUBLIC_MODE, false)
                .map_err(|e| already_ca(e, &cert_path))?;
            written.push(cert_path.clone());
            let index = serde_json::to_vec_pretty(&Index::default()).unwrap_or_default();
            store::write_atomic(&index_path, &index, store::PUBLIC_MODE, false).map_err(|e| already_ca(e, &index_path))
        })();
        if let Err(e) = result {
            written.iter().for_each(|p| store::remove_quietly(p));
            return Err(e);
        }
        tracing::debug!(dir = %dir.display(), cn = %opts.common_name, key = %opts.key_kind, "created CA");
        Self::open(dir)
    }

    /// Opens the CA in `dir`, checking that `ca.key` belongs to `ca.crt`.
    pub fn open(dir: &Path) -> Result<Self> {
        let cert_path = dir.join(store::CA_CERT);
        let key_path = dir.join(store::CA_KEY);
        for (path, name) in [(&cert_path, store::CA_CERT), (&key_path, store::CA_KEY)] {
            if !path.exists() {
                return Err(CaError::NotACa {
                    dir: dir.to_owned(),
                    missing: name,
                });
            }
        }
        let cert_der = read_certificates(&cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| CaError::BadCertificate {
                path: cert_path.clone(),
                detail: "no certificate in the file".into(),
            })?;
        let key_pem = String::from_utf8(store::read(&key_path)?).map_err(|_| CaError::BadKey {
            path: key_path.clone(),
            detail: "not a PEM text file".into(),
        })?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::BadKey {
            path: key_path.clone(),
            detail: e.to_string(),
        })?;
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der).map_err(|e| CaError::BadCertificate {
            path: cert_path.clone(),
            detail: e.to_string(),
        })?;
        if x509.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(CaError::KeyMismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        let validity = Validity::between(
            x509.validity().not_before.to_datetime(),
            x509.validity().not_after.to_datetime(),
        );
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| CaError::BadCertificate {
            path: cert_path.clone(),
            detail: e.to_string(),
        })?;
        let cert_pem = pem_encode("CERTIFICATE", &cert_der);
        Ok(Self {
            dir: dir.to_owned(),
            cert_pem,
            cert_der,
            issuer,
            validity,
            index: Index::load(dir)?,
        })
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.crt` as PEM: what devices and listeners trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `ca.crt` as DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Path of `ca.crt`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(store::CA_CERT)
    }

    /// Path of `ca.key`.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(store::CA_KEY)
    }

    /// When the CA certificate is valid.
    pub fn validity(&self) -> Validity {
        self.validity
    }

    /// Every certificate this CA issued, oldest first.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.index.certs
    }

    /// Refuses to sign anything with a CA outside its validity period.
    pub(crate) fn check_valid_now(&self) -> Result<()> {
        let now = now();
        if now < self.validity.not_before || now > self.validity.not_after {
            return Err(CaError::CaNotValidNow {
                path: self.cert_path(),
                not_before: self.validity.not_before,
                not_after: self.validity.not_after,
            });
        }
        Ok(())
    }

    /// Takes the directory lock and re-reads the index, which another
    /// process may have changed since [`Ca::open`].
    pub(crate) fn lock(&mut self) -> Result<DirLock> {
        let lock = DirLock::acquire(&self.dir)?;
        self.index = Index::load(&self.dir)?;
        Ok(lock)
    }

    /// A serial not yet in the index.
    pub(crate) fn fresh_serial(&self) -> Result<Serial> {
        loop {
            let serial = Serial::random()?;
            if !self.index.contains(&serial) {
                return Ok(serial);
            }
        }
    }
}

fn ca_params(opts: &CaOptions) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(org) = &opts.organization {
        crate::issue::check_name("O", org)?;
        dn.push(DnType::OrganizationName, org.as_str());
    }
    dn.push(DnType::CommonName, opts.common_name.as_str());
    params.distinguished_name = dn;
    // Path length 0: this CA signs end-entity certificates only.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(Serial::random()?.to_rcgen());
    params.not_before = opts.validity.not_before;
    params.not_after = opts.validity.not_after;
    Ok(params)
}

/// `init` racing another `init`: the no-clobber write lost, so the CA exists.
fn already_ca(e: CaError, path: &Path) -> CaError {
    match e {
        CaError::OutputExists { .. } => CaError::CaExists { path: path.to_owned() },
        other => other,
    }
}
