//! The step-by-step trace a person reads to follow the OAuth flow.
//!
//! This is not logging: each line says which URL was requested, what came back, what was
//! learned and which choice was made and why, in the form
//! `[discovery] GET http://h/mcp -> 401, challenge names resource_metadata=...`.
//! [`Trace::step`] lines are always shown (unless quiet); [`Trace::detail`] lines only
//! with `-v`. Callers never pass tokens or secrets: [`jwt_claims`] shows a JWT as its
//! decoded claims, and [`mcp_auth_proto::secret::fingerprint`] gives a short tag.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;

/// How much of the trace is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Nothing.
    Quiet,
    /// The steps.
    Normal,
    /// The steps and their details (headers, bodies, decoded claims).
    Verbose,
}

type Sink = Arc<Mutex<dyn Write + Send>>;

/// Where trace lines go.
#[derive(Clone)]
pub struct Trace {
    verbosity: Verbosity,
    sink: Sink,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("verbosity", &self.verbosity)
            .finish_non_exhaustive()
    }
}

impl Trace {
    /// A trace written to standard error.
    #[must_use]
    pub fn stderr(verbosity: Verbosity) -> Self {
        Self {
            verbosity,
            sink: Arc::new(Mutex::new(std::io::stderr())),
        }
    }

    /// A trace that shows nothing.
    #[must_use]
    pub fn silent() -> Self {
        Self {
            verbosity: Verbosity::Quiet,
            sink: Arc::new(Mutex::new(std::io::sink())),
        }
    }

    /// A trace kept in memory (for tests and for embedding): returns the trace and the buffer.
    #[must_use]
    pub fn capture(verbosity: Verbosity) -> (Self, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink: Sink = Arc::new(Mutex::new(SharedBuf(buf.clone())));
        (Self { verbosity, sink }, buf)
    }

    /// The verbosity.
    #[must_use]
    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// True with `-v`.
    #[must_use]
    pub fn is_verbose(&self) -> bool {
        self.verbosity >= Verbosity::Verbose
    }

    /// A step: always shown unless quiet.
    pub fn step(&self, area: &str, message: impl std::fmt::Display) {
        if self.verbosity >= Verbosity::Normal {
            self.write(&format!("[{area}] {message}"));
        }
    }

    /// Something the user must see to go on (the authorization URL): shown even when quiet.
    pub fn notice(&self, message: impl std::fmt::Display) {
        self.write(&message.to_string());
    }

    /// A detail of a step: shown with `-v`.
    pub fn detail(&self, area: &str, message: impl std::fmt::Display) {
        if self.verbosity >= Verbosity::Verbose {
            for line in message.to_string().lines() {
                self.write(&format!("[{area}]     {line}"));
            }
        }
    }

    fn write(&self, line: &str) {
        if let Ok(mut sink) = self.sink.lock() {
            let _ = writeln!(sink, "{line}");
            let _ = sink.flush();
        }
    }
}

struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The decoded header and claims of a JWT, pretty-printed, or `None` if it is not a JWT.
///
/// The signature is not shown and not verified: this is for display only.
#[must_use]
pub fn jwt_claims(token: &str) -> Option<String> {
    let (header, claims) = decode_jwt(token)?;
    Some(format!(
        "header {}\nclaims {}",
        serde_json::to_string(&header).ok()?,
        serde_json::to_string_pretty(&claims).ok()?
    ))
}

/// The header and claims of a JWT (JWS compact serialization), decoded and NOT
/// verified; `None` if `token` is not one.
pub(crate) fn decode_jwt(token: &str) -> Option<(serde_json::Value, serde_json::Value)> {
    let mut parts = token.split('.');
    let (header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let decode = |part: &str| -> Option<serde_json::Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    Some((decode(header)?, decode(payload)?))
}

/// A one-line description of an access token that reveals nothing usable:
/// its kind (JWT or opaque) and a fingerprint.
#[must_use]
pub fn describe_token(token: &str) -> String {
    let kind = if jwt_claims(token).is_some() {
        "JWT"
    } else {
        "opaque"
    };
    format!(
        "{kind}, fingerprint {}",
        mcp_auth_proto::secret::fingerprint(token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_jwt_claims_without_signature() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.c2lnbmF0dXJl",
            enc(r#"{"alg":"RS256","kid":"k1"}"#),
            enc(r#"{"sub":"alice","aud":"x"}"#)
        );
        let shown = jwt_claims(&token).unwrap();
        assert!(shown.contains("\"sub\": \"alice\""));
        assert!(shown.contains("RS256"));
        assert!(!shown.contains("c2lnbmF0dXJl"));
        assert!(jwt_claims("opaque-token").is_none());
        assert!(describe_token("opaque-token").starts_with("opaque, fingerprint "));
        assert!(!describe_token("opaque-token").contains("opaque-token"));
    }

    #[test]
    fn levels_filter_lines() {
        let (t, buf) = Trace::capture(Verbosity::Normal);
        t.step("a", "shown");
        t.detail("a", "hidden");
        let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert_eq!(out, "[a] shown\n");
    }
}
