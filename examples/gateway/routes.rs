//! Which paths are public and which need scopes, matched on the decoded path so that
//! `%2e%2e`, `%61dmin` and the like can't slip past a rule.

use crate::config::{RouteRules, ScopeRule};

/// A request path, percent-decoded, that has no dot-segments or encoded separators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPath(pub String);

impl CheckedPath {
    /// Decodes `raw`; refuses paths that an upstream could resolve to another path than the one
    /// the rules saw: `.`/`..` segments (plain or encoded), empty segments (`//`), encoded `/` or
    /// `\`, `\`, and NUL.
    pub fn new(raw: &str) -> Result<Self, &'static str> {
        if !raw.starts_with('/') {
            return Err("path must start with /");
        }
        let mut decoded = String::with_capacity(raw.len());
        let segments: Vec<&str> = raw.split('/').skip(1).collect();
        for (index, segment) in segments.iter().enumerate() {
            if segment.is_empty() && index + 1 < segments.len() {
                return Err("empty path segments are not allowed");
            }
            let bytes = percent_decode(segment).ok_or("malformed percent-encoding")?;
            let text = String::from_utf8_lossy(&bytes);
            if text == "." || text == ".." {
                return Err("dot-segments are not allowed");
            }
            if text.contains(['/', '\\', '\0']) {
                return Err("encoded separators are not allowed");
            }
            decoded.push('/');
            decoded.push_str(&text);
        }
        Ok(Self(decoded))
    }
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    Some(out)
}

/// Whether `prefix` covers `path`: a prefix ending in `/` matches anything under it; otherwise
/// the path must be the prefix itself or continue with `/` or `;` (so `/admin` covers
/// `/admin/users` and `/admin;x` but not `/administrator`).
pub fn covers(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', ';']),
    }
}

impl RouteRules {
    pub fn is_public(&self, path: &CheckedPath) -> bool {
        self.public_paths
            .iter()
            .any(|prefix| covers(prefix, &path.0))
    }

    /// The rule of the longest prefix covering `path`.
    pub fn scope_rule(&self, path: &CheckedPath) -> Option<&ScopeRule> {
        self.scope_rules
            .iter()
            .filter(|rule| covers(&rule.prefix, &path.0))
            .max_by_key(|rule| rule.prefix.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> CheckedPath {
        CheckedPath::new(raw).unwrap()
    }

    #[test]
    fn paths_are_decoded_and_tricks_refused() {
        assert_eq!(path("/a%20b/%61dmin").0, "/a b/admin");
        assert_eq!(path("/").0, "/");
        assert_eq!(path("/x/").0, "/x/");
        for bad in [
            "/public/../admin",
            "/public/%2e%2e/admin",
            "/public/%2E./admin",
            "/./admin",
            "/public%2fadmin",
            "/a%5cb",
            "/a\\b",
            "/a%00",
            "/a%zz",
            "/a%4",
            "//admin",
            "/public//x",
        ] {
            assert!(CheckedPath::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(covers("/admin", "/admin"));
        assert!(covers("/admin", "/admin/users"));
        assert!(covers("/admin", "/admin;jsessionid=1"));
        assert!(!covers("/admin", "/administrator"));
        assert!(covers("/static/", "/static/app.js"));
        assert!(!covers("/static/", "/static"));
        assert!(covers("/", "/anything"));
    }

    #[test]
    fn the_longest_scope_rule_wins() {
        let rules = RouteRules {
            public_paths: vec!["/public".into()],
            scope_rules: vec![
                ScopeRule {
                    prefix: "/admin".into(),
                    scopes: vec!["admin".into()],
                },
                ScopeRule {
                    prefix: "/admin/audit".into(),
                    scopes: vec!["audit".into()],
                },
            ],
        };
        assert_eq!(
            rules.scope_rule(&path("/admin/audit/x")).unwrap().scopes,
            ["audit"]
        );
        assert_eq!(
            rules.scope_rule(&path("/%61dmin/users")).unwrap().scopes,
            ["admin"]
        );
        assert!(rules.scope_rule(&path("/users")).is_none());
        assert!(rules.is_public(&path("/public/x")));
        assert!(!rules.is_public(&path("/publicity")));
    }
}
