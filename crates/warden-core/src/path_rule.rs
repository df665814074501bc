//! The rules a path can break, named in [`CoreError::InvalidPath`](crate::CoreError). A
//! leaf module (it imports nothing from the crate), so the error type and the path rules
//! do not import each other.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The rule a path broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathRule {
    /// The path is the empty string.
    Empty,
    /// The path does not start with `/`.
    NotAbsolute,
    /// The path ends with `/` (only the root may).
    TrailingSlash,
    /// Two slashes in a row.
    EmptySegment,
    /// A `.` segment.
    DotSegment,
    /// A `..` segment.
    DotDotSegment,
    /// A control character (U+0000..U+001F, U+007F..U+009F).
    ControlCharacter {
        /// The byte offset of the character.
        offset: usize,
    },
    /// The whole path is longer than the limit.
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// One segment is longer than the limit.
    SegmentTooLong {
        /// The segment's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The path has more segments than the limit.
    TooDeep {
        /// Its number of segments.
        depth: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for PathRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathRule::Empty => write!(f, "a path cannot be empty; the root is \"/\""),
            PathRule::NotAbsolute => write!(f, "a path must start with \"/\""),
            PathRule::TrailingSlash => {
                write!(f, "a path cannot end with \"/\" (only the root is \"/\")")
            }
            PathRule::EmptySegment => write!(f, "a path cannot contain an empty segment (\"//\")"),
            PathRule::DotSegment => write!(f, "a path cannot contain a \".\" segment"),
            PathRule::DotDotSegment => write!(f, "a path cannot contain a \"..\" segment"),
            PathRule::ControlCharacter { offset } => {
                write!(f, "a path cannot contain control characters (one at byte {offset})")
            }
            PathRule::TooLong { len, max } => {
                write!(f, "the path is {len} bytes long, more than the limit of {max}")
            }
            PathRule::SegmentTooLong { len, max } => {
                write!(f, "a segment is {len} bytes long, more than the limit of {max}")
            }
            PathRule::TooDeep { depth, max } => write!(
                f,
                "the path has {depth} segments, more than the limit (limits.max_path_depth) of {max}"
            ),
        }
    }
}
