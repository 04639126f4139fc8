//! Certificate serial numbers: 16 random bytes, positive, never zero-led,
//! written as upper-case hex the way `openssl x509 -serial` prints them.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::error::CaError;

/// A certificate serial number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A fresh random serial: 16 bytes, first byte in `0x01..=0x7f` so the
    /// DER integer is positive and exactly 16 bytes long.
    pub(crate) fn random() -> Result<Self, CaError> {
        let mut bytes = [0u8; 16];
        SystemRandom::new().fill(&mut bytes).map_err(|_| CaError::Entropy)?;
        bytes[0] = (bytes[0] & 0x7f).max(1);
        Ok(Self(bytes.to_vec()))
    }

    /// The serial as read from a certificate (big-endian, sign byte dropped).
    pub fn from_be_bytes(bytes: &[u8]) -> Self {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len().saturating_sub(1));
        Self(bytes[start..].to_vec())
    }

    /// The big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn to_rcgen(&self) -> rcgen::SerialNumber {
        rcgen::SerialNumber::from_slice(&self.0)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

impl FromStr for Serial {
    type Err = CaError;

    /// Accepts hex with or without `:` separators, any case, optional `0x`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || CaError::InvalidSerial { input: s.to_owned() };
        let trimmed = s.trim();
        let hex: String = trimmed
            .strip_prefix("0x")
            .unwrap_or(trimmed)
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if hex.is_empty() || hex.len() > 42 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let padded = if hex.len() % 2 == 1 { format!("0{hex}") } else { hex };
        let bytes = (0..padded.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).map_err(|_| invalid()))
            .collect::<Result<Vec<u8>, _>>()?;
        Ok(Self::from_be_bytes(&bytes))
    }
}

impl TryFrom<String> for Serial {
    type Error = CaError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Serial> for String {
    fn from(s: Serial) -> Self {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_positive_16_bytes_and_distinct() {
        let a = Serial::random().expect("random");
        let b = Serial::random().expect("random");
        assert_ne!(a, b);
        for s in [&a, &b] {
            assert_eq!(s.as_bytes().len(), 16);
            assert!(s.as_bytes()[0] >= 1 && s.as_bytes()[0] <= 0x7f);
        }
    }

    #[test]
    fn parses_what_openssl_and_x509_parser_print() {
        let s: Serial = "5A:3f:00:01".parse().expect("colon form");
        assert_eq!(s.to_string(), "5A3F0001");
        assert_eq!("0x5a3f0001".parse::<Serial>().expect("0x form"), s);
        assert_eq!("005A3F0001".parse::<Serial>().expect("leading zero"), s);
        assert!("dev-1".parse::<Serial>().is_err());
        assert!("".parse::<Serial>().is_err());
    }
}
