//! RFC 7591 dynamic client registration at `{issuer}/register`, open to anyone, when
//! switched on (Dex has none). Public clients register with
//! `token_endpoint_auth_method: none`; others get a generated secret.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use url::Url;

use crate::clients::{Client, is_loopback};
use crate::error::Error;
use crate::state::Idp;
use crate::store::random_token;
use crate::time::now_secs;

const AUTH_METHODS: [&str; 3] = ["none", "client_secret_basic", "client_secret_post"];
const GRANT_TYPES: [&str; 2] = ["authorization_code", "refresh_token"];

fn strings(doc: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, Error> {
    match doc.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    Error::registration(
                        "invalid_client_metadata",
                        format!("`{name}` must be an array of strings."),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(Error::registration(
            "invalid_client_metadata",
            format!("`{name}` must be an array of strings."),
        )),
    }
}

fn string(doc: &Map<String, Value>, name: &str) -> Result<Option<String>, Error> {
    match doc.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::registration(
            "invalid_client_metadata",
            format!("`{name}` must be a string."),
        )),
    }
}

fn check_redirect_uri(uri: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Error::registration(
            "invalid_redirect_uri",
            format!("Redirect URI {uri:?} {why}."),
        )
    };
    let url = Url::parse(uri).map_err(|_| bad("is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(bad("has a fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        _ => Err(bad("must use https, or http on a loopback host")),
    }
}

/// `POST {issuer}/register`.
pub(crate) async fn register(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json_body {
        return Err(Error::registration(
            "invalid_client_metadata",
            "Content-Type must be application/json.",
        ));
    }
    let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&body) else {
        return Err(Error::registration(
            "invalid_client_metadata",
            "The body must be a JSON object.",
        ));
    };

    let auth_method =
        string(&doc, "token_endpoint_auth_method")?.unwrap_or_else(|| "client_secret_basic".into());
    if !AUTH_METHODS.contains(&auth_method.as_str()) {
        return Err(Error::registration(
            "invalid_client_metadata",
            format!("Unsupported token_endpoint_auth_method {auth_method:?}."),
        ));
    }
    let grant_types =
        strings(&doc, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    if let Some(bad) = grant_types
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return Err(Error::registration(
            "invalid_client_metadata",
            format!("Unsupported grant type {bad:?}."),
        ));
    }
    let response_types = strings(&doc, "response_types")?.unwrap_or_else(|| vec!["code".into()]);
    if let Some(bad) = response_types.iter().find(|r| *r != "code") {
        return Err(Error::registration(
            "invalid_client_metadata",
            format!("Unsupported response type {bad:?}."),
        ));
    }
    let redirect_uris = strings(&doc, "redirect_uris")?.unwrap_or_default();
    if grant_types.iter().any(|g| g == "authorization_code") && redirect_uris.is_empty() {
        return Err(Error::registration(
            "invalid_redirect_uri",
            "At least one redirect URI is required for the authorization_code grant.",
        ));
    }
    for uri in &redirect_uris {
        check_redirect_uri(uri)?;
    }
    let scope = string(&doc, "scope")?.unwrap_or_default();
    if let Some(bad) = scope
        .split_whitespace()
        .find(|s| !idp.config.is_known_scope(s))
    {
        return Err(Error::registration(
            "invalid_client_metadata",
            format!("Unknown scope {bad:?}."),
        ));
    }
    let client_name = string(&doc, "client_name")?;

    let public = auth_method == "none";
    let client_id = random_token(16);
    let secret = (!public).then(|| random_token(32));
    idp.store.register_client(Client {
        id: client_id.clone(),
        secret: secret.clone(),
        public,
        redirect_uris: redirect_uris.clone(),
        trusted_peers: Vec::new(),
        name: client_name.clone(),
        dynamic: true,
        keys: None,
    });
    tracing::info!(%client_id, public, name = ?client_name, "client registered");

    doc.remove("client_secret");
    doc.insert("client_id".into(), json!(client_id));
    doc.insert("client_id_issued_at".into(), json!(now_secs()));
    if let Some(secret) = secret {
        doc.insert("client_secret".into(), json!(secret));
        doc.insert("client_secret_expires_at".into(), json!(0));
    }
    doc.insert("token_endpoint_auth_method".into(), json!(auth_method));
    doc.insert("grant_types".into(), json!(grant_types));
    doc.insert("response_types".into(), json!(response_types));
    doc.insert("redirect_uris".into(), json!(redirect_uris));

    let mut response = (StatusCode::CREATED, Json(Value::Object(doc))).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
