//! Paths of the namespace: validation and the few string operations the tree needs.
//!
//! A path is absolute, `/`-separated UTF-8 with no empty, `.` or `..` segments and no control
//! characters (DESIGN §2). Validation returns the first rule broken, so an error can name it.
//! Validated paths are used as they are: there is no normalisation, so one node has exactly
//! one spelling.

use crate::error::CoreError;
use crate::limits::Limits;

/// The path of the root node.
pub const ROOT: &str = "/";

pub use crate::path_rule::PathRule;

/// Checks `path` against every rule, returning the first one it breaks.
pub fn check(path: &str, limits: &Limits) -> Result<(), PathRule> {
    if path.is_empty() {
        return Err(PathRule::Empty);
    }
    if !path.starts_with('/') {
        return Err(PathRule::NotAbsolute);
    }
    if path.len() > limits.max_path_bytes {
        return Err(PathRule::TooLong { len: path.len(), max: limits.max_path_bytes });
    }
    if let Some((offset, _)) = path.char_indices().find(|(_, c)| c.is_control()) {
        return Err(PathRule::ControlCharacter { offset });
    }
    if path == ROOT {
        return Ok(());
    }
    let depth = path.bytes().filter(|b| *b == b'/').count();
    if depth > limits.max_path_depth {
        return Err(PathRule::TooDeep { depth, max: limits.max_path_depth });
    }
    if path.ends_with('/') {
        return Err(PathRule::TrailingSlash);
    }
    for segment in path.split('/').skip(1) {
        match segment {
            "" => return Err(PathRule::EmptySegment),
            "." => return Err(PathRule::DotSegment),
            ".." => return Err(PathRule::DotDotSegment),
            s if s.len() > limits.max_segment_bytes => {
                return Err(PathRule::SegmentTooLong {
                    len: s.len(),
                    max: limits.max_segment_bytes,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Validates `path`, as [`check`] does, into a [`CoreError::InvalidPath`].
pub fn validate(path: &str, limits: &Limits) -> Result<(), CoreError> {
    check(path, limits).map_err(|rule| CoreError::InvalidPath { path: path.to_owned(), rule })
}

/// The parent of a valid path; `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path == ROOT {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some(ROOT),
        Some(i) => path.get(..i),
        None => None,
    }
}

/// The last segment of a valid path; empty for the root.
pub fn name(path: &str) -> &str {
    path.rfind('/').and_then(|i| path.get(i + 1..)).unwrap_or("")
}

/// The number of segments: 0 for the root, 1 for `/a`, 2 for `/a/b`.
pub fn depth(path: &str) -> u32 {
    if path == ROOT {
        0
    } else {
        // A valid path has fewer than u32::MAX segments: its length is bounded by Limits.
        u32::try_from(path.bytes().filter(|b| *b == b'/').count()).unwrap_or(u32::MAX)
    }
}

/// The path of `path`'s first `segments` segments (`path` itself when it has no more;
/// the root for 0): `/a/b/c` at 2 is `/a/b`.
pub fn truncate(path: &str, segments: usize) -> &str {
    if segments == 0 {
        return ROOT;
    }
    match path.match_indices('/').nth(segments) {
        Some((at, _)) => path.get(..at).unwrap_or(path),
        None => path,
    }
}

/// `parent` joined with `name`.
pub fn join(parent: &str, name: &str) -> String {
    if parent == ROOT { format!("/{name}") } else { format!("{parent}/{name}") }
}

/// The prefix every child path of `parent` starts with (`/` for the root, `/a/` for `/a`).
pub fn child_prefix(parent: &str) -> String {
    if parent == ROOT { ROOT.to_owned() } else { format!("{parent}/") }
}

/// Whether `path` is `prefix` or under it, by whole segments: `/a/b` is within `/a`,
/// `/ab` is not; every path is within the root.
pub fn is_within(path: &str, prefix: &str) -> bool {
    path == prefix || path.starts_with(&child_prefix(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str) -> Option<PathRule> {
        check(path, &Limits::default()).err()
    }

    #[test]
    fn truncate_keeps_the_first_segments() {
        assert_eq!(truncate("/a/b/c", 0), "/");
        assert_eq!(truncate("/a/b/c", 1), "/a");
        assert_eq!(truncate("/a/b/c", 2), "/a/b");
        assert_eq!(truncate("/a/b/c", 3), "/a/b/c");
        assert_eq!(truncate("/a/b/c", 9), "/a/b/c");
        assert_eq!(truncate("/", 2), "/");
        assert_eq!(truncate("/日本/b", 1), "/日本");
    }

    #[test]
    fn accepts_valid_paths() {
        for p in ["/", "/a", "/a/b", "/a.b/c-d_e", "/ü/日本", "/a/...", "/.hidden", "/a b"] {
            assert_eq!(rule(p), None, "{p}");
        }
    }

    #[test]
    fn names_each_broken_rule() {
        assert_eq!(rule(""), Some(PathRule::Empty));
        assert_eq!(rule("a/b"), Some(PathRule::NotAbsolute));
        assert_eq!(rule("/a/"), Some(PathRule::TrailingSlash));
        assert_eq!(rule("/a//b"), Some(PathRule::EmptySegment));
        assert_eq!(rule("//"), Some(PathRule::TrailingSlash));
        assert_eq!(rule("/a/./b"), Some(PathRule::DotSegment));
        assert_eq!(rule("/a/.."), Some(PathRule::DotDotSegment));
        assert_eq!(rule("/a\u{0}b"), Some(PathRule::ControlCharacter { offset: 2 }));
        assert_eq!(rule("/a\nb"), Some(PathRule::ControlCharacter { offset: 2 }));
        assert_eq!(rule("/a\u{7f}"), Some(PathRule::ControlCharacter { offset: 2 }));
        assert_eq!(rule("/\u{85}"), Some(PathRule::ControlCharacter { offset: 1 }));
    }

    #[test]
    fn enforces_length_limits() {
        let limits = Limits { max_path_bytes: 10, max_segment_bytes: 3, ..Limits::default() };
        assert_eq!(check("/abc/def", &limits), Ok(()));
        assert_eq!(check("/abcd", &limits), Err(PathRule::SegmentTooLong { len: 4, max: 3 }));
        assert_eq!(check("/abc/def/gh", &limits), Err(PathRule::TooLong { len: 11, max: 10 }));
        // Limits count bytes, not characters.
        assert_eq!(check("/éé", &limits), Err(PathRule::SegmentTooLong { len: 4, max: 3 }));
        let shallow = Limits { max_path_depth: 2, ..Limits::default() };
        assert_eq!(check("/a/b", &shallow), Ok(()));
        assert_eq!(check("/", &shallow), Ok(()));
        assert_eq!(check("/a/b/c", &shallow), Err(PathRule::TooDeep { depth: 3, max: 2 }));
    }

    #[test]
    fn default_limits_match_the_design() {
        let limits = Limits::default();
        let long_segment = format!("/{}", "x".repeat(256));
        assert_eq!(check(&long_segment, &limits), Ok(()));
        let too_long_segment = format!("/{}", "x".repeat(257));
        assert!(matches!(check(&too_long_segment, &limits), Err(PathRule::SegmentTooLong { .. })));
        // 1,024 bytes in 64 segments: as long and as deep as the defaults allow.
        let long_path = "/abcdefghijklmno".repeat(64);
        assert_eq!(check(&long_path, &limits), Ok(()));
        let too_long_path = format!("{long_path}/x");
        assert!(matches!(check(&too_long_path, &limits), Err(PathRule::TooLong { .. })));
        let too_deep = "/a".repeat(65);
        assert_eq!(check(&too_deep, &limits), Err(PathRule::TooDeep { depth: 65, max: 64 }));
    }

    #[test]
    fn error_message_names_path_and_rule() {
        let err = validate("/a//b", &Limits::default()).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid path \"/a//b\": a path cannot contain an empty segment (\"//\")")
        );
    }

    #[test]
    fn splits_paths() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(name("/"), "");
        assert_eq!(name("/a/b"), "b");
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a"), 1);
        assert_eq!(depth("/a/b/c"), 3);
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(child_prefix("/"), "/");
        assert_eq!(child_prefix("/a"), "/a/");
    }

    #[test]
    fn a_path_is_within_its_ancestors_by_whole_segments() {
        assert!(is_within("/a", "/a"));
        assert!(is_within("/a/b/c", "/a"));
        assert!(is_within("/a", "/"));
        assert!(!is_within("/ab", "/a"));
        assert!(!is_within("/a", "/a/b"));
    }
}
