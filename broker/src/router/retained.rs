//! Retained messages, kept in a trie keyed by topic level so a new
//! subscription finds its retained messages by walking only the branches its
//! filter can match.

use std::collections::HashMap;
use std::str::Split;

use super::filter::{validate_topic, TopicError};
use super::DEFAULT_MAX_LEVELS;

/// One topic level of the retained trie.
#[derive(Debug)]
struct Node<M> {
    children: HashMap<Box<str>, Node<M>>,
    message: Option<M>,
}

impl<M> Default for Node<M> {
    fn default() -> Self {
        Self {
            children: HashMap::new(),
            message: None,
        }
    }
}

impl<M> Node<M> {
    fn is_empty(&self) -> bool {
        self.message.is_none() && self.children.is_empty()
    }

    fn count(&self) -> usize {
        1 + self.children.values().map(Node::count).sum::<usize>()
    }

    /// Takes the message at the end of `levels`, pruning emptied nodes.
    /// Recursion depth is bounded by the trie depth.
    fn remove(&mut self, mut levels: Split<'_, char>) -> Option<M> {
        let Some(level) = levels.next() else {
            return self.message.take();
        };
        let child = self.children.get_mut(level)?;
        let message = child.remove(levels);
        if child.is_empty() {
            self.children.remove(level);
        }
        message
    }

    /// Collects messages whose topic matches the rest of a filter.
    /// `at_root` applies MQTT-4.7.2-1: wildcards at the first level skip
    /// topics starting with `$`.
    fn collect<'a>(&'a self, mut levels: Split<'_, char>, at_root: bool, out: &mut Vec<&'a M>) {
        let Some(level) = levels.next() else {
            out.extend(self.message.as_ref());
            return;
        };
        match level {
            "#" => {
                // `a/#` matches `a` itself.
                out.extend(self.message.as_ref());
                for child in self.wildcard_children(at_root) {
                    child.collect_all(out);
                }
            }
            "+" => {
                for child in self.wildcard_children(at_root) {
                    child.collect(levels.clone(), false, out);
                }
            }
            _ => {
                if let Some(child) = self.children.get(level) {
                    child.collect(levels, false, out);
                }
            }
        }
    }

    /// Children a wildcard level may enter.
    fn wildcard_children(&self, at_root: bool) -> impl Iterator<Item = &Node<M>> {
        self.children
            .iter()
            .filter(move |(name, _)| !(at_root && name.starts_with('$')))
            .map(|(_, child)| child)
    }

    fn collect_all<'a>(&'a self, out: &mut Vec<&'a M>) {
        out.extend(self.message.as_ref());
        for child in self.children.values() {
            child.collect_all(out);
        }
    }
}

/// Retained messages by topic.
///
/// Deleting on an empty retained payload is the caller's decision: it calls
/// [`RetainedStore::remove`]. Like [`Router`](super::Router), reads take
/// `&self` so the store can sit behind an `RwLock`.
#[derive(Debug)]
pub struct RetainedStore<M> {
    root: Node<M>,
    len: usize,
    max_levels: usize,
}

impl<M> Default for RetainedStore<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> RetainedStore<M> {
    /// An empty store accepting topics of up to [`DEFAULT_MAX_LEVELS`].
    pub fn new() -> Self {
        Self {
            root: Node::default(),
            len: 0,
            max_levels: DEFAULT_MAX_LEVELS,
        }
    }

    /// Sets the cap on topic levels; it bounds the trie depth.
    pub fn with_max_levels(mut self, max_levels: usize) -> Self {
        self.max_levels = max_levels;
        self
    }

    /// Stores `message` as the retained message of `topic`, returning the
    /// one it replaces.
    pub fn set(&mut self, topic: &str, message: M) -> Result<Option<M>, TopicError> {
        validate_topic(topic, self.max_levels)?;
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        let previous = node.message.replace(message);
        self.len += usize::from(previous.is_none());
        Ok(previous)
    }

    /// Removes the retained message of `topic`, pruning emptied nodes.
    pub fn remove(&mut self, topic: &str) -> Option<M> {
        let removed = self.root.remove(topic.split('/'));
        self.len -= usize::from(removed.is_some());
        removed
    }

    /// The retained message of exactly `topic`.
    pub fn get(&self, topic: &str) -> Option<&M> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.message.as_ref()
    }

    /// Retained messages whose topic matches `filter` (a topic filter
    /// without `$share/` prefix: MQTT sends no retained messages on shared
    /// subscriptions), in no particular order.
    ///
    /// Literal levels are looked up, so `devices/42/#` touches only the
    /// `devices/42` subtree.
    pub fn matches(&self, filter: &str) -> Vec<&M> {
        let mut out = Vec::new();
        self.root.collect(filter.split('/'), true, &mut out);
        out
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no message is retained.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Trie nodes besides the root; zero once every message is removed.
    pub fn node_count(&self) -> usize {
        self.root.count() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(topics: &[&str]) -> RetainedStore<String> {
        let mut store = RetainedStore::new();
        for topic in topics {
            assert_eq!(store.set(topic, (*topic).to_owned()), Ok(None));
        }
        store
    }

    fn sorted(found: Vec<&String>) -> Vec<&str> {
        let mut found: Vec<&str> = found.into_iter().map(String::as_str).collect();
        found.sort_unstable();
        found
    }

    #[test]
    fn matches_wildcards_and_parent_level() {
        let store = store(&["a", "a/b", "a/b/c", "a/c", "b/b", "/a", "$SYS/x"]);
        assert_eq!(sorted(store.matches("a/#")), ["a", "a/b", "a/b/c", "a/c"]);
        assert_eq!(sorted(store.matches("a/+")), ["a/b", "a/c"]);
        assert_eq!(sorted(store.matches("+/b")), ["a/b", "b/b"]);
        assert_eq!(sorted(store.matches("+/a")), ["/a"]);
        assert_eq!(sorted(store.matches("a/b")), ["a/b"]);
        assert!(store.matches("a/b/c/d").is_empty());
    }

    #[test]
    fn wildcards_at_root_skip_dollar_topics() {
        let store = store(&["$SYS/x", "$SYS/y/z", "a"]);
        assert_eq!(sorted(store.matches("#")), ["a"]);
        assert!(store.matches("+/x").is_empty());
        assert_eq!(sorted(store.matches("$SYS/#")), ["$SYS/x", "$SYS/y/z"]);
        assert_eq!(sorted(store.matches("$SYS/+")), ["$SYS/x"]);
    }

    #[test]
    fn set_replaces_and_remove_prunes() {
        let mut store = store(&["a/b/c", "a/d"]);
        assert_eq!(store.set("a/b/c", "new".to_owned()), Ok(Some("a/b/c".to_owned())));
        assert_eq!(store.len(), 2);
        assert_eq!(store.get("a/b/c").map(String::as_str), Some("new"));
        assert_eq!(store.remove("a/b/c").as_deref(), Some("new"));
        assert_eq!(store.remove("a/b/c"), None);
        assert_eq!(store.node_count(), 2);
        assert_eq!(store.remove("a/d").as_deref(), Some("a/d"));
        assert!(store.is_empty());
        assert_eq!(store.node_count(), 0);
    }

    #[test]
    fn set_refuses_invalid_topics() {
        let mut store = RetainedStore::new().with_max_levels(2);
        assert_eq!(store.set("", 1), Err(TopicError::Empty));
        assert!(matches!(store.set("a/+", 1), Err(TopicError::InvalidCharacter { .. })));
        assert!(matches!(
            store.set("a/b/c", 1),
            Err(TopicError::TooManyLevels { levels: 3, max: 2, .. })
        ));
        assert!(store.is_empty());
    }
}
