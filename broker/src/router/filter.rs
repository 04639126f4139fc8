//! Topic filter syntax: validation, `$share/{group}/{filter}` parsing, and
//! the reference [`filter_matches`] predicate the trie must agree with.

use thiserror::Error;

/// Prefix of an MQTT 5 shared subscription filter.
const SHARE_PREFIX: &str = "$share/";

/// Why a topic filter was refused; maps to reason code 0x8F (Topic Filter
/// Invalid) in SUBACK.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    /// The filter (or the filter part of a shared subscription) is empty.
    #[error("topic filter {filter:?} is empty")]
    Empty {
        /// The filter as subscribed.
        filter: String,
    },
    /// A `#` that is not alone in the last level, or a `+` not alone in its
    /// level.
    #[error("topic filter {filter:?} has a wildcard that is not alone in its level or a '#' before the last level")]
    MisplacedWildcard {
        /// The filter as subscribed.
        filter: String,
    },
    /// The filter contains U+0000, which MQTT forbids in topics.
    #[error("topic filter {filter:?} contains a NUL character")]
    Nul {
        /// The filter as subscribed.
        filter: String,
    },
    /// `$share/{group}/...` with an empty group or one holding `+` or `#`.
    #[error("shared subscription {filter:?} has an invalid share name")]
    InvalidShareName {
        /// The filter as subscribed.
        filter: String,
    },
    /// More levels than the router accepts; the limit bounds trie depth.
    #[error("topic filter {filter:?} has {levels} levels, more than the limit of {max}")]
    TooManyLevels {
        /// The filter as subscribed.
        filter: String,
        /// Levels in the filter.
        levels: usize,
        /// The configured limit.
        max: usize,
    },
}

/// Why a topic name was refused by the retained store.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    /// Topic names have at least one character.
    #[error("topic name is empty")]
    Empty,
    /// Topic names must not contain `+`, `#` or U+0000.
    #[error("topic name {topic:?} contains a wildcard or NUL character")]
    InvalidCharacter {
        /// The topic as published.
        topic: String,
    },
    /// More levels than the store accepts; the limit bounds trie depth.
    #[error("topic name {topic:?} has {levels} levels, more than the limit of {max}")]
    TooManyLevels {
        /// The topic as published.
        topic: String,
        /// Levels in the topic.
        levels: usize,
        /// The configured limit.
        max: usize,
    },
}

/// A validated subscription filter, split into share group and topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParsedFilter<'a> {
    /// Share name of a `$share/{group}/{filter}` subscription.
    pub(crate) group: Option<&'a str>,
    /// The topic filter proper (without the share prefix).
    pub(crate) filter: &'a str,
}

impl<'a> ParsedFilter<'a> {
    /// Validates `raw` and splits off a share prefix.
    pub(crate) fn parse(raw: &'a str, max_levels: usize) -> Result<Self, FilterError> {
        let (group, filter) = match raw.strip_prefix(SHARE_PREFIX) {
            Some(rest) => {
                let (group, filter) = rest.split_once('/').unwrap_or((rest, ""));
                if group.is_empty() || group.contains(['+', '#']) {
                    return Err(FilterError::InvalidShareName { filter: raw.to_owned() });
                }
                (Some(group), filter)
            }
            None => (None, raw),
        };
        validate_filter(filter, max_levels).map_err(|err| err.with_filter(raw))?;
        Ok(Self { group, filter })
    }

    /// Splits a filter that was validated before (one the router stored).
    pub(crate) fn of_valid(raw: &'a str) -> Self {
        match raw.strip_prefix(SHARE_PREFIX).and_then(|rest| rest.split_once('/')) {
            Some((group, filter)) => Self {
                group: Some(group),
                filter,
            },
            None => Self {
                group: None,
                filter: raw,
            },
        }
    }
}

impl FilterError {
    /// Names the filter as the client wrote it (with any share prefix).
    fn with_filter(self, raw: &str) -> Self {
        let filter = raw.to_owned();
        match self {
            Self::Empty { .. } => Self::Empty { filter },
            Self::MisplacedWildcard { .. } => Self::MisplacedWildcard { filter },
            Self::Nul { .. } => Self::Nul { filter },
            Self::InvalidShareName { .. } => Self::InvalidShareName { filter },
            Self::TooManyLevels { levels, max, .. } => Self::TooManyLevels { filter, levels, max },
        }
    }
}

/// Checks MQTT topic filter syntax (no share prefix) and the level limit.
pub fn validate_filter(filter: &str, max_levels: usize) -> Result<(), FilterError> {
    let owned = || filter.to_owned();
    if filter.is_empty() {
        return Err(FilterError::Empty { filter: owned() });
    }
    if filter.contains('\0') {
        return Err(FilterError::Nul { filter: owned() });
    }
    let mut levels = 0;
    let mut after_hash = false;
    for level in filter.split('/') {
        levels += 1;
        let wildcard_ok = match level {
            "#" | "+" => !after_hash,
            _ => !level.contains(['+', '#']) && !after_hash,
        };
        if !wildcard_ok {
            return Err(FilterError::MisplacedWildcard { filter: owned() });
        }
        after_hash = level == "#";
    }
    if levels > max_levels {
        return Err(FilterError::TooManyLevels {
            filter: owned(),
            levels,
            max: max_levels,
        });
    }
    Ok(())
}

/// Checks a topic name for the retained store: non-empty, no wildcards or
/// NUL, and within the level limit.
pub fn validate_topic(topic: &str, max_levels: usize) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.contains(['+', '#', '\0']) {
        return Err(TopicError::InvalidCharacter {
            topic: topic.to_owned(),
        });
    }
    let levels = topic.split('/').count();
    if levels > max_levels {
        return Err(TopicError::TooManyLevels {
            topic: topic.to_owned(),
            levels,
            max: max_levels,
        });
    }
    Ok(())
}

/// Whether the topic filter `filter` (no share prefix, assumed valid)
/// matches the topic name `topic`.
///
/// A direct level-by-level comparison: the reference the trie is tested
/// against, and handy for ACL checks on a single filter. Filters starting
/// with a wildcard do not match topics starting with `$` (MQTT-4.7.2-1).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for filter_level in filter.split('/') {
        if filter_level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(topic_level) if filter_level == "+" || filter_level == topic_level => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_matches_follows_mqtt_rules() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/+", "a", false),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/+", "/a", true),
            ("/+", "/a", true),
            ("a/+/b", "a//b", true),
            ("a//b", "a//b", true),
            ("a/b", "a//b", false),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("$SYS/+", "$SYS/x", true),
            ("a/b/#", "a", false),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(filter_matches(filter, topic), expected, "{filter} vs {topic}");
        }
    }

    #[test]
    fn validate_filter_accepts_wildcards_in_place() {
        for filter in ["#", "+", "a/+/b", "a/#", "/", "//", "+/+/#", "$SYS/#"] {
            assert_eq!(validate_filter(filter, 8), Ok(()), "{filter}");
        }
    }

    #[test]
    fn validate_filter_rejects_misplaced_wildcards() {
        for filter in ["a/#/b", "a#", "a/b+", "#/a", "++"] {
            assert!(
                matches!(validate_filter(filter, 8), Err(FilterError::MisplacedWildcard { .. })),
                "{filter}"
            );
        }
        assert!(matches!(validate_filter("", 8), Err(FilterError::Empty { .. })));
        assert!(matches!(validate_filter("a/\0", 8), Err(FilterError::Nul { .. })));
        assert!(matches!(
            validate_filter("a/b/c", 2),
            Err(FilterError::TooManyLevels { levels: 3, max: 2, .. })
        ));
    }

    #[test]
    fn parse_splits_share_prefix() {
        let parsed = ParsedFilter::parse("$share/g1/a/+", 8);
        assert_eq!(
            parsed,
            Ok(ParsedFilter {
                group: Some("g1"),
                filter: "a/+"
            })
        );
        let plain = ParsedFilter::parse("$shared/a", 8);
        assert_eq!(
            plain,
            Ok(ParsedFilter {
                group: None,
                filter: "$shared/a"
            })
        );
    }

    #[test]
    fn parse_rejects_bad_shares_naming_the_whole_filter() {
        for raw in ["$share//a", "$share/g+/a", "$share/g#/a"] {
            assert_eq!(
                ParsedFilter::parse(raw, 8),
                Err(FilterError::InvalidShareName { filter: raw.to_owned() })
            );
        }
        for raw in ["$share/g", "$share/g/"] {
            assert_eq!(
                ParsedFilter::parse(raw, 8),
                Err(FilterError::Empty { filter: raw.to_owned() })
            );
        }
        assert_eq!(
            ParsedFilter::parse("$share/g/a/#/b", 8),
            Err(FilterError::MisplacedWildcard {
                filter: "$share/g/a/#/b".to_owned()
            })
        );
    }

    #[test]
    fn validate_topic_rejects_wildcards_and_depth() {
        assert_eq!(validate_topic("a/b", 4), Ok(()));
        assert_eq!(validate_topic("", 4), Err(TopicError::Empty));
        assert!(matches!(
            validate_topic("a/+", 4),
            Err(TopicError::InvalidCharacter { .. })
        ));
        assert!(matches!(
            validate_topic("a/b/c", 2),
            Err(TopicError::TooManyLevels { .. })
        ));
    }
}
