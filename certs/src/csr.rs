//! Certificate signing requests from devices that keep their own key. The
//! CSR only proves possession of the key (its signature must verify) and
//! offers a CN; the extensions it asks for are ignored, because what a
//! certificate allows is the operator's decision, not the device's.

use std::path::Path;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::error::{CaError, Result};

/// PEM labels that carry a PKCS#10 request.
const CSR_TAGS: [&str; 2] = ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];

/// What the CA takes from a CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Csr {
    /// The DER SubjectPublicKeyInfo to certify.
    pub(crate) spki: Vec<u8>,
    /// The subject CN it asks for, if any.
    pub(crate) cn: Option<String>,
}

/// Parses a PEM or DER CSR and checks its self-signature. `path` names the
/// source in errors.
pub(crate) fn parse_csr(bytes: &[u8], path: &Path) -> Result<Csr> {
    let bad = |detail: String| CaError::BadCsr {
        path: path.to_owned(),
        detail,
    };
    let der = if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let blocks = pem::parse_many(bytes).map_err(|e| bad(format!("malformed PEM: {e}")))?;
        let tags: Vec<String> = blocks.iter().map(|b| b.tag().to_owned()).collect();
        blocks
            .into_iter()
            .find(|b| CSR_TAGS.contains(&b.tag()))
            .ok_or_else(|| {
                bad(format!(
                    "no CERTIFICATE REQUEST block in the PEM (found: {})",
                    tags.join(", ")
                ))
            })?
            .into_contents()
    } else if bytes.first() == Some(&0x30) {
        bytes.to_vec()
    } else {
        return Err(bad(
            "neither PEM (no -----BEGIN CERTIFICATE REQUEST-----) nor DER".into()
        ));
    };
    let (rest, csr) = X509CertificationRequest::from_der(&der).map_err(|e| bad(e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the request".into()));
    }
    csr.verify_signature()
        .map_err(|_| CaError::CsrSignature { path: path.to_owned() })?;
    let info = &csr.certification_request_info;
    let cn = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    Ok(Csr {
        spki: info.subject_pki.raw.to_vec(),
        cn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData};

    fn csr_pem(cn: &str, key: &KeyPair) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serialize_request(key).expect("csr").pem().expect("pem")
    }

    #[test]
    fn takes_key_and_cn() {
        let key = KeyPair::generate().expect("key");
        let csr = parse_csr(csr_pem("dev-7", &key).as_bytes(), Path::new("dev.csr")).expect("parse");
        assert_eq!(csr.cn.as_deref(), Some("dev-7"));
        assert_eq!(csr.spki, key.subject_public_key_info());
    }

    #[test]
    fn rejects_a_tampered_signature() {
        let key = KeyPair::generate().expect("key");
        let pem_text = csr_pem("dev-7", &key);
        let mut der = pem::parse(&pem_text).expect("pem").into_contents();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let err = parse_csr(&der, Path::new("dev.csr")).expect_err("bad signature");
        assert!(matches!(err, CaError::CsrSignature { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("dev.csr: the CSR's signature does not verify"),
            "{err}"
        );
    }

    #[test]
    fn rejects_garbage() {
        let err = parse_csr(b"not a csr", Path::new("x.csr")).expect_err("garbage");
        assert!(
            err.to_string().contains("x.csr: not a certificate signing request"),
            "{err}"
        );
    }
}
