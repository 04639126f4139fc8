//! The redb engine: one table of byte keys, one write transaction per group
//! commit. `Durability::Immediate` commits fsync; `Durability::None` commits
//! are applied in memory and made durable by the next immediate commit.
//! Every durable commit saves the allocator state (quick-repair), so a
//! restart after a crash skips the full repair scan. redb files never
//! shrink; the store compacts after its start-up load when much of the
//! file is free.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use tracing::info;

use crate::error::StoreError;
use crate::kv::{Kv, KvRead, Visit, Writes};

const FILE: &str = "store.redb";

const TABLE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("skerry");

/// Compact at start when the file exceeds what the live records need by
/// this much...
const COMPACT_MIN_SLACK: u64 = if cfg!(test) { 1 << 20 } else { 64 << 20 };
/// ...and by this factor. A B-tree holds about twice its records' bytes
/// (pages half full after splits), so this means about half the file is free.
const COMPACT_FACTOR: u64 = 4;

/// A redb database in `<data_dir>/store.redb`.
pub(crate) struct Redb {
    db: Database,
    dir: PathBuf,
}

impl Redb {
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        let open_err = |e: redb::Error| StoreError::Open {
            dir: dir.to_owned(),
            engine: Self::NAME,
            source: Arc::new(e),
        };
        let path = dir.join(FILE);
        let db = Database::builder()
            .set_repair_callback(|_| tracing::warn!("redb store was not closed cleanly: repairing"))
            .create(&path)
            .map_err(|e| open_err(e.into()))?;
        let this = Self {
            db,
            dir: dir.to_owned(),
        };
        this.init().map_err(open_err)?;
        Ok(this)
    }

    /// Creates the table, so readers find it.
    fn init(&self) -> Result<(), redb::Error> {
        let mut tx = self.db.begin_write()?;
        tx.set_quick_repair(true);
        tx.open_table(TABLE)?;
        tx.commit()?;
        Ok(())
    }

    fn err(&self, action: &'static str, e: impl Into<redb::Error>) -> StoreError {
        StoreError::engine(&self.dir, Self::NAME, action, e.into())
    }

    fn commit(&self, writes: Writes, durable: bool) -> Result<(), redb::Error> {
        let mut tx = self.db.begin_write()?;
        if durable {
            tx.set_quick_repair(true);
        } else {
            tx.set_durability(Durability::None)?;
        }
        {
            let mut table = tx.open_table(TABLE)?;
            for (k, v) in writes {
                match v {
                    Some(v) => drop(table.insert(k.as_slice(), v.as_slice())?),
                    None => drop(table.remove(k.as_slice())?),
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// One read transaction per group.
pub(crate) struct RedbReader<'a> {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    owner: &'a Redb,
}

impl KvRead for RedbReader<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.table.get(key).map_err(|e| self.owner.err("read", e))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    fn scan(&self, prefix: &[u8], f: &mut Visit<'_>) -> Result<(), StoreError> {
        let range = self
            .table
            .range::<&[u8]>(prefix..)
            .map_err(|e| self.owner.err("read", e))?;
        for item in range {
            let (k, v) = item.map_err(|e| self.owner.err("read", e))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            f(k.value(), v.value())?;
        }
        Ok(())
    }
}

impl Kv for Redb {
    type Reader<'a> = RedbReader<'a>;
    const NAME: &'static str = "redb";

    fn reader(&self) -> Result<Self::Reader<'_>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err("read", e))?;
        let table = tx.open_table(TABLE).map_err(|e| self.err("read", e))?;
        Ok(RedbReader { table, owner: self })
    }

    fn apply(&mut self, writes: Writes, durable: bool) -> Result<(), StoreError> {
        self.commit(writes, durable).map_err(|e| self.err("commit", e))
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.commit(Writes::new(), true).map_err(|e| self.err("sync", e))
    }

    /// redb reuses freed pages but never gives them back: after a burst of
    /// queued messages the file stays at its peak size until compacted.
    /// Sized from what the load found, as redb's own statistics walk every page.
    fn compact(&mut self, live_bytes: u64) -> Result<(), StoreError> {
        let file = std::fs::metadata(self.dir.join(FILE)).map(|m| m.len()).unwrap_or(0);
        if file < live_bytes * COMPACT_FACTOR || file - live_bytes * 2 < COMPACT_MIN_SLACK {
            return Ok(());
        }
        info!(dir = %self.dir.display(), file_bytes = file, live_bytes, "compacting the redb store");
        for _ in 0..16 {
            match self.db.compact() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(StoreError::engine(&self.dir, Self::NAME, "compaction", e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mostly_free_file_is_compacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = Redb::open(dir.path()).expect("open");
        let key = |i: u32| format!("m{i:08}").into_bytes();
        let writes: Writes = (0..20_000).map(|i| (key(i), Some(vec![7u8; 200]))).collect();
        db.apply(writes, true).expect("fill");
        let deletes: Writes = (10..20_000).map(|i| (key(i), None)).collect();
        db.apply(deletes, true).expect("delete");
        let size = || std::fs::metadata(dir.path().join(FILE)).expect("file").len();
        let before = size();
        db.compact(10 * 209).expect("compact");
        assert!(size() < before / 2, "{before} -> {}", size());
        assert_eq!(
            db.reader().expect("reader").get(&key(3)).expect("get"),
            Some(vec![7u8; 200])
        );
    }
}
