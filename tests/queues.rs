//! Queue-backed agents against the real RabbitMQ on this machine (`127.0.0.1:5672`, guest/guest;
//! `AGENT_REGISTRY_TEST_AMQP_URL` to use another): queued A2A cards, queue facts read from the
//! broker, and the example KEDA worker registering, renewing on each message and lapsing when
//! stopped. The tests fail, never skip, when RabbitMQ is unreachable.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use keda_worker::{Settings, Worker};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{Replica, counting_silent_server, free_port};
use crate::support::{TestApp, amqp_url};

/// Host and port of [`amqp_url`], as queue addresses name them.
fn broker_authority() -> String {
    let url = url::Url::parse(&amqp_url()).expect("AMQP URL");
    format!("{}:{}", url.host_str().expect("host"), url.port().unwrap_or(5672))
}

/// A channel on the test broker, with publisher confirms.
async fn broker() -> (Connection, Channel) {
    let url = amqp_url();
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at {} is unreachable ({e}); start it first", broker_authority()));
    let channel = connection.create_channel().await.expect("a channel");
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    (connection, channel)
}

/// A queue name of this test's own.
fn queue_name(what: &str) -> String {
    format!("agent-registry-test-{what}-{}", uuid::Uuid::new_v4().simple())
}

async fn declare(channel: &Channel, queue: &str) {
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue declared");
}

async fn publish(channel: &Channel, queue: &str, body: &[u8], properties: BasicProperties) {
    channel
        .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, properties)
        .await
        .expect("published")
        .await
        .expect("confirmed");
}

async fn delete(channel: &Channel, queue: &str) {
    let _ = channel.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
}

/// What the broker itself says: (messages, consumers), or `None` when the queue does not exist.
/// On a channel of its own, since the broker closes the channel of a declare that fails.
async fn counts(connection: &Connection, queue: &str) -> Option<(u32, u32)> {
    let channel = connection.create_channel().await.expect("a channel");
    let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    let queue = channel.queue_declare(queue.into(), options, FieldTable::default()).await.ok()?;
    let _ = channel.close(200, "done".into()).await;
    Some((queue.message_count(), queue.consumer_count()))
}

fn queued_card(name: &str, queue_endpoint: Value) -> Value {
    json!({
        "name": name,
        "description": format!("{name} takes tasks from a queue"),
        "version": "1.0.0",
        "skills": [{"id": "summarize", "name": "Summarize", "description": "Summarizes documents.",
                    "tags": ["nlp"]}],
        "defaultInputModes": ["application/json"],
        "defaultOutputModes": ["application/json"],
        "queueEndpoint": queue_endpoint
    })
}

fn rabbit(task_topic: &str) -> Value {
    json!({"technology": "rabbitmq", "host": "mq.example", "port": 5672, "virtualHost": "/",
           "taskTopic": task_topic, "responseTopic": format!("{task_topic}.replies")})
}

/// Registers an agent with one Amqp endpoint at `address`; returns (agent id, endpoint id).
#[tokio::test]
async fn queue_facts_never_echo_what_the_broker_said() {
    let app = TestApp::spawn_with_args(&["--amqp-url", &amqp_url()]).await;
    let vhost = format!("agent-registry-test-no-vhost-{}", uuid::Uuid::new_v4().simple());
    let (id, eid) = queue_agent(&app, "Probe", &format!("amqp://{}/{vhost}/q", broker_authority())).await;
    let facts = app.get(&format!("/agents/{id}/endpoints/{eid}/queue")).await.ok(200).clone();
    assert_eq!(facts["exists"], Value::Null, "{facts}");
    let reason = facts["error"].as_str().unwrap();
    assert!(!reason.contains(&vhost) && !reason.to_lowercase().contains("vhost"), "the broker's words leak: {reason}");
}

async fn queue_agent(app: &TestApp, name: &str, address: &str) -> (String, String) {
    let agent = app
        .register(json!({"name": name, "endpoints": [
            {"name": "queue", "transport": "Amqp", "protocol": "A2A", "address": address},
            {"name": "http", "transport": "Http", "protocol": "A2A", "address": "https://worker.example/a2a"}]}))
        .await;
    (agent["id"].as_str().unwrap().to_owned(), agent["endpoints"][0]["id"].as_str().unwrap().to_owned())
}

// ---------------------------------------------------------------------------------------------
// Queued A2A cards

#[tokio::test]
async fn a_queued_card_is_served_back_byte_for_byte_and_never_as_an_a2a_card_with_a_made_up_url() {
    let app = TestApp::spawn().await;
    // Odd spacing, an unknown member and a number written `1.50`: all kept.
    let text = "{\n  \"name\": \"Summariser\" ,\"description\":\"Summarises documents\", \"version\":\"1.0.0\",\n \
        \"skills\":[{\"id\":\"summarize\",\"name\":\"Summarize\",\"description\":\"d\",\"tags\":[\"nlp\"]}],\
        \"defaultInputModes\":[\"application/json\"], \"defaultOutputModes\" : [\"application/json\"],\n \
        \"queueEndpoint\": {\"technology\":\"rabbitmq\",\"host\":\"mq.example\",\"port\":5672,\"virtualHost\":\"/\",\
        \"taskTopic\":\"summaries\",\"responseTopic\":\"summaries.replies\"}, \"x-price\": 1.50 }"
        .to_owned();
    let reply = app.raw(Method::POST, "/a2a/async/agents", Some("application/json"), text.clone().into_bytes()).await;
    let agent = reply.ok(201).clone();
    let id = agent["id"].as_str().unwrap();
    assert_eq!(reply.header("location"), Some(format!("/agents/{id}").as_str()));
    assert_eq!(agent["registeredWith"]["format"], "a2a-queued-card");
    let endpoint = &agent["endpoints"][0];
    assert_eq!(endpoint["name"], "async-rabbitmq");
    assert_eq!((&endpoint["transport"], &endpoint["protocol"]), (&json!("Amqp"), &json!("A2A")));
    assert_eq!(endpoint["address"], "amqp://mq.example:5672/%2F/summaries");
    assert_eq!(endpoint["protocolMetadata"]["queueEndpoint"], rabbit("summaries"));
    assert_eq!(agent["capabilities"][0]["name"], "summarize");

    let (status, headers, served) = app.get_bytes(&format!("/a2a/async/agents/{id}"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(served).unwrap(), text, "the card comes back exactly as registered");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (status, _, _) = app.get_bytes(&format!("/a2a/async/agents/{id}"), &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304);

    // A2A clients cannot call a queue: the agent has no A2A card (the .NET registry made up
    // `/a2a/queue/{id}` here).
    app.get(&format!("/a2a/agents/{id}")).await.problem(404, "no_protocol_document");
}

#[tokio::test]
async fn a_wrapped_queued_card_takes_liveness_owner_and_permanence_from_the_request() {
    let app = TestApp::spawn().await;
    let body = json!({"card": queued_card("Bus worker", json!({"technology": "Azure-Service-Bus",
        "namespace": "contoso-bus", "taskTopic": "tasks", "entityPath": "tasks"})),
        "liveness": {"livenessModel": "Ephemeral", "ttlSeconds": 20}, "permanent": true});
    let agent = app.post("/a2a/async/agents", body).await.ok(201).clone();
    let endpoint = &agent["endpoints"][0];
    assert_eq!(endpoint["transport"], "AzureServiceBus");
    assert_eq!(endpoint["address"], "sb://contoso-bus.servicebus.windows.net/tasks");
    assert_eq!((&endpoint["livenessModel"], &endpoint["ttlSeconds"]), (&json!("Ephemeral"), &json!(20)));
    assert_eq!(agent["permanent"], true);
    let card = app.get(&format!("/a2a/async/agents/{}", agent["id"].as_str().unwrap())).await.ok(200).clone();
    assert_eq!(card["queueEndpoint"]["namespace"], "contoso-bus");
}

#[tokio::test]
async fn an_unknown_technology_or_a_missing_task_topic_is_a_400_at_its_pointer() {
    let app = TestApp::spawn().await;
    let kafka = json!({"technology": "kafka", "host": "k.example", "taskTopic": "t"});
    let reply = app.post("/a2a/async/agents", queued_card("K", kafka.clone())).await;
    reply.problem(400, "validation_failed");
    assert_eq!(reply.pointers(), ["/queueEndpoint/technology"]);
    assert!(reply.body["detail"].as_str().unwrap().contains("`kafka` is not a known broker technology"));
    let reply = app.post("/a2a/async/agents", json!({"card": queued_card("K", kafka)})).await;
    assert_eq!(reply.pointers(), ["/card/queueEndpoint/technology"]);
    let reply = app.post("/a2a/async/agents", queued_card("T", json!({"technology": "rabbitmq", "host": "h"}))).await;
    reply.problem(400, "validation_failed");
    assert_eq!(reply.pointers(), ["/queueEndpoint/taskTopic"]);
    let mut bad_skill = queued_card("S", rabbit("t"));
    bad_skill["skills"][0]["tags"] = json!("nlp");
    let reply = app.post("/a2a/async/agents", bad_skill).await;
    reply.problem(422, "schema_violation");
    assert_eq!(reply.pointers(), ["/skills/0/tags"]);
    app.with_key(None).post("/a2a/async/agents", queued_card("A", rabbit("t"))).await.problem(401, "unauthenticated");
    assert_eq!(app.get("/agents?liveOnly=false").await.ok(200)["totalCount"], 0, "nothing was stored");
}

#[tokio::test]
async fn the_queued_list_holds_only_agents_with_queue_endpoints_and_pages_like_discovery() {
    let app = TestApp::spawn().await;
    for (name, queue) in [
        ("Alpha", rabbit("alpha")),
        ("Beta", rabbit("beta")),
        ("Gamma", json!({"technology": "asb", "namespace": "contoso-bus", "taskTopic": "gamma"})),
    ] {
        app.post("/a2a/async/agents", queued_card(name, queue)).await.ok(201);
    }
    // An HTTP A2A agent (registered by card) and a generic agent with an A2A queue endpoint.
    let http_card = json!({"name": "Http only", "description": "d", "version": "1", "supportedInterfaces":
        [{"url": "https://h.example/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "capabilities": {}, "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"], "skills": []});
    app.post("/a2a/agents", http_card).await.ok(201);
    let (generic, _) = queue_agent(&app, "Delta", "amqp://mq.example/%2F/delta").await;

    let list = app.get("/a2a/async/agents").await.ok(200).clone();
    assert_eq!(list["totalCount"], 4);
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|i| i["card"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Alpha", "Beta", "Delta", "Gamma"]);
    let delta = &list["items"][2];
    assert_eq!(delta["agentId"], generic.as_str());
    assert_eq!(delta["isLive"], true);
    assert_eq!(
        delta["card"]["queueEndpoint"],
        json!({"technology": "rabbitmq", "host": "mq.example", "virtualHost": "/", "taskTopic": "delta"})
    );

    let page = app.get("/a2a/async/agents?pageSize=3").await.ok(200).clone();
    assert_eq!((page["items"].as_array().unwrap().len(), &page["hasNextPage"]), (3, &json!(true)));
    assert_eq!(
        app.get("/a2a/async/agents?liveOnly=false").await.ok(200)["totalCount"],
        4,
        "the HTTP card is not listed"
    );
    let bus = app.get("/a2a/async/agents?transport=AzureServiceBus").await.ok(200).clone();
    assert_eq!(bus["items"][0]["card"]["name"], "Gamma");
    assert_eq!(bus["totalCount"], 1);
    assert_eq!(app.get("/a2a/async/agents?capability=summarize").await.ok(200)["totalCount"], 3);
    app.get("/a2a/async/agents?transport=Http").await.problem(400, "invalid_query");
    app.get("/a2a/async/agents?protocol=MCP").await.problem(400, "invalid_query");
    let cards = app.get("/a2a/agents").await.ok(200).clone();
    let http_card = cards["items"].as_array().unwrap().iter().find(|i| i["card"]["name"] == "Http only").unwrap();
    let http_id = http_card["agentId"].as_str().unwrap();
    app.get(&format!("/a2a/async/agents/{http_id}")).await.problem(404, "no_protocol_document");
}

// ---------------------------------------------------------------------------------------------
// Queue facts

#[tokio::test]
async fn queue_facts_report_whether_the_queue_exists_with_its_message_and_consumer_counts() {
    let (_connection, channel) = broker().await;
    let queue = queue_name("facts");
    declare(&channel, &queue).await;
    for i in 0..3 {
        publish(&channel, &queue, format!("task {i}").as_bytes(), BasicProperties::default()).await;
    }
    let app = TestApp::spawn_with_args(&["--amqp-url", &amqp_url()]).await;
    let authority = broker_authority();
    let (id, eid) = queue_agent(&app, "Facts", &format!("amqp://{authority}/%2F/{queue}")).await;
    let (missing, missing_eid) =
        queue_agent(&app, "Missing", &format!("amqp://{authority}/%2F/{}", queue_name("none"))).await;

    let facts = app.get(&format!("/agents/{id}/endpoints/{eid}/queue")).await.ok(200).clone();
    assert_eq!(facts["exists"], true, "{facts}");
    assert_eq!((&facts["messageCount"], &facts["consumerCount"]), (&json!(3), &json!(0)), "{facts}");
    assert!(facts["checkedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let none = app.get(&format!("/agents/{missing}/endpoints/{missing_eid}/queue")).await.ok(200).clone();
    assert_eq!(none["exists"], false, "{none}");
    assert!(none.get("messageCount").is_none() && none.get("error").is_none(), "{none}");
    app.get(&format!("/agents/{id}/endpoints/{missing_eid}/queue")).await.problem(404, "endpoint_not_found");

    let page = app.get("/discover/agents?transport=Amqp&include=queue").await.ok(200).clone();
    let by_name = |name: &str| page["items"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap().clone();
    let facts_agent = by_name("Facts");
    let endpoints = facts_agent["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "transport=Amqp returns the queue endpoint only");
    assert_eq!(endpoints[0]["queue"]["exists"], true);
    assert_eq!(endpoints[0]["queue"]["messageCount"], 3);
    assert_eq!(by_name("Missing")["endpoints"][0]["queue"]["exists"], false);
    let whole = app.get("/discover/agents?include=queue&q=facts").await.ok(200).clone();
    let http = whole["items"][0]["endpoints"].as_array().unwrap().iter().find(|e| e["transport"] == "Http").unwrap();
    assert!(http.get("queue").is_none(), "only Amqp endpoints get queue facts");
    let plain = app.get("/discover/agents?transport=Amqp").await.ok(200).clone();
    assert!(plain["items"][0]["endpoints"][0].get("queue").is_none(), "facts only when asked for");
    delete(&channel, &queue).await;
}

#[tokio::test]
async fn queues_on_other_brokers_exchanges_and_http_endpoints_get_no_broker_call() {
    let app = TestApp::spawn_with_args(&["--amqp-url", &amqp_url()]).await;
    let (id, eid) = queue_agent(&app, "Elsewhere", "amqp://mq.example:5672/%2F/tasks").await;
    // The error says no broker was asked (mq.example does not resolve; a try would say so).
    let facts = app.get(&format!("/agents/{id}/endpoints/{eid}/queue")).await.ok(200).clone();
    assert_eq!(facts["exists"], Value::Null);
    assert!(facts["error"].as_str().unwrap().contains("another broker"), "{facts}");
    assert!(facts.get("messageCount").is_none());

    let (id, eid) =
        queue_agent(&app, "Exchange", &format!("amqp://{}/%2F?exchange=x&routingKey=k", broker_authority())).await;
    let facts = app.get(&format!("/agents/{id}/endpoints/{eid}/queue")).await.ok(200).clone();
    assert!(facts["error"].as_str().unwrap().contains("exchange"), "{facts}");

    let http = app.get(&format!("/agents/{id}")).await.ok(200)["endpoints"][1]["id"].as_str().unwrap().to_owned();
    let reply = app.get(&format!("/agents/{id}/endpoints/{http}/queue")).await;
    reply.problem(409, "not_an_amqp_endpoint");
    app.get(&format!("/agents/{id}/endpoints/not-a-uuid/queue")).await.problem(400, "invalid_id");
    let reply = app.get("/discover/agents?include=queue,owners").await;
    reply.problem(400, "invalid_query");
    assert_eq!(reply.pointers(), ["?include"]);
}

#[tokio::test]
async fn a_silent_or_dead_broker_costs_at_most_a_second_once_and_never_stalls_discovery() {
    let (port, accepted, holding) = counting_silent_server().await;
    let app = TestApp::spawn_with_args(&["--amqp-url", &format!("amqp://guest:guest@127.0.0.1:{port}/%2f")]).await;
    let (id, eid) = queue_agent(&app, "Silent", &format!("amqp://127.0.0.1:{port}/%2F/tasks")).await;
    let path = format!("/agents/{id}/endpoints/{eid}/queue");

    let (facts, discovery) = tokio::join!(
        async {
            let started = Instant::now();
            let facts = app.get(&path).await.ok(200).clone();
            (facts, started.elapsed(), Instant::now())
        },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            app.get("/discover/agents?transport=Amqp").await.ok(200);
            Instant::now()
        }
    );
    let (facts, took, facts_done) = facts;
    assert_eq!(facts["exists"], Value::Null);
    assert!(facts["error"].as_str().unwrap().contains("did not answer within 1000 ms"), "{facts}");
    // At least the check's timeout; the upper bound only says it gave up (a busy machine is slow).
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(10), "took {took:?}");
    assert!(discovery < facts_done, "discovery waited for the broker");

    // The broker is left alone for a while: the next answers make no connection to it.
    let tried = accepted.load(Ordering::SeqCst);
    let page = app.get("/discover/agents?transport=Amqp&include=queue").await.ok(200).clone();
    assert_eq!(page["items"][0]["endpoints"][0]["queue"]["exists"], Value::Null);
    assert_eq!(accepted.load(Ordering::SeqCst), tried, "the silent broker was tried again");
    holding.abort();

    // Nothing listens at all: refused at once.
    let closed = free_port();
    let app = TestApp::spawn_with_args(&["--amqp-url", &format!("amqp://guest:guest@127.0.0.1:{closed}/%2f")]).await;
    let (id, eid) = queue_agent(&app, "Dead", &format!("amqp://127.0.0.1:{closed}/%2F/tasks")).await;
    // Refused, not timed out: the error says which.
    let facts = app.get(&format!("/agents/{id}/endpoints/{eid}/queue")).await.ok(200).clone();
    assert!(facts["error"].as_str().unwrap().contains("unreachable"), "{facts}");
}

// ---------------------------------------------------------------------------------------------
// The example KEDA worker, on a real registry process and real time

/// The live endpoints discovery returns for a capability (liveOnly defaults to true).
async fn live_queue_endpoints(registry: &Replica, capability: &str) -> Vec<Value> {
    let page = registry.get(&format!("/discover/agents?capability={capability}&transport=Amqp&include=queue")).await;
    page.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|agent| agent["endpoints"].as_array().unwrap().clone())
        .collect()
}

fn millis(timestamp: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(timestamp.as_str().expect("a timestamp")).expect("RFC 3339").timestamp_millis()
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[tokio::test]
async fn the_example_worker_registers_its_queue_renews_on_each_message_and_lapses_once_stopped() {
    let (connection, channel) = broker().await;
    let dir = tempfile::TempDir::new().unwrap();
    let database = format!("sqlite://{}", dir.path().join("registry.db").display());
    let registry = Replica::start(&["--database-url", &database, "--amqp-url", &amqp_url()]).await;
    let queue = queue_name("keda");
    let capability = format!("resize-{}", uuid::Uuid::new_v4().simple());
    let settings = Settings {
        registry_url: registry.base.clone(),
        api_key: registry.issue_key("keda-worker", "Agent").await,
        amqp_url: amqp_url(),
        queue: queue.clone(),
        ttl_seconds: 2,
        agent_name: "Image resizer".into(),
        capability: capability.clone(),
        agent_id: None,
        queue_address: None,
    };
    let worker = Worker::register(settings.clone()).await.expect("the worker registers");
    let (agent, endpoint) = (worker.agent_id().to_owned(), worker.endpoint_id().to_owned());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    crate::cluster::eventually(Duration::from_secs(3), "the worker consumes", || async {
        counts(&connection, &queue).await.is_some_and(|(_, consumers)| consumers == 1)
    })
    .await;

    // Discovery shows the live queue endpoint, with the worker consuming it.
    let live = live_queue_endpoints(&registry, &capability).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["address"], format!("amqp://{}/%2f/{queue}", broker_authority()));
    assert_eq!((&live[0]["livenessModel"], &live[0]["ttlSeconds"]), (&json!("Ephemeral"), &json!(2)));
    assert_eq!((&live[0]["queue"]["exists"], &live[0]["queue"]["consumerCount"]), (&json!(true), &json!(1)));
    let registered_until = millis(&live[0]["expiresAt"]);

    // A message after a while: the worker answers it and renews the lease.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let replies = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, ..QueueDeclareOptions::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut answers = channel
        .basic_consume(
            replies.name().clone(),
            "test".into(),
            BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let properties =
        BasicProperties::default().with_reply_to(replies.name().clone()).with_correlation_id("job-1".into());
    publish(&channel, &queue, b"resize cat.png", properties).await;
    let answer =
        tokio::time::timeout(Duration::from_secs(3), answers.next()).await.expect("an answer").unwrap().unwrap();
    assert_eq!(answer.properties.correlation_id().as_ref().map(|c| c.as_str()), Some("job-1"));
    let answer: Value = serde_json::from_slice(&answer.data).unwrap();
    assert_eq!(answer["processed"], "resize cat.png");
    let renewed = crate::cluster::eventually(Duration::from_secs(2), "the lease is renewed", || async {
        let agent = registry.get(&format!("/agents/{agent}")).await;
        millis(&agent.ok(200)["endpoints"][0]["expiresAt"]) > registered_until + 500
    });
    renewed.await;

    // Past the first lease's end, the renewed lease keeps it live.
    let first_lease_over = registered_until + 200 - now_millis();
    tokio::time::sleep(Duration::from_millis(u64::try_from(first_lease_over).unwrap_or(0))).await;
    assert_eq!(live_queue_endpoints(&registry, &capability).await.len(), 1, "the renewal kept the endpoint live");

    // Stopped, the worker renews nothing: the registration lapses when its lease ends.
    stop.send(()).unwrap();
    assert_eq!(running.await.unwrap().expect("the worker stops cleanly"), 1);
    let agent_view = registry.get(&format!("/agents/{agent}")).await.ok(200).clone();
    assert_eq!(agent_view["endpoints"][0]["id"], endpoint.as_str());
    let lease_end = millis(&agent_view["endpoints"][0]["expiresAt"]);
    let started = Instant::now();
    while !live_queue_endpoints(&registry, &capability).await.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(15), "the lease never lapsed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not before the lease's end; how soon after it depends on the machine, so no upper bound.
    let lapsed_at = now_millis();
    assert!(lapsed_at >= lease_end - 50, "lapsed {} ms before the lease end", lease_end - lapsed_at);
    // The queue is still there for consumers that route work whether or not a worker runs.
    let all = registry.get(&format!("/discover/agents?capability={capability}&liveOnly=false")).await.ok(200).clone();
    assert_eq!(all["items"][0]["endpoints"][0]["isLive"], false);
    assert_eq!(counts(&connection, &queue).await, Some((0, 0)), "the message was acknowledged; no consumer is left");
    delete(&channel, &queue).await;
}
