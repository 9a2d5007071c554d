//! The client's `text/event-stream` parser.
//!
//! Properties: no panic; the events do not depend on how the bytes were split into
//! chunks (the first input byte chooses the chunk size, the rest is the stream).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_client::mcp::event_stream::EventParser;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 16) + 1;

    let mut whole = EventParser::default();
    let expected = whole.push(stream);

    let mut split = EventParser::default();
    let mut events = Vec::new();
    for piece in stream.chunks(chunk) {
        events.extend(split.push(piece));
    }
    assert_eq!(events, expected, "chunk size {chunk}");
    for event in &expected {
        assert!(
            !event.event.contains('\n'),
            "an event name with a line break"
        );
    }
});
