//! What an engine has to offer the store: ordered byte keys, reads, and
//! an atomic batch of puts and deletes, durable (fsync) or not. Everything
//! above this (records, reference counts, group commit, load) is written
//! once for every engine.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::StoreError;

/// Puts (`Some`) and deletes (`None`) to apply atomically, in key order.
pub(crate) type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Pairs in key order.
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What a scan calls with each pair.
pub(crate) type Visit<'f> = dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError> + 'f;

/// Reads as of the last applied batch.
pub(crate) trait KvRead {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Calls `f` with every pair whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8], f: &mut Visit<'_>) -> Result<(), StoreError>;
}

/// An engine.
pub(crate) trait Kv: Send + 'static {
    /// A consistent view for one group of reads.
    type Reader<'a>: KvRead
    where
        Self: 'a;

    /// `sled`, `redb` or `memory`.
    const NAME: &'static str;

    /// A view of the last applied batch.
    fn reader(&self) -> Result<Self::Reader<'_>, StoreError>;

    /// Applies `writes` atomically; with `durable`, on disk before returning.
    fn apply(&mut self, writes: Writes, durable: bool) -> Result<(), StoreError>;

    /// Makes every applied batch durable.
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Gives back free space, if the engine needs that and the file is
    /// much larger than the `live_bytes` of keys and values it holds.
    fn compact(&mut self, _live_bytes: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Pending writes over a reader: reads see the writes made so far in the
/// transaction, so ops in one group behave as if applied one by one.
pub(crate) struct Txn<'r, R> {
    base: &'r R,
    pub(crate) writes: Writes,
}

impl<'r, R: KvRead> Txn<'r, R> {
    pub(crate) fn new(base: &'r R) -> Self {
        Self {
            base,
            writes: Writes::new(),
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    /// Writes `value`; returns the value it replaced.
    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>, want_old: bool) -> Result<Option<Vec<u8>>, StoreError> {
        let old = if want_old { self.get(&key)? } else { None };
        self.writes.insert(key, Some(value));
        Ok(old)
    }

    /// Deletes `key`; returns the value it had.
    pub(crate) fn remove(&mut self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.get(&key)?;
        if old.is_some() {
            self.writes.insert(key, None);
        }
        Ok(old)
    }

    /// Every pair under `prefix` as the transaction sees it, in key order.
    pub(crate) fn scan(&self, prefix: &[u8]) -> Result<Pairs, StoreError> {
        let mut merged = BTreeMap::new();
        self.base.scan(prefix, &mut |k, v| {
            merged.insert(k.to_vec(), Some(v.to_vec()));
            Ok(())
        })?;
        let range = self
            .writes
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded));
        for (k, v) in range.take_while(|(k, _)| k.starts_with(prefix)) {
            merged.insert(k.clone(), v.clone());
        }
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }
}
