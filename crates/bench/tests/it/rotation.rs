//! A key rotation followed by a burst: one JWKS fetch, every request accepted.

use bench::{key_rotation, procs::ResourceServerOptions};

use crate::support::resource_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_after_a_rotation_fetches_the_keys_once() {
    let (auth, server) = resource_server("rotation", ResourceServerOptions::default()).await;
    let before = auth.current_kid();
    let result = key_rotation::run(&auth, &server, "2 add 3 = 5", 100)
        .await
        .unwrap();
    assert_ne!(auth.current_kid(), before, "the key was rotated");
    assert_eq!(result.requests, 100);
    assert_eq!(result.succeeded, 100, "failures: {:?}", result.failures);
    assert_eq!(result.jwks_fetches, 1);
    server.stop().await;
}
