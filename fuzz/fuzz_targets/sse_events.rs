//! The client's `text/event-stream` parser.
//!
//! Properties: no panic; the events, and whether an event is refused for its size, do
//! not depend on how the bytes were split into chunks (the first input byte chooses the
//! chunk size, the rest is the stream).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_client::mcp::event_stream::EventParser;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 16) + 1;

    // A small limit, so that refusals happen too.
    let limit = 64;
    let mut whole = EventParser::new(limit);
    let expected = whole.push(stream);

    let mut split = EventParser::new(limit);
    let mut events = Vec::new();
    let mut refused = false;
    for piece in stream.chunks(chunk) {
        match split.push(piece) {
            Ok(more) => events.extend(more),
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    let Ok(expected) = expected else {
        assert!(refused, "chunk size {chunk}: refused whole, accepted in pieces");
        return;
    };
    assert!(!refused, "chunk size {chunk}: accepted whole, refused in pieces");
    assert_eq!(events, expected, "chunk size {chunk}");
    for event in &expected {
        assert!(
            !event.event.contains('\n'),
            "an event name with a line break"
        );
    }
});
