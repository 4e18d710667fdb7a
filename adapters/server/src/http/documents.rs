//! What the protocol routes (A2A, MCP, ACP) share: reading a submitted document and the
//! registry's wrapper fields around it, registering its translation, serving documents with
//! `ETag`/`Cache-Control`/`If-None-Match`, listing them, and the base URL documents point at.

use std::collections::BTreeMap;

use agent_registry_core::RegistryError;
use agent_registry_core::index::{Hit, SearchPage};
use agent_registry_core::input::{AgentInput, EndpointInput};
use agent_registry_core::model::LivenessModel;
use agent_registry_core::protocol::{Served, Translation};
use agent_registry_core::query::DiscoveryQuery;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use super::extract::{QueryPairs, if_none_match, parse_json};
use super::problem::ApiError;

/// The longest the `jku` key sets of one card may take to fetch, all of them together.
const JKU_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// The largest `jku` key set read.
const JKU_MAX_BYTES: usize = 256 * 1024;

/// How long clients may cache a served document before revalidating it with its `ETag`.
pub const DOCUMENT_MAX_AGE_SECONDS: u32 = 300;

/// Liveness of the endpoints a protocol document registers: from the request (the wrapper's
/// `liveness` object, or query parameters of the same names), else the configured defaults.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LivenessRequest {
    pub liveness_model: Option<LivenessModel>,
    pub ttl_seconds: Option<i64>,
    pub heartbeat_interval_seconds: Option<i64>,
}

/// The registry's own fields around a protocol document (`{"card": {...}, "liveness": {...}}`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wrapper {
    #[serde(default)]
    liveness: Option<LivenessRequest>,
    #[serde(default)]
    owner_id: Option<String>,
    #[serde(default)]
    permanent: Option<bool>,
    #[serde(default, alias = "endpoint_url")]
    endpoint_url: Option<String>,
}

/// A submitted protocol document, split from the registry's wrapper fields.
#[derive(Debug)]
pub struct Submission {
    /// The document's exact text.
    pub document: String,
    /// Where the document sits in the body, as a JSON pointer ("" when bare).
    pub base: String,
    pub liveness: LivenessRequest,
    pub owner_id: Option<String>,
    pub permanent: Option<bool>,
    pub endpoint_url: Option<String>,
}

impl Submission {
    /// Reads a body that is either the bare document or an object holding it under
    /// `wrapper_key` beside the registry's own fields.
    pub fn read(body: &[u8], wrapper_key: &str, query: &QueryPairs) -> Result<Self, ApiError> {
        let fields: BTreeMap<String, Box<RawValue>> = parse_json(body).map_err(|_| {
            // Report syntax errors (and non-objects) the way every JSON body is reported.
            match parse_json::<Value>(body) {
                Err(e) => e,
                Ok(_) => RegistryError::field("", "the body must be a JSON object").into(),
            }
        })?;
        let mut submission = match fields.get(wrapper_key) {
            Some(document) => {
                let known = ["liveness", "ownerId", "permanent", "endpointUrl", "endpoint_url", wrapper_key];
                if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
                    return Err(RegistryError::field(
                        format!("/{unknown}"),
                        format!(
                            "is not a field of the registration wrapper (the document goes in `{wrapper_key}`, \
                             beside `liveness`, `ownerId`, `permanent` and `endpointUrl`)"
                        ),
                    )
                    .into());
                }
                let wrapper: Wrapper = parse_json(body)?;
                Self {
                    document: document.get().to_owned(),
                    base: format!("/{wrapper_key}"),
                    liveness: wrapper.liveness.unwrap_or_default(),
                    owner_id: wrapper.owner_id,
                    permanent: wrapper.permanent,
                    endpoint_url: wrapper.endpoint_url,
                }
            }
            None => Self {
                document: String::from_utf8_lossy(body).into_owned(),
                base: String::new(),
                liveness: LivenessRequest::default(),
                owner_id: None,
                permanent: None,
                endpoint_url: None,
            },
        };
        submission.apply_query(query)?;
        Ok(submission)
    }

    /// Query parameters fill what the body left open.
    fn apply_query(&mut self, query: &QueryPairs) -> Result<(), ApiError> {
        for (key, value) in &query.0 {
            let number = |v: &str| {
                v.trim().parse::<i64>().map_err(|_| RegistryError::query(key, "must be a whole number of seconds"))
            };
            match key.as_str() {
                "livenessModel" => {
                    let model = value.parse().map_err(|e: String| RegistryError::query(key, e))?;
                    self.liveness.liveness_model.get_or_insert(model);
                }
                "ttlSeconds" => _ = self.liveness.ttl_seconds.get_or_insert(number(value)?),
                "heartbeatIntervalSeconds" => {
                    _ = self.liveness.heartbeat_interval_seconds.get_or_insert(number(value)?);
                }
                "endpointUrl" => _ = self.endpoint_url.get_or_insert_with(|| value.clone()),
                other => return Err(RegistryError::query(other, format!("`{other}` is not a known parameter")).into()),
            }
        }
        Ok(())
    }

    /// Completes a translation with the request's liveness, owner and permanence: the agent to
    /// register, carrying its document.
    pub fn complete(&self, translation: Translation, default_model: LivenessModel) -> AgentInput {
        let Translation { mut agent, origin } = translation;
        for endpoint in agent.endpoints.iter_mut().flatten() {
            self.apply_liveness(endpoint, default_model);
        }
        if self.owner_id.is_some() {
            agent.owner_id.clone_from(&self.owner_id);
        }
        if self.permanent.is_some() {
            agent.permanent = self.permanent;
        }
        agent.origin = Some(origin);
        agent
    }

    fn apply_liveness(&self, endpoint: &mut EndpointInput, default_model: LivenessModel) {
        endpoint.liveness_model = Some(self.liveness.liveness_model.unwrap_or(default_model));
        endpoint.ttl_seconds = self.liveness.ttl_seconds;
        endpoint.heartbeat_interval_seconds = self.liveness.heartbeat_interval_seconds;
    }
}

/// Serves a document with a content hash as `ETag`; a matching `If-None-Match` gets 304.
pub fn serve(request: &HeaderMap, served: Served, content_type: &'static str, max_age: u32) -> Response {
    let body = served.into_bytes();
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex::encode(&digest[..12]));
    let cache = format!("public, max-age={max_age}");
    let matches = if_none_match(request, &etag);
    let headers = [(header::ETAG, etag), (header::CACHE_CONTROL, cache)];
    if matches {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (StatusCode::OK, headers, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A page of protocol documents: each with the agent's id and whether a matching endpoint is
/// live, in the paging envelope of the generic API.
pub fn page(page: &SearchPage, field: &str, document: impl Fn(&Hit) -> Option<Value>) -> Value {
    let items: Vec<Value> = page
        .hits
        .iter()
        .filter_map(|hit| {
            let doc = document(hit)?;
            let live = hit.endpoints.iter().any(|(_, s)| s.is_live);
            Some(json!({ "agentId": hit.id(), "isLive": live, field: doc }))
        })
        .collect();
    let total_pages = page.total.div_ceil(page.page_size.max(1));
    json!({
        "items": items,
        "totalCount": page.total,
        "page": page.page,
        "pageSize": page.page_size,
        "totalPages": total_pages,
        "hasNextPage": page.page < total_pages,
        "hasPreviousPage": page.page > 1,
        "nextCursor": page.next_cursor,
    })
}

/// A discovery query restricted to one protocol's view: agents with an endpoint speaking it,
/// and (unless only live ones are wanted) agents registered with one of its documents.
pub fn protocol_query(
    pairs: &[(String, String)],
    protocol: agent_registry_core::model::Protocol,
    live_only_default: bool,
) -> Result<DiscoveryQuery, ApiError> {
    if let Some((k, _)) = pairs.iter().find(|(k, _)| k == "protocol") {
        return Err(RegistryError::query(k, "is fixed by this route").into());
    }
    let mut query =
        DiscoveryQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), live_only_default, false)?;
    query.protocols = vec![protocol];
    query.with_documents = true;
    Ok(query)
}

/// The base URL documents point at: `--public-url` when set; otherwise, for requests through a
/// trusted proxy, its `X-Forwarded-Proto`/`X-Forwarded-Host`; otherwise the listen address.
/// Never the `Host` header of an arbitrary client.
pub struct PublicBase(pub String);

impl FromRequestParts<AppState> for PublicBase {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if !state.public_url_configured && state.limits.from_trusted_proxy(parts) {
            let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
            let proto = header("x-forwarded-proto").filter(|p| matches!(*p, "http" | "https")).unwrap_or("https");
            let host = header("x-forwarded-host").filter(|h| is_host(h));
            if let Some(host) = host {
                return Ok(Self(format!("{proto}://{host}")));
            }
        }
        Ok(Self(state.public_url.to_string()))
    }
}

/// A host name or address with an optional port, nothing else.
fn is_host(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Settings and caches of the protocol routes.
pub struct Protocols {
    /// Liveness model of endpoints a document registers when the request names none.
    pub liveness_model: LivenessModel,
    /// Keys A2A card signatures are checked against.
    pub card_keys: jsonwebtoken::jwk::JwkSet,
    /// URL prefixes of `jku` key sets that may be fetched.
    pub trusted_jku: Vec<super::jku::TrustedPrefix>,
    pub http: reqwest::Client,
    /// The MCP Registry catalogue, rebuilt when the registry's revision moves.
    catalog: parking_lot::Mutex<Option<(u64, std::sync::Arc<agent_registry_mcp::Catalog>)>>,
    /// The AI Catalog as last rendered: revision, base URL, document.
    ai_catalog: parking_lot::Mutex<Option<(u64, String, std::sync::Arc<str>)>>,
}

impl Protocols {
    /// Fails when the client that fetches `jku` key sets cannot be built: a default client
    /// would follow redirects and wait forever.
    pub fn new(
        liveness_model: LivenessModel,
        card_keys: jsonwebtoken::jwk::JwkSet,
        trusted_jku: Vec<super::jku::TrustedPrefix>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(JKU_BUDGET)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            liveness_model,
            card_keys,
            trusted_jku,
            http,
            catalog: parking_lot::Mutex::new(None),
            ai_catalog: parking_lot::Mutex::new(None),
        })
    }

    /// Whether a signed card verifies: against the configured keys and the key sets its `jku`
    /// headers name when they lie under a trusted prefix (others are never fetched: a card must
    /// not make the registry call arbitrary URLs). `None` for unsigned cards.
    ///
    /// The key sets are fetched at once, all within one `JKU_BUDGET`: a card naming several
    /// slow key servers holds its registration for the budget, not for their sum.
    pub async fn verify_card(&self, text: &str) -> Option<bool> {
        let mut keys = self.card_keys.clone();
        let urls: Vec<url::Url> = agent_registry_a2a::signature_key_urls(text)
            .iter()
            .filter_map(|jku| super::jku::trusted_url(jku, &self.trusted_jku))
            .collect();
        let deadline = tokio::time::Instant::now() + JKU_BUDGET;
        let fetches = urls.iter().map(|url| async move {
            let fetched = tokio::time::timeout_at(deadline, self.fetch_keys(url)).await;
            (url, fetched.unwrap_or_else(|_| Err("no answer within the time budget".into())))
        });
        for (url, fetched) in futures_util::future::join_all(fetches).await {
            match fetched {
                Ok(set) => keys.keys.extend(set.keys),
                Err(e) => tracing::warn!(jku = %url, error = %e, "could not fetch a card's signing keys"),
            }
        }
        agent_registry_a2a::verify_signatures(text, &keys)
    }

    /// One key set, of at most `JKU_MAX_BYTES`.
    async fn fetch_keys(
        &self,
        url: &url::Url,
    ) -> Result<jsonwebtoken::jwk::JwkSet, Box<dyn std::error::Error + Send + Sync>> {
        let mut response = self.http.get(url.clone()).send().await?.error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > JKU_MAX_BYTES {
                return Err(format!("the key set is larger than {JKU_MAX_BYTES} bytes").into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// The AI Catalog for `base`, rendered again only when the registry's revision moved (it
    /// lists every live agent: not something to rebuild per request).
    pub fn ai_catalog(
        &self,
        registry: &agent_registry_core::AgentRegistry,
        base: &str,
        render: impl FnOnce() -> Result<String, RegistryError>,
    ) -> Result<std::sync::Arc<str>, RegistryError> {
        let revision = registry.applied_revision();
        if let Some((at, for_base, document)) = self.ai_catalog.lock().as_ref()
            && *at == revision
            && for_base == base
        {
            return Ok(document.clone());
        }
        let document: std::sync::Arc<str> = render()?.into();
        *self.ai_catalog.lock() = Some((revision, base.to_owned(), document.clone()));
        Ok(document)
    }

    /// The MCP Registry catalogue as of the registry's current revision.
    pub fn catalog(
        &self,
        registry: &agent_registry_core::AgentRegistry,
    ) -> Result<std::sync::Arc<agent_registry_mcp::Catalog>, ApiError> {
        let revision = registry.applied_revision();
        if let Some((at, catalog)) = self.catalog.lock().as_ref()
            && *at == revision
        {
            return Ok(catalog.clone());
        }
        let mut query = DiscoveryQuery::all(false);
        query.protocols = vec![agent_registry_core::model::Protocol::MCP];
        query.with_documents = true;
        query.page_size = usize::MAX / 2;
        let page = registry.search(&query)?;
        let entries = page
            .hits
            .iter()
            .filter_map(|hit| hit.agent().ok())
            .filter_map(|agent| agent_registry_mcp::catalog_entry(&agent))
            .collect();
        let catalog = std::sync::Arc::new(agent_registry_mcp::Catalog::new(entries));
        *self.catalog.lock() = Some((revision, catalog.clone()));
        Ok(catalog)
    }
}
