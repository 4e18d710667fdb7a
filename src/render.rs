//! JSON rendering of agents for consumers. Each agent's static JSON is rendered once, when it
//! changes, and kept in the index; a response is assembled by copying those bytes and writing
//! only what changes between requests (each endpoint's live state). That keeps discovery pages
//! cheap and the in-memory form of an agent compact.

use std::cell::Cell;
use std::io::Write;

use serde::Serialize;
use smallvec::SmallVec;

use crate::liveness::Millis;
use crate::model::Agent;

/// Serde helpers writing timestamps as RFC 3339 UTC with milliseconds, the one format of the API.
pub mod timestamp {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::with_capacity(24);
        super::write_timestamp(&mut buf, t.timestamp_millis());
        s.serialize_str(std::str::from_utf8(&buf).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }

    /// The same for a time that may be absent (skip it when `None`).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::Serializer;

        pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }
    }
}

/// Writes `millis` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// A discovery page writes about eighty of these, nearly all on the same day or two, so each
/// thread remembers the date it wrote last and only works out the time of day again.
pub fn write_timestamp(out: &mut Vec<u8>, millis: Millis) {
    thread_local! {
        static LAST_DATE: Cell<(i64, [u8; 10])> = const { Cell::new((i64::MIN, [0; 10])) };
    }
    let (days, in_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let date = match LAST_DATE.get() {
        (day, date) if day == days => date,
        _ => {
            let Some(date) = civil_date(days) else {
                return write_unusual_year(out, millis);
            };
            LAST_DATE.set((days, date));
            date
        }
    };
    let mut text = *b"0000-00-00T00:00:00.000Z";
    text[..10].copy_from_slice(&date);
    let (secs, ms) = (in_day / 1000, in_day % 1000);
    put_two_digits(&mut text, 11, secs / 3600);
    put_two_digits(&mut text, 14, secs / 60 % 60);
    put_two_digits(&mut text, 17, secs % 60);
    text[20] = b'0' + (ms / 100) as u8;
    put_two_digits(&mut text, 21, ms % 100);
    out.extend_from_slice(&text);
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (H. Hinnant's algorithm), for years 0 to 9999.
fn civil_date(days: i64) -> Option<[u8; 10]> {
    let (year, month, day) = civil(days);
    if !(0..10_000).contains(&year) {
        return None;
    }
    let mut date = *b"0000-00-00";
    put_two_digits(&mut date, 0, year / 100);
    put_two_digits(&mut date, 2, year % 100);
    put_two_digits(&mut date, 5, month);
    put_two_digits(&mut date, 8, day);
    Some(date)
}

fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn put_two_digits(text: &mut [u8], at: usize, value: i64) {
    text[at] = b'0' + (value / 10) as u8;
    text[at + 1] = b'0' + (value % 10) as u8;
}

/// Years before 0 or after 9999, which only hand-made clocks produce.
fn write_unusual_year(out: &mut Vec<u8>, millis: Millis) {
    let (days, in_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let (year, month, day) = civil(days);
    let (secs, ms) = (in_day / 1000, in_day % 1000);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let _ = write!(out, "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z");
}

/// What anonymous callers may not see; configurable, nothing hidden by default.
#[derive(Clone, Debug, Default)]
pub struct Privacy {
    /// Leave `ownerId` out.
    pub hide_owner: bool,
    /// Leave out labels whose key starts with one of these.
    pub private_label_prefixes: Vec<String>,
}

impl Privacy {
    pub fn hides_anything(&self) -> bool {
        self.hide_owner || !self.private_label_prefixes.is_empty()
    }

    pub fn is_private_label(&self, key: &str) -> bool {
        self.private_label_prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// Whether an anonymous reader may filter as `query` does: filtering by what is hidden from
    /// them would reveal it.
    pub fn allows_anonymous(&self, query: &crate::query::DiscoveryQuery) -> Result<(), crate::RegistryError> {
        if self.hide_owner && query.owner.is_some() {
            return Err(crate::RegistryError::Forbidden("filtering by owner needs credentials".into()));
        }
        if query.labels.iter().any(|(k, _)| self.is_private_label(k)) {
            return Err(crate::RegistryError::Forbidden("filtering by a private label needs credentials".into()));
        }
        Ok(())
    }
}

/// How an agent's rendered JSON is laid out; the JSON itself is kept by the caller (the index
/// stores it in the same allocation as the rest of the agent's entry).
///
/// The agent object (without `endpoints` and its closing brace) and each endpoint object
/// (without its closing brace) lie end to end in the JSON: a discovery page copies the static
/// JSON of twenty agents, and at 100,000 agents what costs is fetching it from memory, which is
/// cheapest when each agent is one run of bytes.
#[derive(Debug)]
pub struct Layout {
    /// Where the agent object ends in the JSON, then where each endpoint object ends.
    ends: SmallVec<[u32; 3]>,
    /// The agent object for anonymous callers, when `Privacy` hides anything.
    public_head: Option<Box<str>>,
}

/// An agent's JSON, rendered once per change, with its layout.
#[derive(Clone, Copy)]
pub struct RenderedAgent<'a> {
    json: &'a str,
    layout: &'a Layout,
}

/// The agent's own fields, in the order they are shown; endpoints are written after them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Head<'a> {
    id: crate::model::AgentId,
    name: &'a str,
    description: &'a Option<String>,
    version: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_id: Option<&'a str>,
    tags: &'a [String],
    labels: &'a std::collections::BTreeMap<String, String>,
    capabilities: &'a [crate::model::Capability],
    metadata: &'a serde_json::Map<String, serde_json::Value>,
    permanent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    registered_with: Option<RegisteredWith<'a>>,
    #[serde(with = "timestamp")]
    created_at: &'a chrono::DateTime<chrono::Utc>,
    #[serde(with = "timestamp")]
    updated_at: &'a chrono::DateTime<chrono::Utc>,
    revision: u64,
}

/// The protocol document an agent was registered with, as the agent view mentions it (the
/// document itself is served by its protocol's routes).
#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct RegisteredWith<'a> {
    format: crate::protocol::DocumentFormat,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_verified: Option<bool>,
}

/// Byte offsets fit in u32: an agent's JSON is bounded far below 4 GiB by the input limits.
fn offset(json: &str) -> u32 {
    u32::try_from(json.len()).unwrap_or(u32::MAX)
}

fn open_object<T: Serialize>(value: &T) -> Box<str> {
    let mut text = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    text.pop(); // the closing brace; live fields are appended before it is written back
    text.into_boxed_str()
}

impl Layout {
    /// Renders an agent: its JSON, and how that is laid out.
    pub fn render(agent: &Agent, privacy: &Privacy) -> (Self, String) {
        let head = Head {
            id: agent.id,
            name: &agent.name,
            description: &agent.description,
            version: &agent.version,
            owner_id: Some(&agent.owner_id),
            tags: &agent.tags,
            labels: &agent.labels,
            capabilities: &agent.capabilities,
            metadata: &agent.metadata,
            permanent: agent.permanent,
            registered_with: agent.origin.as_ref().map(|o| RegisteredWith {
                format: o.format,
                version: &o.version,
                signature_verified: o.signature_verified,
            }),
            created_at: &agent.created_at,
            updated_at: &agent.updated_at,
            revision: agent.revision,
        };
        let public_head = privacy.hides_anything().then(|| {
            let labels = agent.labels.iter().filter(|(k, _)| !privacy.is_private_label(k));
            let labels: std::collections::BTreeMap<String, String> =
                labels.map(|(k, v)| (k.clone(), v.clone())).collect();
            let owner_id = (!privacy.hide_owner).then_some(agent.owner_id.as_str());
            open_object(&Head { owner_id, labels: &labels, registered_with: head.registered_with, ..head })
        });
        let mut json = open_object(&head).into_string();
        let mut ends = SmallVec::with_capacity(1 + agent.endpoints.len());
        ends.push(offset(&json));
        for endpoint in &agent.endpoints {
            json.push_str(&open_object(endpoint));
            ends.push(offset(&json));
        }
        (Self { ends, public_head }, json)
    }
}

impl<'a> RenderedAgent<'a> {
    /// `json` as `Layout::render` returned it with `layout`.
    pub fn new(json: &'a str, layout: &'a Layout) -> Self {
        Self { json, layout }
    }

    /// Slices of `json` as bytes, which (unlike `str` slicing) reads no byte at the boundary
    /// before copying begins at the front.
    fn head(&self) -> &'a [u8] {
        &self.json.as_bytes()[..self.layout.ends[0] as usize]
    }

    fn endpoint(&self, index: usize) -> &'a [u8] {
        &self.json.as_bytes()[self.layout.ends[index] as usize..self.layout.ends[index + 1] as usize]
    }

    /// Reads a byte every 64 of the JSON and its last byte, which starts fetching all of its
    /// cache lines from memory at once (the reads do not depend on one another).
    pub fn touch(&self) -> u8 {
        let bytes = self.json.as_bytes();
        bytes.iter().step_by(64).chain(bytes.last()).fold(0, |x, b| x ^ b)
    }

    fn endpoint_count(&self) -> usize {
        self.layout.ends.len() - 1
    }

    /// The stored form: the agent with its endpoints and no live state.
    pub fn document(&self) -> String {
        let mut out = Vec::with_capacity(self.json.len() + 32 + 2 * self.endpoint_count());
        out.extend_from_slice(self.head());
        out.extend_from_slice(b",\"endpoints\":[");
        for i in 0..self.endpoint_count() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(self.endpoint(i));
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        // Whole UTF-8 pieces joined with ASCII: always valid.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Writes the agent with the given endpoints (index, last seen) and their live state; as
    /// anonymous callers may see it when `public`.
    pub fn write(&self, out: &mut Vec<u8>, endpoints: &[(usize, LiveState)], public: bool) {
        let head = match &self.layout.public_head {
            Some(head) if public => head.as_bytes(),
            _ => self.head(),
        };
        out.extend_from_slice(head);
        out.extend_from_slice(b",\"endpoints\":[");
        for (n, (i, live)) in endpoints.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            self.write_endpoint(out, *i, live);
        }
        out.extend_from_slice(b"]}");
    }

    /// Writes one endpoint with its live state.
    pub fn write_endpoint(&self, out: &mut Vec<u8>, index: usize, live: &LiveState) {
        out.extend_from_slice(self.endpoint(index));
        out.extend_from_slice(if live.is_live { b",\"isLive\":true" } else { b",\"isLive\":false" });
        out.extend_from_slice(b",\"lastSeenAt\":\"");
        write_timestamp(out, live.last_seen);
        out.extend_from_slice(b"\",\"expiresAt\":\"");
        write_timestamp(out, live.expires_at);
        out.extend_from_slice(b"\"}");
    }

    /// Bytes `write` needs, live fields included.
    pub fn size(&self) -> usize {
        let head = self.layout.public_head.as_ref().map_or(0, |h| h.len()).max(self.layout.ends[0] as usize);
        self.json.len() - self.layout.ends[0] as usize + head + 16 + self.endpoint_count() * (LIVE_FIELDS_BYTES + 1)
    }
}

/// Upper bound of what `write_endpoint` adds to an endpoint's static JSON.
const LIVE_FIELDS_BYTES: usize = 96;

/// What is known about an endpoint's liveness at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveState {
    pub is_live: bool,
    pub last_seen: Millis,
    pub expires_at: Millis,
}

/// An agent's stored form (`RenderedAgent::document`), rendered without keeping the rendering.
pub fn document(agent: &Agent) -> String {
    let (layout, json) = Layout::render(agent, &Privacy::default());
    RenderedAgent::new(&json, &layout).document()
}

/// Parses an agent back from its stored form.
pub fn parse_document(document: &str) -> serde_json::Result<Agent> {
    serde_json::from_str(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_chrono_with_milliseconds() {
        let listed = [0, 1, 999, 1_000, 951_782_400_000, 1_795_000_000_123, -1, -86_400_001, 253_402_300_799_999];
        // Runs within a day and across midnights, so the remembered date is both reused and replaced.
        let swept = (0..5_000).map(|k| 1_795_000_000_000 + k * 86_400_000 / 997 + (k % 3) * 86_400_000);
        for millis in listed.into_iter().chain(swept) {
            let mut out = Vec::new();
            write_timestamp(&mut out, millis);
            let expected = chrono::DateTime::from_timestamp_millis(millis)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{millis}");
        }
    }
}
