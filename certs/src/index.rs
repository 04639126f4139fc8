//! `index.json`: what this CA has issued and revoked, and the next CRL number.
//! It is the CA's memory: `list`, `revoke`, `crl` and `renew` read it, and it
//! is always replaced whole and atomically.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{CaError, Result};
use crate::key::KeyKind;
use crate::serial::Serial;
use crate::store;

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    /// TLS server (a broker or balancer listener): server-auth EKU.
    Server,
    /// TLS client (a device): client-auth EKU.
    Client,
}

impl fmt::Display for CertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Server => "server",
            Self::Client => "client",
        })
    }
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum San {
    /// A DNS name (`broker.example.net`, `*.example.net`).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(d) => write!(f, "DNS:{d}"),
            Self::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// Whether a certificate was revoked. Expiry is not stored: it follows from
/// `not_after` (see [`IndexEntry::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not revoked.
    Valid,
    /// Revoked; listed in every CRL from then on.
    Revoked,
}

/// Why a certificate was revoked (RFC 5280 reason codes that make sense here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// No reason given.
    #[default]
    Unspecified,
    /// The device's private key leaked or may have.
    KeyCompromise,
    /// The CA key leaked.
    CaCompromise,
    /// The device changed owner or role.
    AffiliationChanged,
    /// Replaced by a newer certificate.
    Superseded,
    /// The device was decommissioned.
    CessationOfOperation,
    /// The device may no longer connect.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// The names accepted by [`FromStr`].
    pub const NAMES: [&'static str; 7] = [
        "unspecified",
        "key-compromise",
        "ca-compromise",
        "affiliation-changed",
        "superseded",
        "cessation-of-operation",
        "privilege-withdrawn",
    ];

    pub(crate) fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            Self::Unspecified => R::Unspecified,
            Self::KeyCompromise => R::KeyCompromise,
            Self::CaCompromise => R::CaCompromise,
            Self::AffiliationChanged => R::AffiliationChanged,
            Self::Superseded => R::Superseded,
            Self::CessationOfOperation => R::CessationOfOperation,
            Self::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::NAMES[*self as usize])
    }
}

/// A revocation reason name not in [`RevocationReason::NAMES`].
#[derive(Debug, thiserror::Error)]
#[error("unknown revocation reason {0:?} (expected one of: {names})", names = RevocationReason::NAMES.join(", "))]
pub struct UnknownReason(String);

impl FromStr for RevocationReason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const ALL: [RevocationReason; 7] = [
            RevocationReason::Unspecified,
            RevocationReason::KeyCompromise,
            RevocationReason::CaCompromise,
            RevocationReason::AffiliationChanged,
            RevocationReason::Superseded,
            RevocationReason::CessationOfOperation,
            RevocationReason::PrivilegeWithdrawn,
        ];
        ALL.into_iter()
            .find(|r| r.to_string() == s)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Its serial number.
    pub serial: Serial,
    /// Subject common name.
    pub cn: String,
    /// Server or client.
    pub kind: CertKind,
    /// Key type; `None` for a CSR key of a type this CA does not generate.
    pub key_kind: Option<KeyKind>,
    /// Subject alternative names.
    #[serde(default)]
    pub sans: Vec<San>,
    /// Subject organizational unit, if any.
    #[serde(default)]
    pub ou: Option<String>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Revoked or not.
    pub status: Status,
    /// When it was revoked.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked.
    #[serde(default)]
    pub reason: Option<RevocationReason>,
    /// Signed from a device's CSR: the CA never saw the private key.
    #[serde(default)]
    pub from_csr: bool,
    /// The certificate this one renewed.
    #[serde(default)]
    pub renewed_from: Option<Serial>,
}

impl IndexEntry {
    /// `valid`, `revoked` or `expired` at `now`.
    pub fn state(&self, now: OffsetDateTime) -> &'static str {
        match self.status {
            Status::Revoked => "revoked",
            Status::Valid if self.not_after <= now => "expired",
            Status::Valid => "valid",
        }
    }

    /// Where the CA keeps its copy of the certificate, relative to the CA dir.
    pub(crate) fn file_name(&self) -> PathBuf {
        Path::new(store::ISSUED).join(format!("{}.crt", self.serial))
    }
}

/// Which certificates a `revoke` or `renew` is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Exactly this serial.
    Serial(Serial),
    /// Every certificate with this CN.
    Cn(String),
    /// A serial if one matches, else a CN; both matching is an error.
    Either(String),
}

/// The parsed index file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Index {
    version: u32,
    /// The number the next CRL gets; starts at 1, only grows.
    pub(crate) next_crl_number: u64,
    pub(crate) certs: Vec<IndexEntry>,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            version: 1,
            next_crl_number: 1,
            certs: Vec::new(),
        }
    }
}

impl Index {
    /// Loads `dir/index.json`; a CA directory without one has issued nothing.
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(store::INDEX);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(CaError::Io { path, source: e }),
        };
        let index: Self = serde_json::from_slice(&bytes).map_err(|e| CaError::BadIndex {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if index.version != 1 {
            let detail = format!(
                "version {} is not supported (this skerry writes version 1)",
                index.version
            );
            return Err(CaError::BadIndex { path, detail });
        }
        Ok(index)
    }

    /// Replaces `dir/index.json` atomically.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(store::INDEX);
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| CaError::BadIndex {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        json.push(b'\n');
        store::write_atomic(&path, &json, store::PUBLIC_MODE, true)
    }

    pub(crate) fn contains(&self, serial: &Serial) -> bool {
        self.certs.iter().any(|c| &c.serial == serial)
    }

    /// Positions of the entries `sel` names; errors when none match.
    /// With `unrevoked_only`, a CN (not a serial) skips revoked entries.
    pub(crate) fn select(&self, sel: &Selector, unrevoked_only: bool, index_path: &Path) -> Result<Vec<usize>> {
        let by_serial = |s: &Serial| self.certs.iter().position(|c| &c.serial == s);
        let by_cn = |cn: &str| -> Vec<usize> {
            (0..self.certs.len())
                .filter(|&i| self.certs[i].cn == cn && (!unrevoked_only || self.certs[i].status == Status::Valid))
                .collect()
        };
        let unknown_serial = |s: &Serial| CaError::UnknownSerial {
            serial: s.to_string(),
            index: index_path.to_owned(),
        };
        let unknown_cn = |cn: &str| CaError::UnknownCn {
            cn: cn.to_owned(),
            status: if unrevoked_only { "unrevoked " } else { "" },
            index: index_path.to_owned(),
        };
        match sel {
            Selector::Serial(s) => by_serial(s).map(|i| vec![i]).ok_or_else(|| unknown_serial(s)),
            Selector::Cn(cn) => Some(by_cn(cn)).filter(|v| !v.is_empty()).ok_or_else(|| unknown_cn(cn)),
            Selector::Either(text) => {
                let serial_hit = text.parse::<Serial>().ok().and_then(|s| by_serial(&s));
                let cn_hits = by_cn(text);
                match (serial_hit, cn_hits.is_empty()) {
                    (Some(_), false) => Err(CaError::Ambiguous { input: text.clone() }),
                    (Some(i), true) => Ok(vec![i]),
                    (None, false) => Ok(cn_hits),
                    (None, true) => match text.parse::<Serial>() {
                        Ok(s) => Err(unknown_serial(&s)),
                        Err(_) => Err(unknown_cn(text)),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(serial: &str, cn: &str, status: Status) -> IndexEntry {
        IndexEntry {
            serial: serial.parse().expect("serial"),
            cn: cn.to_owned(),
            kind: CertKind::Client,
            key_kind: Some(KeyKind::EcdsaP256),
            sans: vec![San::Dns("a.example".into()), San::Ip("127.0.0.1".parse().expect("ip"))],
            ou: None,
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::UNIX_EPOCH + time::Duration::days(1),
            status,
            revoked_at: None,
            reason: None,
            from_csr: false,
            renewed_from: None,
        }
    }

    #[test]
    fn json_round_trip() {
        let mut index = Index::default();
        index.certs.push(entry("0A", "dev-1", Status::Valid));
        let json = serde_json::to_string(&index).expect("serialize");
        let back: Index = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.certs, index.certs);
    }

    #[test]
    fn selectors() {
        let mut index = Index::default();
        index.certs.push(entry("0A", "dev-1", Status::Valid));
        index.certs.push(entry("0B", "dev-1", Status::Revoked));
        index.certs.push(entry("0C", "0A", Status::Valid));
        let p = Path::new("index.json");
        assert_eq!(
            index.select(&Selector::Cn("dev-1".into()), true, p).expect("cn"),
            vec![0]
        );
        assert_eq!(
            index.select(&Selector::Cn("dev-1".into()), false, p).expect("cn"),
            vec![0, 1]
        );
        assert_eq!(
            index.select(&Selector::Either("0b".into()), true, p).expect("serial"),
            vec![1]
        );
        let err = index
            .select(&Selector::Either("0A".into()), true, p)
            .expect_err("ambiguous");
        assert!(matches!(err, CaError::Ambiguous { .. }), "{err}");
        let err = index
            .select(&Selector::Serial("FF".parse().expect("s")), true, p)
            .expect_err("unknown");
        assert!(err.to_string().contains("no certificate with serial FF"), "{err}");
    }

    #[test]
    fn reasons_parse_and_print() {
        for name in RevocationReason::NAMES {
            assert_eq!(name.parse::<RevocationReason>().expect("parse").to_string(), name);
        }
        assert!("lost".parse::<RevocationReason>().is_err());
    }
}
