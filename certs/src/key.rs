//! Key types the CA offers and how each is generated. ring does the signing
//! for all of them; it cannot generate RSA keys, so the `rsa` crate makes
//! those and hands ring a PKCS#8 document.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, PublicKeyData, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PKCS_RSA_SHA256};
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Serialize};

use crate::error::{CaError, Result};

/// The kind of key a certificate carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// ECDSA on P-256 with SHA-256: small, fast, understood by every TLS stack.
    #[default]
    EcdsaP256,
    /// Ed25519: smallest; needs TLS 1.3 or a recent TLS 1.2 stack on the device.
    Ed25519,
    /// RSA 2048 with PKCS#1 v1.5 SHA-256 signatures, for devices without ECC.
    Rsa2048,
    /// RSA 4096: slower to generate and to handshake.
    Rsa4096,
}

impl KeyKind {
    /// The names accepted by [`FromStr`] and printed by [`fmt::Display`].
    pub const NAMES: [&'static str; 4] = ["ecdsa-p256", "ed25519", "rsa-2048", "rsa-4096"];

    /// The name of this kind as in [`KeyKind::NAMES`].
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Ed25519 => "ed25519",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa4096 => "rsa-4096",
        }
    }

    /// Generates a fresh key pair of this kind.
    pub fn generate(self) -> Result<KeyPair> {
        let failed = |detail: String| CaError::KeyGeneration {
            kind: self.name(),
            detail,
        };
        match self {
            Self::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| failed(e.to_string())),
            Self::Ed25519 => KeyPair::generate_for(&PKCS_ED25519).map_err(|e| failed(e.to_string())),
            Self::Rsa2048 => generate_rsa(2048).map_err(failed),
            Self::Rsa4096 => generate_rsa(4096).map_err(failed),
        }
    }

    /// Which kind `key` is, or `None` for a key this CA does not issue.
    pub fn of(key: &KeyPair) -> Option<Self> {
        Self::of_spki(&key.subject_public_key_info())
    }

    /// Which kind the DER SubjectPublicKeyInfo `spki_der` holds, or `None`
    /// for a key this CA does not issue (P-384, RSA-3072, ...).
    pub fn of_spki(spki_der: &[u8]) -> Option<Self> {
        use x509_parser::oid_registry::{
            OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
        };
        use x509_parser::prelude::FromDer;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).ok()?;
        let alg = &spki.algorithm;
        if alg.algorithm == OID_SIG_ED25519 {
            Some(Self::Ed25519)
        } else if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = alg.parameters.as_ref()?.as_oid().ok()?;
            (curve == OID_EC_P256).then_some(Self::EcdsaP256)
        } else if alg.algorithm == OID_PKCS1_RSAENCRYPTION {
            match spki.parsed().ok()?.key_size() {
                2048 => Some(Self::Rsa2048),
                4096 => Some(Self::Rsa4096),
                _ => None,
            }
        } else {
            None
        }
    }
}

fn generate_rsa(bits: usize) -> Result<KeyPair, String> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits).map_err(|e| e.to_string())?;
    let pkcs8 = key.to_pkcs8_der().map_err(|e| e.to_string())?;
    let der = PrivatePkcs8KeyDer::from(pkcs8.as_bytes());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &PKCS_RSA_SHA256).map_err(|e| e.to_string())
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key type name not in [`KeyKind::NAMES`].
#[derive(Debug, thiserror::Error)]
#[error("unknown key type {0:?} (expected one of: ecdsa-p256, ed25519, rsa-2048, rsa-4096)")]
pub struct UnknownKeyKind(String);

impl FromStr for KeyKind {
    type Err = UnknownKeyKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ecdsa-p256" | "ecdsa" | "p256" => Ok(Self::EcdsaP256),
            "ed25519" => Ok(Self::Ed25519),
            "rsa-2048" | "rsa2048" => Ok(Self::Rsa2048),
            "rsa-4096" | "rsa4096" => Ok(Self::Rsa4096),
            other => Err(UnknownKeyKind(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in KeyKind::NAMES {
            let kind: KeyKind = name.parse().expect("listed name parses");
            assert_eq!(kind.name(), name);
        }
        assert!("dsa".parse::<KeyKind>().is_err());
    }

    #[test]
    fn generated_keys_report_their_kind() {
        for kind in [KeyKind::EcdsaP256, KeyKind::Ed25519, KeyKind::Rsa2048] {
            let key = kind.generate().expect("generate");
            assert_eq!(KeyKind::of(&key), Some(kind));
            let reloaded = KeyPair::from_pem(&key.serialize_pem()).expect("reload PEM");
            assert_eq!(KeyKind::of(&reloaded), Some(kind), "{kind} survives a PEM round trip");
        }
    }
}
