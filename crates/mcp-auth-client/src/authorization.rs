//! What an authorization is asked for and what it gives back, whatever the way to the
//! tokens: [`AuthorizeOptions`] (the interaction, the [`Grant`], DPoP), [`Authorized`],
//! and [`dpop_key`], the key the tokens get bound to.
//!
//! The authorization code flow (`authorize.rs`), the device flow (`device.rs`) and the
//! grants without a person (`grants/`) all start from these, so they live below all three.
//! The public paths are `authorize::{AuthorizeOptions, Authorized, Interaction}` and
//! `grants::{Grant, IdJagConfig, dpop_key}`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_auth_proto::{ClientSecret, Scopes, TokenResponse};
use url::Url;

use crate::cache::Cache;
use crate::discovery::Discovered;
use crate::dpop::{self, DpopAlg, DpopKey, DpopPolicy};
use crate::error::Result;
use crate::identity::StoredClient;
use crate::registration::ClientConfig;
use crate::trace::Trace;

/// How the user gets to the authorization URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// Print the URL and open the system browser (`open_browser: false` only prints it).
    Browser {
        /// Whether to launch the browser.
        open_browser: bool,
    },
    /// Follow the URL over HTTP (for auto-approving authorization servers).
    Headless,
    /// The device authorization grant (RFC 8628): print a URL and a code, poll.
    Device,
}

/// Options of the authorization flow.
#[derive(Debug, Clone)]
pub struct AuthorizeOptions {
    /// Browser or headless.
    pub interaction: Interaction,
    /// Port of the loopback redirect URI (`0`: ephemeral).
    pub redirect_port: u16,
    /// How long to wait for the callback.
    pub timeout: Duration,
    /// The client identity configuration.
    pub client: ClientConfig,
    /// How tokens are obtained: the authorization code flow, or a grant without a person.
    pub grant: Grant,
    /// When tokens are DPoP-bound.
    pub dpop: DpopPolicy,
    /// The DPoP proof algorithm preferred.
    pub dpop_alg: DpopAlg,
}

impl AuthorizeOptions {
    /// Without a person ([`Interaction::Headless`]): the authorization server must
    /// approve at once. An ephemeral loopback port, the authorization code flow, DPoP by
    /// the default policy; the callback awaited at most `timeout`.
    pub fn headless(client: ClientConfig, timeout: Duration) -> Self {
        Self {
            interaction: Interaction::Headless,
            redirect_port: 0,
            timeout,
            client,
            grant: Default::default(),
            dpop: Default::default(),
            dpop_alg: Default::default(),
        }
    }
}

/// The outcome of a successful authorization.
#[derive(Debug)]
pub struct Authorized {
    /// The token response.
    pub tokens: TokenResponse,
    /// The client the tokens were issued to.
    pub client: StoredClient,
    /// The scope that was requested (`None` if omitted).
    pub requested_scope: Option<Scopes>,
    /// The `iss` parameter of the authorization response (RFC 9207), when it carried one
    /// (already compared with the issuer by the loopback listener).
    pub callback_issuer: Option<String>,
    /// The DPoP key the tokens are bound to, if they are.
    pub dpop: Option<Arc<DpopKey>>,
}

/// How tokens are obtained (`--grant`).
#[derive(Debug, Clone, Default)]
pub enum Grant {
    /// The authorization code flow with PKCE: a person logs in.
    #[default]
    AuthorizationCode,
    /// The client credentials grant.
    ClientCredentials,
    /// The JWT bearer grant with an assertion read from a file at each use (workload
    /// tokens are short-lived and rotated by their platform).
    JwtBearer {
        /// The file holding the JWT.
        assertion_file: PathBuf,
    },
    /// Enterprise-managed authorization with an ID-JAG.
    IdJag(IdJagConfig),
}

impl Grant {
    /// The name used in the trace and on the command line.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "authorization-code",
            Grant::ClientCredentials => "client-credentials",
            Grant::JwtBearer { .. } => "jwt-bearer",
            Grant::IdJag(_) => "id-jag",
        }
    }
}

/// Where and how to get an ID-JAG from the enterprise identity provider.
#[derive(Debug, Clone)]
pub struct IdJagConfig {
    /// The identity provider's token endpoint.
    pub idp_token_endpoint: Url,
    /// This client's id at the identity provider.
    pub idp_client_id: String,
    /// Its secret there, if it is a confidential client (sent by HTTP Basic).
    pub idp_client_secret: Option<ClientSecret>,
    /// The file holding the user's ID token from the identity provider.
    pub id_token_file: PathBuf,
}

/// The DPoP key of `client` at the authorization server of `discovered`, when tokens are
/// to be DPoP-bound there (the policy and what the servers advertise decide; see
/// [`dpop::choose`]).
pub fn dpop_key(
    trace: &Trace,
    cache: &Cache,
    options: &AuthorizeOptions,
    discovered: &Discovered,
    client: &StoredClient,
) -> Result<Option<Arc<DpopKey>>> {
    let as_ = &discovered.authorization_server;
    match dpop::choose(
        trace,
        options.dpop,
        options.dpop_alg,
        &as_.metadata,
        discovered.resource_offers_dpop,
    )? {
        Some(alg) => Ok(Some(DpopKey::for_client(
            trace,
            cache,
            &as_.issuer,
            &client.client_id,
            alg,
        )?)),
        None => Ok(None),
    }
}
