//! The engines: where the bytes go. Each implements [`crate::kv::Kv`].

pub(crate) mod memory;
pub(crate) mod redb;
pub(crate) mod sled;
