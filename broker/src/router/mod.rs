//! Topic routing for the broker: which sessions and cluster nodes receive a
//! published message.
//!
//! [`Router`] keeps subscriptions in a trie over topic levels (`trie`), so a
//! PUBLISH walks it once whatever the number of subscriptions. Ordinary
//! matches are merged per destination ([`Delivery`]); shared groups
//! (`$share/{group}/{filter}`) yield one chosen member each
//! ([`SharedDelivery`], policy in [`SharedPolicy`]). A reverse index per
//! destination makes removing a session's subscriptions cheap, and the
//! router counts filters with local subscribers so the cluster can announce
//! route changes. Retained messages live in their own trie,
//! [`RetainedStore`].

mod filter;
mod matches;
mod retained;
mod shared;
mod trie;
mod types;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub use filter::{filter_matches, validate_filter, validate_topic, FilterError, TopicError};
pub use matches::{Delivery, Matches};
pub use retained::RetainedStore;
pub use shared::{SharedDelivery, SharedMember, SharedPolicy};
pub use types::{Destination, NodeName, QoS, SessionKey, SubscriptionOptions};

use filter::ParsedFilter;
use trie::{LeafChange, Node};

/// Default cap on levels in a filter or retained topic (as EMQX's
/// `max_topic_levels`); it bounds trie depth and so the recursion of every
/// walk.
pub const DEFAULT_MAX_LEVELS: usize = 128;

/// Result of [`Router::subscribe`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscribeOutcome {
    /// The destination already had this exact filter; its options were
    /// replaced (matters for `retain_handling = 1`).
    pub replaced: bool,
    /// The filter (or the shared group at the filter) got its first local
    /// subscriber: a route to announce to the cluster.
    pub route_added: bool,
}

/// Result of [`Router::unsubscribe`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnsubscribeOutcome {
    /// A subscription was removed (else UNSUBACK says "no subscription
    /// existed").
    pub removed: bool,
    /// The filter (or the shared group at the filter) lost its last local
    /// subscriber: a route to withdraw from the cluster.
    pub route_removed: bool,
}

/// Result of [`Router::remove_all`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveAllOutcome {
    /// How many subscriptions were removed.
    pub removed: usize,
    /// Filters, as subscribed (`$share/{group}/` prefix included), that lost
    /// their last local subscriber.
    pub routes_removed: Vec<Arc<str>>,
}

/// Reverse-index entry: everything one destination is subscribed to.
#[derive(Debug)]
struct DestinationEntry {
    filters: HashSet<Arc<str>>,
    online: bool,
}

/// Topic router: matches published topics to subscriptions.
///
/// Meant to sit behind an `RwLock`: matching takes `&self` (the only shared
/// mutation is each group's atomic round-robin cursor), subscription changes
/// take `&mut self`.
#[derive(Debug)]
pub struct Router {
    root: Node,
    index: HashMap<Destination, DestinationEntry>,
    policy: SharedPolicy,
    max_levels: usize,
    subscriptions: usize,
    local_routes: usize,
}

impl Default for Router {
    fn default() -> Self {
        Self::new(SharedPolicy::default())
    }
}

impl Router {
    /// An empty router whose shared groups pick members by `policy`.
    pub fn new(policy: SharedPolicy) -> Self {
        Self {
            root: Node::default(),
            index: HashMap::new(),
            policy,
            max_levels: DEFAULT_MAX_LEVELS,
            subscriptions: 0,
            local_routes: 0,
        }
    }

    /// Sets the cap on filter levels (default [`DEFAULT_MAX_LEVELS`]).
    pub fn with_max_levels(mut self, max_levels: usize) -> Self {
        self.max_levels = max_levels;
        self
    }

    /// Subscribes `destination` to `filter` (`$share/{group}/{filter}` for a
    /// shared subscription), replacing the options of an existing
    /// subscription to the same filter.
    ///
    /// A new shared member starts online unless its destination was marked
    /// offline with [`Router::set_online`] and still holds subscriptions.
    pub fn subscribe(
        &mut self,
        filter: &str,
        destination: Destination,
        options: SubscriptionOptions,
    ) -> Result<SubscribeOutcome, FilterError> {
        let parsed = ParsedFilter::parse(filter, self.max_levels)?;
        let entry = self
            .index
            .entry(destination.clone())
            .or_insert_with(|| DestinationEntry {
                filters: HashSet::new(),
                online: true,
            });
        let leaf = self.root.leaf_mut(parsed.filter);
        let change = match parsed.group {
            None => leaf.subscribe(destination, options),
            Some(group) => {
                let member = SharedMember {
                    destination,
                    options,
                    online: entry.online,
                };
                leaf.join(group, parsed.filter, member)
            }
        };
        if !change.existed {
            entry.filters.insert(filter.into());
            self.subscriptions += 1;
        }
        self.local_routes += usize::from(change.route_changed);
        Ok(SubscribeOutcome {
            replaced: change.existed,
            route_added: change.route_changed,
        })
    }

    /// Removes the subscription of `destination` to `filter`.
    pub fn unsubscribe(&mut self, filter: &str, destination: &Destination) -> Result<UnsubscribeOutcome, FilterError> {
        let parsed = ParsedFilter::parse(filter, self.max_levels)?;
        let change = self.remove_from_trie(parsed, destination);
        if change.existed {
            if let Some(entry) = self.index.get_mut(destination) {
                entry.filters.remove(filter);
                if entry.filters.is_empty() {
                    self.index.remove(destination);
                }
            }
        }
        Ok(UnsubscribeOutcome {
            removed: change.existed,
            route_removed: change.route_changed,
        })
    }

    /// Removes every subscription of `destination` (a session ended, a node
    /// left), in time proportional to its own subscriptions.
    pub fn remove_all(&mut self, destination: &Destination) -> RemoveAllOutcome {
        let mut outcome = RemoveAllOutcome::default();
        let Some(entry) = self.index.remove(destination) else {
            return outcome;
        };
        for filter in entry.filters {
            let change = self.remove_from_trie(ParsedFilter::of_valid(&filter), destination);
            outcome.removed += usize::from(change.existed);
            if change.route_changed {
                outcome.routes_removed.push(filter);
            }
        }
        outcome
    }

    /// Removes one subscription from the trie and keeps the counters.
    fn remove_from_trie(&mut self, parsed: ParsedFilter<'_>, destination: &Destination) -> LeafChange {
        let levels = parsed.filter.split('/');
        let change = match parsed.group {
            None => self.root.update_leaf(levels, |leaf| leaf.unsubscribe(destination)),
            Some(group) => self.root.update_leaf(levels, |leaf| leaf.leave(group, destination)),
        };
        let change = change.unwrap_or(LeafChange {
            existed: false,
            route_changed: false,
        });
        self.subscriptions -= usize::from(change.existed);
        self.local_routes -= usize::from(change.route_changed);
        change
    }

    /// Marks `destination` online or offline in every shared group it is a
    /// member of; groups prefer online members. Returns how many
    /// memberships were updated.
    pub fn set_online(&mut self, destination: &Destination, online: bool) -> usize {
        let Some(entry) = self.index.get_mut(destination) else {
            return 0;
        };
        entry.online = online;
        let mut updated = 0;
        for filter in &entry.filters {
            let parsed = ParsedFilter::of_valid(filter);
            let Some(group) = parsed.group else { continue };
            let Some(leaf) = self.root.find_leaf_mut(parsed.filter) else {
                continue;
            };
            if let Some(group) = leaf.groups.get_mut(group) {
                updated += usize::from(group.set_online(destination, online));
            }
        }
        updated
    }

    /// Everything `topic` matches; see [`Router::match_into`].
    pub fn match_topic(&self, topic: &str, publisher: Option<SessionKey>) -> Matches {
        let mut matches = Matches::default();
        self.match_into(topic, publisher, &mut matches);
        matches
    }

    /// Fills `out` with the subscriptions matching `topic` in one trie walk:
    /// ordinary subscriptions merged per destination, and one chosen member
    /// per matching shared group.
    ///
    /// `publisher` is the session that published, if local: its own
    /// subscriptions with `no_local` are skipped. `topic` is taken as a
    /// valid topic name; `+` and `#` in it are matched as literal text.
    pub fn match_into(&self, topic: &str, publisher: Option<SessionKey>, out: &mut Matches) {
        out.clear();
        let publisher = publisher.map(Destination::Local);
        let policy = self.policy;
        self.root.walk(topic, &mut |leaf| {
            for (destination, options) in &leaf.subscribers {
                if options.no_local && publisher.as_ref() == Some(destination) {
                    continue;
                }
                out.push(destination, options);
            }
            out.shared
                .extend(leaf.groups.values().filter_map(|group| group.deliver(policy)));
        });
        out.merge();
    }

    /// Filters `destination` is subscribed to, as subscribed.
    pub fn filters_of(&self, destination: &Destination) -> impl Iterator<Item = &Arc<str>> + '_ {
        self.index
            .get(destination)
            .into_iter()
            .flat_map(|entry| entry.filters.iter())
    }

    /// Every filter with at least one local subscriber (shared ones with
    /// their `$share/{group}/` prefix), sorted: the full route set a
    /// (re)connecting cluster peer receives.
    pub fn local_routes(&self) -> Vec<Arc<str>> {
        let local = self.index.iter().filter(|(destination, _)| destination.is_local());
        let unique: HashSet<&Arc<str>> = local.flat_map(|(_, entry)| entry.filters.iter()).collect();
        let mut routes: Vec<Arc<str>> = unique.into_iter().cloned().collect();
        routes.sort_unstable();
        routes
    }

    /// Number of filters with a local subscriber (what
    /// [`Router::local_routes`] would return).
    pub fn local_route_count(&self) -> usize {
        self.local_routes
    }

    /// Number of (destination, filter) subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions
    }

    /// Trie nodes besides the root; zero once every subscription is gone.
    pub fn node_count(&self) -> usize {
        self.root.count() - 1
    }

    /// The shared subscription policy in force.
    pub fn policy(&self) -> SharedPolicy {
        self.policy
    }
}
