//! ACP agent names. The spec's `AgentName` is an RFC 1123 DNS label
//! (`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, 1 to 63 characters, OpenAPI `components.schemas.AgentName`),
//! but the reference SDK publishes Python function names such as `chat_new` (protocols.md §3.4).
//! The registry serves every agent under a label made here, and keeps the original name as the
//! agent's name.

/// Longest RFC 1123 label (OpenAPI `AgentName.maxLength`).
pub const MAX_LABEL_CHARS: usize = 63;

/// The name used when nothing of the original survives.
const FALLBACK: &str = "agent";

/// Turns any name into an RFC 1123 label: lower case; Latin letters with diacritics folded to
/// ASCII (`é` → `e`, `ß` → `ss`); other non-ASCII letters, digits and combining marks dropped;
/// every run of other characters (spaces, `_`, punctuation, symbols) becomes one `-`; no `-` at
/// either end; at most 63 characters; `agent` when nothing is left.
///
/// Unlike the .NET registry's normaliser (dotnet-agentregistry.md §5.3, §8.1 bug 8) it never
/// returns an empty string or `--`, and it cuts to 63 characters.
pub fn normalise_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_LABEL_CHARS + 1));
    // A separator is written only when a character follows it, so none ends up at either end
    // and runs collapse to one.
    let mut pending_separator = false;
    for c in name.chars() {
        // Past 63 characters the rest cannot change the result.
        if out.len() > MAX_LABEL_CHARS {
            break;
        }
        let mut buf = [0; 4];
        let folded = if c.is_ascii_alphanumeric() {
            Some(&*c.to_ascii_lowercase().encode_utf8(&mut buf))
        } else {
            fold_latin(c)
        };
        if let Some(folded) = folded {
            if pending_separator && !out.is_empty() {
                out.push('-');
            }
            pending_separator = false;
            out.push_str(folded);
        } else if c.is_alphanumeric() || is_combining_mark(c) {
            // A letter we cannot spell in ASCII (or an accent written as its own code point):
            // dropped, so that `Cafe\u{301}` reads `cafe` and a script without a simple
            // transliteration does not turn into a row of hyphens.
        } else {
            pending_separator = true;
        }
    }
    cut(out)
}

/// Appends `-{n}` to a label (after normalising it), cutting the label so that the result stays
/// within 63 characters. The HTTP layer uses it to resolve two agents wanting the same name.
pub fn with_suffix(name: &str, n: u32) -> String {
    let suffix = format!("-{n}");
    let mut base = normalise_name(name);
    // `n` has at most 10 digits, so at least 52 characters of the base remain.
    base.truncate(MAX_LABEL_CHARS - suffix.len());
    let base = base.trim_end_matches('-');
    format!("{base}{suffix}")
}

/// Whether `name` is already an RFC 1123 label, as the spec's `AgentName` requires.
pub fn is_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_CHARS
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// Cuts to 63 characters (the string is ASCII by now), drops a `-` the cut left at the end, and
/// falls back to `agent` when nothing is left.
fn cut(mut label: String) -> String {
    label.truncate(MAX_LABEL_CHARS);
    let trimmed = label.trim_end_matches('-').len();
    label.truncate(trimmed);
    if label.is_empty() { FALLBACK.to_owned() } else { label }
}

/// Combining diacritical marks (U+0300 to U+036F): accents written after their letter.
fn is_combining_mark(c: char) -> bool {
    ('\u{300}'..='\u{36f}').contains(&c)
}

/// ASCII spelling of the letters of Latin-1 Supplement and Latin Extended-A (the letters of the
/// European languages written in Latin script), lower case. `None` for anything else.
fn fold_latin(c: char) -> Option<&'static str> {
    Some(match c {
        'À'..='Å' | 'à'..='å' | '\u{100}'..='\u{105}' => "a",
        'Æ' | 'æ' => "ae",
        'Ç' | 'ç' | '\u{106}'..='\u{10d}' => "c",
        'Ð' | 'ð' | '\u{10e}'..='\u{111}' => "d",
        'È'..='Ë' | 'è'..='ë' | '\u{112}'..='\u{11b}' => "e",
        '\u{11c}'..='\u{123}' => "g",
        '\u{124}'..='\u{127}' => "h",
        'Ì'..='Ï' | 'ì'..='ï' | '\u{128}'..='\u{131}' => "i",
        '\u{132}' | '\u{133}' => "ij",
        '\u{134}' | '\u{135}' => "j",
        '\u{136}'..='\u{138}' => "k",
        '\u{139}'..='\u{142}' => "l",
        'Ñ' | 'ñ' | '\u{143}'..='\u{14b}' => "n",
        'Ò'..='Ö' | 'Ø' | 'ò'..='ö' | 'ø' | '\u{14c}'..='\u{151}' => "o",
        '\u{152}' | '\u{153}' => "oe",
        '\u{154}'..='\u{159}' => "r",
        '\u{15a}'..='\u{161}' | '\u{17f}' => "s",
        'ß' => "ss",
        '\u{162}'..='\u{167}' => "t",
        'Þ' | 'þ' => "th",
        'Ù'..='Ü' | 'ù'..='ü' | '\u{168}'..='\u{173}' => "u",
        '\u{174}' | '\u{175}' => "w",
        'Ý' | 'ý' | 'ÿ' | '\u{176}'..='\u{178}' => "y",
        '\u{179}'..='\u{17e}' => "z",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn sdk_function_names_become_labels() {
        assert_eq!(normalise_name("chat_new"), "chat-new");
        assert_eq!(normalise_name("gpt_researcher"), "gpt-researcher");
        assert_eq!(normalise_name("My  Agent__Name"), "my-agent-name");
        assert_eq!(normalise_name("My Agent Name"), "my-agent-name");
        assert_eq!(normalise_name("__init__"), "init");
        assert_eq!(normalise_name("a - b"), "a-b");
    }

    #[test]
    fn latin_accents_are_folded_and_other_scripts_dropped() {
        assert_eq!(normalise_name("Café Crème"), "cafe-creme");
        assert_eq!(normalise_name("Straße Łódź Ærø Œuvre"), "strasse-lodz-aero-oeuvre");
        assert_eq!(normalise_name("Cafe\u{301}"), "cafe");
        assert_eq!(normalise_name("日本 Bot"), "bot");
        assert_eq!(normalise_name("Агент"), "agent");
        assert_eq!(normalise_name("🤖 helper 🤖"), "helper");
    }

    #[test]
    fn nothing_left_falls_back_to_agent() {
        assert_eq!(normalise_name(""), "agent");
        assert_eq!(normalise_name("---"), "agent");
        assert_eq!(normalise_name("   _ _ "), "agent");
    }

    #[test]
    fn long_names_are_cut_without_a_trailing_hyphen() {
        let name = format!("{}_tail", "a".repeat(62));
        assert_eq!(normalise_name(&name), "a".repeat(62));
        assert_eq!(normalise_name(&"b".repeat(100)), "b".repeat(63));
    }

    #[test]
    fn suffixes_keep_the_label_within_63_characters() {
        assert_eq!(with_suffix("chat-new", 2), "chat-new-2");
        assert_eq!(with_suffix(&"a".repeat(63), 12), format!("{}-12", "a".repeat(60)));
        let cut_after_hyphen = format!("{}-bc", "a".repeat(60));
        assert_eq!(with_suffix(&cut_after_hyphen, 7), format!("{}-7", "a".repeat(60)));
        assert_eq!(with_suffix("", u32::MAX).len(), "agent-4294967295".len());
    }

    proptest! {
        #[test]
        fn any_name_becomes_a_label(name in any::<String>()) {
            let label = normalise_name(&name);
            prop_assert!(is_label(&label), "{label:?}");
            prop_assert!(!label.contains("--"), "{label:?}");
            prop_assert_eq!(normalise_name(&label), label.clone(), "labels are fixed points");
        }

        #[test]
        fn ascii_words_survive_in_order(words in proptest::collection::vec("[a-zA-Z0-9]{1,8}", 1..6), sep in "[ _./:]{1,3}") {
            let name = words.join(&sep);
            let expected = words.iter().map(|w| w.to_ascii_lowercase()).collect::<Vec<_>>().join("-");
            prop_assert_eq!(normalise_name(&name), expected);
        }

        #[test]
        fn suffixed_names_are_labels_ending_in_the_suffix(name in any::<String>(), n in any::<u32>()) {
            let label = with_suffix(&name, n);
            prop_assert!(is_label(&label), "{label:?}");
            let suffix = format!("-{n}");
            prop_assert!(label.ends_with(&suffix), "{label:?}");
        }
    }
}
