//! Configuration errors a person can act on: the key path, the line and
//! column, the offending text and what would have been valid.

use std::fmt;
use std::path::PathBuf;

use crate::span::Pos;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path of the value at fault, e.g. `broker.nodes[0].listeners[1].bind`;
    /// empty for problems with the document as a whole.
    pub path: String,
    /// Where the value (or, for a missing key, its parent) starts.
    pub pos: Pos,
    /// What is wrong, and what would be valid.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Pos { line, col } = self.pos;
        if self.path.is_empty() {
            write!(f, "line {line} col {col}: {}", self.message)
        } else {
            write!(f, "{}: line {line} col {col}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one file, in document order.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file named by the operator.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file was read and is not a valid configuration.
    #[error("{}", Invalid(.0))]
    Invalid(Vec<ConfigError>),
}

struct Invalid<'a>(&'a [ConfigError]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} error{} in configuration", if n == 1 { "" } else { "s" })?;
        for e in self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl LoadError {
    /// The individual problems (empty for a read error).
    pub fn errors(&self) -> &[ConfigError] {
        match self {
            LoadError::Read { .. } => &[],
            LoadError::Invalid(errors) => errors,
        }
    }
}
