//! A parser of the `text/event-stream` format (HTML Living Standard, "Server-sent events").
//!
//! Fed with chunks of bytes as they arrive; yields complete events. Lines end with LF or
//! CRLF; `data:` lines of one event are joined with LF; comments (`:`) are skipped; an
//! event whose data is empty (such as a resumability priming event) is not dispatched.

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

/// An incremental parser.
#[derive(Debug, Default)]
pub struct EventParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    id: Option<String>,
}

impl EventParser {
    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(ev) = self.line(&line) {
                out.push(ev);
            }
        }
        out
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
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
        assert!(p.push(b": keep-alive\r\nevent: endpoint\r\nda").is_empty());
        let evs = p.push(b"ta: /messages?sessionId=1\r\n\r\ndata: {\"a\":\ndata: 1}\n\n");
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].event, "endpoint");
        assert_eq!(evs[0].data, "/messages?sessionId=1");
        assert_eq!(evs[1].event, "message");
        assert_eq!(evs[1].data, "{\"a\":\n1}");
        assert!(p.push(b"id: 7\n\n").is_empty());
        assert!(p.push(b"id: 8\ndata:\n\n").is_empty());
    }
}
