//! The gateway's outbound clients: the `Invoker` port implemented per protocol, every call
//! behind the egress policy and its time and size bounds. A2A over HTTP (JSON-RPC and
//! HTTP+JSON bindings) today; MCP, ACP and AMQP slot in as further arms of [`Invokers`].
#![forbid(unsafe_code)]

pub mod a2a;
pub mod acp;
pub mod amqp;
pub mod egress;
pub mod http;
pub mod mcp;

use std::sync::Arc;

use agent_registry_core::model::{Protocol, Transport};
use agent_registry_core::task::{Call, InvokeError, Invoker, Outcome, Step, Target};
use async_trait::async_trait;

pub use egress::{EgressPolicy, Rule};
pub use http::HttpBounds;

/// Every protocol client of this crate, chosen by the target's protocol and transport.
#[derive(Clone, Debug, Default)]
pub struct Invokers {
    pub egress: EgressPolicy,
    pub bounds: HttpBounds,
    /// Queue dispatch to the `--amqp-url` broker (any protocol over `Amqp`); none: not spoken.
    pub amqp: Option<Arc<amqp::AmqpClient>>,
}

#[async_trait]
impl Invoker for Invokers {
    fn speaks(&self, protocol: Protocol, transport: Transport) -> bool {
        // Over AMQP the registry's own task message goes, whatever protocol the endpoint names;
        // Azure Service Bus is never spoken (no broker to test against: 501).
        matches!((protocol, transport), (Protocol::A2A | Protocol::MCP | Protocol::ACP, Transport::Http))
            || (transport == Transport::Amqp && self.amqp.is_some())
    }

    async fn invoke(
        &self,
        target: &Target,
        call: &Call,
        events: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Outcome, InvokeError> {
        match (target.protocol, target.transport) {
            (Protocol::A2A, Transport::Http) => {
                a2a::A2aClient { egress: &self.egress, bounds: &self.bounds }.invoke(target, call, events).await
            }
            (Protocol::MCP, Transport::Http) => {
                mcp::McpClient { egress: &self.egress, bounds: &self.bounds }.invoke(target, call, events).await
            }
            (Protocol::ACP, Transport::Http) => {
                acp::AcpClient { egress: &self.egress, bounds: &self.bounds }.invoke(target, call, events).await
            }
            (_, Transport::Amqp) if let Some(amqp) = &self.amqp => amqp.invoke(target, call, events).await,
            (protocol, transport) => Err(InvokeError::NotAccepted {
                code: agent_registry_core::error::catalogue::AGENT_UNREACHABLE,
                detail: format!("the gateway cannot send tasks to {protocol} over {transport} yet"),
            }),
        }
    }

    async fn cancel(&self, target: &Target, remote_id: Option<&str>) -> Result<(), InvokeError> {
        match (target.protocol, target.transport) {
            (Protocol::A2A, Transport::Http) => {
                a2a::A2aClient { egress: &self.egress, bounds: &self.bounds }.cancel(target, remote_id).await
            }
            (Protocol::ACP, Transport::Http) => {
                acp::AcpClient { egress: &self.egress, bounds: &self.bounds }.cancel(target, remote_id).await
            }
            _ => Ok(()),
        }
    }
}
