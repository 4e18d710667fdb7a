//! Helpers shared by reading and building cards: collecting field errors with the text rules of
//! `agent_registry_core::input` (so a card is refused with pointers into the card, not into the
//! registration made from it), typed look-ups in JSON objects, A2A version numbers and readable
//! endpoint names.

use std::collections::HashSet;

use agent_registry_core::{FieldError, RegistryError};
use serde_json::{Map, Value};

/// Every problem of a card, collected before failing (as core does for registrations).
#[derive(Default)]
pub(crate) struct Problems {
    errors: Vec<FieldError>,
}

impl Problems {
    pub(crate) fn fail(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        self.errors.push(FieldError::new(pointer, detail));
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, RegistryError> {
        if self.errors.is_empty() { Ok(value) } else { Err(RegistryError::Validation(self.errors)) }
    }

    /// A trimmed, non-empty single-line text of at most `max` characters (core's rule for names).
    pub(crate) fn required_text(&mut self, pointer: &str, value: Option<&str>, max: usize) -> String {
        let value = value.unwrap_or_default().trim();
        if value.is_empty() {
            self.fail(pointer, "must not be empty");
        }
        self.text(pointer, value, max, false);
        value.to_owned()
    }

    /// A trimmed optional text; empty reads as absent (core's rule for descriptions and versions).
    pub(crate) fn optional_text(
        &mut self,
        pointer: &str,
        value: Option<&str>,
        max: usize,
        multiline: bool,
    ) -> Option<String> {
        let value = value?.trim();
        self.text(pointer, value, max, multiline);
        (!value.is_empty()).then(|| value.to_owned())
    }

    fn text(&mut self, pointer: &str, value: &str, max: usize, multiline: bool) {
        let chars = value.chars().count();
        if chars > max {
            self.fail(pointer, format!("is {chars} characters long; the registry's limit is {max}"));
        }
        if !text_fits(value, multiline) {
            self.fail(pointer, "must not contain control characters");
        }
    }
}

/// Whether `value` has no control characters (line breaks and tabs allowed when `multiline`).
pub(crate) fn text_fits(value: &str, multiline: bool) -> bool {
    !value.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
}

/// A member of a JSON object, with `null` read as absent: ProtoJSON (A2A v1 §5.5) treats `null`
/// as the field's default, and the v0.x SDKs' models accept `None` for optional fields.
pub(crate) fn member<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

pub(crate) fn string<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    member(object, key).and_then(Value::as_str)
}

pub(crate) fn array<'a>(object: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    member(object, key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

pub(crate) fn object<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    member(object, key).and_then(Value::as_object)
}

/// The strings of an array member, other items skipped.
pub(crate) fn strings<'a>(object: &'a Map<String, Value>, key: &str) -> impl Iterator<Item = &'a str> {
    array(object, key).iter().filter_map(Value::as_str)
}

/// `Major.Minor` of an A2A version string: `1.0`, `0.3.0`, `v0.2.9` or `1`. A2A §3.6 versions are
/// `Major.Minor`; cards of the v0.x era carry a patch number, and some a leading `v`.
pub(crate) fn major_minor(version: &str) -> Option<(u64, u64)> {
    let version = version.trim();
    let version = version.strip_prefix(['v', 'V']).unwrap_or(version);
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = match parts.next() {
        Some(minor) => minor.parse().ok()?,
        None => 0,
    };
    // A patch part may carry a pre-release suffix (`0.3.0-rc1`); only its presence matters.
    if parts.next().is_some_and(str::is_empty) || parts.next().is_some() {
        return None;
    }
    Some((major, minor))
}

/// A version written the A2A v1 way (`Major.Minor`), or the text itself (trimmed) when it is not
/// a version number (the card says what it says; the schema accepts any string).
pub(crate) fn normalize_version(version: &str) -> String {
    major_minor(version).map_or_else(|| version.trim().to_owned(), |(major, minor)| format!("{major}.{minor}"))
}

/// A short lower-case name made of letters, digits and `-` (and `.` when `dots`), for endpoint
/// names derived from bindings (`HTTP+JSON` → `http-json`) and versions.
pub(crate) fn slug(text: &str, dots: bool) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || (dots && c == '.') {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// Endpoint names unique per agent, compared ignoring case as core does.
#[derive(Default)]
pub(crate) struct Names {
    taken: HashSet<String>,
}

impl Names {
    /// The first of `candidates` not taken yet, else the last one with `-2`, `-3`, ... appended.
    pub(crate) fn pick(&mut self, candidates: &[String]) -> String {
        for candidate in candidates {
            if self.taken.insert(candidate.to_lowercase()) {
                return candidate.clone();
            }
        }
        let stem = candidates.last().map_or("a2a", String::as_str);
        (2..).map(|n| format!("{stem}-{n}")).find(|name| self.taken.insert(name.to_lowercase())).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_the_way_cards_write_them() {
        assert_eq!(major_minor("1.0"), Some((1, 0)));
        assert_eq!(major_minor("0.3.0"), Some((0, 3)));
        assert_eq!(major_minor("v0.2.9"), Some((0, 2)));
        assert_eq!(major_minor("1"), Some((1, 0)));
        assert_eq!(major_minor("0.3.0-rc1"), Some((0, 3)));
        assert_eq!(major_minor("latest"), None);
        assert_eq!(major_minor("0.3."), None);
        assert_eq!(major_minor("1.2.3.4"), None);
        assert_eq!(normalize_version(" 0.3.0 "), "0.3");
        assert_eq!(normalize_version("draft"), "draft");
    }

    #[test]
    fn slugs_are_readable_endpoint_names() {
        assert_eq!(slug("HTTP+JSON", false), "http-json");
        assert_eq!(slug("JSONRPC", false), "jsonrpc");
        assert_eq!(slug("urn:agent-registry:rest", false), "urn-agent-registry-rest");
        assert_eq!(slug("+++", false), "");
        assert_eq!(slug("0.3", true), "0.3");
        assert!(slug(&"x".repeat(500), false).len() <= 40);
    }

    #[test]
    fn names_never_repeat_whatever_the_case() {
        let mut names = Names::default();
        assert_eq!(names.pick(&["jsonrpc".into()]), "jsonrpc");
        assert_eq!(names.pick(&["JSONRPC".into(), "jsonrpc-0.3".into()]), "jsonrpc-0.3");
        assert_eq!(names.pick(&["jsonrpc".into(), "jsonrpc-0.3".into()]), "jsonrpc-0.3-2");
        assert_eq!(names.pick(&["jsonrpc-0.3-2".into()]), "jsonrpc-0.3-2-2");
    }
}
