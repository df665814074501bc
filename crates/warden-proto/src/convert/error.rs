//! The one error of a conversion: a field whose value this side cannot take.

use std::fmt;

/// A field of a message whose value cannot be converted: an enum number or a name this
/// side does not know, or a required oneof left unset; or, from the core's side, a value
/// the wire cannot carry. Its text names where the field is, the field, the value and what
/// is accepted, so that whoever reads it can fix the request (or upgrade the older side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError {
    /// The field, as the `.proto` names it (`op`, `kind`, `target`...).
    pub field: &'static str,
    /// What the field holds, in words (`compare op`, `node kind`).
    pub what: &'static str,
    /// The value found, as text (`"99"`, `"\"barrier\""`); `None` when nothing was set.
    pub value: Option<String>,
    /// What is accepted instead (`use COMPARE_OP_EQUAL (0), ...`).
    pub hint: String,
    /// Where the field is (`the create of "/a"`, `transaction compare 1 (on "/b")`).
    pub within: String,
}

impl ConvertError {
    /// `field` (a `what`) of `within` has `value`, which is not among those `hint` names.
    pub(crate) fn unknown(
        field: &'static str,
        what: &'static str,
        value: impl fmt::Display,
        within: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConvertError {
        ConvertError {
            field,
            what,
            value: Some(value.to_string()),
            hint: hint.into(),
            within: within.into(),
        }
    }

    /// `field` of `within` is not set; `hint` says what to set.
    pub(crate) fn unset(
        field: &'static str,
        within: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConvertError {
        ConvertError { field, what: "value", value: None, hint: hint.into(), within: within.into() }
    }

    /// The same error, placed inside `outer` (e.g. the transaction operation it is in).
    pub(crate) fn inside(mut self, outer: impl fmt::Display) -> ConvertError {
        self.within = format!("{}, {outer}", self.within);
        self
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(
                f,
                "unknown {} {value} in field `{}` of {}; {}",
                self.what, self.field, self.within, self.hint
            ),
            None => {
                write!(f, "field `{}` of {} is not set; {}", self.field, self.within, self.hint)
            }
        }
    }
}

impl std::error::Error for ConvertError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_the_field_the_value_where_and_what_is_accepted() {
        let e = ConvertError::unknown(
            "op",
            "compare op",
            99,
            "transaction compare 1 (on \"/b\")",
            "use A (0)",
        );
        assert_eq!(
            e.to_string(),
            "unknown compare op 99 in field `op` of transaction compare 1 (on \"/b\"); use A (0)"
        );
        let e = ConvertError::unset("target", "transaction compare 0 (on \"/a\")", "set exists");
        assert_eq!(
            e.to_string(),
            "field `target` of transaction compare 0 (on \"/a\") is not set; set exists"
        );
    }

    #[test]
    fn inside_adds_the_outer_place() {
        let e = ConvertError::unknown("kind", "node kind", 7, "the create of \"/n\"", "use B")
            .inside("transaction operation 2");
        assert_eq!(e.within, "the create of \"/n\", transaction operation 2");
        assert_eq!(e.value.as_deref(), Some("7"));
    }
}
