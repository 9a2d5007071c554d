//! The browser path of the demo, with this test playing the person at the browser: the
//! client prints the authorization URL (`--no-browser`), the test opens it, fills in the
//! login form with the demo credentials, and follows the redirect back to the client's
//! loopback callback.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use tokio::io::AsyncBufReadExt as _;
use url::Url;

use testkit::process::free_port;

/// Plays the browser for one authorization URL; returns whether a login form was shown.
async fn visit(http: &reqwest::Client, url: &str) -> bool {
    let mut next = Url::parse(url).unwrap();
    let mut logged_in = false;
    for _ in 0..5 {
        let response = http.get(next.clone()).send().await.unwrap();
        if response.status() == StatusCode::OK && next.path().ends_with("/auth/local/login") {
            let html = response.text().await.unwrap();
            assert!(html.contains("name=\"password\""), "{html}");
            // The form posts back to its own URL (Dex's /auth/local/login?back=&state=).
            let posted = http
                .post(next.clone())
                .form(&[("login", "alice@example.com"), ("password", "password")])
                .send()
                .await
                .unwrap();
            assert_eq!(posted.status(), StatusCode::SEE_OTHER);
            logged_in = true;
            next = next
                .join(posted.headers()["location"].to_str().unwrap())
                .unwrap();
            continue;
        }
        if response.status().is_redirection() {
            next = next
                .join(response.headers()["location"].to_str().unwrap())
                .unwrap();
            continue;
        }
        // The client's callback page.
        assert!(next.path().ends_with("/callback"), "{next}");
        return logged_in;
    }
    panic!("too many redirects from {url}");
}

#[tokio::test]
async fn login_through_the_form_as_a_person_would() {
    let ports = [free_port(), free_port(), free_port()];
    let mut demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_demo"))
        .args([
            "--no-browser",
            "--idp-port",
            &ports[0].to_string(),
            "--static-port",
            &ports[1].to_string(),
            "--rs-port",
            &ports[2].to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let stdout_task = tokio::spawn(async move {
        let mut out = String::new();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            out.push_str(&line);
            out.push('\n');
        }
        out
    });
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(demo.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    let mut forms = 0;
    let mut visits = 0;
    let run = async {
        while let Ok(Some(line)) = lines.next_line().await {
            stderr.push_str(&line);
            stderr.push('\n');
            if line.contains("Log in as alice@example.com / password") {
                stderr.push_str("(credentials printed)\n");
            }
            let trimmed = line.trim();
            if trimmed.starts_with("http") && trimmed.contains("/dex/auth?") {
                visits += 1;
                if visit(&http, trimmed).await {
                    forms += 1;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the demo finished in time");
    let status = demo.wait().await.unwrap();
    let stdout = stdout_task.await.unwrap();
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("(credentials printed)"), "{stderr}");
    assert_eq!(
        forms, 1,
        "one login; later steps use the cached tokens\n{stderr}"
    );
    assert_eq!(visits, 2, "the login, then the refused step-up\n{stderr}");
    assert!(stdout.contains("= 42"), "{stdout}");
}
