//! The parts of an ACP 0.2.0 `AgentManifest` (OpenAPI `components.schemas.AgentManifest`,
//! `Metadata`, `Status`; protocols.md §3.2) that the registry reads or writes.
//!
//! These types are not used to serve a submitted manifest back: that is served from the
//! submitted text (see `crate::splice`), so nothing here needs to tell absent from `null`. They
//! read a manifest after it passed the derived schema, and write the manifests built from the
//! domain. Every level keeps the fields it does not name in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// `AgentManifest`. `null` reads as absent (the reference SDK writes `null` for unset fields,
/// protocols.md §3.4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentManifest {
    /// `AgentName` in the spec; any string in what the SDK publishes.
    pub name: String,
    /// Required by the spec, optional in the SDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_content_types: Vec<String>,
    pub output_content_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Metadata`: static details for discovery. Only the fields the registry maps are named.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<Capability>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programming_language: Option<String>,
    /// An SPDX id in the spec, free text (`Apache 2.0`) in practice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub natural_languages: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Link>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `Metadata.capabilities`: both fields required by the spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    pub name: String,
    pub description: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Link`: `type` is one of [`LINK_TYPES`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Link {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The values of `Link.type` in the spec.
pub const LINK_TYPES: [&str; 4] = ["source-code", "container-image", "homepage", "documentation"];

/// `Status`: run metrics set by whatever manages the agent. Numbers are kept as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_run_tokens: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_run_time_seconds: Option<Number>,
    /// A percentage, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<Number>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Status {
    /// Keeps only metrics within the spec's bounds (`minimum: 0`; `success_rate` at most 100)
    /// and drops unknown fields; `None` when nothing is left.
    pub fn within_bounds(&self) -> Option<Self> {
        let at_least_zero = |n: &Option<Number>| n.clone().filter(|n| n.as_f64().is_some_and(|v| v >= 0.0));
        let status = Self {
            avg_run_tokens: at_least_zero(&self.avg_run_tokens),
            avg_run_time_seconds: at_least_zero(&self.avg_run_time_seconds),
            success_rate: at_least_zero(&self.success_rate).filter(|n| n.as_f64().is_some_and(|v| v <= 100.0)),
            extra: Map::new(),
        };
        (status != Self::default()).then_some(status)
    }
}

/// What the registry keeps of a manifest in the agent's `metadata.acp` (camelCase, like the
/// registry's own JSON), so that a manifest can be rebuilt after the agent is changed through
/// the generic API, which drops the submitted document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcpFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_content_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_content_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programming_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub natural_languages: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Link>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl AcpFacts {
    /// The key of these facts in `Agent.metadata`.
    pub const KEY: &'static str = "acp";

    /// Reads the facts field by field, ignoring any that a generic client changed into
    /// something else, so one bad field does not lose the others.
    pub fn read(metadata: &Map<String, Value>) -> Self {
        let Some(Value::Object(facts)) = metadata.get(Self::KEY) else { return Self::default() };
        fn field<T: serde::de::DeserializeOwned>(facts: &Map<String, Value>, key: &str) -> Option<T> {
            facts.get(key).and_then(|v| T::deserialize(v).ok())
        }
        Self {
            input_content_types: field(facts, "inputContentTypes"),
            output_content_types: field(facts, "outputContentTypes"),
            framework: field(facts, "framework"),
            programming_language: field(facts, "programmingLanguage"),
            license: field(facts, "license"),
            natural_languages: field(facts, "naturalLanguages"),
            // Entry by entry: a link the spec would refuse is left out.
            links: facts.get("links").and_then(Value::as_array).map(|links| {
                links
                    .iter()
                    .filter_map(|l| Link::deserialize(l).ok())
                    .filter(|l| LINK_TYPES.contains(&l.kind.as_str()))
                    .map(|l| Link { extra: Map::new(), ..l })
                    .collect()
            }),
            status: field::<Status>(facts, "status").and_then(|s| s.within_bounds()),
        }
    }
}
