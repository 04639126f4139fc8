//! Raw -> validated. Every check runs, and every problem is collected with
//! its key path and position, so `skerry config check` lists them all.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::ConfigError;

mod broker;
mod lb;
mod tls;

use crate::model::{Admin, Ca, Config, Logging};
use crate::raw::{RawAdmin, RawConfig, Text};
use crate::span::SpanIndex;
use crate::units::UnitError;

/// Longest path a Unix socket address holds (`sun_path` less its NUL).
const UNIX_PATH_MAX: usize = 107;

/// Collects errors while raw values are turned into validated ones.
pub(crate) struct Ctx<'a> {
    spans: &'a SpanIndex,
    /// Relative paths in the file are resolved against this directory.
    base: &'a Path,
    /// Every listener address seen so far, with its key path.
    binds: Vec<(SocketAddr, String)>,
    /// Every listener's handover socket seen so far, with its key path.
    handover_sockets: Vec<(PathBuf, String)>,
    /// The CA directory, once the `ca` section is read.
    ca_dir: PathBuf,
    pub(crate) errors: Vec<ConfigError>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(spans: &'a SpanIndex, base: &'a Path) -> Self {
        Self {
            spans,
            base,
            binds: Vec::new(),
            handover_sockets: Vec::new(),
            ca_dir: PathBuf::new(),
            errors: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, path: &str, message: impl Display) {
        let pos = self.spans.find(path);
        self.errors.push(ConfigError {
            path: path.to_owned(),
            pos,
            message: message.to_string(),
        });
    }

    /// Parses a unit value; on failure records `"<text>" is not <expected>`.
    pub(super) fn unit<T: FromStr<Err = UnitError>>(&mut self, path: &str, text: &Text) -> Option<T> {
        match text.0.parse() {
            Ok(v) => Some(v),
            Err(UnitError(expected)) => {
                self.error(path, format_args!("{:?} is not {expected}", text.0));
                None
            }
        }
    }

    /// A unit value that falls back to `default` when absent (or invalid, after recording the error).
    pub(super) fn unit_or<T: FromStr<Err = UnitError>>(&mut self, path: &str, text: Option<Text>, default: T) -> T {
        text.and_then(|t| self.unit(path, &t)).unwrap_or(default)
    }

    pub(super) fn socket_addr(&mut self, path: &str, text: &Text) -> Option<SocketAddr> {
        let parsed = text.0.parse().ok();
        if parsed.is_none() {
            self.error(
                path,
                format_args!(
                    "{:?} is not a socket address (expected IP:PORT, e.g. 0.0.0.0:1883 or [::]:1883)",
                    text.0
                ),
            );
        }
        parsed
    }

    /// The CA directory (`ca.dir`, resolved).
    pub(super) fn ca_dir(&self) -> &Path {
        &self.ca_dir
    }

    pub(super) fn path_buf(&self, p: &Path) -> PathBuf {
        self.base.join(p)
    }

    /// A Unix socket's path, resolved; `None` (and an error) when it is
    /// longer than a socket address holds.
    pub(super) fn unix_socket(&mut self, path: &str, p: &Path) -> Option<PathBuf> {
        let full = self.path_buf(p);
        let len = full.as_os_str().len();
        if len > UNIX_PATH_MAX {
            let message = format!(
                "{} is {len} bytes long; a Unix socket's path holds at most {UNIX_PATH_MAX}",
                full.display()
            );
            self.error(path, message);
            return None;
        }
        Some(full)
    }

    /// A file that must exist when the process starts.
    pub(super) fn existing_file(&mut self, path: &str, p: &Path) -> PathBuf {
        let full = self.path_buf(p);
        if !full.is_file() {
            self.error(path, format_args!("file {} does not exist", full.display()));
        }
        full
    }
}

/// Builds the validated configuration, or every error found.
pub(crate) fn build(raw: RawConfig, cx: &mut Ctx<'_>) -> Config {
    let logging = raw.logging.map_or_else(Logging::default, |l| {
        let mut logging = Logging::default();
        if let Some(level) = l.level {
            check_log_filter(cx, &level);
            logging.level = level;
        }
        logging.format = l.format.unwrap_or(logging.format);
        logging
    });
    let ca = Ca {
        dir: raw
            .ca
            .and_then(|c| c.dir)
            .map_or_else(|| cx.path_buf(&Ca::default().dir), |d| cx.path_buf(&d)),
    };
    cx.ca_dir.clone_from(&ca.dir);
    let broker = raw.broker.map(|b| broker::broker(cx, b)).unwrap_or_default();
    let lb = raw.lb.map(|l| lb::lb(cx, l));
    let admin = raw.admin.and_then(|a| admin(cx, a));
    Config {
        logging,
        ca,
        broker,
        lb,
        admin,
    }
}

fn admin(cx: &mut Ctx<'_>, raw: RawAdmin) -> Option<Admin> {
    let text = raw.bind.unwrap_or_else(|| Text(Admin::DEFAULT_BIND.to_owned()));
    let bind = cx.socket_addr("admin.bind", &text);
    if let Some(addr) = bind {
        claim_port(cx, "admin.bind".to_owned(), addr);
    }
    let token_file = raw.token_file.map(|p| cx.existing_file("admin.token_file", &p));
    Some(Admin {
        bind: bind?,
        token_file,
    })
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

fn check_log_filter(cx: &mut Ctx<'_>, filter: &str) {
    for directive in filter.split(',').map(str::trim) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            cx.error(
                "logging.level",
                format_args!(
                    "{directive:?} is not a log level (expected one of {} or target=level)",
                    LEVELS.join(", ")
                ),
            );
        }
    }
}

/// Two listeners cannot take clients on one handover socket.
pub(super) fn claim_socket(cx: &mut Ctx<'_>, path: String, socket: &Path) {
    if let Some((_, other)) = cx.handover_sockets.iter().find(|(s, _)| s == socket) {
        let message = format!("{} is already the handover socket of {other}", socket.display());
        cx.error(&path, message);
    }
    cx.handover_sockets.push((socket.to_path_buf(), path));
}

/// Two listeners cannot share a port when their addresses overlap (the
/// same IP, or either is the wildcard address).
pub(super) fn claim_port(cx: &mut Ctx<'_>, path: String, a: SocketAddr) {
    let overlaps = |b: &SocketAddr| {
        a.port() == b.port()
            && a.port() != 0
            && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
    };
    if let Some((_, other)) = cx.binds.iter().find(|(b, _)| overlaps(b)) {
        let message = format!("port {} is already used by {other}", a.port());
        cx.error(&path, message);
    }
    cx.binds.push((a, path));
}
