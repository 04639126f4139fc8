//! The sled engine (0.34): one tree, one `apply_batch` per group commit
//! (atomic), `flush()` for durability. sled 0.34 has open reports of
//! corruption after an abrupt stop and grows on delete-heavy workloads
//! (space is not reclaimed promptly); it is kept for deployments that
//! already run it. Background flushing is off: the store decides when to
//! fsync, as the durability policy says.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::kv::{Kv, KvRead, Visit, Writes};

/// sled lets go of its directory lock only when its background threads
/// drop the database, a moment after the last handle: a reopen right after
/// a close (a node restarted in the same process) waits up to this long
/// for it. A directory another store holds still fails, after the wait.
const LOCK_WAIT: Duration = Duration::from_secs(2);
const LOCK_RETRY: Duration = Duration::from_millis(10);

/// The error sled 0.34 gives when another handle holds the directory lock
/// (`Config::open`: "could not acquire lock on ...").
fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && e.to_string().starts_with("could not acquire lock")
}

/// A sled database in `<data_dir>/sled`.
pub(crate) struct Sled {
    db: sled::Db,
    dir: PathBuf,
}

impl Sled {
    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        let config = sled::Config::new().path(dir.join("sled")).flush_every_ms(None);
        let deadline = Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e)) if is_lock_error(&e) && Instant::now() < deadline => {
                    std::thread::sleep(LOCK_RETRY);
                }
                opened => break opened,
            }
        }
        .map_err(|e| StoreError::Open {
            dir: dir.to_owned(),
            engine: Self::NAME,
            source: std::sync::Arc::new(e),
        })?;
        if db.was_recovered() {
            tracing::debug!(dir = %dir.display(), "sled store opened");
        }
        Ok(Self {
            db,
            dir: dir.to_owned(),
        })
    }

    fn err(&self, action: &'static str, e: sled::Error) -> StoreError {
        StoreError::engine(&self.dir, Self::NAME, action, e)
    }
}

/// Reads straight from the tree: only the store's writer thread writes.
pub(crate) struct SledReader<'a>(&'a Sled);

impl KvRead for SledReader<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.0.db.get(key).map_err(|e| self.0.err("read", e))?;
        Ok(v.map(|v| v.to_vec()))
    }

    fn scan(&self, prefix: &[u8], f: &mut Visit<'_>) -> Result<(), StoreError> {
        for item in self.0.db.scan_prefix(prefix) {
            let (k, v) = item.map_err(|e| self.0.err("read", e))?;
            f(&k, &v)?;
        }
        Ok(())
    }
}

impl Kv for Sled {
    type Reader<'a> = SledReader<'a>;
    const NAME: &'static str = "sled";

    fn reader(&self) -> Result<Self::Reader<'_>, StoreError> {
        Ok(SledReader(self))
    }

    fn apply(&mut self, writes: Writes, durable: bool) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.db.apply_batch(batch).map_err(|e| self.err("commit", e))?;
        if durable {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(|e| self.err("sync", e))
    }
}
