//! The `/mcp` endpoint's answers to messages that never reach the MCP layer, as JSON-RPC error
//! bodies: a client reads every answer of its MCP endpoint as JSON-RPC (Streamable HTTP, "Sending
//! Messages to the Server": a refused POST gets an HTTP error status whose body MAY be a JSON-RPC
//! error response without an id). rmcp answers a body it cannot read with `415` and plain text,
//! and a known method with bad params as an unknown method; this layer checks the envelope first
//! (JSON-RPC 2.0 §4, §5.1) and rewrites rmcp's plain-text refusals.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::http::extract::{RawJson, is_json};
use crate::http::problem::ApiError;

/// JSON-RPC 2.0 §5.1 error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

/// Refusals of rmcp's transport are short texts; a longer body is not one of them.
const REFUSAL_BYTES: usize = 4096;

/// Checks a POSTed JSON-RPC message before rmcp reads it, and turns rmcp's plain-text refusals
/// (405, 406, 415, 403, a bad `MCP-Protocol-Version`) into JSON-RPC error bodies.
pub async fn gate(request: Request, next: Next) -> Response {
    let request = if request.method() == Method::POST && is_json(request.headers()) {
        let (parts, body) = request.into_parts();
        let bytes = match RawJson::from_request(Request::from_parts(parts.clone(), body), &()).await {
            Ok(RawJson(bytes)) => bytes,
            Err(refused) => return body_refused(&refused),
        };
        if let Some(refusal) = check(&bytes) {
            return refusal;
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    let response = next.run(request).await;
    if response.status().is_success() || is_json(response.headers()) {
        return response;
    }
    as_jsonrpc(response).await
}

/// A JSON-RPC error response (`id` is `null` when the request's could not be read).
fn error(status: StatusCode, id: Value, code: i64, message: impl Into<String>, data: Option<Value>) -> Response {
    let mut error = json!({"code": code, "message": message.into()});
    if let Some(data) = data {
        error["data"] = data;
    }
    (status, axum::Json(json!({"jsonrpc": "2.0", "id": id, "error": error}))).into_response()
}

/// A body refused while reading: not JSON, a key repeated, too large, cut off.
fn body_refused(refused: &ApiError) -> Response {
    let entry = refused.entry();
    let (message, data) = match refused {
        ApiError::Http { detail, errors, .. } => {
            let errors: Vec<Value> = errors.iter().map(|e| json!({"pointer": e.pointer, "detail": e.detail})).collect();
            (detail.clone(), json!({"code": entry.code, "errors": errors}))
        }
        other => (entry.title.to_owned(), json!({"code": other.entry().code})),
    };
    // A repeated key is refused by this registry's JSON reader: for the client, the body did not
    // parse. A body too large is a request this endpoint will not take.
    let rpc_code = if entry.status == 413 { INVALID_REQUEST } else { PARSE_ERROR };
    error(refused.status(), Value::Null, rpc_code, message, Some(data))
}

/// The envelope of one message: `None` when rmcp may have it.
fn check(bytes: &Bytes) -> Option<Response> {
    let bad = StatusCode::BAD_REQUEST;
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => return Some(error(bad, Value::Null, PARSE_ERROR, format!("the body is not JSON: {e}"), None)),
    };
    let object = match value {
        // MCP 2025-06-18 removed JSON-RPC batching; every later revision sends one message per POST.
        Value::Array(_) => {
            return Some(error(
                bad,
                Value::Null,
                INVALID_REQUEST,
                "a batch (JSON array) is not accepted: send one JSON-RPC message per POST",
                None,
            ));
        }
        Value::Object(object) => object,
        _ => return Some(error(bad, Value::Null, INVALID_REQUEST, "a JSON-RPC message is a JSON object", None)),
    };
    // MCP: "Unlike base JSON-RPC, the ID MUST NOT be null"; a string or an integer.
    let id = match object.get("id") {
        None => None,
        Some(id @ Value::String(_)) => Some(id.clone()),
        Some(id @ Value::Number(n)) if n.is_i64() || n.is_u64() => Some(id.clone()),
        Some(_) => {
            return Some(error(bad, Value::Null, INVALID_REQUEST, "`id` must be a string or an integer", None));
        }
    };
    let reply_id = id.clone().unwrap_or(Value::Null);
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some(error(bad, reply_id, INVALID_REQUEST, "`jsonrpc` must be \"2.0\"", None));
    }
    let method = match object.get("method") {
        None => None,
        Some(Value::String(method)) => Some(method.as_str()),
        Some(_) => return Some(error(bad, reply_id, INVALID_REQUEST, "`method` must be a string", None)),
    };
    let Some(method) = method else {
        // A response of the client (to a server request): it needs its id and a result or an error.
        if id.is_none() || !(object.contains_key("result") || object.contains_key("error")) {
            return Some(error(
                bad,
                reply_id,
                INVALID_REQUEST,
                "a message without `method` is a response and needs `id` and `result` or `error`",
                None,
            ));
        }
        return parse_error(bytes, reply_id);
    };
    let params = object.get("params");
    // A request (it has an id) is answered; a notification's faults cannot be.
    if let Some(id) = id {
        if params.is_some_and(|p| !p.is_object()) {
            return Some(error(StatusCode::OK, id, INVALID_PARAMS, "`params` must be an object", None));
        }
        let message = serde_json::from_slice::<ClientJsonRpcMessage>(bytes);
        // rmcp reads a method it implements whose params do not fit as a custom (unknown) method,
        // and answers -32601; the client deserves -32602 and the reason.
        if let Ok(JsonRpcMessage::Request(request)) = &message
            && matches!(request.request, ClientRequest::CustomRequest(_))
            && let Some(detail) = params_fault(method, params.cloned().unwrap_or_else(|| json!({})))
        {
            let message = format!("invalid params of {method}: {detail}");
            return Some(error(StatusCode::OK, id, INVALID_PARAMS, message, None));
        }
    }
    parse_error(bytes, reply_id)
}

/// What rmcp's own reading of the message refuses, as -32600.
fn parse_error(bytes: &Bytes, id: Value) -> Option<Response> {
    match serde_json::from_slice::<ClientJsonRpcMessage>(bytes) {
        Ok(_) => None,
        Err(e) => {
            Some(error(StatusCode::BAD_REQUEST, id, INVALID_REQUEST, format!("not a JSON-RPC message: {e}"), None))
        }
    }
}

/// Why `params` do not fit a method this server implements; `None` for other methods.
fn params_fault(method: &str, params: Value) -> Option<String> {
    use rmcp::model::{
        CallToolRequestParams, CompleteRequestParams, GetPromptRequestParams, InitializeRequestParams,
        PaginatedRequestParams, ReadResourceRequestParams,
    };
    fn fault<T: DeserializeOwned>(params: Value) -> String {
        serde_json::from_value::<T>(params)
            .err()
            .map_or_else(|| "they do not fit the method".to_owned(), |e| e.to_string())
    }
    Some(match method {
        "initialize" => fault::<InitializeRequestParams>(params),
        "tools/call" => fault::<CallToolRequestParams>(params),
        "resources/read" => fault::<ReadResourceRequestParams>(params),
        "prompts/get" => fault::<GetPromptRequestParams>(params),
        "completion/complete" => fault::<CompleteRequestParams>(params),
        "tools/list" | "resources/list" | "resources/templates/list" | "prompts/list" => {
            fault::<PaginatedRequestParams>(params)
        }
        _ => return None,
    })
}

/// rmcp's plain-text refusal, as a JSON-RPC error with the same status and headers.
async fn as_jsonrpc(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, REFUSAL_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() { parts.status.canonical_reason().unwrap_or("refused").to_owned() } else { text };
    let code = if parts.status.is_server_error() { INTERNAL_ERROR } else { INVALID_REQUEST };
    let (_, body) = error(parts.status, Value::Null, code, message, None).into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}
