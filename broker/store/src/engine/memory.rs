//! The memory engine: a sorted map, nothing on disk. For clean sessions
//! and tests; it runs the same record and reference-count code as the
//! durable engines.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::error::StoreError;
use crate::kv::{Kv, KvRead, Visit, Writes};

/// Everything in a map.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl KvRead for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(BTreeMap::get(self, key).cloned())
    }

    fn scan(&self, prefix: &[u8], f: &mut Visit<'_>) -> Result<(), StoreError> {
        let range = self.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded));
        for (k, v) in range.take_while(|(k, _)| k.starts_with(prefix)) {
            f(k, v)?;
        }
        Ok(())
    }
}

impl Kv for Memory {
    type Reader<'a> = &'a BTreeMap<Vec<u8>, Vec<u8>>;
    const NAME: &'static str = "memory";

    fn reader(&self) -> Result<Self::Reader<'_>, StoreError> {
        Ok(&self.map)
    }

    fn apply(&mut self, writes: Writes, _durable: bool) -> Result<(), StoreError> {
        for (k, v) in writes {
            match v {
                Some(v) => self.map.insert(k, v),
                None => self.map.remove(&k),
            };
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<T: KvRead> KvRead for &T {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }

    fn scan(&self, prefix: &[u8], f: &mut Visit<'_>) -> Result<(), StoreError> {
        (**self).scan(prefix, f)
    }
}
