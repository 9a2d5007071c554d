//! The device authorization grant (RFC 8628) from the `mcp-client` binary, against
//! dev-idp in Dex mode and the resource server set up as for Dex (audience
//! `mcp-resource-server` by cross-client scope), all on 127.0.0.1:0. The person is this
//! test: it reads the code the client prints, opens dev-idp's user-code page over HTTP,
//! enters the code and logs in through the real login form.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use testkit::dex::LocalDex;
use tokio::io::{AsyncBufReadExt, BufReader};
use url::Url;

use crate::support::ResourceServer;

struct Servers {
    mcp_url: String,
    issuer: String,
    _idp: LocalDex,
    _rs: ResourceServer,
}

async fn start() -> Servers {
    let idp = LocalDex::start(|config| config).await;
    let issuer = idp.issuer.clone();
    let rs = ResourceServer::start(|base| {
        resource_server::demo_config(base, &issuer)
            .with_audiences(["mcp-resource-server"])
            .with_scopes_supported(["openid", "audience:server:client_id:mcp-resource-server"])
            .with_required_scopes(Vec::<String>::new())
    })
    .await;
    Servers {
        mcp_url: rs.mcp_url(),
        issuer,
        _idp: idp,
        _rs: rs,
    }
}

/// The person: reads the code from the client's output and approves it in "a browser".
async fn approve(issuer: &str, user_code: &str) {
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{issuer}/device")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("user_code"));
    let verify = http
        .post(format!("{issuer}/device/auth/verify_code"))
        .form(&[("user_code", user_code)])
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), StatusCode::FOUND);
    let mut next = Url::parse(issuer)
        .unwrap()
        .join(verify.headers()["location"].to_str().unwrap())
        .unwrap();
    while !next.path().ends_with("/auth/local/login") {
        let r = http.get(next.clone()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "{next}");
        next = next
            .join(r.headers()["location"].to_str().unwrap())
            .unwrap();
    }
    let logged_in = http
        .post(next)
        .form(&[("login", "alice@example.com"), ("password", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
    let callback = logged_in.headers()["location"].to_str().unwrap().to_owned();
    let done = http.get(callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
}

/// Runs `mcp-client` with `args` and no display, approving the code it prints; returns
/// its exit status and everything it wrote to stderr.
async fn run_client(servers: &Servers, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-client"))
        .args([
            "--cache-dir",
            dir.path().to_str().unwrap(),
            "--client-id",
            "mcp-client",
        ])
        .args([
            "--allow-audience",
            &format!("{}=mcp-resource-server", servers.mcp_url),
        ])
        .args(args)
        .arg(&servers.mcp_url)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .env_remove("MCP_CLIENT_HEADLESS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let mut approved = false;
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            let code = line.trim();
            if !approved && code.len() == 9 && code.as_bytes()[4] == b'-' {
                approve(&servers.issuer, code).await;
                approved = true;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("client finished");
    let status = child.wait().await.unwrap();
    (status.success() && approved, seen)
}

#[tokio::test]
async fn device_flag_logs_in_with_a_user_code() {
    let servers = start().await;
    let (ok, out) = run_client(&servers, &["--device", "tools"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("device authorization grant (RFC 8628)"),
        "{out}"
    );
    assert!(out.contains("over SSH"), "{out}");
    assert!(out.contains(&format!("{}/device", servers.issuer)), "{out}");
    assert!(
        !out.contains("eyJ"),
        "a token leaked into the output:\n{out}"
    );
}

#[tokio::test]
async fn without_a_display_the_device_flow_is_chosen() {
    let servers = start().await;
    let (ok, out) = run_client(
        &servers,
        &["call", "calculator", "operation=add", "a=2", "b=3"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("no browser can be opened here"), "{out}");
    assert!(!out.contains("Open this URL in a browser"), "{out}");
}
