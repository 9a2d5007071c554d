//! Connection handling: half-sent requests are cut off.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::fixture::{TestAs, TestKey, start_rs, test_config};

#[tokio::test]
async fn a_half_sent_request_head_is_closed_after_the_timeout() {
    let auth = TestAs::start(&[TestKey::rsa1()]).await;
    let issuer = auth.issuer.clone();
    let url = start_rs(move |url| {
        test_config(url, &issuer).with_header_read_timeout(Duration::from_secs(1))
    })
    .await;
    let mut stream = TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(b"GET /mcp HTTP/1.1\r\nHost: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = [0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("the server closes the connection");
    let elapsed = started.elapsed();
    assert!(read.is_ok());
    assert!(
        elapsed >= Duration::from_millis(900),
        "not before the timeout ({elapsed:?})"
    );
}
