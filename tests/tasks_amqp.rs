//! The gateway to queue-backed agents: tasks published to the real RabbitMQ on this machine
//! (`127.0.0.1:5672`, guest/guest; `AGENT_REGISTRY_TEST_AMQP_URL` to use another) and answered
//! by the example KEDA worker (examples/keda-worker, run through its library); a queue with no
//! worker yet; addresses the gateway refuses; Azure Service Bus, which it does not speak.

use std::time::Duration;

use keda_worker::{Settings, Worker};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};

use crate::support::{TestApp, amqp_url};

/// A queue of this test's own, declared durable as the worker declares it (so the two agree),
/// deleted when dropped.
struct Queue {
    name: String,
    connection: Connection,
    channel: Channel,
}

impl Queue {
    async fn declare(what: &str) -> Self {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ at {} is unreachable ({e}); start it first", amqp_url()));
        let channel = connection.create_channel().await.unwrap();
        let name = format!("agent-registry-test-task-{what}-{}", uuid::Uuid::new_v4().simple());
        channel
            .queue_declare(name.as_str().into(), QueueDeclareOptions::durable(), FieldTable::default())
            .await
            .unwrap();
        Self { name, connection, channel }
    }

    /// `amqp://host:port/%2f/<queue>`: where the worker says its queue is.
    fn address(&self) -> String {
        let url = url::Url::parse(&amqp_url()).unwrap();
        format!("amqp://{}:{}/%2f/{}", url.host_str().unwrap(), url.port().unwrap_or(5672), self.name)
    }

    /// Messages waiting in the queue.
    async fn waiting(&self) -> u32 {
        let channel = self.connection.create_channel().await.unwrap();
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        let declared = channel.queue_declare(self.name.as_str().into(), options, FieldTable::default()).await.unwrap();
        let _ = channel.close(200, "done".into()).await;
        declared.message_count()
    }

    async fn delete(self) {
        let _ = self.channel.queue_delete(self.name.as_str().into(), QueueDeleteOptions::default()).await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}

async fn app() -> TestApp {
    TestApp::spawn_with_args(&["--amqp-url", &amqp_url()]).await
}

fn settings(app: &TestApp, queue: &Queue, capability: &str, agent_id: Option<String>) -> Settings {
    Settings {
        registry_url: app.base.clone(),
        api_key: app.key().unwrap().to_owned(),
        amqp_url: amqp_url(),
        queue: queue.name.clone(),
        ttl_seconds: 300,
        agent_name: "Resizer".into(),
        capability: capability.into(),
        agent_id,
        queue_address: None,
    }
}

/// Runs a registered worker until the returned sender is dropped or fired.
fn run(worker: Worker) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Result<u64, keda_worker::Error>>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    (stop, running)
}

/// Every event of a task's log, from its SSE stream to its end.
async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    super::tasks::events(app, id, app.key()).await
}

use super::tasks::kinds;

#[tokio::test]
async fn a_task_to_a_queue_endpoint_gets_the_keda_workers_answer() {
    let (app, queue) = (app().await, Queue::declare("answer").await);
    let worker = Worker::register(settings(&app, &queue, "resize", None)).await.expect("the worker registers");
    let agent_id = worker.agent_id().to_owned();
    let (stop, running) = run(worker);
    let reply = app.post("/tasks", json!({"capability": "resize", "input": "cat.png", "waitSeconds": 20})).await;
    let task = reply.ok(200).clone();
    assert_eq!(task["state"], "completed", "{task}");
    assert_eq!(task["output"], json!({"processed": "cat.png", "bytes": 7}));
    assert_eq!(task["agentId"], agent_id.as_str());
    let log = events(&app, task["id"].as_str().unwrap()).await;
    assert_eq!(kinds(&log), ["created", "dispatched", "accepted", "completed"]);
    assert_eq!(log[1]["address"], queue.address().as_str());
    // A JSON input goes as JSON; the worker works on its text.
    let reply = app.post("/tasks", json!({"agentId": agent_id, "input": {"w": 2}, "waitSeconds": 20})).await;
    assert_eq!(reply.ok(200)["output"]["processed"], r#"{"w":2}"#);
    stop.send(()).unwrap();
    assert_eq!(running.await.unwrap().expect("the worker stops cleanly"), 2);
    queue.delete().await;
}

#[tokio::test]
async fn a_task_to_a_queue_with_no_worker_yet_is_accepted_and_completes_once_a_worker_starts() {
    let (app, queue) = (app().await, Queue::declare("later").await);
    // The queue is registered (as a worker left it, or its deployment), no worker runs.
    let agent_id = uuid::Uuid::new_v4().to_string();
    let endpoint = json!({"name": keda_worker::ENDPOINT_NAME, "transport": "Amqp", "protocol": "A2A",
        "address": queue.address(), "livenessModel": "Ephemeral", "ttlSeconds": 300});
    app.register(json!({"id": agent_id, "name": "Resizer", "capabilities": [{"name": "resize"}],
        "endpoints": [endpoint]}))
        .await;
    let reply = app.post("/tasks", json!({"capability": "resize", "input": "dog.png", "waitSeconds": 1})).await;
    let task = reply.ok(202).clone();
    let id = task["id"].as_str().unwrap();
    // Accepted once the broker confirmed the message, which waits in the queue.
    let mut state = Value::Null;
    for _ in 0..100 {
        state = app.get(&format!("/tasks/{id}")).await.ok(200)["state"].clone();
        if state != "submitted" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "working");
    assert_eq!(queue.waiting().await, 1);
    // KEDA starts a worker: it takes the task and answers it.
    let worker = Worker::register(settings(&app, &queue, "resize", Some(agent_id))).await.expect("registers");
    let (stop, running) = run(worker);
    let log = events(&app, id).await;
    assert_eq!(kinds(&log).last(), Some(&"completed"), "{log:?}");
    assert_eq!(log.last().unwrap()["output"], json!({"processed": "dog.png", "bytes": 7}));
    stop.send(()).unwrap();
    assert_eq!(running.await.unwrap().expect("the worker stops cleanly"), 1);
    queue.delete().await;
}

#[tokio::test]
async fn a_task_no_queue_takes_or_for_another_broker_is_not_sent() {
    let app = app().await;
    let url = url::Url::parse(&amqp_url()).unwrap();
    let broker = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5672));
    let nowhere = format!("amqp://{broker}/%2f/agent-registry-test-task-none-{}", uuid::Uuid::new_v4().simple());
    let endpoints = json!([
        {"name": "none", "transport": "Amqp", "protocol": "A2A", "address": nowhere,
         "livenessModel": "Ephemeral", "ttlSeconds": 300}]);
    app.register(json!({"name": "Nobody", "capabilities": [{"name": "void"}], "endpoints": endpoints})).await;
    let task = app.post("/tasks", json!({"capability": "void", "input": "x", "waitSeconds": 20})).await.ok(200).clone();
    assert_eq!(task["state"], "failed", "{task}");
    assert_eq!(task["error"]["code"], "agent_unreachable");
    assert!(task["error"]["detail"].as_str().unwrap().contains("returned"), "{task}");

    let endpoints = json!([
        {"name": "elsewhere", "transport": "Amqp", "protocol": "A2A", "address": "amqp://10.1.2.3:5672/%2f/q",
         "livenessModel": "Ephemeral", "ttlSeconds": 300}]);
    app.register(json!({"name": "Elsewhere", "capabilities": [{"name": "far"}], "endpoints": endpoints})).await;
    let task = app.post("/tasks", json!({"capability": "far", "input": "x", "waitSeconds": 20})).await.ok(200).clone();
    assert_eq!(task["error"]["code"], "egress_refused", "{task}");
    assert!(task["error"]["detail"].as_str().unwrap().contains("--amqp-url"), "{task}");
}

#[tokio::test]
async fn a_task_whose_only_live_endpoints_are_on_azure_service_bus_is_501() {
    let app = app().await;
    let endpoint = json!({"name": "sb", "transport": "AzureServiceBus", "protocol": "A2A",
        "address": "sb://contoso.servicebus.windows.net/tasks", "livenessModel": "Ephemeral", "ttlSeconds": 300});
    let agent = app.register(json!({"name": "Bus", "capabilities": [{"name": "bus"}], "endpoints": [endpoint]})).await;
    for body in [json!({"capability": "bus", "input": "x"}), json!({"agentId": agent["id"], "input": "x"})] {
        let reply = app.post("/tasks", body).await;
        let problem = reply.problem(501, "transport_not_supported");
        assert!(problem["detail"].as_str().unwrap().contains("AzureServiceBus"), "{problem}");
    }
}
