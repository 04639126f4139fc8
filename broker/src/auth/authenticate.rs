//! Who a connecting client is: a verified certificate identity, a username
//! and password from the users file, or anonymous when the config allows it.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use tracing::debug;

use super::users::Users;

/// What a CONNECT (and the connection it came on) offers as credentials.
#[derive(Clone)]
pub struct AuthRequest {
    /// The client identifier, for logs.
    pub client_id: String,
    /// The CONNECT user name, if any.
    pub username: Option<String>,
    /// The CONNECT password, if any.
    pub password: Option<Bytes>,
    /// The CN of a verified client certificate (TLS, or a trusted PROXY v2
    /// header) that the listener is configured to use as the username.
    pub identity_username: Option<String>,
}

// By hand: the derived form would print the password.
impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("identity_username", &self.identity_username)
            .finish()
    }
}

/// The outcome of a successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The username the client acts as (ACL `users` and `%u`); `None` for
    /// an anonymous client.
    pub username: Option<String>,
    /// Whether the username comes from a verified certificate rather than
    /// from the CONNECT packet.
    pub from_certificate: bool,
}

/// Why a client is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password, or a username without a password.
    /// CONNACK reason 0x86 (v5), return code 4 (v3.1.1).
    #[error("bad user name or password")]
    BadCredentials,
    /// No usable credentials and anonymous clients are not allowed.
    /// CONNACK reason 0x87 (v5), return code 5 (v3.1.1).
    #[error("not authorized")]
    NotAuthorized,
}

/// Decides who a client is from its [`AuthRequest`]. Cheap to clone; a
/// config reload builds a new one.
#[derive(Debug, Clone)]
pub struct Authenticator {
    allow_anonymous: bool,
    users: Option<Arc<Users>>,
}

impl Authenticator {
    /// `users`: the loaded users file, `None` when none is configured (then
    /// no password can be checked and usernames are only claims).
    pub fn new(allow_anonymous: bool, users: Option<Arc<Users>>) -> Self {
        Self { allow_anonymous, users }
    }

    /// Decides, in this order:
    ///
    /// 1. a certificate identity is authenticated and becomes the username
    ///    (a CONNECT username is ignored);
    /// 2. a username with a users file needs the right password, else
    ///    [`AuthError::BadCredentials`];
    /// 3. a username without a users file is kept as claimed if anonymous
    ///    clients are allowed, else [`AuthError::NotAuthorized`];
    /// 4. no username: anonymous if allowed, else [`AuthError::NotAuthorized`].
    ///
    /// Checking a password costs one argon2 verification (tens of
    /// milliseconds of CPU): call this from `tokio::task::spawn_blocking`.
    pub fn authenticate(&self, req: &AuthRequest) -> Result<Identity, AuthError> {
        let result = self.decide(req);
        if let Err(error) = &result {
            debug!(client_id = %req.client_id, username = ?req.username, %error, "authentication refused");
        }
        result
    }

    /// Whether deciding on `req` verifies a password hash (slow on purpose:
    /// run it off the async workers). Every other decision is a lookup.
    pub fn verifies_password(&self, req: &AuthRequest) -> bool {
        req.identity_username.is_none() && req.username.is_some() && req.password.is_some() && self.users.is_some()
    }

    fn decide(&self, req: &AuthRequest) -> Result<Identity, AuthError> {
        if let Some(cn) = &req.identity_username {
            // An empty CN cannot name anyone; refusing beats treating the
            // client as someone else.
            if cn.is_empty() {
                return Err(AuthError::NotAuthorized);
            }
            if let Some(claimed) = &req.username {
                debug!(client_id = %req.client_id, claimed, identity = %cn, "CONNECT username ignored: certificate identity used");
            }
            return Ok(Identity {
                username: Some(cn.clone()),
                from_certificate: true,
            });
        }
        let Some(username) = &req.username else {
            return self.anonymous(None);
        };
        let Some(users) = &self.users else {
            return self.anonymous(Some(username.as_str()));
        };
        match &req.password {
            Some(password) if users.verify(username, password) => Ok(Identity {
                username: Some(username.clone()),
                from_certificate: false,
            }),
            _ => Err(AuthError::BadCredentials),
        }
    }

    fn anonymous(&self, claimed: Option<&str>) -> Result<Identity, AuthError> {
        if self.allow_anonymous {
            Ok(Identity {
                username: claimed.map(str::to_owned),
                from_certificate: false,
            })
        } else {
            Err(AuthError::NotAuthorized)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::auth::users::cheap_hash;

    fn users() -> Arc<Users> {
        let text = format!("alice:{}\n", cheap_hash(b"wonderland"));
        Arc::new(Users::parse(Path::new("users"), &text).expect("valid users file"))
    }

    fn req(username: Option<&str>, password: Option<&[u8]>, identity: Option<&str>) -> AuthRequest {
        AuthRequest {
            client_id: "client-1".to_owned(),
            username: username.map(str::to_owned),
            password: password.map(Bytes::copy_from_slice),
            identity_username: identity.map(str::to_owned),
        }
    }

    fn user(name: &str, from_certificate: bool) -> Result<Identity, AuthError> {
        Ok(Identity {
            username: Some(name.to_owned()),
            from_certificate,
        })
    }

    const ANONYMOUS: Result<Identity, AuthError> = Ok(Identity {
        username: None,
        from_certificate: false,
    });

    #[test]
    fn decision_table() {
        use AuthError::{BadCredentials, NotAuthorized};
        let pw: Option<&[u8]> = Some(b"wonderland");
        let wrong: Option<&[u8]> = Some(b"looking-glass");
        #[rustfmt::skip]
        let cases: [(bool, bool, AuthRequest, Result<Identity, AuthError>); 18] = [
            // Certificate identity wins over anything in CONNECT.
            (false, true, req(None, None, Some("dev-1")), user("dev-1", true)),
            (false, true, req(Some("alice"), wrong, Some("dev-1")), user("dev-1", true)),
            (false, false, req(Some("alice"), None, Some("dev-1")), user("dev-1", true)),
            (true, false, req(None, None, Some("")), Err(NotAuthorized)),
            // Users file: right password only.
            (false, true, req(Some("alice"), pw, None), user("alice", false)),
            (true, true, req(Some("alice"), pw, None), user("alice", false)),
            (false, true, req(Some("alice"), wrong, None), Err(BadCredentials)),
            (true, true, req(Some("alice"), wrong, None), Err(BadCredentials)),
            (false, true, req(Some("mallory"), pw, None), Err(BadCredentials)),
            (true, true, req(Some("alice"), None, None), Err(BadCredentials)),
            (false, true, req(Some("alice"), None, None), Err(BadCredentials)),
            // No username: anonymous, if allowed.
            (true, true, req(None, None, None), ANONYMOUS),
            (true, false, req(None, pw, None), ANONYMOUS),
            (false, true, req(None, None, None), Err(NotAuthorized)),
            (false, false, req(None, None, None), Err(NotAuthorized)),
            // Username but no users file: a claim, kept only if anonymous is allowed.
            (true, false, req(Some("bob"), None, None), user("bob", false)),
            (true, false, req(Some("bob"), wrong, None), user("bob", false)),
            (false, false, req(Some("bob"), pw, None), Err(NotAuthorized)),
        ];
        for (allow_anonymous, with_users, request, expected) in cases {
            let auth = Authenticator::new(allow_anonymous, with_users.then(users));
            assert_eq!(
                auth.authenticate(&request),
                expected,
                "allow_anonymous={allow_anonymous} users_file={with_users} {request:?}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let shown = format!("{:?}", req(Some("alice"), Some(b"wonderland"), None));
        assert!(!shown.contains("wonderland"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
