//! Discovery queries: the filters a consumer can combine, parsed from `key=value` pairs with a
//! 400 for every value that does not make sense (never silently ignored).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::RegistryError;
use crate::model::{AgentId, Protocol, Transport};

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;
const MAX_PAGE: usize = 1_000_000;
const MAX_FILTER_VALUES: usize = 32;
const MAX_VALUE_CHARS: usize = 256;

/// Position in the stable discovery order: case-insensitive name, then id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    pub name: String,
    pub id: AgentId,
}

impl SortKey {
    pub fn new(name: &str, id: AgentId) -> Self {
        Self { name: name.to_lowercase(), id }
    }

    /// Opaque cursor text for "after this agent".
    pub fn to_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}\n{}", self.id, self.name))
    }

    pub fn from_cursor(cursor: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (id, name) = text.split_once('\n')?;
        Some(Self { name: name.to_owned(), id: AgentId(uuid::Uuid::try_parse(id).ok()?) })
    }
}

/// Where a page starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Position {
    /// 1-based page number.
    Page(usize),
    /// The page right after this agent.
    After(SortKey),
    /// The page starting after this many agents (ACP's `offset`).
    Offset(usize),
}

/// A validated discovery query. All filters combine with AND.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DiscoveryQuery {
    /// Exact capability name (stored lower-case; matching is case-insensitive).
    pub capability: Option<String>,
    pub capability_prefix: Option<String>,
    /// Every tag must be on the agent or on one of its capabilities (lower-case).
    pub tags: Vec<String>,
    /// Every `key:value` pair must be among the agent's labels (exact).
    pub labels: Vec<(String, String)>,
    /// An endpoint must speak one of these (empty: any).
    pub protocols: Vec<Protocol>,
    /// An endpoint must use one of these (empty: any).
    pub transports: Vec<Transport>,
    /// Every word must start a word of the agent's name, description, tags, or a capability's
    /// name, description or tags (lower-case).
    pub words: Vec<String>,
    pub owner: Option<String>,
    /// Only live endpoints count (and are returned).
    pub live_only: bool,
    /// With `protocols`: agents registered with a document of one of them match even without
    /// such an endpoint (an MCP server offered only as a package), unless `live_only`.
    pub with_documents: bool,
    pub position: Position,
    pub page_size: usize,
}

impl DiscoveryQuery {
    /// Everything, with the given liveness default.
    pub fn all(live_only: bool) -> Self {
        Self {
            capability: None,
            capability_prefix: None,
            tags: Vec::new(),
            labels: Vec::new(),
            protocols: Vec::new(),
            transports: Vec::new(),
            words: Vec::new(),
            owner: None,
            live_only,
            with_documents: false,
            position: Position::Page(1),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// The same query without its paging: every page of it shares one answer.
    pub fn answer_key(&self) -> Self {
        Self { position: Position::Page(1), page_size: 0, ..self.clone() }
    }

    /// Whether endpoints are filtered at all; when not, agents are returned whole, including
    /// agents without endpoints.
    pub fn filters_endpoints(&self) -> bool {
        self.live_only || !self.protocols.is_empty() || !self.transports.is_empty()
    }

    /// Parses query-string pairs. `allow_owner` admits the `owner` filter (agent listing).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        live_only_default: bool,
        allow_owner: bool,
    ) -> Result<Self, RegistryError> {
        let mut q = Self::all(live_only_default);
        let mut page = None;
        let mut cursor = None;
        for (key, value) in pairs {
            if value.chars().count() > MAX_VALUE_CHARS {
                return Err(RegistryError::query(key, format!("is longer than {MAX_VALUE_CHARS} characters")));
            }
            match key {
                "capability" => q.capability = Some(single(key, value)?.to_lowercase()),
                "capabilityPrefix" => q.capability_prefix = Some(single(key, value)?.to_lowercase()),
                "tags" | "tag" => q.tags.extend(list(key, value)?.map(str::to_lowercase)),
                "label" | "labels" => {
                    for pair in list(key, value)? {
                        let (k, v) = pair.split_once(':').ok_or_else(|| {
                            RegistryError::query(key, format!("`{pair}` is not of the form key:value"))
                        })?;
                        q.labels.push((k.trim().to_owned(), v.trim().to_owned()));
                    }
                }
                "protocol" => {
                    for p in list(key, value)? {
                        q.protocols.push(p.parse().map_err(|e: String| RegistryError::query(key, e))?);
                    }
                }
                "transport" => {
                    for t in list(key, value)? {
                        q.transports.push(t.parse().map_err(|e: String| RegistryError::query(key, e))?);
                    }
                }
                "q" => {
                    let words = words(value);
                    if words.is_empty() {
                        return Err(RegistryError::query(key, "must contain at least one word"));
                    }
                    q.words.extend(words);
                }
                "owner" if allow_owner => q.owner = Some(single(key, value)?.to_owned()),
                "liveOnly" => {
                    q.live_only = match value.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(RegistryError::query(key, "must be true or false")),
                    }
                }
                "page" => page = Some(number(key, value, 1, MAX_PAGE)?),
                "pageSize" => q.page_size = number(key, value, 1, MAX_PAGE_SIZE)?,
                "cursor" => {
                    cursor = Some(
                        SortKey::from_cursor(value.trim())
                            .ok_or_else(|| RegistryError::query(key, "is not a cursor this registry issued"))?,
                    )
                }
                other => {
                    return Err(RegistryError::query(other, format!("`{other}` is not a known parameter")));
                }
            }
        }
        for (len, key) in [(q.tags.len(), "tags"), (q.labels.len(), "label"), (q.words.len(), "q")] {
            if len > MAX_FILTER_VALUES {
                return Err(RegistryError::query(key, format!("at most {MAX_FILTER_VALUES} values")));
            }
        }
        q.position = match (page, cursor) {
            (Some(_), Some(_)) => {
                return Err(RegistryError::query("cursor", "use either page or cursor, not both"));
            }
            (_, Some(after)) => Position::After(after),
            (page, None) => Position::Page(page.unwrap_or(1)),
        };
        Ok(q)
    }
}

fn single<'a>(key: &str, value: &'a str) -> Result<&'a str, RegistryError> {
    let v = value.trim();
    if v.is_empty() { Err(RegistryError::query(key, "must not be empty")) } else { Ok(v) }
}

fn list<'a>(key: &str, value: &'a str) -> Result<impl Iterator<Item = &'a str>, RegistryError> {
    single(key, value)?;
    Ok(value.split(',').map(str::trim).filter(|s| !s.is_empty()))
}

fn number(key: &str, value: &str, min: usize, max: usize) -> Result<usize, RegistryError> {
    match value.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(RegistryError::query(key, format!("must be a whole number from {min} to {max}"))),
    }
}

/// Splits text into lower-case words for indexing and searching.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().take(64).collect::<String>().to_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_rejected_with_the_parameter_named() {
        for (k, v) in [("protocol", "bogus"), ("pageSize", "500"), ("page", "0"), ("liveOnly", "yes"), ("x", "1")] {
            let err = DiscoveryQuery::from_pairs([(k, v)], true, false).unwrap_err();
            assert_eq!(err.fields()[0].pointer, format!("?{k}"), "{k}={v}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let key = SortKey::new("Summariser One", AgentId::new_random());
        assert_eq!(SortKey::from_cursor(&key.to_cursor()), Some(key));
    }
}
