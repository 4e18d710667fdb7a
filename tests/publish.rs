//! Outbound publication of changes, heard the way a consumer hears it: from the real NATS
//! (subjects, JetStream KV) and RabbitMQ on this machine, published by real `agent-registry`
//! processes. Brokers are cut off through a TCP proxy to test outages.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::cluster::{Proxy, Replica, eventually, free_port, shared_backends, silent_server};
use crate::support::{agent, amqp_url, ephemeral, postgres_schema, redis_prefix, redis_url};

/// The NATS server (with JetStream) every test run uses; overridable for other machines.
fn nats_url() -> String {
    std::env::var("AGENT_REGISTRY_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Kinds that say an endpoint came or went without an agent changing; these tests make none
/// happen on purpose and leave them out should one occur.
fn is_liveness(kind: &str) -> bool {
    matches!(kind, "became_live" | "expired")
}

/// Subject prefix, KV bucket and exchange a registry publishes to.
struct Names {
    subjects: String,
    bucket: String,
    exchange: String,
}

impl Names {
    /// Names of one test's own, so tests running at once never hear each other.
    fn unique() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self { subjects: format!("test.{id}.agent"), bucket: format!("test-{id}"), exchange: format!("test-{id}") }
    }

    /// The registry's defaults: no naming flag given.
    fn defaults() -> Self {
        Self { subjects: "registry.agent".into(), bucket: "agent-registry".into(), exchange: "agent-registry".into() }
    }

    /// Flags that publish to `nats` and `amqp` (either may be left out) under these names.
    fn args(&self, nats: Option<&str>, amqp: Option<&str>) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(url) = nats {
            args.extend(["--nats-url".into(), url.into()]);
        }
        if let Some(url) = amqp {
            args.extend(["--amqp-publish-url".into(), url.into()]);
        }
        if self.subjects != "registry.agent" {
            let flags = ["--nats-subject-prefix", &self.subjects, "--nats-kv-bucket", &self.bucket];
            args.extend(flags.iter().map(|a| (*a).to_owned()));
            args.extend(["--amqp-exchange".into(), self.exchange.clone()]);
        }
        args
    }
}

/// One published message as a consumer receives it.
#[derive(Debug)]
struct Heard {
    /// NATS subject or AMQP routing key.
    topic: String,
    /// `Nats-Msg-Id` or AMQP `message_id`.
    id: String,
    body: Value,
}

impl Heard {
    fn revision(&self) -> u64 {
        self.body["revision"].as_u64().expect("revision")
    }

    fn kind(&self) -> &str {
        self.body["kind"].as_str().expect("kind")
    }
}

async fn nats() -> async_nats::Client {
    async_nats::connect(nats_url())
        .await
        .unwrap_or_else(|e| panic!("NATS at {} is unreachable ({e}); these tests need it running", nats_url()))
}

/// A subscription to every subject under `prefix`, in place before the function returns.
async fn subscribe(client: &async_nats::Client, prefix: &str) -> async_nats::Subscriber {
    let subscriber = client.subscribe(format!("{prefix}.>")).await.expect("subscribe");
    client.flush().await.expect("the subscription reaches the server");
    subscriber
}

/// An exclusive queue bound to `registry.agent.#` on `exchange` (declared as the registry
/// declares it), and a consumer of it.
async fn consume(exchange: &str) -> (Connection, lapin::Consumer) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at {} is unreachable ({e}); these tests need it running", amqp_url()));
    let channel = connection.create_channel().await.expect("channel");
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(exchange.into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .expect("exchange");
    let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
    let queue = channel.queue_declare("".into(), options, FieldTable::default()).await.expect("queue");
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            "registry.agent.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
    let consumer = channel
        .basic_consume(queue.name().clone(), "test".into(), no_ack, FieldTable::default())
        .await
        .expect("consume");
    (connection, consumer)
}

/// Deletes a test's own exchange (the registry declares it durable).
async fn delete_exchange(connection: &Connection, exchange: &str) {
    let channel = connection.create_channel().await.expect("channel");
    let _ = channel.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await;
}

async fn next_nats(subscriber: &mut async_nats::Subscriber, until: Instant) -> Option<Heard> {
    let message = tokio::time::timeout_at(until.into(), subscriber.next()).await.ok()??;
    let id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
    let body = serde_json::from_slice(&message.payload).expect("a JSON message");
    Some(Heard { topic: message.subject.to_string(), id: id.unwrap_or_default(), body })
}

async fn next_amqp(consumer: &mut lapin::Consumer, until: Instant) -> Option<Heard> {
    let delivery = tokio::time::timeout_at(until.into(), consumer.next()).await.ok()??.expect("a delivery");
    let properties = &delivery.properties;
    assert_eq!(properties.content_type().as_ref().map(|c| c.as_str()), Some("application/json"));
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    let body: Value = serde_json::from_slice(&delivery.data).expect("a JSON message");
    assert_eq!(properties.kind().as_ref().map(|k| k.as_str()), body["kind"].as_str(), "`type` is the kind");
    let id = properties.message_id().as_ref().map(|i| i.as_str().to_owned()).unwrap_or_default();
    Some(Heard { topic: delivery.routing_key.to_string(), id, body })
}

/// Collects messages for `within`, or until `count` of those `keep` accepts have arrived.
macro_rules! hear {
    ($next:ident, $source:expr, $count:expr, $within:expr, $keep:expr) => {{
        let until = Instant::now() + $within;
        let mut heard: Vec<Heard> = Vec::new();
        while heard.len() < $count {
            match $next($source, until).await {
                Some(h) if !is_liveness(h.kind()) && $keep(&h) => heard.push(h),
                Some(_) => {}
                None => break,
            }
        }
        heard
    }};
}

/// Asserts these messages are one per revision in `expected` order, under `prefix`, with the
/// revision as message id.
#[track_caller]
fn assert_published(heard: &[Heard], expected: &[(u64, &str)], prefix: &str, source: &str) {
    let got: Vec<(u64, &str)> = heard.iter().map(|h| (h.revision(), h.kind())).collect();
    assert_eq!(got, expected, "{source}: revisions and kinds, in order");
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{source}: strictly increasing revisions: {got:?}");
    for h in heard {
        assert_eq!(h.topic, format!("{prefix}.{}", h.kind()), "{source}: subject or routing key");
        assert_eq!(h.id, h.revision().to_string(), "{source}: the message id is the revision");
    }
}

fn id(agent: &Value) -> String {
    agent["id"].as_str().expect("id").to_owned()
}

fn revision(agent: &Value) -> u64 {
    agent["revision"].as_u64().expect("revision")
}

/// A registry on SQLite in `dir` that publishes with `args`.
async fn embedded(dir: &TempDir, args: &[String]) -> Replica {
    let database = format!("sqlite://{}", dir.path().join("registry.db").display());
    let mut all = vec!["--database-url".to_owned(), database];
    all.extend(args.iter().cloned());
    Replica::start(&all.iter().map(String::as_str).collect::<Vec<_>>()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_an_update_and_a_deregistration_arrive_in_order_on_nats_subjects_and_the_amqp_exchange() {
    let names = Names::defaults();
    let client = nats().await;
    let mut subscriber = subscribe(&client, "registry.agent").await;
    let (amqp, mut consumer) = consume(&names.exchange).await;
    let dir = TempDir::new().expect("temp dir");
    let registry = embedded(&dir, &names.args(Some(&nats_url()), Some(&amqp_url()))).await;

    let created = registry.register(agent("Published", "publish-order", ephemeral(600))).await;
    let path = format!("/agents/{}", id(&created));
    let updated = registry.put(&path, json!({"name": "Published", "description": "changed"})).await.ok(200).clone();
    assert_eq!(registry.delete(&path).await.status, 204);

    // Other registries on this machine may publish to the defaults too: keep this agent's.
    let ours = |h: &Heard| h.body["agentId"] == created["id"];
    let within = Duration::from_secs(10);
    let on_nats = hear!(next_nats, &mut subscriber, 3, within, ours);
    let on_amqp = hear!(next_amqp, &mut consumer, 3, within, ours);
    let deregistered = on_nats.last().map_or(0, Heard::revision);
    let expected =
        [(revision(&created), "registered"), (revision(&updated), "updated"), (deregistered, "deregistered")];
    assert_published(&on_nats, &expected, "registry.agent", "NATS");
    assert_published(&on_amqp, &expected, "registry.agent", "AMQP");
    assert!(deregistered > revision(&updated));

    let bodies: Vec<&Value> = on_nats.iter().map(|h| &h.body).collect();
    assert_eq!(bodies[0]["agent"]["name"], "Published");
    assert_eq!(bodies[0]["agent"]["revision"], created["revision"], "the document after the change");
    assert_eq!(bodies[1]["agent"]["description"], "changed");
    assert!(bodies[2].get("agent").is_none(), "a removal carries no document: {}", bodies[2]);
    for (body, amqp) in bodies.iter().zip(&on_amqp) {
        assert_eq!(**body, amqp.body, "both brokers get the same message");
        let at = body["at"].as_str().expect("at");
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "`at` is a timestamp: {at}");
    }
    drop(registry);
    drop(amqp);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kv_bucket_holds_the_agent_document_after_registration_and_not_after_deregistration() {
    let names = Names::unique();
    let jetstream = async_nats::jetstream::new(nats().await);
    let dir = TempDir::new().expect("temp dir");
    let registry = embedded(&dir, &names.args(Some(&nats_url()), None)).await;
    let created = registry.register(agent("Stored", "publish-kv", ephemeral(600))).await;
    let path = format!("/agents/{}", id(&created));

    // The registry created the bucket.
    eventually(Duration::from_secs(10), "the KV bucket", || async {
        jetstream.get_key_value(&names.bucket).await.is_ok()
    })
    .await;
    let store = jetstream.get_key_value(&names.bucket).await.expect("the bucket");
    let kept = |store: async_nats::jetstream::kv::Store, key: String| async move {
        store.get(key).await.expect("KV read").map(|bytes| serde_json::from_slice::<Value>(&bytes).expect("JSON"))
    };
    let document_of = |revision: u64| {
        let (store, key) = (store.clone(), id(&created));
        async move { kept(store, key).await.is_some_and(|d| d["revision"] == revision) }
    };
    eventually(Duration::from_secs(10), "the registered document", || document_of(revision(&created))).await;
    // The document is what the API shows, without the live state of its endpoints.
    let mut shown = registry.get(&path).await.ok(200).clone();
    for endpoint in shown["endpoints"].as_array_mut().expect("endpoints") {
        for live in ["isLive", "lastSeenAt", "expiresAt"] {
            endpoint.as_object_mut().expect("endpoint").remove(live);
        }
    }
    assert_eq!(kept(store.clone(), id(&created)).await, Some(shown));

    let updated = registry.put(&path, json!({"name": "Stored", "description": "v2"})).await.ok(200).clone();
    eventually(Duration::from_secs(10), "the updated document", || document_of(revision(&updated))).await;
    assert_eq!(registry.delete(&path).await.status, 204);
    eventually(Duration::from_secs(10), "the key gone", || {
        let (store, key) = (store.clone(), id(&created));
        async move { kept(store, key).await.is_none() }
    })
    .await;
    drop(registry);
    let _ = jetstream.delete_key_value(&names.bucket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn brokers_that_hang_or_refuse_connections_neither_slow_nor_fail_registrations() {
    let (hanging, _server) = silent_server().await;
    let refusing = free_port();
    let names = Names::unique();
    let (nats, amqp) = (format!("nats://127.0.0.1:{hanging}"), format!("amqp://guest:guest@127.0.0.1:{refusing}/%2f"));
    let dir = TempDir::new().expect("temp dir");
    let registry = embedded(&dir, &names.args(Some(&nats), Some(&amqp))).await;

    let mut slowest = Duration::ZERO;
    for i in 0..30 {
        let started = Instant::now();
        registry.register(agent(&format!("Unpublished {i}"), "publish-down", ephemeral(600))).await;
        slowest = slowest.max(started.elapsed());
    }
    // Publishing waits on a broker that hangs for at least its 2 s connect timeout; a registration
    // that waited with it would take that long. (How fast registrations are: benches/run.py.)
    assert!(slowest < Duration::from_millis(1_500), "slowest registration: {slowest:?}");
    assert_eq!(registry.discovered("/discover/agents?capability=publish-down&pageSize=100").await.len(), 30);
    registry.get("/readyz").await.ok(200);
    assert!(registry.log().contains("publishing changes failed"), "failures are logged:\n{}", registry.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_amqp_broker_that_accepts_and_stays_silent_does_not_cost_a_thread_per_attempt() {
    let (silent, _server) = silent_server().await;
    let names = Names::unique();
    let dir = TempDir::new().expect("temp dir");
    let registry = embedded(&dir, &names.args(None, Some(&format!("amqp://guest:guest@127.0.0.1:{silent}/%2f")))).await;
    registry.register(agent("Unheard", "publish-silent", ephemeral(600))).await;
    // Each attempt gives up after 2 s and the next follows within 0.2 to 4 s of it: by now,
    // several attempts have failed. lapin would keep one connection thread for each of them.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(registry.log().contains("no connection within"), "{}", registry.log());
    assert_eq!(registry.threads_named("lapin-io-loop"), 0, "AMQP connection threads left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn publication_catches_up_in_order_once_a_cut_off_broker_is_reachable_again() {
    let names = Names::unique();
    let (nats_proxy, amqp_proxy) = (Proxy::to(&nats_url()).await, Proxy::to(&amqp_url()).await);
    let client = nats().await;
    let mut subscriber = subscribe(&client, &names.subjects).await;
    let (amqp, mut consumer) = consume(&names.exchange).await;
    let dir = TempDir::new().expect("temp dir");
    let args = names.args(Some(&nats_proxy.url(&nats_url())), Some(&amqp_proxy.url(&amqp_url())));
    let registry = embedded(&dir, &args).await;
    let all = |_: &Heard| true;
    let within = Duration::from_secs(10);

    let first = registry.register(agent("Before", "publish-cut", ephemeral(600))).await;
    assert_eq!(hear!(next_nats, &mut subscriber, 1, within, all)[0].revision(), revision(&first));
    assert_eq!(hear!(next_amqp, &mut consumer, 1, within, all)[0].revision(), revision(&first));

    nats_proxy.cut();
    amqp_proxy.cut();
    let mut expected = Vec::new();
    let started = Instant::now();
    for name in ["During 1", "During 2"] {
        expected.push((revision(&registry.register(agent(name, "publish-cut", ephemeral(600))).await), "registered"));
    }
    let path = format!("/agents/{}", id(&first));
    expected.push((
        revision(registry.put(&path, json!({"name": "Before", "description": "cut"})).await.ok(200)),
        "updated",
    ));
    // Three writes that each waited for a cut broker's 2 s connect timeout would take 6 s or more.
    assert!(started.elapsed() < Duration::from_secs(4), "the API answers while the brokers are away");
    // Long enough for several failed attempts; nothing gets through the cut.
    let quiet = Duration::from_millis(1500);
    assert!(hear!(next_nats, &mut subscriber, 1, quiet, all).is_empty(), "NATS is cut off");
    assert!(hear!(next_amqp, &mut consumer, 1, Duration::ZERO, all).is_empty(), "RabbitMQ is cut off");

    nats_proxy.restore();
    amqp_proxy.restore();
    // At least once: a batch cut off half-way may come again (even the one before the cut, when
    // its confirm was lost), so each revision counts once, on its first arrival.
    let within = Duration::from_secs(20);
    let cut_at = revision(&first);
    let first_after_cut = || {
        let mut seen = std::collections::HashSet::new();
        move |h: &Heard| h.revision() > cut_at && seen.insert(h.revision())
    };
    let (mut on_nats, mut on_amqp) = (first_after_cut(), first_after_cut());
    for (source, heard) in [
        ("NATS", hear!(next_nats, &mut subscriber, 3, within, on_nats)),
        ("AMQP", hear!(next_amqp, &mut consumer, 3, within, on_amqp)),
    ] {
        let got: Vec<(u64, &str)> = heard.iter().map(|h| (h.revision(), h.kind())).collect();
        assert_eq!(got, expected, "{source}: every change after the cut, in order");
    }
    drop(registry);
    delete_exchange(&amqp, &names.exchange).await;
    let _ = async_nats::jetstream::new(client).delete_key_value(&names.bucket).await;
}

/// `n` messages from each broker, and whatever follows them closely (a duplicate would).
async fn hear_once(
    subscriber: &mut async_nats::Subscriber,
    consumer: &mut lapin::Consumer,
    n: usize,
) -> (Vec<Heard>, Vec<Heard>) {
    let (all, within, after) = (|_: &Heard| true, Duration::from_secs(20), Duration::from_millis(1500));
    let mut on_nats = hear!(next_nats, subscriber, n, within, all);
    let mut on_amqp = hear!(next_amqp, consumer, n, within, all);
    on_nats.extend(hear!(next_nats, subscriber, 1, after, all));
    on_amqp.extend(hear!(next_amqp, consumer, 1, Duration::from_millis(300), all));
    (on_nats, on_amqp)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_two_replicas_each_change_is_published_once_and_a_new_leader_resumes_where_the_old_one_stopped() {
    let names = Names::unique();
    let (database, schema) = postgres_schema().await;
    let mut args = shared_backends(&database, &redis_url(), &redis_prefix());
    args.extend(names.args(Some(&nats_url()), Some(&amqp_url())));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let client = nats().await;
    let mut subscriber = subscribe(&client, &names.subjects).await;
    let (amqp, mut consumer) = consume(&names.exchange).await;
    let (all, within) = (|_: &Heard| true, Duration::from_secs(20));

    // The first replica publishes the first change: it holds the leases.
    let first = Replica::start(&args).await;
    let mut expected =
        vec![(revision(&first.register(agent("First", "publish-ha", ephemeral(600))).await), "registered")];
    assert_eq!(hear!(next_nats, &mut subscriber, 1, within, all).len(), 1);
    assert_eq!(hear!(next_amqp, &mut consumer, 1, within, all).len(), 1);
    let second = Replica::start(&args).await;

    let mut created = Vec::new();
    for i in 0..6 {
        let through = if i % 2 == 0 { &first } else { &second };
        let agent = through.register(agent(&format!("Agent {i}"), "publish-ha", ephemeral(600))).await;
        expected.push((revision(&agent), "registered"));
        created.push(agent);
    }
    for (i, agent) in created.iter().take(2).enumerate() {
        let through = if i % 2 == 0 { &second } else { &first };
        let path = format!("/agents/{}", id(agent));
        expected.push((revision(through.put(&path, json!({"name": "Changed"})).await.ok(200)), "updated"));
    }
    for (i, agent) in created.iter().skip(4).enumerate() {
        let through = if i % 2 == 0 { &first } else { &second };
        assert_eq!(through.delete(&format!("/agents/{}", id(agent))).await.status, 204);
        expected.push((0, "deregistered")); // its revision is known once heard
    }

    let (on_nats, on_amqp) = hear_once(&mut subscriber, &mut consumer, expected.len() - 1).await;
    for (i, heard) in on_nats.iter().enumerate().filter(|(_, h)| h.kind() == "deregistered") {
        expected[i + 1].0 = heard.revision();
    }
    assert_published(&on_nats, &expected[1..], &names.subjects, "NATS, two replicas");
    assert_published(&on_amqp, &expected[1..], "registry.agent", "AMQP, two replicas");

    // The leader stops; the other replica takes over from the next revision, publishing none twice.
    assert!(first.terminate().success());
    let mut after = Vec::new();
    for i in 0..3 {
        let agent = second.register(agent(&format!("After {i}"), "publish-ha", ephemeral(600))).await;
        after.push((revision(&agent), "registered"));
    }
    let (on_nats, on_amqp) = hear_once(&mut subscriber, &mut consumer, after.len()).await;
    assert_published(&on_nats, &after, &names.subjects, "NATS, after the leader stopped");
    assert_published(&on_amqp, &after, "registry.agent", "AMQP, after the leader stopped");

    drop(second);
    delete_exchange(&amqp, &names.exchange).await;
    let _ = async_nats::jetstream::new(client).delete_key_value(&names.bucket).await;
    schema.drop_now().await;
}

/// Task events heard on one broker until the one that ends task `id`.
macro_rules! hear_task {
    ($next:ident, $source:expr, $id:expr) => {{
        let until = Instant::now() + Duration::from_secs(20);
        let mut heard: Vec<Heard> = Vec::new();
        while let Some(h) = $next($source, until).await {
            if h.body["taskId"] != $id {
                continue;
            }
            let done = h.kind() == "task.completed";
            heard.push(h);
            if done {
                break;
            }
        }
        heard
    }};
}

#[tokio::test(flavor = "multi_thread")]
async fn with_publish_task_events_every_step_of_a_task_reaches_nats_and_the_amqp_exchange() {
    let names = Names::unique();
    let client = nats().await;
    let mut subscriber = subscribe(&client, &format!("{}.task", names.subjects)).await;
    let (amqp, mut consumer) = consume(&names.exchange).await;
    let dir = TempDir::new().expect("temp dir");
    let mut args = names.args(Some(&nats_url()), Some(&amqp_url()));
    args.push("--publish-task-events".into());
    let registry = embedded(&dir, &args).await;
    let agent = crate::embedded::tasks::a2a_agent_with(&[]).await;
    crate::embedded::tasks::register(&registry, "echo", &[&agent.url]).await;
    let task = registry.post("/tasks", json!({"capability": "echo", "input": "published"})).await.ok(200).clone();
    let id = task["id"].as_str().expect("id");

    let on_nats = hear_task!(next_nats, &mut subscriber, id);
    let on_amqp = hear_task!(next_amqp, &mut consumer, id);
    for (heard, prefix, source) in [(&on_nats, names.subjects.as_str(), "NATS"), (&on_amqp, "registry.agent", "AMQP")] {
        let kinds: Vec<&str> = heard.iter().map(Heard::kind).collect();
        assert_eq!(kinds.first(), Some(&"task.created"), "{source}: {kinds:?}");
        assert_eq!(kinds.last(), Some(&"task.completed"), "{source}: {kinds:?}");
        assert!(kinds.contains(&"task.dispatched"), "{source}: {kinds:?}");
        for h in heard.iter() {
            assert_eq!(h.topic, format!("{prefix}.{}", h.kind()), "{source}: subject or routing key");
            assert_eq!(h.id, format!("{id}:{}", h.body["seq"]), "{source}: the message id is the task and its seq");
            assert_eq!(h.body["ownerId"], task["ownerId"], "{source}");
        }
        assert_eq!(heard.last().unwrap().body["output"], "echo: published", "{source}");
    }
    let bodies = |heard: &[Heard]| heard.iter().map(|h| h.body.clone()).collect::<Vec<_>>();
    assert_eq!(bodies(&on_nats), bodies(&on_amqp), "both brokers get the same messages");
    delete_exchange(&amqp, &names.exchange).await;
    drop(registry);
}
