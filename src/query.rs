//! Discovery queries: the filters a consumer can combine, parsed from `key=value` pairs (REST) or
//! built from typed filters (MCP tools), with the same 400 for every value that does not make
//! sense (never silently ignored).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::RegistryError;
use crate::model::{AgentId, Protocol, Transport};

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;
pub const MAX_PAGE: usize = 1_000_000;
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
    /// A capability name must contain this (lower-case; the .NET registry's `capability`
    /// matched a substring, and its clients rely on it).
    pub capability_contains: Option<String>,
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
            capability_contains: None,
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
        let mut b = Builder::new(live_only_default);
        for (key, value) in pairs {
            text(key, value)?;
            match key {
                "capability" => b.capability(value)?,
                "capabilityPrefix" => b.capability_prefix(value)?,
                "capabilityContains" => {
                    b.q.capability_contains = Some(single(key, value)?.to_lowercase());
                }
                "tags" | "tag" => b.tags(key, value)?,
                "label" | "labels" => b.labels(key, value)?,
                "protocol" => b.protocols(value)?,
                "transport" => b.transports(value)?,
                "q" => b.words(value)?,
                "owner" if allow_owner => b.q.owner = Some(single(key, value)?.to_owned()),
                "liveOnly" => {
                    b.q.live_only = match value.trim().to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(RegistryError::query(key, "must be true or false")),
                    }
                }
                "page" => b.page = Some(number(key, value.trim().parse().ok(), 1, MAX_PAGE)?),
                "pageSize" => b.q.page_size = number(key, value.trim().parse().ok(), 1, MAX_PAGE_SIZE)?,
                "cursor" => b.cursor(value)?,
                other => {
                    return Err(RegistryError::query(other, format!("`{other}` is not a known parameter")));
                }
            }
        }
        b.finish()
    }

    /// Builds a query from typed filters, validated as their query-string forms are: the same
    /// limits, and errors pointing at the same `?name`.
    pub fn from_filters(filters: Filters<'_>, live_only_default: bool) -> Result<Self, RegistryError> {
        let mut b = Builder::new(live_only_default);
        if let Some(v) = filters.capability {
            b.capability(v)?;
        }
        if let Some(v) = filters.capability_prefix {
            b.capability_prefix(v)?;
        }
        if let Some(v) = filters.capability_contains {
            text("capabilityContains", v)?;
            b.q.capability_contains = Some(single("capabilityContains", v)?.to_lowercase());
        }
        if let Some(v) = filters.protocol {
            b.protocols(v)?;
        }
        if let Some(v) = filters.transport {
            b.transports(v)?;
        }
        if let Some(v) = filters.q {
            b.words(v)?;
        }
        if let Some(v) = filters.cursor {
            b.cursor(v)?;
        }
        for tag in &filters.tags {
            b.tags("tags", tag)?;
        }
        for label in &filters.labels {
            b.labels("label", label)?;
        }
        if let Some(live_only) = filters.live_only {
            b.q.live_only = live_only;
        }
        if let Some(n) = filters.page {
            b.page = Some(number("page", Some(n), 1, MAX_PAGE)?);
        }
        if let Some(n) = filters.page_size {
            b.q.page_size = number("pageSize", Some(n), 1, MAX_PAGE_SIZE)?;
        }
        b.finish()
    }
}

/// The filters of a discovery query as typed values, for front doors whose arguments are not a
/// query string (the MCP tools). Text values take the forms their query parameters take: `tags`,
/// `labels`, `protocol` and `transport` may each be comma-separated lists.
#[derive(Clone, Debug, Default)]
pub struct Filters<'a> {
    pub capability: Option<&'a str>,
    pub capability_prefix: Option<&'a str>,
    /// Part of a capability name, in any case.
    pub capability_contains: Option<&'a str>,
    pub tags: Vec<&'a str>,
    /// `key:value` pairs.
    pub labels: Vec<&'a str>,
    pub protocol: Option<&'a str>,
    pub transport: Option<&'a str>,
    /// Words of text.
    pub q: Option<&'a str>,
    /// `None`: the caller's default.
    pub live_only: Option<bool>,
    pub page: Option<usize>,
    pub page_size: Option<usize>,
    pub cursor: Option<&'a str>,
}

/// One parameter at a time, each checked under the name a client knows it by; shared by the
/// query-string and the typed forms so both refuse the same values the same way.
struct Builder {
    q: DiscoveryQuery,
    page: Option<usize>,
    cursor: Option<SortKey>,
}

impl Builder {
    fn new(live_only_default: bool) -> Self {
        Self { q: DiscoveryQuery::all(live_only_default), page: None, cursor: None }
    }

    fn capability(&mut self, value: &str) -> Result<(), RegistryError> {
        self.q.capability = Some(single("capability", value)?.to_lowercase());
        Ok(())
    }

    fn capability_prefix(&mut self, value: &str) -> Result<(), RegistryError> {
        self.q.capability_prefix = Some(single("capabilityPrefix", value)?.to_lowercase());
        Ok(())
    }

    fn tags(&mut self, key: &str, value: &str) -> Result<(), RegistryError> {
        self.q.tags.extend(list(key, value)?.map(str::to_lowercase));
        Ok(())
    }

    fn labels(&mut self, key: &str, value: &str) -> Result<(), RegistryError> {
        for pair in list(key, value)? {
            let (k, v) = pair
                .split_once(':')
                .ok_or_else(|| RegistryError::query(key, format!("`{pair}` is not of the form key:value")))?;
            self.q.labels.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        Ok(())
    }

    fn protocols(&mut self, value: &str) -> Result<(), RegistryError> {
        for p in list("protocol", value)? {
            self.q.protocols.push(p.parse().map_err(|e: String| RegistryError::query("protocol", e))?);
        }
        Ok(())
    }

    fn transports(&mut self, value: &str) -> Result<(), RegistryError> {
        for t in list("transport", value)? {
            self.q.transports.push(t.parse().map_err(|e: String| RegistryError::query("transport", e))?);
        }
        Ok(())
    }

    fn words(&mut self, value: &str) -> Result<(), RegistryError> {
        let words = words(text("q", value)?);
        if words.is_empty() {
            return Err(RegistryError::query("q", "must contain at least one word"));
        }
        self.q.words.extend(words);
        Ok(())
    }

    fn cursor(&mut self, value: &str) -> Result<(), RegistryError> {
        let after = SortKey::from_cursor(text("cursor", value)?.trim())
            .ok_or_else(|| RegistryError::query("cursor", "is not a cursor this registry issued"))?;
        self.cursor = Some(after);
        Ok(())
    }

    fn finish(self) -> Result<DiscoveryQuery, RegistryError> {
        let Self { mut q, page, cursor } = self;
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

/// Every text value is held to the same length, whichever form it came in.
fn text<'a>(key: &str, value: &'a str) -> Result<&'a str, RegistryError> {
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(RegistryError::query(key, format!("is longer than {MAX_VALUE_CHARS} characters")));
    }
    Ok(value)
}

fn single<'a>(key: &str, value: &'a str) -> Result<&'a str, RegistryError> {
    let v = text(key, value)?.trim();
    if v.is_empty() { Err(RegistryError::query(key, "must not be empty")) } else { Ok(v) }
}

fn list<'a>(key: &str, value: &'a str) -> Result<impl Iterator<Item = &'a str>, RegistryError> {
    single(key, value)?;
    Ok(value.split(',').map(str::trim).filter(|s| !s.is_empty()))
}

/// `None`: not a whole number at all.
fn number(key: &str, value: Option<usize>, min: usize, max: usize) -> Result<usize, RegistryError> {
    match value {
        Some(n) if (min..=max).contains(&n) => Ok(n),
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
    fn typed_filters_build_the_query_their_query_string_builds() {
        let cursor = SortKey::new("b", AgentId::generate()).to_cursor();
        let pairs = [
            ("capability", "Summarize"),
            ("tags", "Legal,pdf"),
            ("protocol", "a2a,MCP"),
            ("q", "long contracts"),
            ("liveOnly", "false"),
            ("pageSize", "7"),
            ("cursor", cursor.as_str()),
        ];
        let filters = Filters {
            capability: Some("Summarize"),
            tags: vec!["Legal,pdf"],
            protocol: Some("a2a,MCP"),
            q: Some("long contracts"),
            live_only: Some(false),
            page_size: Some(7),
            cursor: Some(&cursor),
            ..Filters::default()
        };
        assert_eq!(
            DiscoveryQuery::from_filters(filters, true).unwrap(),
            DiscoveryQuery::from_pairs(pairs, true, false).unwrap()
        );
    }

    #[test]
    fn typed_filters_are_refused_with_the_parameter_named() {
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        let cases = [
            ("protocol", Filters { protocol: Some("bogus"), ..Filters::default() }),
            ("pageSize", Filters { page_size: Some(500), ..Filters::default() }),
            ("page", Filters { page: Some(0), ..Filters::default() }),
            ("capability", Filters { capability: Some(" "), ..Filters::default() }),
            ("q", Filters { q: Some(&long), ..Filters::default() }),
            ("tags", Filters { tags: vec!["t"; MAX_FILTER_VALUES + 1], ..Filters::default() }),
        ];
        for (key, filters) in cases {
            let err = DiscoveryQuery::from_filters(filters, true).unwrap_err();
            assert_eq!(err.fields()[0].pointer, format!("?{key}"), "{key}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let key = SortKey::new("Summariser One", AgentId::generate());
        assert_eq!(SortKey::from_cursor(&key.to_cursor()), Some(key));
    }
}
