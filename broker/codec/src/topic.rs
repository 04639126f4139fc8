//! Topic names, topic filters and shared subscriptions: the rules of MQTT
//! section 4.7 as plain functions, used by the decoder and by the broker.

use crate::ReasonCode;

/// Longest topic or filter: its length prefix is 16 bits.
const MAX_LEN: usize = 65_535;

/// Prefix of a shared subscription: `$share/{group}/{filter}`.
const SHARE_PREFIX: &str = "$share/";

/// Checks a topic name (what a PUBLISH is sent to): non-empty, at most
/// 65,535 bytes, no wildcard and no U+0000.
///
/// The error is [`ReasonCode::TopicNameInvalid`].
pub fn validate_topic_name(topic: &str) -> Result<(), ReasonCode> {
    let ok = !topic.is_empty() && topic.len() <= MAX_LEN && !topic.bytes().any(|b| matches!(b, b'+' | b'#' | 0));
    if ok {
        Ok(())
    } else {
        Err(ReasonCode::TopicNameInvalid)
    }
}

/// Checks a topic filter (what a SUBSCRIBE asks for): non-empty, at most
/// 65,535 bytes, no U+0000, `+` only as a whole level, `#` only as the
/// whole last level. A filter starting with `$share/` must be a valid
/// shared subscription (see [`parse_shared`]).
///
/// The error is [`ReasonCode::TopicFilterInvalid`].
pub fn validate_topic_filter(filter: &str) -> Result<(), ReasonCode> {
    let ok = if filter.starts_with(SHARE_PREFIX) {
        filter.len() <= MAX_LEN && parse_shared(filter).is_some()
    } else {
        is_valid_filter(filter)
    };
    if ok {
        Ok(())
    } else {
        Err(ReasonCode::TopicFilterInvalid)
    }
}

/// Splits a shared subscription `$share/{group}/{filter}` into its group
/// and filter. `None` when `filter` is not one, or when the group is empty
/// or has a wildcard, or the filter part is not a valid filter.
pub fn parse_shared(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix(SHARE_PREFIX)?;
    let (group, inner) = rest.split_once('/')?;
    let group_ok = !group.is_empty() && !group.bytes().any(|b| matches!(b, b'+' | b'#' | 0));
    (group_ok && is_valid_filter(inner)).then_some((group, inner))
}

/// Whether a topic filter has a `+` or `#` wildcard.
pub fn has_wildcards(filter: &str) -> bool {
    filter.bytes().any(|b| matches!(b, b'+' | b'#'))
}

/// The topic name rules on raw bytes (UTF-8 is checked elsewhere), so the
/// decoder need not borrow a [`crate::ByteStr`] as `str` again.
pub(crate) fn is_valid_name(topic: &[u8]) -> bool {
    !topic.is_empty() && topic.len() <= MAX_LEN && !topic.iter().any(|b| matches!(b, b'+' | b'#' | 0))
}

fn is_valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > MAX_LEN || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        let ok = match level {
            "+" => true,
            "#" => is_last,
            _ => !has_wildcards(level),
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in ["a", "a/b", "/", "a//b", "$SYS/x", " "] {
            assert_eq!(validate_topic_name(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "a/+", "#", "a/b#", "a\0b"] {
            assert_eq!(validate_topic_name(bad), Err(ReasonCode::TopicNameInvalid), "{bad:?}");
        }
        assert!(validate_topic_name(&"a".repeat(65_536)).is_err());
    }

    #[test]
    fn topic_filters() {
        for ok in ["a", "#", "+", "a/+/b", "a/#", "+/+", "/#", "$share/g/a/#", "$share"] {
            assert_eq!(validate_topic_filter(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "+a", "#/", "a\0", "$share/g", "$share//a"] {
            assert_eq!(
                validate_topic_filter(bad),
                Err(ReasonCode::TopicFilterInvalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn shared_subscriptions() {
        assert_eq!(parse_shared("$share/g1/a/+/c"), Some(("g1", "a/+/c")));
        assert_eq!(parse_shared("$share/g/#"), Some(("g", "#")));
        assert_eq!(parse_shared("$share/g+/a"), None);
        assert_eq!(parse_shared("$share//a"), None);
        assert_eq!(parse_shared("$share/g/"), None);
        assert_eq!(parse_shared("$share/g/a/#/b"), None);
        assert_eq!(parse_shared("a/b"), None);
    }
}
