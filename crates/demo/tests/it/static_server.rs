//! The busybox-like static server on 127.0.0.1:0 serving the repository's static-metadata/.

use std::path::PathBuf;

use reqwest::StatusCode;

fn static_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../static-metadata")
}

async fn start(dir: PathBuf) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        demo::static_server::serve(&dir, listener, std::future::pending()).await
    });
    base
}

#[tokio::test]
async fn serves_metadata_as_octet_stream_like_busybox() {
    let base = start(static_dir()).await;
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let doc: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(doc["issuer"], "http://localhost:5558");

    let head = http
        .head(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let post = http
        .post(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::NOT_IMPLEMENTED);
    let missing = http.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let dir = http
        .get(format!("{base}/.well-known/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        dir.status(),
        StatusCode::NOT_FOUND,
        "no listing, no index.html"
    );
}

#[tokio::test]
async fn stays_inside_its_directory() {
    let root = std::env::temp_dir().join(format!("demo-static-test-{}", std::process::id()));
    let inner = root.join("www");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(root.join("secret.txt"), "outside").unwrap();
    std::fs::write(inner.join("index.html"), "<p>hi</p>").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("secret.txt"), inner.join("link.txt")).unwrap();
    let base = start(inner.clone()).await;

    // Raw request lines, so that no client normalises the dot segments away.
    for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/link.txt"] {
        let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(!answer.contains("outside"), "{path}: {answer}");
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 404"),
            "{path}: {answer}"
        );
    }
    let index = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(index.headers()["content-type"], "text/html");
    assert_eq!(index.text().await.unwrap(), "<p>hi</p>");
    std::fs::remove_dir_all(&root).unwrap();
}
