//! Skerry CA.
