//! Protected Resource Metadata (RFC 9728): where it is served, what it says.
//!
//! The three places a client looks, in its order: the challenge's `resource_metadata`
//! URL, the path-inserted well-known URL (`/.well-known/oauth-protected-resource/mcp` for
//! `/mcp`), the root one. Each document must be JSON served as `application/json`, name
//! the resource its location implies (RFC 9728 §3.3: the identifier the well-known suffix
//! was inserted into; the MCP specification also lets the root document describe the MCP
//! URL), and list an authorization server.

use mcp_auth_proto::ProtectedResourceMetadata;
use mcp_auth_proto::wellknown::{prm_discovery_urls, resource_matches};
use url::Url;

use super::probe::foreign_origin;
use super::report::Findings;
use super::{CheckId, Context, Found, PrmLocation, list};
use crate::trace::Trace;

const AREA: &str = "audit";

const MOVED: &str = "serve the document at this URL itself: clients that follow no redirects (mcp-client among them) miss it";

/// The checks that need a document.
const DOC_CHECKS: &[CheckId] = &[
    CheckId::PrmContentType,
    CheckId::PrmResource,
    CheckId::PrmAuthorizationServers,
    CheckId::PrmBearerMethods,
    CheckId::PrmCors,
];

/// What one URL gave.
enum Fetched {
    Doc(Box<Found<ProtectedResourceMetadata>>),
    /// 404 or 410: not served there.
    Absent(u16),
    /// A redirect, described: clients that follow none (this one) miss the document.
    Moved(String),
    /// Anything else, described.
    Broken(String),
}

async fn fetch(ctx: &Context, url: &Url, trace: &Trace) -> Fetched {
    let reply = match ctx.probe.get_json(url, &[]).await {
        Ok(r) => r,
        Err(e) => return Fetched::Broken(e.to_string()),
    };
    trace.detail(
        AREA,
        format!(
            "GET {url} -> {} {}",
            reply.status,
            reply.media_type().unwrap_or_default()
        ),
    );
    match reply.status {
        200 => {}
        s @ (404 | 410) => return Fetched::Absent(s),
        s @ 300..=399 => {
            return Fetched::Moved(format!(
                "{s} redirect to {}",
                reply.header("location").unwrap_or("(no Location)")
            ));
        }
        s => return Fetched::Broken(format!("{s} {}", reply.summary())),
    }
    if reply.truncated {
        return Fetched::Broken(format!(
            "200, but the body is larger than the audit reads ({} bytes)",
            reply.body.len()
        ));
    }
    match serde_json::from_slice::<serde_json::Value>(&reply.body) {
        Err(_) => Fetched::Broken(format!(
            "200 {}, not JSON: {}",
            reply
                .media_type()
                .unwrap_or_else(|| "without a content type".into()),
            reply.summary()
        )),
        Ok(v) => match serde_json::from_value::<ProtectedResourceMetadata>(v) {
            Ok(doc) => Fetched::Doc(Box::new(Found {
                url: url.clone(),
                doc,
                json_content_type: reply.is_json_content_type(),
                content_type: reply.media_type(),
            })),
            Err(e) => Fetched::Broken(format!(
                "200, JSON but not protected resource metadata ({e})"
            )),
        },
    }
}

fn describe(fetched: &Fetched) -> String {
    match fetched {
        Fetched::Doc(d) => format!("200, resource {}", d.doc.resource),
        Fetched::Absent(s) => format!("{s}"),
        Fetched::Moved(why) | Fetched::Broken(why) => why.clone(),
    }
}

pub(super) async fn run(ctx: &mut Context, f: &mut Findings, trace: &Trace) {
    let wellknown = prm_discovery_urls(&ctx.server);
    let has_path = wellknown.len() == 2;
    let path_url = wellknown[0].clone();
    let root_url = wellknown
        .last()
        .cloned()
        .unwrap_or_else(|| path_url.clone());
    let challenge_url = ctx
        .challenge
        .as_ref()
        .and_then(|c| c.resource_metadata.as_deref())
        .and_then(|u| Url::parse(u).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"));

    // Each distinct URL is fetched once.
    let mut fetched: Vec<(Url, Fetched)> = Vec::new();
    for url in challenge_url.iter().chain([&path_url, &root_url]) {
        if !fetched.iter().any(|(u, _)| u == url) {
            let result = fetch(ctx, url, trace).await;
            fetched.push((url.clone(), result));
        }
    }
    let at = |url: &Url| -> &Fetched {
        &fetched
            .iter()
            .find(|(u, _)| u == url)
            .expect("every URL was fetched")
            .1
    };

    let path_doc = has_path && matches!(at(&path_url), Fetched::Doc(_));
    match &challenge_url {
        None => f.na(
            CheckId::PrmChallengeUrl,
            "the challenge names no resource_metadata URL",
        ),
        Some(u) => challenge_location(u, at(u), f),
    }
    if has_path {
        path_location(&path_url, at(&path_url), &ctx.canonical, f);
    } else {
        f.na(
            CheckId::PrmPathInserted,
            format!(
                "{} has no path: the root URL is the path-inserted one",
                ctx.server
            ),
        );
    }
    root_location(&root_url, at(&root_url), path_doc, f);

    // The documents found, by location.
    for (location, url) in [
        (PrmLocation::Challenge, challenge_url.as_ref()),
        (PrmLocation::PathInserted, has_path.then_some(&path_url)),
        (PrmLocation::Root, Some(&root_url)),
    ] {
        if let Some(url) = url
            && let Fetched::Doc(d) = at(url)
        {
            ctx.prm_docs.push((location, (**d).clone()));
        }
    }

    // prm.found
    let id = CheckId::PrmFound;
    let Some(used) = ctx.prm().cloned() else {
        let tried: Vec<String> = fetched
            .iter()
            .map(|(u, r)| format!("{u}: {}", describe(r)))
            .collect();
        f.fail(
            id,
            format!("tried {}", tried.join("; ")),
            format!(
                "serve Protected Resource Metadata (RFC 9728) for {} at {path_url} and name it in the 401 challenge (resource_metadata)",
                ctx.canonical
            ),
        );
        f.na_unset(DOC_CHECKS, "no Protected Resource Metadata");
        offline_access(ctx, f);
        return;
    };
    f.pass(
        id,
        format!(
            "clients use {} (the first found in discovery order)",
            used.url
        ),
    );
    ctx.note_url("the PRM resource", used.doc.resource.clone());
    for server in &used.doc.authorization_servers {
        ctx.note_url("a PRM authorization server", server.clone());
    }
    ctx.issuer = used.doc.authorization_servers.first().cloned();

    content_type(ctx, f);
    resource(ctx, f);
    authorization_servers(ctx, f);
    bearer_methods(&used.doc, f);
    cors(ctx, &used.url, f, trace).await;
    offline_access(ctx, f);
}

fn challenge_location(url: &Url, fetched: &Fetched, f: &mut Findings) {
    let id = CheckId::PrmChallengeUrl;
    let seen = format!("GET {url}: {}", describe(fetched));
    match fetched {
        Fetched::Doc(_) => f.pass(id, seen),
        Fetched::Moved(_) => f.warn(id, seen, MOVED),
        Fetched::Absent(_) | Fetched::Broken(_) => f.fail(
            id,
            seen,
            "serve the Protected Resource Metadata at the URL the challenge names, or name the URL where it is",
        ),
    }
}

fn path_location(url: &Url, fetched: &Fetched, canonical: &str, f: &mut Findings) {
    let id = CheckId::PrmPathInserted;
    let seen = format!("GET {url}: {}", describe(fetched));
    match fetched {
        Fetched::Doc(_) => f.pass(id, seen),
        Fetched::Moved(_) => f.warn(id, seen, MOVED),
        Fetched::Absent(_) => f.warn(
            id,
            seen,
            format!("serve the metadata of {canonical} there: clients that got no resource_metadata look there first"),
        ),
        Fetched::Broken(_) => f.fail(
            id,
            seen,
            format!("serve the Protected Resource Metadata of {canonical} there (200, JSON), or nothing (404)"),
        ),
    }
}

fn root_location(url: &Url, fetched: &Fetched, path_doc: bool, f: &mut Findings) {
    let id = CheckId::PrmRoot;
    let seen = format!("GET {url}: {}", describe(fetched));
    match fetched {
        Fetched::Doc(_) => f.pass(id, seen),
        Fetched::Moved(_) => f.warn(id, seen, MOVED),
        Fetched::Absent(_) if path_doc => f.na(
            id,
            format!("{seen}; not needed, clients find the path-inserted document first"),
        ),
        Fetched::Absent(_) => f.warn(
            id,
            seen,
            "serve the Protected Resource Metadata at the root well-known URL too: it is where clients look last",
        ),
        Fetched::Broken(_) => f.fail(
            id,
            seen,
            "serve Protected Resource Metadata there (200, JSON), or nothing (404)",
        ),
    }
}

fn content_type(ctx: &Context, f: &mut Findings) {
    let id = CheckId::PrmContentType;
    let wrong: Vec<String> = unique_docs(ctx)
        .filter(|d| !d.json_content_type)
        .map(|d| {
            format!(
                "{} as {}",
                d.url,
                d.content_type.as_deref().unwrap_or("(no content type)")
            )
        })
        .collect();
    if wrong.is_empty() {
        f.pass(id, "application/json");
    } else {
        f.fail(
            id,
            format!("served {}", list(&wrong)),
            "serve the document with Content-Type: application/json",
        );
    }
}

/// The documents found, each URL once.
fn unique_docs(ctx: &Context) -> impl Iterator<Item = &Found<ProtectedResourceMetadata>> {
    ctx.prm_docs.iter().enumerate().filter_map(|(i, (_, d))| {
        (!ctx.prm_docs[..i].iter().any(|(_, e)| e.url == d.url)).then_some(d)
    })
}

fn resource(ctx: &Context, f: &mut Findings) {
    let id = CheckId::PrmResource;
    let origin = ctx.server.origin().ascii_serialization();
    let given = ctx.server.as_str().to_owned();
    let mut wrong = Vec::new();
    let mut loose = Vec::new();
    let mut ok = Vec::new();
    for (location, d) in &ctx.prm_docs {
        let r = d.doc.resource.as_str();
        let (expected, exact): (String, bool) = match location {
            PrmLocation::Challenge | PrmLocation::PathInserted => {
                (ctx.canonical.clone(), r == ctx.canonical || r == given)
            }
            PrmLocation::Root => (
                format!("{origin} or {}", ctx.canonical),
                r == origin || r == ctx.canonical || r == given,
            ),
        };
        let line = format!("{} says {r}", d.url);
        if exact {
            ok.push(line);
        } else if resource_matches(r, &ctx.server) {
            loose.push(format!("{line}, expected {expected}"));
        } else {
            wrong.push(format!("{line}, expected {expected}"));
        }
    }
    for lines in [&mut ok, &mut loose, &mut wrong] {
        lines.dedup();
    }
    if !wrong.is_empty() {
        f.fail(
            id,
            list(&wrong),
            format!(
                "set resource to {}: clients refuse metadata that names another resource, and ask tokens for the resource it names",
                ctx.canonical
            ),
        );
    } else if !loose.is_empty() {
        f.warn(
            id,
            list(&loose),
            format!(
                "set resource to exactly {}: RFC 9728 §3.3 asks for the identical URL, and strict clients refuse a prefix",
                ctx.canonical
            ),
        );
    } else {
        f.pass(id, list(&ok));
    }
}

fn authorization_servers(ctx: &Context, f: &mut Findings) {
    let id = CheckId::PrmAuthorizationServers;
    let mut problems = Vec::new();
    let mut servers = Vec::new();
    for d in unique_docs(ctx) {
        if d.doc.authorization_servers.is_empty() {
            problems.push(format!("{} lists no authorization_servers", d.url));
        }
        for s in &d.doc.authorization_servers {
            match Url::parse(s) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.query().is_none()
                        && u.fragment().is_none() =>
                {
                    if !servers.contains(s) {
                        servers.push(s.clone());
                    }
                }
                _ => problems.push(format!(
                    "{} lists {s:?}, not an issuer URL (https, no query or fragment)",
                    d.url
                )),
            }
        }
    }
    if problems.is_empty() {
        f.pass(id, format!("authorization_servers: {}", list(&servers)));
    } else {
        f.fail(
            id,
            list(&problems),
            "list the issuer URL of the authorization server that issues tokens for this server in authorization_servers",
        );
    }
}

fn bearer_methods(doc: &ProtectedResourceMetadata, f: &mut Findings) {
    let id = CheckId::PrmBearerMethods;
    let methods = &doc.bearer_methods_supported;
    if methods.is_empty() {
        f.pass(
            id,
            "bearer_methods_supported absent (the header, by default)",
        );
        return;
    }
    let others: Vec<&String> = methods.iter().filter(|m| *m != "header").collect();
    if others.is_empty() {
        f.pass(id, "bearer_methods_supported: header");
    } else {
        f.fail(
            id,
            format!("bearer_methods_supported: {}", list(methods)),
            "offer only [\"header\"]: MCP tokens travel in the Authorization header, never in a query string or a form body",
        );
    }
}

async fn cors(ctx: &Context, url: &Url, f: &mut Findings, trace: &Trace) {
    let id = CheckId::PrmCors;
    match ctx.probe.get_json(url, &foreign_origin()).await {
        Ok(r) if r.status == 200 && r.allows_foreign_origin() => f.pass(
            id,
            format!(
                "Access-Control-Allow-Origin: {}",
                r.header("access-control-allow-origin").unwrap_or_default()
            ),
        ),
        Ok(r) => {
            trace.detail(
                AREA,
                format!("GET {url} with a foreign Origin -> {}", r.status),
            );
            f.warn(
                id,
                format!(
                    "GET with Origin: {} -> {}, Access-Control-Allow-Origin: {}",
                    super::probe::FOREIGN_ORIGIN,
                    r.status,
                    r.header("access-control-allow-origin").unwrap_or("absent")
                ),
                "answer the metadata with Access-Control-Allow-Origin: * so that browser-based clients can read it (it is public)",
            );
        }
        Err(e) => f.warn(
            id,
            e.to_string(),
            "answer the metadata request from any origin",
        ),
    }
}

fn offline_access(ctx: &Context, f: &mut Findings) {
    let id = CheckId::ScopeOfflineAccess;
    let challenge = ctx.challenge.as_ref().and_then(|c| c.scope.as_deref());
    let prm = ctx.prm().map(|p| &p.doc.scopes_supported);
    if challenge.is_none() && prm.is_none_or(Vec::is_empty) {
        f.na(id, "neither the challenge nor the metadata names scopes");
        return;
    }
    let mut where_ = Vec::new();
    if challenge.is_some_and(|s| s.split_ascii_whitespace().any(|s| s == "offline_access")) {
        where_.push("the challenge's scope");
    }
    if prm.is_some_and(|s| s.iter().any(|s| s == "offline_access")) {
        where_.push("the metadata's scopes_supported");
    }
    if where_.is_empty() {
        f.pass(id, "not asked for");
    } else {
        f.warn(
            id,
            format!("offline_access in {}", where_.join(" and ")),
            "leave offline_access out: refresh tokens are the client's business with the authorization server, not a resource requirement",
        );
    }
}
