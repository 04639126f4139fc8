//! Rate classes: per-client limits chosen by who the client is. A class
//! matches when every key it gives matches (certificate CN pattern with
//! `*`, exact username, client-id prefix); a class without keys matches
//! everyone; the first matching class applies. A class brings bandwidth
//! limits for each of its connections and a connect rate shared by all its
//! clients.

use std::sync::Arc;

use governor::DefaultDirectRateLimiter;
use skerry_config::units::Bandwidth;
use skerry_config::RateClass;

use crate::limits::quota;

/// Who a client says it is, as far as classes care.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Identity<'a> {
    pub(crate) cn: Option<&'a str>,
    pub(crate) username: Option<&'a str>,
    pub(crate) client_id: &'a str,
}

/// One class at run time.
#[derive(Debug)]
pub(crate) struct Class {
    pub(crate) name: Arc<str>,
    cn: Option<String>,
    username: Option<String>,
    client_id_prefix: Option<String>,
    pub(crate) bandwidth_in: Option<Bandwidth>,
    pub(crate) bandwidth_out: Option<Bandwidth>,
    connect_rate: Option<DefaultDirectRateLimiter>,
}

impl Class {
    fn new(c: &RateClass) -> Class {
        Class {
            name: c.name.as_str().into(),
            cn: c.match_cn.clone(),
            username: c.match_username.clone(),
            client_id_prefix: c.match_client_id_prefix.clone(),
            bandwidth_in: c.bandwidth_in,
            bandwidth_out: c.bandwidth_out,
            connect_rate: c.connect_rate.map(|r| governor::RateLimiter::direct(quota(r))),
        }
    }

    fn matches(&self, who: &Identity<'_>) -> bool {
        let cn = self
            .cn
            .as_deref()
            .is_none_or(|pat| who.cn.is_some_and(|cn| glob(pat, cn)));
        let user = self.username.as_deref().is_none_or(|u| who.username == Some(u));
        let prefix = self
            .client_id_prefix
            .as_deref()
            .is_none_or(|p| who.client_id.starts_with(p));
        cn && user && prefix
    }

    /// Takes one new connection from the class's connect rate; `false`
    /// when the class is over it.
    pub(crate) fn admit(&self) -> bool {
        self.connect_rate.as_ref().is_none_or(|l| l.check().is_ok())
    }
}

/// The configured classes, in order.
#[derive(Debug, Default)]
pub(crate) struct Classes(Vec<Class>);

impl Classes {
    pub(crate) fn new(classes: &[RateClass]) -> Classes {
        Classes(classes.iter().map(Class::new).collect())
    }

    /// The first class `who` belongs to.
    pub(crate) fn find(&self, who: &Identity<'_>) -> Option<&Class> {
        self.0.iter().find(|c| c.matches(who))
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of
/// characters (none included) and everything else matches itself.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and where in `text` it currently ends.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, cn: Option<&str>, user: Option<&str>, prefix: Option<&str>) -> RateClass {
        RateClass {
            name: name.into(),
            match_cn: cn.map(Into::into),
            match_username: user.map(Into::into),
            match_client_id_prefix: prefix.map(Into::into),
            bandwidth_in: None,
            bandwidth_out: None,
            connect_rate: None,
        }
    }

    #[test]
    fn glob_matches_runs() {
        for (p, t, want) in [
            ("backend-*", "backend-1", true),
            ("backend-*", "backend-", true),
            ("backend-*", "device-1", false),
            ("*", "", true),
            ("*.example.com", "a.b.example.com", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("", "", true),
            ("**x", "yx", true),
        ] {
            assert_eq!(glob(p, t), want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn first_class_whose_keys_all_match_wins() {
        let classes = Classes::new(&[
            class("backend", Some("backend-*"), None, None),
            class("ingest", None, Some("ingest"), Some("in-")),
            class("devices", None, None, None),
        ]);
        let who = |cn, user, id| Identity {
            cn,
            username: user,
            client_id: id,
        };
        let name = |w: Identity<'_>| classes.find(&w).map(|c| c.name.to_string());
        assert_eq!(name(who(Some("backend-7"), None, "x")).as_deref(), Some("backend"));
        assert_eq!(name(who(None, Some("ingest"), "in-1")).as_deref(), Some("ingest"));
        assert_eq!(name(who(None, Some("ingest"), "other")).as_deref(), Some("devices"));
        assert_eq!(name(who(None, None, "")).as_deref(), Some("devices"));
        assert!(Classes::new(&[class("cn-only", Some("*"), None, None)])
            .find(&who(None, None, "x"))
            .is_none());
    }
}
