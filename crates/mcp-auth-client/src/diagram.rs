//! The flow as a picture of what actually ran: a Mermaid `sequenceDiagram` of every
//! HTTP exchange the client made (`--diagram FILE`).
//!
//! Recording is switched on for one command by running it inside [`record`]; every
//! request sent through `http::RecordedSend` is then noted here, with nothing
//! asked of the code that sends it. Outside [`record`] the hook costs one task-local
//! lookup.
//!
//! Who is who is read from the requests themselves:
//! - the MCP server's origin is the **resource server**;
//! - a request with `response_type=` (the authorization request) and each request that
//!   follows a `Location` it got is the **browser**'s (with `--headless` the client
//!   follows the redirects itself; in a real browser the client only sees the URL it
//!   opens and the callback it receives, which `browser_opened` and
//!   `callback_received` draw);
//! - the browser's request that carries `code` or `error` with `state` reaches the
//!   client's own loopback listener;
//! - any other origin is a **metadata server** if it served only well-known documents,
//!   else an **authorization server**; authorization server requests (its metadata, the
//!   authorization request, token and registration requests) to the resource server's
//!   own origin go to an authorization server drawn apart, on that origin.
//!
//! # Security
//! Arrows show methods, paths (never queries), statuses and the names of the parameters
//! that matter. Tokens appear only as [`mcp_auth_proto::secret::fingerprint`]s; codes,
//! `state` values, PKCE challenges, DPoP proofs and nonces, and secrets never appear;
//! DPoP is drawn by name (`DPoP proof` on a token request, `Authorization: DPoP <fp>`,
//! `DPoP-Nonce` on a response, `token_type=DPoP`).

use std::future::Future;
use std::sync::{Arc, Mutex};

use url::Url;

/// Marks an authorization server that shares the resource server's origin.
const SAME_ORIGIN_AS: &str = "#as";

tokio::task_local! {
    static RECORDER: Recorder;
}

/// Who sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    Client,
    Browser,
}

/// Where a request went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// The client's loopback callback listener.
    Client,
    /// A server, by origin (`http://localhost:3001`).
    Origin(String),
}

#[derive(Debug, Clone)]
struct Exchange {
    from: Sender,
    to: Target,
    /// `GET /path` plus what mattered in the request.
    request: String,
    /// A well-known metadata GET (counts towards "metadata server").
    well_known: bool,
    /// The status and what mattered in the response; `None` if no response came.
    response: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    exchanges: Vec<Exchange>,
    /// The `Location`s the browser was sent to and has not followed yet.
    browser_next: Vec<String>,
    /// Whether a real browser (not `--headless`) was involved.
    real_browser: bool,
    /// The MCP server's origin: that of the first request, which is always to it.
    resource_origin: Option<String>,
}

/// The exchanges of one command, in order.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    state: Arc<Mutex<State>>,
}

/// What the HTTP layer saw of a request, before sending it.
#[derive(Debug)]
pub(crate) struct Pending {
    index: usize,
    recorder: Recorder,
    token_request: bool,
}

impl Recorder {
    /// A recorder with nothing recorded. The first request it sees names the resource
    /// server: every command starts at the MCP server.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    /// How many exchanges were recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.with(|s| s.exchanges.len())
    }

    /// True if nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Mermaid `sequenceDiagram` of everything recorded so far.
    #[must_use]
    pub fn render(&self) -> String {
        let (exchanges, real_browser, origin) = self.with(|s| {
            (
                s.exchanges.clone(),
                s.real_browser,
                s.resource_origin.clone().unwrap_or_default(),
            )
        });
        render(&origin, &exchanges, real_browser)
    }
}

/// Runs `fut` with `recorder` recording every request it sends.
pub async fn record<F: Future>(recorder: Recorder, fut: F) -> F::Output {
    RECORDER.scope(recorder, fut).await
}

fn current() -> Option<Recorder> {
    RECORDER.try_with(Clone::clone).ok()
}

/// The hook of the HTTP layer: notes `req` before it is sent. `None` when not recording.
pub(crate) fn request(req: &reqwest::Request) -> Option<Pending> {
    let recorder = current()?;
    let url = req.url();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let has = |name: &str| query.iter().any(|(n, _)| n == name);
    let origin = url.origin().ascii_serialization();
    let path = url.path();
    let location = without_query(url);
    let form = req
        .body()
        .and_then(reqwest::Body::as_bytes)
        .filter(|_| {
            req.headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
        })
        .map(|b| {
            url::form_urlencoded::parse(b)
                .into_owned()
                .collect::<Vec<_>>()
        });
    let json_body: Option<serde_json::Value> = req
        .body()
        .and_then(reqwest::Body::as_bytes)
        .and_then(|b| serde_json::from_slice(b).ok());
    let bearer = req
        .headers()
        .get(reqwest::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case("bearer") || s.eq_ignore_ascii_case("dpop"))
        })
        .map(|(scheme, t)| format!("{scheme} {}", mcp_auth_proto::secret::fingerprint(t.trim())));

    let mut notes: Vec<String> = Vec::new();
    let token_request = form
        .as_ref()
        .is_some_and(|f| f.iter().any(|(n, _)| n == "grant_type"));
    if has("response_type") {
        for name in ["code_challenge_method", "resource", "scope"] {
            if let Some((_, v)) = query.iter().find(|(n, _)| n == name) {
                notes.push(format!("{name}={}", short(v)));
            }
        }
    } else if has("state") && (has("code") || has("error")) {
        let names: Vec<&str> = ["code", "error", "state", "iss"]
            .into_iter()
            .filter(|n| has(n))
            .collect();
        notes.push(names.join(", "));
    }
    if let Some(form) = &form {
        for name in ["grant_type", "resource", "scope"] {
            if let Some((_, v)) = form.iter().find(|(n, _)| n == name) {
                notes.push(format!("{name}={}", short(v)));
            }
        }
        if form.iter().any(|(n, _)| n == "code_verifier") {
            notes.push("code_verifier".to_owned());
        }
    }
    if let Some(json) = &json_body {
        if let Some(method) = json.get("method").and_then(|m| m.as_str()) {
            let tool = json
                .pointer("/params/name")
                .and_then(|n| n.as_str())
                .filter(|_| method == "tools/call");
            notes.push(match tool {
                Some(t) => format!("{method} {t}"),
                None => method.to_owned(),
            });
        } else if json.get("redirect_uris").is_some() {
            notes.push("client registration".to_owned());
        }
    }
    let as_like = token_request
        || has("response_type")
        || path.starts_with("/.well-known/oauth-authorization-server")
        || path.ends_with("/.well-known/openid-configuration")
        || json_body
            .as_ref()
            .is_some_and(|j| j.get("redirect_uris").is_some());
    let to_resource = recorder
        .with(|state| state.resource_origin.get_or_insert_with(|| origin.clone()) == &origin);
    // A DPoP proof without a DPoP-bound token (a token request): the proof is what
    // matters there; with `Authorization: DPoP` the scheme already says it.
    if req.headers().contains_key("dpop")
        && !bearer
            .as_ref()
            .is_some_and(|b| b.starts_with("DPoP ") || b.starts_with("dpop "))
    {
        notes.push("DPoP proof".to_owned());
    }
    match &bearer {
        Some(b) => notes.push(b.clone()),
        None if to_resource && !as_like && !path.starts_with("/.well-known/") => {
            notes.push("no token".to_owned());
        }
        None => {}
    }

    let index = recorder.with(|state| {
        let from = if has("response_type") || state.browser_next.contains(&location) {
            state.browser_next.retain(|l| l != &location);
            Sender::Browser
        } else {
            Sender::Client
        };
        let to = if from == Sender::Browser && has("state") && (has("code") || has("error")) {
            Target::Client
        } else if to_resource && (from == Sender::Browser || as_like) {
            // The authorization server's endpoints on the resource server's origin.
            Target::Origin(format!("{origin}{SAME_ORIGIN_AS}"))
        } else {
            Target::Origin(origin)
        };
        let text = format!("{} {}", req.method(), display_path(path));
        state.exchanges.push(Exchange {
            from,
            to,
            request: join(text, &notes),
            well_known: req.method() == reqwest::Method::GET && path.starts_with("/.well-known/"),
            response: None,
        });
        state.exchanges.len() - 1
    });
    Some(Pending {
        index,
        recorder,
        token_request,
    })
}

impl Pending {
    /// Notes the response to the request.
    pub(crate) fn response(&self, resp: &reqwest::Response) {
        let mut notes = Vec::new();
        let headers = resp.headers();
        if let Some(value) = headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
        {
            notes.push(challenge_note(value));
        }
        if headers.contains_key("dpop-nonce") {
            notes.push("DPoP-Nonce".to_owned());
        }
        let mut next = None;
        if resp.status().is_redirection()
            && let Some(location) = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            && let Ok(to) = resp.url().join(location)
        {
            notes.push(format!("Location {}", display_path(to.path())));
            next = Some(without_query(&to));
        }
        if let Some(ct) = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|_| resp.status().is_success())
        {
            let ct = ct.split(';').next().unwrap_or("").trim();
            if ct == "text/event-stream" || ct == "application/octet-stream" {
                notes.push(ct.to_owned());
            }
        }
        let text = join(resp.status().as_u16().to_string(), &notes);
        self.recorder.with(|state| {
            let browser = state
                .exchanges
                .get(self.index)
                .is_some_and(|e| e.from == Sender::Browser);
            if let (true, Some(next)) = (browser, next) {
                state.browser_next.push(next);
            }
            if let Some(e) = state.exchanges.get_mut(self.index) {
                e.response = Some(text);
            }
        });
    }

    /// Whether the response body is worth a look (a token response): see [`Self::tokens`].
    pub(crate) fn wants_body(&self, resp: &reqwest::Response) -> bool {
        self.token_request
            && resp.status().is_success()
            && resp
                .content_length()
                .is_some_and(|n| n <= crate::body_limit::limits::TOKEN.bytes as u64)
    }

    /// Adds the fingerprints of the tokens of a token response body.
    pub(crate) fn tokens(&self, body: &[u8]) {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let mut notes = Vec::new();
        for name in ["access_token", "refresh_token"] {
            if let Some(t) = json.get(name).and_then(|t| t.as_str()) {
                notes.push(format!("{name} {}", mcp_auth_proto::secret::fingerprint(t)));
            }
        }
        if let Some(scope) = json.get("scope").and_then(|s| s.as_str()) {
            notes.push(format!("scope={}", short(scope)));
        }
        if let Some(kind) = json
            .get("token_type")
            .and_then(|t| t.as_str())
            .filter(|t| t.eq_ignore_ascii_case("dpop"))
        {
            notes.push(format!("token_type={kind}"));
        }
        self.recorder.with(|state| {
            if let Some(e) = state.exchanges.get_mut(self.index)
                && let Some(r) = &mut e.response
            {
                *r = join(std::mem::take(r), &notes);
            }
        });
    }
}

/// Draws the client opening a real browser at the authorization URL.
pub(crate) fn browser_opened(url: &Url) {
    let Some(recorder) = current() else { return };
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let notes: Vec<String> = ["code_challenge_method", "resource", "scope"]
        .into_iter()
        .filter_map(|name| {
            query
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| format!("{name}={}", short(v)))
        })
        .collect();
    recorder.with(|state| {
        state.real_browser = true;
        let origin = url.origin().ascii_serialization();
        let to = if state.resource_origin.as_ref() == Some(&origin) {
            format!("{origin}{SAME_ORIGIN_AS}")
        } else {
            origin
        };
        state.exchanges.push(Exchange {
            from: Sender::Browser,
            to: Target::Origin(to),
            request: join(format!("GET {}", display_path(url.path())), &notes),
            well_known: false,
            response: Some("login and consent, then a redirect to the loopback".to_owned()),
        });
    });
}

/// Draws the browser delivering the callback to the loopback listener.
pub(crate) fn callback_received(with_iss: bool) {
    let Some(recorder) = current() else { return };
    recorder.with(|state| {
        state.exchanges.push(Exchange {
            from: Sender::Browser,
            to: Target::Client,
            request: format!(
                "GET /callback (code, state{})",
                if with_iss { ", iss" } else { "" }
            ),
            well_known: false,
            response: Some("200 state checked".to_owned()),
        });
    });
}

fn challenge_note(value: &str) -> String {
    let Ok(challenges) = mcp_auth_proto::challenge::parse_www_authenticate(value) else {
        return "WWW-Authenticate (unparsable)".to_owned();
    };
    let Some(c) = challenges.first() else {
        return "WWW-Authenticate".to_owned();
    };
    let mut parts = vec![format!("WWW-Authenticate {}", c.scheme)];
    if let Some(e) = c.param("error") {
        parts.push(format!("error={e}"));
    }
    if c.param("resource_metadata").is_some() {
        parts.push("resource_metadata".to_owned());
    }
    if let Some(s) = c.param("scope") {
        parts.push(format!("scope={}", short(s)));
    }
    parts.join(" ")
}

fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

/// A value cut to a readable length.
fn short(v: &str) -> String {
    const MAX: usize = 80;
    if v.chars().count() > MAX {
        format!("{}…", v.chars().take(MAX).collect::<String>())
    } else {
        v.to_owned()
    }
}

fn join(head: String, notes: &[String]) -> String {
    if notes.is_empty() {
        head
    } else {
        format!("{head} ({})", notes.join(", "))
    }
}

/// Mermaid message text: no line breaks; `;` and `#` written as entity codes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            c => out.push(c),
        }
    }
    out
}

struct Participant {
    id: String,
    label: String,
}

fn host_port(origin: &str) -> &str {
    let origin = origin.strip_suffix(SAME_ORIGIN_AS).unwrap_or(origin);
    origin.split_once("://").map_or(origin, |(_, rest)| rest)
}

fn render(resource_origin: &str, exchanges: &[Exchange], real_browser: bool) -> String {
    // Each origin other than the resource server's: metadata server if it only served
    // well-known documents, else authorization server.
    let mut origins: Vec<(String, bool)> = Vec::new();
    for e in exchanges {
        if let Target::Origin(o) = &e.to
            && o != resource_origin
        {
            match origins.iter_mut().find(|(x, _)| x == o) {
                Some((_, only_meta)) => *only_meta &= e.well_known,
                None => origins.push((o.clone(), e.well_known)),
            }
        }
    }
    let mut ids: Vec<(String, String)> = vec![(resource_origin.to_owned(), "RS".to_owned())];
    let mut metadata = Vec::new();
    let mut authorization = Vec::new();
    for (o, only_meta) in &origins {
        let (list, prefix, role) = if *only_meta {
            (&mut metadata, "M", "metadata server")
        } else {
            (&mut authorization, "AS", "authorization server")
        };
        let id = if list.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}{}", list.len() + 1)
        };
        list.push(Participant {
            id: id.clone(),
            label: format!("{role} ({})", host_port(o)),
        });
        ids.push((o.clone(), id));
    }
    let browser_used = exchanges.iter().any(|e| e.from == Sender::Browser);
    let mut out = String::from("sequenceDiagram\n    autonumber\n");
    let mut participants = vec![Participant {
        id: "C".into(),
        label: "mcp-client".into(),
    }];
    if browser_used {
        participants.push(Participant {
            id: "B".into(),
            label: if real_browser {
                "browser".into()
            } else {
                "browser (--headless: mcp-client follows the redirects)".into()
            },
        });
    }
    participants.push(Participant {
        id: "RS".into(),
        label: format!("resource server ({})", host_port(resource_origin)),
    });
    participants.extend(metadata);
    participants.extend(authorization);
    for p in &participants {
        out.push_str(&format!(
            "    participant {} as {}\n",
            p.id,
            escape(&p.label)
        ));
    }
    let id_of = |t: &Target| -> &str {
        match t {
            Target::Client => "C",
            Target::Origin(o) => ids
                .iter()
                .find(|(x, _)| x == o)
                .map_or("RS", |(_, id)| id.as_str()),
        }
    };
    for e in exchanges {
        let from = match e.from {
            Sender::Client => "C",
            Sender::Browser => "B",
        };
        let to = id_of(&e.to);
        out.push_str(&format!("    {from}->>{to}: {}\n", escape(&e.request)));
        match &e.response {
            Some(r) => out.push_str(&format!("    {to}-->>{from}: {}\n", escape(r))),
            None => out.push_str(&format!("    {to}--x{from}: no response\n")),
        }
    }
    out
}

/// One diagram from several commands' diagrams, each introduced by a note with its
/// title: participants declared once, in the usual order.
#[must_use]
pub fn combine(sections: &[(String, String)]) -> String {
    let order = ["C", "B", "RS", "M", "AS"];
    let mut participants: Vec<String> = Vec::new();
    for (_, diagram) in sections {
        for line in diagram
            .lines()
            .filter(|l| l.trim_start().starts_with("participant "))
        {
            let line = line.trim().to_owned();
            if !participants.contains(&line) {
                participants.push(line);
            }
        }
    }
    let rank = |line: &str| {
        let id = line.split_whitespace().nth(1).unwrap_or("");
        let base = id.trim_end_matches(|c: char| c.is_ascii_digit());
        order.iter().position(|o| *o == base).unwrap_or(order.len())
    };
    participants.sort_by_key(|l| rank(l));
    // One participant line per id: the first label wins (a headless run's browser).
    let mut seen = Vec::new();
    participants.retain(|l| {
        let id = l.split_whitespace().nth(1).unwrap_or("").to_owned();
        if seen.contains(&id) {
            false
        } else {
            seen.push(id);
            true
        }
    });
    let mut out = String::from("sequenceDiagram\n    autonumber\n");
    for p in &participants {
        out.push_str(&format!("    {p}\n"));
    }
    let last = participants
        .last()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("RS");
    for (title, diagram) in sections {
        out.push_str(&format!("    Note over C,{last}: {}\n", escape(title)));
        for line in diagram.lines().skip(1) {
            let t = line.trim();
            if t == "autonumber" || t.starts_with("participant ") || t.is_empty() {
                continue;
            }
            out.push_str(&format!("    {t}\n"));
        }
    }
    out
}

/// The diagram with what changes from run to run replaced: fingerprints (8 hex digits
/// after a token's name) by `‹fp›`. For comparing a fresh diagram with a stored copy.
#[must_use]
pub fn normalise(diagram: &str) -> String {
    let mut out = String::with_capacity(diagram.len());
    let markers = ["Bearer ", "DPoP ", "access_token ", "refresh_token "];
    let mut rest = diagram;
    'outer: while !rest.is_empty() {
        for m in markers {
            if let Some(after) = rest.strip_prefix(m)
                && after.len() >= 8
                && after.as_bytes()[..8].iter().all(u8::is_ascii_hexdigit)
            {
                out.push_str(m);
                out.push_str("‹fp›");
                rest = &after[8..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_replaces_only_fingerprints() {
        assert_eq!(
            normalise("POST /mcp (Bearer 0a1b2c3d)\nGET /x (Bearer zz)"),
            "POST /mcp (Bearer ‹fp›)\nGET /x (Bearer zz)"
        );
    }

    #[test]
    fn escape_keeps_mermaid_statements_whole() {
        assert_eq!(escape("a;b#c\nd"), "a#59;b#35;c d");
    }

    #[test]
    fn combine_declares_each_participant_once_in_order() {
        let a = "sequenceDiagram\n    autonumber\n    participant C as mcp-client\n    participant RS as resource server (h:1)\n    C->>RS: POST /mcp\n    RS-->>C: 200\n".to_owned();
        let b = "sequenceDiagram\n    autonumber\n    participant C as mcp-client\n    participant B as browser\n    participant RS as resource server (h:1)\n    participant AS as authorization server (h:2)\n    B->>AS: GET /auth\n    AS-->>B: 302\n".to_owned();
        let out = combine(&[("one".into(), a), ("two".into(), b)]);
        let participants: Vec<&str> = out
            .lines()
            .filter(|l| l.trim_start().starts_with("participant"))
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(participants, ["C", "B", "RS", "AS"]);
        assert!(out.contains("Note over C,AS: one\n    C->>RS: POST /mcp"));
        assert!(out.contains("Note over C,AS: two\n    B->>AS: GET /auth"));
    }

    #[tokio::test]
    async fn nothing_is_recorded_outside_record() {
        let http = reqwest::Client::new();
        let req = http.get("http://127.0.0.1:9/x").build().unwrap();
        assert!(request(&req).is_none());
        let recorder = Recorder::new();
        let seen = record(recorder.clone(), async { request(&req).is_some() }).await;
        assert!(seen);
        assert_eq!(recorder.len(), 1);
    }

    #[tokio::test]
    async fn roles_secrets_and_browser_chain() {
        let http = reqwest::Client::new();
        let recorder = Recorder::new();
        let secret_token = "eyJ.secret.token";
        let reqs = vec![
            http.post("http://localhost:3001/mcp")
                .header("content-type", "application/json")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#),
            http.get("http://localhost:5558/.well-known/oauth-authorization-server"),
            http.get("http://localhost:5556/dex/auth?response_type=code&code_challenge=SECRETCHALLENGE&code_challenge_method=S256&state=SECRETSTATE&resource=http%3A%2F%2Flocalhost%3A3001%2Fmcp"),
            http.get("http://127.0.0.1:40000/callback?code=SECRETCODE&state=SECRETSTATE"),
            http.post("http://localhost:5556/dex/token")
                .form(&[("grant_type", "authorization_code"), ("code", "SECRETCODE"), ("code_verifier", "SECRETVERIFIER")]),
            http.post("http://localhost:3001/mcp").bearer_auth(secret_token),
        ];
        record(recorder.clone(), async {
            for (i, r) in reqs.into_iter().enumerate() {
                let req = r.build().unwrap();
                let pending = request(&req).unwrap();
                if i == 2 {
                    // The authorization endpoint redirects the browser to the callback.
                    use reqwest::ResponseBuilderExt as _;
                    let resp = http::Response::builder()
                        .url(req.url().clone())
                        .status(302)
                        .header(
                            "location",
                            "http://127.0.0.1:40000/callback?code=SECRETCODE&state=SECRETSTATE",
                        )
                        .body("")
                        .unwrap();
                    pending.response(&reqwest::Response::from(resp));
                }
            }
        })
        .await;
        let out = recorder.render();
        for secret in ["SECRET", secret_token] {
            assert!(!out.contains(secret), "{secret} in\n{out}");
        }
        assert!(
            out.contains("participant M as metadata server (localhost:5558)"),
            "{out}"
        );
        assert!(
            out.contains("participant AS as authorization server (localhost:5556)"),
            "{out}"
        );
        assert!(
            out.contains("C->>RS: POST /mcp (initialize, no token)"),
            "{out}"
        );
        assert!(out.contains("B->>AS: GET /dex/auth (code_challenge_method=S256, resource=http://localhost:3001/mcp)"), "{out}");
        assert!(out.contains("AS-->>B: 302 (Location /callback)"), "{out}");
        assert!(out.contains("B->>C: GET /callback (code, state)"), "{out}");
        assert!(
            out.contains("C->>AS: POST /dex/token (grant_type=authorization_code, code_verifier)"),
            "{out}"
        );
        let fp = mcp_auth_proto::secret::fingerprint(secret_token);
        assert!(
            out.contains(&format!("C->>RS: POST /mcp (Bearer {fp})")),
            "{out}"
        );
    }

    #[tokio::test]
    async fn dpop_proof_nonce_and_bound_token_are_drawn() {
        use reqwest::ResponseBuilderExt as _;
        let http = reqwest::Client::new();
        let recorder = Recorder::new();
        let token = "eyJ.dpop.token";
        let proof = "eyJ.SECRETPROOF.sig";
        let reqs = vec![
            http.post("http://localhost:3001/mcp")
                .header("content-type", "application/json")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#),
            http.post("http://localhost:5556/token")
                .header("dpop", proof)
                .form(&[("grant_type", "client_credentials")]),
            http.post("http://localhost:3001/mcp")
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof),
        ];
        record(recorder.clone(), async {
            for (i, r) in reqs.into_iter().enumerate() {
                let req = r.build().unwrap();
                let pending = request(&req).unwrap();
                let resp = match i {
                    1 => http::Response::builder()
                        .status(400)
                        .header("dpop-nonce", "SECRETNONCE"),
                    2 => http::Response::builder()
                        .status(401)
                        .header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                        .header("dpop-nonce", "SECRETNONCE"),
                    _ => http::Response::builder().status(200),
                };
                let resp = resp.url(req.url().clone()).body("").unwrap();
                pending.response(&reqwest::Response::from(resp));
                if i == 1 {
                    pending.tokens(br#"{"access_token":"eyJ.dpop.token","token_type":"DPoP"}"#);
                }
            }
        })
        .await;
        let out = recorder.render();
        for secret in ["SECRET", token] {
            assert!(!out.contains(secret), "{secret} in\n{out}");
        }
        assert!(
            out.contains("POST /token (grant_type=client_credentials, DPoP proof)"),
            "{out}"
        );
        assert!(out.contains(": 400 (DPoP-Nonce"), "{out}");
        let fp = mcp_auth_proto::secret::fingerprint(token);
        assert!(out.contains("token_type=DPoP"), "{out}");
        assert!(
            out.contains(&format!("C->>RS: POST /mcp (DPoP {fp})")),
            "{out}"
        );
        assert!(
            out.contains("RS-->>C: 401 (WWW-Authenticate DPoP error=use_dpop_nonce, DPoP-Nonce)"),
            "{out}"
        );
    }
}
