//! The JWT bearer authorization grant ([RFC 7523 §2.1](https://www.rfc-editor.org/rfc/rfc7523#section-2.1)),
//! the MCP authorization server's half of enterprise-managed authorization (SEP-990) and
//! of workload identity federation (SEP-1933):
//!
//! ```text
//! grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer  assertion=<JWT>
//! [resource=<MCP server>]  [scope=...]  + client authentication
//! ```
//!
//! The assertion's `iss` must be one of the configured trusted issuers
//! (`--trusted-issuer`), whose published keys must verify it; then the checks of
//! [`crate::assertion`] with `aud` = this server's issuer (or its token endpoint), an
//! `exp` at most an hour ahead, and a `jti` not seen before.
//!
//! Two kinds of assertion, told apart by the JOSE `typ`:
//! - `oauth-id-jag+jwt`, an ID-JAG from an enterprise identity provider: a person's
//!   identity. Its `client_id` must be the client that authenticated here, its
//!   `resource` the MCP server asked for, and the scopes asked for must be within its
//!   `scope`. The access token's `sub` is the ID-JAG's.
//! - no `typ` or `JWT`, a workload's token: no person; `sub` names the workload.
//!
//! Any other `typ` (an access token, a DPoP proof, ...) is refused: a JWT made for one
//! purpose must not be accepted for another. Refusals of the assertion are
//! `invalid_grant` (400); scopes beyond what it grants are `invalid_scope`.

use axum::Json;
use axum::response::{IntoResponse, Response};

use crate::assertion::{self, Expect, Verified};
use crate::clients::{Client, KeySource};
use crate::endpoints::grants::{OFFLINE_ACCESS, resources};
use crate::endpoints::id_jag::ID_JAG_TYP;
use crate::error::Error;
use crate::params::Params;
use crate::state::Idp;
use crate::time::now_secs;
use crate::tokens::{Principal, issue_without_login};

/// How far ahead an assertion's `exp` may lie (seconds).
const MAX_LIFETIME: u64 = 3600;

fn invalid_grant(description: impl Into<String>) -> Error {
    Error::token("invalid_grant", description)
}

/// Answers a JWT bearer grant request from the authenticated `client`.
pub(crate) async fn grant(
    idp: &Idp,
    client: &Client,
    params: &Params,
    jkt: Option<&str>,
) -> Result<Response, Error> {
    let token = params
        .get("assertion")
        .ok_or_else(|| Error::token("invalid_request", "Missing assertion."))?;
    let issuer = assertion::unverified_claims(token)
        .and_then(|c| c.get("iss").and_then(|i| i.as_str().map(str::to_owned)))
        .ok_or_else(|| invalid_grant("The assertion is not a signed JWT with an iss."))?;
    let trusted = idp
        .config
        .features
        .trusted_issuers
        .iter()
        .find(|t| t.issuer == issuer)
        .ok_or_else(|| {
            invalid_grant(format!(
                "The assertion's issuer {issuer:?} is not trusted by this server."
            ))
        })?;
    let unavailable = |e: crate::remote_keys::FetchError| {
        tracing::warn!(%issuer, error = %e, "trusted issuer's keys unavailable");
        invalid_grant("The keys of the assertion's issuer could not be fetched.")
    };
    let jwks_uri = match &trusted.jwks_uri {
        Some(uri) => uri.clone(),
        None => idp
            .remote_keys
            .discover(&trusted.issuer)
            .await
            .map_err(unavailable)?,
    };
    let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
    let keys = idp
        .remote_keys
        .keys(&KeySource::Uri(jwks_uri), kid.as_deref())
        .await
        .map_err(unavailable)?;
    let own = idp.config.issuer_str();
    let audiences = [
        own.clone(),
        format!("{own}/"),
        idp.config.endpoint("/token"),
    ];
    let is_id_jag = jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|h| h.typ)
        .is_some_and(|t| t.eq_ignore_ascii_case(ID_JAG_TYP));
    let expect = Expect {
        what: if is_id_jag { "ID-JAG" } else { "assertion" },
        audiences: &audiences,
        max_lifetime: MAX_LIFETIME,
    };
    let now = now_secs();
    let verified = assertion::verify(token, &keys, &expect, now)
        .map_err(|refusal| invalid_grant(refusal.to_string()))?;
    let subject = verified
        .str("sub")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid_grant(format!("The {} has no sub.", expect.what)))?
        .to_owned();
    let (scopes, resources) = if is_id_jag {
        id_jag_terms(idp, client, params, &verified)?
    } else {
        match verified.typ.as_deref() {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("JWT") => {}
            Some(other) => {
                return Err(invalid_grant(format!(
                    "A JWT of typ {other:?} is not an authorization grant."
                )));
            }
        }
        let scopes = requested_scopes(idp, params, None)?;
        (scopes, resources(idp, params, &[])?)
    };
    // Only a verified, otherwise acceptable assertion uses up its jti.
    idp.jtis
        .remember(&issuer, &verified, expect.what, now)
        .map_err(|refusal| invalid_grant(refusal.to_string()))?;
    let principal = Principal {
        subject: &subject,
        client_id: &client.id,
        email: verified.str("email"),
        grant: if is_id_jag {
            "jwt-bearer (ID-JAG)"
        } else {
            "jwt-bearer (workload)"
        },
    };
    tracing::info!(%issuer, client_id = %client.id, kind = expect.what, "JWT bearer grant accepted");
    Ok(Json(issue_without_login(
        idp, &principal, &scopes, &resources, jkt,
    )?)
    .into_response())
}

/// Scopes and resources of a token for an ID-JAG.
fn id_jag_terms(
    idp: &Idp,
    client: &Client,
    params: &Params,
    verified: &Verified,
) -> Result<(Vec<String>, Vec<String>), Error> {
    if verified.str("client_id") != Some(client.id.as_str()) {
        return Err(invalid_grant(
            "The ID-JAG's client_id is not the client that authenticated.",
        ));
    }
    let resource = verified
        .str("resource")
        .ok_or_else(|| invalid_grant("The ID-JAG has no resource."))?
        .to_owned();
    let requested = params.all("resource");
    if requested.iter().any(|r| *r != resource) {
        return Err(invalid_grant(
            "The resource asked for is not the ID-JAG's resource.",
        ));
    }
    let granted: Option<Vec<String>> = verified
        .str("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect());
    let scopes = requested_scopes(idp, params, granted.as_deref())?;
    let resources = if idp.config.features.resource_audience {
        vec![resource]
    } else {
        Vec::new()
    };
    Ok((scopes, resources))
}

/// The scopes asked for (else all that `granted` allows), each known here and within
/// `granted` when an assertion limits them.
fn requested_scopes(
    idp: &Idp,
    params: &Params,
    granted: Option<&[String]>,
) -> Result<Vec<String>, Error> {
    // No refresh token for an assertion (a new assertion gets a new token), so
    // `offline_access` is left out of the grant, as for client credentials.
    let requested: Vec<String> = match params.get("scope") {
        Some(s) => s
            .split_whitespace()
            .filter(|s| *s != OFFLINE_ACCESS)
            .map(str::to_owned)
            .collect(),
        // All the assertion grants that this server knows.
        None => granted
            .unwrap_or_default()
            .iter()
            .filter(|s| idp.config.is_known_scope(s) && *s != OFFLINE_ACCESS)
            .cloned()
            .collect(),
    };
    if let Some(granted) = granted
        && let Some(extra) = requested.iter().find(|s| !granted.contains(s))
    {
        return Err(Error::token(
            "invalid_scope",
            format!("Scope {extra:?} is not granted by the ID-JAG."),
        ));
    }
    if let Some(unknown) = requested.iter().find(|s| !idp.config.is_known_scope(s)) {
        return Err(Error::token(
            "invalid_scope",
            format!("Unknown scope {unknown:?}."),
        ));
    }
    Ok(requested)
}
