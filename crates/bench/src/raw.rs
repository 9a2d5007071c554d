//! A minimal HTTP/1.1 client over raw sockets, for cases where every connection must be
//! under the harness's control: thousands of SSE streams held open, and a thousand
//! requests released at the same instant. Requests send `Connection: close`, so a
//! response ends when the server closes the socket.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A request's bytes.
pub fn request(
    method: &str,
    path: &str,
    authority: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// Connects with `TCP_NODELAY`.
///
/// # Errors
/// When the connection fails.
pub async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The status code of a response head, if `buf` holds a whole status line.
pub fn status_of(buf: &[u8]) -> Option<u16> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Sends `request` on `stream` and reads the whole response (until the server closes).
///
/// # Errors
/// On a socket error.
pub async fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(request).await?;
    let mut response = Vec::with_capacity(1024);
    stream.read_to_end(&mut response).await?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_status() {
        let bytes = request("POST", "/mcp", "127.0.0.1:1", &[("A", "b")], "{}");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
        assert_eq!(status_of(b"HTTP/1.1 401 Unauthorized\r\n"), Some(401));
        assert_eq!(status_of(b"HTTP/1.1 200"), None);
        assert_eq!(status_of(b"garbage\r\n"), None);
        assert!(contains(b"abc event: endpoint", b"event: endpoint"));
    }
}
