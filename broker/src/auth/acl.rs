//! Publish/subscribe authorisation from the `broker.acl` rules.
//!
//! No rules: everything is allowed. Otherwise a PUBLISH or SUBSCRIBE is
//! allowed only if some rule allows it. A rule applies to a client when its
//! `access` fits, its `users` list is empty or names the client's username,
//! and every placeholder it uses has a usable value (`%u` needs a username;
//! a value that is empty or contains `/`, `+` or `#` disables the rule, so a
//! username cannot widen a pattern).
//!
//! Shared subscriptions `$share/{group}/{filter}` are allowed when the
//! `{filter}` part is allowed, like any subscription, or when a rule whose
//! topic itself starts with `$share/` covers the whole `$share/...` filter:
//! `$share/backend/devices/+/telemetry` for user `backend` lets only that
//! user join group `backend` on that filter, without granting it a plain
//! subscription.

use skerry_config::{Access, AclRule};
use tracing::warn;

use super::pattern::{Pattern, Vars};

/// The compiled ACL. Immutable; a reload builds a new one.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// `None`: no rules were configured, everything is allowed.
    rules: Option<Box<[Rule]>>,
}

#[derive(Debug, Clone)]
struct Rule {
    publish: bool,
    subscribe: bool,
    users: Box<[Box<str>]>,
    pattern: Pattern,
}

impl Rule {
    fn applies(&self, subscribe: bool, username: Option<&str>, vars: &Vars<'_>) -> bool {
        let access = if subscribe { self.subscribe } else { self.publish };
        access
            && (self.users.is_empty() || username.is_some_and(|u| self.users.iter().any(|allowed| **allowed == *u)))
            && self.pattern.applies_to(vars)
    }
}

impl Acl {
    /// Compiles `rules`. A rule whose topic is not a valid filter (the
    /// config loader refuses those) is logged and dropped, which can only
    /// deny more: it never turns a rule list into "allow everything".
    pub fn new(rules: &[AclRule]) -> Self {
        if rules.is_empty() {
            return Self { rules: None };
        }
        let compiled = rules
            .iter()
            .enumerate()
            .filter_map(|(index, rule)| match Pattern::parse(&rule.topic) {
                Ok(pattern) => Some(Rule {
                    publish: matches!(rule.access, Access::Publish | Access::All),
                    subscribe: matches!(rule.access, Access::Subscribe | Access::All),
                    users: rule.users.iter().map(|u| u.as_str().into()).collect(),
                    pattern,
                }),
                Err(why) => {
                    warn!(rule = index, topic = %rule.topic, why, "ACL rule ignored: topic is not a filter");
                    None
                }
            })
            .collect();
        Self { rules: Some(compiled) }
    }

    /// Whether the ACL has no rules and allows everything.
    pub fn allows_everything(&self) -> bool {
        self.rules.is_none()
    }

    /// Whether the client may PUBLISH to `topic`.
    pub fn can_publish(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        let vars = Vars::new(client_id, username);
        rules
            .iter()
            .any(|r| r.applies(false, username, &vars) && r.pattern.matches_topic(&vars, topic))
    }

    /// Whether the client may SUBSCRIBE to `filter`: some rule's pattern
    /// must match every topic the filter can match. See the module docs for
    /// shared subscriptions.
    pub fn can_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        let vars = Vars::new(client_id, username);
        let shared = match filter.strip_prefix("$share/") {
            Some(rest) => match rest.split_once('/') {
                Some((group, inner)) if !group.is_empty() && !inner.is_empty() => Some(inner),
                _ => return false,
            },
            None => None,
        };
        rules
            .iter()
            .filter(|r| r.applies(true, username, &vars))
            .any(|r| match shared {
                Some(inner) => {
                    r.pattern.covers_filter(&vars, inner)
                        || (r.pattern.is_shared() && r.pattern.covers_filter(&vars, filter))
                }
                None => r.pattern.covers_filter(&vars, filter),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(access: Access, topic: &str, users: &[&str]) -> AclRule {
        AclRule {
            access,
            topic: topic.to_owned(),
            users: users.iter().map(|u| (*u).to_owned()).collect(),
        }
    }

    /// A typical fleet: devices own their subtree, a backend reads telemetry.
    fn fleet() -> Acl {
        Acl::new(&[
            rule(Access::All, "devices/%u/#", &[]),
            rule(Access::Publish, "clients/%c/status", &[]),
            rule(Access::Subscribe, "broadcast/+", &[]),
            rule(Access::Subscribe, "$share/backend/devices/+/telemetry", &["backend"]),
            rule(Access::All, "admin/#", &["root", "ops"]),
        ])
    }

    #[test]
    fn no_rules_allow_everything() {
        let acl = Acl::new(&[]);
        assert!(acl.allows_everything());
        assert!(acl.can_publish("c", None, "$SYS/x"));
        assert!(acl.can_subscribe("c", None, "#"));
        assert!(Acl::default().can_subscribe("c", Some("u"), "$share/g/#"));
    }

    #[test]
    fn invalid_rules_never_open_everything() {
        let acl = Acl::new(&[rule(Access::All, "a/#/b", &[])]);
        assert!(!acl.allows_everything());
        assert!(!acl.can_publish("c", None, "a/x/b"));
    }

    #[test]
    fn publish_with_username_and_client_id() {
        let acl = fleet();
        assert!(acl.can_publish("c1", Some("dev-1"), "devices/dev-1/telemetry"));
        assert!(acl.can_publish("c1", Some("dev-1"), "devices/dev-1"));
        assert!(!acl.can_publish("c1", Some("dev-1"), "devices/dev-2/telemetry"));
        assert!(acl.can_publish("c1", None, "clients/c1/status"));
        assert!(!acl.can_publish("c1", None, "clients/c2/status"));
        assert!(!acl.can_publish("c1", Some("dev-1"), "broadcast/news"));
        assert!(!acl.can_publish("c1", None, "devices/c1/telemetry"));
    }

    #[test]
    fn subscribe_with_username_and_client_id() {
        let acl = fleet();
        assert!(acl.can_subscribe("c1", Some("dev-1"), "devices/dev-1/#"));
        assert!(acl.can_subscribe("c1", Some("dev-1"), "devices/dev-1/+/x"));
        assert!(!acl.can_subscribe("c1", Some("dev-1"), "devices/#"));
        assert!(!acl.can_subscribe("c1", Some("dev-1"), "devices/+/telemetry"));
        assert!(acl.can_subscribe("c1", None, "broadcast/news"));
        assert!(acl.can_subscribe("c1", None, "broadcast/+"));
        assert!(!acl.can_subscribe("c1", None, "broadcast/#"));
        assert!(!acl.can_subscribe("c1", None, "clients/c1/status"));
    }

    #[test]
    fn users_restricted_rules() {
        let acl = fleet();
        assert!(acl.can_publish("c", Some("root"), "admin/reboot"));
        assert!(acl.can_subscribe("c", Some("ops"), "admin/#"));
        assert!(!acl.can_publish("c", Some("dev-1"), "admin/reboot"));
        assert!(!acl.can_publish("c", None, "admin/reboot"));
        assert!(!acl.can_subscribe("c", Some("rooty"), "admin/#"));
    }

    #[test]
    fn usernames_cannot_widen_patterns() {
        let acl = fleet();
        for username in ["+", "#", "a/b", "a/#", ""] {
            assert!(!acl.can_subscribe("c", Some(username), "devices/#"), "{username:?}");
            assert!(!acl.can_subscribe("c", Some(username), "devices/+/x"), "{username:?}");
            assert!(!acl.can_publish("c", Some(username), "devices/a/b"), "{username:?}");
            assert!(
                !acl.can_publish("c", Some(username), &format!("devices/{username}")),
                "{username:?}"
            );
        }
        for client_id in ["+", "#", "a/b", ""] {
            assert!(
                !acl.can_publish(client_id, None, &format!("clients/{client_id}/status")),
                "{client_id:?}"
            );
        }
    }

    #[test]
    fn dollar_topics_need_an_explicit_rule() {
        let open = Acl::new(&[
            rule(Access::All, "#", &[]),
            rule(Access::Subscribe, "$SYS/broker/#", &["ops"]),
        ]);
        assert!(open.can_publish("c", None, "any/topic"));
        assert!(!open.can_publish("c", None, "$SYS/broker/load"));
        assert!(!open.can_subscribe("c", None, "$SYS/#"));
        assert!(open.can_subscribe("c", Some("ops"), "$SYS/broker/+"));
        assert!(!open.can_subscribe("c", Some("ops"), "$SYS/#"));
        let by_name = Acl::new(&[rule(Access::All, "%u/#", &[])]);
        assert!(by_name.can_publish("c", Some("alice"), "alice/x"));
        assert!(!by_name.can_publish("c", Some("$SYS"), "$SYS/broker/load"));
    }

    #[test]
    fn shared_subscriptions_check_the_inner_filter() {
        let acl = fleet();
        assert!(acl.can_subscribe("c1", Some("dev-1"), "$share/g/devices/dev-1/#"));
        assert!(!acl.can_subscribe("c1", Some("dev-1"), "$share/g/devices/#"));
        assert!(acl.can_subscribe("c1", None, "$share/any/broadcast/+"));
        for malformed in ["$share/", "$share/g", "$share/g/", "$share//devices/dev-1/#"] {
            assert!(!acl.can_subscribe("c1", Some("dev-1"), malformed), "{malformed:?}");
        }
    }

    #[test]
    fn shared_rules_grant_the_group_only() {
        let acl = fleet();
        assert!(acl.can_subscribe("b", Some("backend"), "$share/backend/devices/+/telemetry"));
        assert!(acl.can_subscribe("b", Some("backend"), "$share/backend/devices/d7/telemetry"));
        assert!(!acl.can_subscribe("b", Some("backend"), "$share/other/devices/+/telemetry"));
        assert!(!acl.can_subscribe("b", Some("backend"), "devices/+/telemetry"));
        assert!(!acl.can_subscribe("b", Some("backend"), "$share/backend/devices/#"));
        assert!(!acl.can_subscribe("x", Some("dev-1"), "$share/backend/devices/+/telemetry"));
        assert!(!acl.can_publish("b", Some("backend"), "devices/d7/telemetry"));
    }

    #[test]
    fn wildcard_rules_do_not_grant_shared_prefix_directly() {
        let acl = Acl::new(&[rule(Access::Subscribe, "+/backend/#", &[])]);
        assert!(!acl.can_subscribe("c", None, "$share/backend/x"));
    }
}
