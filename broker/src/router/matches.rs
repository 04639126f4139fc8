//! What a publish matched: per-destination merged deliveries for ordinary
//! subscriptions and one chosen member per matching shared group.

use super::shared::SharedDelivery;
use super::types::{Destination, QoS, SubscriptionOptions};

/// One copy of a message for one destination.
///
/// When several non-shared filters of the same destination match, MQTT 5
/// lets the server deliver once; the router merges them into one delivery
/// with the highest QoS, every subscription identifier, and
/// `retain_as_published` set if any matching subscription asked for it (the
/// subscriber opted into seeing the RETAIN flag on at least one of them, and
/// hiding it would lose information the merged copy can still carry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Who receives the copy.
    pub destination: Destination,
    /// Highest QoS among the matching subscriptions.
    pub qos: QoS,
    /// Whether any matching subscription set retain-as-published.
    pub retain_as_published: bool,
    /// Subscription identifiers of the matching subscriptions, ascending,
    /// without duplicates.
    pub subscription_ids: Vec<u32>,
}

impl Delivery {
    fn new(destination: Destination, options: &SubscriptionOptions) -> Self {
        Self {
            destination,
            qos: options.qos,
            retain_as_published: options.retain_as_published,
            subscription_ids: options.subscription_id.into_iter().collect(),
        }
    }

    /// Folds another matching subscription of the same destination in.
    fn absorb(&mut self, other: &mut Self) {
        self.qos = self.qos.max(other.qos);
        self.retain_as_published |= other.retain_as_published;
        self.subscription_ids.append(&mut other.subscription_ids);
    }
}

/// Everything one topic matched.
///
/// Reusable: [`Router::match_into`](super::Router::match_into) clears it
/// first, so a connection task can keep one and avoid reallocating.
#[derive(Debug, Clone, Default)]
pub struct Matches {
    /// Non-shared subscriptions, one per destination, sorted by destination.
    pub deliveries: Vec<Delivery>,
    /// Matching shared groups, each with its chosen member. A destination
    /// may appear here and in `deliveries`: MQTT 5 delivers a shared copy
    /// on top of any non-shared one.
    pub shared: Vec<SharedDelivery>,
}

impl Matches {
    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty() && self.shared.is_empty()
    }

    /// Empties both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.deliveries.clear();
        self.shared.clear();
    }

    /// Records one matching non-shared subscription (before merging).
    pub(crate) fn push(&mut self, destination: &Destination, options: &SubscriptionOptions) {
        self.deliveries.push(Delivery::new(destination.clone(), options));
    }

    /// Merges deliveries of the same destination into one.
    pub(crate) fn merge(&mut self) {
        if self.deliveries.len() < 2 {
            return;
        }
        self.deliveries
            .sort_unstable_by(|a, b| a.destination.cmp(&b.destination));
        self.deliveries.dedup_by(|later, kept| {
            let same = later.destination == kept.destination;
            if same {
                kept.absorb(later);
            }
            same
        });
        for delivery in &mut self.deliveries {
            if delivery.subscription_ids.len() > 1 {
                delivery.subscription_ids.sort_unstable();
                delivery.subscription_ids.dedup();
            }
        }
    }
}
