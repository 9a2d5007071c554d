//! A static file server that behaves like busybox `httpd`, the server the original demo
//! ran in Docker for `static-metadata/`: `GET` and `HEAD` only, `index.html` for
//! directories, content type from the file extension and `application/octet-stream` for
//! files without one (so `/.well-known/oauth-authorization-server` is served as
//! octet-stream, and clients must read it anyway), no CORS headers.
//!
//! Why not tower-http's `ServeDir` (which the resource server uses for its web page):
//! `ServeDir` keeps `..` out but follows symbolic links wherever they point, while this
//! server canonicalises the path and refuses anything that resolves outside its root
//! (`crates/demo/tests/it/static_server.rs`, `stays_inside_its_directory`, puts a link
//! to a file outside in the root and expects it refused). It would also answer `POST`
//! with 405 instead of busybox's 501, redirect a directory without its trailing slash
//! instead of serving its `index.html`, and take content types from `mime_guess` rather
//! than busybox's table. Wrapping it to restore those would leave a method guard, a
//! path resolver and a content-type override around it, about as much code as this
//! module, for a server that serves one metadata file to the demo.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

/// Flags of `demo static-server`.
#[derive(Debug, Clone, clap::Args)]
pub struct StaticServerArgs {
    /// Directory to serve.
    #[arg(long, env = "DEMO_STATIC_DIR", default_value = "static-metadata")]
    pub dir: PathBuf,

    /// Address to listen on.
    #[arg(long, env = "DEMO_STATIC_LISTEN", default_value = "127.0.0.1:5558")]
    pub listen: SocketAddr,
}

/// busybox's extension table, as far as metadata and web pages need it.
fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("html" | "htm") => "text/html",
        Some("txt" | "text") => "text/plain",
        Some("css") => "text/css",
        Some("js") => "application/javascript",
        Some("json") => "application/json",
        Some("xml") => "text/xml",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn status(code: StatusCode) -> Response {
    let text = format!(
        "<HTML><HEAD><TITLE>{code}</TITLE></HEAD>\n<BODY><H1>{code}</H1>\n</BODY></HTML>\n"
    );
    (code, [(header::CONTENT_TYPE, "text/html")], text).into_response()
}

/// Maps a request path to a file under `root`, refusing `..` and anything that resolves
/// outside the root (symbolic links included).
async fn resolve(root: &Path, raw_path: &str) -> Result<PathBuf, StatusCode> {
    let decoded = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    if decoded.contains('\0') {
        return Err(StatusCode::BAD_REQUEST);
    }
    let relative = Path::new(decoded.trim_start_matches('/'));
    let mut path = root.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return Err(StatusCode::BAD_REQUEST),
        }
    }
    let mut path = tokio::fs::canonicalize(&path)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    if !path.starts_with(root) {
        return Err(StatusCode::NOT_FOUND);
    }
    if tokio::fs::metadata(&path)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?
        .is_dir()
    {
        path.push("index.html");
        if !tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
            return Err(StatusCode::NOT_FOUND);
        }
    }
    Ok(path)
}

async fn handle(State(root): State<Arc<PathBuf>>, request: Request<Body>) -> Response {
    let method = request.method().clone();
    if method != Method::GET && method != Method::HEAD {
        return status(StatusCode::NOT_IMPLEMENTED);
    }
    let path = match resolve(&root, request.uri().path()).await {
        Ok(path) => path,
        Err(code) => return status(code),
    };
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return status(StatusCode::FORBIDDEN);
    };
    let length = bytes.len();
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// The router serving `root` (which must exist).
pub fn router(root: &Path) -> anyhow::Result<Router> {
    let root = std::fs::canonicalize(root)
        .with_context(|| format!("static directory {} not found", root.display()))?;
    Ok(Router::new().fallback(handle).with_state(Arc::new(root)))
}

/// Serves `root` on `listener` until `shutdown` completes.
pub async fn serve(
    root: &Path,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(root)?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// `demo static-server`.
pub async fn run(args: StaticServerArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (choose another address with --listen)",
            args.listen
        )
    })?;
    tracing::info!(dir = %args.dir.display(), listen = %args.listen, "static server ready");
    serve(&args.dir, listener, crate::signals::shutdown()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_busybox() {
        assert_eq!(
            content_type(Path::new("x/oauth-authorization-server")),
            "application/octet-stream"
        );
        assert_eq!(content_type(Path::new("a.JSON")), "application/json");
        assert_eq!(content_type(Path::new("index.html")), "text/html");
    }
}
