//! Strict JSON: a body whose object repeats a key is refused, whatever it is parsed into. RFC
//! 8259 §4 leaves repeated names to each parser ("the behavior ... is unpredictable") and I-JSON
//! (RFC 7493 §2.3) forbids them: a registry that kept the last `"name"` of an A2A card while a
//! client keeps the first would show the two of them different agents.
//!
//! The check is one pass over the bytes with serde's visitors, allocating only for keys with
//! escapes and for objects of many keys; it finds the pointer of a repeated key only on the way
//! back from an error, so a valid body pays for no paths.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use agent_registry_core::input::escape_pointer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Objects up to this many keys are checked by comparing with each earlier key; bigger ones
/// through a hash set.
const LINEAR_KEYS: usize = 16;

/// The JSON pointer of the first key an object of `bytes` repeats, if any. Text that is not
/// JSON passes: the parser that reads the body reports it with its position.
pub fn repeated_key(bytes: &[u8]) -> Option<String> {
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match (Check { found: &found }).deserialize(&mut de) {
        Ok(()) => None,
        Err(_) => found.into_inner(),
    }
}

/// Visits one value; on a repeated key, records its pointer (built from the inside out).
#[derive(Clone, Copy)]
struct Check<'a> {
    found: &'a RefCell<Option<String>>,
}

impl Check<'_> {
    /// Puts `segment` in front of the pointer found below it.
    fn prefix(&self, segment: &str) {
        if let Some(pointer) = self.found.borrow_mut().as_mut() {
            pointer.insert_str(0, &format!("/{}", escape_pointer(segment)));
        }
    }
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(())) => index += 1,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.prefix(&index.to_string());
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Seen::default();
        while let Some(Key(key)) = map.next_key()? {
            if !seen.insert(key.clone()) {
                *self.found.borrow_mut() = Some(format!("/{}", escape_pointer(&key)));
                return Err(de::Error::custom("a repeated key"));
            }
            if let Err(e) = map.next_value_seed(self) {
                self.prefix(&key);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// The keys of one object so far.
#[derive(Default)]
struct Seen<'de> {
    few: Vec<Cow<'de, str>>,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Seen<'de> {
    /// Whether `key` is new in the object.
    fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() > LINEAR_KEYS {
            self.many = Some(self.few.drain(..).collect());
        }
        true
    }
}

/// An object key, borrowed from the body unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::repeated_key;

    #[test]
    fn a_repeated_key_is_found_at_its_pointer_at_any_depth() {
        assert_eq!(repeated_key(br#"{"name": "a", "name": "b"}"#).as_deref(), Some("/name"));
        assert_eq!(
            repeated_key(br#"{"card": {"skills": [{}, {"id": 1, "x/y": 2, "x/y": 3}]}}"#).as_deref(),
            Some("/card/skills/1/x~1y")
        );
        // Escapes name the same key.
        assert_eq!(repeated_key(br#"{"a": {"name": 1, "n\u0061me": 2}}"#).as_deref(), Some("/a/name"));
        let many: String = (0..40).map(|i| format!("\"k{i}\": {i},")).collect();
        assert_eq!(repeated_key(format!("{{{many} \"k7\": 0}}").as_bytes()).as_deref(), Some("/k7"));
    }

    #[test]
    fn unique_keys_and_text_that_is_not_json_pass() {
        for ok in
            [&br#"{"a": {"a": [{"a": 1}, {"a": 2}]}, "b": null}"#[..], b"[1, \"x\", true]", b"{", b"", b"{\"a\":1,}"]
        {
            assert_eq!(repeated_key(ok), None, "{}", String::from_utf8_lossy(ok));
        }
    }
}
