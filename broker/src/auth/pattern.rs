//! ACL topic patterns: a rule's topic filter split into levels once, at
//! construction, and matched against topics (publish) or filters (subscribe)
//! with `%u` / `%c` resolved in place, without allocating.

/// The values that stand in for `%u` and `%c` during one check. `None` when
/// the client has no usable value: then rules that use it do not apply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vars<'a> {
    username: Option<&'a str>,
    client_id: Option<&'a str>,
}

impl<'a> Vars<'a> {
    pub(crate) fn new(client_id: &'a str, username: Option<&'a str>) -> Self {
        Self {
            username: username.filter(|u| substitutable(u)),
            client_id: Some(client_id).filter(|c| substitutable(c)),
        }
    }
}

/// Whether `value` may replace a placeholder. An empty value, or one holding
/// a level separator or a wildcard, would change the shape of the pattern:
/// username `a/#` would turn `devices/%u` into `devices/a/#`.
fn substitutable(value: &str) -> bool {
    !value.is_empty() && !value.contains(['/', '+', '#', '\0'])
}

/// One compiled rule topic.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    levels: Box<[Level]>,
    uses_username: bool,
    uses_client_id: bool,
}

#[derive(Debug, Clone)]
enum Level {
    Literal(Box<str>),
    /// `+`
    Single,
    /// `#`, always the last level.
    Multi,
    /// A level holding `%u` and/or `%c`.
    Template(Box<[Piece]>),
}

#[derive(Debug, Clone)]
enum Piece {
    Text(Box<str>),
    Username,
    ClientId,
}

impl Pattern {
    /// Compiles a topic filter with optional `%u` / `%c` placeholders. The
    /// error says why it is not a valid filter.
    pub(crate) fn parse(filter: &str) -> Result<Self, &'static str> {
        if filter.is_empty() {
            return Err("it is empty");
        }
        let count = filter.split('/').count();
        let mut levels = Vec::with_capacity(count);
        for (n, level) in filter.split('/').enumerate() {
            levels.push(match level {
                "#" if n + 1 == count => Level::Multi,
                "+" => Level::Single,
                _ if level.contains('#') => return Err("'#' must be the whole last level"),
                _ if level.contains('+') => return Err("'+' must be a whole level"),
                _ if level.contains("%u") || level.contains("%c") => Level::Template(template(level)),
                _ => Level::Literal(level.into()),
            });
        }
        let uses = |wanted: fn(&Piece) -> bool| {
            levels
                .iter()
                .any(|l| matches!(l, Level::Template(pieces) if pieces.iter().any(wanted)))
        };
        Ok(Self {
            uses_username: uses(|p| matches!(p, Piece::Username)),
            uses_client_id: uses(|p| matches!(p, Piece::ClientId)),
            levels: levels.into(),
        })
    }

    /// Whether the pattern can apply to a client with these values: a
    /// pattern using `%u` needs a usable username, one using `%c` a usable
    /// client id.
    pub(crate) fn applies_to(&self, vars: &Vars<'_>) -> bool {
        (!self.uses_username || vars.username.is_some()) && (!self.uses_client_id || vars.client_id.is_some())
    }

    /// Whether PUBLISH to `topic` matches. Standard MQTT matching: `+` is
    /// any one level, `#` any number including none (`a/#` matches `a`),
    /// and a topic starting with `$` is not matched by a leading wildcard.
    pub(crate) fn matches_topic(&self, vars: &Vars<'_>, topic: &str) -> bool {
        self.walk(vars, topic, |level, vars, t| level.matches(vars, t))
    }

    /// Whether every topic `filter` can match is matched by the pattern, so
    /// the subscription cannot see more than the rule allows: `#` covers
    /// whatever remains, `+` covers a literal level or `+` (not `#`), and a
    /// literal covers only the same literal.
    pub(crate) fn covers_filter(&self, vars: &Vars<'_>, filter: &str) -> bool {
        self.walk(vars, filter, |level, vars, f| match level {
            Level::Single => f != "#",
            _ => f != "+" && f != "#" && level.matches(vars, f),
        })
    }

    /// The shared shape of both checks: level by level, `#` ends the walk,
    /// and both sides must run out together otherwise.
    fn walk(&self, vars: &Vars<'_>, subject: &str, level_ok: impl Fn(&Level, &Vars<'_>, &str) -> bool) -> bool {
        let dollar = subject.starts_with('$');
        let mut parts = subject.split('/');
        for (n, level) in self.levels.iter().enumerate() {
            if n == 0 && dollar && level.is_leading_wildcard() {
                return false;
            }
            if matches!(level, Level::Multi) {
                return true;
            }
            match parts.next() {
                Some(part) if level_ok(level, vars, part) => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }

    /// Whether the pattern starts with the literal level `$share`: a rule
    /// written for shared subscriptions themselves.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.levels.first(), Some(Level::Literal(l)) if &**l == "$share")
    }
}

impl Level {
    /// Whether this level matches one topic level (or literal filter level).
    fn matches(&self, vars: &Vars<'_>, part: &str) -> bool {
        match self {
            Level::Literal(literal) => **literal == *part,
            Level::Single | Level::Multi => true,
            Level::Template(pieces) => template_matches(pieces, vars, part),
        }
    }

    /// A first level that must not reach into `$` topics (`$SYS/...`): the
    /// wildcards, and a placeholder at the very start (a user named `$SYS`
    /// must not get `$SYS/#` from `%u/#`).
    fn is_leading_wildcard(&self) -> bool {
        match self {
            Level::Single | Level::Multi => true,
            Level::Template(pieces) => !matches!(pieces.first(), Some(Piece::Text(_))),
            Level::Literal(_) => false,
        }
    }
}

/// Splits a level like `%u-data` into its pieces. Any other `%` is text.
fn template(level: &str) -> Box<[Piece]> {
    let mut pieces = Vec::new();
    let mut text_start = 0;
    for (at, _) in level.match_indices('%') {
        if at < text_start {
            continue;
        }
        let piece = match level.as_bytes().get(at + 1) {
            Some(b'u') => Piece::Username,
            Some(b'c') => Piece::ClientId,
            _ => continue,
        };
        if let Some(text) = level.get(text_start..at).filter(|t| !t.is_empty()) {
            pieces.push(Piece::Text(text.into()));
        }
        pieces.push(piece);
        text_start = at + 2;
    }
    if let Some(text) = level.get(text_start..).filter(|t| !t.is_empty()) {
        pieces.push(Piece::Text(text.into()));
    }
    pieces.into()
}

/// Whether `part` is exactly the template with the values substituted,
/// compared piece by piece instead of building the string.
fn template_matches(pieces: &[Piece], vars: &Vars<'_>, part: &str) -> bool {
    let mut rest = part;
    for piece in pieces {
        let expected = match piece {
            Piece::Text(text) => Some(&**text),
            Piece::Username => vars.username,
            Piece::ClientId => vars.client_id,
        };
        match expected.and_then(|e| rest.strip_prefix(e)) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANON: Vars<'static> = Vars {
        username: None,
        client_id: Some("c1"),
    };

    fn pattern(filter: &str) -> Pattern {
        Pattern::parse(filter).expect("valid pattern")
    }

    #[test]
    fn invalid_patterns_are_refused() {
        for bad in ["", "a/#/b", "a#", "a/b+", "+a/b"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn topic_matching() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/b", "a/b/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/", true),
            ("a/+", "a", false),
            ("a/+/c", "a/b/c", true),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/#", "b", false),
            ("#", "anything/at/all", true),
            ("#", "$SYS/broker/load", false),
            ("+/broker/load", "$SYS/broker/load", false),
            ("$SYS/#", "$SYS/broker/load", true),
            ("$SYS/+/load", "$SYS/broker/load", true),
        ];
        for (p, topic, expected) in cases {
            assert_eq!(pattern(p).matches_topic(&ANON, topic), expected, "{p} vs {topic}");
        }
    }

    #[test]
    fn filter_subsumption() {
        let cases = [
            ("devices/dev-1/#", "devices/dev-1/+/x", true),
            ("devices/dev-1/#", "devices/dev-1/#", true),
            ("devices/dev-1/#", "devices/dev-1", true),
            ("devices/dev-1/#", "devices/#", false),
            ("devices/dev-1/#", "devices/+/telemetry", false),
            ("devices/+/telemetry", "devices/+/telemetry", true),
            ("devices/+/telemetry", "devices/d9/telemetry", true),
            ("devices/+/telemetry", "devices/#", false),
            ("devices/+/telemetry", "devices/d9/telemetry/x", false),
            ("a/+", "a/#", false),
            ("a/+/#", "a/#", false),
            ("a", "a/#", false),
            ("a/b", "a/+", false),
            ("#", "#", true),
            ("#", "+/x", true),
            ("#", "$SYS/#", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/broker/+", true),
        ];
        for (p, filter, expected) in cases {
            assert_eq!(pattern(p).covers_filter(&ANON, filter), expected, "{p} covers {filter}");
        }
    }

    #[test]
    fn templates_substitute_whole_and_partial_levels() {
        let vars = Vars::new("cid", Some("alice"));
        let p = pattern("users/%u/%c-out/#");
        assert!(p.applies_to(&vars));
        assert!(p.matches_topic(&vars, "users/alice/cid-out/x"));
        assert!(!p.matches_topic(&vars, "users/alice/cid/x"));
        assert!(!p.matches_topic(&vars, "users/bob/cid-out/x"));
        assert!(p.covers_filter(&vars, "users/alice/cid-out/+"));
        assert!(!p.covers_filter(&vars, "users/+/cid-out/x"));
        assert!(pattern("a/100%/%%u").matches_topic(&vars, "a/100%/%alice"));
    }

    #[test]
    fn unusable_values_disable_the_pattern() {
        let p = pattern("users/%u/#");
        for bad in ["", "+", "#", "a/b", "a/#"] {
            assert!(!p.applies_to(&Vars::new("cid", Some(bad))), "{bad:?}");
        }
        assert!(!p.applies_to(&Vars::new("cid", None)));
        assert!(!pattern("c/%c").applies_to(&Vars::new("a/b", Some("alice"))));
        assert!(pattern("fixed/#").applies_to(&Vars::new("", None)));
    }

    #[test]
    fn leading_placeholder_does_not_reach_dollar_topics() {
        let vars = Vars::new("cid", Some("$SYS"));
        let p = pattern("%u/#");
        assert!(p.applies_to(&vars));
        assert!(!p.matches_topic(&vars, "$SYS/broker/load"));
        assert!(!p.covers_filter(&vars, "$SYS/#"));
    }

    #[test]
    fn shared_patterns_are_recognised() {
        assert!(pattern("$share/backend/devices/+/telemetry").is_shared());
        assert!(!pattern("devices/+/telemetry").is_shared());
        assert!(!pattern("+/backend/#").is_shared());
    }
}
