//! `private_key_jwt` client authentication at the token endpoint
//! ([RFC 7523 §2.2](https://www.rfc-editor.org/rfc/rfc7523#section-2.2) and §3, OpenID
//! Connect Core §9): instead of a secret, the client sends
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
//! `client_assertion`, a JWT it signed with its own private key.
//!
//! The client must be registered with its public keys (`jwks` or `jwksURI` in
//! `staticClients`, a dev-idp extension Dex ignores) and the switch
//! `--private-key-jwt` must be on. The assertion must have `iss` = `sub` = the client
//! id, `aud` = this server's issuer or token endpoint, an `exp` at most five minutes
//! ahead, a `jti` not used before, and the checks of [`crate::assertion`]. Every
//! refusal is `invalid_client` (401).

use crate::assertion::{self, Expect};
use crate::clients::Client;
use crate::error::Error;
use crate::params::Params;
use crate::state::Idp;
use crate::time::now_secs;

/// The `client_assertion_type` of a JWT client assertion.
pub(crate) const CLIENT_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far ahead a client assertion's `exp` may lie (seconds).
const MAX_LIFETIME: u64 = 300;

fn invalid(description: impl Into<String>) -> Error {
    Error::token("invalid_client", description)
}

/// Whether the request tries JWT client authentication.
pub(crate) fn attempted(params: &Params) -> bool {
    params.get("client_assertion").is_some() || params.get("client_assertion_type").is_some()
}

/// Authenticates the client by its assertion.
pub(crate) async fn authenticate(idp: &Idp, params: &Params) -> Result<Client, Error> {
    if params.get("client_secret").is_some() {
        return Err(Error::token(
            "invalid_request",
            "Use only one client authentication method.",
        ));
    }
    if params.get("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
        return Err(invalid(format!(
            "client_assertion_type must be {CLIENT_ASSERTION_TYPE}."
        )));
    }
    let token = params
        .get("client_assertion")
        .ok_or_else(|| invalid("client_assertion is missing."))?;
    if !idp.config.features.private_key_jwt {
        return Err(invalid(
            "private_key_jwt client authentication is off on this server (--private-key-jwt).",
        ));
    }
    // Who the assertion says it is decides whose keys check it.
    let unverified = assertion::unverified_claims(token)
        .ok_or_else(|| invalid("The client assertion is not a signed JWT."))?;
    let claimed = |name: &str| unverified.get(name).and_then(serde_json::Value::as_str);
    let client_id = match (claimed("iss"), claimed("sub")) {
        (Some(iss), Some(sub)) if iss == sub => iss.to_owned(),
        _ => {
            return Err(invalid(
                "The client assertion's iss and sub must both be the client id.",
            ));
        }
    };
    if params.get("client_id").is_some_and(|c| c != client_id) {
        return Err(invalid("client_id does not match the client assertion."));
    }
    let client = idp
        .client(&client_id)
        .ok_or_else(|| invalid("Invalid client credentials."))?;
    let Some(source) = &client.keys else {
        return Err(invalid(
            "This client has no registered keys (jwks or jwksURI); it cannot use private_key_jwt.",
        ));
    };
    let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
    let keys = idp
        .remote_keys
        .keys(source, kid.as_deref())
        .await
        .map_err(|e| {
            tracing::warn!(client_id = %client.id, error = %e, "client keys unavailable");
            invalid("The client's keys could not be fetched from its jwksURI.")
        })?;
    let audiences = [idp.config.issuer_str(), idp.config.endpoint("/token")];
    let expect = Expect {
        what: "client assertion",
        audiences: &audiences,
        max_lifetime: MAX_LIFETIME,
    };
    let now = now_secs();
    let verified = assertion::verify(token, &keys, &expect, now)
        .map_err(|refusal| invalid(refusal.to_string()))?;
    idp.jtis
        .remember(&client.id, &verified, expect.what, now)
        .map_err(|refusal| invalid(refusal.to_string()))?;
    tracing::info!(client_id = %client.id, "client authenticated by private_key_jwt");
    Ok(client)
}
