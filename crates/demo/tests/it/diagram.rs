//! The flow diagram: the headless demo draws every exchange it made, and the README's
//! sequence diagram is that drawing. `UPDATE_README_DIAGRAM=1` rewrites the README's
//! copy from a fresh run instead of comparing.

use std::path::Path;
use std::process::{Command, Stdio};

use testkit::process::free_port;

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
const OPEN: &str = "```mermaid\n";

/// The README's diagram: the first mermaid block, and where it sits.
fn readme_diagram(readme: &str) -> (usize, usize) {
    let start = readme.find(OPEN).expect("a mermaid block in the README") + OPEN.len();
    let end = start + readme[start..].find("```").expect("the block ends");
    (start, end)
}

/// The diagram of a run on other ports, as it would be on the default ones, with
/// fingerprints masked.
fn as_on_default_ports(diagram: &str, ports: [u16; 3]) -> String {
    let mut d = diagram.to_owned();
    for (port, default) in ports.iter().zip([5556, 5558, 3001]) {
        d = d.replace(
            &format!("localhost:{port}"),
            &format!("localhost:{default}"),
        );
    }
    mcp_auth_client::diagram::normalise(&d)
}

#[test]
fn headless_demo_draws_the_readme_diagram() {
    let ports = [free_port(), free_port(), free_port()];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flow.mmd");
    let output = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args([
            "--headless",
            "--idp-port",
            &ports[0].to_string(),
            "--static-port",
            &ports[1].to_string(),
            "--rs-port",
            &ports[2].to_string(),
            "--diagram",
        ])
        .arg(&file)
        .env("RUST_LOG", "warn")
        .env_remove("MCP_CLIENT_CACHE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("every HTTP exchange: {}", file.display())),
        "the demo says where the diagram is: {stderr}"
    );
    let drawn = std::fs::read_to_string(&file).unwrap();
    // What the flow must show, whatever the README says.
    // The first MCP request (`initialize`, or `server/discover` when the client speaks
    // 2026-07-28) goes without a token.
    let first = drawn
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("C->>RS: POST /mcp ("))
        .unwrap_or_default();
    assert!(first.ends_with(", no token)"), "{first:?} in\n{drawn}");
    for line in [
        "RS-->>C: 401 (WWW-Authenticate Bearer resource_metadata)",
        "C->>RS: GET /.well-known/oauth-protected-resource/mcp",
        "C->>M: GET /.well-known/oauth-authorization-server",
        "B->>C: GET /callback (code, state)",
        "error=insufficient_scope",
    ] {
        assert!(drawn.contains(line), "{line:?} missing from\n{drawn}");
    }
    assert!(drawn.contains("code_challenge_method=S256"), "{drawn}");
    let fresh = as_on_default_ports(&drawn, ports);
    let readme = std::fs::read_to_string(README).unwrap();
    let (start, end) = readme_diagram(&readme);
    if std::env::var_os("UPDATE_README_DIAGRAM").is_some() {
        let updated = format!("{}{fresh}{}", &readme[..start], &readme[end..]);
        std::fs::write(Path::new(README), updated).unwrap();
        return;
    }
    assert_eq!(
        readme[start..end],
        fresh,
        "the README's diagram differs from the one the headless demo draws; \
         rerun with UPDATE_README_DIAGRAM=1 to update it"
    );
}
