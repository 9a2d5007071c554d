//! The `dev-idp` binary's errors: one line, each cause once, no backtrace even with
//! `RUST_BACKTRACE=1`, exit code 1.

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dev-idp"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_sentence(stderr: &str, needle: &str) {
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("dev-idp: "), "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
    assert!(
        !stderr.contains("Caused by") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_is_one_sentence() {
    let (code, stderr) = run(&["--config", "/nonexistent/dex-config.yaml"]);
    assert_eq!(code, Some(1));
    assert_one_sentence(&stderr, "cannot read /nonexistent/dex-config.yaml");
    assert_eq!(
        stderr.matches("/nonexistent/dex-config.yaml").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
}

#[test]
fn a_bad_setting_names_the_file_and_the_setting() {
    let dir = tempfile_dir();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, "issuer: ftp://example.com/dex\n").unwrap();
    let (code, stderr) = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_one_sentence(&stderr, "invalid setting `issuer`");
    assert!(stderr.contains("bad.yaml"), "{stderr}");
}

#[test]
fn a_busy_port_is_one_sentence() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dex-config.yaml");
    let (code, stderr) = run(&["--config", config, "--listen", &addr]);
    assert_eq!(code, Some(1));
    assert_one_sentence(&stderr, &format!("cannot listen on {addr}"));
    assert!(stderr.contains("--listen"), "{stderr}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dev-idp-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
