//! Reading certificates from files (PEM or DER) and describing them for
//! `skerry ca show`. Works on any X.509 certificate, not only ours.

use std::fmt;
use std::path::Path;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{self as oids, Oid};

use crate::error::{CaError, Result};
use crate::serial::Serial;
use crate::store;

/// PEM labels that carry an X.509 certificate.
const CERT_TAGS: [&str; 3] = ["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"];

/// Reads every certificate in `path`: PEM (one or more blocks) or one DER
/// certificate. Each is checked to parse as X.509.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    parse_certificates(&store::read(path)?, path)
}

/// Like [`read_certificates`] for bytes already in memory; `path` only names
/// the source in errors.
pub fn parse_certificates(bytes: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |detail: String| CaError::BadCertificate {
        path: path.to_owned(),
        detail,
    };
    let ders: Vec<Vec<u8>> = if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let blocks = pem::parse_many(bytes).map_err(|e| bad(format!("malformed PEM: {e}")))?;
        let tags: Vec<String> = blocks.iter().map(|b| b.tag().to_owned()).collect();
        let certs: Vec<Vec<u8>> = blocks
            .into_iter()
            .filter(|b| CERT_TAGS.contains(&b.tag()))
            .map(pem::Pem::into_contents)
            .collect();
        if certs.is_empty() {
            return Err(bad(format!(
                "no CERTIFICATE block in the PEM (found: {})",
                tags.join(", ")
            )));
        }
        certs
    } else if bytes.first() == Some(&0x30) {
        vec![bytes.to_vec()]
    } else {
        return Err(bad("neither PEM (no -----BEGIN CERTIFICATE-----) nor DER".into()));
    };
    ders.into_iter()
        .enumerate()
        .map(|(i, der)| match x509_parser::parse_x509_certificate(&der) {
            Ok(([], _)) => Ok(CertificateDer::from(der)),
            Ok(_) => Err(bad(format!("certificate {} has trailing bytes", i + 1))),
            Err(e) => Err(bad(format!("certificate {} does not parse: {e}", i + 1))),
        })
        .collect()
}

/// PEM text of one DER object, with `\n` line endings.
pub(crate) fn pem_encode(tag: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der), config)
}

/// What `skerry ca show` prints about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject DN, RFC 4514 style (`C=DE, O=Acme, CN=dev-1`).
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, upper-case hex.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Subject alternative names (`DNS:x`, `IP:1.2.3.4`, `email:...`, `URI:...`).
    pub sans: Vec<String>,
    /// Public key (`ECDSA P-256`, `RSA 2048`, `Ed25519`).
    pub public_key: String,
    /// Signature algorithm (`ecdsa-with-SHA256`, ...).
    pub signature: String,
    /// Key usage flags, if the extension is present.
    pub key_usage: Option<String>,
    /// Extended key usages (`serverAuth`, `clientAuth`, ...).
    pub extended_key_usage: Vec<String>,
    /// `Some(path_len)` for a CA certificate.
    pub ca: Option<Option<u32>>,
    /// SHA-256 of the DER, `AB:CD:...` as `openssl x509 -fingerprint -sha256`.
    pub sha256: String,
    /// SHA-1 of the DER, for tools that still show it.
    pub sha1: String,
}

impl CertInfo {
    /// Describes one DER certificate.
    pub fn from_der(der: &[u8], path: &Path) -> Result<Self> {
        let (_, x509) = x509_parser::parse_x509_certificate(der).map_err(|e| CaError::BadCertificate {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let ext_err = |e: x509_parser::error::X509Error| CaError::BadCertificate {
            path: path.to_owned(),
            detail: format!("bad extension: {e}"),
        };
        let sans = match x509.subject_alternative_name().map_err(ext_err)? {
            Some(ext) => ext.value.general_names.iter().map(general_name).collect(),
            None => Vec::new(),
        };
        let key_usage = x509.key_usage().map_err(ext_err)?.map(|ku| ku.value.to_string());
        let extended_key_usage = x509
            .extended_key_usage()
            .map_err(ext_err)?
            .map(|e| eku_names(e.value))
            .unwrap_or_default();
        let ca = x509
            .basic_constraints()
            .map_err(ext_err)?
            .filter(|bc| bc.value.ca)
            .map(|bc| bc.value.path_len_constraint);
        Ok(Self {
            subject: x509.subject().to_string(),
            issuer: x509.issuer().to_string(),
            serial: Serial::from_be_bytes(x509.raw_serial()),
            not_before: x509.validity().not_before.to_datetime(),
            not_after: x509.validity().not_after.to_datetime(),
            sans,
            public_key: key_name(&x509),
            signature: oid_name(&x509.signature_algorithm.algorithm),
            key_usage,
            extended_key_usage,
            ca,
            sha256: fingerprint(&ring::digest::SHA256, der),
            sha1: fingerprint(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der),
        })
    }
}

/// Describes every certificate in `path` (PEM or DER).
pub fn inspect_file(path: &Path) -> Result<Vec<CertInfo>> {
    read_certificates(path)?
        .iter()
        .map(|der| CertInfo::from_der(der, path))
        .collect()
}

fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::IPAddress(b) => match <[u8; 4]>::try_from(*b) {
            Ok(v4) => format!("IP:{}", std::net::Ipv4Addr::from(v4)),
            Err(_) => match <[u8; 16]>::try_from(*b) {
                Ok(v6) => format!("IP:{}", std::net::Ipv6Addr::from(v6)),
                Err(_) => format!("IP:<{} bytes>", b.len()),
            },
        },
        GeneralName::RFC822Name(m) => format!("email:{m}"),
        GeneralName::URI(u) => format!("URI:{u}"),
        other => format!("{other}"),
    }
}

fn eku_names(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let flags = [
        (eku.any, "any"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ];
    let known = flags.iter().filter(|(on, _)| *on).map(|(_, n)| (*n).to_owned());
    known.chain(eku.other.iter().map(|o| o.to_id_string())).collect()
}

fn key_name(x509: &X509Certificate<'_>) -> String {
    let spki = x509.public_key();
    let alg = &spki.algorithm.algorithm;
    if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == oids::OID_EC_P256 => "ECDSA P-256".into(),
            Some(c) if c == oids::OID_NIST_EC_P384 => "ECDSA P-384".into(),
            Some(c) if c == oids::OID_NIST_EC_P521 => "ECDSA P-521".into(),
            Some(c) => format!("ECDSA curve {}", c.to_id_string()),
            None => "ECDSA (unknown curve)".into(),
        }
    } else if *alg == oids::OID_PKCS1_RSAENCRYPTION {
        let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
        format!("RSA {bits}")
    } else if *alg == oids::OID_SIG_ED25519 {
        "Ed25519".into()
    } else {
        oid_name(alg)
    }
}

fn oid_name(oid: &Oid<'_>) -> String {
    let known = [
        (oids::OID_SIG_ECDSA_WITH_SHA256, "ecdsa-with-SHA256"),
        (oids::OID_SIG_ECDSA_WITH_SHA384, "ecdsa-with-SHA384"),
        (oids::OID_SIG_ECDSA_WITH_SHA512, "ecdsa-with-SHA512"),
        (oids::OID_PKCS1_SHA256WITHRSA, "sha256WithRSAEncryption"),
        (oids::OID_PKCS1_SHA384WITHRSA, "sha384WithRSAEncryption"),
        (oids::OID_PKCS1_SHA512WITHRSA, "sha512WithRSAEncryption"),
        (oids::OID_PKCS1_SHA1WITHRSA, "sha1WithRSAEncryption"),
        (oids::OID_PKCS1_RSASSAPSS, "rsassaPss"),
        (oids::OID_SIG_ED25519, "ED25519"),
    ];
    known
        .iter()
        .find(|(o, _)| o == oid)
        .map_or_else(|| oid.to_id_string(), |(_, n)| (*n).to_owned())
}

fn fingerprint(alg: &'static ring::digest::Algorithm, der: &[u8]) -> String {
    let digest = ring::digest::digest(alg, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `2026-01-31 12:00:00 UTC`.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&fmt).unwrap_or_else(|_| t.to_string())
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let none = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_owned()
            } else {
                v.join(", ")
            }
        };
        writeln!(f, "Subject:             {}", self.subject)?;
        writeln!(f, "Issuer:              {}", self.issuer)?;
        writeln!(f, "Serial:              {}", self.serial)?;
        writeln!(f, "Not before:          {}", format_time(self.not_before))?;
        writeln!(f, "Not after:           {}", format_time(self.not_after))?;
        writeln!(f, "SANs:                {}", none(&self.sans))?;
        writeln!(f, "Public key:          {}", self.public_key)?;
        writeln!(f, "Signature:           {}", self.signature)?;
        writeln!(
            f,
            "Key usage:           {}",
            self.key_usage.as_deref().unwrap_or("(none)")
        )?;
        writeln!(f, "Extended key usage:  {}", none(&self.extended_key_usage))?;
        match self.ca {
            Some(Some(len)) => writeln!(f, "CA:                  yes (path length {len})")?,
            Some(None) => writeln!(f, "CA:                  yes")?,
            None => writeln!(f, "CA:                  no")?,
        }
        writeln!(f, "SHA-256 fingerprint: {}", self.sha256)?;
        writeln!(f, "SHA-1 fingerprint:   {}", self.sha1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_named_clearly() {
        let p = Path::new("junk.pem");
        let err = parse_certificates(b"hello world", p).expect_err("garbage");
        assert!(
            err.to_string().contains("junk.pem: not a certificate: neither PEM"),
            "{err}"
        );
        let err = parse_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", p)
            .expect_err("bad DER in PEM");
        assert!(err.to_string().contains("does not parse"), "{err}");
        let key = rcgen::KeyPair::generate().expect("key").serialize_pem();
        let err = parse_certificates(key.as_bytes(), p).expect_err("a key, not a cert");
        assert!(err.to_string().contains("found: PRIVATE KEY"), "{err}");
    }

    #[test]
    fn describes_a_self_signed_rcgen_cert() {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(vec!["a.example".to_owned(), "10.0.0.1".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("sign");
        let certs = parse_certificates(cert.pem().as_bytes(), Path::new("x")).expect("parse");
        let info = CertInfo::from_der(&certs[0], Path::new("x")).expect("info");
        assert_eq!(info.sans, ["DNS:a.example", "IP:10.0.0.1"]);
        assert_eq!(info.public_key, "ECDSA P-256");
        assert_eq!(info.signature, "ecdsa-with-SHA256");
        assert_eq!(info.sha256.len(), 32 * 3 - 1);
        assert!(info.to_string().contains("CA:                  no"));
        // DER input gives the same description.
        let der = parse_certificates(cert.der(), Path::new("x")).expect("der");
        assert_eq!(CertInfo::from_der(&der[0], Path::new("x")).expect("info"), info);
    }
}
