//! How much the client reads of each kind of body, and how such sizes read in a message.
//!
//! It uses nothing else of the crate: the HTTP layer (`http.rs`) enforces these limits,
//! the error type names them, and the `--diagram` recorder reads token responses within
//! them.

/// The most the client reads of one kind of body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What the body is, for the error message (`a token response`).
    pub what: &'static str,
    /// The limit in bytes.
    pub bytes: usize,
}

/// The limits of every body the client reads. Real documents are far below them: metadata
/// and token responses are a few KiB, and the MCP limits leave room for large tool
/// results (images, long lists) while keeping a hostile server from filling memory.
pub mod limits {
    use super::Limit;

    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;

    /// A Protected Resource Metadata or authorization server metadata document.
    pub const METADATA: Limit = Limit {
        what: "a metadata document",
        bytes: 256 * KIB,
    };
    /// A dynamic client registration response.
    pub const REGISTRATION: Limit = Limit {
        what: "a client registration response",
        bytes: 256 * KIB,
    };
    /// A token response (or a token error).
    pub const TOKEN: Limit = Limit {
        what: "a token response",
        bytes: 256 * KIB,
    };
    /// The body of an error status, read only to quote its beginning.
    pub const ERROR_BODY: Limit = Limit {
        what: "an error response",
        bytes: 64 * KIB,
    };
    /// One JSON-RPC message: a JSON reply, or one event of an event stream.
    pub const MESSAGE: Limit = Limit {
        what: "one MCP message",
        bytes: 16 * MIB,
    };
    /// Everything the event stream of one Streamable HTTP reply carries until the
    /// response arrives (server requests and notifications included).
    pub const REPLY_STREAM: Limit = Limit {
        what: "the event stream of one MCP reply",
        bytes: 64 * MIB,
    };
}

/// `262144` → `256 KiB`: limits as people read them.
#[must_use]
pub fn human_bytes(n: usize) -> String {
    const UNITS: [&str; 3] = ["bytes", "KiB", "MiB"];
    let mut value = n;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && value >= 1024 && value.is_multiple_of(1024) {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_people_write_them() {
        assert_eq!(human_bytes(limits::METADATA.bytes), "256 KiB");
        assert_eq!(human_bytes(limits::MESSAGE.bytes), "16 MiB");
        assert_eq!(human_bytes(1536), "1536 bytes");
        assert_eq!(human_bytes(3 * 1024), "3 KiB");
    }
}
