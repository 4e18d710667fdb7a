//! The MCP Registry read API (`GET /v0.1/servers`, `…/{serverName}/versions`,
//! `…/versions/{version}`; protocols.md §2.6 and `mcp-registry-api-openapi.yaml`) as pure
//! logic over a catalogue of `server.json` documents. The HTTP layer builds the catalogue from
//! the registry's agents ([`catalog_entry`]) and serves what it answers under `/v0.1` and `/v0`.
//!
//! Servers are listed by name, then version (semantic-version order where versions parse as
//! such), and paged with an opaque cursor naming the last entry served, so that entries added
//! between two pages neither repeat nor hide the ones after the cursor.
//!
//! One file on purpose (about 700 lines, half of it tests): the list, versions and cursor rules
//! answer one API and are read together.

use std::cmp::Ordering;

use agent_registry_core::RegistryError;
use agent_registry_core::claim::{ClaimRequest, NameClaim, OnTaken};
use agent_registry_core::input::AgentInput;
use agent_registry_core::model::{Agent, AgentId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::build::server_json;

/// The key of the registry-managed block in each response's `_meta` (`ServerResponse._meta`).
pub const OFFICIAL_META: &str = "io.modelcontextprotocol.registry/official";

/// `limit` when a request gives none (the official registry's default page size).
pub const DEFAULT_LIMIT: usize = 30;

/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 100;

/// The namespace of the name and version a registered server holds alone: the catalogue lists
/// one server per pair, and a second registration of a pair is refused.
pub const SERVER_VERSION_CLAIM: &str = "mcp.server";

/// The claim a registration makes for its server's name and version, when the agent it
/// describes would be in the catalogue.
pub fn server_claim(input: &AgentInput) -> Option<ClaimRequest> {
    let draft = input.to_spec(&[]).ok()?.to_agent(AgentId::generate(), String::new(), Vec::new(), Utc::now());
    let held = held_claim(&draft)?;
    Some(ClaimRequest {
        namespace: held.namespace,
        name: held.name,
        on_taken: OnTaken::Refuse,
        label: None,
        scope: held.scope,
    })
}

/// The name and version an agent registered with an MCP document holds (as `POST /mcp/servers`
/// claims them); other agents hold none.
pub fn held_claim(agent: &Agent) -> Option<NameClaim> {
    if agent.origin.as_ref().is_none_or(|o| o.protocol() != agent_registry_core::model::Protocol::MCP) {
        return None;
    }
    let entry = catalog_entry(agent)?;
    // A JSON pair: no separator a name or version could contain.
    // The reverse-DNS namespace before the `/` is bound to the owner of its first server.
    let scope = entry.name.split_once('/').map(|(namespace, _)| namespace.to_owned());
    let name = Value::from(vec![entry.name, entry.version]).to_string();
    Some(NameClaim { namespace: SERVER_VERSION_CLAIM.to_owned(), name, scope })
}

/// One server version in the catalogue: an agent's `server.json` and when it was published.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogEntry {
    /// The agent the document describes.
    pub agent_id: AgentId,
    /// `server.name` (reverse-DNS, e.g. `io.github.user/weather`).
    pub name: String,
    /// `server.version`.
    pub version: String,
    /// The `server.json` document.
    pub server: Value,
    /// `publishedAt`: when the agent was registered.
    pub published_at: DateTime<Utc>,
    /// `updatedAt`: when the agent last changed.
    pub updated_at: DateTime<Utc>,
}

/// The catalogue entry of an agent: its `server.json` (see [`server_json`]), published when the
/// agent was registered. `None` when the agent has no MCP document, or when its document lacks a
/// non-blank `name`, `description` or `version` (MCP clients drop such entries, and VS Code
/// rejects a whole page whose first entry lacks one).
pub fn catalog_entry(agent: &Agent) -> Option<CatalogEntry> {
    let server = server_json(agent).ok()?.into_value();
    let text = |key: &str| server.get(key).and_then(Value::as_str).filter(|t| !t.trim().is_empty()).map(str::to_owned);
    let name = text("name")?;
    let version = text("version")?;
    text("description")?;
    Some(CatalogEntry {
        agent_id: agent.id,
        name,
        version,
        server,
        published_at: agent.created_at,
        updated_at: agent.updated_at,
    })
}

/// The servers the registry lists, in list order, each knowing whether it is its name's latest
/// version.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    items: Vec<Item>,
}

#[derive(Clone, Debug)]
struct Item {
    entry: CatalogEntry,
    semver: Option<semver::Version>,
    is_latest: bool,
    /// Lower-cased name and description, for `search`.
    haystack: String,
}

impl Item {
    fn new(entry: CatalogEntry) -> Self {
        let description = entry.server.get("description").and_then(Value::as_str).unwrap_or_default();
        let haystack = format!("{}\n{}", entry.name, description).to_lowercase();
        let semver = semver::Version::parse(&entry.version).ok();
        Self { entry, semver, is_latest: false, haystack }
    }

    fn order(&self, name: &str, version: &str, semver: Option<&semver::Version>) -> Ordering {
        self.entry
            .name
            .as_str()
            .cmp(name)
            .then_with(|| compare_versions(&self.entry.version, self.semver.as_ref(), version, semver))
    }
}

/// List order of two versions of one server: semantic versions first, in semantic-version
/// order, then the others in text order; ties broken by text so that only equal strings are
/// equal. A total order, which the cursor relies on.
fn compare_versions(
    a: &str,
    a_semver: Option<&semver::Version>,
    b: &str,
    b_semver: Option<&semver::Version>,
) -> Ordering {
    match (a_semver, b_semver) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

impl Catalog {
    /// Builds the catalogue. A name and version is listed once: when several agents carry the
    /// same one (instances of one server registered separately), the most recently updated
    /// agent's document is listed. Each name's latest version is decided as the official
    /// registry does when versions are published one after another: a semantic version
    /// replaces the latest only when it is higher, and a version that is not a semantic version
    /// (or follows one that is not) always becomes the latest (registry docs, "versioning").
    pub fn new(entries: Vec<CatalogEntry>) -> Self {
        let mut items: Vec<Item> = entries.into_iter().map(Item::new).collect();
        items.sort_by(|a, b| {
            a.order(&b.entry.name, &b.entry.version, b.semver.as_ref())
                .then_with(|| b.entry.updated_at.cmp(&a.entry.updated_at))
                .then_with(|| b.entry.agent_id.cmp(&a.entry.agent_id))
        });
        items.dedup_by(|later, kept| later.entry.name == kept.entry.name && later.entry.version == kept.entry.version);
        let mut start = 0;
        while start < items.len() {
            let end = start + items[start..].iter().take_while(|it| it.entry.name == items[start].entry.name).count();
            let latest = latest_of(&items[start..end]);
            items[start + latest].is_latest = true;
            start = end;
        }
        Self { items }
    }

    /// How many server versions are listed.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `GET /v0.1/servers`: a `ServerList` page of the entries matching `query`, after its
    /// cursor. `metadata.nextCursor` is present only when more entries match.
    pub fn list(&self, query: &ListQuery) -> Value {
        let start = query.cursor.as_ref().map_or(0, |cursor| {
            let semver = semver::Version::parse(&cursor.version).ok();
            self.items.partition_point(|it| it.order(&cursor.name, &cursor.version, semver.as_ref()).is_le())
        });
        let mut page = Vec::with_capacity(query.limit.min(self.items.len()));
        let mut more = false;
        for item in self.items[start..].iter().filter(|it| query.matches(it)) {
            if page.len() == query.limit {
                more = true;
                break;
            }
            page.push(item);
        }
        let next = page
            .last()
            .filter(|_| more)
            .map(|last| ListCursor { name: last.entry.name.clone(), version: last.entry.version.clone() }.encode());
        server_list(&page, next)
    }

    /// `GET /v0.1/servers/{serverName}/versions`: every version of a server, newest published
    /// first. `None` when no server has that name.
    pub fn versions(&self, name: &str) -> Option<Value> {
        let mut versions: Vec<&Item> = self.named(name).iter().collect();
        if versions.is_empty() {
            return None;
        }
        versions.sort_by(|a, b| {
            b.entry.published_at.cmp(&a.entry.published_at).then_with(|| {
                compare_versions(&b.entry.version, b.semver.as_ref(), &a.entry.version, a.semver.as_ref())
            })
        });
        Some(server_list(&versions, None))
    }

    /// `GET /v0.1/servers/{serverName}/versions/{version}`: one `ServerResponse`; `version` may
    /// be `latest`. `None` when there is no such server or version.
    pub fn version(&self, name: &str, version: &str) -> Option<Value> {
        let versions = self.named(name);
        let found = if version == "latest" {
            versions.iter().find(|it| it.is_latest)
        } else {
            versions.iter().find(|it| it.entry.version == version)
        };
        found.map(server_response)
    }

    /// The agent whose document is listed under this exact name and version, if any (the
    /// official registry publishes a name and version once; a registration can check this).
    pub fn find(&self, name: &str, version: &str) -> Option<AgentId> {
        self.named(name).iter().find(|it| it.entry.version == version).map(|it| it.entry.agent_id)
    }

    fn named(&self, name: &str) -> &[Item] {
        let start = self.items.partition_point(|it| it.entry.name.as_str() < name);
        let end = start + self.items[start..].iter().take_while(|it| it.entry.name == name).count();
        &self.items[start..end]
    }
}

/// Index of the latest version among one name's items, replaying their publication in order.
fn latest_of(items: &[Item]) -> usize {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].entry.published_at, items[i].entry.agent_id));
    let mut latest = order[0];
    for &i in &order[1..] {
        let replaces = match (&items[i].semver, &items[latest].semver) {
            (Some(new), Some(current)) => new.cmp_precedence(current).is_gt(),
            _ => true,
        };
        if replaces {
            latest = i;
        }
    }
    latest
}

fn server_list(items: &[&Item], next_cursor: Option<String>) -> Value {
    let servers: Vec<Value> = items.iter().map(|it| server_response(it)).collect();
    let mut metadata = Map::new();
    if let Some(cursor) = next_cursor {
        metadata.insert("nextCursor".to_owned(), Value::from(cursor));
    }
    metadata.insert("count".to_owned(), Value::from(servers.len()));
    json!({ "servers": servers, "metadata": metadata })
}

/// `ServerResponse`: the document and the registry's block. Servers are removed from the
/// registry outright, so every listed one is `active`.
fn server_response(item: &Item) -> Value {
    let entry = &item.entry;
    let mut meta = Map::new();
    meta.insert(
        OFFICIAL_META.to_owned(),
        json!({
            "status": "active",
            "publishedAt": timestamp(entry.published_at),
            "updatedAt": timestamp(entry.updated_at),
            "isLatest": item.is_latest,
        }),
    );
    json!({ "server": entry.server, "_meta": meta })
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Which versions `GET /v0.1/servers` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionFilter {
    /// `version=latest`: each server's latest version (what VS Code asks for).
    Latest,
    /// An exact version string.
    Exact(String),
}

/// Where a page starts: after this name and version. Opaque to clients (base64url of JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCursor {
    /// The last listed entry's server name.
    pub name: String,
    /// The last listed entry's version.
    pub version: String,
}

impl ListCursor {
    /// The cursor as `metadata.nextCursor` carries it.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(&(&self.name, &self.version)).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Reads a cursor: one this catalogue issued, or else one as the official registry writes it
    /// (`name:version`; names hold no `:`), or else any text, taken as a name. The page starts
    /// after that position, so a stale or foreign cursor pages on instead of failing.
    pub fn read(text: &str) -> Self {
        Self::decode(text).unwrap_or_else(|| match text.split_once(':') {
            Some((name, version)) => Self { name: name.to_owned(), version: version.to_owned() },
            None => Self { name: text.to_owned(), version: String::new() },
        })
    }

    /// Reads a cursor this catalogue issued.
    pub fn decode(text: &str) -> Option<Self> {
        // Names are at most 200 characters and versions 255, so a real cursor is far shorter.
        if text.len() > 4096 {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
        let (name, version): (String, String) = serde_json::from_slice(&json).ok()?;
        Some(Self { name, version })
    }
}

/// The query of `GET /v0.1/servers`.
#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    /// Where the page starts (`cursor`, as `metadata.nextCursor` gave it).
    pub cursor: Option<ListCursor>,
    /// 1 to 100; 30 when not given.
    pub limit: usize,
    /// Lower-cased; matches a substring of the name or the description.
    pub search: Option<String>,
    /// `version`: `latest` or an exact version.
    pub version: Option<VersionFilter>,
    /// Entries updated at or after this instant (at, so a client syncing from the last
    /// `updatedAt` it saw misses nothing updated in the same millisecond).
    pub updated_since: Option<DateTime<Utc>>,
    /// Accepted for compatibility; the registry deletes servers outright, so there are never
    /// deleted entries to include.
    pub include_deleted: bool,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            cursor: None,
            limit: DEFAULT_LIMIT,
            search: None,
            version: None,
            updated_since: None,
            include_deleted: false,
        }
    }
}

impl ListQuery {
    /// Parses the query parameters (already URL-decoded). Unknown parameters are ignored, as
    /// clients add their own; an empty value counts as absent. Fails with `invalid_query`
    /// (400) at `?cursor`, `?limit`, `?updated_since` or `?include_deleted`.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, RegistryError> {
        let mut query = Self::default();
        for (key, value) in pairs {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match key {
                // The official API documents no error for the list, and any string is a cursor
                // there: one this registry did not issue is read as a position (`ListCursor::read`).
                "cursor" => query.cursor = Some(ListCursor::read(value)),
                // Any integer is a limit the document allows; the official registry caps it at
                // 100 (its handler's "Cap maximum limit"), and so does this one, at both ends.
                "limit" => query.limit = clamp_limit(value)?,
                "search" => query.search = Some(value.to_lowercase()),
                "version" if value.eq_ignore_ascii_case("latest") => query.version = Some(VersionFilter::Latest),
                "version" => query.version = Some(VersionFilter::Exact(value.to_owned())),
                "updated_since" => query.updated_since = Some(parse_timestamp(value)?),
                "include_deleted" => query.include_deleted = parse_bool(value)?,
                _ => {}
            }
        }
        Ok(query)
    }

    fn matches(&self, item: &Item) -> bool {
        let version = match &self.version {
            None => true,
            Some(VersionFilter::Latest) => item.is_latest,
            Some(VersionFilter::Exact(v)) => item.entry.version == *v,
        };
        version
            && self.search.as_deref().is_none_or(|s| item.haystack.contains(s))
            && self.updated_since.is_none_or(|since| item.entry.updated_at >= since)
    }
}

/// `limit` held to 1..=`MAX_LIMIT`; only text that is no integer at all is refused (the
/// document types it `integer`).
fn clamp_limit(value: &str) -> Result<usize, RegistryError> {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RegistryError::query("limit", format!("must be a whole number (1 to {MAX_LIMIT} are served)")));
    }
    if value.starts_with('-') {
        return Ok(1);
    }
    Ok(digits.parse::<usize>().map_or(MAX_LIMIT, |n| n.clamp(1, MAX_LIMIT)))
}

fn parse_timestamp(value: &str) -> Result<DateTime<Utc>, RegistryError> {
    // A `+` offset arrives as a space when the client did not percent-encode it.
    DateTime::parse_from_rfc3339(value)
        .or_else(|e| if value.contains(' ') { DateTime::parse_from_rfc3339(&value.replace(' ', "+")) } else { Err(e) })
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            RegistryError::query("updated_since", "must be an RFC 3339 timestamp, e.g. 2025-08-07T13:15:04.280Z")
        })
}

/// Booleans as the official registry (Go) reads them.
fn parse_bool(value: &str) -> Result<bool, RegistryError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(RegistryError::query("include_deleted", "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{agent_from, fixture};

    fn at(second: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_750_000_000 + second, 0).unwrap()
    }

    fn entry(name: &str, version: &str, published: i64) -> CatalogEntry {
        CatalogEntry {
            agent_id: AgentId::generate(),
            name: name.to_owned(),
            version: version.to_owned(),
            server: json!({"name": name, "version": version, "description": format!("{name} server")}),
            published_at: at(published),
            updated_at: at(published),
        }
    }

    fn query(pairs: &[(&str, &str)]) -> ListQuery {
        ListQuery::from_pairs(pairs.iter().copied()).unwrap()
    }

    /// (name, version, isLatest) of each listed server.
    fn listed(list: &Value) -> Vec<(String, String, bool)> {
        list["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["server"]["name"].as_str().unwrap().to_owned(),
                    s["server"]["version"].as_str().unwrap().to_owned(),
                    s["_meta"][OFFICIAL_META]["isLatest"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    fn row(name: &str, version: &str, latest: bool) -> (String, String, bool) {
        (name.to_owned(), version.to_owned(), latest)
    }

    #[test]
    fn the_latest_version_is_the_highest_semantic_version_else_the_last_published() {
        let catalog = Catalog::new(vec![
            entry("a/semver", "1.10.0", 1),
            entry("a/semver", "1.9.0", 2),
            entry("a/semver", "1.10.0-rc.1", 3),
            entry("b/dates", "2025.1", 1),
            entry("b/dates", "2024.9", 2),
            // A non-semantic version published after a semantic one becomes the latest.
            entry("c/mixed", "2.0.0", 1),
            entry("c/mixed", "nightly", 2),
            // ...and a semantic one after it replaces it again.
            entry("d/mixed", "nightly", 1),
            entry("d/mixed", "0.1.0", 2),
        ]);
        assert_eq!(
            listed(&catalog.list(&ListQuery::default())),
            [
                row("a/semver", "1.9.0", false),
                row("a/semver", "1.10.0-rc.1", false),
                row("a/semver", "1.10.0", true),
                row("b/dates", "2024.9", true),
                row("b/dates", "2025.1", false),
                row("c/mixed", "2.0.0", false),
                row("c/mixed", "nightly", true),
                row("d/mixed", "0.1.0", true),
                row("d/mixed", "nightly", false),
            ]
        );
        let latest = catalog.list(&query(&[("version", "latest")]));
        assert_eq!(latest["servers"].as_array().unwrap().len(), 4);
        assert_eq!(catalog.version("a/semver", "latest").unwrap()["server"]["version"], "1.10.0");
        assert_eq!(catalog.version("a/semver", "1.9.0").unwrap()["server"]["version"], "1.9.0");
        assert!(catalog.find("a/semver", "1.9.0").is_some());
        assert!(catalog.find("a/semver", "latest").is_none());
        assert!(catalog.version("a/semver", "3.0.0").is_none());
        assert!(catalog.version("z/none", "latest").is_none());
    }

    #[test]
    fn a_response_carries_the_official_block_vs_code_reads() {
        let catalog = Catalog::new(vec![entry("io.github.x/y", "1.0.0", 0)]);
        assert_eq!(
            catalog.version("io.github.x/y", "latest").unwrap(),
            json!({
                "server": {"name": "io.github.x/y", "version": "1.0.0", "description": "io.github.x/y server"},
                "_meta": {OFFICIAL_META: {
                    "status": "active",
                    "publishedAt": "2025-06-15T15:06:40.000Z",
                    "updatedAt": "2025-06-15T15:06:40.000Z",
                    "isLatest": true
                }}
            })
        );
        assert_eq!(catalog.list(&query(&[("limit", "1")]))["metadata"], json!({"count": 1}));
    }

    #[test]
    fn versions_are_listed_newest_published_first() {
        let catalog = Catalog::new(vec![entry("n/s", "1.0.0", 1), entry("n/s", "3.0.0", 3), entry("n/s", "2.0.0", 2)]);
        let versions = catalog.versions("n/s").unwrap();
        let order: Vec<_> = listed(&versions).into_iter().map(|(_, v, _)| v).collect();
        assert_eq!(order, ["3.0.0", "2.0.0", "1.0.0"]);
        assert_eq!(versions["metadata"]["count"], 3);
        assert!(versions["metadata"].get("nextCursor").is_none());
        assert!(catalog.versions("n/other").is_none());
        assert!(catalog.versions("n").is_none());
    }

    #[test]
    fn one_name_and_version_is_listed_once_from_the_most_recently_updated_agent() {
        let mut old = entry("r/x", "1.0.0", 1);
        old.server["description"] = json!("old");
        let mut new = entry("r/x", "1.0.0", 1);
        new.updated_at = at(50);
        new.server["description"] = json!("new");
        let catalog = Catalog::new(vec![old, new]);
        assert_eq!(catalog.len(), 1);
        assert_eq!(catalog.version("r/x", "1.0.0").unwrap()["server"]["description"], "new");
    }

    #[test]
    fn search_matches_name_or_description_ignoring_case() {
        let mut weather = entry("io.github.acme/weather", "1.0.0", 0);
        weather.server["description"] = json!("Forecasts for Oslo");
        let catalog = Catalog::new(vec![weather, entry("com.example/files", "1.0.0", 0)]);
        let names = |q: &str| -> Vec<String> {
            listed(&catalog.list(&query(&[("search", q)]))).into_iter().map(|(n, ..)| n).collect()
        };
        assert_eq!(names("WEATHER"), ["io.github.acme/weather"]);
        assert_eq!(names("oslo"), ["io.github.acme/weather"]);
        assert_eq!(names("example"), ["com.example/files"]);
        assert!(names("nothing").is_empty());
        assert_eq!(names("").len(), 2);
    }

    #[test]
    fn updated_since_keeps_entries_updated_at_or_after_it() {
        let catalog = Catalog::new(vec![entry("a/old", "1", 0), entry("a/new", "1", 100)]);
        let since = at(100).to_rfc3339();
        let list = catalog.list(&query(&[("updated_since", &since)]));
        assert_eq!(listed(&list), [row("a/new", "1", true)]);
        // A `+` offset that arrived as a space is read as `+`.
        let q = query(&[("updated_since", "2025-06-15T17:06:40 02:00")]);
        assert_eq!(q.updated_since, Some(at(0)));
    }

    #[test]
    fn query_parameters_are_checked_and_unknown_ones_ignored() {
        let q = query(&[("limit", "50"), ("version", "latest"), ("include_deleted", "true"), ("x-client", "vscode")]);
        assert_eq!((q.limit, q.version, q.include_deleted), (50, Some(VersionFilter::Latest), true));
        assert_eq!(query(&[("cursor", ""), ("limit", " ")]), ListQuery::default());
        let foreign = |text: &str| query(&[("cursor", text)]).cursor.unwrap();
        assert_eq!(foreign("io.x/y:1.0.0"), ListCursor { name: "io.x/y".into(), version: "1.0.0".into() });
        assert_eq!(foreign("%%%"), ListCursor { name: "%%%".into(), version: String::new() });
        assert_eq!(query(&[("version", "1.2.3")]).version, Some(VersionFilter::Exact("1.2.3".into())));
        for (value, limit) in
            [("0", 1), ("-1", 1), ("101", MAX_LIMIT), ("500", MAX_LIMIT), ("99999999999999999999", MAX_LIMIT)]
        {
            assert_eq!(query(&[("limit", value)]).limit, limit, "limit={value}");
        }
        for (key, value) in [
            ("limit", "ten"),
            ("limit", "-"),
            ("limit", "1.5"),
            ("updated_since", "yesterday"),
            ("include_deleted", "maybe"),
        ] {
            let error = ListQuery::from_pairs([(key, value)]).unwrap_err();
            assert_eq!(error.code(), "invalid_query", "{key}={value}");
            assert_eq!(error.fields()[0].pointer, format!("?{key}"), "{key}={value}");
        }
    }

    #[test]
    fn pages_follow_the_cursor_until_the_last_one_which_has_none() {
        let catalog = Catalog::new((0..7).map(|i| entry(&format!("p/s{i}"), "1.0.0", i)).collect());
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let list = catalog.list(&query(&[("limit", "3"), ("cursor", &cursor)]));
            seen.extend(listed(&list).into_iter().map(|(n, ..)| n));
            match list["metadata"]["nextCursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
            assert_eq!(list["metadata"]["count"], 3);
        }
        assert_eq!(seen, (0..7).map(|i| format!("p/s{i}")).collect::<Vec<_>>());
        // Exactly a page's worth: no cursor to an empty page.
        let list = catalog.list(&query(&[("limit", "7")]));
        assert!(list["metadata"].get("nextCursor").is_none());
    }

    #[test]
    fn registered_agents_are_catalogued_with_their_server_json() {
        let translation = crate::translate(&fixture("registry-docs_remote-headers.json"), "").unwrap();
        let agent = agent_from(&translation);
        let entry = catalog_entry(&agent).unwrap();
        assert_eq!((entry.name.as_str(), entry.version.as_str()), ("com.example/acme-analytics", "2.0.0"));
        assert_eq!(entry.agent_id, agent.id);
        assert_eq!(entry.published_at, agent.created_at);
        let catalog = Catalog::new(vec![entry]);
        let response = catalog.version("com.example/acme-analytics", "latest").unwrap();
        assert_eq!(response["server"], serde_json::from_str::<Value>(&translation.origin.text).unwrap());
    }

    fn arb_entry() -> impl Strategy<Value = CatalogEntry> {
        (
            prop::sample::select(vec!["a/x", "a/y", "b/x", "c/zz"]),
            prop::sample::select(vec!["1.0.0", "1.10.0", "1.9.0", "2.0.0-rc.1", "2.0.0", "v3", "nightly", "2024.1"]),
            0..1000i64,
        )
            .prop_map(|(name, version, published)| entry(name, version, published))
    }

    proptest! {
        #[test]
        fn paging_visits_every_entry_once_in_order_even_when_entries_arrive_between_pages(
            first in prop::collection::vec(arb_entry(), 0..40),
            arriving in prop::collection::vec(arb_entry(), 0..10),
            limit in 1usize..8,
            arrive_after in 0usize..6,
        ) {
            let before = Catalog::new(first.clone());
            let after = Catalog::new(first.iter().cloned().chain(arriving).collect());
            let mut seen: Vec<(String, String)> = Vec::new();
            let mut cursor = String::new();
            let limit = limit.to_string();
            for page in 0.. {
                let catalog = if page < arrive_after { &before } else { &after };
                let list = catalog.list(&query(&[("limit", &limit), ("cursor", &cursor)]));
                seen.extend(listed(&list).into_iter().map(|(n, v, _)| (n, v)));
                match list["metadata"]["nextCursor"].as_str() {
                    Some(next) => cursor = next.to_owned(),
                    None => break,
                }
            }
            // Strictly increasing in list order: nothing repeats, nothing goes back.
            let order = |(n, v): &(String, String)| {
                after.items.iter().position(|it| it.entry.name == *n && it.entry.version == *v).unwrap()
            };
            let positions: Vec<usize> = seen.iter().map(order).collect();
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
            // Every entry that was there from the start is seen.
            for item in &before.items {
                let key = (item.entry.name.clone(), item.entry.version.clone());
                prop_assert!(seen.contains(&key), "{key:?} missing from {seen:?}");
            }
            // Each name has exactly one latest version.
            for name in ["a/x", "a/y", "b/x", "c/zz"] {
                let latest = after.items.iter().filter(|it| it.entry.name == name && it.is_latest).count();
                let any = after.items.iter().any(|it| it.entry.name == name);
                prop_assert_eq!(latest, usize::from(any));
            }
        }

        #[test]
        fn any_cursor_text_is_read_or_refused_never_a_panic(text in "\\PC{0,64}") {
            let _ = ListQuery::from_pairs([("cursor", text.as_str())]);
        }
    }
}
