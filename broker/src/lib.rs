//! Skerry broker node: MQTT 3.1 / 3.1.1 / 5.0 over TCP, TLS, WebSocket and
//! PROXY protocol listeners; sessions with QoS 0/1/2, retained messages,
//! wills, shared subscriptions; authentication and ACLs.
//!
//! [`Node::start`] runs one node from its YAML section.

pub mod auth;
mod connection;
pub mod listener;
mod mailbox;
mod message;
mod node;
pub mod router;
mod session;
mod stats;
mod sys;

pub use node::{Node, NodeError, NodeHandle, RetainedInfo, SessionInfo};
pub use stats::NodeStats;
