//! The one error type of the CA library. Each variant names what an operator
//! needs to fix the problem: the file, the serial, the CN, the date.

use std::io;
use std::path::PathBuf;

use time::OffsetDateTime;

/// Everything that can go wrong in the CA library.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// `init` found CA files already there; nothing was written.
    #[error("{path} already exists: refusing to overwrite an existing CA (choose another --dir)")]
    CaExists {
        /// The first CA file found.
        path: PathBuf,
    },
    /// An output file exists and the caller did not ask to replace it.
    #[error("{path} already exists: refusing to overwrite it (use --force to replace it)")]
    OutputExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The directory holds no CA (no `ca.crt` / `ca.key`).
    #[error("{dir} is not a CA directory (no {missing}); create one with `skerry ca init --dir {dir}`")]
    NotACa {
        /// The directory that was opened.
        dir: PathBuf,
        /// The file that is missing.
        missing: &'static str,
    },
    /// A file was expected to hold a certificate and does not.
    #[error("{path}: not a certificate: {detail}")]
    BadCertificate {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// A private key could not be read.
    #[error("{path}: not a usable private key: {detail}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// `ca.key` does not belong to `ca.crt`.
    #[error("{key} does not match the public key in {cert}")]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// The CA certificate is outside its validity period.
    #[error("the CA certificate {path} is valid from {not_before} to {not_after}, not now: create a new CA")]
    CaNotValidNow {
        /// `ca.crt`.
        path: PathBuf,
        /// Start of the CA's validity.
        not_before: OffsetDateTime,
        /// End of the CA's validity.
        not_after: OffsetDateTime,
    },
    /// The requested certificate would outlive the CA that signs it.
    #[error(
        "the certificate would be valid until {not_after} but the CA expires on {ca_not_after}: ask for fewer days"
    )]
    OutlivesCa {
        /// Requested end of validity.
        not_after: OffsetDateTime,
        /// End of the CA's validity.
        ca_not_after: OffsetDateTime,
    },
    /// The certificate signing request could not be parsed.
    #[error("{path}: not a certificate signing request: {detail}")]
    BadCsr {
        /// The CSR file (or `<memory>`).
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// The CSR's signature does not verify with the public key it carries.
    #[error("{path}: the CSR's signature does not verify with its own public key: refusing to sign it")]
    CsrSignature {
        /// The CSR file (or `<memory>`).
        path: PathBuf,
    },
    /// A value given for a name (CN, DNS SAN, OU) is not usable.
    #[error("invalid {what} {value:?}: {detail}")]
    InvalidName {
        /// Which field (`CN`, `DNS name`, `OU`).
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Why.
        detail: String,
    },
    /// A server certificate needs at least one SAN; TLS clients ignore the CN.
    #[error("a server certificate needs a DNS or IP name: {cn:?} is not a DNS name, add --dns or --ip")]
    NoServerName {
        /// The CN that could not serve as a DNS name.
        cn: String,
    },
    /// The validity period asked for is empty or inverted.
    #[error("invalid validity: {detail}")]
    InvalidValidity {
        /// Why.
        detail: String,
    },
    /// A serial number given on the command line is not hex.
    #[error("{input:?} is not a serial number (expected hex digits, as `skerry ca list` prints)")]
    InvalidSerial {
        /// The rejected text.
        input: String,
    },
    /// No certificate in the index has this serial.
    #[error("no certificate with serial {serial} in {index}")]
    UnknownSerial {
        /// The serial asked for.
        serial: String,
        /// The index that was searched.
        index: PathBuf,
    },
    /// No certificate in the index has this CN (and is still valid, where that matters).
    #[error("no {status}certificate with CN {cn:?} in {index}")]
    UnknownCn {
        /// The CN asked for.
        cn: String,
        /// `"unrevoked "` when only unrevoked certificates count, else empty.
        status: &'static str,
        /// The index that was searched.
        index: PathBuf,
    },
    /// A name given without `--serial`/`--cn` matches both a serial and a CN.
    #[error("{input:?} is both a serial number and a CN in the index: say --serial or --cn")]
    Ambiguous {
        /// The text that matched twice.
        input: String,
    },
    /// The certificate is already revoked.
    #[error("certificate {serial} (CN {cn:?}) is already revoked")]
    AlreadyRevoked {
        /// Its serial.
        serial: String,
        /// Its CN.
        cn: String,
    },
    /// The index file is unreadable or inconsistent.
    #[error("{path}: corrupt CA index: {detail}")]
    BadIndex {
        /// `index.json`.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Generating a key failed.
    #[error("generating a {kind} key failed: {detail}")]
    KeyGeneration {
        /// The key type.
        kind: &'static str,
        /// What the generator said.
        detail: String,
    },
    /// The operating system's random source failed; no serial can be drawn.
    #[error("the operating system's random number source failed")]
    Entropy,
    /// rcgen refused to build or sign something.
    #[error("{what} failed: {source}")]
    Sign {
        /// What was being built (`"signing the certificate for CN dev-1"`).
        what: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
}

impl CaError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    pub(crate) fn sign(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> Self {
        let what = what.into();
        move |source| Self::Sign { what, source }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = CaError> = std::result::Result<T, E>;
