//! The registry's domain values: agents, their capabilities and endpoints. Values of these types
//! are only built by `crate::input` (which validates) or loaded back from a store (which holds
//! only validated values), so nothing downstream re-checks them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::RegistryError;

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Identifier of ", $what, " (a UUID, written lower-case and hyphenated).")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new id: a version 7 UUID, ordered by time, so that rows written together land
            /// together in the database's indexes (random ids scatter each batch of writes over
            /// the whole index, a page written per row).
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }
            /// Parses an id as clients send it (hyphenated, simple, braced or URN form).
            pub fn parse(value: &str) -> Result<Self, RegistryError> {
                Uuid::try_parse(value.trim())
                    .map(Self)
                    .map_err(|_| RegistryError::InvalidId { what: $what, value: value.chars().take(64).collect() })
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

id_type!(AgentId, "agent");
id_type!(EndpointId, "endpoint");
id_type!(CapabilityId, "capability");

/// Defines an enum written in one canonical spelling and read leniently: any letter case, and
/// the integer codes of the .NET registry's clients (declaration order there).
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident = $code:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }
            fn from_code(code: i64) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
            fn expected() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                format!("one of {}", names.join(", "))
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let t = s.trim();
                $(
                    if t.eq_ignore_ascii_case(stringify!($variant)) $(|| t.eq_ignore_ascii_case($alias))* {
                        return Ok($name::$variant);
                    }
                )+
                if let Ok(code) = t.parse::<i64>() {
                    if let Some(v) = Self::from_code(code) {
                        return Ok(v);
                    }
                }
                Err(format!("unknown {} `{}`; expected {}", $what, s.chars().take(64).collect::<String>(), Self::expected()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} name or integer code", $what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$name, E> {
                        $name::from_code(v).ok_or_else(|| E::custom(format!(
                            "unknown {} code {}; expected {}", $what, v, $name::expected())))
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$name, E> {
                        self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

wire_enum!(
    /// How an endpoint is reached. `Grpc` is gRPC (HTTP/2 with protobuf framing), as A2A's `GRPC`
    /// binding uses it: its address is a gRPC target, not a URL an HTTP client could call.
    Transport, "transport" { Http = 0, Amqp = 1, AzureServiceBus = 2 | "azure-service-bus" | "servicebus", Grpc = 3 }
);
wire_enum!(
    /// Which agent protocol an endpoint speaks. `Custom` also takes the .NET registry's `Unknown` (code 0).
    Protocol, "protocol" { Custom = 0 | "unknown", A2A = 1, MCP = 2, ACP = 3 }
);
wire_enum!(
    /// How an endpoint proves it is alive: renewing a TTL lease, or sending heartbeats.
    LivenessModel, "liveness model" { Ephemeral = 0, Persistent = 1 }
);

/// Something an agent can do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Capability {
    pub id: CapabilityId,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub input_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output_schema: Option<Value>,
}

/// A way to reach an agent, with its liveness rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: EndpointId,
    pub name: String,
    pub transport: Transport,
    pub protocol: Protocol,
    pub address: String,
    pub liveness_model: LivenessModel,
    /// Lease length for `Ephemeral` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u32>,
    /// Expected heartbeat period for `Persistent` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<u32>,
    /// Protocol-specific fields, kept verbatim.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub protocol_metadata: Map<String, Value>,
    #[serde(with = "crate::render::timestamp")]
    pub created_at: DateTime<Utc>,
}

/// A registered agent: the aggregate every change is applied to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: AgentId,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    pub owner_id: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// A permanent agent stays registered when its last endpoint is evicted.
    #[serde(default)]
    pub permanent: bool,
    /// Names the agent holds alone (kept by the store, not shown in the agent's JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<crate::claim::NameClaim>,
    /// The protocol document the agent was registered with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::protocol::ProtocolDocument>,
    #[serde(with = "crate::render::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::render::timestamp")]
    pub updated_at: DateTime<Utc>,
    /// Registry-wide revision of the last change to this agent.
    pub revision: u64,
}

impl Agent {
    pub fn endpoint(&self, id: EndpointId) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }
}
