//! Minting tokens, as Dex does by default and as RFC 9068 asks when switched on.
//!
//! Dex makes access tokens with its ID-token routine: `iss`, `sub`, `aud` = the client id
//! (or, with `audience:server:client_id:<peer>` scopes, the peers plus the client, and
//! `azp` = the client), `exp`, `iat`, and email/groups/name claims by scope. With extra
//! scopes configured, access tokens instead follow RFC 9068: header `typ: at+jwt`, claims
//! `scope`, `client_id`, `jti`, `auth_time`. With `resource` → `aud` switched on, a
//! `resource` parameter (RFC 8707) becomes the access token's `aud`.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::state::Idp;
use crate::store::{Grant, random_token};
use crate::time::now_secs;

/// The prefix of Dex's cross-client scopes.
pub(crate) const CROSS_CLIENT_PREFIX: &str = "audience:server:client_id:";

/// `aud`: a single string or an array, as JWT allows and Dex emits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn from_vec(mut values: Vec<String>) -> Self {
        if values.len() == 1 {
            Self::One(values.remove(0))
        } else {
            Self::Many(values)
        }
    }
}

/// Dex's `federated_claims`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FederatedClaims {
    connector_id: String,
    user_id: String,
}

/// The claims of every token this server signs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: Audience,
    pub(crate) exp: u64,
    pub(crate) iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) at_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) c_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) federated_claims: Option<FederatedClaims>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) auth_time: Option<u64>,
    /// `{"jkt": …}`: the key a DPoP-bound access token is bound to (RFC 9449 §6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cnf: Option<serde_json::Value>,
}

/// Dex's subject: base64url (no padding) of the protobuf message
/// `{1: user_id, 2: connector_id}`, so tokens carry the same `sub` as from Dex.
pub(crate) fn dex_subject(user_id: &str, connector_id: &str) -> String {
    fn field(out: &mut Vec<u8>, tag: u8, value: &str) {
        out.push(tag);
        let mut len = value.len();
        while len >= 0x80 {
            out.push(u8::try_from(len & 0x7f).unwrap_or(0) | 0x80);
            len >>= 7;
        }
        out.push(u8::try_from(len).unwrap_or(0));
        out.extend_from_slice(value.as_bytes());
    }
    let mut bytes = Vec::new();
    field(&mut bytes, 0x0a, user_id);
    field(&mut bytes, 0x12, connector_id);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// OIDC `at_hash` / `c_hash`: base64url of the left half of SHA-256 of the value.
fn half_hash(value: &str) -> String {
    let hash = digest::digest(&digest::SHA256, value.as_bytes());
    URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])
}

/// Dex's audience rule.
pub(crate) fn dex_audience(client_id: &str, scopes: &[String]) -> Vec<String> {
    let mut aud: Vec<String> = scopes
        .iter()
        .filter_map(|s| s.strip_prefix(CROSS_CLIENT_PREFIX))
        .map(str::to_owned)
        .collect();
    if !aud.iter().any(|a| a == client_id) {
        aud.push(client_id.to_owned());
    }
    aud
}

/// The token endpoint's success body (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Serialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// What a token response carries besides the access token.
#[derive(Default)]
pub(crate) struct Extras<'a> {
    /// The code being exchanged (for the ID token's `c_hash`).
    pub(crate) code: Option<&'a str>,
    /// The refresh token to hand out.
    pub(crate) refresh_token: Option<String>,
    /// With DPoP, the key the access token is bound to (`cnf.jkt`, `token_type: DPoP`).
    pub(crate) dpop_jkt: Option<&'a str>,
}

/// Signs an access token and, with `openid`, an ID token for `grant`, restricted to
/// `scopes` and `resources`, as Dex's `newAccessToken` / `newIDToken` do.
pub(crate) fn issue(
    idp: &Idp,
    grant: &Grant,
    scopes: &[String],
    resources: &[String],
    extras: Extras<'_>,
) -> Result<TokenResponse, Error> {
    let config = &idp.config;
    let iat = now_secs();
    let lifetime = config.token_lifetime.as_secs();
    let exp = iat + lifetime;
    let user = &grant.user;
    let has = |s: &str| scopes.iter().any(|x| x == s);

    let dex_aud = dex_audience(&grant.client_id, scopes);
    let dex_azp = (dex_aud.len() > 1).then(|| grant.client_id.clone());
    let mut base = Claims {
        iss: config.issuer_str(),
        sub: dex_subject(&user.user_id, "local"),
        aud: Audience::from_vec(dex_aud.clone()),
        exp,
        iat,
        azp: dex_azp.clone(),
        nonce: grant.nonce.clone(),
        at_hash: None,
        c_hash: None,
        email: has("email").then(|| user.email.clone()),
        email_verified: has("email").then_some(true),
        groups: (has("groups") && !user.groups.is_empty()).then(|| user.groups.clone()),
        name: has("profile").then(|| user.username.clone()),
        preferred_username: if has("profile") {
            user.preferred_username.clone()
        } else {
            None
        },
        federated_claims: has("federated:id").then(|| FederatedClaims {
            connector_id: "local".into(),
            user_id: user.user_id.clone(),
        }),
        client_id: None,
        scope: None,
        jti: None,
        auth_time: None,
        cnf: None,
    };

    let mut access = base.clone();
    let dpop_jkt = extras.dpop_jkt;
    access.cnf = dpop_jkt.map(|jkt| serde_json::json!({ "jkt": jkt }));
    if config.features.resource_audience && !resources.is_empty() {
        access.aud = Audience::from_vec(resources.to_vec());
        access.azp = Some(grant.client_id.clone());
    }
    let rfc9068 = config.features.rfc9068_access_tokens();
    let typ = if rfc9068 {
        access.client_id = Some(grant.client_id.clone());
        access.scope = Some(scopes.join(" "));
        access.jti = Some(random_token(16));
        access.auth_time = Some(grant.auth_time);
        access.nonce = None;
        Some("at+jwt")
    } else {
        None
    };
    let sign_err = |e: crate::keys::KeyError| {
        tracing::error!(error = %e, "signing failed");
        Error::token("server_error", "The server could not sign the token.")
    };
    let access_token = if config.opaque_tokens {
        let claims = serde_json::to_value(&access).map_err(|e| {
            tracing::error!(error = %e, "cannot encode claims");
            Error::token("server_error", "")
        })?;
        idp.store.insert_opaque(claims)
    } else {
        idp.keys.sign(typ, &access).map_err(sign_err)?
    };

    let id_token = if has("openid") {
        base.at_hash = Some(half_hash(&access_token));
        base.c_hash = extras.code.map(half_hash);
        Some(idp.keys.sign(None, &base).map_err(sign_err)?)
    } else {
        None
    };

    let refresh_token = extras.refresh_token;

    tracing::info!(
        client_id = %grant.client_id,
        user = %user.email,
        scopes = %scopes.join(" "),
        refresh = refresh_token.is_some(),
        dpop_jkt = dpop_jkt.unwrap_or("none"),
        "tokens issued"
    );
    Ok(TokenResponse {
        access_token,
        token_type: if dpop_jkt.is_some() { "DPoP" } else { "bearer" },
        expires_in: lifetime,
        refresh_token,
        id_token,
        scope: rfc9068.then(|| scopes.join(" ")),
    })
}

/// Who an access token issued without a login speaks for.
pub(crate) struct Principal<'a> {
    /// `sub`: the client itself (client credentials), or the user or workload an
    /// assertion names (JWT bearer grant).
    pub(crate) subject: &'a str,
    /// The client the token is issued to.
    pub(crate) client_id: &'a str,
    /// The user's email, when an assertion carried one.
    pub(crate) email: Option<&'a str>,
    /// For the log: which grant.
    pub(crate) grant: &'static str,
}

/// Signs an RFC 9068 access token without a login: for a confidential client acting for
/// itself (RFC 6749 §4.4), or for the subject of a JWT bearer grant (RFC 7523 §2.1).
/// `aud` is the requested resources (or the client); no ID token and no refresh token
/// (RFC 6749 §4.4.3; a new assertion is the way to a new token).
pub(crate) fn issue_without_login(
    idp: &Idp,
    principal: &Principal<'_>,
    scopes: &[String],
    resources: &[String],
    dpop_jkt: Option<&str>,
) -> Result<TokenResponse, Error> {
    let config = &idp.config;
    let client_id = principal.client_id;
    let iat = now_secs();
    let lifetime = config.token_lifetime.as_secs();
    let aud = if resources.is_empty() {
        vec![client_id.to_owned()]
    } else {
        resources.to_vec()
    };
    let claims = Claims {
        iss: config.issuer_str(),
        sub: principal.subject.to_owned(),
        aud: Audience::from_vec(aud),
        exp: iat + lifetime,
        iat,
        azp: None,
        nonce: None,
        at_hash: None,
        c_hash: None,
        email: principal.email.map(str::to_owned),
        email_verified: None,
        groups: None,
        name: None,
        preferred_username: None,
        federated_claims: None,
        client_id: Some(client_id.to_owned()),
        scope: Some(scopes.join(" ")),
        jti: Some(random_token(16)),
        auth_time: None,
        cnf: dpop_jkt.map(|jkt| serde_json::json!({ "jkt": jkt })),
    };
    let access_token = idp.keys.sign(Some("at+jwt"), &claims).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        Error::token("server_error", "The server could not sign the token.")
    })?;
    tracing::info!(
        %client_id,
        grant = principal.grant,
        scopes = %scopes.join(" "),
        dpop_jkt = dpop_jkt.unwrap_or("none"),
        "access token issued without a login"
    );
    Ok(TokenResponse {
        access_token,
        token_type: if dpop_jkt.is_some() { "DPoP" } else { "bearer" },
        expires_in: lifetime,
        refresh_token: None,
        id_token: None,
        scope: Some(scopes.join(" ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_matches_dex_encoding() {
        // Dex's documented example user id, connector "local".
        assert_eq!(
            dex_subject("08a8684b-db88-4b73-90a9-3cd1661f5466", "local"),
            "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs"
        );
    }

    #[test]
    fn audience_follows_dex() {
        let scopes = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(dex_audience("cli", &scopes(&["openid"])), ["cli"]);
        assert_eq!(
            dex_audience("cli", &scopes(&["openid", "audience:server:client_id:api"])),
            ["api", "cli"]
        );
        assert_eq!(
            serde_json::to_value(Audience::from_vec(vec!["a".into()])).unwrap(),
            serde_json::json!("a")
        );
    }
}
