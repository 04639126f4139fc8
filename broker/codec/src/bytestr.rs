//! [`ByteStr`]: a UTF-8 string backed by [`Bytes`], so a topic decoded from
//! a PUBLISH is shared, not copied, by every subscriber it fans out to.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::str::Utf8Error;

use bytes::Bytes;

/// An immutable UTF-8 string whose clones share one buffer.
///
/// Every constructor checks UTF-8, so the bytes are always valid. The
/// workspace forbids `unsafe`, which means borrowing the `&str` checks the
/// bytes again (tens of nanoseconds for a 64-byte topic): hot paths should
/// prefer [`ByteStr::as_bytes`], [`ByteStr::len`] and the `PartialEq`
/// impls, which do not.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteStr(Bytes);

impl ByteStr {
    /// A string from a literal, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// Takes `bytes` if they are valid UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // Cannot fail: every constructor validated these bytes.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Length in bytes (without borrowing the `&str`).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty (without borrowing the `&str`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives back the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for ByteStr {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ByteStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ByteStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

// Hash as `str` does, so that `Borrow<str>` lookups in maps find the key.
impl Hash for ByteStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for ByteStr {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ByteStr {
    fn from(s: String) -> Self {
        Self(Bytes::from(s.into_bytes()))
    }
}

impl TryFrom<Bytes> for ByteStr {
    type Error = Utf8Error;

    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        Self::from_utf8(bytes)
    }
}

impl From<ByteStr> for Bytes {
    fn from(s: ByteStr) -> Self {
        s.0
    }
}

impl PartialEq<str> for ByteStr {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for ByteStr {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<String> for ByteStr {
    fn eq(&self, other: &String) -> bool {
        self.0 == other.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn clones_share_the_buffer() {
        let s = ByteStr::from(String::from("a/b/c"));
        let t = s.clone();
        assert_eq!(s.as_bytes().as_ptr(), t.as_bytes().as_ptr());
        assert_eq!(&*t, "a/b/c");
        assert_eq!(t.to_string(), "a/b/c");
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert!(ByteStr::from_utf8(Bytes::from_static(b"\xff")).is_err());
    }

    #[test]
    fn map_lookup_by_str() {
        let mut map = HashMap::new();
        map.insert(ByteStr::from("sensors/1"), 1);
        assert_eq!(map.get("sensors/1"), Some(&1));
    }
}
