//! Web origins ([RFC 6454](https://www.rfc-editor.org/rfc/rfc6454)) as browsers send them
//! in the `Origin` header.

/// Whether `origin` (an `Origin` header value) is one of `allowed` (serialised origins
/// such as `https://app.example.com` or `http://localhost:3001`).
///
/// Scheme and host of an origin are case-insensitive, and its serialisation has no path,
/// so the comparison is a whole-string ASCII case-insensitive one; surrounding
/// whitespace is ignored. `null` (an opaque origin) matches only if listed.
///
/// ```
/// use mcp_auth_proto::origin::origin_allowed;
///
/// let allowed = ["http://localhost:3001"];
/// assert!(origin_allowed(&allowed, "http://LOCALHOST:3001"));
/// assert!(!origin_allowed(&allowed, "http://localhost:3002"));
/// ```
#[must_use]
pub fn origin_allowed(allowed: &[impl AsRef<str>], origin: &str) -> bool {
    let origin = origin.trim();
    allowed
        .iter()
        .any(|allowed| allowed.as_ref().eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_origins_compare_without_case() {
        let allowed = vec!["http://localhost:3001".to_owned()];
        assert!(origin_allowed(&allowed, "http://localhost:3001"));
        assert!(origin_allowed(&allowed, " HTTP://Localhost:3001 "));
        assert!(!origin_allowed(
            &allowed,
            "http://localhost:3001.evil.example"
        ));
        assert!(!origin_allowed(&allowed, "http://localhost"));
        assert!(!origin_allowed(&allowed, "https://localhost:3001"));
        assert!(!origin_allowed(&allowed, "null"));
        assert!(!origin_allowed(&[] as &[String], "http://localhost:3001"));
    }
}
