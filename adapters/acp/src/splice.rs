//! Replacing one top-level member's value in a JSON text without touching any other byte.
//!
//! Parsing a manifest into `serde_json::Value` and writing it back would keep key order
//! (`preserve_order`) but not numbers beyond 64 bits or `f64` (this workspace does not enable
//! `arbitrary_precision`, and enabling it would change every crate's numbers). A submitted
//! manifest's extra fields must come back as they were sent, so the registry-owned `name` is
//! replaced in place instead.

use std::ops::Range;

/// The byte ranges of the values of every top-level member named `key` (several when the
/// object repeats a key). `None` when `text` is not a JSON object; the caller has parsed the
/// text with `serde_json` before, so that only happens if the two disagree.
pub fn top_level_values(text: &str, key: &str) -> Option<Vec<Range<usize>>> {
    let mut scan = Scanner { bytes: text.as_bytes(), at: 0 };
    let mut found = Vec::new();
    scan.whitespace();
    scan.expect(b'{')?;
    scan.whitespace();
    if scan.peek() == Some(b'}') {
        return Some(found);
    }
    loop {
        scan.whitespace();
        let key_range = scan.string()?;
        // Keys may be written with escapes (`"n\u0061me"`); compare what they mean.
        let member: String = serde_json::from_str(text.get(key_range)?).ok()?;
        scan.whitespace();
        scan.expect(b':')?;
        scan.whitespace();
        let value = scan.value()?;
        if member == key {
            found.push(value);
        }
        scan.whitespace();
        match scan.next()? {
            b',' => continue,
            b'}' => return Some(found),
            _ => return None,
        }
    }
}

/// `text` with each range replaced by `replacement`. Ranges are sorted and disjoint.
pub fn replace(text: &str, ranges: &[Range<usize>], replacement: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + replacement.len());
    let mut from = 0;
    for range in ranges {
        out.push_str(text.get(from..range.start)?);
        out.push_str(replacement);
        from = range.end;
    }
    out.push_str(text.get(from..)?);
    Some(out)
}

/// `text` (a JSON object) with the member at `path` set to `value` (JSON text), every other byte
/// kept: objects on the way that are missing or `null` are made. `None` when a member on the way
/// is something else (nothing is set over a value the document gave), or `path` is empty.
pub fn set_path(text: &str, path: &[&str], value: &str) -> Option<String> {
    let (key, rest) = path.split_first()?;
    let ranges = top_level_values(text, key)?;
    let Some(last) = ranges.last() else {
        // Absent: becomes the object's first member.
        let open = text.find('{')? + 1;
        let empty = text.get(open..)?.trim_start().starts_with('}');
        let member = format!("{}:{}{}", quoted(key), nested(rest, value), if empty { "" } else { "," });
        return Some(format!("{}{member}{}", text.get(..open)?, text.get(open..)?));
    };
    let current = text.get(last.clone())?;
    let replacement = match (rest.is_empty(), current) {
        (true, _) => value.to_owned(),
        (false, "null") => nested(rest, value),
        (false, object) if object.starts_with('{') => set_path(object, rest, value)?,
        _ => return None,
    };
    // The last of repeated keys is the one parsers keep.
    replace(text, std::slice::from_ref(last), &replacement)
}

/// `value` inside objects named by `path`, outermost first.
fn nested(path: &[&str], value: &str) -> String {
    path.iter().rev().fold(value.to_owned(), |inner, key| format!("{{{}:{inner}}}", quoted(key)))
}

fn quoted(key: &str) -> String {
    serde_json::Value::String(key.to_owned()).to_string()
}

/// A forward-only reader over JSON bytes that finds where values start and end. It does not
/// check what it skips: the text was parsed by `serde_json` first. Structural bytes are ASCII,
/// so every range it returns lies on UTF-8 character boundaries.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// RFC 8259 §2: whitespace is space, tab, line feed and carriage return.
    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string, quotes included.
    fn string(&mut self) -> Option<Range<usize>> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            match self.next()? {
                b'"' => return Some(start..self.at),
                // The escaped byte is never a quote that ends the string; `\uXXXX` continues
                // with hex digits, which need no care.
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    /// Any value. Objects and arrays are skipped by counting brackets (outside strings), without
    /// recursion, so nesting depth cannot exhaust the stack.
    fn value(&mut self) -> Option<Range<usize>> {
        let start = self.at;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' | b'[' => {
                let mut depth = 0_usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth = depth.checked_sub(1)?,
                        _ => {}
                    }
                    self.at += 1;
                    if depth == 0 {
                        break;
                    }
                }
            }
            // Numbers, `true`, `false`, `null`: up to the next delimiter.
            _ => {
                while !matches!(self.peek(), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                    self.at += 1;
                }
            }
        }
        (self.at > start).then_some(start..self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
        top_level_values(text, key).unwrap().into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn finds_only_top_level_members() {
        let text =
            r#" { "metadata" : {"name": "inner", "x": ["name", {"name": 1}]}, "name"  :  "chat_new" , "n": 1e999 } "#;
        assert_eq!(values(text, "name"), [r#""chat_new""#]);
        assert_eq!(values(text, "n"), ["1e999"]);
        assert_eq!(values(text, "metadata").len(), 1);
        assert!(values(text, "missing").is_empty());
    }

    #[test]
    fn escaped_keys_and_quotes_inside_strings_are_understood() {
        let text = r#"{"a": "he said \"}\" and \\", "n\u0061me": "x\"y", "name": null}"#;
        assert_eq!(values(text, "name"), [r#""x\"y""#, "null"]);
    }

    #[test]
    fn replacing_keeps_every_other_byte() {
        let text = "{\n  \"big\": 123456789012345678901234567890,\n  \"name\": \"chat_new\"\n}";
        let ranges = top_level_values(text, "name").unwrap();
        let out = replace(text, &ranges, "\"chat-new\"").unwrap();
        assert_eq!(out, "{\n  \"big\": 123456789012345678901234567890,\n  \"name\": \"chat-new\"\n}");
    }

    #[test]
    fn a_path_is_set_in_place_making_missing_or_null_objects_and_keeping_every_other_byte() {
        let set = |text: &str| set_path(text, &["metadata", "annotations", "x"], "1");
        assert_eq!(set(r#"{"name": "a"}"#).unwrap(), r#"{"metadata":{"annotations":{"x":1}},"name": "a"}"#);
        assert_eq!(set("{ }").unwrap(), r#"{"metadata":{"annotations":{"x":1}} }"#);
        assert_eq!(set(r#"{"metadata": null}"#).unwrap(), r#"{"metadata": {"annotations":{"x":1}}}"#);
        assert_eq!(
            set(r#"{"metadata": {"n": 12345678901234567890, "annotations": {"x": 0, "y": 2}}}"#).unwrap(),
            r#"{"metadata": {"n": 12345678901234567890, "annotations": {"x": 1, "y": 2}}}"#
        );
        assert_eq!(set(r#"{"metadata": {"annotations": {}}}"#).unwrap(), r#"{"metadata": {"annotations": {"x":1}}}"#);
        assert_eq!(set(r#"{"metadata": ["no"]}"#), None, "a value the document gave is not replaced");
        assert_eq!(set_path("[]", &["a"], "1"), None);
    }

    #[test]
    fn non_objects_and_truncated_text_are_refused() {
        for text in ["[]", "\"name\"", "{\"name\": \"x\"", "{\"name\" \"x\"}", "{\"name\": [1, 2}", "", "{"] {
            assert_eq!(top_level_values(text, "name"), None, "{text}");
        }
        assert_eq!(top_level_values("{}", "name"), Some(vec![]));
    }
}
