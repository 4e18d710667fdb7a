//! JSON rendering of agents for consumers. Each agent's static JSON is rendered once, when it
//! changes, and kept in the index; a response is assembled by copying those bytes and writing
//! only what changes between requests (each endpoint's live state). That keeps discovery pages
//! cheap and the in-memory form of an agent compact.

use std::io::Write;

use serde::Serialize;

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
}

/// Writes `millis` since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn write_timestamp(out: &mut Vec<u8>, millis: Millis) {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Hand-written digits: this runs for every endpoint of every discovery answer.
    let two = |out: &mut Vec<u8>, v: i64| out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
    if (0..10_000).contains(&year) {
        two(out, year / 100);
        two(out, year % 100);
    } else {
        let _ = write!(out, "{year:04}");
    }
    out.push(b'-');
    two(out, month);
    out.push(b'-');
    two(out, day);
    out.push(b'T');
    two(out, rem / 3600);
    out.push(b':');
    two(out, rem / 60 % 60);
    out.push(b':');
    two(out, rem % 60);
    out.extend_from_slice(&[b'.', b'0' + (ms / 100) as u8, b'0' + (ms / 10 % 10) as u8, b'0' + (ms % 10) as u8, b'Z']);
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
}

/// An agent's JSON, rendered once per change.
#[derive(Debug)]
pub struct RenderedAgent {
    /// The agent object without `endpoints` and without its closing brace.
    head: Box<str>,
    /// The same for anonymous callers, when `Privacy` hides anything.
    public_head: Option<Box<str>>,
    /// Each endpoint object without its closing brace, in the agent's order.
    endpoints: Box<[Box<str>]>,
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

fn open_object<T: Serialize>(value: &T) -> Box<str> {
    let mut text = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    text.pop(); // the closing brace; live fields are appended before it is written back
    text.into_boxed_str()
}

impl RenderedAgent {
    pub fn of(agent: &Agent, privacy: &Privacy) -> Self {
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
        Self { head: open_object(&head), public_head, endpoints: agent.endpoints.iter().map(open_object).collect() }
    }

    /// The stored form: the agent with its endpoints and no live state.
    pub fn document(&self) -> String {
        let mut out = String::with_capacity(self.head.len() + 64 * self.endpoints.len());
        out.push_str(&self.head);
        out.push_str(",\"endpoints\":[");
        for (i, e) in self.endpoints.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(e);
            out.push('}');
        }
        out.push_str("]}");
        out
    }

    /// Writes the agent with the given endpoints (index, last seen) and their live state; as
    /// anonymous callers may see it when `public`.
    pub fn write(&self, out: &mut Vec<u8>, endpoints: &[(usize, LiveState)], public: bool) {
        let head = match &self.public_head {
            Some(head) if public => head,
            _ => &self.head,
        };
        out.extend_from_slice(head.as_bytes());
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
        out.extend_from_slice(self.endpoints[index].as_bytes());
        out.extend_from_slice(if live.is_live { b",\"isLive\":true" } else { b",\"isLive\":false" });
        out.extend_from_slice(b",\"lastSeenAt\":\"");
        write_timestamp(out, live.last_seen);
        out.extend_from_slice(b"\",\"expiresAt\":\"");
        write_timestamp(out, live.expires_at);
        out.extend_from_slice(b"\"}");
    }

    /// Bytes `write` needs, live fields included.
    pub fn size(&self) -> usize {
        self.head.len() + 16 + self.endpoints.iter().map(|e| e.len() + LIVE_FIELDS_BYTES).sum::<usize>()
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

/// Parses an agent back from its stored form.
pub fn parse_document(document: &str) -> serde_json::Result<Agent> {
    serde_json::from_str(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_chrono_with_milliseconds() {
        for millis in [0, 1, 999, 1_000, 951_782_400_000, 1_795_000_000_123, -1, -86_400_001, 253_402_300_799_999] {
            let mut out = Vec::new();
            write_timestamp(&mut out, millis);
            let expected = chrono::DateTime::from_timestamp_millis(millis)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{millis}");
        }
    }
}
