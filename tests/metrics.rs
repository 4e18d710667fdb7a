//! `/metrics` as Prometheus reads it: parsed with a Prometheus text-format parser, each count
//! checked against what the test did, on the main listener and on `--metrics-listen`.
//!
//! The `metrics` recorder is global to a process and nextest runs each test in a process of its
//! own; counters are still compared before and after, so what start-up did does not count.

use std::collections::{BTreeMap, BTreeSet};

use openmetrics_parser::PrometheusValue;
use serde_json::json;

use crate::cluster::{Replica, free_port};
use crate::support::{Http, TestApp, agent, ephemeral, persistent};

/// One series of a scrape: its family, labels and value (a histogram's count of observations).
struct Series {
    family: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One scrape, parsed.
struct Metrics(Vec<Series>);

impl Metrics {
    async fn of(http: &Http) -> Self {
        let (status, headers, body) = http.get_bytes("/metrics", &[]).await;
        assert_eq!(status, 200);
        let kind = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        Self::parse(&String::from_utf8(body).expect("UTF-8"))
    }

    /// Parsed by a grammar of the whole text format: a line it cannot read fails the test
    /// (route labels such as `/agents/{id}` hold braces that line-by-line regexes drop).
    fn parse(text: &str) -> Self {
        let exposition = openmetrics_parser::prometheus::parse_prometheus(text).expect("the Prometheus text format");
        let mut series = Vec::new();
        for (family, metrics) in exposition.families {
            for sample in metrics.iter_samples() {
                let labels = sample.get_labelset().expect("labels");
                let value = match &sample.value {
                    PrometheusValue::Counter(c) => c.value.as_f64(),
                    PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
                    PrometheusValue::Histogram(h) => h.count.map_or(0.0, |c| c as f64),
                    PrometheusValue::Summary(_) => panic!("{family} is a summary, not a histogram"),
                };
                let labels = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                series.push(Series { family: family.clone(), labels, value });
            }
        }
        Self(series)
    }

    /// The sum of the series of `name` whose labels include `labels`: a counter's or gauge's
    /// value, a histogram's count of observations.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| {
                s.family == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// The metric families present.
    fn families(&self) -> BTreeSet<String> {
        self.0.iter().map(|s| s.family.clone()).collect()
    }
}

#[tokio::test]
async fn metrics_count_registrations_heartbeats_renewals_discoveries_errors_expiries_and_evictions() {
    let app = TestApp::spawn().await;
    let before = Metrics::of(&app).await;
    let kept = app.register(agent("Metered", "measure", persistent(10))).await;
    let leased = app.register(agent("Leased", "measure", ephemeral(60))).await;
    let (kept_id, kept_endpoint) = (kept["id"].as_str().unwrap(), kept["endpoints"][0]["id"].as_str().unwrap());
    let (leased_id, leased_endpoint) = (leased["id"].as_str().unwrap(), leased["endpoints"][0]["id"].as_str().unwrap());
    for _ in 0..3 {
        app.post_empty(&format!("/agents/{kept_id}/endpoints/{kept_endpoint}/heartbeat")).await.ok(200);
    }
    app.post_empty(&format!("/agents/{leased_id}/endpoints/{leased_endpoint}/renew")).await.ok(200);
    assert_eq!(app.discovered("/discover/agents?capability=measure").await.len(), 2);
    app.get(&format!("/agents/{}", uuid::Uuid::new_v4())).await.problem(404, "agent_not_found");
    let after = Metrics::of(&app).await;
    let moved = |name: &str, labels: &[(&str, &str)]| after.value(name, labels) - before.value(name, labels);

    assert_eq!(moved("agent_registry_registrations_total", &[]), 2.0);
    assert_eq!(moved("agent_registry_heartbeats_total", &[]), 3.0);
    assert_eq!(moved("agent_registry_renewals_total", &[]), 1.0);
    let requests = "agent_registry_http_requests_total";
    assert_eq!(moved(requests, &[("method", "POST"), ("route", "/agents"), ("status", "201")]), 2.0);
    assert_eq!(moved(requests, &[("method", "GET"), ("route", "/discover/agents"), ("status", "200")]), 1.0);
    assert_eq!(moved(requests, &[("method", "GET"), ("route", "/agents/{id}"), ("status", "404")]), 1.0);
    let heartbeat_route = "/agents/{id}/endpoints/{eid}/heartbeat";
    assert_eq!(moved(requests, &[("route", heartbeat_route), ("status", "200")]), 3.0);
    let latency = "agent_registry_http_request_duration_seconds";
    assert_eq!(moved(latency, &[("method", "GET"), ("route", "/discover/agents")]), 1.0);
    assert_eq!(moved(latency, &[("method", "POST"), ("route", "/agents")]), 2.0);
    assert!(moved("agent_registry_store_operation_duration_seconds", &[("operation", "apply")]) >= 2.0);
    assert_eq!(moved("agent_registry_liveness_store_operation_duration_seconds", &[("operation", "touch")]), 4.0);
    assert_eq!(after.value("agent_registry_store_errors_total", &[]), 0.0);
    for gauge in ["agent_registry_agents", "agent_registry_agents_live"] {
        assert_eq!(after.value(gauge, &[]), 2.0, "{gauge}");
    }
    for gauge in ["agent_registry_endpoints", "agent_registry_endpoints_live"] {
        assert_eq!(after.value(gauge, &[]), 2.0, "{gauge}");
    }
    assert_eq!(after.value("agent_registry_watch_streams_open", &[]), 0.0);
    assert_eq!(after.value("agent_registry_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    // The Persistent endpoint is live for 25 s after its last heartbeat, evicted after 30 s.
    app.clock.advance_secs(26);
    app.maintain().await;
    let expired = Metrics::of(&app).await;
    assert_eq!(
        expired.value("agent_registry_expiries_total", &[]) - before.value("agent_registry_expiries_total", &[]),
        1.0
    );
    assert_eq!(expired.value("agent_registry_endpoints_live", &[]), 1.0);
    assert_eq!(expired.value("agent_registry_agents_live", &[]), 1.0);
    assert_eq!(expired.value("agent_registry_agents", &[]), 2.0);
    app.clock.advance_secs(5);
    app.maintain().await;
    let evicted = Metrics::of(&app).await;
    assert_eq!(
        evicted.value("agent_registry_evictions_total", &[]) - before.value("agent_registry_evictions_total", &[]),
        1.0
    );
    assert_eq!(evicted.value("agent_registry_agents", &[]), 1.0, "the agent left without endpoints is gone");
    assert_eq!(evicted.value("agent_registry_endpoints", &[]), 1.0);
}

#[tokio::test]
async fn refusals_of_the_rate_limit_are_counted_by_limit() {
    let app = TestApp::spawn_with_args(&["--rate-limit-discovery", "1"]).await;
    let before = Metrics::of(&app).await;
    let mut refused = 0.0;
    // A burst of 2, then one a second: of 30 requests in a row, some are refused.
    for _ in 0..30 {
        if app.get("/discover/agents").await.status == 429 {
            refused += 1.0;
        }
    }
    assert!(refused > 0.0, "the limit never refused");
    let after = Metrics::of(&app).await;
    let name = "agent_registry_rate_limited_total";
    assert_eq!(after.value(name, &[("limit", "discovery")]) - before.value(name, &[("limit", "discovery")]), refused);
    let status_429 = [("route", "/discover/agents"), ("status", "429")];
    let requests = "agent_registry_http_requests_total";
    assert_eq!(after.value(requests, &status_429) - before.value(requests, &status_429), refused);
}

#[tokio::test]
async fn the_operations_page_documents_every_metric_the_registry_exports() {
    let app = TestApp::spawn().await;
    let body = agent("Documented", "document", ephemeral(60));
    let created = app.register(body).await;
    app.post_empty(&format!(
        "/agents/{}/endpoints/{}/renew",
        created["id"].as_str().unwrap(),
        created["endpoints"][0]["id"].as_str().unwrap()
    ))
    .await
    .ok(200);
    app.delete(&format!("/agents/{}", created["id"].as_str().unwrap())).await.ok(204);
    let families = Metrics::of(&app).await.families();
    assert!(families.len() > 10, "{families:?}");
    let page = include_str!("../docs/operations.md");
    let documented: BTreeSet<&str> = page
        .lines()
        .filter_map(|line| line.strip_prefix("| `agent_registry_"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    for family in &families {
        let short = family.strip_prefix("agent_registry_").unwrap_or_else(|| panic!("{family} lacks the prefix"));
        assert!(documented.contains(short), "the table of metrics in docs/operations.md lacks {family}");
    }
}

#[tokio::test]
async fn metrics_listen_serves_metrics_on_its_own_address_and_takes_them_off_the_main_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let address = format!("127.0.0.1:{}", free_port());
    let server = Replica::start(&["--database-url", &db, "--metrics-listen", &address]).await;
    server.get("/metrics").await.problem(404, "route_not_found");
    server.register(agent("Scraped", "scrape", ephemeral(60))).await;
    let own = Http::new(format!("http://{address}"));
    let scraped = Metrics::of(&own).await;
    assert_eq!(scraped.value("agent_registry_registrations_total", &[]), 1.0);
    assert_eq!(scraped.value("agent_registry_agents", &[]), 1.0);
    let info = scraped.0.iter().find(|s| s.family == "agent_registry_build_info").expect("build info");
    assert_eq!(info.labels.get("version").map(String::as_str), Some(env!("CARGO_PKG_VERSION")));
    assert!(info.labels.get("commit").is_some_and(|c| !c.is_empty()), "{:?}", info.labels);
    own.get("/agents").await.problem(404, "route_not_found");
    let body = json!({"name": "x"});
    assert_eq!(own.post("/agents", body).await.status, 404, "the metrics address serves nothing else");
}
