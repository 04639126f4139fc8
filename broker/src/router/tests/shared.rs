//! Shared subscription groups: one member per group per message, policies,
//! online preference, and re-picking after a failed delivery.

use std::collections::{HashMap, HashSet};

use super::{local, qos1, remote, router_with};
use crate::router::{Destination, Router, SharedPolicy};

/// The member each matching group chose for one publish on `topic`.
fn chosen(router: &Router, topic: &str) -> Vec<(String, Destination)> {
    let matches = router.match_topic(topic, None);
    let mut picks: Vec<_> = matches
        .shared
        .iter()
        .map(|s| (s.group().to_string(), s.member().destination.clone()))
        .collect();
    picks.sort_unstable();
    picks
}

/// Which destinations `rounds` publishes reach through the single group.
fn picks(router: &Router, topic: &str, rounds: usize) -> HashMap<Destination, usize> {
    let mut seen = HashMap::new();
    for _ in 0..rounds {
        let matches = router.match_topic(topic, None);
        assert_eq!(matches.shared.len(), 1);
        *seen.entry(matches.shared[0].member().destination.clone()).or_default() += 1;
    }
    seen
}

#[test]
fn each_group_delivers_to_exactly_one_member() {
    let subscriptions = [
        ("$share/g1/a/+", local(1)),
        ("$share/g1/a/+", local(2)),
        ("$share/g2/a/+", local(1)),
        ("$share/g2/a/#", local(3)),
        ("a/b", local(1)),
    ];
    let router = router_with(SharedPolicy::Random, &subscriptions);
    for _ in 0..50 {
        let matches = router.match_topic("a/b", None);
        // g1 and g2 at `a/+`, g2 again at `a/#`: three (group, filter) pairs.
        assert_eq!(matches.shared.len(), 3);
        let groups: HashSet<_> = matches
            .shared
            .iter()
            .map(|s| (s.group().clone(), s.filter().clone()))
            .collect();
        assert_eq!(groups.len(), 3);
        // The non-shared copy is independent of the shared ones.
        assert_eq!(matches.deliveries.len(), 1);
    }
    let picked = chosen(&router, "a/b");
    assert!(picked.contains(&("g2".to_owned(), local(3))));
}

#[test]
fn round_robin_cycles_through_members() {
    let members: Vec<_> = (1..=3).map(|key| ("$share/g/t", local(key))).collect();
    let router = router_with(SharedPolicy::RoundRobin, &members);
    let order: Vec<_> = (0..6).map(|_| chosen(&router, "t")[0].1.clone()).collect();
    assert_eq!(order[..3], order[3..]);
    let distinct: HashSet<_> = order[..3].iter().collect();
    assert_eq!(distinct.len(), 3);
}

#[test]
fn random_eventually_reaches_every_member() {
    let members: Vec<_> = (1..=4).map(|key| ("$share/g/t", local(key))).collect();
    let router = router_with(SharedPolicy::Random, &members);
    assert_eq!(picks(&router, "t", 400).len(), 4);
}

#[test]
fn offline_members_are_picked_only_when_nobody_is_online() {
    for policy in [
        SharedPolicy::RoundRobin,
        SharedPolicy::Random,
        SharedPolicy::PreferLocal,
    ] {
        let members: Vec<_> = (1..=3).map(|key| ("$share/g/t", local(key))).collect();
        let mut router = router_with(policy, &members);
        assert_eq!(router.set_online(&local(1), false), 1);
        assert_eq!(router.set_online(&local(2), false), 1);
        assert_eq!(
            picks(&router, "t", 20).keys().collect::<Vec<_>>(),
            [&local(3)],
            "{policy:?}"
        );
        router.set_online(&local(3), false);
        assert_eq!(picks(&router, "t", 60).len(), 3, "{policy:?}");
    }
}

#[test]
fn offline_destination_joins_new_groups_offline() {
    let mut router = router_with(SharedPolicy::Random, &[("x", local(1)), ("$share/g/t", local(2))]);
    router.set_online(&local(1), false);
    assert!(router.subscribe("$share/g/t", local(1), qos1()).is_ok());
    assert_eq!(picks(&router, "t", 30).keys().collect::<Vec<_>>(), [&local(2)]);
}

#[test]
fn local_only_never_picks_a_remote_member() {
    let subscriptions = [
        ("$share/g/t", remote("n2")),
        ("$share/g/t", local(1)),
        ("$share/g/t", remote("n3")),
    ];
    let mut router = router_with(SharedPolicy::LocalOnly, &subscriptions);
    router.set_online(&local(1), false);
    assert_eq!(picks(&router, "t", 30).keys().collect::<Vec<_>>(), [&local(1)]);
    router.remove_all(&local(1));
    assert!(router.match_topic("t", None).shared.is_empty());
}

#[test]
fn prefer_local_uses_remote_members_only_without_local_ones() {
    let subscriptions = [
        ("$share/g/t", remote("n2")),
        ("$share/g/t", local(1)),
        ("$share/g/t", local(2)),
    ];
    let mut router = router_with(SharedPolicy::PreferLocal, &subscriptions);
    let seen = picks(&router, "t", 60);
    assert_eq!(seen.len(), 2);
    assert!(!seen.contains_key(&remote("n2")));
    // Online beats local: a remote online member wins over offline locals.
    router.set_online(&local(1), false);
    router.set_online(&local(2), false);
    assert_eq!(picks(&router, "t", 20).keys().collect::<Vec<_>>(), [&remote("n2")]);
}

#[test]
fn pick_excluding_skips_failed_members() {
    let members: Vec<_> = (1..=3).map(|key| ("$share/g/t", local(key))).collect();
    for policy in [SharedPolicy::RoundRobin, SharedPolicy::Random, SharedPolicy::LocalOnly] {
        let router = router_with(policy, &members);
        let matches = router.match_topic("t", None);
        let first = matches.shared[0].member().destination.clone();
        let second = matches.shared[0]
            .pick_excluding(std::slice::from_ref(&first))
            .map(|m| m.destination.clone());
        let second = second.expect("two members left");
        assert_ne!(first, second);
        let third = matches.shared[0].pick_excluding(&[first.clone(), second.clone()]);
        assert!(third.is_some_and(|m| m.destination != first && m.destination != second));
        assert!(matches.shared[0]
            .pick_excluding(&[local(1), local(2), local(3)])
            .is_none());
    }
}

#[test]
fn match_results_survive_membership_changes() {
    let mut router = router_with(
        SharedPolicy::Random,
        &[("$share/g/t", local(1)), ("$share/g/t", local(2))],
    );
    let matches = router.match_topic("t", None);
    router.remove_all(&local(1));
    router.remove_all(&local(2));
    assert_eq!(matches.shared[0].members().len(), 2);
    assert!(matches.shared[0].pick_excluding(&[local(1)]).is_some());
    assert!(router.match_topic("t", None).is_empty());
}

#[test]
fn resubscribing_a_member_keeps_one_membership() {
    let mut router = router_with(SharedPolicy::Random, &[("$share/g/t", local(1))]);
    let again = router.subscribe("$share/g/t", local(1), qos1());
    assert!(again.is_ok_and(|outcome| outcome.replaced));
    assert_eq!(router.match_topic("t", None).shared[0].members().len(), 1);
    assert_eq!(router.subscription_count(), 1);
}
