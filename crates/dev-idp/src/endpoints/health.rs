//! `{issuer}/healthz`, as Dex answers it when healthy.

/// `GET {issuer}/healthz`.
pub(crate) async fn get() -> &'static str {
    "Health check passed"
}
