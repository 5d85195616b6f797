//! Validated domain values: built through `parse`, so an invalid one
//! cannot exist past the edge that received it.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid {
        field,
        reason: reason.into(),
    }
}

/// A DNS-label-like name (apps and projects become host names):
/// 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter, not
/// ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(field: &'static str, value: &str) -> Result<Slug, Invalid> {
        let ok_chars = value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if value.is_empty() || value.len() > 63 {
            return Err(invalid(field, "must be 1 to 63 characters"));
        }
        if !ok_chars {
            return Err(invalid(field, "may contain only a-z, 0-9 and '-'"));
        }
        if !value.starts_with(|c: char| c.is_ascii_lowercase()) || value.ends_with('-') {
            return Err(invalid(
                field,
                "must start with a letter and not end with '-'",
            ));
        }
        Ok(Slug(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A git repository URL with a scheme Slipway can fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct GitUrl(String);

impl GitUrl {
    pub fn parse(value: &str) -> Result<GitUrl, Invalid> {
        let schemes = ["https://", "http://", "ssh://", "git://", "file://"];
        let scp_like = value.contains('@') && value.contains(':') && !value.contains("://");
        if value.len() > 2048 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("git_url", "must be a URL without spaces"));
        }
        if !(schemes
            .iter()
            .any(|s| value.starts_with(s) && value.len() > s.len())
            || scp_like)
        {
            return Err(invalid("git_url", "must start with https://, http://, ssh://, git:// or file:// (or be user@host:path)"));
        }
        Ok(GitUrl(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A branch, tag or commit: what `git check-ref-format` accepts, plus HEAD
/// and hex commit ids, within the safe subset the API documents (the
/// `GitRefName` pattern: words of letters, digits and `_` joined by single
/// `.`, `/` or `-`), so what the document allows and what is accepted are
/// the same (a name with `+`, `@` or letters beyond ASCII is refused; a
/// commit id reaches those).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct GitRef(String);

impl GitRef {
    pub fn parse(value: &str) -> Result<GitRef, Invalid> {
        let bad = value.is_empty()
            || value.len() > 255
            || value.starts_with('-')
            || value.starts_with('/')
            || value.ends_with('/')
            || value.ends_with(".lock")
            || value.ends_with('.')
            || value.contains("..")
            || value.contains("@{")
            || value.contains("//")
            || value
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
            || !documented_ref(value);
        if bad {
            return Err(invalid(
                "git_ref",
                "is not a valid branch, tag or commit name",
            ));
        }
        Ok(GitRef(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `^[A-Za-z0-9_]+([./-][A-Za-z0-9_]+)*$`: the API document's pattern.
fn documented_ref(value: &str) -> bool {
    value
        .split(['.', '/', '-'])
        .all(|word| !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(Slug::parse("name", "web-1").is_ok());
        for bad in ["", "Web", "1web", "web-", "we_b", "a b", &"a".repeat(64)] {
            assert!(Slug::parse("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn git_urls() {
        for good in [
            "https://example.com/a.git",
            "file:///srv/repo",
            "git@host:org/repo.git",
            "git://127.0.0.1/r",
        ] {
            assert!(GitUrl::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "ftp://x", "https://", "https://a b", "/local/path"] {
            assert!(GitUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn git_refs() {
        for good in ["main", "v1.2.3", "feature/x", "HEAD", "0123abcd"] {
            assert!(GitRef::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "x.lock", "a~1", "refs/", "a:b", "a+b", "ü", "a/-b",
        ] {
            assert!(GitRef::parse(bad).is_err(), "{bad}");
        }
    }
}
