//! Faults met by the client (`mcp-client`, run as a child process with its real exit
//! code and output): the authorization server unreachable, its token endpoint failing,
//! `error=` or a foreign `state` in the callback, a callback that never comes, and a
//! crash in the middle of a cache write.
//!
//! Each failure must give a clear error and a non-zero exit, print no token, and leave
//! the token cache exactly as it was: same files, same bytes, owner-only permissions,
//! no temporary files left behind.
//!
//! The child processes are this test binary itself, started on the
//! `client_child_process` entry (ignored in normal runs), which runs
//! `mcp_auth_client::cli::run` with the arguments passed in an environment variable.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use serde_json::{Value, json};
use testkit::client_side::{Break, ClientSideConfig, ClientSideServer};

use crate::support::{TestKey, rs_config, start_rs};

const CHILD_ARGS: &str = "SECURITY_TESTS_CLIENT_ARGS";
/// When set, the child writes its peak resident memory (`VmHWM`) as its last line.
pub(crate) const CHILD_REPORT_PEAK_RSS: &str = "SECURITY_TESTS_REPORT_PEAK_RSS";
const CHILD_TEST: &str = "client_faults::client_child_process";
const WRITER_PATH: &str = "SECURITY_TESTS_CACHE_WRITER";
const WRITER_TEST: &str = "client_faults::cache_writer_child_process";

/// Entry point of the client child processes (does nothing without its variable).
#[test]
#[ignore = "helper: the entry point of the mcp-client child processes started by this module"]
fn client_child_process() {
    let Ok(args) = std::env::var(CHILD_ARGS) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "mcp_auth_client=trace,mcp_auth_proto=trace,info",
        ))
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let code = runtime.block_on(async {
        use clap::Parser;
        let cli = mcp_auth_client::cli::Cli::parse_from(args);
        match mcp_auth_client::cli::run(cli).await {
            Ok(code) if code == ExitCode::SUCCESS => 0,
            Ok(_) => 1,
            Err(error) => {
                eprintln!("mcp-client: {error}");
                1
            }
        }
    });
    if std::env::var_os(CHILD_REPORT_PEAK_RSS).is_some() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
            eprintln!("peak RSS {}", line.trim_start_matches("VmHWM:").trim());
        }
    }
    std::process::exit(code);
}

/// Output of one client run.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The client's one-line error (`mcp-client: ...`), if it printed one.
    pub(crate) fn error(&self) -> Option<&str> {
        self.stderr.lines().rfind(|l| l.starts_with("mcp-client: "))
    }
}

/// The command that runs `mcp-client` with `args` in a child process.
pub(crate) fn client_command(args: &[String]) -> tokio::process::Command {
    let mut all = vec!["mcp-client".to_string()];
    all.extend(args.iter().cloned());
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            CHILD_TEST,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ARGS, serde_json::to_string(&all).unwrap())
        .env("RUST_BACKTRACE", "0")
        .env_remove("MCP_SERVER_URL")
        .env("BROWSER", "true")
        .kill_on_drop(true);
    command
}

pub(crate) async fn run_client(args: &[String]) -> Run {
    run(client_command(args)).await
}

/// Runs a client command to its end (at most 60 s).
pub(crate) async fn run(mut command: tokio::process::Command) -> Run {
    let child = command.output();
    let output = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("the client finished within 60 s")
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------
// Cache snapshots

/// Every file of the cache directory: name → (bytes, mode); plus the directory's mode.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    dir_mode: u32,
    files: BTreeMap<String, (Vec<u8>, u32)>,
}

fn snapshot(dir: &Path) -> Snapshot {
    let dir_mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        files.insert(
            entry.file_name().to_string_lossy().into_owned(),
            (std::fs::read(entry.path()).unwrap(), mode),
        );
    }
    Snapshot { dir_mode, files }
}

fn assert_private(snapshot: &Snapshot) {
    assert_eq!(snapshot.dir_mode, 0o700, "cache directory is owner-only");
    for (name, (_, mode)) in &snapshot.files {
        assert_eq!(*mode, 0o600, "{name} is owner-only");
        assert!(!name.ends_with(".tmp"), "a temporary file was left: {name}");
    }
}

/// The access tokens stored in the cache.
fn cached_tokens(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .files
        .iter()
        .filter(|(name, _)| name.starts_with("tokens-"))
        .filter_map(|(_, (bytes, _))| serde_json::from_slice::<Value>(bytes).ok())
        .filter_map(|v| v["access_token"].as_str().map(str::to_owned))
        .collect()
}

struct Fixture {
    auth_server: ClientSideServer,
    mcp_url: String,
    cache: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    /// An authorization server issuing tokens that live `token_lifetime` seconds and a
    /// resource server trusting it.
    async fn start(token_lifetime: u64) -> Self {
        // The kit's authorization server, its tokens signed for the resource server.
        let auth_server = ClientSideServer::start(ClientSideConfig {
            signing_key: Some(TestKey::rsa1()),
            expires_in: token_lifetime,
            refresh_tokens: false,
            ..ClientSideConfig::default()
        })
        .await;
        let issuer = auth_server.issuer();
        let url = start_rs(|url| {
            rs_config(url, &issuer)
                .with_jwks_uri(format!("{issuer}/jwks"))
                .with_leeway(Duration::ZERO)
        })
        .await;
        let tmp = tempfile::tempdir().unwrap();
        Self {
            auth_server,
            mcp_url: format!("{url}/mcp"),
            cache: tmp.path().join("cache"),
            _tmp: tmp,
        }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--client-id",
            "mcp-client",
            "--cache-dir",
            self.cache.to_str().unwrap(),
            "--auth-timeout",
            "3",
            "--verbose",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["tools".to_string(), self.mcp_url.clone()]);
        args
    }

    /// A successful headless run; returns the cache snapshot after it.
    async fn seed(&self) -> Snapshot {
        let run = run_client(&self.args(&["--headless"])).await;
        assert_eq!(run.code, Some(0), "seeding run: {}", run.output());
        assert!(run.stdout.contains("calculator"), "{}", run.stdout);
        let snapshot = snapshot(&self.cache);
        assert_private(&snapshot);
        let tokens = cached_tokens(&snapshot);
        assert_eq!(tokens.len(), 1, "one token set cached");
        assert_no_token(&run, &tokens);
        snapshot
    }
}

fn assert_no_token(run: &Run, tokens: &[String]) {
    let output = run.output();
    for token in tokens {
        assert!(
            !output.contains(token.as_str()),
            "the client printed a token"
        );
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !output.contains(signature),
            "the client printed a token's signature"
        );
    }
}

/// Seeds the cache with a short-lived token, lets it expire, breaks something, runs the
/// client again and checks the failure and the cache.
async fn failing_run(
    fixture: &mut Fixture,
    extra: &[&str],
    breakage: impl FnOnce(&mut Fixture),
    expected_message: &[&str],
) {
    let before = fixture.seed().await;
    // The cached access token (2 s, no refresh token) expires: `exp` has whole seconds
    // and is still valid during its own second, so wait for the one after.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    breakage(fixture);
    let run = run_client(&fixture.args(extra)).await;
    assert_ne!(run.code, Some(0), "the client failed: {}", run.output());
    assert!(run.code.is_some(), "the client exited (no signal)");
    let last_line = run
        .stderr
        .lines()
        .rfind(|l| l.starts_with("mcp-client: "))
        .unwrap_or_else(|| panic!("a one-line error: {}", run.stderr))
        .to_ascii_lowercase();
    assert!(
        expected_message.iter().any(|m| last_line.contains(m)),
        "clear error, got: {last_line}"
    );
    eprintln!("client error: {last_line}");
    let after = snapshot(&fixture.cache);
    assert_eq!(after, before, "the token cache is unchanged");
    assert_private(&after);
    assert_no_token(&run, &cached_tokens(&before));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_server_unreachable() {
    let mut fixture = Fixture::start(2).await;
    failing_run(
        &mut fixture,
        &["--headless"],
        |f| f.auth_server.stop(),
        &["unreachable", "connect", "could not reach", "cannot reach"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_500() {
    let mut fixture = Fixture::start(2).await;
    failing_run(
        &mut fixture,
        &["--headless"],
        |f| f.auth_server.add_break(Break::TokenEndpointDown),
        &["500"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_in_the_callback() {
    let mut fixture = Fixture::start(2).await;
    failing_run(
        &mut fixture,
        &["--headless"],
        |f| f.auth_server.add_break(Break::CallbackError),
        &["access_denied"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_mismatch_in_the_callback() {
    let mut fixture = Fixture::start(2).await;
    failing_run(
        &mut fixture,
        &["--headless"],
        |f| f.auth_server.add_break(Break::WrongState),
        &["state"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_never_comes() {
    let mut fixture = Fixture::start(2).await;
    // Browser mode with no browser: the URL is printed, nobody opens it.
    failing_run(
        &mut fixture,
        &["--no-browser"],
        |_| {},
        &[
            "callback",
            "timed out",
            "timeout",
            "no authorization response",
        ],
    )
    .await;
}

/// Entry point of the cache writer child process: rewrites one cache file through the
/// client's atomic write, forever, until it is killed.
#[test]
#[ignore = "helper: the entry point of the cache writer child process started by this module"]
fn cache_writer_child_process() {
    let Ok(path) = std::env::var(WRITER_PATH) else {
        return;
    };
    let path = PathBuf::from(path);
    let pad = "x".repeat(4 * 1024 * 1024);
    for generation in 1u64.. {
        let bytes = serde_json::to_vec(&json!({"generation": generation, "pad": pad})).unwrap();
        mcp_auth_client::cache::write_atomic(&path, &bytes).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_in_the_middle_of_a_cache_write() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("tokens-crash.json");
    let pad_len = 4 * 1024 * 1024;
    let first = serde_json::to_vec(&json!({"generation": 0, "pad": "x".repeat(pad_len)})).unwrap();
    mcp_auth_client::cache::write_atomic(&path, &first).unwrap();
    let mut generations = std::collections::BTreeSet::new();
    for round in 0..12u64 {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                WRITER_TEST,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_PATH, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Kill it at a different point of its write loop each round.
        tokio::time::sleep(Duration::from_millis(150 + round * 37)).await;
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success(), "the writer was killed");
        let bytes = std::fs::read(&path).unwrap();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("round {round}: a torn cache file ({} bytes)", bytes.len()));
        assert_eq!(value["pad"].as_str().map(str::len), Some(pad_len));
        generations.insert(value["generation"].as_u64().unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "round {round}: owner-only");
    }
    assert!(
        generations.len() > 1,
        "the writer did replace the file between kills: {generations:?}"
    );
    // A killed writer may leave its temporary file; the cache never reads those.
    let cache = mcp_auth_client::cache::Cache::new(tmp.path());
    assert!(cache.list_tokens().is_ok());
}
