//! Files on disk: the CA directory layout, atomic writes (temp file in the
//! same directory, fsync, rename, fsync the directory) and the lock that
//! keeps two writers from interleaving their index updates.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{CaError, Result};

/// The CA certificate inside a CA directory: what devices and listeners trust.
pub const CA_CERT: &str = "ca.crt";
/// The CA private key (mode 0600).
pub const CA_KEY: &str = "ca.key";
/// The record of issued and revoked certificates.
pub const INDEX: &str = "index.json";
/// Where `skerry ca crl` writes when no `--out` is given.
pub const CRL: &str = "crl.pem";
/// The CA's copy of every certificate it issued, `SERIAL.crt`.
pub(crate) const ISSUED: &str = "issued";
pub(crate) const LOCK: &str = ".lock";

/// Mode of private keys: only the owner reads them.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificates, CRLs and the index: public data.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// Writes `bytes` to `path` atomically. With `overwrite == false` an existing
/// file is an error ([`CaError::OutputExists`]) and is left as it was.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> Result<()> {
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".skerry-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(CaError::io(&dir))?;
    set_mode(tmp.path(), mode)?;
    tmp.write_all(bytes).map_err(CaError::io(tmp.path()))?;
    tmp.as_file().sync_all().map_err(CaError::io(tmp.path()))?;
    let persisted = if overwrite {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    persisted.map_err(|e| match e.error.kind() {
        std::io::ErrorKind::AlreadyExists => CaError::OutputExists { path: path.to_owned() },
        _ => CaError::Io {
            path: path.to_owned(),
            source: e.error,
        },
    })?;
    sync_dir(&dir);
    Ok(())
}

/// Fails with [`CaError::OutputExists`] if `path` exists; used to check every
/// output of a command before writing the first one.
pub(crate) fn ensure_absent(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(CaError::OutputExists { path: path.to_owned() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CaError::Io {
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Creates the directory an output goes into, so `--out /new/dir/dev` works.
pub(crate) fn create_parent(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(CaError::io(dir))
}

/// Removes a file written earlier by a command that then failed. A failure
/// here is not reported: the original error is the one the operator needs.
pub(crate) fn remove_quietly(path: &Path) {
    if let Err(error) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), %error, "could not remove a partly written output");
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(CaError::io(path))
}

/// `path` followed by `.ext` (`dev` -> `dev.crt`), keeping any dots in `path`.
pub(crate) fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(CaError::io(path))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

/// Makes a rename durable. Best effort: not every filesystem allows fsync on
/// a directory, and the rename itself has already happened.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// An exclusive advisory lock on a CA directory, released on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Blocks until this process holds the lock on the CA directory `dir`.
    pub(crate) fn acquire(dir: &Path) -> Result<Self> {
        Self::acquire_file(&dir.join(LOCK))
    }

    /// Blocks until this process holds the lock file `path` (created if
    /// missing). Locks on different files never wait for each other, even
    /// in one directory.
    pub(crate) fn acquire_file(path: &Path) -> Result<Self> {
        let path = path.to_owned();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(CaError::io(&path))?;
        #[cfg(unix)]
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| CaError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noclobber_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.crt");
        write_atomic(&path, b"one", PUBLIC_MODE, false).expect("first write");
        let err = write_atomic(&path, b"two", PUBLIC_MODE, false).expect_err("second write refused");
        assert!(matches!(err, CaError::OutputExists { .. }), "{err}");
        assert_eq!(fs::read(&path).expect("read"), b"one");
        write_atomic(&path, b"three", PUBLIC_MODE, true).expect("overwrite");
        assert_eq!(fs::read(&path).expect("read"), b"three");
        let leftovers = fs::read_dir(dir.path()).expect("ls").count();
        assert_eq!(leftovers, 1, "no temp files left behind");
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.key");
        write_atomic(&path, b"secret", KEY_MODE, false).expect("write");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn suffix_keeps_dots() {
        assert_eq!(
            with_suffix(Path::new("out/dev.1"), "crt"),
            PathBuf::from("out/dev.1.crt")
        );
    }
}
