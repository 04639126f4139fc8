//! The schema of Skerry's one YAML file.
//!
//! Loading runs in two passes: `yaml_serde` deserializes the text into raw
//! types that mirror the file and reject unknown keys; `validate` turns them
//! into the typed [`Config`], collecting every problem with its key path and
//! `line:column` (positions come from a separate event pass, see `span`).
//! Relative paths in a file are resolved against the file's directory.

mod error;
mod lb;
mod model;
mod raw;
mod span;
pub mod units;
mod validate;

use std::path::Path;

pub use error::{ConfigError, LoadError};
pub use lb::*;
pub use model::*;
pub use span::Pos;

use raw::RawConfig;
use span::SpanIndex;

/// The documented reference configuration (`packaging/skerry.yaml`), as
/// printed by `skerry config example` and installed as `/etc/skerry/skerry.yaml`.
pub const REFERENCE_YAML: &str = include_str!("../../packaging/skerry.yaml");

/// What `skerry run` starts without `-c`: a balancer in front of one node,
/// state under `./skerry-data` (see the file for the details).
pub const DEFAULT_YAML: &str = include_str!("default.yaml");

/// The embedded default, with its relative paths resolved against `base`
/// (the working directory).
pub fn embedded_default(base: &Path) -> Result<Config, LoadError> {
    parse(DEFAULT_YAML, base)
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base)
}

/// Validates `text`; relative paths in it are resolved against `base`.
pub fn parse(text: &str, base: &Path) -> Result<Config, LoadError> {
    let spans = SpanIndex::build(text);
    let raw = deserialize(text, &spans)?;
    let mut cx = validate::Ctx::new(&spans, base);
    let config = validate::build(raw, &mut cx);
    cx.errors.sort_by_key(|e| (e.pos.line, e.pos.col));
    if cx.errors.is_empty() {
        Ok(config)
    } else {
        Err(LoadError::Invalid(cx.errors))
    }
}

fn deserialize(text: &str, spans: &SpanIndex) -> Result<RawConfig, LoadError> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(RawConfig::default());
    }
    let de = yaml_serde::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." || path == "?" {
            String::new()
        } else {
            path
        };
        let inner = e.into_inner();
        let pos = inner.location().map_or_else(
            || spans.find(&path),
            |l| Pos {
                line: l.line(),
                col: l.column(),
            },
        );
        let message = humanize(&inner.to_string(), &path);
        LoadError::Invalid(vec![ConfigError { path, pos, message }])
    })
}

/// yaml_serde words its messages for programmers: it repeats the path in
/// front, the position at the end, and names Rust types. We print the path
/// and position ourselves and name what a person would write instead.
fn humanize(message: &str, path: &str) -> String {
    let message = match message.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && path.starts_with(head) => rest,
        _ => message,
    };
    let message = message.rfind(" at line ").map_or(message, |cut| &message[..cut]);
    let mut message = message.to_owned();
    for (rust, human) in [
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number from 0 to 4294967295"),
        ("expected u64", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected a list"),
    ] {
        message = message.replace(rust, human);
    }
    if let Some(cut) = message.find("expected struct Raw") {
        message.replace_range(cut.., "expected a mapping of keys");
    }
    message
}

#[cfg(test)]
mod tests;
