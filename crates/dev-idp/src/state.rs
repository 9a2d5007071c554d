//! The shared server state handed to every endpoint through axum's `State`.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::clients::Client;
use crate::keys::KeyRing;
use crate::settings::IdpConfig;
use crate::store::Store;

/// Configuration, keys, clients and the in-memory store.
pub(crate) struct Idp {
    pub(crate) config: IdpConfig,
    pub(crate) keys: KeyRing,
    pub(crate) store: Store,
    pub(crate) static_clients: HashMap<String, Client>,
    /// A bcrypt hash checked when the login name is unknown, so that both failures
    /// take the same time; made on first use.
    pub(crate) dummy_hash: OnceLock<String>,
    /// DPoP proofs seen lately and the nonce key.
    pub(crate) dpop: crate::dpop::DpopState,
    /// Keys of clients and trusted issuers published at URLs.
    pub(crate) remote_keys: crate::remote_keys::RemoteKeys,
    /// `jti`s of client assertions and JWT bearer grants accepted lately.
    pub(crate) jtis: crate::assertion::JtiCache,
}

impl Idp {
    /// A static or registered client.
    pub(crate) fn client(&self, id: &str) -> Option<Client> {
        self.static_clients
            .get(id)
            .cloned()
            .or_else(|| self.store.client(id))
    }

    /// Whether `client_id` may mint tokens for `peer_id` (Dex's cross-client trust).
    pub(crate) fn trusts(&self, client_id: &str, peer_id: &str) -> bool {
        client_id == peer_id
            || self
                .client(peer_id)
                .is_some_and(|peer| peer.trusted_peers.iter().any(|p| p == client_id))
    }

    /// The claims of a valid access token of this server: a JWT it signed, or an opaque
    /// token it issued.
    pub(crate) fn verify_access_token(&self, token: &str) -> Option<serde_json::Value> {
        self.keys
            .verify::<serde_json::Value>(token, &self.config.issuer_str())
            .or_else(|| self.store.opaque(token))
    }

    /// The hash to check when the login name is unknown.
    pub(crate) fn dummy_hash(&self) -> String {
        self.dummy_hash
            .get_or_init(|| bcrypt::hash("not a password", 10).unwrap_or_default())
            .clone()
    }

    /// A path under the issuer's path, e.g. `/dex/token`.
    pub(crate) fn path(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.config.issuer_path())
    }
}
