//! SSE streams held open and closed by the server at token expiry.

use std::time::Duration;

use bench::{procs::ResourceServerOptions, sse_streams};

use crate::support::resource_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_open_and_close_at_token_expiry() {
    let options = ResourceServerOptions {
        extra_args: vec!["--leeway".into(), "1".into()],
        ..ResourceServerOptions::default()
    };
    let (auth, server) = resource_server("sse", options).await;
    let result = sse_streams::run(&auth, &server, 40, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(result.opened, 40, "failures: {:?}", result.failures);
    assert_eq!(result.closed_in_time, 40);
    assert!(result.held_kib > 0 && result.peak_kib >= result.held_kib);
    assert!(result.peak_per_stream_kib() > 0.0);
    server.stop().await;
}
