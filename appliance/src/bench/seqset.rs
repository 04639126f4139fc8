//! Which sequence numbers of one publisher a receiver has seen: a bitmap,
//! one bit per message, so finding duplicates and gaps costs a bit test
//! and memory grows with the messages received (1 MiB per 8 million), not
//! with connections.

/// Largest span of sequence numbers one set tracks (128 MiB of bits);
/// numbers beyond it are reported as [`Insert::OutOfRange`].
const MAX_SPAN: u64 = 1 << 30;

/// What inserting a sequence number found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// First time seen.
    New,
    /// Seen before: a duplicate delivery.
    Duplicate,
    /// Too far from the others to track; counted as new.
    OutOfRange,
}

/// A set of sequence numbers, stored from the first one seen (rounded
/// down) onwards.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqSet {
    /// Sequence number of bit 0 of `words[0]`; a multiple of 64.
    base: u64,
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// Adds `seq`.
    pub(crate) fn insert(&mut self, seq: u64) -> Insert {
        if self.words.is_empty() {
            self.base = seq & !63;
        }
        if seq < self.base {
            if self.base - seq > MAX_SPAN {
                return Insert::OutOfRange;
            }
            self.grow_front(seq);
        }
        let offset = seq - self.base;
        if offset >= MAX_SPAN {
            return Insert::OutOfRange;
        }
        let (word, bit) = (usize::try_from(offset / 64).unwrap_or(usize::MAX), offset % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        if self.words[word] & mask != 0 {
            return Insert::Duplicate;
        }
        self.words[word] |= mask;
        self.len += 1;
        Insert::New
    }

    /// Moves the base down so that `seq` fits.
    fn grow_front(&mut self, seq: u64) {
        let new_base = seq & !63;
        let extra = usize::try_from((self.base - new_base) / 64).unwrap_or(usize::MAX);
        self.words.splice(0..0, std::iter::repeat_n(0, extra));
        self.base = new_base;
    }

    /// How many distinct numbers are in the set.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Numbers missing between the smallest and the largest in the set.
    pub(crate) fn gaps(&self) -> u64 {
        let first = self.words.iter().position(|w| *w != 0);
        let last = self.words.iter().rposition(|w| *w != 0);
        let (Some(first), Some(last)) = (first, last) else {
            return 0;
        };
        let lo = first as u64 * 64 + u64::from(self.words[first].trailing_zeros());
        let hi = last as u64 * 64 + 63 - u64::from(self.words[last].leading_zeros());
        (hi - lo + 1) - self.len
    }

    /// Adds every number of `other`; returns how many were already here
    /// (deliveries of one message to two members of a shared group).
    pub(crate) fn merge(&mut self, other: &SeqSet) -> u64 {
        let mut duplicates = 0;
        for (i, &word) in other.words.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let bit = u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                if self.insert(other.base + i as u64 * 64 + bit) == Insert::Duplicate {
                    duplicates += 1;
                }
            }
        }
        duplicates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_duplicates_and_gaps() {
        let mut set = SeqSet::default();
        for seq in [100, 101, 103, 99, 170] {
            assert_eq!(set.insert(seq), Insert::New);
        }
        assert_eq!(set.insert(101), Insert::Duplicate);
        assert_eq!(set.insert(99), Insert::Duplicate);
        assert_eq!(set.len(), 5);
        // 99..=170 is 72 numbers, 5 of them seen.
        assert_eq!(set.gaps(), 67);
        assert_eq!(set.insert(u64::MAX), Insert::OutOfRange);
    }

    #[test]
    fn merging_counts_overlap() {
        let (mut a, mut b) = (SeqSet::default(), SeqSet::default());
        for seq in 0..10 {
            a.insert(seq);
        }
        for seq in 8..300 {
            b.insert(seq);
        }
        assert_eq!(a.merge(&b), 2);
        assert_eq!((a.len(), a.gaps()), (300, 0));
    }
}
