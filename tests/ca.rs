//! `skerry ca` end-to-end tests.
