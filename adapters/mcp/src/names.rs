//! Small rules both directions share: server names (reverse-DNS with one `/`), remote URL
//! templates, and the remote transport types.

use serde_json::Value;

/// The remote transport types a Server Card and `server.json` admit (`Remote.type`,
/// `StreamableHttpTransport`/`SseTransport`); both are MCP over HTTP.
pub const REMOTE_TYPES: [&str; 2] = ["streamable-http", "sse"];

/// The default remote type: Streamable HTTP replaced HTTP+SSE in MCP 2025-03-26.
pub const STREAMABLE_HTTP: &str = "streamable-http";

/// Namespace of the server names derived for agents that were not registered with an MCP
/// document (their names are rarely reverse-DNS).
pub const GENERIC_NAMESPACE: &str = "agent-registry";

/// Longest server name (`name.maxLength` in both schemas).
const NAME_MAX: usize = 200;

/// Whether `name` is a valid server name: 3 to 200 characters matching
/// `^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$` (server.json `ServerDetail.name`, Server Card `name`).
pub fn is_server_name(name: &str) -> bool {
    let Some((namespace, server)) = name.split_once('/') else { return false };
    (3..=NAME_MAX).contains(&name.len())
        && !namespace.is_empty()
        && !server.is_empty()
        && namespace.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        && server.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A valid server name for an agent called `agent_name`: the name itself when it is one,
/// otherwise `agent-registry/<slug>` where the slug is the lower-cased name with every run of
/// other characters turned into one `-`. `fallback` (e.g. the agent id) is used when nothing of
/// the name survives.
pub fn derive_server_name(agent_name: &str, fallback: &str) -> String {
    if is_server_name(agent_name) {
        return agent_name.to_owned();
    }
    let room = NAME_MAX - GENERIC_NAMESPACE.len() - 1;
    let mut slug = slug(agent_name);
    if slug.is_empty() {
        slug = self::slug(fallback);
    }
    if slug.is_empty() {
        slug.push_str("server");
    }
    // The slug is ASCII, so cutting at a byte count is cutting at a character count.
    slug.truncate(room);
    format!("{GENERIC_NAMESPACE}/{slug}")
}

fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The URL a remote's template stands for once each `{variable}` takes the `default` of its
/// entry in `variables` (server.json 2025-12-11 `RemoteTransport.variables`, Server Card
/// `Remote.variables`). `None` when a variable has no default: such a remote needs a value from
/// the user and cannot be listed as a live endpoint. Braces around anything but an identifier
/// (`[A-Za-z_][A-Za-z0-9_]*`, the card schema's template pattern) are left as they are.
pub fn resolve_template(url: &str, variables: Option<&Value>) -> Option<String> {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_identifier(&after[..close]) => {
                let default = variables?.get(&after[..close])?.get("default")?.as_str()?;
                out.push_str(default);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Cuts `text` to at most `max` characters (JSON Schema lengths count code points), ending a
/// cut text with `…` so that readers see it was cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn server_names_follow_the_schema_pattern() {
        assert!(is_server_name("io.github.user/weather"));
        assert!(is_server_name("a/b"));
        assert!(!is_server_name("ab"));
        assert!(!is_server_name("a/b/c"));
        assert!(!is_server_name("io_github/x"));
        assert!(!is_server_name("/x"));
        assert!(!is_server_name(&format!("a/{}", "b".repeat(199))));
    }

    #[test]
    fn derived_names_are_valid_server_names() {
        assert_eq!(derive_server_name("io.github.user/weather", "id"), "io.github.user/weather");
        assert_eq!(derive_server_name("My Weather Agent!", "id"), "agent-registry/my-weather-agent");
        assert_eq!(derive_server_name("  Ünïcode  ", "id"), "agent-registry/n-code");
        assert_eq!(derive_server_name("日本語", "3F2A-01"), "agent-registry/3f2a-01");
        assert_eq!(derive_server_name("---", ""), "agent-registry/server");
        let long = derive_server_name(&"x".repeat(300), "id");
        assert_eq!(long.len(), 200);
        for name in ["a b/c", "x/y/z", "ü", "A.B_C-D", &"é".repeat(300)] {
            assert!(is_server_name(&derive_server_name(name, "f")), "{name}");
        }
    }

    #[test]
    fn templates_take_their_defaults() {
        let vars = json!({"region": {"default": "eu"}, "host": {"description": "no default"}});
        assert_eq!(resolve_template("https://x/{region}/mcp", Some(&vars)).as_deref(), Some("https://x/eu/mcp"));
        assert_eq!(resolve_template("https://x/{host}/mcp", Some(&vars)), None);
        assert_eq!(resolve_template("https://x/{region}", None), None);
        assert_eq!(resolve_template("https://x/{not a var}/{", None).as_deref(), Some("https://x/{not a var}/{"));
        assert_eq!(resolve_template("https://x/{}", None).as_deref(), Some("https://x/{}"));
    }

    #[test]
    fn truncation_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate_chars("short", 100), "short");
        let cut = truncate_chars(&"é".repeat(150), 100);
        assert_eq!(cut.chars().count(), 100);
        assert!(cut.ends_with('…'));
    }
}
