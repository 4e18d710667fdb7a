//! The registry as an MCP server (Streamable HTTP at `/mcp`, rmcp): a second front door over the
//! same `AgentRegistry`, with discovery tools and agents as resources. Both MCP eras are spoken:
//! 2026-07-28 (`server/discover`, stateless) and 2025-11-25 with `initialize` (down to
//! 2025-03-26). Stateless by default, so any replica answers any request; `--mcp-sessions` keeps
//! 2025-era sessions in the process (one replica), which adds the GET stream that carries
//! `notifications/resources/list_changed`. Whatever the endpoint refuses is answered in JSON-RPC
//! (`jsonrpc`).

mod jsonrpc;
mod task_tools;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, ServerCapabilities, SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, SubscriptionContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use agent_registry_core::model::AgentId;
use agent_registry_core::query::{DiscoveryQuery, SortKey};

use crate::http::AppState;

/// Resources are listed this many at a time.
const RESOURCE_PAGE: usize = 100;
/// Notifications of registry changes are sent at most this often per client.
const NOTIFY_EVERY: Duration = Duration::from_millis(250);

/// How the MCP endpoint is served.
#[derive(Clone, Debug)]
pub struct McpSettings {
    /// Keep 2025-era sessions in this process (one replica) instead of serving statelessly.
    pub sessions: bool,
    /// `Host` values accepted (DNS-rebinding protection); empty: any.
    pub allowed_hosts: Vec<String>,
    /// `Origin` values accepted from browsers; empty: any.
    pub allowed_origins: Vec<String>,
}

/// The rmcp service to mount at `/mcp`.
pub fn service(state: AppState, settings: &McpSettings) -> axum::routing::Router {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(settings.sessions)
        .with_json_response(!settings.sessions)
        .with_max_request_body_bytes(agent_registry_core::input::limits::BODY_BYTES);
    config = if settings.allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(settings.allowed_hosts.clone())
    };
    if !settings.allowed_origins.is_empty() {
        config = config.with_allowed_origins(settings.allowed_origins.clone());
    }
    let mut tools = RegistryMcp::tool_router() + RegistryMcp::task_router();
    tools.map.values_mut().for_each(|route| tools::make_portable(&mut route.attr));
    let tools = Arc::new(tools);
    let factory = move || Ok(RegistryMcp { state: state.clone(), tools: tools.clone() });
    let router = axum::Router::new();
    let router = if settings.sessions {
        router.route_service(
            "/mcp",
            StreamableHttpService::new(factory, Arc::new(LocalSessionManager::default()), config),
        )
    } else {
        router.route_service(
            "/mcp",
            StreamableHttpService::new(factory, Arc::new(NeverSessionManager::default()), config),
        )
    };
    router.layer(axum::middleware::from_fn(jsonrpc::gate))
}

/// One MCP connection's handler (cheap: it holds the shared state and the tool router, built
/// once).
#[derive(Clone)]
pub struct RegistryMcp {
    state: AppState,
    tools: Arc<ToolRouter<RegistryMcp>>,
}

impl RegistryMcp {
    /// Sends `list_changed` through `notify` whenever the registry's revision moves (at most
    /// every `NOTIFY_EVERY`), until sending fails or `closed` resolves.
    async fn forward_changes<F, Fut>(&self, notify: F, closed: impl std::future::Future<Output = ()>)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut revisions = self.state.registry.watch_revision();
        revisions.mark_unchanged();
        tokio::pin!(closed);
        loop {
            tokio::select! {
                () = &mut closed => return,
                changed = revisions.changed() => {
                    if changed.is_err() || !notify().await {
                        return;
                    }
                    tokio::time::sleep(NOTIFY_EVERY).await;
                }
            }
        }
    }
}

impl rmcp::ServerHandler for RegistryMcp {
    fn get_info(&self) -> InitializeResult {
        let capabilities =
            ServerCapabilities::builder().enable_tools().enable_resources().enable_resources_list_changed().build();
        let mut info = Implementation::new("agent-registry", env!("CARGO_PKG_VERSION"));
        info.title = Some("Agent Registry".into());
        info.description = Some("Find live AI agents by capability, protocol, transport, tag or task.".into());
        InitializeResult::new(capabilities).with_server_info(info).with_instructions(tools::INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools::ordered(self.tools.list_all())))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.tools.get(tools::canonical(name)).cloned()
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // Every tool call shares discovery's per-client rate limit (the task tools also count
        // against the management limits, as the REST routes that send tasks do).
        if let Some(parts) = context.extensions.get::<axum::http::request::Parts>() {
            let client = self.state.limits.client(parts);
            if let Err(refused) = self.state.limits.discovery(client) {
                return Ok(tools::rate_limited(refused).into());
            }
        }
        let name = tools::canonical(&request.name).to_owned();
        if !self.tools.has_route(&name) {
            return Err(McpError::invalid_params(format!("unknown tool `{name}`"), None));
        }
        request.name = name.into();
        self.tools.call(ToolCallContext::new(self, request, context)).await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let mut query = DiscoveryQuery::all(false);
        query.page_size = RESOURCE_PAGE;
        if let Some(cursor) = request.and_then(|r| r.cursor) {
            let after =
                SortKey::from_cursor(&cursor).ok_or_else(|| McpError::invalid_params("unknown cursor", None))?;
            query.position = agent_registry_core::query::Position::After(after);
        }
        let page = self.state.registry.search(&query).map_err(tools::protocol_error)?;
        let mut resources = Vec::with_capacity(page.hits.len());
        for hit in &page.hits {
            let agent = hit.agent().map_err(tools::protocol_error)?;
            let mut resource =
                Resource::new(format!("agent://{}", agent.id), agent.name.clone()).with_mime_type("application/json");
            if let Some(d) = &agent.description {
                resource = resource.with_description(d.clone());
            }
            resources.push(resource);
        }
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = page.next_cursor;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let templates = tools::RESOURCE_KINDS
            .iter()
            .map(|(suffix, name, description)| {
                ResourceTemplate::new(format!("agent://{{id}}{suffix}"), *name)
                    .with_description(*description)
                    .with_mime_type("application/json")
            })
            .collect();
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri;
        let rest = uri.strip_prefix("agent://").ok_or_else(|| not_found(&uri))?;
        let (id, kind) = rest.split_once('/').map_or((rest, ""), |(id, kind)| (id, kind));
        let id = AgentId::parse(id).map_err(|_| not_found(&uri))?;
        let document = tools::resource_document(&self.state, id, kind).await.map_err(|e| match e.kind() {
            agent_registry_core::ErrorKind::NotFound | agent_registry_core::ErrorKind::InvalidInput => not_found(&uri),
            _ => tools::protocol_error(e),
        })?;
        let contents = ResourceContents::text(document, uri).with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    /// 2025-era sessions: the GET stream carries a `list_changed` after each registry change.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let (handler, peer) = (self.clone(), context.peer);
        tokio::spawn(async move {
            let closed = {
                let peer = peer.clone();
                async move {
                    while !peer.is_transport_closed() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
            handler.forward_changes(|| async { peer.notify_resource_list_changed().await.is_ok() }, closed).await;
        });
    }

    /// 2026-07-28 `subscriptions/listen`: resource list changes are offered.
    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.resources_list_changed = requested.resources_list_changed;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let sink = context.sink().clone();
        self.forward_changes(|| async { sink.notify_resource_list_changed().await.is_ok() }, context.cancelled()).await;
        Ok(())
    }
}

fn not_found(uri: &str) -> McpError {
    McpError::resource_not_found(format!("no resource {uri}"), None)
}
