//! `application/x-www-form-urlencoded` parameters as OAuth reads them (RFC 6749 §3.1,
//! §3.2): a parameter sent without a value counts as omitted, and a parameter sent twice
//! is an error, except `resource`, which RFC 8707 allows several times.

/// Parameters that may appear more than once.
const REPEATABLE: [&str; 1] = ["resource"];

/// Parsed request parameters.
#[derive(Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a query string or form body. Returns the name of a duplicated parameter.
    pub(crate) fn parse(input: &[u8]) -> Result<Self, String> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in url::form_urlencoded::parse(input) {
            if value.is_empty() {
                continue;
            }
            if !REPEATABLE.contains(&name.as_ref()) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(name.into_owned());
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// The value of a single-valued parameter.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable parameter.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_missing() {
        let p = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
    }

    #[test]
    fn duplicates_are_refused_except_resource() {
        assert_eq!(Params::parse(b"a=1&a=2").err().as_deref(), Some("a"));
        let p = Params::parse(b"resource=http%3A%2F%2Fa&resource=http%3A%2F%2Fb").unwrap();
        assert_eq!(p.all("resource"), ["http://a", "http://b"]);
    }
}
