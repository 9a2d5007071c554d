//! Property tests of the `WWW-Authenticate` handling the client relies on: parsing never
//! panics, and what the formatter writes is read back the same.

use mcp_auth_proto::challenge::{BearerChallenge, BearerError, parse_www_authenticate};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[ -~]{0,30}")
}

proptest! {
    #[test]
    fn parser_never_panics(input in "\\PC{0,200}") {
        let _ = parse_www_authenticate(&input);
        let _ = BearerChallenge::find([input.as_str()]);
    }

    #[test]
    fn formatter_output_round_trips(
        scope in proptest::option::of("[a-z:]{1,10}( [a-z:]{1,10}){0,3}"),
        description in text(),
        metadata in proptest::option::of("https?://[a-z]{1,10}(:[0-9]{1,4})?/[a-z/._-]{0,20}"),
        error in prop_oneof![
            Just(None),
            Just(Some(BearerError::InvalidToken)),
            Just(Some(BearerError::InsufficientScope)),
            Just(Some(BearerError::InvalidRequest)),
        ],
    ) {
        let c = BearerChallenge {
            realm: None,
            scope,
            error,
            error_description: description,
            error_uri: None,
            resource_metadata: metadata,
        };
        let written = c.to_string();
        let back = BearerChallenge::find([written.as_str()]).expect("a Bearer challenge");
        prop_assert_eq!(back, c);
    }
}
