//! The users file: one `name:$argon2id$...` PHC string per line, loaded and
//! checked once so that a broken line fails the load (or the reload), never
//! a login. Verification is argon2: deliberately slow, so callers run it on a
//! blocking thread.

use std::collections::HashMap;
use std::fmt;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHashString, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Why a users file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read users file {}: {source}", path.display())]
    Read {
        /// The users file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A line is neither blank, a `#` comment nor `name:hash`.
    #[error("{}:{line}: {reason}", path.display())]
    Malformed {
        /// The users file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it (never the hash itself).
        reason: String,
    },
    /// The same user appears on two lines.
    #[error("{}:{line}: user {name:?} already defined on line {first_line}", path.display())]
    Duplicate {
        /// The users file.
        path: PathBuf,
        /// 1-based line number of the second definition.
        line: usize,
        /// 1-based line number of the first definition.
        first_line: usize,
        /// The user.
        name: String,
    },
}

/// Hashing a new password failed (the OS random source, in practice).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(#[source] argon2::password_hash::Error);

/// Checks a username for the users file: not empty, no `:` (the separator),
/// no whitespace or control characters (lines are trimmed), no leading `#`
/// (it would read as a comment). The error says which rule failed.
pub fn check_username(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("the username is empty")
    } else if name.contains(':') {
        Err("a username may not contain ':'")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("a username may not contain whitespace or control characters")
    } else if name.starts_with('#') {
        Err("a username may not start with '#'")
    } else {
        Ok(())
    }
}

/// Hashes `password` with argon2id, the crate's default cost and a random
/// salt, as a PHC string for the users file.
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default().hash_password(password, &salt).map_err(HashError)?;
    Ok(hash.to_string())
}

/// The users allowed to log in with a password, from a users file.
///
/// Immutable: a reload builds a new `Users` with [`Users::load`] and swaps
/// the `Arc` the authenticator holds. [`Users::verify`] costs one argon2
/// computation (tens of milliseconds and megabytes of memory by design), so
/// call it from `tokio::task::spawn_blocking`, never on an async worker.
pub struct Users {
    path: PathBuf,
    entries: HashMap<String, PasswordHashString>,
    /// Verified against when the name is unknown, so that a wrong name costs
    /// as much as a wrong password. Same cost parameters as the first entry.
    dummy: Option<PasswordHashString>,
}

// By hand: the derived form would print every hash.
impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users")
            .field("path", &self.path)
            .field("users", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Users {
    /// Reads and checks the users file at `path`. Blocking file I/O.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses the contents of a users file; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, UsersError> {
        let mut entries = HashMap::new();
        let mut first_lines: HashMap<&str, usize> = HashMap::new();
        let mut dummy = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let Some((name, hash)) = parse_line(raw).map_err(|reason| UsersError::Malformed {
                path: path.to_owned(),
                line,
                reason,
            })?
            else {
                continue;
            };
            if let Some(&first_line) = first_lines.get(name) {
                return Err(UsersError::Duplicate {
                    path: path.to_owned(),
                    line,
                    first_line,
                    name: name.to_owned(),
                });
            }
            first_lines.insert(name, line);
            if dummy.is_none() {
                dummy = dummy_like(&hash.password_hash());
            }
            entries.insert(name.to_owned(), hash);
        }
        Ok(Self {
            path: path.to_owned(),
            entries,
            dummy,
        })
    }

    /// Whether `password` is `name`'s password. An unknown name still costs
    /// one verification so response time does not tell which names exist.
    /// CPU-heavy: run it in `spawn_blocking`.
    pub fn verify(&self, name: &str, password: &[u8]) -> bool {
        match self.entries.get(name) {
            Some(hash) => verify_hash(hash, password),
            None => {
                if let Some(dummy) = &self.dummy {
                    black_box(verify_hash(dummy, password));
                }
                false
            }
        }
    }

    /// Whether the file defines `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file defines no user.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file these users were read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn verify_hash(hash: &PasswordHashString, password: &[u8]) -> bool {
    // The output comparison inside is constant-time.
    Argon2::default()
        .verify_password(password, &hash.password_hash())
        .is_ok()
}

/// One line of the file: `Ok(None)` for blanks and comments. The error
/// says what is wrong, never quoting the hash.
pub(crate) fn parse_line(raw: &str) -> Result<Option<(&str, PasswordHashString)>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let Some((name, hash)) = line.split_once(':') else {
        return Err("expected name:hash (a PHC string from `skerry passwd`)".to_owned());
    };
    check_username(name).map_err(str::to_owned)?;
    let hash = PasswordHashString::new(hash).map_err(|e| format!("user {name:?}: not a PHC hash string ({e})"))?;
    check_argon2(&hash.password_hash()).map_err(|e| format!("user {name:?}: unusable argon2 hash ({e})"))?;
    Ok(Some((name, hash)))
}

/// Everything argon2 will check at verification time, checked now.
fn check_argon2(hash: &PasswordHash<'_>) -> Result<(), argon2::password_hash::Error> {
    use argon2::password_hash::errors::{Error, InvalidValue};
    Algorithm::try_from(hash.algorithm)?;
    hash.version.map(Version::try_from).transpose()?;
    Params::try_from(hash)?;
    let (Some(salt), Some(_)) = (hash.salt, hash.hash) else {
        return Err(Error::PhcStringField);
    };
    let mut buf = [0u8; 64];
    if salt.decode_b64(&mut buf)?.len() < argon2::MIN_SALT_LEN {
        return Err(Error::SaltInvalid(InvalidValue::TooShort));
    }
    Ok(())
}

/// A hash with `like`'s algorithm and cost but a fixed salt and an all-zero
/// output, which no password produces in practice.
fn dummy_like(like: &PasswordHash<'_>) -> Option<PasswordHashString> {
    const DUMMY_SALT: &str = "c2tlcnJ5LWR1bW15LXNhbHQ";
    const ZEROS: [u8; Output::MAX_LENGTH] = [0; Output::MAX_LENGTH];
    let len = like.hash.map(|h| h.len())?;
    let mut dummy = like.clone();
    dummy.salt = Some(argon2::password_hash::Salt::from_b64(DUMMY_SALT).ok()?);
    dummy.hash = Some(Output::new(ZEROS.get(..len)?).ok()?);
    Some(dummy.serialize())
}

/// Cheap hashes for tests: real argon2id, minimal cost.
#[cfg(test)]
pub(crate) fn cheap_hash(password: &[u8]) -> String {
    let params = Params::new(Params::MIN_M_COST, 1, 1, None).expect("valid params");
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .expect("hashing works")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Users, UsersError> {
        Users::parse(Path::new("/etc/skerry/users"), text)
    }

    fn malformed_line(text: &str) -> (usize, String) {
        match parse(text) {
            Err(UsersError::Malformed { line, reason, .. }) => (line, reason),
            other => panic!("expected a malformed-line error, got {other:?}"),
        }
    }

    #[test]
    fn parses_users_comments_and_blank_lines() {
        let text = format!(
            "# users\n\nalice:{}\r\n  # indented comment\nbob:{}  \n",
            cheap_hash(b"a"),
            cheap_hash(b"b")
        );
        let users = parse(&text).expect("valid file");
        assert_eq!(users.len(), 2);
        assert!(users.contains("alice") && users.contains("bob"));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let good = cheap_hash(b"x");
        let cases = [
            (format!("# c\nalice {good}\n"), 2),
            (format!("alice:{good}\n\n:{good}\n"), 3),
            ("alice:not-a-hash\n".to_owned(), 1),
            ("alice:$argon2id$v=19$m=8,t=1,p=1\n".to_owned(), 1),
            ("alice:$pbkdf2$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\n".to_owned(), 1),
            (format!("a b:{good}\n"), 1),
        ];
        for (text, expected) in cases {
            let (line, reason) = malformed_line(&text);
            assert_eq!(line, expected, "{text:?}: {reason}");
        }
    }

    #[test]
    fn error_message_names_file_and_line_but_not_the_hash() {
        let err = parse("\n\nalice:$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ\n").expect_err("no output");
        let message = err.to_string();
        assert!(message.starts_with("/etc/skerry/users:3: "), "{message}");
        assert!(!message.contains("c2FsdHNhbHQ"), "{message}");
    }

    #[test]
    fn duplicate_user_is_an_error() {
        let text = format!(
            "alice:{}\nbob:{}\nalice:{}\n",
            cheap_hash(b"1"),
            cheap_hash(b"2"),
            cheap_hash(b"3")
        );
        match parse(&text) {
            Err(UsersError::Duplicate {
                line, first_line, name, ..
            }) => assert_eq!((line, first_line, name.as_str()), (3, 1, "alice")),
            other => panic!("expected a duplicate error, got {other:?}"),
        }
    }

    #[test]
    fn missing_file_is_a_read_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nope");
        let err = Users::load(&path).expect_err("missing");
        assert!(matches!(err, UsersError::Read { .. }));
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn verify_right_and_wrong_password() {
        let users = parse(&format!("alice:{}\n", cheap_hash(b"s3cret"))).expect("valid");
        assert!(users.verify("alice", b"s3cret"));
        assert!(!users.verify("alice", b"s3cret "));
        assert!(!users.verify("alice", b""));
    }

    #[test]
    fn unknown_user_is_refused_even_with_a_known_password() {
        let users = parse(&format!("alice:{}\n", cheap_hash(b"s3cret"))).expect("valid");
        assert!(users.dummy.is_some());
        assert!(!users.verify("mallory", b"s3cret"));
        assert!(!users.verify("", b""));
        let empty = parse("# nobody yet\n").expect("valid");
        assert!(empty.is_empty() && !empty.verify("alice", b"s3cret"));
    }

    #[test]
    fn dummy_has_the_cost_of_the_first_entry() {
        let users = parse(&format!("alice:{}\n", cheap_hash(b"s3cret"))).expect("valid");
        let dummy = users.dummy.as_ref().expect("dummy");
        let real = users.entries.get("alice").expect("alice");
        assert_eq!(dummy.params(), real.params());
        assert_eq!(dummy.algorithm(), real.algorithm());
        check_argon2(&dummy.password_hash()).expect("dummy is verifiable");
    }

    #[test]
    fn hash_password_output_loads_and_verifies() {
        let hash = hash_password(b"pw").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        let users = parse(&format!("alice:{hash}\n")).expect("valid");
        assert!(users.verify("alice", b"pw"));
    }

    #[test]
    fn debug_output_shows_no_hash() {
        let users = parse(&format!("alice:{}\n", cheap_hash(b"s3cret"))).expect("valid");
        let shown = format!("{users:?}");
        assert!(!shown.contains("argon2"), "{shown}");
    }

    #[test]
    fn username_rules() {
        for bad in ["", "a:b", "a b", "a\tb", "#a", "a\u{7f}"] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        for good in ["alice", "dev-1.example", "a#b", "ünï"] {
            assert!(check_username(good).is_ok(), "{good:?}");
        }
    }
}
