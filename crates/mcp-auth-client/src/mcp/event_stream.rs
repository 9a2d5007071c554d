//! A parser of the `text/event-stream` format (HTML Living Standard, "Server-sent events").
//!
//! Fed with chunks of bytes as they arrive; yields complete events. Lines end with LF or
//! CRLF; `data:` lines of one event are joined with LF; comments (`:`) are skipped; an
//! event whose data is empty (such as a resumability priming event) is not dispatched.
//!
//! # Security
//! One event may take at most `max_event_bytes` of the stream (its lines as received,
//! comments and the line in progress included), so a server cannot make the parser hold
//! more than that, with or without line breaks. Past it, [`EventParser::push`] answers
//! [`EventTooLarge`] and the stream is to be dropped. The outcome does not depend on how
//! the bytes were split into chunks.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, `message` by default.
    pub event: String,
    /// The joined `data:` lines.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

/// An event went past the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTooLarge {
    /// The limit, in bytes.
    pub limit: usize,
}

/// An incremental parser.
#[derive(Debug)]
pub struct EventParser {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no line feed.
    scanned: usize,
    /// Bytes of the complete lines of the event in progress.
    event_bytes: usize,
    max_event_bytes: usize,
    event: Option<String>,
    data: Vec<String>,
    id: Option<String>,
}

impl Default for EventParser {
    /// A parser with the client's limit for one MCP message.
    fn default() -> Self {
        Self::new(crate::http::limits::MESSAGE.bytes)
    }
}

impl EventParser {
    /// A parser that refuses events larger than `max_event_bytes`.
    #[must_use]
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            event_bytes: 0,
            max_event_bytes,
            event: None,
            data: Vec::new(),
            id: None,
        }
    }

    /// Feeds bytes; returns the events completed by them, or [`EventTooLarge`] when the
    /// event in progress goes past the limit (the parser is then of no further use).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, EventTooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.buf[start + self.scanned..]
            .iter()
            .position(|&b| b == b'\n')
        {
            let end = start + self.scanned + offset;
            self.scanned = 0;
            self.event_bytes += end - start + 1;
            if self.event_bytes > self.max_event_bytes {
                return Err(self.too_large());
            }
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(ev) = self.line(&line) {
                out.push(ev);
            }
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.event_bytes + self.buf.len() > self.max_event_bytes {
            return Err(self.too_large());
        }
        Ok(out)
    }

    fn too_large(&self) -> EventTooLarge {
        EventTooLarge {
            limit: self.max_event_bytes,
        }
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            self.event_bytes = 0;
            let data = std::mem::take(&mut self.data).join("\n");
            let event = self.event.take();
            if data.is_empty() {
                return None;
            }
            return Some(Event {
                event: event.unwrap_or_else(|| "message".to_owned()),
                data,
                id: self.id.clone(),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_chunks_and_crlf() {
        let mut p = EventParser::default();
        assert!(
            p.push(b": keep-alive\r\nevent: endpoint\r\nda")
                .unwrap()
                .is_empty()
        );
        let evs = p
            .push(b"ta: /messages?sessionId=1\r\n\r\ndata: {\"a\":\ndata: 1}\n\n")
            .unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].event, "endpoint");
        assert_eq!(evs[0].data, "/messages?sessionId=1");
        assert_eq!(evs[1].event, "message");
        assert_eq!(evs[1].data, "{\"a\":\n1}");
        assert!(p.push(b"id: 7\n\n").unwrap().is_empty());
        assert!(p.push(b"id: 8\ndata:\n\n").unwrap().is_empty());
    }

    #[test]
    fn an_event_past_the_limit_is_refused_however_it_is_split() {
        // 10-byte limit: "data: 1234\n" is 11 bytes.
        let stream = b"data: 12\n\ndata: 1234\n\n";
        let mut whole = EventParser::new(10);
        assert_eq!(whole.push(stream), Err(EventTooLarge { limit: 10 }));
        let mut split = EventParser::new(10);
        let mut refused = false;
        for byte in stream {
            if split.push(std::slice::from_ref(byte)).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
        // A line that never ends is refused once it passes the limit.
        let mut endless = EventParser::new(10);
        assert!(endless.push(b"data: 1234").is_ok());
        assert!(endless.push(b"5").is_err());
        // Comments count too: a stream of keep-alives without a blank line is one event.
        let mut comments = EventParser::new(10);
        assert!(comments.push(b":a\n:b\n:c\n").is_ok());
        assert!(comments.push(b":d\n").is_err());
        // Events below the limit pass, and the count starts again after each one.
        let mut ok = EventParser::new(10);
        for _ in 0..100 {
            assert_eq!(ok.push(b"data: 12\n\n").unwrap().len(), 1);
        }
    }
}
