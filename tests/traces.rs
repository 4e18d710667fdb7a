//! Traces over OTLP/HTTP, received by a collector this test runs: a replica started with
//! `--otlp-endpoint` exports a span per request named by its route, continues the trace a W3C
//! `traceparent` names, and exports the store calls a request made (in the task it spawned to
//! write) as descendants of the request's span.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use reqwest::Method;

use crate::cluster::Replica;
use crate::support::{agent, ephemeral};

/// What the collector received: every span, and the service name of the resource it came with.
#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    services: Vec<String>,
}

/// An OTLP/HTTP collector on a free port: `POST /v1/traces` with a protobuf body, as the
/// OpenTelemetry Collector takes it.
async fn collector() -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let keep = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let keep = keep.clone();
            async move {
                let export = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
                let mut received = keep.lock().unwrap();
                for resource in export.resource_spans {
                    let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
                    if let Some(name) = attributes.iter().find(|a| a.key == "service.name") {
                        received.services.push(text(name.value.as_ref().and_then(|v| v.value.as_ref())));
                    }
                    received.spans.extend(resource.scope_spans.into_iter().flat_map(|s| s.spans));
                }
                ([("content-type", "application/x-protobuf")], ExportTraceServiceResponse::default().encode_to_vec())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the collector serves") });
    (url, received)
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_request_is_a_span_named_by_its_route_in_the_callers_trace_with_its_store_calls_beneath() {
    let (url, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("traced.db").display());
    let replica = Replica::start(&["--database-url", &db, "--otlp-endpoint", &url]).await;
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let body = agent("Traced", "trace", ephemeral(60));
    let created = replica.send(Method::POST, "/agents", Some(body), &[("traceparent", &traceparent)]).await;
    created.ok(201);
    let id = created.body["id"].as_str().unwrap().to_owned();
    replica.get(&format!("/agents/{id}")).await.ok(200);
    // A graceful stop exports what is left (waited for off this thread, which runs the collector).
    let stopped = tokio::task::spawn_blocking(move || replica.terminate()).await.unwrap();
    assert!(stopped.success());

    let received = received.lock().unwrap();
    assert!(received.services.iter().all(|s| s == "agent-registry") && !received.services.is_empty());
    let spans = &received.spans;
    let register = spans.iter().find(|s| s.name == "POST /agents").unwrap_or_else(|| {
        panic!("no span POST /agents among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>())
    });
    assert_eq!(hex(&register.trace_id), trace_id, "the request continues the caller's trace");
    assert_eq!(hex(&register.parent_span_id), caller_span, "the caller's span is its parent");
    assert_eq!(register.kind, SpanKind::Server as i32);
    assert_eq!(attribute(register, "http.route").as_deref(), Some("/agents"));
    assert_eq!(attribute(register, "http.response.status_code").as_deref(), Some("201"));

    // Every span of the trace leads up to the request's span, through the spawned write.
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let descends_from_request = |span: &Span| {
        let mut at = span;
        while let Some(parent) = by_id.get(at.parent_span_id.as_slice()) {
            if parent.span_id == register.span_id {
                return true;
            }
            at = parent;
        }
        false
    };
    let store_calls: Vec<&Span> =
        spans.iter().filter(|s| s.trace_id == register.trace_id && s.name.starts_with("store ")).collect();
    assert!(
        store_calls.iter().any(|s| s.name == "store apply"),
        "{:?}",
        store_calls.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for call in &store_calls {
        assert!(descends_from_request(call), "{} is not under the request's span", call.name);
        assert_eq!(call.kind, SpanKind::Client as i32);
    }

    // A request without `traceparent` starts a trace of its own.
    let read = spans.iter().find(|s| s.name == "GET /agents/{id}").expect("a span GET /agents/{id}");
    assert_ne!(read.trace_id, register.trace_id);
    assert!(read.parent_span_id.is_empty(), "a root span");
    assert_eq!(attribute(read, "http.response.status_code").as_deref(), Some("200"));
}

#[tokio::test]
async fn a_collector_that_refuses_connections_costs_spans_never_requests() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("lost.db").display());
    let refused = format!("http://127.0.0.1:{}", crate::cluster::free_port());
    let replica = Replica::start(&["--database-url", &db, "--otlp-endpoint", &refused]).await;
    replica.register(agent("Lost spans", "lost", ephemeral(60))).await;
    assert_eq!(replica.get("/discover/agents?capability=lost").await.ok(200)["totalCount"], 1);
    assert!(replica.terminate().success(), "the stop is not held by the exports that fail");
}
