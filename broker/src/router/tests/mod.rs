//! Router tests through its public API, with helpers shared by the topic
//! files below.

mod lifecycle;
mod matching;
mod proptests;
mod shared;

use super::{Destination, NodeName, QoS, Router, SessionKey, SharedPolicy, SubscriptionOptions};

fn local(key: u64) -> Destination {
    Destination::Local(SessionKey(key))
}

fn remote(name: &str) -> Destination {
    Destination::Remote(NodeName::new(name))
}

fn qos1() -> SubscriptionOptions {
    SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..SubscriptionOptions::default()
    }
}

/// A router with `(filter, destination)` subscriptions at QoS 1.
fn router_with(policy: SharedPolicy, subscriptions: &[(&str, Destination)]) -> Router {
    let mut router = Router::new(policy);
    for (filter, destination) in subscriptions {
        let outcome = router.subscribe(filter, destination.clone(), qos1());
        assert!(outcome.is_ok(), "subscribe {filter}: {outcome:?}");
    }
    router
}

/// Destinations of the non-shared deliveries for `topic`.
fn delivered(router: &Router, topic: &str) -> Vec<Destination> {
    router
        .match_topic(topic, None)
        .deliveries
        .into_iter()
        .map(|d| d.destination)
        .collect()
}
