//! Skerry broker node.
