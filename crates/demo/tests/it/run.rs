//! The `demo` binary itself: the whole headless flow as separate processes, a busy port,
//! and Ctrl-C stopping every child.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::process::free_port;

fn demo(extra: &[&str], ports: [u16; 3]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_demo"));
    command
        .args([
            "--idp-port",
            &ports[0].to_string(),
            "--static-port",
            &ports[1].to_string(),
            "--rs-port",
            &ports[2].to_string(),
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .env_remove("MCP_CLIENT_CACHE_DIR")
        .stdin(Stdio::null());
    command
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[test]
fn headless_run_completes_every_step() {
    for mode in [
        &["--headless"][..],
        &["--headless", "--mcp-ready"][..],
        &[
            "--headless",
            "--discovery",
            "oidc",
            "--transport",
            "sse-cookie",
        ][..],
    ] {
        let ports = [free_port(), free_port(), free_port()];
        let output = demo(mode, ports).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{mode:?}\n{stdout}\n{stderr}");
        assert!(stdout.contains("= 42"), "{stdout}");
        assert!(stdout.contains("FAKE"), "{stdout}");
        assert!(
            stderr.contains("every step behaved as expected"),
            "{stderr}"
        );
        if mode.contains(&"--mcp-ready") {
            assert!(
                stdout.contains("admin_status:"),
                "step-up succeeded: {stdout}"
            );
        } else {
            assert!(stderr.contains("Dex has no mcp:admin scope"), "{stderr}");
        }
        for port in ports {
            assert!(port_free(port), "port {port} released after the run");
        }
    }
}

/// The servers' ready lines come before the demo's own banner and the client's trace:
/// the demo waits for each server to answer HTTP, not only for its port to be bound.
#[test]
fn servers_say_they_are_ready_before_the_flow_starts() {
    let ports = [free_port(), free_port(), free_port()];
    let output = demo(&["--headless"], ports)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let position = |needle: &str| {
        stderr
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{stderr}"))
    };
    let ready = position("dev-idp ready");
    let line = stderr[..ready].rfind('\n').map_or(0, |i| i + 1);
    assert!(stderr[line..].starts_with("[idp]"), "{stderr}");
    assert!(ready < position("== Authorization server"), "{stderr}");
    assert!(ready < position("[client]"), "{stderr}");
}

/// `--opaque-tokens`: the tokens are opaque, so the resource server verifies them by
/// introspection at dev-idp, in the Dex topology and with `--mcp-ready`.
#[test]
fn opaque_tokens_are_verified_by_introspection() {
    for mode in [
        &["--headless", "--opaque-tokens"][..],
        &["--headless", "--opaque-tokens", "--mcp-ready"][..],
    ] {
        let ports = [free_port(), free_port(), free_port()];
        let output = demo(mode, ports)
            .env(
                "RUST_LOG",
                "warn,mcp_resource_server::auth::introspection=info",
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{mode:?}\n{stdout}\n{stderr}");
        assert!(stdout.contains("= 42"), "{stdout}");
        assert!(
            stdout.contains("\"token_kind\": \"introspected\""),
            "whoami says how the token was verified: {stdout}"
        );
        assert!(stderr.contains("access token (opaque"), "{stderr}");
        assert!(stderr.contains("RFC 7662 token introspection"), "{stderr}");
        let introspect = format!("localhost:{}/dex/token/introspect", ports[0]);
        // The client writes to the same stderr as the forwarded server lines, so a `[rs]`
        // line may start in the middle of one of the client's.
        assert!(
            stderr.lines().any(|l| l.contains("[rs]")
                && l.contains("token introspected")
                && l.contains(&introspect)),
            "the resource server asked the authorization server: {stderr}"
        );
        assert!(
            stderr.contains("every step behaved as expected"),
            "{stderr}"
        );
        if mode.contains(&"--mcp-ready") {
            assert!(stdout.contains("admin_status:"), "step-up: {stdout}");
        }
    }
}

/// `--mcp-ready --dpop`: DPoP-bound tokens end to end, and a replayed proof refused.
#[test]
fn dpop_run_binds_tokens_and_shows_a_replay_refused() {
    let ports = [free_port(), free_port(), free_port()];
    let output = demo(&["--headless", "--mcp-ready", "--dpop"], ports)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("= 42"), "{stdout}");
    assert!(stdout.contains("admin_status:"), "step-up: {stdout}");
    assert!(stderr.contains("DPoP-bound access token"), "{stderr}");
    assert!(
        !stderr.contains("(Bearer) ->"),
        "no Bearer request: {stderr}"
    );
    assert!(
        stdout.contains("\"dpop_jkt\": \""),
        "whoami shows the binding: {stdout}"
    );
    let replay: Vec<&str> = stderr.lines().filter(|l| l.contains("[replay]")).collect();
    assert!(
        replay
            .iter()
            .any(|l| l.contains("first delivery") && l.contains("(DPoP) -> 200")),
        "{stderr}"
    );
    assert!(
        replay
            .iter()
            .any(|l| l.contains("again -> 401") && l.contains("invalid_dpop_proof")),
        "{stderr}"
    );
    assert!(
        stderr.contains("every step behaved as expected"),
        "{stderr}"
    );
    for port in ports {
        assert!(port_free(port), "port {port} released after the run");
    }
}

#[test]
fn busy_port_is_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let output = demo(&["--headless"], [free_port(), free_port(), port])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {port}")) && stderr.contains("--rs-port"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn interrupt_stops_every_child() {
    let ports = [free_port(), free_port(), free_port()];
    // Without --headless and without a browser, the client waits for a login that never
    // comes, so the run is still going when the interrupt arrives.
    let mut child = demo(&["--no-browser"], ports)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while port_free(ports[2]) {
        assert!(
            Instant::now() < deadline,
            "the resource server never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130));
    for port in ports {
        assert!(port_free(port), "port {port} still held after Ctrl-C");
    }
}

#[test]
fn external_authorization_server_is_used_not_started() {
    let ports = [free_port(), free_port(), free_port()];
    // Nothing listens yet: a clear error.
    let output = demo(&["--headless", "--external-idp"], ports)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("docker compose up"), "{stderr}");
    assert!(port_free(ports[2]), "the resource server was stopped");

    // An authorization server started beforehand (as Docker would) is used as it is.
    let issuer = format!("http://localhost:{}/dex", ports[0]);
    let mut idp = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args([
            "idp",
            "--issuer",
            &issuer,
            "--listen",
            &format!("127.0.0.1:{}", ports[0]),
            "--auto-login",
            "alice@example.com",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../dex-config.yaml"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while port_free(ports[0]) {
        assert!(Instant::now() < deadline, "dev-idp never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = demo(
        &["--headless", "--external-idp", "--discovery", "oidc"],
        ports,
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let alive = idp.try_wait().unwrap().is_none();
    let _ = idp.kill();
    let _ = idp.wait();
    assert!(output.status.success(), "{stderr}");
    assert!(alive, "the external authorization server is left running");
    assert!(String::from_utf8_lossy(&output.stdout).contains("= 42"));
}
