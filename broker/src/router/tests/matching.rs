//! Topic matching rules: wildcards, `$` topics, empty levels, no_local, and
//! merging of overlapping subscriptions.

use super::{delivered, local, qos1, remote, router_with};
use crate::router::{Delivery, FilterError, QoS, Router, SessionKey, SharedPolicy, SubscriptionOptions};

#[test]
fn plus_matches_exactly_one_level() {
    let router = router_with(SharedPolicy::Random, &[("a/+", local(1)), ("+/+/c", local(2))]);
    assert_eq!(delivered(&router, "a/b"), [local(1)]);
    assert_eq!(delivered(&router, "a/b/c"), [local(2)]);
    assert!(delivered(&router, "a").is_empty());
    assert!(delivered(&router, "a/b/c/d").is_empty());
}

#[test]
fn hash_matches_rest_and_parent_level() {
    let router = router_with(
        SharedPolicy::Random,
        &[("a/#", local(1)), ("#", local(2)), ("a/b/#", local(3))],
    );
    assert_eq!(delivered(&router, "a"), [local(1), local(2)]);
    assert_eq!(delivered(&router, "a/b"), [local(1), local(2), local(3)]);
    assert_eq!(delivered(&router, "a/b/c/d"), [local(1), local(2), local(3)]);
    assert_eq!(delivered(&router, "b"), [local(2)]);
}

#[test]
fn dollar_topics_skip_filters_starting_with_wildcards() {
    let subscriptions = [
        ("#", local(1)),
        ("+/x", local(2)),
        ("$SYS/#", local(3)),
        ("$SYS/+", local(4)),
        ("+/#", local(5)),
    ];
    let router = router_with(SharedPolicy::Random, &subscriptions);
    assert_eq!(delivered(&router, "$SYS/x"), [local(3), local(4)]);
    assert_eq!(delivered(&router, "a/x"), [local(1), local(2), local(5)]);
}

#[test]
fn empty_levels_and_leading_slash_are_levels() {
    let subscriptions = [
        ("a//b", local(1)),
        ("a/+/b", local(2)),
        ("/a", local(3)),
        ("+/a", local(4)),
    ];
    let router = router_with(SharedPolicy::Random, &subscriptions);
    assert_eq!(delivered(&router, "a//b"), [local(1), local(2)]);
    assert_eq!(delivered(&router, "/a"), [local(3), local(4)]);
    assert!(delivered(&router, "a/b").is_empty());
    assert!(delivered(&router, "a").is_empty());
}

#[test]
fn literal_levels_match_exactly() {
    let router = router_with(SharedPolicy::Random, &[("a/b", local(1))]);
    assert_eq!(delivered(&router, "a/b"), [local(1)]);
    for topic in ["a", "a/b/c", "a/bb", "A/b", "a/b/"] {
        assert!(delivered(&router, topic).is_empty(), "{topic}");
    }
}

#[test]
fn no_local_skips_only_the_publishers_own_subscription() {
    let mut router = Router::new(SharedPolicy::Random);
    let no_local = SubscriptionOptions {
        no_local: true,
        ..qos1()
    };
    for key in [1, 2] {
        assert!(router.subscribe("t", local(key), no_local).is_ok());
    }
    assert!(router.subscribe("t", local(3), qos1()).is_ok());
    let matches = router.match_topic("t", Some(SessionKey(3)));
    let to: Vec<_> = matches.deliveries.iter().map(|d| d.destination.clone()).collect();
    assert_eq!(to, [local(1), local(2), local(3)]);
    let matches = router.match_topic("t", Some(SessionKey(1)));
    let to: Vec<_> = matches.deliveries.iter().map(|d| d.destination.clone()).collect();
    assert_eq!(to, [local(2), local(3)]);
}

#[test]
fn overlapping_subscriptions_merge_into_one_delivery() {
    let mut router = Router::new(SharedPolicy::Random);
    let subscriptions = [
        ("a/+", QoS::AtMostOnce, false, Some(7)),
        ("a/#", QoS::ExactlyOnce, false, Some(3)),
        ("#", QoS::AtLeastOnce, true, None),
    ];
    for (filter, qos, retain_as_published, subscription_id) in subscriptions {
        let options = SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published,
            subscription_id,
        };
        assert!(router.subscribe(filter, local(1), options).is_ok());
    }
    assert!(router.subscribe("a/b", local(2), qos1()).is_ok());
    let matches = router.match_topic("a/b", None);
    let merged = Delivery {
        destination: local(1),
        qos: QoS::ExactlyOnce,
        retain_as_published: true,
        subscription_ids: vec![3, 7],
    };
    let single = Delivery {
        destination: local(2),
        qos: QoS::AtLeastOnce,
        retain_as_published: false,
        subscription_ids: vec![],
    };
    assert_eq!(matches.deliveries, [merged, single]);
}

#[test]
fn remote_node_gets_one_delivery_for_several_routes() {
    let subscriptions = [
        ("a/#", remote("n2")),
        ("a/b", remote("n2")),
        ("a/b", remote("n3")),
        ("a/b", local(1)),
    ];
    let router = router_with(SharedPolicy::Random, &subscriptions);
    assert_eq!(delivered(&router, "a/b"), [local(1), remote("n2"), remote("n3")]);
}

#[test]
fn match_into_reuses_and_clears_the_buffer() {
    let router = router_with(SharedPolicy::Random, &[("a", local(1)), ("$share/g/a", local(2))]);
    let mut matches = router.match_topic("a", None);
    assert_eq!((matches.deliveries.len(), matches.shared.len()), (1, 1));
    router.match_into("b", None, &mut matches);
    assert!(matches.is_empty());
}

#[test]
fn invalid_filters_are_refused_and_change_nothing() {
    let mut router = Router::new(SharedPolicy::Random).with_max_levels(3);
    for filter in ["", "a/#/b", "a+", "$share//a", "$share/g", "a/b/c/d"] {
        assert!(router.subscribe(filter, local(1), qos1()).is_err(), "{filter}");
    }
    assert_eq!(
        router.unsubscribe("a/#/b", &local(1)),
        Err(FilterError::MisplacedWildcard {
            filter: "a/#/b".to_owned()
        })
    );
    assert_eq!((router.node_count(), router.subscription_count()), (0, 0));
}
