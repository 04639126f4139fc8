//! Shared subscription groups (`$share/{group}/{filter}`): membership and
//! the choice of the one member that receives each message.
//!
//! Membership lives in an `Arc<GroupState>` that is copied on write: a match
//! hands the caller a cheap clone, so the caller can release the router lock
//! and still ask for another member when delivery to the chosen one fails.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::types::{Destination, SubscriptionOptions};

/// How a shared group picks the member that receives a message.
///
/// Every policy prefers members that are online over members whose
/// persistent session is disconnected (a message for those is queued).
/// Being online is weighed before locality: queueing for a disconnected
/// client delays a message indefinitely, a hop to another node does not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SharedPolicy {
    /// Random among local members; a remote member only when no local one
    /// is eligible.
    #[default]
    PreferLocal,
    /// Random among local members; never a remote member.
    LocalOnly,
    /// Random among all members.
    Random,
    /// Cycles through all members in subscription order.
    RoundRobin,
}

/// One member of a shared group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedMember {
    /// Who receives the message.
    pub destination: Destination,
    /// The member's subscription options (QoS, subscription identifier).
    pub options: SubscriptionOptions,
    /// `false` while a persistent session's client is disconnected.
    pub online: bool,
}

/// Members of one group plus its round-robin cursor.
#[derive(Debug, Default)]
pub(crate) struct GroupState {
    members: Vec<SharedMember>,
    cursor: AtomicUsize,
}

impl Clone for GroupState {
    fn clone(&self) -> Self {
        Self {
            members: self.members.clone(),
            cursor: AtomicUsize::new(self.cursor.load(Ordering::Relaxed)),
        }
    }
}

impl GroupState {
    /// Picks one member by `policy`, skipping `excluded` destinations.
    fn pick(&self, policy: SharedPolicy, excluded: &[Destination]) -> Option<usize> {
        let eligible = |member: &SharedMember| !excluded.contains(&member.destination);
        let mut best = None;
        for rank in self
            .members
            .iter()
            .filter(|m| eligible(m))
            .filter_map(|m| rank(policy, m))
        {
            best = Some(best.map_or(rank, |best: u8| best.min(rank)));
            if rank == 0 {
                break; // nothing ranks better than 0
            }
        }
        let best = best?;
        let in_tier = |member: &SharedMember| eligible(member) && rank(policy, member) == Some(best);
        let count = self.members.iter().filter(|m| in_tier(m)).count();
        let nth = match policy {
            SharedPolicy::RoundRobin => self.cursor.fetch_add(1, Ordering::Relaxed) % count,
            SharedPolicy::PreferLocal | SharedPolicy::LocalOnly | SharedPolicy::Random => random_below(count),
        };
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| in_tier(m))
            .nth(nth)
            .map(|(index, _)| index)
    }
}

/// Preference tier of a member under `policy`, lower is better; `None` when
/// the policy never picks it.
fn rank(policy: SharedPolicy, member: &SharedMember) -> Option<u8> {
    let offline = u8::from(!member.online);
    let remote = u8::from(!member.destination.is_local());
    match policy {
        SharedPolicy::LocalOnly if remote == 1 => None,
        SharedPolicy::PreferLocal => Some(offline * 2 + remote),
        SharedPolicy::LocalOnly | SharedPolicy::Random | SharedPolicy::RoundRobin => Some(offline),
    }
}

/// A shared group stored at its filter's trie node.
#[derive(Debug)]
pub(crate) struct SharedGroup {
    name: Arc<str>,
    filter: Arc<str>,
    state: Arc<GroupState>,
    local_members: usize,
}

/// What adding or removing a member changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberChange {
    /// The destination was already (for add) / was (for remove) a member.
    pub(crate) existed: bool,
    /// The group's count of local members moved between zero and one.
    pub(crate) route_changed: bool,
}

impl SharedGroup {
    /// An empty group; it is dropped again when its last member leaves.
    pub(crate) fn new(name: &str, filter: &str) -> Self {
        Self {
            name: name.into(),
            filter: filter.into(),
            state: Arc::default(),
            local_members: 0,
        }
    }

    /// Whether the group has no members left.
    pub(crate) fn is_empty(&self) -> bool {
        self.state.members.is_empty()
    }

    /// Adds `member` or replaces the options of an existing one (keeping its
    /// online flag).
    pub(crate) fn upsert(&mut self, member: SharedMember) -> MemberChange {
        let members = &mut Arc::make_mut(&mut self.state).members;
        if let Some(existing) = members.iter_mut().find(|m| m.destination == member.destination) {
            existing.options = member.options;
            return MemberChange {
                existed: true,
                route_changed: false,
            };
        }
        let local = member.destination.is_local();
        members.push(member);
        self.local_members += usize::from(local);
        MemberChange {
            existed: false,
            route_changed: local && self.local_members == 1,
        }
    }

    /// Removes `destination` from the group.
    pub(crate) fn remove(&mut self, destination: &Destination) -> MemberChange {
        let Some(index) = self.state.members.iter().position(|m| m.destination == *destination) else {
            return MemberChange {
                existed: false,
                route_changed: false,
            };
        };
        Arc::make_mut(&mut self.state).members.remove(index);
        let local = destination.is_local();
        self.local_members -= usize::from(local);
        MemberChange {
            existed: true,
            route_changed: local && self.local_members == 0,
        }
    }

    /// Marks `destination` online or offline; `false` when not a member.
    pub(crate) fn set_online(&mut self, destination: &Destination, online: bool) -> bool {
        let Some(index) = self.state.members.iter().position(|m| m.destination == *destination) else {
            return false;
        };
        if self.state.members[index].online != online {
            Arc::make_mut(&mut self.state).members[index].online = online;
        }
        true
    }

    /// The delivery for one matching message, `None` when no member is
    /// eligible under `policy`.
    pub(crate) fn deliver(&self, policy: SharedPolicy) -> Option<SharedDelivery> {
        let chosen = self.state.pick(policy, &[])?;
        Some(SharedDelivery {
            group: Arc::clone(&self.name),
            filter: Arc::clone(&self.filter),
            state: Arc::clone(&self.state),
            policy,
            chosen,
        })
    }
}

/// One shared group that matched a published topic, with the member chosen
/// to receive the message.
///
/// MQTT 5 delivers a shared subscription's copy independently of any other
/// subscription of the same client, so these are not merged with
/// [`Delivery`](super::Delivery) results.
#[derive(Debug, Clone)]
pub struct SharedDelivery {
    group: Arc<str>,
    filter: Arc<str>,
    state: Arc<GroupState>,
    policy: SharedPolicy,
    chosen: usize,
}

impl SharedDelivery {
    /// Share name of the group.
    pub fn group(&self) -> &Arc<str> {
        &self.group
    }

    /// The topic filter of the group (without the `$share/{group}/` prefix).
    pub fn filter(&self) -> &Arc<str> {
        &self.filter
    }

    /// The member chosen when the topic was matched.
    pub fn member(&self) -> &SharedMember {
        &self.state.members[self.chosen]
    }

    /// Chooses again by the same policy, never one of `excluded`: for when
    /// delivery to the chosen member failed. `None` when nobody is left.
    ///
    /// Works on the membership as it was at match time, so it needs no lock.
    pub fn pick_excluding(&self, excluded: &[Destination]) -> Option<&SharedMember> {
        let index = self.state.pick(self.policy, excluded)?;
        self.state.members.get(index)
    }

    /// All members of the group at match time.
    pub fn members(&self) -> &[SharedMember] {
        &self.state.members
    }
}

thread_local! {
    static RNG_STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
}

/// A uniform-enough index in `0..n` (n > 0) from a per-thread xorshift
/// generator: load spreading needs speed, not cryptographic quality.
fn random_below(n: usize) -> usize {
    let next = RNG_STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    });
    // Multiply-shift maps a 64-bit value onto 0..n without modulo bias
    // worth caring about for group sizes.
    ((u128::from(next) * n as u128) >> 64) as usize
}
