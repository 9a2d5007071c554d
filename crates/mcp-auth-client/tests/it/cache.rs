//! The token cache on disk: owner-only permissions, atomic replacement, per-server keys.

use std::os::unix::fs::PermissionsExt;

use mcp_auth_client::cache::{Cache, TokenSet, now, write_atomic};
use mcp_auth_client::registration::{ClientSource, StoredClient, TokenAuthMethod};
use mcp_auth_proto::AccessToken;

fn tokens(server: &str, client: &str, token: &str) -> TokenSet {
    TokenSet {
        server: server.into(),
        resource: server.into(),
        issuer: "http://127.0.0.1:1/as".into(),
        token_endpoint: "http://127.0.0.1:1/as/token".into(),
        client: StoredClient {
            client_id: client.into(),
            client_secret: None,
            auth_method: TokenAuthMethod::None,
            source: ClientSource::PreRegistered,
            redirect_uri: None,
        },
        access_token: AccessToken::new(token),
        token_type: "Bearer".into(),
        refresh_token: None,
        scope: None,
        expires_at: Some(now() + 100),
        obtained_at: now(),
    }
}

#[test]
fn files_are_owner_only_in_an_owner_only_dir() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("mcp-client");
    let cache = Cache::new(&dir);
    let path = cache
        .save_tokens(&tokens("http://a/mcp", "c", "t1"))
        .unwrap()
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&path), 0o600);
    // A pre-existing, too-open directory is tightened.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    cache
        .save_tokens(&tokens("http://a/mcp", "c", "t2"))
        .unwrap();
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn writes_replace_atomically_and_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let path = cache
        .save_tokens(&tokens("http://a/mcp", "c", "t1"))
        .unwrap()
        .unwrap();
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    cache
        .save_tokens(&tokens("http://a/mcp", "c", "t2"))
        .unwrap();
    // Replaced by rename: a new inode, not an in-place rewrite.
    let ino2 = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
    assert_ne!(ino, ino2);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let loaded = cache.load_tokens("http://a/mcp").unwrap().unwrap();
    assert_eq!(loaded.access_token.secret(), "t2");
}

#[test]
fn concurrent_writers_never_leave_a_torn_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    let big_a = vec![b'a'; 256 * 1024];
    let big_b = vec![b'b'; 256 * 1024];
    std::thread::scope(|s| {
        for i in 0..4 {
            let (path, data) = (&path, if i % 2 == 0 { &big_a } else { &big_b });
            s.spawn(move || {
                for _ in 0..20 {
                    write_atomic(path, data).unwrap();
                }
            });
        }
        s.spawn(|| {
            for _ in 0..200 {
                if let Ok(bytes) = std::fs::read(&path) {
                    assert_eq!(bytes.len(), 256 * 1024);
                    assert!(bytes.iter().all(|b| *b == bytes[0]), "torn file");
                }
            }
        });
    });
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn keys_separate_servers_and_clients_and_logout_forgets_one_server() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    cache
        .save_tokens(&tokens("http://a/mcp", "c1", "t1"))
        .unwrap();
    cache
        .save_tokens(&tokens("http://a/mcp", "c2", "t2"))
        .unwrap();
    cache
        .save_tokens(&tokens("http://b/mcp", "c1", "t3"))
        .unwrap();
    assert_eq!(cache.list_tokens().unwrap().len(), 3);
    assert_eq!(cache.remove_tokens("http://a/mcp").unwrap(), 2);
    assert!(cache.load_tokens("http://a/mcp").unwrap().is_none());
    assert_eq!(
        cache
            .load_tokens("http://b/mcp")
            .unwrap()
            .unwrap()
            .access_token
            .secret(),
        "t3"
    );
    // A file that does not parse is ignored rather than fatal.
    std::fs::write(dir.path().join("tokens-garbage.json"), b"{not json").unwrap();
    assert_eq!(cache.list_tokens().unwrap().len(), 1);
}

#[test]
fn debug_output_hides_tokens() {
    let t = tokens("http://a/mcp", "c", "very-secret-token");
    assert!(!format!("{t:?}").contains("very-secret-token"));
}
