//! Scope sets ([RFC 6749 §3.3](https://www.rfc-editor.org/rfc/rfc6749#section-3.3)): a
//! space-delimited, case-sensitive list whose order carries no meaning.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ordered set of scope tokens without duplicates (insertion order is kept, so
/// what is written matches what was read).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Splits a space-delimited scope string; empty tokens and duplicates are dropped.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        s.split_ascii_whitespace().collect()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[must_use]
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// Whether every scope of `other` is in `self`.
    #[must_use]
    pub fn contains_all(&self, other: &Scopes) -> bool {
        other.iter().all(|s| self.contains(s))
    }

    /// Adds a scope if it is not there yet.
    pub fn insert(&mut self, scope: impl Into<String>) {
        let scope = scope.into();
        if !scope.is_empty() && !self.contains(&scope) {
            self.0.push(scope);
        }
    }

    /// `self` followed by the scopes of `other` it lacks.
    #[must_use]
    pub fn union(&self, other: &Scopes) -> Scopes {
        let mut out = self.clone();
        for s in other.iter() {
            out.insert(s);
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl<S: Into<String>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut out = Scopes::default();
        for s in iter {
            out.insert(s);
        }
        out
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Scopes::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_dedups_and_keeps_order() {
        let s = Scopes::parse("  openid  mcp:tools openid\tmcp:admin ");
        assert_eq!(s.to_string(), "openid mcp:tools mcp:admin");
        assert_eq!(s.len(), 3);
        assert!(s.contains("mcp:tools"));
        assert!(!s.contains("MCP:TOOLS"));
    }

    #[test]
    fn set_operations() {
        let a = Scopes::parse("a b");
        let b = Scopes::parse("b c");
        assert_eq!(a.union(&b).to_string(), "a b c");
        assert!(a.union(&b).contains_all(&a));
        assert!(!a.contains_all(&b));
        assert!(a.contains_all(&Scopes::default()));
    }

    #[test]
    fn serde_as_string() {
        let s: Scopes = serde_json::from_str("\"x y\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"x y\"");
    }
}
