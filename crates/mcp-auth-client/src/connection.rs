//! [`McpConnection`]: a connection to one MCP server that gets itself authorized, where
//! transports, tokens and the OAuth flow meet.
//!
//! Every operation goes through one loop (`McpConnection::with_auth`):
//! - before sending, an access token about to expire is refreshed;
//! - 401: refresh once if there is a refresh token (the new refresh token replaces the old
//!   one when the AS rotates it), else (or if that fails) discover and authorize;
//! - 403 `insufficient_scope`: step-up, i.e. authorize again with the challenged scopes
//!   added to the current ones;
//! - at most [`ConnectionOptions::max_authorizations`] (3) authorizations in the whole
//!   session, whatever the number of operations: one budget for a run of `mcp-client`,
//!   so a server that refuses every tool cannot send the user to the authorization
//!   server again and again.
//!
//! The transport is Streamable HTTP, the legacy HTTP+SSE transport, or chosen by the
//! specification's backwards-compatibility probe: POST `initialize`; a 4xx (other than
//! 401/403, which are about authorization) means an older server, so GET the URL and
//! expect the `endpoint` event.
//!
//! # Security
//! A session refuses a plain `http://` server URL whose host is not a loopback address
//! before it sends anything (unless [`ConnectionOptions::allow_insecure_http`]): the bearer
//! token would cross the network readable by anyone on the path. With the legacy
//! transport's cookie, the session URL must be on the server's origin, the only place
//! the token goes.
//!
//! Every access token the session holds passed [`AudiencePolicy::check_token`] when it
//! arrived (from the cache, the code exchange or a refresh): a JWT for another resource
//! than this server, and not allowed for it, is never sent. Cross-client audience scopes
//! are requested only when allowed ([`AudiencePolicy::check_scopes`]).

use mcp_auth_proto::wellknown::{canonical_resource, is_loopback_or_https};
use mcp_auth_proto::{BearerChallenge, BearerError, Scopes};
use serde_json::{Value, json};
use url::Url;

use crate::audience::{AudiencePolicy, CROSS_CLIENT_SCOPE_PREFIX, TokenAudience};
use crate::authorize::{self, AuthorizeOptions};
use crate::cache::{Cache, TokenSet, now};
use crate::credential::Credential;
use crate::discovery::{self, Discovered};
use crate::dpop::DpopKey;
use crate::error::{ClientError, Result};
use crate::mcp::jsonrpc::{self, LATEST_PROTOCOL_VERSION, RpcError};
use crate::mcp::modern::{self, ParamHeader};
use crate::mcp::sse::{LegacySse, SseAuth};
use crate::mcp::streamable::Streamable;
use crate::mcp::{Outcome, RpcResult, is_use_dpop_nonce};
use crate::token;
use crate::trace::{Trace, describe_token};

const AREA: &str = "auth";

/// Which MCP transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportChoice {
    /// Streamable HTTP, falling back to legacy SSE when the server does not speak it.
    Auto,
    /// Streamable HTTP only.
    Streamable,
    /// The legacy HTTP+SSE transport only.
    Sse,
}

/// Options of a session.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// The MCP server URL.
    pub server_url: Url,
    /// Which transport.
    pub transport: TransportChoice,
    /// How the legacy SSE transport authenticates.
    pub sse_auth: SseAuth,
    /// The authorization flow's options.
    pub authorize: AuthorizeOptions,
    /// Scopes to ask for in addition to those the spec's selection gives.
    pub extra_scopes: Scopes,
    /// The token audiences allowed besides the server's own resource URL.
    pub audiences: AudiencePolicy,
    /// At most this many authorizations in the life of the session, all operations
    /// together.
    pub max_authorizations: u32,
    /// Allow a plain `http://` server URL whose host is not a loopback address (a lab
    /// network): tokens then cross the network in clear text.
    pub allow_insecure_http: bool,
    /// Refresh an access token that expires within this many seconds.
    pub refresh_margin_secs: i64,
}

impl ConnectionOptions {
    /// A session with `server_url`, authorized by `authorize`: either transport
    /// ([`TransportChoice::Auto`]), the Bearer token on legacy SSE too, no scopes beyond
    /// the spec's selection, no audience but the server's own, at most 3 authorizations,
    /// no plain http off loopback, and tokens refreshed 60 s before they expire.
    pub fn new(server_url: Url, authorize: AuthorizeOptions) -> Self {
        Self {
            server_url,
            transport: TransportChoice::Auto,
            sse_auth: SseAuth::Bearer,
            authorize,
            extra_scopes: Scopes::default(),
            audiences: AudiencePolicy::new(),
            max_authorizations: 3,
            allow_insecure_http: false,
            refresh_margin_secs: 60,
        }
    }
}

enum Transport {
    Streamable(Streamable),
    Sse(LegacySse),
}

enum Op<'a> {
    Message {
        msg: &'a Value,
        headers: &'a [(String, String)],
        id: Option<u64>,
    },
    OpenSse,
}

/// Which era of the protocol the server speaks (basic/versioning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    /// Not known yet.
    Unknown,
    /// Per-request metadata, no handshake (2026-07-28): the version of every request.
    Modern(&'static str),
    /// The `initialize` handshake (2025-11-25 and earlier).
    Legacy,
}

/// The methods whose result may be an `InputRequiredResult` (SEP-2322).
const MULTI_ROUND_METHODS: &[&str] = &["tools/call", "prompts/get", "resources/read"];

/// At most this many rounds of one multi-round request.
const MAX_INPUT_ROUNDS: usize = 8;

/// What the modern wire knows of a listed tool.
#[derive(Debug, Clone)]
enum ToolHeaders {
    /// Its `x-mcp-header` designations.
    Valid(Vec<ParamHeader>),
    /// Left out of the list: why.
    Invalid(String),
}

/// A connection to one MCP server with authorization handled: it discovers, authorizes,
/// refreshes and steps up as the server's answers require, over either transport. (Not
/// an MCP session: the server may or may not give it an `Mcp-Session-Id`.)
pub struct McpConnection {
    options: ConnectionOptions,
    trace: Trace,
    cache: Cache,
    oauth_http: reqwest::Client,
    mcp_http: reqwest::Client,
    server_key: String,
    tokens: Option<TokenSet>,
    /// The key the tokens are bound to, when they are DPoP-bound.
    dpop: Option<std::sync::Arc<DpopKey>>,
    discovered: Option<Discovered>,
    /// Whether the server offered the DPoP scheme in a challenge.
    resource_offers_dpop: bool,
    transport: Option<Transport>,
    next_id: u64,
    server_info: Option<Value>,
    authorizations_total: u32,
    era: Era,
    tools: std::collections::HashMap<String, ToolHeaders>,
}

impl std::fmt::Debug for McpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpConnection")
            .field("server", &self.server_key)
            .field("has_tokens", &self.tokens.is_some())
            .finish_non_exhaustive()
    }
}

impl McpConnection {
    /// A session (not yet connected), with the cached tokens of this server if any.
    pub fn new(options: ConnectionOptions, trace: Trace, cache: Cache) -> Result<Self> {
        check_transport_security(&options, &trace)?;
        let server_key = canonical_resource(&options.server_url)
            .map_err(|source| ClientError::server_url(&options.server_url, source))?;
        let mut tokens = cache.load_tokens(&server_key)?;
        if let Some(t) = &tokens
            && let Err(e) = options.audiences.check_token(
                &t.access_token,
                &options.server_url,
                &t.resource,
                &t.issuer,
            )
        {
            trace.step("cache", format!("not using the cached tokens: {e}"));
            tokens = None;
        }
        let mut dpop = None;
        if let Some(t) = &tokens
            && is_dpop(t)
        {
            match DpopKey::load(&cache, &t.issuer, &t.client.client_id)? {
                Some(k) => {
                    trace.step(
                        "cache",
                        format!(
                            "the cached access token is DPoP-bound; the key ({}, jkt {}) is in the cache too",
                            k.alg().as_str(),
                            k.thumbprint()
                        ),
                    );
                    dpop = Some(std::sync::Arc::new(k));
                }
                None => {
                    trace.step(
                        "cache",
                        "not using the cached tokens: they are DPoP-bound and their key is gone",
                    );
                    tokens = None;
                }
            }
        }
        if let Some(t) = &tokens {
            trace.step(
                "cache",
                format!(
                    "cached tokens for {server_key}: issuer {}, client {}, {}{}",
                    t.issuer,
                    t.client.client_id,
                    match t.expires_in() {
                        Some(s) if s > 0 => format!("access token expires in {s} s"),
                        Some(_) => "access token expired".to_owned(),
                        None => "expiry unknown".to_owned(),
                    },
                    if t.refresh_token.is_some() {
                        ", refresh token present"
                    } else {
                        ""
                    }
                ),
            );
        } else {
            trace.step("cache", format!("no cached tokens for {server_key}"));
        }
        Ok(Self {
            options,
            trace,
            cache,
            oauth_http: crate::http::oauth_client(),
            mcp_http: crate::http::mcp_client(),
            server_key,
            tokens,
            dpop,
            discovered: None,
            resource_offers_dpop: false,
            transport: None,
            next_id: 1,
            server_info: None,
            authorizations_total: 0,
            era: Era::Unknown,
            tools: std::collections::HashMap::new(),
        })
    }

    /// The tokens in use, if any.
    #[must_use]
    pub fn tokens(&self) -> Option<&TokenSet> {
        self.tokens.as_ref()
    }

    /// The server's `server/discover` (2026-07-28) or `initialize` result.
    #[must_use]
    pub fn server_info(&self) -> Option<&Value> {
        self.server_info.as_ref()
    }

    /// The protocol version in use, once connected: the 2026-07-28 wire's, or the one
    /// `initialize` negotiated.
    #[must_use]
    pub fn protocol_version(&self) -> Option<&str> {
        match self.era {
            Era::Modern(v) => Some(v),
            Era::Legacy => Some(
                self.server_info
                    .as_ref()
                    .and_then(|i| i.get("protocolVersion"))
                    .and_then(Value::as_str)
                    .unwrap_or(LATEST_PROTOCOL_VERSION),
            ),
            Era::Unknown => None,
        }
    }

    /// How many authorizations this session started in all (its budget is
    /// [`ConnectionOptions::max_authorizations`]).
    #[must_use]
    pub fn authorizations(&self) -> u32 {
        self.authorizations_total
    }

    /// Which transport is in use (`streamable-http` or `sse`), once connected.
    #[must_use]
    pub fn transport_name(&self) -> Option<&'static str> {
        match self.transport {
            Some(Transport::Streamable(_)) => Some("streamable-http"),
            Some(Transport::Sse(_)) => Some("sse"),
            None => None,
        }
    }

    /// Chooses the transport and the protocol era, and initializes the MCP session.
    ///
    /// On Streamable HTTP the client first speaks the 2026-07-28 wire (`server/discover`
    /// with per-request metadata). A modern answer, or a modern error such as
    /// `UnsupportedProtocolVersionError` (retried with a version from its list), keeps
    /// it there; anything else (a 4xx without a modern error, a JSON-RPC error of a
    /// legacy server) means a legacy server: `initialize`, and with
    /// [`TransportChoice::Auto`] the legacy HTTP+SSE transport after that.
    pub async fn connect(&mut self) -> Result<()> {
        let url = self.options.server_url.clone();
        if self.options.transport == TransportChoice::Sse {
            self.era = Era::Legacy;
            self.with_auth(Op::OpenSse).await?;
            return self.initialize().await;
        }
        self.transport = Some(Transport::Streamable(Streamable::new(
            self.mcp_http.clone(),
            url,
        )));
        if self.discover().await? {
            return Ok(());
        }
        self.era = Era::Legacy;
        if let Some(Transport::Streamable(s)) = &mut self.transport {
            s.set_modern(false);
        }
        if self.options.transport == TransportChoice::Streamable {
            return self.initialize().await;
        }
        match self.initialize().await {
            Err(ClientError::HttpStatus { status, detail, .. }) if (400..500).contains(&status) => {
                self.trace.step(
                    "mcp",
                    format!(
                        "POST initialize -> {status}: not Streamable HTTP; trying the legacy HTTP+SSE transport (GET, expecting an endpoint event)"
                    ),
                );
                self.transport = None;
                match self.with_auth(Op::OpenSse).await {
                    Err(ClientError::HttpStatus { status: get, .. }) => {
                        let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
                        return Err(ClientError::Transport(format!(
                            "{} speaks neither transport: POST initialize answered {status}{detail}, and GET answered {get} without an SSE stream",
                            self.options.server_url
                        )));
                    }
                    other => other?,
                };
                self.initialize().await
            }
            other => other,
        }
    }

    /// The 2026-07-28 probe: `server/discover` on the modern wire. True if the server
    /// speaks it (the session stays modern), false if it is a legacy server.
    async fn discover(&mut self) -> Result<bool> {
        let version = modern::MODERN_PROTOCOL_VERSIONS[0];
        self.era = Era::Modern(version);
        if let Some(Transport::Streamable(s)) = &mut self.transport {
            s.set_modern(true);
        }
        self.trace.step(
            "mcp",
            format!(
                "speaking protocol {version} (per-request metadata, no handshake): server/discover"
            ),
        );
        let legacy = |this: &mut Self, why: String| {
            this.trace.step(
                "mcp",
                format!("{why}: a server of an earlier revision; falling back to initialize"),
            );
            Ok(false)
        };
        match self.rpc("server/discover", None, &[]).await {
            Ok(Ok(result)) => {
                let name = result
                    .pointer("/_meta/io.modelcontextprotocol~1serverInfo/name")
                    .or_else(|| result.pointer("/serverInfo/name"))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned();
                let supported: Vec<String> = result
                    .get("supportedVersions")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                // A DiscoverResult must list its versions: a reply without them (a
                // server answering any method with an empty result) is no modern answer.
                if supported.is_empty() {
                    return legacy(
                        self,
                        "server/discover answered without supportedVersions".to_owned(),
                    );
                }
                if let Era::Modern(current) = self.era
                    && !supported.iter().any(|v| v == current)
                {
                    match modern::choose_modern(&supported) {
                        Some(v) => self.era = Era::Modern(v),
                        None => {
                            return legacy(
                                self,
                                format!("server/discover lists only {}", supported.join(", ")),
                            );
                        }
                    }
                }
                self.trace.step(
                    "mcp",
                    format!(
                        "server {name} speaks {}; protocol {} on every request",
                        supported.join(", "),
                        self.protocol_version().unwrap_or("?")
                    ),
                );
                self.server_info = Some(result);
                Ok(true)
            }
            Ok(Err(e)) if e.code == modern::UNSUPPORTED_PROTOCOL_VERSION => {
                let supported = modern::supported_versions(e.data.as_ref());
                if supported
                    .iter()
                    .any(|v| modern::LEGACY_PROTOCOL_VERSIONS.contains(&v.as_str()))
                {
                    return legacy(
                        self,
                        format!("the server supports {}", supported.join(", ")),
                    );
                }
                Err(ClientError::Transport(format!(
                    "{} supports no protocol version this client speaks ({}; this client: {}, {})",
                    self.options.server_url,
                    supported.join(", "),
                    modern::MODERN_PROTOCOL_VERSIONS.join(", "),
                    modern::LEGACY_PROTOCOL_VERSIONS.join(", ")
                )))
            }
            Ok(Err(e)) if modern::is_modern_error(e.code) => Err(ClientError::JsonRpc {
                method: "server/discover".to_owned(),
                code: e.code,
                message: e.message,
            }),
            Ok(Err(e)) => legacy(
                self,
                format!("server/discover -> error {}: {}", e.code, e.message),
            ),
            Err(ClientError::HttpStatus { status, .. }) if (400..500).contains(&status) => legacy(
                self,
                format!("server/discover -> HTTP {status} without a 2026-07-28 error"),
            ),
            Err(ClientError::InvalidResponse { reason, .. }) => legacy(
                self,
                format!("server/discover -> not a JSON-RPC reply ({reason})"),
            ),
            Err(ClientError::MalformedJson { source, .. }) => legacy(
                self,
                format!("server/discover -> not a JSON-RPC reply ({source})"),
            ),
            Err(e) => Err(e),
        }
    }

    async fn initialize(&mut self) -> Result<()> {
        let result = self
            .request("initialize", Some(jsonrpc::initialize_params()))
            .await?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(LATEST_PROTOCOL_VERSION)
            .to_owned();
        let name = result
            .pointer("/serverInfo/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        self.trace.step(
            "mcp",
            format!("initialized: server {name}, protocol version {version}"),
        );
        if let Some(Transport::Streamable(s)) = &mut self.transport {
            s.set_protocol_version(&version);
        }
        self.era = Era::Legacy;
        self.server_info = Some(result);
        self.notify("notifications/initialized", None).await
    }

    /// Ends the session: a Streamable HTTP session with an `Mcp-Session-Id` is deleted on
    /// the server (DELETE, as the transport specification asks); a legacy SSE stream is
    /// closed. Failures are traced, not returned: there is nothing left to do about them.
    pub async fn close(&mut self) {
        let token = self.credential();
        match self.transport.take() {
            Some(Transport::Streamable(mut s)) => s.terminate(&self.trace, token.as_ref()).await,
            Some(Transport::Sse(s)) => drop(s),
            None => {}
        }
    }

    /// Every tool of the server (following `nextCursor`). On the 2026-07-28 wire a tool
    /// whose `x-mcp-header` designations break the rules is left out (with a warning in
    /// the trace): one malformed definition does not hide the others.
    pub async fn list_tools(&mut self) -> Result<Vec<Value>> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = jsonrpc::list_tools_params(cursor.as_deref());
            let result = self.request("tools/list", params).await?;
            if let Some(list) = result.get("tools").and_then(Value::as_array) {
                tools.extend(list.iter().cloned());
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(c) if !c.is_empty() && tools.len() < 10_000 => cursor = Some(c.to_owned()),
                _ => break,
            }
        }
        if !matches!(self.era, Era::Modern(_)) {
            return Ok(tools);
        }
        self.tools.clear();
        let mut valid = Vec::with_capacity(tools.len());
        for tool in tools {
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            match modern::param_headers(&tool) {
                Ok(designations) => {
                    self.tools.insert(name, ToolHeaders::Valid(designations));
                    valid.push(tool);
                }
                Err(reason) => {
                    self.trace.step(
                        "mcp",
                        format!("warning: leaving out the tool {name:?}: {reason}"),
                    );
                    self.tools.insert(name, ToolHeaders::Invalid(reason));
                }
            }
        }
        Ok(valid)
    }

    /// Calls a tool; returns the `CallToolResult`. On the 2026-07-28 wire the
    /// arguments its `inputSchema` marks with `x-mcp-header` are mirrored into
    /// `Mcp-Param-*` headers (the tools are listed first if they were not), and a tool
    /// left out for a malformed definition is not called.
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value> {
        let params = jsonrpc::call_tool_params(name, &arguments)?;
        if !matches!(self.era, Era::Modern(_)) {
            return self.request("tools/call", Some(params)).await;
        }
        let mut relisted = false;
        if !self.tools.contains_key(name) {
            self.list_tools().await?;
            relisted = true;
        }
        loop {
            let headers = match self.tools.get(name) {
                Some(ToolHeaders::Valid(d)) => modern::call_param_headers(d, &arguments)
                    .map_err(|e| ClientError::Config(format!("tool {name}: {e}")))?,
                Some(ToolHeaders::Invalid(reason)) => {
                    return Err(ClientError::Config(format!(
                        "the server's definition of the tool {name} is invalid ({reason}): it is not called"
                    )));
                }
                None => Vec::new(),
            };
            match self
                .request_with("tools/call", Some(params.clone()), &headers)
                .await
            {
                // The server's idea of the tool's headers differs: list again, retry once.
                Err(ClientError::JsonRpc { code, .. })
                    if code == modern::HEADER_MISMATCH && !relisted =>
                {
                    self.trace.step(
                        "mcp",
                        "the server refused the call's headers (HeaderMismatch): listing the tools again",
                    );
                    relisted = true;
                    self.list_tools().await?;
                }
                other => return other,
            }
        }
    }

    /// Sends a request and returns its result.
    pub async fn request(&mut self, method: &str, params: Option<Value>) -> Result<Value> {
        self.request_with(method, params, &[]).await
    }

    /// Sends a request with extra headers and returns its result, going through the
    /// rounds of a multi-round request (SEP-2322) on the 2026-07-28 wire: an
    /// `input_required` result is answered and the request sent again (a new id, the
    /// answers in `inputResponses`, the server's `requestState` exactly as it came and
    /// only if it came).
    async fn request_with(
        &mut self,
        method: &str,
        params: Option<Value>,
        headers: &[(String, String)],
    ) -> Result<Value> {
        let multi_round =
            matches!(self.era, Era::Modern(_)) && MULTI_ROUND_METHODS.contains(&method);
        let mut round_params = params.clone();
        for round in 0..=MAX_INPUT_ROUNDS {
            let result = match self.rpc(method, round_params.clone(), headers).await? {
                Ok(v) => v,
                Err(e) => {
                    return Err(ClientError::JsonRpc {
                        method: method.to_owned(),
                        code: e.code,
                        message: e.message,
                    });
                }
            };
            // A result without resultType is complete.
            if !multi_round
                || result.get("resultType").and_then(Value::as_str) != Some("input_required")
            {
                return Ok(result);
            }
            if round == MAX_INPUT_ROUNDS {
                break;
            }
            let responses = self.answer_input_requests(method, result.get("inputRequests"))?;
            let mut next = params.clone().unwrap_or_else(|| json!({}));
            next["inputResponses"] = responses;
            if let Some(state) = result.get("requestState") {
                next["requestState"] = state.clone();
            }
            round_params = Some(next);
        }
        Err(ClientError::Transport(format!(
            "{method}: the server still asked for input after {MAX_INPUT_ROUNDS} rounds"
        )))
    }

    /// Answers the server's `inputRequests`. This client declares no capabilities, so
    /// a server should ask for nothing; if it does, an elicitation is declined, roots
    /// are none, and sampling is refused.
    fn answer_input_requests(&self, method: &str, requests: Option<&Value>) -> Result<Value> {
        let mut responses = serde_json::Map::new();
        if let Some(Value::Object(requests)) = requests {
            for (key, req) in requests {
                let kind = req.get("method").and_then(Value::as_str).unwrap_or("?");
                let answer = match kind {
                    "elicitation/create" => {
                        let message = req
                            .pointer("/params/message")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        self.trace.step(
                            "mcp",
                            format!("{method}: the server asks for input ({key}: {message:?}): declined, this client does not take input"),
                        );
                        json!({"action": "decline"})
                    }
                    "roots/list" => {
                        self.trace.step(
                            "mcp",
                            format!("{method}: the server asks for roots ({key}): none"),
                        );
                        json!({"roots": []})
                    }
                    other => {
                        return Err(ClientError::Transport(format!(
                            "{method}: the server asks for {other}, which this client does not offer"
                        )));
                    }
                };
                responses.insert(key.clone(), answer);
            }
        }
        Ok(Value::Object(responses))
    }

    /// One JSON-RPC request (a fresh id), on the wire of the session's era; an
    /// `UnsupportedProtocolVersionError` is retried once with a version from its list.
    async fn rpc(
        &mut self,
        method: &str,
        params: Option<Value>,
        extra: &[(String, String)],
    ) -> Result<std::result::Result<Value, RpcError>> {
        let mut version_retried = false;
        loop {
            let id = self.next_id;
            self.next_id += 1;
            let mut msg = jsonrpc::request(id, method, params.clone());
            let mut headers = Vec::new();
            if let Era::Modern(version) = self.era {
                modern::add_request_meta(&mut msg, version);
                headers.push(("MCP-Protocol-Version".to_owned(), version.to_owned()));
                headers.extend(modern::standard_headers(&msg));
                headers.extend(extra.iter().cloned());
            }
            let reply = self
                .with_auth(Op::Message {
                    msg: &msg,
                    headers: &headers,
                    id: Some(id),
                })
                .await?;
            match reply {
                Some(Err(e))
                    if e.code == modern::UNSUPPORTED_PROTOCOL_VERSION
                        && matches!(self.era, Era::Modern(_))
                        && !version_retried =>
                {
                    let supported = modern::supported_versions(e.data.as_ref());
                    let Some(v) = modern::choose_modern(&supported) else {
                        return Ok(Err(e));
                    };
                    self.trace.step(
                        "mcp",
                        format!(
                            "{method}: the server refused the protocol version; it supports {}: retrying with {v}",
                            supported.join(", ")
                        ),
                    );
                    self.era = Era::Modern(v);
                    version_retried = true;
                }
                Some(r) => return Ok(r),
                None => return Err(ClientError::Transport(format!("no response to {method}"))),
            }
        }
    }

    /// Sends a notification.
    pub async fn notify(&mut self, method: &str, params: Option<Value>) -> Result<()> {
        let msg = jsonrpc::notification(method, params);
        self.with_auth(Op::Message {
            msg: &msg,
            headers: &[],
            id: None,
        })
        .await?;
        Ok(())
    }

    /// How the current access token goes on a request: Bearer, or DPoP with its key.
    fn credential(&self) -> Option<Credential> {
        self.tokens.as_ref().map(|t| {
            Credential::new(
                t.access_token.clone(),
                if is_dpop(t) { self.dpop.clone() } else { None },
            )
        })
    }

    async fn attempt(&mut self, op: &Op<'_>) -> Result<Outcome<Option<RpcResult>>> {
        let credential = self.credential();
        let token = credential.as_ref();
        match op {
            Op::Message { msg, headers, id } => match &mut self.transport {
                Some(Transport::Streamable(s)) => {
                    s.send(&self.trace, msg, headers, *id, token).await
                }
                Some(Transport::Sse(s)) => s.send(&self.trace, msg, *id, token).await,
                None => Err(ClientError::Transport("not connected".to_owned())),
            },
            Op::OpenSse => {
                match LegacySse::open(
                    &self.mcp_http,
                    &self.trace,
                    &self.options.server_url,
                    &self.options.sse_auth,
                    token,
                )
                .await?
                {
                    Outcome::Ok(sse) => {
                        self.transport = Some(Transport::Sse(sse));
                        Ok(Outcome::Ok(None))
                    }
                    Outcome::Refused {
                        status,
                        challenge,
                        dpop_offered,
                    } => Ok(Outcome::Refused {
                        status,
                        challenge,
                        dpop_offered,
                    }),
                }
            }
        }
    }

    async fn with_auth(&mut self, op: Op<'_>) -> Result<Option<RpcResult>> {
        let mut refreshed = false;
        let mut nonce_retried = false;
        if self.tokens.as_ref().is_some_and(|t| {
            t.refresh_token.is_some() && t.expires_within(self.options.refresh_margin_secs)
        }) {
            self.trace
                .step(AREA, "the access token expires soon: refreshing it first");
            refreshed = self.try_refresh().await;
        }
        loop {
            let (status, challenge) = match self.attempt(&op).await? {
                Outcome::Ok(v) => return Ok(v),
                Outcome::Refused {
                    status,
                    challenge,
                    dpop_offered,
                } => {
                    self.resource_offers_dpop |= dpop_offered;
                    (status, challenge)
                }
            };
            // RFC 9449 §9: the resource asks for a nonce (it sent one in DPoP-Nonce, which
            // the credential kept): one retry with a new proof carrying it.
            if status == 401
                && !nonce_retried
                && is_use_dpop_nonce(challenge.as_ref())
                && self.tokens.as_ref().is_some_and(is_dpop)
            {
                nonce_retried = true;
                self.trace.step(
                    AREA,
                    "the server asks for a DPoP nonce (use_dpop_nonce): one retry with a new proof carrying it",
                );
                continue;
            }
            let insufficient_scope = status == 403
                && challenge
                    .as_ref()
                    .is_some_and(|c| c.error == Some(BearerError::InsufficientScope));
            if status == 403 && !insufficient_scope {
                return Err(ClientError::Forbidden(
                    challenge.and_then(|c| c.error_description),
                ));
            }
            if status == 401
                && !refreshed
                && self
                    .tokens
                    .as_ref()
                    .is_some_and(|t| t.refresh_token.is_some())
            {
                refreshed = true;
                self.trace.step(
                    AREA,
                    "the access token was refused: trying the refresh token",
                );
                if self.try_refresh().await {
                    self.renew_transport_credentials().await?;
                    continue;
                }
            }
            // One budget for the whole session: every operation draws on it.
            if self.authorizations_total >= self.options.max_authorizations {
                let (scope, description) = challenge
                    .map(|c| (c.scope, c.error_description))
                    .unwrap_or_default();
                return Err(ClientError::TooManyAuthorizations {
                    attempts: self.authorizations_total,
                    status,
                    scope,
                    description,
                });
            }
            self.authorizations_total += 1;
            let n = self.authorizations_total;
            self.trace.step(
                AREA,
                if insufficient_scope {
                    format!(
                        "step-up: the token is valid but lacks a scope this call needs; asking for a new token with that scope ({})",
                        if n == 1 {
                            format!(
                                "the first login of this mcp-client run, which allows {}, --max-authorizations",
                                self.options.max_authorizations
                            )
                        } else {
                            format!(
                                "login {n} of at most {} in this run, --max-authorizations",
                                self.options.max_authorizations
                            )
                        }
                    )
                } else {
                    format!(
                        "authorization needed (login {n} of at most {} in this run, --max-authorizations)",
                        self.options.max_authorizations
                    )
                },
            );
            if !insufficient_scope {
                // The token was refused outright: the server's PRM may name another
                // authorization server now (SEP-2352), so discover again; credentials
                // stay bound to the issuer that gave them.
                self.discovered = None;
            }
            self.authorize(challenge.as_ref()).await?;
            refreshed = true;
            self.renew_transport_credentials().await?;
        }
    }

    async fn renew_transport_credentials(&mut self) -> Result<()> {
        let credential = self.credential();
        if let (Some(Transport::Sse(s)), Some(t)) = (&mut self.transport, &credential)
            && let Outcome::Refused { status, .. } = s.renew_credentials(&self.trace, t).await?
        {
            return Err(ClientError::HttpStatus {
                url: self.options.server_url.to_string(),
                status,
                detail: Some("the new token was refused for a session cookie".to_owned()),
            });
        }
        Ok(())
    }

    async fn authorize(&mut self, challenge: Option<&BearerChallenge>) -> Result<()> {
        let mut discovered = match &self.discovered {
            Some(d) => d.clone(),
            None => {
                let d = discovery::discover(
                    &self.oauth_http,
                    &self.trace,
                    &self.options.server_url,
                    challenge,
                )
                .await?;
                self.discovered = Some(d.clone());
                d
            }
        };
        let current: Option<Scopes> = self
            .tokens
            .as_ref()
            .filter(|t| t.issuer == discovered.authorization_server.issuer)
            .and_then(|t| t.scope.as_deref())
            .map(Scopes::parse);
        let scopes = authorize::select_scopes(
            &self.trace,
            challenge,
            &discovered,
            current.as_ref(),
            &self.options.extra_scopes,
        );
        self.options
            .audiences
            .check_scopes(&scopes, &self.options.server_url)?;
        for audience in scopes
            .iter()
            .filter_map(|s| s.strip_prefix(CROSS_CLIENT_SCOPE_PREFIX))
        {
            self.trace.step(
                "authorize",
                format!(
                    "the scope asks for a token for the client {audience}, an audience allowed for this server (--allow-audience)"
                ),
            );
        }
        discovered.resource_offers_dpop |= self.resource_offers_dpop;
        let authorized = crate::grants::obtain(
            &self.oauth_http,
            &self.trace,
            &self.cache,
            &discovered,
            &self.options.authorize,
            &scopes,
        )
        .await?;
        let t = authorized.tokens;
        self.dpop = authorized.dpop.clone();
        let set = TokenSet {
            server: self.server_key.clone(),
            resource: discovered.resource.clone(),
            issuer: discovered.authorization_server.issuer.clone(),
            token_endpoint: discovered.authorization_server.token_endpoint.to_string(),
            client: authorized.client.clone(),
            access_token: t.access_token,
            token_type: t.token_type,
            refresh_token: t.refresh_token,
            scope: t
                .scope
                .or_else(|| authorized.requested_scope.map(|s| s.to_string())),
            expires_at: t.expires_in.map(|s| now() + s),
            obtained_at: now(),
        };
        if authorized.client.source == crate::registration::ClientSource::Dynamic {
            self.cache
                .save_registration(&crate::cache::StoredRegistration {
                    issuer: set.issuer.clone(),
                    client: authorized.client,
                    registered_at: now(),
                })?;
        }
        self.store(set)
    }

    /// Refreshes the access token; false (with the reason traced) if that is not possible.
    async fn try_refresh(&mut self) -> bool {
        let Some(current) = self.tokens.clone() else {
            return false;
        };
        let Some(refresh_token) = current.refresh_token.clone() else {
            return false;
        };
        let Ok(endpoint) = Url::parse(&current.token_endpoint) else {
            return false;
        };
        let dpop = if is_dpop(&current) {
            self.dpop.clone()
        } else {
            None
        };
        let endpoint = token::Endpoint {
            url: &endpoint,
            issuer: &current.issuer,
            dpop: dpop.as_deref(),
            client_key: self.options.authorize.client.client_key.as_deref(),
        };
        match token::refresh(
            &self.oauth_http,
            &self.trace,
            &endpoint,
            &current.client,
            &refresh_token,
            &current.resource,
        )
        .await
        {
            Ok(t) => {
                let rotated = t.refresh_token.is_some();
                let set = TokenSet {
                    access_token: t.access_token,
                    token_type: t.token_type,
                    refresh_token: t.refresh_token.or(current.refresh_token),
                    scope: t.scope.or(current.scope),
                    expires_at: t.expires_in.map(|s| now() + s),
                    obtained_at: now(),
                    ..current
                };
                self.trace.step(
                    AREA,
                    if rotated {
                        "refreshed; the authorization server rotated the refresh token, the new one is kept"
                    } else {
                        "refreshed; the refresh token stays the same"
                    },
                );
                match self.store(set) {
                    Ok(()) => true,
                    Err(e @ ClientError::TokenAudience { .. }) => {
                        self.trace
                            .step(AREA, format!("the refreshed token is not used: {e}"));
                        false
                    }
                    Err(e) => {
                        self.trace
                            .step(AREA, format!("could not cache the refreshed tokens: {e}"));
                        true
                    }
                }
            }
            Err(e) => {
                self.trace.step(
                    AREA,
                    format!("refresh failed ({e}): a new authorization is needed"),
                );
                false
            }
        }
    }

    /// Takes new tokens into use: their audience is checked first (a token refused there
    /// is neither used nor cached), then they are cached.
    fn store(&mut self, set: TokenSet) -> Result<()> {
        let audience = self.options.audiences.check_token(
            &set.access_token,
            &self.options.server_url,
            &set.resource,
            &set.issuer,
        )?;
        self.trace.step(
            AREA,
            match audience {
                TokenAudience::Resource(aud) => {
                    format!("the access token is for {aud}, this server")
                }
                TokenAudience::Allowed(aud) => format!(
                    "the access token is for {aud}, an audience allowed for this server (--allow-audience)"
                ),
                TokenAudience::Opaque => {
                    "the access token is opaque: its audience is for the servers to check"
                        .to_owned()
                }
            },
        );
        if let Some(iss) = crate::trace::decode_jwt(set.access_token.secret())
            .and_then(|(_, claims)| {
                claims
                    .get("iss")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .filter(|iss| iss.trim_end_matches('/') != set.issuer.trim_end_matches('/'))
        {
            self.trace.step(
                AREA,
                format!(
                    "the token's iss is {iss}, not {}, the issuer of the metadata the client used: that metadata describes {iss}'s endpoints under its own name (a static metadata document served next to Dex); the resource server checks iss against the issuer it trusts",
                    set.issuer
                ),
            );
        }
        let saved = self.cache.save_tokens(&set);
        let description = describe_token(set.access_token.secret());
        let server = set.server.clone();
        self.tokens = Some(set);
        self.trace.step(
            "cache",
            format!(
                "access token {description} for {server} {}",
                match saved? {
                    Some(p) => format!("saved to {}", p.display()),
                    None => "kept in memory only (cache disabled)".to_owned(),
                }
            ),
        );
        Ok(())
    }
}

/// Refuses, before any request, a server URL that would carry the token in clear text
/// over a network, and a cookie session URL on another origin than the server.
fn check_transport_security(options: &ConnectionOptions, trace: &Trace) -> Result<()> {
    let url = &options.server_url;
    if !is_loopback_or_https(url) {
        if !options.allow_insecure_http {
            return Err(ClientError::InsecureServer {
                url: url.to_string(),
            });
        }
        trace.step(
            AREA,
            format!(
                "{url} is plain http off loopback (allowed by --allow-insecure-http): the token crosses the network in clear text"
            ),
        );
    }
    if let SseAuth::Cookie { session_url } = &options.sse_auth
        && session_url.origin() != url.origin()
    {
        return Err(ClientError::Config(format!(
            "the session URL {session_url} is not on the origin of {url}: the bearer token is sent there, so it must be the MCP server's own"
        )));
    }
    Ok(())
}

/// Whether the tokens are DPoP-bound (`token_type: DPoP`).
fn is_dpop(t: &TokenSet) -> bool {
    t.token_type.eq_ignore_ascii_case("dpop")
}
