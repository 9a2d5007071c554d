//! In-memory state, as Dex's `storage: memory`: pending authorization requests,
//! authorization codes, refresh tokens, device requests and registered clients. A restart
//! forgets all of it.
//!
//! As in Dex: a code is deleted only by a successful exchange (a failed one leaves it
//! usable); a refresh token has a fixed id and a secret that rotates on each use, the
//! previous secret staying valid for a short reuse interval; a user has one refresh token
//! per client, so a new login replaces the previous one. Beyond Dex: presenting a spent
//! code again revokes the refresh token issued for it (RFC 9700 §4.14).

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
    /// `approval_prompt=force`: show the approval page even with `skipApprovalScreen`.
    pub(crate) force_approval: bool,
    /// Key of the HMAC that binds the approval page to this request (as Dex does).
    pub(crate) hmac_key: String,
}

/// What a login granted to a client; carried from the code to every refresh token.
#[derive(Clone)]
pub(crate) struct Grant {
    pub(crate) client_id: String,
    pub(crate) user: User,
    pub(crate) scopes: Vec<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) auth_time: u64,
    pub(crate) expires_at: Instant,
    /// The key a public client's refresh tokens are bound to (RFC 9449 §5).
    pub(crate) dpop_jkt: Option<String>,
}

/// An issued authorization code.
#[derive(Clone)]
pub(crate) struct CodeGrant {
    pub(crate) grant: Grant,
    pub(crate) redirect_uri: String,
    pub(crate) pkce: Option<Challenge>,
    pub(crate) expires_at: Instant,
}

/// A device authorization request (RFC 8628), keyed by its user code.
#[derive(Clone)]
pub(crate) struct DeviceRequest {
    pub(crate) user_code: String,
    pub(crate) device_code: String,
    pub(crate) client_id: String,
    /// The secret sent with the request, checked when the user has approved.
    pub(crate) client_secret: Option<String>,
    pub(crate) scopes: Vec<String>,
    /// `resource` parameters (RFC 8707), carried to the login.
    pub(crate) resources: Vec<String>,
    pub(crate) pkce: Option<Challenge>,
    pub(crate) expires_at: Instant,
    pub(crate) last_poll: Instant,
    /// Seconds a client must wait between polls (Dex raises it by 5 on each early poll).
    pub(crate) poll_interval: u64,
    /// The token response, once the user has logged in and approved.
    pub(crate) token: Option<serde_json::Value>,
}

/// A code looked up for an exchange.
pub(crate) enum CodeLookup {
    /// Issued and not yet exchanged (possibly expired: the caller decides).
    Found(Box<CodeGrant>),
    /// Exchanged before: the refresh token issued for it has now been revoked.
    Replayed,
    Unknown,
}

/// Keep expired codes this long, so that presenting one is told apart from an unknown
/// code (Dex's garbage collection runs every five minutes).
const EXPIRED_CODE_GRACE: Duration = Duration::from_secs(300);

/// A stored refresh token: Dex's `RefreshToken` with its rotating secret.
#[derive(Clone)]
pub(crate) struct RefreshRecord {
    pub(crate) grant: Grant,
    secret: String,
    obsolete: Option<String>,
    last_used: Instant,
}

/// Why a refresh token was refused (Dex's `refreshhandlers.go` errors).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RefreshRefusal {
    /// Unknown, or a spent secret outside the reuse interval (`invalid_request`).
    Invalid,
    /// Past its absolute lifetime (`invalid_request`).
    Expired,
    /// Issued to another client (`invalid_grant`); the token stays usable.
    OtherClient,
}

/// A refresh token is `<id>.<secret>`.
fn split_refresh(value: &str) -> Option<(&str, &str)> {
    value.split_once('.')
}

#[derive(Default)]
struct Inner {
    requests: HashMap<String, AuthRequest>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshRecord>,
    /// Exchanged codes: the refresh token id issued for them and when to forget them.
    spent_codes: HashMap<String, (Option<String>, Instant)>,
    devices: HashMap<String, DeviceRequest>,
    /// Opaque access tokens and their claims (with the `--opaque-tokens` switch).
    opaque: HashMap<String, serde_json::Value>,
    clients: HashMap<String, Client>,
}

impl Inner {
    fn prune(&mut self, now: Instant) {
        self.requests.retain(|_, r| r.expires_at > now);
        self.codes
            .retain(|_, c| c.expires_at + EXPIRED_CODE_GRACE > now);
        self.refresh.retain(|_, r| r.grant.expires_at > now);
        self.spent_codes.retain(|_, (_, until)| *until > now);
        self.devices
            .retain(|_, d| d.expires_at + EXPIRED_CODE_GRACE > now);
        let secs = crate::time::now_secs();
        self.opaque
            .retain(|_, c| c["exp"].as_u64().is_some_and(|exp| exp > secs));
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

    /// Looks a code up without consuming it (Dex's `GetAuthCode`).
    pub(crate) fn code(&self, value: &str) -> CodeLookup {
        let mut inner = self.lock();
        inner.prune(Instant::now());
        if let Some(code) = inner.codes.get(value) {
            return CodeLookup::Found(Box::new(code.clone()));
        }
        if let Some((refresh_id, _)) = inner.spent_codes.get(value).cloned() {
            if let Some(id) = refresh_id {
                inner.refresh.remove(&id);
            }
            return CodeLookup::Replayed;
        }
        CodeLookup::Unknown
    }

    /// Deletes a code after a successful exchange; `false` if another exchange won the
    /// race. Stores the refresh token for `grant` when given one, replacing the user's
    /// previous refresh token for the same client, and returns its value.
    pub(crate) fn consume_code(
        &self,
        value: &str,
        keep_spent: Duration,
        refresh: Option<&Grant>,
    ) -> Option<Option<String>> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.codes.remove(value)?;
        let issued = refresh.map(|grant| {
            inner.refresh.retain(|_, r| {
                r.grant.client_id != grant.client_id || r.grant.user.user_id != grant.user.user_id
            });
            let id = random_token(16);
            let secret = random_token(32);
            inner.refresh.insert(
                id.clone(),
                RefreshRecord {
                    grant: grant.clone(),
                    secret: secret.clone(),
                    obsolete: None,
                    last_used: now,
                },
            );
            (id, secret)
        });
        inner.spent_codes.insert(
            value.to_owned(),
            (issued.as_ref().map(|(id, _)| id.clone()), now + keep_spent),
        );
        Some(issued.map(|(id, secret)| format!("{id}.{secret}")))
    }

    /// Checks a refresh token for `client_id` without using it up.
    pub(crate) fn refresh(
        &self,
        value: &str,
        client_id: Option<&str>,
        reuse: Duration,
    ) -> Result<RefreshRecord, RefreshRefusal> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.prune(now);
        let (id, secret) = split_refresh(value).ok_or(RefreshRefusal::Invalid)?;
        let record = inner.refresh.get(id).ok_or(RefreshRefusal::Invalid)?;
        if client_id.is_some_and(|c| c != record.grant.client_id) {
            return Err(RefreshRefusal::OtherClient);
        }
        if record.secret != secret {
            let reusable = record.obsolete.as_deref() == Some(secret)
                && now.saturating_duration_since(record.last_used) < reuse;
            if !reusable {
                return Err(RefreshRefusal::Invalid);
            }
        }
        if record.grant.expires_at <= now {
            return Err(RefreshRefusal::Expired);
        }
        Ok(record.clone())
    }

    /// Uses a refresh token checked by [`Store::refresh`]: a fresh secret unless the
    /// previous one is presented within the reuse interval, in which case the current
    /// token is returned again. Returns the token to hand out.
    pub(crate) fn rotate_refresh(&self, value: &str, reuse: Duration) -> Option<String> {
        let now = Instant::now();
        let mut inner = self.lock();
        let (id, secret) = split_refresh(value)?;
        let record = inner.refresh.get_mut(id)?;
        let within = now.saturating_duration_since(record.last_used) < reuse;
        if record.obsolete.as_deref() == Some(secret) && within {
            return Some(format!("{id}.{}", record.secret));
        }
        if record.secret != secret {
            return None;
        }
        let fresh = random_token(32);
        record.obsolete = Some(std::mem::replace(&mut record.secret, fresh.clone()));
        record.last_used = now;
        Some(format!("{id}.{fresh}"))
    }

    /// Stores the claims of an opaque access token and returns the token.
    pub(crate) fn insert_opaque(&self, claims: serde_json::Value) -> String {
        let value = random_token(32);
        let mut inner = self.lock();
        inner.prune(Instant::now());
        inner.opaque.insert(value.clone(), claims);
        value
    }

    /// The claims of an unexpired opaque access token.
    pub(crate) fn opaque(&self, token: &str) -> Option<serde_json::Value> {
        let secs = crate::time::now_secs();
        self.lock()
            .opaque
            .get(token)
            .filter(|c| c["exp"].as_u64().is_some_and(|exp| exp > secs))
            .cloned()
    }

    /// Stores a device request (keyed by user code) and its device code.
    pub(crate) fn insert_device(&self, device: DeviceRequest) {
        let mut inner = self.lock();
        inner.prune(Instant::now());
        inner.devices.insert(device.user_code.clone(), device);
    }

    /// The device request for a user code.
    pub(crate) fn device_by_user_code(&self, user_code: &str) -> Option<DeviceRequest> {
        let inner = self.lock();
        inner
            .devices
            .get(user_code)
            .filter(|d| d.expires_at > Instant::now())
            .cloned()
    }

    /// Runs `f` on the device request with this device code, if any (expired ones
    /// included: the caller answers `expired_token`).
    pub(crate) fn with_device<T>(
        &self,
        device_code: &str,
        f: impl FnOnce(&mut DeviceRequest) -> T,
    ) -> Option<T> {
        let mut inner = self.lock();
        inner
            .devices
            .values_mut()
            .find(|d| d.device_code == device_code)
            .map(f)
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

    fn grant(user: &str, client: &str) -> Grant {
        Grant {
            client_id: client.into(),
            user: User {
                email: "a@example.com".into(),
                username: "a".into(),
                user_id: user.into(),
                preferred_username: None,
                groups: vec![],
            },
            scopes: vec!["openid".into(), "offline_access".into()],
            nonce: None,
            resources: vec![],
            auth_time: 0,
            dpop_jkt: None,
            expires_at: Instant::now() + Duration::from_secs(60),
        }
    }

    fn code(store: &Store, g: &Grant) -> String {
        store.insert_code(CodeGrant {
            grant: g.clone(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            pkce: None,
            expires_at: Instant::now() + Duration::from_secs(60),
        })
    }

    const REUSE: Duration = Duration::from_secs(3);

    #[test]
    fn refresh_rotates_keeps_one_per_user_and_client() {
        let store = Store::default();
        let g = grant("u1", "c");
        let c1 = code(&store, &g);
        let first = store
            .consume_code(&c1, Duration::from_secs(60), Some(&g))
            .unwrap()
            .unwrap();
        assert!(store.refresh(&first, Some("c"), REUSE).is_ok());
        assert_eq!(
            store.refresh(&first, Some("other"), REUSE).err(),
            Some(RefreshRefusal::OtherClient)
        );
        let second = store.rotate_refresh(&first, REUSE).unwrap();
        assert_ne!(first, second);
        // Within the reuse interval the old secret gives the current token back.
        assert_eq!(store.rotate_refresh(&first, REUSE).unwrap(), second);
        assert_eq!(
            store.refresh(&first, Some("c"), Duration::ZERO).err(),
            Some(RefreshRefusal::Invalid)
        );
        // A second login of the same user and client replaces the token.
        let c2 = code(&store, &g);
        let third = store
            .consume_code(&c2, Duration::from_secs(60), Some(&g))
            .unwrap()
            .unwrap();
        assert_eq!(
            store.refresh(&second, Some("c"), REUSE).err(),
            Some(RefreshRefusal::Invalid)
        );
        assert!(store.refresh(&third, Some("c"), REUSE).is_ok());
        assert_eq!(
            store.refresh("nope", None, REUSE).err(),
            Some(RefreshRefusal::Invalid)
        );
    }

    #[test]
    fn codes_stay_until_exchanged_and_replay_revokes_their_refresh_token() {
        let store = Store::default();
        let g = grant("u1", "c");
        let c = code(&store, &g);
        assert!(matches!(store.code(&c), CodeLookup::Found(_)));
        assert!(matches!(store.code(&c), CodeLookup::Found(_)));
        let refresh = store
            .consume_code(&c, Duration::from_secs(60), Some(&g))
            .unwrap()
            .unwrap();
        assert!(
            store
                .consume_code(&c, Duration::from_secs(60), None)
                .is_none()
        );
        assert!(matches!(store.code(&c), CodeLookup::Replayed));
        assert!(store.refresh(&refresh, None, REUSE).is_err());
        assert!(matches!(store.code("nope"), CodeLookup::Unknown));
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(random_token(16), random_token(16));
        assert_eq!(random_token(32).len(), 43);
    }
}
