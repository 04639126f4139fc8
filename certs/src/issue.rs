//! Issuing server and client certificates: with a key generated here, or
//! for a device's own key from its CSR. Every issue checks all inputs and
//! every output path first, then writes the outputs, the CA's copy and the
//! index; if a later write fails the earlier ones are removed again.

use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType, SubjectPublicKeyInfo,
};

use crate::ca::{Ca, Validity};
use crate::csr::{parse_csr, Csr};
use crate::error::{CaError, Result};
use crate::index::{CertKind, IndexEntry, San, Status};
use crate::inspect::{pem_encode, read_certificates};
use crate::key::KeyKind;
use crate::serial::Serial;
use crate::store;

/// Default lifetime of a server or client certificate.
pub const DEFAULT_LEAF_DAYS: u32 = 365;

/// Where the certificate's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Generate a fresh key of this kind; its PEM is returned (and written).
    Generate(KeyKind),
    /// Sign the public key in this CSR file; the device keeps its key.
    CsrFile(PathBuf),
    /// Sign the public key in this CSR (PEM or DER) held in memory.
    Csr(Vec<u8>),
}

/// What to issue. Build with [`IssueRequest::server`], [`IssueRequest::client`]
/// or [`IssueRequest::from_csr`], then adjust the public fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// Server or client.
    pub kind: CertKind,
    /// Subject CN. `None` only with a CSR: then the CSR's CN is used.
    pub common_name: Option<String>,
    /// Optional subject OU (device group, site).
    pub ou: Option<String>,
    /// SANs. A server certificate without any gets its CN as DNS name.
    pub sans: Vec<San>,
    /// Generated key or CSR.
    pub key: KeySource,
    /// Lifetime; `None` = [`DEFAULT_LEAF_DAYS`] from now.
    pub validity: Option<Validity>,
    /// Write `PREFIX.crt` (and `PREFIX.key` for a generated key).
    pub out: Option<PathBuf>,
    /// Replace existing output files instead of refusing.
    pub overwrite: bool,
}

impl IssueRequest {
    fn new(kind: CertKind, cn: Option<String>, key: KeySource) -> Self {
        Self {
            kind,
            common_name: cn,
            ou: None,
            sans: Vec::new(),
            key,
            validity: None,
            out: None,
            overwrite: false,
        }
    }

    /// A server certificate for `cn` with the given SANs and a new P-256 key.
    pub fn server(cn: impl Into<String>, sans: impl Into<Vec<San>>) -> Self {
        let mut req = Self::new(
            CertKind::Server,
            Some(cn.into()),
            KeySource::Generate(KeyKind::default()),
        );
        req.sans = sans.into();
        req
    }

    /// A client (device) certificate for `cn` with a new P-256 key.
    pub fn client(cn: impl Into<String>) -> Self {
        Self::new(
            CertKind::Client,
            Some(cn.into()),
            KeySource::Generate(KeyKind::default()),
        )
    }

    /// A certificate for the key in a device's CSR.
    pub fn from_csr(kind: CertKind, csr: KeySource) -> Self {
        Self::new(kind, None, csr)
    }

    /// Writes the result to `PREFIX.crt` / `PREFIX.key`.
    pub fn out(mut self, prefix: impl Into<PathBuf>) -> Self {
        self.out = Some(prefix.into());
        self
    }
}

/// An issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Its index entry (serial, CN, validity, ...).
    pub entry: IndexEntry,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM; `None` when signed from a CSR.
    pub key_pem: Option<String>,
    /// `PREFIX.crt` when an output prefix was given.
    pub cert_path: Option<PathBuf>,
    /// `PREFIX.key` when an output prefix was given and the key is ours.
    pub key_path: Option<PathBuf>,
}

/// The public key to certify and, when generated here, its private half.
pub(crate) struct KeyMaterial {
    pub(crate) public: SubjectPublicKeyInfo,
    pub(crate) kind: Option<KeyKind>,
    pub(crate) private: Option<KeyPair>,
    /// CN the CSR asked for, used when the request names none.
    pub(crate) requested_cn: Option<String>,
}

impl KeyMaterial {
    pub(crate) fn generate(kind: KeyKind) -> Result<Self> {
        let private = kind.generate()?;
        Ok(Self {
            public: spki_of(&private.subject_public_key_info())?,
            kind: Some(kind),
            private: Some(private),
            requested_cn: None,
        })
    }

    fn from_csr(csr: Csr) -> Result<Self> {
        Ok(Self {
            kind: KeyKind::of_spki(&csr.spki),
            public: spki_of(&csr.spki)?,
            private: None,
            requested_cn: csr.cn,
        })
    }

    /// The public key of a certificate this CA issued earlier (renewing a
    /// CSR-signed certificate keeps the device's key).
    pub(crate) fn from_cert(path: &Path) -> Result<Self> {
        let der = read_certificates(path)?
            .into_iter()
            .next()
            .ok_or_else(|| CaError::BadCertificate {
                path: path.to_owned(),
                detail: "no certificate in the file".into(),
            })?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der).map_err(|e| CaError::BadCertificate {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let spki = x509.public_key().raw;
        Ok(Self {
            public: spki_of(spki)?,
            kind: KeyKind::of_spki(spki),
            private: None,
            requested_cn: None,
        })
    }
}

fn spki_of(der: &[u8]) -> Result<SubjectPublicKeyInfo> {
    SubjectPublicKeyInfo::from_der(der).map_err(CaError::sign("reading the public key"))
}

impl Ca {
    /// Issues a certificate as `req` says, records it in the index and, with
    /// `req.out`, writes `PREFIX.crt` / `PREFIX.key`.
    pub fn issue(&mut self, req: &IssueRequest) -> Result<Issued> {
        let material = match &req.key {
            KeySource::Generate(kind) => KeyMaterial::generate(*kind)?,
            KeySource::CsrFile(path) => KeyMaterial::from_csr(parse_csr(&store::read(path)?, path)?)?,
            KeySource::Csr(bytes) => KeyMaterial::from_csr(parse_csr(bytes, Path::new("<CSR>"))?)?,
        };
        self.issue_with(req, &material, None)
    }

    /// Issues a client certificate for `cn` with a new key, written to
    /// `PREFIX.crt` / `PREFIX.key`. The shortcut tests use.
    pub fn issue_client(&mut self, cn: &str, out_prefix: &Path) -> Result<Issued> {
        self.issue(&IssueRequest::client(cn).out(out_prefix))
    }

    /// Issues a server certificate for `cn` and `sans` with a new key, written
    /// to `PREFIX.crt` / `PREFIX.key`.
    pub fn issue_server(&mut self, cn: &str, sans: &[San], out_prefix: &Path) -> Result<Issued> {
        self.issue(&IssueRequest::server(cn, sans.to_vec()).out(out_prefix))
    }

    pub(crate) fn issue_with(
        &mut self,
        req: &IssueRequest,
        material: &KeyMaterial,
        renewed_from: Option<Serial>,
    ) -> Result<Issued> {
        let Plan {
            validity,
            cn,
            sans,
            outputs,
        } = self.plan(req, material)?;
        let _lock = self.lock()?;
        let serial = self.fresh_serial()?;
        let entry = IndexEntry {
            serial: serial.clone(),
            cn,
            kind: req.kind,
            key_kind: material.kind,
            sans,
            ou: req.ou.clone(),
            not_before: validity.not_before,
            not_after: validity.not_after,
            status: Status::Valid,
            revoked_at: None,
            reason: None,
            from_csr: material.private.is_none(),
            renewed_from,
        };
        let params = leaf_params(&entry, &serial)?;
        let what = format!("signing the {} certificate for CN {:?}", entry.kind, entry.cn);
        let cert = params
            .signed_by(&material.public, &self.issuer)
            .map_err(CaError::sign(what))?;
        let cert_pem = pem_encode("CERTIFICATE", cert.der());
        let key_pem = material.private.as_ref().map(KeyPair::serialize_pem);
        self.record(&entry, &cert_pem, key_pem.as_deref(), &outputs, req.overwrite)?;
        tracing::debug!(serial = %entry.serial, cn = %entry.cn, kind = %entry.kind, "issued certificate");
        let path_of = |ext: &str| outputs.iter().find(|(_, e, _)| *e == ext).map(|(p, _, _)| p.clone());
        Ok(Issued {
            cert_path: path_of("crt"),
            key_path: path_of("key"),
            entry,
            cert_pem,
            key_pem,
        })
    }

    /// Every check that can fail before anything is written.
    fn plan(&self, req: &IssueRequest, material: &KeyMaterial) -> Result<Plan> {
        self.check_valid_now()?;
        let validity = req.validity.unwrap_or_else(|| Validity::days(DEFAULT_LEAF_DAYS));
        validity.check()?;
        if validity.not_after > self.validity.not_after {
            return Err(CaError::OutlivesCa {
                not_after: validity.not_after,
                ca_not_after: self.validity.not_after,
            });
        }
        let cn = req
            .common_name
            .clone()
            .or(material.requested_cn.clone())
            .unwrap_or_default();
        check_name("CN", &cn)?;
        if let Some(ou) = &req.ou {
            check_name("OU", ou)?;
        }
        let sans = resolve_sans(req.kind, &cn, &req.sans)?;
        let outputs = output_paths(req.out.as_deref(), material.private.is_some());
        if !req.overwrite {
            outputs.iter().try_for_each(|(p, _, _)| store::ensure_absent(p))?;
        }
        Ok(Plan {
            validity,
            cn,
            sans,
            outputs,
        })
    }

    /// Writes the outputs (key first, so a reader never sees a new
    /// certificate with an old key), the CA's copy and the index. Undoes the
    /// files already written when a later step fails.
    fn record(
        &mut self,
        entry: &IndexEntry,
        cert_pem: &str,
        key_pem: Option<&str>,
        outputs: &[(PathBuf, &'static str, u32)],
        overwrite: bool,
    ) -> Result<()> {
        let copy = self.dir.join(entry.file_name());
        let mut written: Vec<PathBuf> = Vec::new();
        let mut result = Ok(());
        for (path, ext, mode) in outputs {
            let body = if *ext == "key" {
                key_pem.unwrap_or_default()
            } else {
                cert_pem
            };
            result =
                store::create_parent(path).and_then(|()| store::write_atomic(path, body.as_bytes(), *mode, overwrite));
            if result.is_err() {
                break;
            }
            written.push(path.clone());
        }
        if result.is_ok() {
            result = std::fs::create_dir_all(self.dir.join(store::ISSUED))
                .map_err(CaError::io(self.dir.join(store::ISSUED)))
                .and_then(|()| store::write_atomic(&copy, cert_pem.as_bytes(), store::PUBLIC_MODE, false));
            if result.is_ok() {
                written.push(copy);
                self.index.certs.push(entry.clone());
                result = self.index.save(&self.dir);
                if result.is_err() {
                    self.index.certs.pop();
                }
            }
        }
        if result.is_err() {
            // An overwritten output is not restored: its old content is gone
            // by design (`--force`), and the CA directory is what must not change.
            written.iter().for_each(|p| store::remove_quietly(p));
        }
        result
    }
}

/// A checked request: what [`Ca::issue_with`] signs and writes.
struct Plan {
    validity: Validity,
    cn: String,
    sans: Vec<San>,
    outputs: Vec<(PathBuf, &'static str, u32)>,
}

/// `(path, extension, mode)` for each file a command writes, key first.
fn output_paths(prefix: Option<&Path>, with_key: bool) -> Vec<(PathBuf, &'static str, u32)> {
    let Some(prefix) = prefix else { return Vec::new() };
    let mut out = Vec::new();
    if with_key {
        out.push((store::with_suffix(prefix, "key"), "key", store::KEY_MODE));
    }
    out.push((store::with_suffix(prefix, "crt"), "crt", store::PUBLIC_MODE));
    out
}

fn resolve_sans(kind: CertKind, cn: &str, sans: &[San]) -> Result<Vec<San>> {
    for san in sans {
        if let San::Dns(name) = san {
            check_dns_name(name)?;
        }
    }
    if kind == CertKind::Server && sans.is_empty() {
        // TLS clients match the host name against SANs only, never the CN.
        check_dns_name(cn).map_err(|_| CaError::NoServerName { cn: cn.to_owned() })?;
        return Ok(vec![San::Dns(cn.to_owned())]);
    }
    Ok(sans.to_vec())
}

pub(crate) fn leaf_params(entry: &IndexEntry, serial: &Serial) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(ou) = &entry.ou {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    dn.push(DnType::CommonName, entry.cn.as_str());
    params.distinguished_name = dn;
    params.subject_alt_names = entry.sans.iter().map(san_type).collect::<Result<_>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if matches!(entry.key_kind, Some(KeyKind::Rsa2048 | KeyKind::Rsa4096)) {
        // TLS 1.2 RSA key exchange encrypts the premaster secret to this key.
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![match entry.kind {
        CertKind::Server => ExtendedKeyUsagePurpose::ServerAuth,
        CertKind::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial.to_rcgen());
    params.not_before = entry.not_before;
    params.not_after = entry.not_after;
    Ok(params)
}

fn san_type(san: &San) -> Result<SanType> {
    match san {
        San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
        San::Dns(name) => {
            let ia5 = name
                .as_str()
                .try_into()
                .map_err(|e: rcgen::Error| CaError::InvalidName {
                    what: "DNS name",
                    value: name.clone(),
                    detail: e.to_string(),
                })?;
            Ok(SanType::DnsName(ia5))
        }
    }
}

/// A DN attribute value: non-empty, at most 64 characters (RFC 5280 upper
/// bound for CN and OU), no control characters.
pub(crate) fn check_name(what: &'static str, value: &str) -> Result<()> {
    let invalid = |detail: &str| CaError::InvalidName {
        what,
        value: value.to_owned(),
        detail: detail.to_owned(),
    };
    if value.trim().is_empty() {
        return Err(invalid("must not be empty"));
    }
    if value.chars().count() > 64 {
        return Err(invalid("longer than 64 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("contains control characters"));
    }
    Ok(())
}

/// A host name as TLS clients match it: ASCII labels of letters, digits,
/// `-` and `_`, optionally a leading `*.` wildcard.
pub(crate) fn check_dns_name(name: &str) -> Result<()> {
    let invalid = |detail: &str| CaError::InvalidName {
        what: "DNS name",
        value: name.to_owned(),
        detail: detail.to_owned(),
    };
    let body = name.strip_prefix("*.").unwrap_or(name);
    if body.is_empty() || name.len() > 253 {
        return Err(invalid("must be 1 to 253 characters"));
    }
    for label in body.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid("each dot-separated label must be 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || label.starts_with('-')
        {
            return Err(invalid(
                "labels hold letters, digits, '-' and '_' only (use --ip for addresses)",
            ));
        }
    }
    if body.parse::<std::net::IpAddr>().is_ok() {
        return Err(invalid("this is an IP address: use --ip"));
    }
    Ok(())
}
