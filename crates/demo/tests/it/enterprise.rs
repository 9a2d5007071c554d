//! `demo --enterprise`: the enterprise identity provider and the MCP authorization
//! server as two processes, the user's ID token exchanged for an ID-JAG, the ID-JAG for
//! an access token, and real MCP calls with it; every port on 127.0.0.1:0.

use std::process::{Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn enterprise_run_goes_from_id_token_to_id_jag_to_mcp_calls() {
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let diagram = std::env::temp_dir().join(format!("demo-enterprise-{}.mmd", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args([
            "--enterprise",
            "--idp-port",
            &ports[0].to_string(),
            "--as-port",
            &ports[1].to_string(),
            "--rs-port",
            &ports[2].to_string(),
            "--static-port",
            &ports[3].to_string(),
            "--diagram",
            &diagram.display().to_string(),
        ])
        .env("RUST_LOG", "warn")
        .env_remove("MCP_CLIENT_CACHE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&diagram);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let idp = format!("http://localhost:{}/dex", ports[0]);
    let as_ = format!("http://localhost:{}/mcp-as", ports[1]);
    assert!(
        stderr.contains(&format!(
            "== Hop 0: alice@example.com signs in at the enterprise identity provider {idp}"
        )),
        "{stderr}"
    );
    // Hop 1 at the identity provider, hop 2 at the MCP authorization server.
    assert!(
        stderr.lines().any(|l| l.contains("hop 1 of 2")
            && l.contains(&format!("POST {idp}/token"))
            && l.contains(&format!("audience={as_}"))),
        "{stderr}"
    );
    assert!(stderr.contains("\"typ\":\"oauth-id-jag+jwt\""), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(&format!("POST {as_}/token"))
                && l.contains("grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer")),
        "{stderr}"
    );
    // No login page at the MCP authorization server: no authorization request there.
    assert!(!stderr.contains(&format!("{as_}/auth?")), "{stderr}");
    // Real MCP calls with the token, whose issuer is the MCP authorization server and
    // whose subject is the user the identity provider vouched for.
    assert!(stdout.contains("= 42"), "{stdout}");
    assert!(
        stdout.contains(&format!("\"issuer\": \"{as_}\"")),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"email\": \"alice@example.com\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("admin_status:"),
        "step-up through a new ID-JAG: {stdout}"
    );
    assert!(
        stderr.contains("every step behaved as expected"),
        "{stderr}"
    );
    // The ID token itself is never printed.
    let id_token_prefix = "eyJhbGciOiJSUzI1NiIsImtpZCI6";
    assert!(!stderr.contains(id_token_prefix) && !stdout.contains(id_token_prefix));
    for port in ports {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} released after the run"
        );
    }
}
