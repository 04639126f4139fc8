//! The consistent-hash ring that maps a client id (or source IP) to a pool
//! member, keyed by member *name*.
//!
//! It is a pure function of the set of names: two balancer instances, or a
//! broker node asking "who owns this client's session?", compute the same
//! owner without talking to each other, whatever order the members are
//! listed in. Removing a member moves only the keys it owned; adding one
//! takes keys only from the others.
//!
//! Why not pingora-load-balancing's `KetamaHashing`: its ring is built from
//! each backend's socket address, so an address change (a DNS name that
//! resolves elsewhere, a node that moves) would reshuffle clients, and the
//! cluster could not compute it from node names. The construction here is
//! ketama's (many points per member on a 64-bit circle, a key belongs to the
//! first point clockwise), with one change of hash: ketama hashes with
//! MD5, pingora's with crc32. crc32 is linear, so names that differ only in
//! a suffix (`node1`, `node2`) give correlated points and an uneven split;
//! FNV-1a followed by the murmur3 `fmix64` finaliser avalanches every input
//! bit, needs no dependency, and is short enough to restate exactly
//! wherever the cluster needs it:
//!
//! - point `i` of member `name`: `h(name ++ [0xff] ++ be32(i))`, `i < 160`
//! - key: `h(key bytes)`
//! - `h` = `fmix64(fnv1a64(bytes))`; equal points are ordered by name.

use std::cmp::Ordering;

/// Points each member gets on the ring (ketama's 160 per unit of weight):
/// enough that three members split keys within a few percent of a third.
pub const POINTS_PER_MEMBER: u32 = 160;

/// A consistent-hash ring over member names.
#[derive(Debug, Clone)]
pub struct Ring {
    names: Vec<String>,
    /// (point, index into `names`), sorted by point then name.
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// The ring of `names`. Duplicate names count once; the order of the
    /// names does not matter, except that [`Ring::walk`] and
    /// [`Ring::owner_index`] report positions in the order given.
    pub fn new<I, S>(names: I) -> Ring
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        let mut points = Vec::with_capacity(names.len() * POINTS_PER_MEMBER as usize);
        for (idx, name) in names.iter().enumerate() {
            if names[..idx].contains(name) {
                continue;
            }
            let idx = u32::try_from(idx).unwrap_or(u32::MAX);
            points.extend((0..POINTS_PER_MEMBER).map(|i| (member_point(name, i), idx)));
        }
        points.sort_unstable_by(|a, b| match a.0.cmp(&b.0) {
            Ordering::Equal => names[a.1 as usize].cmp(&names[b.1 as usize]),
            other => other,
        });
        Ring { names, points }
    }

    /// The member names, in the order given.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The name of the member that owns `key`; `None` for an empty ring.
    pub fn owner(&self, key: &[u8]) -> Option<&str> {
        self.owner_index(key).map(|i| self.names[i].as_str())
    }

    /// The position (in the order given) of the member that owns `key`.
    pub fn owner_index(&self, key: &[u8]) -> Option<usize> {
        self.walk(key).next()
    }

    /// Every member once, in ring order starting at `key`'s owner: the
    /// fallback order when the owner is down, drained or full.
    pub fn walk(&self, key: &[u8]) -> Walk<'_> {
        let h = hash(key);
        let start = self.points.partition_point(|(p, _)| *p < h);
        Walk {
            ring: self,
            next: start,
            steps: 0,
            seen: vec![0u64; self.names.len().div_ceil(64)],
        }
    }
}

/// Iterator returned by [`Ring::walk`].
#[derive(Debug)]
pub struct Walk<'a> {
    ring: &'a Ring,
    next: usize,
    steps: usize,
    seen: Vec<u64>,
}

impl Iterator for Walk<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let points = &self.ring.points;
        while self.steps < points.len() {
            let (_, idx) = points[(self.next + self.steps) % points.len()];
            self.steps += 1;
            let idx = idx as usize;
            let (word, bit) = (idx / 64, 1u64 << (idx % 64));
            if self.seen[word] & bit == 0 {
                self.seen[word] |= bit;
                return Some(idx);
            }
        }
        None
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// murmur3's 64-bit finaliser: every input bit flips each output bit with
/// probability one half.
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Where `key` falls on the ring.
pub fn hash(key: &[u8]) -> u64 {
    fmix64(fnv1a(FNV_OFFSET, key))
}

fn member_point(name: &str, i: u32) -> u64 {
    let h = fnv1a(FNV_OFFSET, name.as_bytes());
    let h = fnv1a(h, &[0xff]);
    fmix64(fnv1a(h, &i.to_be_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl Iterator<Item = String> {
        (0..3000).map(|i| format!("client-{i}"))
    }

    #[test]
    fn owner_does_not_depend_on_member_order() {
        let a = Ring::new(["node1", "node2", "node3"]);
        let b = Ring::new(["node3", "node1", "node2"]);
        for id in ids() {
            assert_eq!(a.owner(id.as_bytes()), b.owner(id.as_bytes()), "{id}");
        }
    }

    #[test]
    fn removing_a_member_moves_only_its_keys() {
        let three = Ring::new(["node1", "node2", "node3"]);
        let two = Ring::new(["node1", "node3"]);
        for id in ids() {
            let before = three.owner(id.as_bytes());
            if before != Some("node2") {
                assert_eq!(two.owner(id.as_bytes()), before, "{id} moved");
            }
        }
    }

    #[test]
    fn keys_split_roughly_evenly() {
        let ring = Ring::new(["node1", "node2", "node3"]);
        let mut counts = [0usize; 3];
        for id in ids() {
            counts[ring.owner_index(id.as_bytes()).unwrap()] += 1;
        }
        for c in counts {
            assert!((700..1300).contains(&c), "uneven split {counts:?}");
        }
    }

    #[test]
    fn walk_visits_every_member_once_starting_at_owner() {
        let ring = Ring::new(["a", "b", "c", "d"]);
        for id in ids().take(200) {
            let order: Vec<usize> = ring.walk(id.as_bytes()).collect();
            assert_eq!(order.len(), 4);
            assert_eq!(Some(order[0]), ring.owner_index(id.as_bytes()));
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2, 3]);
        }
    }

    #[test]
    fn empty_and_duplicate_rings() {
        assert_eq!(Ring::new(Vec::<String>::new()).owner(b"x"), None);
        let dup = Ring::new(["a", "a"]);
        assert_eq!(dup.walk(b"x").collect::<Vec<_>>(), vec![0]);
    }

    #[test]
    fn hash_is_pinned() {
        // The cluster recomputes these functions (values checked with an
        // independent implementation); they must never change.
        assert_eq!(hash(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(hash(b"client-1"), 0xf93b_d2c1_6ac6_882d);
        assert_eq!(member_point("node1", 0), 0xe5de_b660_6cd4_4025);
    }
}
