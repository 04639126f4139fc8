//! Property tests: the trie agrees with [`filter_matches`] applied to every
//! subscription, and unsubscribing everything empties it.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::local;
use crate::router::{filter_matches, Destination, Router, SharedPolicy, SubscriptionOptions};

/// One subscription: share group (if any), topic filter, destination key.
type Subscription = (Option<&'static str>, String, u64);

fn level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "", "$x"])
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..=4).prop_map(|levels| levels.join("/"))
}

fn filter() -> impl Strategy<Value = String> {
    let filter_level = prop_oneof![3 => level(), 1 => Just("+")];
    (prop::collection::vec(filter_level, 0..=4), any::<bool>()).prop_map(|(mut levels, hash)| {
        // `[""]` would join to the empty filter, which MQTT forbids.
        if hash || levels.concat().is_empty() && levels.len() < 2 {
            levels.push("#");
        }
        levels.join("/")
    })
}

fn subscription() -> impl Strategy<Value = Subscription> {
    let group = prop::option::weighted(0.2, prop::sample::select(vec!["g1", "g2"]));
    (group, filter(), 0..4u64)
}

fn full_filter((group, filter, _): &Subscription) -> String {
    group.map_or_else(|| filter.clone(), |group| format!("$share/{group}/{filter}"))
}

/// Subscribes everything; subscription ids are 1 + the index of the last
/// subscription to each (destination, filter).
fn build(subscriptions: &[Subscription]) -> Router {
    let mut router = Router::new(SharedPolicy::Random);
    for (index, subscription) in subscriptions.iter().enumerate() {
        let id = u32::try_from(index + 1).ok();
        let options = SubscriptionOptions {
            subscription_id: id,
            ..SubscriptionOptions::default()
        };
        let outcome = router.subscribe(&full_filter(subscription), local(subscription.2), options);
        assert!(outcome.is_ok(), "{subscription:?}: {outcome:?}");
    }
    router
}

/// What a naive scan says `topic` matches: ids per destination, and
/// (group, filter) pairs.
fn naive(subscriptions: &[Subscription], topic: &str) -> (BTreeMap<Destination, BTreeSet<u32>>, BTreeSet<String>) {
    let mut last = BTreeMap::new();
    for (index, subscription) in subscriptions.iter().enumerate() {
        last.insert((full_filter(subscription), subscription.2), (index, subscription));
    }
    let mut deliveries: BTreeMap<Destination, BTreeSet<u32>> = BTreeMap::new();
    let mut groups = BTreeSet::new();
    for (index, (group, filter, key)) in last.into_values() {
        if !filter_matches(filter, topic) {
            continue;
        }
        match group {
            Some(group) => {
                groups.insert(format!("{group}/{filter}"));
            }
            None => deliveries
                .entry(local(*key))
                .or_default()
                .extend(u32::try_from(index + 1)),
        }
    }
    (deliveries, groups)
}

proptest! {
    #[test]
    fn trie_matching_equals_naive_matching(
        subscriptions in prop::collection::vec(subscription(), 0..24),
        topics in prop::collection::vec(topic(), 1..8),
    ) {
        let router = build(&subscriptions);
        for topic in &topics {
            let matches = router.match_topic(topic, None);
            let deliveries: BTreeMap<Destination, BTreeSet<u32>> = matches
                .deliveries
                .iter()
                .map(|d| (d.destination.clone(), d.subscription_ids.iter().copied().collect()))
                .collect();
            prop_assert_eq!(deliveries.len(), matches.deliveries.len(), "one delivery per destination");
            let groups: BTreeSet<String> =
                matches.shared.iter().map(|s| format!("{}/{}", s.group(), s.filter())).collect();
            prop_assert_eq!(groups.len(), matches.shared.len(), "one pick per (group, filter)");
            prop_assert_eq!((deliveries, groups), naive(&subscriptions, topic), "topic {}", topic);
        }
    }

    #[test]
    fn unsubscribing_everything_empties_the_trie(subscriptions in prop::collection::vec(subscription(), 0..24)) {
        let mut router = build(&subscriptions);
        for subscription in &subscriptions {
            let outcome = router.unsubscribe(&full_filter(subscription), &local(subscription.2));
            prop_assert!(outcome.is_ok());
        }
        prop_assert_eq!(router.node_count(), 0);
        prop_assert_eq!(router.subscription_count(), 0);
        prop_assert_eq!(router.local_route_count(), 0);
    }
}
