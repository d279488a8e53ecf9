//! The one canonical form of a request path, and which paths are public and which need scopes.
//!
//! A path is percent-decoded once and checked once; the decoded form is what the public prefixes
//! and scope rules see, and its re-encoding is what the upstream gets. Anything an upstream could
//! resolve to another path than the one the rules saw (dot-segments in any spelling, encoded
//! separators, `;` path parameters, `%25` that a second decoding would turn into an escape …) is
//! refused with `400`.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::config::{RouteRules, ScopeRule};

/// Why a path was refused; the message is safe to show the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("dot-segments are not allowed")]
    DotSegment,
    #[error("empty path segments are not allowed")]
    EmptySegment,
    #[error("encoded `/`, `\\`, `;` or `%` is not allowed")]
    EncodedDelimiter,
    #[error("`\\` is not allowed")]
    Backslash,
    #[error("control characters are not allowed")]
    ControlCharacter,
    #[error("path parameters (`;`) are not allowed")]
    PathParameter,
    #[error("malformed percent-encoding")]
    MalformedEscape,
    #[error("the path is not valid UTF-8")]
    InvalidUtf8,
}

/// What the canonical path is re-encoded with before it goes upstream: every byte that is not
/// allowed in a path segment (RFC 3986 `pchar`), besides `/` and `;` which are structure here
/// (an encoded `/` or `;` was refused).
const PATH_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A request path, percent-decoded, that passed every check of [`CheckedPath::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPath(String);

impl CheckedPath {
    /// Decodes and checks `raw`, the path of a request URI. `;` path parameters (`/a;v=1/b`) are
    /// refused unless `allow_params`; with it, the segment's name before `;` is still checked.
    pub fn new(raw: &str, allow_params: bool) -> Result<Self, PathError> {
        let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
        let mut canonical = String::with_capacity(raw.len());
        let mut segments = rest.split('/').peekable();
        while let Some(segment) = segments.next() {
            if segment.is_empty() && segments.peek().is_some() {
                return Err(PathError::EmptySegment);
            }
            canonical.push('/');
            canonical.push_str(&decode_segment(segment, allow_params)?);
        }
        Ok(Self(canonical))
    }

    /// The decoded path, as the rules see it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The decoded path encoded again, as the upstream gets it (borrowed when nothing needs
    /// encoding, as in most paths).
    pub fn encoded(&self) -> Cow<'_, str> {
        utf8_percent_encode(&self.0, PATH_ENCODE).into()
    }
}

fn decode_segment(segment: &str, allow_params: bool) -> Result<String, PathError> {
    if segment.contains('\\') {
        return Err(PathError::Backslash);
    }
    let bytes = segment.as_bytes();
    for (index, _) in segment.match_indices('%') {
        let hex = bytes
            .get(index + 1..index + 3)
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .ok_or(PathError::MalformedEscape)?;
        // `/`, `\`, `;` and `%` itself: an upstream that decodes again, or splits before
        // decoding, would see another path.
        if matches!(
            hex.to_ascii_lowercase().as_slice(),
            b"2f" | b"5c" | b"3b" | b"25"
        ) {
            return Err(PathError::EncodedDelimiter);
        }
    }
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| PathError::InvalidUtf8)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    // A servlet container resolves `..;x` as `..`: the name before any `;` counts.
    let name = decoded.split(';').next().unwrap_or_default();
    if name == "." || name == ".." {
        return Err(PathError::DotSegment);
    }
    if !allow_params && decoded.contains(';') {
        return Err(PathError::PathParameter);
    }
    Ok(decoded.into_owned())
}

/// Whether `prefix` covers `path`: a prefix ending in `/` matches anything under it; otherwise
/// the path must be the prefix itself or continue with `/` or `;` (so `/admin` covers
/// `/admin/users` and `/admin;v=1` but not `/administrator`). `ignore_case` compares ASCII
/// letters case-insensitively.
pub fn covers(prefix: &str, path: &str, ignore_case: bool) -> bool {
    let Some(head) = path.get(..prefix.len()) else {
        return false;
    };
    let same = if ignore_case {
        head.eq_ignore_ascii_case(prefix)
    } else {
        head == prefix
    };
    let rest = &path[prefix.len()..];
    same && (prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', ';']))
}

impl RouteRules {
    /// Public prefixes match exactly: a miss there only means a token is required.
    pub fn is_public(&self, path: &CheckedPath) -> bool {
        self.public_paths
            .iter()
            .any(|prefix| covers(prefix, path.as_str(), false))
    }

    /// The index and rule of the longest prefix covering `path`. Scope rules match
    /// ASCII-case-insensitively, since many upstreams (Express, ASP.NET Core …) route
    /// `/ADMIN` to `/admin`; this only makes a rule apply to more requests.
    pub fn scope_rule(&self, path: &CheckedPath) -> Option<(usize, &ScopeRule)> {
        self.scope_rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| covers(&rule.prefix, path.as_str(), true))
            .max_by_key(|(_, rule)| rule.prefix.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> CheckedPath {
        CheckedPath::new(raw, false).unwrap()
    }

    #[test]
    fn paths_are_decoded_once_and_forwarded_in_canonical_form() {
        assert_eq!(path("/a%20b/%61dmin").as_str(), "/a b/admin");
        assert_eq!(path("/a%20b/%61dmin").encoded(), "/a%20b/admin");
        assert_eq!(path("/caf%C3%A9/x").encoded(), "/caf%C3%A9/x");
        assert_eq!(path("/a%3Fb%23c").encoded(), "/a%3Fb%23c");
        assert_eq!(path("/").as_str(), "/");
        assert_eq!(path("/x/").as_str(), "/x/");
    }

    #[test]
    fn every_spelling_of_a_path_trick_is_refused() {
        for (bad, why) in [
            ("/public/../admin", PathError::DotSegment),
            ("/public/%2e%2e/admin", PathError::DotSegment),
            ("/public/%2E./admin", PathError::DotSegment),
            ("/public/.%2e/admin", PathError::DotSegment),
            ("/./admin", PathError::DotSegment),
            ("/public/..;/admin/users", PathError::DotSegment),
            ("/public/..;x/admin", PathError::DotSegment),
            ("/public/.;x/admin", PathError::DotSegment),
            ("/admin;jsessionid=1", PathError::PathParameter),
            ("/public%2fadmin", PathError::EncodedDelimiter),
            ("/public%2Fadmin", PathError::EncodedDelimiter),
            ("/a%5cb", PathError::EncodedDelimiter),
            ("/a%3bb", PathError::EncodedDelimiter),
            ("/a%252e%252e", PathError::EncodedDelimiter),
            ("/a\\b", PathError::Backslash),
            ("/a%00", PathError::ControlCharacter),
            ("/a%0d%0a", PathError::ControlCharacter),
            ("/a%zz", PathError::MalformedEscape),
            ("/a%4", PathError::MalformedEscape),
            ("/a%ff", PathError::InvalidUtf8),
            ("/a%c3", PathError::InvalidUtf8),
            ("//admin", PathError::EmptySegment),
            ("/public//x", PathError::EmptySegment),
            ("admin", PathError::NotAbsolute),
        ] {
            assert_eq!(CheckedPath::new(bad, false), Err(why), "{bad}");
        }
    }

    #[test]
    fn path_parameters_only_when_allowed_and_never_on_dot_segments() {
        let allowed = CheckedPath::new("/admin;v=1/users", true).unwrap();
        assert_eq!(allowed.as_str(), "/admin;v=1/users");
        assert_eq!(allowed.encoded(), "/admin;v=1/users");
        for bad in ["/public/..;/admin", "/public/%2e%2e;x/admin", "/a%3bb"] {
            assert!(CheckedPath::new(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(covers("/admin", "/admin", false));
        assert!(covers("/admin", "/admin/users", false));
        assert!(covers("/admin", "/admin;v=1", false));
        assert!(!covers("/admin", "/administrator", false));
        assert!(covers("/static/", "/static/app.js", false));
        assert!(!covers("/static/", "/static", false));
        assert!(covers("/", "/anything", false));
        assert!(!covers("/admin", "/ADMIN", false));
        assert!(covers("/admin", "/ADMIN/users", true));
        assert!(!covers("/é", "/x", true));
    }

    #[test]
    fn scope_rules_ignore_case_and_public_paths_do_not() {
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
            allow_path_params: false,
        };
        let scopes = |raw: &str| rules.scope_rule(&path(raw)).map(|(_, rule)| &rule.scopes);
        assert_eq!(scopes("/admin/audit/x").unwrap(), &["audit"]);
        assert_eq!(scopes("/%61dmin/users").unwrap(), &["admin"]);
        assert_eq!(scopes("/ADMIN/users").unwrap(), &["admin"]);
        assert_eq!(scopes("/Admin/Audit").unwrap(), &["audit"]);
        assert!(scopes("/users").is_none());
        assert!(rules.is_public(&path("/public/x")));
        assert!(!rules.is_public(&path("/PUBLIC/x")));
        assert!(!rules.is_public(&path("/publicity")));
    }
}
