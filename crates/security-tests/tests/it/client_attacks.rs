//! The client under attack: `mcp-client`, run as a child process with its real exit code
//! and output, against a malicious MCP server and a malicious authorization server on
//! 127.0.0.1, next to real ones (dev-idp in Dex mode, the project's resource server).
//! Each case is an attack that worked before the client's defences:
//!
//! - confused deputy: a server names the user's Dex and asks for a token for the real
//!   resource server (Dex's cross-client audience scope), or for any Dex token;
//! - a pre-registered client secret sent to the authorization server a server names;
//! - a bearer token sent over plain http off loopback;
//! - one junk request to the loopback callback ending the login;
//! - an endless `initialize` reply filling the client's memory;
//! - `check` letting a server trigger authorizations for every tool it lists.
//!
//! Every case also checks that no token or secret appears in the client's output.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use axum::http::header;
use dev_idp::Features;
use testkit::client_side::{Break, ClientSideConfig, ClientSideServer};
use testkit::dex::LocalDex;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpListener,
};

use crate::client_faults::{CHILD_REPORT_PEAK_RSS, Run, client_command, run, run_client};
use crate::support::{TestKey, rs_config, start_rs};

const MIB: usize = 1024 * 1024;
const SECRET: &str = "s3cr3t-pre-registered-client-secret";

// ---------------------------------------------------------------------------
// Servers

/// An authorization server (the kit's) that approves at once, takes a client secret by
/// HTTP Basic, and issues RS256 JWTs for the `resource` asked for, which the project's
/// resource server verifies.
async fn start_signing_as() -> ClientSideServer {
    ClientSideServer::start(ClientSideConfig {
        signing_key: Some(TestKey::rsa1()),
        token_auth_methods: vec!["client_secret_basic".into(), "none".into()],
        refresh_tokens: false,
        ..ClientSideConfig::default()
    })
    .await
}

/// The project's resource server, trusting `as_`'s tokens.
async fn start_real_rs(as_: &ClientSideServer) -> String {
    let issuer = as_.issuer();
    let url = start_rs(|url| rs_config(url, &issuer).with_jwks_uri(format!("{issuer}/jwks"))).await;
    format!("{url}/mcp")
}

/// A malicious MCP server (the kit's) whose metadata names `authorization_server` and
/// whose challenge asks for `scopes`, recording every bearer token it is sent.
async fn start_evil(authorization_server: &str, scopes: &[&str]) -> ClientSideServer {
    ClientSideServer::start(ClientSideConfig {
        prm_authorization_server: Some(authorization_server.to_owned()),
        prm_scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        required_scope: Some(scopes.join(" ")),
        ..ClientSideConfig::default()
    })
    .await
}

/// A malicious MCP server with its own authorization server, doing `broken` once it has
/// a token; its tools are `echo` and `tool-1` .. `tool-20`, with no refresh tokens.
async fn start_evil_with_its_as(broken: Break) -> ClientSideServer {
    ClientSideServer::start(ClientSideConfig {
        extra_tools: 20,
        admin_scope: None,
        refresh_tokens: false,
        ..ClientSideConfig::default().with(broken)
    })
    .await
}

/// The lines of `server`'s log that an authorization server writes.
fn as_requests(server: &ClientSideServer) -> Vec<String> {
    server
        .log()
        .into_iter()
        .filter(|l| {
            l.starts_with("authorize ") || l.starts_with("token ") || l.starts_with("register ")
        })
        .collect()
}

/// The resource server as the README runs it in front of Dex.
async fn start_dex_rs(issuer: &str) -> String {
    let issuer = issuer.to_owned();
    let url = start_rs(|url| {
        rs_config(url, &issuer)
            .with_jwks_uri(format!("{issuer}/keys"))
            .with_audiences(["mcp-resource-server"])
            .with_scopes_supported(["openid", "audience:server:client_id:mcp-resource-server"])
            .with_required_scopes(Vec::<String>::new())
            .with_tool_scope("admin_status", ["mcp:admin"])
    })
    .await;
    format!("{url}/mcp")
}

// ---------------------------------------------------------------------------
// Running the client

/// The client's token cache inside a temporary directory (removed on drop).
fn cache_in(dir: &tempfile::TempDir) -> String {
    dir.path().join("cache").display().to_string()
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// Asserts the run failed with one sentence containing every one of `needles`.
fn assert_refused(run: &Run, needles: &[&str]) {
    assert_eq!(run.code, Some(1), "{}", run.output());
    let error = run
        .error()
        .unwrap_or_else(|| panic!("a one-line error: {}", run.output()));
    for needle in needles {
        assert!(error.contains(needle), "{needle:?} not in: {error}");
    }
}

fn assert_no_token_in(run: &Run, tokens: &[String]) {
    let output = run.output();
    for t in tokens {
        let t = t.trim_start_matches("Bearer ");
        assert!(!output.contains(t), "a token is in the client's output");
        if let Some(signature) = t.rsplit('.').next() {
            assert!(
                !output.contains(signature),
                "a token signature is in the output"
            );
        }
    }
    assert!(
        !output.contains(SECRET),
        "the client secret is in the output"
    );
}

// ---------------------------------------------------------------------------
// Item: the confused deputy with Dex

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confused_deputy_with_dex_gets_no_token() {
    // dev-idp in Dex mode from dex-config.yaml, logging its user in without the form.
    let idp = LocalDex::auto_login(Features::default()).await;
    let dex = idp.issuer.clone();
    let real = start_dex_rs(&dex).await;
    let real_origin = real.trim_end_matches("/mcp").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(&dir);
    let client = |url: &str| {
        args(&[
            "--headless",
            "--client-id",
            "mcp-client",
            "--client-issuer",
            &dex,
            "--allow-audience",
            &format!("{real_origin}=mcp-resource-server"),
            "--cache-dir",
            &cache,
            "tools",
            url,
        ])
    };

    // The user's own setup works: Dex's token for mcp-resource-server goes to the real
    // resource server, the audience the user allowed for it.
    let ok = run_client(&client(&real)).await;
    assert_eq!(ok.code, Some(0), "{}", ok.output());
    assert!(ok.stdout.contains("calculator"), "{}", ok.stdout);

    // A malicious server names the same Dex and asks for the real server's audience.
    let evil = start_evil(
        &dex,
        &["openid", "audience:server:client_id:mcp-resource-server"],
    )
    .await;
    let run = run_client(&client(&evil.mcp_url())).await;
    assert_refused(
        &run,
        &[
            "audience:server:client_id:mcp-resource-server",
            "--allow-audience",
        ],
    );
    assert!(
        evil.presented().is_empty(),
        "the malicious server got a token"
    );
    assert!(
        !run.stderr.contains("[authorize] authorization request"),
        "nothing was requested from Dex: {}",
        run.stderr
    );

    // Asking for plain `openid`: Dex's token is then for the client itself (aud
    // mcp-client), usable at any server that checks aud against the client id. The
    // client obtains it, sees it is not for the server, and does not send it.
    let evil = start_evil(&dex, &["openid"]).await;
    let run = run_client(&client(&evil.mcp_url())).await;
    assert_refused(&run, &["mcp-client", "is not sent", &evil.mcp_url()]);
    assert!(
        evil.presented().is_empty(),
        "the malicious server got a token"
    );
    assert_no_token_in(&run, &[]);
}

// ---------------------------------------------------------------------------
// Item: a pre-registered secret for another authorization server

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_never_reaches_another_authorization_server() {
    let good = start_signing_as().await;
    let real = start_real_rs(&good).await;
    // The malicious server names its own authorization server.
    let evil = start_signing_as().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_in(&dir);
    let client = |url: &str, issuer: Option<&str>| {
        let mut a = args(&[
            "--headless",
            "--client-id",
            "mcp-client",
            "--client-secret",
            SECRET,
            "--cache-dir",
            &cache,
        ]);
        if let Some(i) = issuer {
            a.extend(args(&["--client-issuer", i]));
        }
        a.extend(args(&["tools", url]));
        a
    };

    // Bound by --client-issuer: refused, naming both issuers; the malicious
    // authorization server sees neither an authorization nor a token request.
    let run = run_client(&client(&evil.mcp_url(), Some(&good.issuer()))).await;
    assert_refused(&run, &[&good.issuer(), &evil.issuer(), "not sent"]);
    assert!(as_requests(&evil).is_empty(), "{:?}", evil.log());
    assert_no_token_in(&run, &[]);

    // Without --client-issuer: the first use binds (to the real one, here) ...
    let ok = run_client(&client(&real, None)).await;
    assert_eq!(ok.code, Some(0), "{}", ok.output());
    assert!(ok.stderr.contains("first use of the client id mcp-client"));
    assert_eq!(good.client_auth(), ["Basic"], "{:?}", good.log());
    // ... and a later run against the malicious server is refused the same way.
    let run = run_client(&client(&evil.mcp_url(), None)).await;
    assert_refused(&run, &[&good.issuer(), &evil.issuer(), "first use"]);
    assert!(as_requests(&evil).is_empty(), "{:?}", evil.log());
    assert!(evil.presented().is_empty());
    assert_no_token_in(&run, &[]);
}

// ---------------------------------------------------------------------------
// Item: plain http off loopback

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bearer_token_over_plain_http_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (url, listener) = match testkit::http::non_loopback_ipv4() {
        Some(ip) => {
            let l = TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
                .await
                .unwrap();
            let url = format!("http://{ip}:{}/mcp", l.local_addr().unwrap().port());
            (url, Some(l))
        }
        None => ("http://mcp.example.test/mcp".to_owned(), None),
    };
    let run = run_client(&args(&[
        "--headless",
        "--cache-dir",
        &cache_in(&dir),
        "tools",
        &url,
    ]))
    .await;
    assert_refused(&run, &[&url, "plain http", "--allow-insecure-http"]);
    if let Some(l) = listener {
        let accepted = tokio::time::timeout(Duration::from_millis(300), l.accept()).await;
        assert!(accepted.is_err(), "the client connected to {url}");
    }
}

// ---------------------------------------------------------------------------
// Item: junk at the loopback callback

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_at_the_callback_does_not_end_the_login() {
    let as_ = start_signing_as().await;
    let real = start_real_rs(&as_).await;
    let dir = tempfile::tempdir().unwrap();
    // Browser mode without a browser: the client prints the URL and waits.
    let mut command = client_command(&args(&[
        "--no-browser",
        "--client-id",
        "mcp-client",
        "--auth-timeout",
        "30",
        "--cache-dir",
        &cache_in(&dir),
        "tools",
        &real,
    ]));
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let authorization_url = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), stderr.next_line())
            .await
            .expect("the client prints the authorization URL")
            .unwrap()
            .expect("the client is still running");
        seen.push_str(&line);
        seen.push('\n');
        if let Some(u) = line
            .trim()
            .strip_prefix(&format!("{}/authorize?", as_.issuer()))
        {
            break url::Url::parse(&format!("{}/authorize?{u}", as_.issuer())).unwrap();
        }
    };
    let redirect_uri = authorization_url
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Another local process sends junk first.
    for junk in [
        "?code=junk&state=junk",
        "?error=access_denied&state=junk",
        "",
    ] {
        let status = http
            .get(format!("{redirect_uri}{junk}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 400, "{junk}");
    }
    // Then the person logs in: the authorization server redirects to the callback.
    let to_callback = http.get(authorization_url).send().await.unwrap();
    assert!(to_callback.status().is_redirection());
    let location = to_callback.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let page = http.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);

    let stdout_pipe = child.stdout.take().unwrap();
    let rest = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    });
    let mut stdout = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut BufReader::new(stdout_pipe), &mut stdout)
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    seen.push_str(&rest.await.unwrap());
    assert!(status.success(), "{seen}");
    assert!(stdout.contains("calculator"), "{stdout}");
    assert!(seen.contains("answered 400 to 3 request(s)"), "{seen}");
}

// ---------------------------------------------------------------------------
// Item: an endless reply

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_initialize_reply_is_cut_at_the_limit() {
    let evil = start_evil_with_its_as(Break::EndlessInitialize).await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = client_command(&args(&[
        "--headless",
        "--client-id",
        "mcp-client",
        "--cache-dir",
        &cache_in(&dir),
        "tools",
        &evil.mcp_url(),
    ]));
    command.env(CHILD_REPORT_PEAK_RSS, "1");
    let run = run(command).await;
    assert_refused(&run, &[&evil.mcp_url(), "16 MiB"]);
    let peak_kib: usize = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak RSS "))
        .and_then(|v| v.trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("a peak RSS line: {}", run.stderr));
    let sent = evil.streamed();
    eprintln!(
        "endless initialize: the server handed {} MiB to the connection; the client's peak RSS was {} MiB",
        sent / MIB,
        peak_kib / 1024
    );
    // The client process (this test binary, its runtime and the 16 MiB it read) stays
    // far below what a client without limits reaches (1.5 GB for a 1.5 GB reply).
    assert!(peak_kib < 160 * 1024, "peak RSS {peak_kib} KiB");
    assert!(sent < 16 * MIB + 32 * MIB, "{sent} bytes were sent");
}

// ---------------------------------------------------------------------------
// Item: one authorization budget per run

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_triggers_at_most_three_authorizations() {
    let evil = start_evil_with_its_as(Break::ReauthorizePerTool).await;
    let dir = tempfile::tempdir().unwrap();
    let run = run_client(&args(&[
        "--headless",
        "--client-id",
        "mcp-client",
        "--cache-dir",
        &cache_in(&dir),
        "check",
        &evil.mcp_url(),
    ]))
    .await;
    assert_refused(&run, &["gave up after 3 authorizations"]);
    assert_eq!(evil.count("authorize "), 3, "{:?}", evil.log());
    assert_no_token_in(&run, &evil.presented());
}
