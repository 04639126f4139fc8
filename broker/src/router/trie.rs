//! The subscription trie: one node per topic-filter level, with `+` and `#`
//! children kept apart from literal ones so a publish walks the tree once.

use std::collections::HashMap;
use std::str::Split;

use super::shared::{MemberChange, SharedGroup, SharedMember};
use super::types::{Destination, SubscriptionOptions};

/// Subscriptions whose filter ends at one trie position.
#[derive(Debug, Default)]
pub(crate) struct Leaf {
    /// Non-shared subscriptions, one per destination.
    pub(crate) subscribers: HashMap<Destination, SubscriptionOptions>,
    /// Shared groups by share name.
    pub(crate) groups: HashMap<Box<str>, SharedGroup>,
    /// Local sessions among `subscribers`: the filter is a route while > 0.
    local_subscribers: usize,
}

/// What a change to a leaf did, for the router's outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeafChange {
    /// The (destination, filter) subscription existed before the change.
    pub(crate) existed: bool,
    /// The filter (or group at the filter) gained its first or lost its
    /// last local subscriber.
    pub(crate) route_changed: bool,
}

impl From<MemberChange> for LeafChange {
    fn from(change: MemberChange) -> Self {
        Self {
            existed: change.existed,
            route_changed: change.route_changed,
        }
    }
}

impl Leaf {
    fn is_empty(&self) -> bool {
        self.subscribers.is_empty() && self.groups.is_empty()
    }

    /// Adds or replaces the non-shared subscription of `destination`.
    pub(crate) fn subscribe(&mut self, destination: Destination, options: SubscriptionOptions) -> LeafChange {
        let local = destination.is_local();
        let existed = self.subscribers.insert(destination, options).is_some();
        if existed || !local {
            return LeafChange {
                existed,
                route_changed: false,
            };
        }
        self.local_subscribers += 1;
        LeafChange {
            existed,
            route_changed: self.local_subscribers == 1,
        }
    }

    /// Removes the non-shared subscription of `destination`.
    pub(crate) fn unsubscribe(&mut self, destination: &Destination) -> LeafChange {
        let existed = self.subscribers.remove(destination).is_some();
        if !existed || !destination.is_local() {
            return LeafChange {
                existed,
                route_changed: false,
            };
        }
        self.local_subscribers -= 1;
        LeafChange {
            existed,
            route_changed: self.local_subscribers == 0,
        }
    }

    /// Adds `member` to `group` (created on first use) or replaces its
    /// options.
    pub(crate) fn join(&mut self, group: &str, filter: &str, member: SharedMember) -> LeafChange {
        let entry = self
            .groups
            .entry(group.into())
            .or_insert_with(|| SharedGroup::new(group, filter));
        entry.upsert(member).into()
    }

    /// Removes `destination` from `group`, dropping the group when empty.
    pub(crate) fn leave(&mut self, group: &str, destination: &Destination) -> LeafChange {
        let Some(entry) = self.groups.get_mut(group) else {
            return LeafChange {
                existed: false,
                route_changed: false,
            };
        };
        let change = entry.remove(destination);
        if entry.is_empty() {
            self.groups.remove(group);
        }
        change.into()
    }
}

/// One trie level.
#[derive(Debug, Default)]
pub(crate) struct Node {
    literal: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// `#` is always the last level, so it holds only a leaf.
    hash: Option<Box<Leaf>>,
    leaf: Leaf,
}

impl Node {
    /// Whether the node holds nothing and can be pruned.
    pub(crate) fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.plus.is_none() && self.hash.is_none() && self.leaf.is_empty()
    }

    /// Nodes in this subtree, this one included; a `#` leaf counts as one.
    pub(crate) fn count(&self) -> usize {
        1 + self.literal.values().map(Node::count).sum::<usize>()
            + self.plus.as_deref().map_or(0, Node::count)
            + usize::from(self.hash.is_some())
    }

    /// The leaf for a valid `filter`, creating the path to it.
    pub(crate) fn leaf_mut(&mut self, filter: &str) -> &mut Leaf {
        let mut node = self;
        for level in filter.split('/') {
            node = match level {
                "#" => return node.hash.get_or_insert_with(Box::default),
                "+" => node.plus.get_or_insert_with(Box::default),
                _ => node.literal.entry(level.into()).or_default(),
            };
        }
        &mut node.leaf
    }

    /// The leaf for a valid `filter` if its path exists.
    pub(crate) fn find_leaf_mut(&mut self, filter: &str) -> Option<&mut Leaf> {
        let mut node = self;
        for level in filter.split('/') {
            node = match level {
                "#" => return node.hash.as_deref_mut(),
                "+" => node.plus.as_deref_mut()?,
                _ => node.literal.get_mut(level)?,
            };
        }
        Some(&mut node.leaf)
    }

    /// Applies `change` to the leaf of a valid filter, then prunes nodes left
    /// empty on the way back up. `None` when the path does not exist.
    ///
    /// Recursion depth is bounded by the trie depth, which the router caps.
    pub(crate) fn update_leaf<R>(
        &mut self,
        mut levels: Split<'_, char>,
        change: impl FnOnce(&mut Leaf) -> R,
    ) -> Option<R> {
        let Some(level) = levels.next() else {
            return Some(change(&mut self.leaf));
        };
        match level {
            "#" => {
                let leaf = self.hash.as_deref_mut()?;
                let result = change(leaf);
                if leaf.is_empty() {
                    self.hash = None;
                }
                Some(result)
            }
            "+" => {
                let child = self.plus.as_deref_mut()?;
                let result = child.update_leaf(levels, change);
                if child.is_empty() {
                    self.plus = None;
                }
                result
            }
            _ => {
                let child = self.literal.get_mut(level)?;
                let result = child.update_leaf(levels, change);
                if child.is_empty() {
                    self.literal.remove(level);
                }
                result
            }
        }
    }

    /// Calls `visit` on every leaf whose filter matches `topic`.
    ///
    /// Wildcards at the first level do not match topics starting with `$`
    /// (MQTT-4.7.2-1).
    pub(crate) fn walk<'a>(&'a self, topic: &str, visit: &mut impl FnMut(&'a Leaf)) {
        let mut levels = topic.split('/');
        match levels.next() {
            Some(first) if first.starts_with('$') => {
                if let Some(child) = self.literal.get(first) {
                    child.walk_levels(levels, visit);
                }
            }
            _ => self.walk_levels(topic.split('/'), visit),
        }
    }

    /// Recursive step of [`Node::walk`]; depth is bounded by the trie depth.
    fn walk_levels<'a>(&'a self, mut levels: Split<'_, char>, visit: &mut impl FnMut(&'a Leaf)) {
        // `#` also matches the parent level: `a/#` matches `a`.
        if let Some(hash) = &self.hash {
            visit(hash);
        }
        let Some(level) = levels.next() else {
            visit(&self.leaf);
            return;
        };
        if let Some(child) = self.literal.get(level) {
            child.walk_levels(levels.clone(), visit);
        }
        if let Some(child) = &self.plus {
            child.walk_levels(levels, visit);
        }
    }
}
