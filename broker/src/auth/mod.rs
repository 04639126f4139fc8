//! Authentication and authorisation for broker nodes.
//!
//! - [`Authenticator`] decides who a connecting client is: a verified
//!   certificate identity, a username and password checked against the
//!   [`Users`] file, or an anonymous client when `allow_anonymous` is set.
//! - [`Acl`] decides what that client may publish and subscribe to, from the
//!   `broker.acl` rules.
//! - [`set_user`] / [`delete_user`] / [`hash_password`] change the users file
//!   for `skerry passwd`.
//!
//! Everything here is immutable once built: a SIGHUP reload loads a new
//! [`Users`] and builds a new [`Authenticator`] and [`Acl`], then swaps them.
//! Passwords and hashes are never logged or shown by `Debug`.

mod acl;
mod authenticate;
mod edit;
mod pattern;
mod users;

pub use acl::Acl;
pub use authenticate::{AuthError, AuthRequest, Authenticator, Identity};
pub use edit::{delete_user, set_user, Change, EditError};
pub use users::{check_username, hash_password, HashError, Users, UsersError};
