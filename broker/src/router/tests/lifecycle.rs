//! Subscription lifecycle: replace detection, unsubscribe and pruning,
//! remove-all through the reverse index, and route-change reporting.

use std::sync::Arc;

use super::{delivered, local, qos1, remote, router_with};
use crate::router::{QoS, Router, SharedPolicy, SubscribeOutcome, SubscriptionOptions, UnsubscribeOutcome};

#[test]
fn subscribe_reports_whether_it_replaced() {
    let mut router = Router::new(SharedPolicy::Random);
    let first = router.subscribe("a/+", local(1), qos1());
    assert_eq!(
        first,
        Ok(SubscribeOutcome {
            replaced: false,
            route_added: true
        })
    );
    let qos2 = SubscriptionOptions {
        qos: QoS::ExactlyOnce,
        ..qos1()
    };
    let again = router.subscribe("a/+", local(1), qos2);
    assert_eq!(
        again,
        Ok(SubscribeOutcome {
            replaced: true,
            route_added: false
        })
    );
    assert_eq!(router.match_topic("a/b", None).deliveries[0].qos, QoS::ExactlyOnce);
    assert_eq!(router.subscription_count(), 1);
}

#[test]
fn unsubscribe_reports_removal_and_prunes_nodes() {
    let filters = [
        "a/b/c",
        "a/b/#",
        "a/+/c",
        "+/#",
        "#",
        "a//b",
        "$share/g/a/b/c",
        "$share/h/a/+/c",
    ];
    let mut router = Router::new(SharedPolicy::Random);
    for filter in filters {
        assert!(router.subscribe(filter, local(1), qos1()).is_ok());
        assert!(router.subscribe(filter, local(2), qos1()).is_ok());
    }
    assert!(router.node_count() > 0);
    for filter in filters {
        for key in [1, 2] {
            let outcome = router.unsubscribe(filter, &local(key));
            assert!(outcome.is_ok_and(|outcome| outcome.removed), "{filter} {key}");
        }
    }
    let again = router.unsubscribe("a/b/c", &local(1));
    assert_eq!(
        again,
        Ok(UnsubscribeOutcome {
            removed: false,
            route_removed: false
        })
    );
    assert_eq!((router.node_count(), router.subscription_count()), (0, 0));
    assert_eq!(router.filters_of(&local(1)).count(), 0);
}

#[test]
fn churn_does_not_grow_the_trie() {
    let mut router = router_with(SharedPolicy::Random, &[("keep/#", local(0))]);
    let baseline = router.node_count();
    for key in 1..=200 {
        let filter = format!("devices/{key}/+/x");
        assert!(router.subscribe(&filter, local(key), qos1()).is_ok());
        assert!(router
            .subscribe(&format!("$share/g/{filter}"), local(key), qos1())
            .is_ok());
    }
    for key in 1..=200 {
        router.remove_all(&local(key));
    }
    assert_eq!(router.node_count(), baseline);
}

#[test]
fn remove_all_drops_every_subscription_of_one_destination() {
    let subscriptions = [
        ("a/b", local(1)),
        ("a/#", local(1)),
        ("$share/g/a/b", local(1)),
        ("a/b", local(2)),
        ("$share/g/a/b", local(2)),
    ];
    let mut router = router_with(SharedPolicy::Random, &subscriptions);
    let outcome = router.remove_all(&local(1));
    assert_eq!(outcome.removed, 3);
    let mut routes = outcome.routes_removed;
    routes.sort_unstable();
    assert_eq!(routes, [Arc::from("a/#")]);
    assert_eq!(delivered(&router, "a/b"), [local(2)]);
    assert_eq!(router.match_topic("a/b", None).shared[0].members().len(), 1);
    assert_eq!(router.remove_all(&local(1)).removed, 0);
    assert_eq!(router.subscription_count(), 2);
}

#[test]
fn routes_follow_first_and_last_local_subscriber() {
    let mut router = Router::new(SharedPolicy::PreferLocal);
    let added = |outcome: Result<SubscribeOutcome, _>| outcome.is_ok_and(|o| o.route_added);
    assert!(
        !added(router.subscribe("a", remote("n2"), qos1())),
        "remote subscribers are not local routes"
    );
    assert!(added(router.subscribe("a", local(1), qos1())));
    assert!(!added(router.subscribe("a", local(2), qos1())));
    assert!(added(router.subscribe("$share/g/a", local(1), qos1())));
    assert!(!added(router.subscribe("$share/g/a", local(2), qos1())));
    assert_eq!(router.local_route_count(), 2);
    assert_eq!(router.local_routes(), [Arc::from("$share/g/a"), Arc::from("a")]);

    let removed = |outcome: Result<UnsubscribeOutcome, _>| outcome.is_ok_and(|o| o.route_removed);
    assert!(!removed(router.unsubscribe("a", &local(1))));
    assert!(removed(router.unsubscribe("a", &local(2))));
    assert!(!removed(router.unsubscribe("a", &remote("n2"))));
    assert!(!removed(router.unsubscribe("$share/g/a", &local(1))));
    assert_eq!(router.remove_all(&local(2)).routes_removed, [Arc::from("$share/g/a")]);
    assert_eq!(router.local_route_count(), 0);
    assert!(router.local_routes().is_empty());
}

#[test]
fn set_online_on_unknown_destination_is_a_no_op() {
    let mut router = router_with(SharedPolicy::Random, &[("a", local(1))]);
    assert_eq!(router.set_online(&local(9), false), 0);
    assert_eq!(router.set_online(&local(1), false), 0, "no shared memberships");
}

#[test]
fn router_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Router>();
    assert_send_sync::<crate::router::Matches>();
    assert_send_sync::<crate::router::RetainedStore<Vec<u8>>>();
}
