//! The authorization server's metadata (RFC 8414 / OpenID Connect discovery), found as an
//! MCP client finds it, and what it offers an MCP client.
//!
//! For the first authorization server the resource lists, the locations the MCP
//! specification sets: RFC 8414 path insertion, OIDC path insertion, OIDC path appending
//! (for an issuer without a path: the two root documents). A document found only at a
//! location no client tries (the path dropped, or the RFC 8414 suffix appended) fails
//! discovery but is still read, so that the rest of the report says what it holds.

use mcp_auth_proto::AuthorizationServerMetadata;
use mcp_auth_proto::wellknown::{
    AUTHORIZATION_SERVER, OPENID_CONFIGURATION, authorization_server_metadata_urls,
};
use serde_json::Value;
use url::Url;

use super::probe::{FOREIGN_ORIGIN, foreign_origin};
use super::report::Findings;
use super::{CheckId, Context, Found, list};
use crate::trace::Trace;

const AREA: &str = "audit";

/// Every check of this group.
const CHECKS: &[CheckId] = &[
    CheckId::AsDiscovery,
    CheckId::AsIssuer,
    CheckId::AsContentType,
    CheckId::AsRequiredMembers,
    CheckId::AsPkceS256,
    CheckId::AsRegistration,
    CheckId::AsIssParameter,
    CheckId::AsCors,
];

/// A metadata document, where it was found and under which rule.
struct Located {
    found: Found<AuthorizationServerMetadata>,
    rule: &'static str,
}

/// What one location gave, for the report.
enum Fetched {
    Doc(Box<Located>),
    Missing(String),
}

async fn fetch(ctx: &Context, url: &Url, rule: &'static str, trace: &Trace) -> Fetched {
    let reply = match ctx.probe.get_json(url, &[]).await {
        Ok(r) => r,
        Err(e) => return Fetched::Missing(e.to_string()),
    };
    trace.detail(
        AREA,
        format!(
            "GET {url} -> {} {}",
            reply.status,
            reply.media_type().unwrap_or_default()
        ),
    );
    if reply.status != 200 {
        return Fetched::Missing(format!("{}", reply.status));
    }
    if reply.truncated {
        return Fetched::Missing(format!(
            "200, but larger than the audit reads ({} bytes)",
            reply.body.len()
        ));
    }
    match serde_json::from_slice::<AuthorizationServerMetadata>(&reply.body) {
        Ok(doc) => Fetched::Doc(Box::new(Located {
            found: Found {
                url: url.clone(),
                doc,
                json_content_type: reply.is_json_content_type(),
                content_type: reply.media_type(),
            },
            rule,
        })),
        Err(e) => Fetched::Missing(format!("200 but not authorization server metadata ({e})")),
    }
}

/// Where clients look for `issuer`, with the rule of each location.
fn locations(issuer: &Url) -> Vec<(Url, &'static str)> {
    let urls = authorization_server_metadata_urls(issuer);
    let rules: &[&str] = if urls.len() == 2 {
        &["RFC 8414", "OpenID Connect discovery"]
    } else {
        &[
            "RFC 8414 path insertion",
            "OIDC path insertion",
            "OIDC path appending",
        ]
    };
    urls.into_iter().zip(rules.iter().copied()).collect()
}

/// Where a document is sometimes put but no MCP client looks, for an issuer with a path.
fn wrong_locations(issuer: &Url) -> Vec<(Url, &'static str)> {
    let path = issuer.path().trim_end_matches('/');
    if path.is_empty() {
        return Vec::new();
    }
    let at = |p: &str| {
        let mut u = issuer.clone();
        u.set_path(p);
        u.set_query(None);
        u.set_fragment(None);
        u
    };
    vec![
        (
            at(AUTHORIZATION_SERVER),
            "RFC 8414 at the root, the issuer's path dropped",
        ),
        (
            at(OPENID_CONFIGURATION),
            "OIDC at the root, the issuer's path dropped",
        ),
        (
            at(&format!("{path}{AUTHORIZATION_SERVER}")),
            "RFC 8414 suffix appended to the issuer's path",
        ),
    ]
}

pub(super) async fn run(ctx: &mut Context, f: &mut Findings, trace: &Trace) {
    let Some(issuer) = ctx.issuer.clone() else {
        let why = if ctx.prm().is_some() {
            "the metadata lists no authorization server"
        } else {
            "no Protected Resource Metadata names an authorization server"
        };
        f.na_unset(CHECKS, why);
        dpop(ctx, f);
        return;
    };
    let issuer_url = match Url::parse(&issuer) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => {
            f.fail(
                CheckId::AsDiscovery,
                format!("the issuer {issuer:?} is not an http(s) URL"),
                "list the authorization server's issuer URL in authorization_servers",
            );
            f.na_unset(CHECKS, "no usable issuer");
            dpop(ctx, f);
            return;
        }
    };
    let count = ctx.prm().map_or(0, |p| p.doc.authorization_servers.len());
    let mut tried = Vec::new();
    let mut docs: Vec<Located> = Vec::new();
    for (url, rule) in locations(&issuer_url) {
        match fetch(ctx, &url, rule, trace).await {
            Fetched::Doc(d) => docs.push(*d),
            Fetched::Missing(why) => tried.push(format!("{url} ({rule}): {why}")),
        }
    }
    let id = CheckId::AsDiscovery;
    let several = if count > 1 {
        format!(" (the first of {count} authorization servers)")
    } else {
        String::new()
    };
    if docs.is_empty() {
        let mut misplaced = Vec::new();
        for (url, rule) in wrong_locations(&issuer_url) {
            if let Fetched::Doc(d) = fetch(ctx, &url, rule, trace).await {
                misplaced.push(*d);
            }
        }
        let expected = locations(&issuer_url)
            .into_iter()
            .map(|(u, _)| u.to_string())
            .collect::<Vec<_>>();
        if misplaced.is_empty() {
            f.fail(
                id,
                format!("no metadata for {issuer}{several}: {}", tried.join("; ")),
                format!(
                    "serve the authorization server's metadata at {}",
                    expected[0]
                ),
            );
            f.na_unset(CHECKS, "no authorization server metadata");
            dpop(ctx, f);
            return;
        }
        f.fail(
            id,
            format!(
                "metadata for {issuer}{several} only at {} ({}); clients look at {}",
                misplaced[0].found.url,
                misplaced[0].rule,
                list(&expected)
            ),
            format!("serve it at {} (RFC 8414 §3.1 inserts the well-known suffix before the issuer's path)", expected[0]),
        );
        docs = misplaced;
    } else {
        let found: Vec<String> = docs
            .iter()
            .map(|d| format!("{} ({})", d.found.url, d.rule))
            .collect();
        f.pass(id, format!("for {issuer}{several}: {}", list(&found)));
    }

    issuer_matches(&issuer, &docs, f);
    content_type(&docs, f);
    let used = docs.swap_remove(0).found;
    note_urls(ctx, &used.doc);
    required_members(&used.doc, f);
    pkce(&used.doc, f);
    registration(&used.doc, f);
    iss_parameter(&used.doc, f);
    cors(ctx, &used.url, f).await;
    ctx.as_metadata = Some(used);
    dpop(ctx, f);
}

fn issuer_matches(issuer: &str, docs: &[Located], f: &mut Findings) {
    let id = CheckId::AsIssuer;
    let wrong: Vec<String> = docs
        .iter()
        .filter(|d| d.found.doc.issuer != issuer)
        .map(|d| format!("{} says {}", d.found.url, d.found.doc.issuer))
        .collect();
    if wrong.is_empty() {
        f.pass(id, format!("issuer {issuer}"));
    } else {
        f.fail(
            id,
            format!("{}, not {issuer}", list(&wrong)),
            format!("make issuer exactly {issuer} (the URL the resource names), or name the real issuer in the resource's authorization_servers: clients refuse mismatched metadata"),
        );
    }
}

fn content_type(docs: &[Located], f: &mut Findings) {
    let id = CheckId::AsContentType;
    let wrong: Vec<String> = docs
        .iter()
        .filter(|d| !d.found.json_content_type)
        .map(|d| {
            format!(
                "{} as {}",
                d.found.url,
                d.found
                    .content_type
                    .as_deref()
                    .unwrap_or("(no content type)")
            )
        })
        .collect();
    if wrong.is_empty() {
        f.pass(id, "application/json");
    } else {
        f.fail(
            id,
            format!("served {}", list(&wrong)),
            "serve it with Content-Type: application/json (a static file server needs a rule for the extension-less well-known file)",
        );
    }
}

fn note_urls(ctx: &mut Context, md: &AuthorizationServerMetadata) {
    ctx.note_url("the authorization server's issuer", md.issuer.clone());
    for (what, value) in [
        ("authorization_endpoint", &md.authorization_endpoint),
        ("token_endpoint", &md.token_endpoint),
        ("registration_endpoint", &md.registration_endpoint),
        ("jwks_uri", &md.jwks_uri),
        ("userinfo_endpoint", &md.userinfo_endpoint),
        ("revocation_endpoint", &md.revocation_endpoint),
        ("introspection_endpoint", &md.introspection_endpoint),
    ] {
        if let Some(v) = value {
            ctx.note_url(what, v.clone());
        }
    }
}

fn required_members(md: &AuthorizationServerMetadata, f: &mut Findings) {
    let id = CheckId::AsRequiredMembers;
    let mut missing = Vec::new();
    if md.authorization_endpoint.is_none() {
        missing.push("authorization_endpoint is absent".to_owned());
    }
    if md.token_endpoint.is_none() {
        missing.push("token_endpoint is absent".to_owned());
    }
    if md.response_types_supported.is_empty() {
        missing.push("response_types_supported is absent".to_owned());
    } else if !md.response_types_supported.iter().any(|r| r == "code") {
        missing.push(format!(
            "response_types_supported is [{}], without code",
            md.response_types_supported.join(", ")
        ));
    }
    if !md.supports_grant_type("authorization_code") {
        missing.push(format!(
            "grant_types_supported is [{}], without authorization_code",
            md.grant_types_supported.join(", ")
        ));
    }
    if Url::parse(&md.issuer).is_ok_and(|u| u.query().is_some() || u.fragment().is_some()) {
        missing.push("the issuer has a query or fragment".to_owned());
    }
    if missing.is_empty() {
        f.pass(
            id,
            "authorization_endpoint, token_endpoint, response_types_supported with code",
        );
    } else {
        f.fail(
            id,
            list(&missing),
            "publish the endpoints and response_types_supported: [\"code\"] (RFC 8414 §2)",
        );
    }
}

fn pkce(md: &AuthorizationServerMetadata, f: &mut Findings) {
    let id = CheckId::AsPkceS256;
    if md.supports_pkce_s256() {
        f.pass(
            id,
            format!(
                "code_challenge_methods_supported: {}",
                md.code_challenge_methods_supported.join(", ")
            ),
        );
    } else if md.code_challenge_methods_supported.is_empty() {
        f.fail(
            id,
            "code_challenge_methods_supported is absent",
            "list code_challenge_methods_supported: [\"S256\"]: MCP clients refuse an authorization server that does not",
        );
    } else {
        f.fail(
            id,
            format!(
                "code_challenge_methods_supported: {}",
                md.code_challenge_methods_supported.join(", ")
            ),
            "support and list S256: MCP clients use no other PKCE method",
        );
    }
}

fn registration(md: &AuthorizationServerMetadata, f: &mut Findings) {
    let id = CheckId::AsRegistration;
    let seen = format!(
        "client ID metadata documents: {}; dynamic registration: {}; pre-registration: ask the operator",
        if md.client_id_metadata_document_supported {
            "yes"
        } else {
            "no"
        },
        md.registration_endpoint.as_deref().unwrap_or("no")
    );
    if md.client_id_metadata_document_supported {
        f.pass(id, seen);
    } else if md.registration_endpoint.is_some() {
        f.warn(
            id,
            seen,
            "accept Client ID Metadata Documents (client_id_metadata_document_supported: true): MCP asks authorization servers to (SHOULD), and 2026-07-28 deprecates dynamic registration",
        );
    } else {
        f.warn(
            id,
            seen,
            "offer a way for clients you do not know: Client ID Metadata Documents (client_id_metadata_document_supported: true), or dynamic registration",
        );
    }
}

fn iss_parameter(md: &AuthorizationServerMetadata, f: &mut Findings) {
    let id = CheckId::AsIssParameter;
    if md.authorization_response_iss_parameter_supported {
        f.pass(id, "authorization_response_iss_parameter_supported: true");
    } else {
        f.warn(
            id,
            "authorization_response_iss_parameter_supported is absent or false",
            "send iss with every authorization response and say so with authorization_response_iss_parameter_supported: true (mix-up defence)",
        );
    }
}

async fn cors(ctx: &Context, url: &Url, f: &mut Findings) {
    let id = CheckId::AsCors;
    match ctx.probe.get_json(url, &foreign_origin()).await {
        Ok(r) if r.status == 200 && r.allows_foreign_origin() => f.pass(
            id,
            format!(
                "Access-Control-Allow-Origin: {}",
                r.header("access-control-allow-origin").unwrap_or_default()
            ),
        ),
        Ok(r) => f.warn(
            id,
            format!(
                "GET with Origin: {FOREIGN_ORIGIN} -> {}, Access-Control-Allow-Origin: {}",
                r.status,
                r.header("access-control-allow-origin").unwrap_or("absent")
            ),
            "answer the metadata with Access-Control-Allow-Origin: * so that browser-based clients can read it",
        ),
        Err(e) => f.warn(id, e.to_string(), "answer the metadata request from any origin"),
    }
}

/// The strings of a JSON array member, if the member is there.
fn strings(member: Option<&Value>) -> Option<Vec<String>> {
    member.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

fn dpop(ctx: &Context, f: &mut Findings) {
    let id = CheckId::DpopAdvertised;
    let prm = ctx.prm().map(|p| &p.doc);
    let md = ctx.as_metadata.as_ref().map(|m| &m.doc);
    if prm.is_none() && md.is_none() {
        f.na(id, "no metadata to read");
        return;
    }
    let as_algs = md.and_then(|m| strings(m.extra.get("dpop_signing_alg_values_supported")));
    let rs_algs = prm.and_then(|p| strings(p.extra.get("dpop_signing_alg_values_supported")));
    let required = prm
        .and_then(|p| p.extra.get("dpop_bound_access_tokens_required"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut seen = Vec::new();
    if let Some(a) = &as_algs {
        seen.push(format!("authorization server: [{}]", a.join(", ")));
    }
    if let Some(a) = &rs_algs {
        seen.push(format!("resource: [{}]", a.join(", ")));
    }
    if required {
        seen.push("dpop_bound_access_tokens_required: true".to_owned());
    }
    let bad: Vec<&String> = as_algs
        .iter()
        .chain(rs_algs.iter())
        .flatten()
        .filter(|a| a.eq_ignore_ascii_case("none") || a.to_ascii_uppercase().starts_with("HS"))
        .collect();
    if !bad.is_empty() {
        f.fail(
            id,
            format!("dpop_signing_alg_values_supported lists {}", list(&bad)),
            "list only asymmetric algorithms (ES256, EdDSA, RS256, ...): a DPoP proof signed with none or a shared secret proves nothing",
        );
    } else if required && as_algs.as_ref().is_none_or(Vec::is_empty) && md.is_some() {
        f.fail(
            id,
            list(&seen),
            "the resource requires DPoP-bound tokens but the authorization server advertises no DPoP: advertise dpop_signing_alg_values_supported there, or drop the requirement",
        );
    } else if as_algs.as_ref().is_some_and(|a| !a.is_empty())
        || rs_algs.as_ref().is_some_and(|a| !a.is_empty())
    {
        f.pass(
            id,
            format!("dpop_signing_alg_values_supported: {}", list(&seen)),
        );
    } else {
        f.warn(
            id,
            "no dpop_signing_alg_values_supported in either metadata: tokens are bearer tokens, usable by whoever holds one",
            "consider DPoP (RFC 9449): sender-constrained tokens are what the OAuth security BCP recommends",
        );
    }
}
