//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1) and the Bearer view of it.
//!
//! Properties: the parser never panics; a Bearer challenge found in any input is
//! written back as a valid header value that parses to the same fields (minus the
//! characters `Display` drops: controls and non-ASCII).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_proto::challenge::{BearerChallenge, BearerError, parse_www_authenticate};

fn visible(value: &str) -> String {
    value.chars().filter(|c| matches!(c, ' '..='~')).collect()
}

fn sanitized(challenge: &BearerChallenge) -> BearerChallenge {
    let clean = |v: &Option<String>| v.as_deref().map(visible);
    BearerChallenge {
        realm: clean(&challenge.realm),
        scope: clean(&challenge.scope),
        error: challenge
            .error
            .as_ref()
            .map(|e| match visible(e.as_str()).as_str() {
                "invalid_request" => BearerError::InvalidRequest,
                "invalid_token" => BearerError::InvalidToken,
                "insufficient_scope" => BearerError::InsufficientScope,
                other => BearerError::Other(other.to_owned()),
            }),
        error_description: clean(&challenge.error_description),
        error_uri: clean(&challenge.error_uri),
        resource_metadata: clean(&challenge.resource_metadata),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(challenges) = parse_www_authenticate(text) {
        for challenge in &challenges {
            let _ = challenge.param("scope");
        }
    }
    let Some(bearer) = BearerChallenge::find([text]) else {
        return;
    };
    let _ = bearer.scopes();
    let written = bearer.to_string();
    assert!(
        http::HeaderValue::from_str(&written).is_ok(),
        "Display wrote an invalid header value: {written:?}"
    );
    let reparsed = BearerChallenge::find([written.as_str()])
        .unwrap_or_else(|| panic!("Display output does not parse: {written:?}"));
    assert_eq!(reparsed, sanitized(&bearer), "round trip of {written:?}");
});
