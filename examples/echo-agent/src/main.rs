//! `echo-agent [ADDRESS]`: an A2A agent on the JSON-RPC binding that answers `SendMessage`
//! (v1.0) and `message/send` (v0.3) with a message holding the text it was sent. The gateway
//! benchmark calls it directly and through the registry, so it does as little as it can.
#![forbid(unsafe_code)]

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9100".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("echo agent listening on http://{}", listener.local_addr()?);
    let app = axum::Router::new().route("/", post(answer));
    axum::serve(listener, app).with_graceful_shutdown(async { tokio::signal::ctrl_c().await.unwrap_or(()) }).await
}

/// One JSON-RPC request: the first text part of the message comes back in an agent message.
async fn answer(Json(request): Json<Value>) -> Json<Value> {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let message = &request["params"]["message"];
    let text = message["parts"]
        .as_array()
        .and_then(|parts| parts.iter().find_map(|p| p.get("text").and_then(Value::as_str)))
        .unwrap_or_default();
    let reply = match request.get("method").and_then(Value::as_str) {
        Some("SendMessage") => {
            json!({"message": {"role": "ROLE_AGENT", "messageId": format!("echo-{}", message["messageId"].as_str().unwrap_or_default()), "parts": [{"text": text}]}})
        }
        Some("message/send") => {
            json!({"kind": "message", "role": "agent", "messageId": "echo", "parts": [{"kind": "text", "text": text}]})
        }
        _ => {
            return Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}}));
        }
    };
    Json(json!({"jsonrpc": "2.0", "id": id, "result": reply}))
}
