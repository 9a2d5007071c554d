//! In-memory state, as Dex's `storage: memory`: pending authorization requests,
//! authorization codes, refresh tokens and registered clients. A restart forgets all of it.
//!
//! Codes and refresh tokens are single-use. Presenting a spent one again revokes every
//! refresh token descended from the same login (RFC 9700 §2.2.2, §4.14), since one of the
//! two parties holding it is not the legitimate client.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clients::Client;
use crate::config::StaticPassword;
use crate::pkce::Challenge;

/// A fresh unguessable identifier (`bytes` random bytes, base64url).
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("the system random number generator failed");
    URL_SAFE_NO_PAD.encode(buf)
}

/// The authenticated user, as far as tokens need it.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) email: String,
    pub(crate) username: String,
    pub(crate) user_id: String,
    pub(crate) preferred_username: Option<String>,
    pub(crate) groups: Vec<String>,
}

impl From<&StaticPassword> for User {
    fn from(p: &StaticPassword) -> Self {
        Self {
            email: p.email.clone(),
            username: p.username.clone(),
            user_id: p.user_id.clone(),
            preferred_username: p.preferred_username.clone(),
            groups: p.groups.clone(),
        }
    }
}

/// An authorization request waiting for the user to log in (and approve).
#[derive(Clone)]
pub(crate) struct AuthRequest {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) pkce: Option<Challenge>,
    pub(crate) resources: Vec<String>,
    pub(crate) expires_at: Instant,
    /// Set once the user has logged in.
    pub(crate) user: Option<User>,
}

/// What a login granted to a client; carried from the code to every refresh token.
#[derive(Clone)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) user: User,
    pub(crate) scopes: Vec<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) resources: Vec<String>,
    /// Identifies every token descended from one login.
    pub(crate) family: String,
    pub(crate) auth_time: u64,
    pub(crate) expires_at: Instant,
    /// The key a public client's refresh tokens are bound to (RFC 9449 §5).
    pub(crate) dpop_jkt: Option<String>,
}

/// An issued authorization code.
pub(crate) struct CodeGrant {
    pub(crate) grant: Grant,
    pub(crate) redirect_uri: String,
    pub(crate) pkce: Option<Challenge>,
    pub(crate) expires_at: Instant,
}

/// The result of redeeming a code or refresh token.
pub(crate) enum Redeemed<T> {
    Valid(T),
    /// Spent before: the family has now been revoked.
    Replayed,
    Unknown,
}

#[derive(Default)]
struct Inner {
    requests: HashMap<String, AuthRequest>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, Grant>,
    /// Spent codes and refresh tokens: family and when to forget them.
    spent: HashMap<String, (String, Instant)>,
    clients: HashMap<String, Client>,
}

impl Inner {
    fn prune(&mut self, now: Instant) {
        self.requests.retain(|_, r| r.expires_at > now);
        self.codes.retain(|_, c| c.expires_at > now);
        self.refresh.retain(|_, g| g.expires_at > now);
        self.spent.retain(|_, (_, until)| *until > now);
    }

    fn revoke_family(&mut self, family: &str) {
        self.refresh.retain(|_, g| g.family != family);
        self.codes.retain(|_, c| c.grant.family != family);
    }
}

/// The server's in-memory state.
#[derive(Default)]
pub(crate) struct Store {
    inner: Mutex<Inner>,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a pending request and returns its opaque id.
    pub(crate) fn insert_request(&self, request: AuthRequest) -> String {
        let id = random_token(16);
        let mut inner = self.lock();
        inner.prune(Instant::now());
        inner.requests.insert(id.clone(), request);
        id
    }

    /// A pending request, if it exists and has not expired.
    pub(crate) fn request(&self, id: &str) -> Option<AuthRequest> {
        let inner = self.lock();
        inner
            .requests
            .get(id)
            .filter(|r| r.expires_at > Instant::now())
            .cloned()
    }

    /// Records the logged-in user on a pending request.
    pub(crate) fn set_user(&self, id: &str, user: User) -> bool {
        let mut inner = self.lock();
        match inner.requests.get_mut(id) {
            Some(r) if r.expires_at > Instant::now() => {
                r.user = Some(user);
                true
            }
            _ => false,
        }
    }

    /// Removes a pending request (it is finished, one way or the other).
    pub(crate) fn take_request(&self, id: &str) -> Option<AuthRequest> {
        let mut inner = self.lock();
        inner
            .requests
            .remove(id)
            .filter(|r| r.expires_at > Instant::now())
    }

    /// Stores a code and returns it.
    pub(crate) fn insert_code(&self, code: CodeGrant) -> String {
        let value = random_token(32);
        self.lock().codes.insert(value.clone(), code);
        value
    }

    /// Redeems a code: it is removed and remembered as spent.
    pub(crate) fn redeem_code(&self, value: &str, keep_spent: Duration) -> Redeemed<CodeGrant> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.prune(now);
        if let Some(code) = inner.codes.remove(value) {
            inner.spent.insert(
                value.to_owned(),
                (code.grant.family.clone(), now + keep_spent),
            );
            return Redeemed::Valid(code);
        }
        if let Some((family, _)) = inner.spent.get(value).cloned() {
            inner.revoke_family(&family);
            return Redeemed::Replayed;
        }
        Redeemed::Unknown
    }

    /// Stores a refresh token and returns it.
    pub(crate) fn insert_refresh(&self, grant: Grant) -> String {
        let value = random_token(32);
        self.lock().refresh.insert(value.clone(), grant);
        value
    }

    /// Redeems a refresh token (rotation: it is spent by use).
    pub(crate) fn redeem_refresh(&self, value: &str) -> Redeemed<Grant> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.prune(now);
        if let Some(grant) = inner.refresh.remove(value) {
            inner
                .spent
                .insert(value.to_owned(), (grant.family.clone(), grant.expires_at));
            return Redeemed::Valid(grant);
        }
        if let Some((family, _)) = inner.spent.get(value).cloned() {
            inner.revoke_family(&family);
            return Redeemed::Replayed;
        }
        Redeemed::Unknown
    }

    /// Adds a dynamically registered client.
    pub(crate) fn register_client(&self, client: Client) {
        self.lock().clients.insert(client.id.clone(), client);
    }

    /// A dynamically registered client.
    pub(crate) fn client(&self, id: &str) -> Option<Client> {
        self.lock().clients.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(family: &str) -> Grant {
        Grant {
            client_id: "c".into(),
            user: User {
                email: "a@example.com".into(),
                username: "a".into(),
                user_id: "1".into(),
                preferred_username: None,
                groups: vec![],
            },
            scopes: vec!["openid".into()],
            nonce: None,
            resources: vec![],
            family: family.into(),
            auth_time: 0,
            dpop_jkt: None,
            expires_at: Instant::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn refresh_tokens_rotate_and_replay_revokes_the_family() {
        let store = Store::default();
        let first = store.insert_refresh(grant("f1"));
        let other = store.insert_refresh(grant("f2"));
        assert!(matches!(store.redeem_refresh(&first), Redeemed::Valid(_)));
        let second = store.insert_refresh(grant("f1"));
        // Replaying the first one revokes its successor, not other families.
        assert!(matches!(store.redeem_refresh(&first), Redeemed::Replayed));
        assert!(matches!(store.redeem_refresh(&second), Redeemed::Unknown));
        assert!(matches!(store.redeem_refresh(&other), Redeemed::Valid(_)));
        assert!(matches!(store.redeem_refresh("nope"), Redeemed::Unknown));
    }

    #[test]
    fn codes_are_single_use() {
        let store = Store::default();
        let code = store.insert_code(CodeGrant {
            grant: grant("f"),
            redirect_uri: "http://127.0.0.1/cb".into(),
            pkce: None,
            expires_at: Instant::now() + Duration::from_secs(60),
        });
        let refresh = store.insert_refresh(grant("f"));
        assert!(matches!(
            store.redeem_code(&code, Duration::from_secs(60)),
            Redeemed::Valid(_)
        ));
        assert!(matches!(
            store.redeem_code(&code, Duration::from_secs(60)),
            Redeemed::Replayed
        ));
        assert!(matches!(store.redeem_refresh(&refresh), Redeemed::Unknown));
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(random_token(16), random_token(16));
        assert_eq!(random_token(32).len(), 43);
    }
}
