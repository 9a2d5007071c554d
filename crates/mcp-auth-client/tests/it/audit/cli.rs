//! `mcp-client audit` as a user runs it: the built binary, its output, its exit code,
//! its JSON and its markdown report.

use std::process::Output;

use mcp_auth_client::audit::CheckId;
use serde_json::Value;
use testkit::client_side::Break;

use super::server;

async fn mcp_client(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-client"))
        .args(args)
        .env_remove("MCP_SERVER_URL")
        .output()
        .await
        .expect("mcp-client runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn json_for_machines_and_the_exit_code() {
    let good = server(None).await;
    let out = mcp_client(&["--json", "audit", &good.mcp_url()]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let json: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(json["schema"], "mcp-client-audit/1");
    assert_eq!(json["server"], good.mcp_url());
    assert_eq!(json["login"], false);
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), CheckId::ALL.len());
    for (check, id) in checks.iter().zip(CheckId::ALL) {
        assert_eq!(check["id"], id.id());
        for key in ["status", "section", "seen", "title"] {
            assert!(check[key].is_string(), "{check}");
        }
        assert!(check["fix"].is_null(), "{check}");
        assert!(
            ["pass", "not_applicable"].contains(&check["status"].as_str().unwrap()),
            "{check}"
        );
    }
    assert_eq!(json["summary"]["fail"], 0);

    // One failing check: exit code 1, and the line says what was seen and what to do.
    let broken = server(Some(Break::IssuerMismatch)).await;
    let out = mcp_client(&["--json", "audit", &broken.mcp_url()]).await;
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let issuer = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "as.issuer")
        .unwrap();
    assert_eq!(issuer["status"], "fail");
    assert!(
        issuer["seen"].as_str().unwrap().contains("/other"),
        "{issuer}"
    );
    assert!(issuer["fix"].is_string());
    assert_eq!(json["summary"]["fail"], 1);
}

#[tokio::test]
async fn text_lines_and_a_markdown_report() {
    let broken = server(Some(Break::NoS256)).await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("audit.md");
    let out = mcp_client(&[
        "audit",
        &broken.mcp_url(),
        "--report",
        report.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    // One line per check, each starting with its status and id.
    for id in CheckId::ALL {
        let lines = text
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(id.id()))
            .count();
        assert_eq!(lines, 1, "{}:\n{text}", id.id());
    }
    let line = text.lines().find(|l| l.contains("as.pkce-s256")).unwrap();
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains("RFC 8414 §2"), "{line}");
    assert!(
        text.contains("      seen: code_challenge_methods_supported: plain"),
        "{text}"
    );
    assert!(text.contains("      fix:  support and list S256"), "{text}");
    assert!(text.contains("1 fail"), "{text}");
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.starts_with("# MCP authorization audit of"), "{md}");
    assert!(md.contains("| FAIL | `as.pkce-s256` |"), "{md}");
    assert_eq!(
        md.lines()
            .filter(|l| l.starts_with("| ") && l.contains("` |"))
            .count(),
        CheckId::ALL.len(),
        "{md}"
    );
}

#[tokio::test]
async fn login_with_the_clients_own_flags_prints_no_token() {
    let server = server(None).await;
    let out = mcp_client(&[
        "--headless",
        "--no-cache",
        "-v",
        "audit",
        "--login",
        "--tool",
        "admin",
        &server.mcp_url(),
    ])
    .await;
    let (o, e) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{o}{e}");
    assert!(o.contains("logged in"), "{o}");
    assert!(o.contains("PASS  scope.insufficient"), "{o}");
    // The server's tokens are JWTs whose last part is `secret-access-<n>`; verbose mode
    // shows their claims, never the token itself.
    assert!(
        !o.contains("secret-access-") && !e.contains("secret-access-"),
        "{o}{e}"
    );
}

#[tokio::test]
async fn usage_errors_are_one_sentence() {
    // A port nothing listens on: bound, then let go.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/mcp", l.local_addr().unwrap())
    };
    let out = mcp_client(&["audit", &closed]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).starts_with("mcp-client: cannot reach"),
        "{}",
        stderr(&out)
    );
    let out = mcp_client(&["audit", "--tool", "x", &closed]).await;
    assert_eq!(out.status.code(), Some(2), "--tool needs --login");
    let out = mcp_client(&["audit", "ftp://example.com/mcp"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not an http or https URL"),
        "{}",
        stderr(&out)
    );
}
