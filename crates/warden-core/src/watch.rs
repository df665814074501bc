//! Which events a watcher wants: one key, a subtree, or a glob pattern.
//!
//! A prefix is a path, matched segment by segment: `/app` matches `/app` and `/app/x` but
//! not `/apple` (a byte prefix, as etcd's, would). A glob is matched with `globset` with
//! `*` stopping at `/` and `**` crossing it: `/locks/*/holder` or `/config/**`.

use globset::{GlobBuilder, GlobMatcher};

use crate::error::CoreError;
use crate::limits::Limits;
use crate::path;

/// What a watcher matches.
#[derive(Debug, Clone)]
pub enum WatchFilter {
    /// Events on exactly this path.
    Key(String),
    /// Events on this path and everything under it.
    Prefix(String),
    /// Events on paths the pattern matches.
    Glob {
        /// The pattern as given.
        pattern: String,
        /// The compiled pattern.
        matcher: GlobMatcher,
    },
}

impl WatchFilter {
    /// A watch of one key.
    pub fn key(path: &str, limits: &Limits) -> Result<WatchFilter, CoreError> {
        path::validate(path, limits)?;
        Ok(WatchFilter::Key(path.to_owned()))
    }

    /// A watch of a subtree.
    pub fn prefix(path: &str, limits: &Limits) -> Result<WatchFilter, CoreError> {
        path::validate(path, limits)?;
        Ok(WatchFilter::Prefix(path.to_owned()))
    }

    /// A watch of a glob pattern.
    pub fn glob(pattern: &str, limits: &Limits) -> Result<WatchFilter, CoreError> {
        let invalid =
            |reason: String| CoreError::InvalidGlob { pattern: pattern.to_owned(), reason };
        if !pattern.starts_with('/') {
            return Err(invalid("a pattern must start with \"/\", as paths do".into()));
        }
        if pattern.len() > limits.max_path_bytes {
            return Err(invalid(format!(
                "it is longer than the path limit of {} bytes",
                limits.max_path_bytes
            )));
        }
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| invalid(e.kind().to_string()))?;
        Ok(WatchFilter::Glob { pattern: pattern.to_owned(), matcher: glob.compile_matcher() })
    }

    /// Whether an event on `event_path` is wanted.
    pub fn matches(&self, event_path: &str) -> bool {
        match self {
            WatchFilter::Key(key) => event_path == key,
            WatchFilter::Prefix(prefix) => {
                prefix == path::ROOT
                    || event_path == prefix
                    || (event_path.starts_with(prefix.as_str())
                        && event_path.as_bytes().get(prefix.len()) == Some(&b'/'))
            }
            WatchFilter::Glob { matcher, .. } => matcher.is_match(event_path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn key_matches_only_itself() {
        let f = WatchFilter::key("/a/b", &limits()).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.matches("/a/b"));
        assert!(!f.matches("/a/b/c") && !f.matches("/a") && !f.matches("/a/bc"));
    }

    #[test]
    fn prefix_matches_by_segment() {
        let f = WatchFilter::prefix("/app", &limits()).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.matches("/app") && f.matches("/app/x") && f.matches("/app/x/y"));
        assert!(!f.matches("/apple") && !f.matches("/ap") && !f.matches("/"));
        let root = WatchFilter::prefix("/", &limits()).unwrap_or_else(|e| panic!("{e}"));
        assert!(root.matches("/") && root.matches("/anything/at/all"));
    }

    #[test]
    fn glob_stars_stop_at_slashes() {
        let f = WatchFilter::glob("/locks/*/holder", &limits()).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.matches("/locks/db/holder"));
        assert!(!f.matches("/locks/db/x/holder"));
        let deep = WatchFilter::glob("/config/**", &limits()).unwrap_or_else(|e| panic!("{e}"));
        assert!(deep.matches("/config/a") && deep.matches("/config/a/b/c"));
        assert!(!deep.matches("/configs/a"));
    }

    #[test]
    fn bad_filters_are_refused_with_reasons() {
        assert!(matches!(WatchFilter::key("a", &limits()), Err(CoreError::InvalidPath { .. })));
        assert!(matches!(
            WatchFilter::prefix("/a/", &limits()),
            Err(CoreError::InvalidPath { .. })
        ));
        assert!(matches!(WatchFilter::glob("/a/[", &limits()), Err(CoreError::InvalidGlob { .. })));
        assert!(matches!(WatchFilter::glob("a/*", &limits()), Err(CoreError::InvalidGlob { .. })));
    }
}
