//! A reader of server-sent events from a streaming HTTP response.

use std::time::Duration;

use futures::{StreamExt, stream::BoxStream};
use serde_json::Value;

/// One server-sent event.
#[derive(Debug)]
pub struct SseEvent {
    /// `event:` (`message` when absent).
    pub event: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

/// Reads server-sent events from a streaming response.
pub struct SseReader {
    stream: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl std::fmt::Debug for SseReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseReader")
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl SseReader {
    /// Reads the body of `response`.
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event with data (comments and keep-alives skipped); `None` when the
    /// stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_string();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
                    }
                }
                if !data.is_empty() {
                    return Some(SseEvent {
                        event,
                        data: data.join("\n"),
                    });
                }
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// The next `message` event parsed as JSON, within 10 s.
    ///
    /// # Panics
    /// When no event comes in time, the stream ends, the event is of another kind or its
    /// data is not JSON.
    pub async fn message(&mut self) -> Value {
        let event = tokio::time::timeout(Duration::from_secs(10), self.next())
            .await
            .expect("an SSE event in time")
            .expect("the stream is open");
        assert_eq!(event.event, "message");
        serde_json::from_str(&event.data).expect("JSON in the message event")
    }
}
