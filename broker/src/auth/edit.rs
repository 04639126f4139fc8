//! Changing the users file in place for `skerry passwd`: add, replace or
//! delete one user while keeping every other line and comment, written to a
//! temporary file in the same directory and renamed over the old one so the
//! broker never reads a half-written file.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::users::{check_username, parse_line};

/// First lines of a users file created by `skerry passwd`.
const HEADER: &str = "# Skerry users: one `name:argon2-hash` per line. Edit with `skerry passwd FILE USER`.\n";

/// What [`set_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The user was not in the file (which may not have existed).
    Added,
    /// The user's hash was replaced.
    Replaced,
}

/// Why the users file could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The username cannot be written to the file.
    #[error("invalid username {name:?}: {reason}")]
    Username {
        /// The refused name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The hash to store is not an argon2 PHC string.
    #[error("refusing to store an unusable hash for {name:?}: {reason}")]
    Hash {
        /// The user.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--delete` of a user the file does not have.
    #[error("{}: no user {name:?}", path.display())]
    NoSuchUser {
        /// The users file.
        path: PathBuf,
        /// The user.
        name: String,
    },
    /// Reading the existing file failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The users file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Writing the new file failed; the old one is unchanged.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The users file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Adds `name` with the PHC string `hash` (from
/// [`hash_password`](super::hash_password)), or replaces its hash. Creates
/// the file, mode 0600, if it does not exist.
pub fn set_user(path: &Path, name: &str, hash: &str) -> Result<Change, EditError> {
    check_name(name)?;
    parse_line(&format!("{name}:{hash}")).map_err(|reason| EditError::Hash {
        name: name.to_owned(),
        reason,
    })?;
    let (target, existing) = read_existing(path)?;
    let (text, permissions) = match &existing {
        Some((text, metadata)) => (text.as_str(), Some(metadata.permissions())),
        None => (HEADER, private_permissions()),
    };
    let (updated, found) = rewrite(text, name, Some(hash));
    write_atomically(&target, &updated, permissions).map_err(|source| EditError::Write { path: target, source })?;
    Ok(if found { Change::Replaced } else { Change::Added })
}

/// Removes `name` from the file; an error if it is not there.
pub fn delete_user(path: &Path, name: &str) -> Result<(), EditError> {
    check_name(name)?;
    let not_found = || EditError::NoSuchUser {
        path: path.to_owned(),
        name: name.to_owned(),
    };
    let (target, existing) = read_existing(path)?;
    let (text, metadata) = existing.ok_or_else(not_found)?;
    let (updated, found) = rewrite(&text, name, None);
    if !found {
        return Err(not_found());
    }
    write_atomically(&target, &updated, Some(metadata.permissions()))
        .map_err(|source| EditError::Write { path: target, source })
}

fn check_name(name: &str) -> Result<(), EditError> {
    check_username(name).map_err(|reason| EditError::Username {
        name: name.to_owned(),
        reason,
    })
}

/// The file to write (a symlink is followed, so the link survives) and its
/// current text and metadata, `None` if it does not exist yet.
fn read_existing(path: &Path) -> Result<(PathBuf, Option<(String, fs::Metadata)>), EditError> {
    let read_error = |source| EditError::Read {
        path: path.to_owned(),
        source,
    };
    let target = match fs::canonicalize(path) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((path.to_owned(), None)),
        Err(e) => return Err(read_error(e)),
    };
    let text = fs::read_to_string(&target).map_err(read_error)?;
    let metadata = fs::metadata(&target).map_err(read_error)?;
    Ok((target, Some((text, metadata))))
}

/// The file's text with `name`'s line replaced by `name:hash` (or removed
/// when `hash` is `None`), every other line kept byte for byte. A name seen
/// twice keeps only the first line. Also returns whether `name` was there.
fn rewrite(text: &str, name: &str, hash: Option<&str>) -> (String, bool) {
    let mut out = String::with_capacity(text.len() + name.len() + hash.map_or(0, str::len) + 2);
    let mut found = false;
    for line in text.split_inclusive('\n') {
        if entry_name(line) != Some(name) {
            out.push_str(line);
            continue;
        }
        if let (Some(hash), false) = (hash, found) {
            push_entry(&mut out, name, hash);
        }
        found = true;
    }
    if let (Some(hash), false) = (hash, found) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        push_entry(&mut out, name, hash);
    }
    (out, found)
}

fn push_entry(out: &mut String, name: &str, hash: &str) {
    out.push_str(name);
    out.push(':');
    out.push_str(hash);
    out.push('\n');
}

/// The user a line defines, as the loader reads it; `None` for blanks and comments.
fn entry_name(line: &str) -> Option<&str> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    line.split_once(':').map(|(name, _)| name)
}

fn write_atomically(path: &Path, contents: &str, permissions: Option<fs::Permissions>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new().prefix(".skerry-users.").tempfile_in(dir)?;
    if let Some(permissions) = permissions {
        file.as_file().set_permissions(permissions)?;
    }
    file.write_all(contents.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Makes the rename itself durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn private_permissions() -> Option<fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn private_permissions() -> Option<fs::Permissions> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::users::{cheap_hash, Users};

    fn setup(initial: Option<&str>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        if let Some(text) = initial {
            fs::write(&path, text).expect("write");
        }
        (dir, path)
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).expect("read")
    }

    #[test]
    fn adds_to_a_new_file_with_mode_0600() {
        let (_dir, path) = setup(None);
        let hash = cheap_hash(b"pw");
        assert_eq!(set_user(&path, "alice", &hash).expect("set"), Change::Added);
        assert_eq!(read(&path), format!("{HEADER}alice:{hash}\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let users = Users::load(&path).expect("loads");
        assert!(users.verify("alice", b"pw"));
    }

    #[test]
    fn replaces_keeping_other_lines_and_comments() {
        let (old, bob) = (cheap_hash(b"old"), cheap_hash(b"bob"));
        let before = format!("# team\nalice:{old}\n\n  # bob below\nbob:{bob}\n");
        let (_dir, path) = setup(Some(&before));
        let new = cheap_hash(b"new");
        assert_eq!(set_user(&path, "alice", &new).expect("set"), Change::Replaced);
        assert_eq!(
            read(&path),
            format!("# team\nalice:{new}\n\n  # bob below\nbob:{bob}\n")
        );
        assert!(Users::load(&path).expect("loads").verify("alice", b"new"));
    }

    #[test]
    fn appends_after_a_last_line_without_newline() {
        let bob = cheap_hash(b"bob");
        let (_dir, path) = setup(Some(&format!("bob:{bob}")));
        let alice = cheap_hash(b"alice");
        assert_eq!(set_user(&path, "alice", &alice).expect("set"), Change::Added);
        assert_eq!(read(&path), format!("bob:{bob}\nalice:{alice}\n"));
    }

    #[test]
    fn deletes_and_keeps_the_rest() {
        let (alice, bob) = (cheap_hash(b"alice"), cheap_hash(b"bob"));
        let (_dir, path) = setup(Some(&format!("# c\nalice:{alice}\nbob:{bob}\n")));
        delete_user(&path, "alice").expect("delete");
        assert_eq!(read(&path), format!("# c\nbob:{bob}\n"));
        assert!(matches!(delete_user(&path, "alice"), Err(EditError::NoSuchUser { .. })));
    }

    #[test]
    fn delete_from_a_missing_file_is_no_such_user() {
        let (_dir, path) = setup(None);
        assert!(matches!(delete_user(&path, "alice"), Err(EditError::NoSuchUser { .. })));
        assert!(!path.exists());
    }

    #[test]
    fn duplicates_collapse_to_one_line() {
        let (a1, a2) = (cheap_hash(b"1"), cheap_hash(b"2"));
        let (updated, found) = rewrite(&format!("alice:{a1}\n#x\nalice:{a2}\n"), "alice", Some("H"));
        assert!(found);
        assert_eq!(updated, "alice:H\n#x\n");
    }

    #[cfg(unix)]
    #[test]
    fn keeps_the_mode_of_an_existing_file() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, path) = setup(Some("# users\n"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        set_user(&path, "alice", &cheap_hash(b"pw")).expect("set");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[cfg(unix)]
    #[test]
    fn follows_a_symlink() {
        let (dir, real) = setup(Some("# users\n"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        set_user(&link, "alice", &cheap_hash(b"pw")).expect("set");
        assert!(fs::symlink_metadata(&link).expect("lstat").file_type().is_symlink());
        assert!(read(&real).contains("alice:"));
    }

    #[test]
    fn refuses_bad_usernames_and_hashes() {
        let (_dir, path) = setup(None);
        let hash = cheap_hash(b"pw");
        for bad in ["", "a:b", "a b", "#a"] {
            assert!(
                matches!(set_user(&path, bad, &hash), Err(EditError::Username { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            set_user(&path, "alice", "plaintext"),
            Err(EditError::Hash { .. })
        ));
        assert!(matches!(delete_user(&path, "a b"), Err(EditError::Username { .. })));
        assert!(!path.exists());
    }
}
