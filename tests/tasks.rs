//! The gateway end to end: tasks sent through the registry to a real A2A agent (a2a-sdk's
//! server classes, started on loopback by the test), followed live, failed over, refused.

use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::support::{Http, SseEvent, TestApp, Watcher};

/// A Python A2A agent (tests/clients/a2a_agent.py) on a free loopback port; killed when dropped.
pub(crate) struct Agent {
    pub(crate) url: String,
    _process: tokio::process::Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn a2a_agent() -> Agent {
    a2a_agent_with(&[]).await
}

/// The agent with flags: `streaming` (its card says so), `rest` (the HTTP+JSON binding).
pub(crate) async fn a2a_agent_with(flags: &[&str]) -> Agent {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/clients/a2a_agent.py");
    spawn_agent(("AGENT_REGISTRY_TEST_VENV", "agent-registry-venv"), script, flags).await
}

/// The A2A v0.3 agent (a2a-sdk 0.3.26's server), with the same flags but `rest`.
async fn a2a03_agent_with(flags: &[&str]) -> Agent {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/clients/a2a_agent03.py");
    spawn_agent(("AGENT_REGISTRY_TEST_VENV_A2A03", "agent-registry-venv-a2a03"), script, flags).await
}

/// Runs `script` with the Python of a venv (from its variable, else `~/.cache/<default>`).
async fn spawn_agent((variable, default): (&str, &str), script: &str, flags: &[&str]) -> Agent {
    let venv = std::env::var(variable)
        .unwrap_or_else(|_| format!("{}/.cache/{default}", std::env::var("HOME").unwrap_or_default()));
    let python = std::path::Path::new(&venv).join("bin/python");
    assert!(python.exists(), "the Python SDKs are missing: run `bash tests/clients/setup.sh`");
    let port = free_port();
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .args(flags)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the A2A agent starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    assert!(matches!(ready, Ok(Ok(Some(ref l))) if l == "ready"), "the A2A agent did not start: {ready:?}");
    Agent { url: format!("http://127.0.0.1:{port}/"), _process: child }
}

/// Registers an agent offering `capability` at these addresses (A2A over HTTP).
pub(crate) async fn register(app: &Http, capability: &str, addresses: &[&str]) -> String {
    let endpoints: Vec<Value> = addresses
        .iter()
        .enumerate()
        .map(|(i, address)| {
            json!({"name": format!("e{i}"), "transport": "Http", "protocol": "A2A", "address": address,
                   "livenessModel": "Ephemeral", "ttlSeconds": 300})
        })
        .collect();
    let body = json!({"name": capability, "capabilities": [{"name": capability}], "endpoints": endpoints});
    app.register(body).await["id"].as_str().unwrap().to_owned()
}

/// Registers the agent by the card it serves (so the gateway knows its binding and whether it
/// streams); returns the agent's id.
pub(crate) async fn register_card(app: &Http, agent: &Agent) -> String {
    let card: Value =
        reqwest::get(format!("{}.well-known/agent-card.json", agent.url)).await.unwrap().json().await.unwrap();
    let body = json!({"card": card, "liveness": {"livenessModel": "Ephemeral", "ttlSeconds": 300}});
    app.post("/a2a/agents", body).await.ok(201)["id"].as_str().unwrap().to_owned()
}

/// Waits until the agent took the task (its state is `working`), within the test's own bound.
pub(crate) async fn until_working(app: &Http, id: &str) {
    let mut task = Value::Null;
    for _ in 0..600 {
        task = app.get(&format!("/tasks/{id}")).await.ok(200).clone();
        if task["state"] != "submitted" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(task["state"], "working", "{task}");
}

/// Every event of a task's log, read from its SSE stream to its end.
pub(crate) async fn events(app: &Http, id: &str, key: Option<&str>) -> Vec<Value> {
    let mut request = reqwest::Client::new().get(format!("{}/tasks/{id}/events", app.base));
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = tokio::time::timeout(Duration::from_secs(30), response.text()).await.expect("the stream ends").unwrap();
    let mut seen = Vec::new();
    for block in text.split("\n\n") {
        let id = block.lines().find_map(|l| l.strip_prefix("id:")).map(str::trim);
        if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
            let event: Value = serde_json::from_str(data.trim()).unwrap();
            assert_eq!(id, Some(event["seq"].to_string().as_str()));
            seen.push(event);
        }
    }
    seen
}

pub(crate) fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_task_sent_by_capability_gets_the_live_agents_answer_and_logs_every_step() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    let agent_id = register(&app, "echo", &[&agent.url]).await;
    let reply = app.post("/tasks", json!({"capability": "echo", "input": "hello"})).await;
    let task = reply.ok(200);
    assert_eq!(task["state"], "completed");
    assert_eq!(task["output"], "echo: hello");
    assert_eq!(task["agentId"], agent_id.as_str());
    assert_eq!(task["protocol"], "A2A");
    let id = task["id"].as_str().unwrap();
    let read = app.get(&format!("/tasks/{id}")).await;
    assert_eq!(read.ok(200)["output"], "echo: hello");
    let log = events(&app, id, app_key(&app).as_deref()).await;
    let kinds = kinds(&log);
    assert_eq!(kinds.first(), Some(&"created"));
    assert_eq!(kinds[1..3], ["dispatched", "accepted"]);
    assert_eq!(kinds.last(), Some(&"completed"));
    assert_eq!(log[1]["address"], agent.url.as_str());
    // The same through the seed's route name.
    let again = app.post("/execute-task", json!({"agentId": agent_id, "input": {"text": "x"}})).await;
    assert_eq!(again.ok(200)["state"], "completed");
}

/// The key the app's client sends (the test apps are bootstrapped with an Admin key).
pub(crate) fn app_key(app: &Http) -> Option<String> {
    app.key().map(str::to_owned)
}

#[tokio::test]
async fn an_agent_that_fails_or_asks_for_input_leaves_the_task_in_that_state() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    register(&app, "echo", &[&agent.url]).await;
    let failed = app.post("/tasks", json!({"capability": "echo", "input": "fail"})).await;
    let failed = failed.ok(200);
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["error"]["code"], "agent_failed");
    assert_eq!(failed["error"]["detail"], "it went wrong");
    let asking = app.post("/tasks", json!({"capability": "echo", "input": "ask"})).await;
    assert_eq!(asking.ok(200)["state"], "input_required");
    let canceled = app.post_empty(&format!("/tasks/{}/cancel", failed["id"].as_str().unwrap())).await;
    canceled.problem(409, "task_finished");
}

#[tokio::test]
async fn a_slow_task_answers_202_and_is_followed_live_to_its_end() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    register(&app, "echo", &[&agent.url]).await;
    let reply = app.post("/tasks", json!({"capability": "echo", "input": "slow:1", "waitSeconds": 0})).await;
    let task = reply.ok(202).clone();
    let id = task["id"].as_str().unwrap();
    assert_eq!(reply.header("location"), Some(format!("/tasks/{id}").as_str()));
    let log = events(&app, id, app_key(&app).as_deref()).await;
    assert_eq!(kinds(&log).last(), Some(&"completed"));
    assert_eq!(log.last().unwrap()["output"], "echo: slow:1");
    // Resuming after the second event replays the rest only.
    let mut request =
        reqwest::Client::new().get(format!("{}/tasks/{id}/events", app.base)).header("last-event-id", "2");
    request = request.header("x-api-key", app_key(&app).unwrap());
    let rest = request.send().await.unwrap().text().await.unwrap();
    assert!(rest.contains("id: 3") || rest.contains("id:3"), "{rest}");
    assert!(!rest.contains("\"created\""), "{rest}");
    let listed = app.get("/tasks?state=completed").await;
    assert_eq!(listed.ok(200)["items"][0]["id"], id);
}

#[tokio::test]
async fn a_task_that_outlives_its_timeout_fails_with_task_timeout() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    register(&app, "echo", &[&agent.url]).await;
    let reply = app.post("/tasks", json!({"capability": "echo", "input": "slow:20", "timeoutSeconds": 1})).await;
    let task = reply.ok(200);
    assert_eq!(task["state"], "failed");
    assert_eq!(task["error"]["code"], "task_timeout");
}

#[tokio::test]
async fn an_endpoint_that_is_down_before_accepting_is_failed_over_to_the_next() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    let dead = format!("http://127.0.0.1:{}/", free_port());
    register(&app, "echo", &[&dead, &agent.url]).await;
    // Which endpoint goes first is a fair draw per task: send until the dead one was drawn.
    for _ in 0..30 {
        let reply = app.post("/tasks", json!({"capability": "echo", "input": "hi"})).await;
        let task = reply.ok(200).clone();
        assert_eq!(task["state"], "completed", "{task}");
        let log = events(&app, task["id"].as_str().unwrap(), app_key(&app).as_deref()).await;
        if kinds(&log).contains(&"retrying") {
            assert_eq!(kinds(&log)[..4], ["created", "dispatched", "retrying", "dispatched"]);
            assert_eq!(log[1]["address"], dead.as_str());
            assert!(log[2]["reason"].as_str().unwrap().starts_with("agent_unreachable"), "{}", log[2]);
            return;
        }
    }
    panic!("the dead endpoint was never tried first");
}

#[tokio::test]
async fn a_task_to_a_cloud_metadata_address_is_refused_by_the_egress_policy() {
    let app = TestApp::spawn().await;
    register(&app, "metadata", &["http://169.254.169.254/latest/"]).await;
    let reply = app.post("/tasks", json!({"capability": "metadata", "input": "x"})).await;
    let task = reply.ok(200);
    assert_eq!(task["state"], "failed");
    assert_eq!(task["error"]["code"], "egress_refused");
    assert!(task["error"]["detail"].as_str().unwrap().contains("169.254.169.254"), "{task}");
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_gets_the_same_task() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    register(&app, "echo", &[&agent.url]).await;
    let body = json!({"capability": "echo", "input": "once"});
    let first = app.send(Method::POST, "/tasks", Some(body.clone()), &[("idempotency-key", "k-1")]).await;
    let second = app.send(Method::POST, "/tasks", Some(body), &[("idempotency-key", "k-1")]).await;
    assert_eq!(first.ok(200)["id"], second.ok(200)["id"]);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    let other = json!({"capability": "echo", "input": "twice"});
    let reused = app.send(Method::POST, "/tasks", Some(other), &[("idempotency-key", "k-1")]).await;
    reused.problem(422, "idempotency_key_reused");
}

#[tokio::test]
async fn bad_task_requests_are_problems_naming_each_field() {
    let app = TestApp::spawn().await;
    let reply = app.post("/tasks", json!({})).await;
    reply.problem(400, "validation_failed");
    assert_eq!(reply.pointers(), ["/capability", "/input"]);
    let body = json!({"agentId": "x", "input": 1, "protocol": "SMTP", "timeoutSeconds": 0, "waitSeconds": 99});
    let reply = app.post("/tasks", body).await;
    reply.problem(400, "validation_failed");
    assert_eq!(reply.pointers(), ["/agentId", "/input", "/protocol", "/timeoutSeconds", "/waitSeconds"]);
    app.post("/tasks", json!({"capability": "nobody", "input": "x"})).await.problem(404, "no_live_agent");
    let anonymous = app.with_key(None).post("/tasks", json!({"capability": "echo", "input": "x"})).await;
    anonymous.problem(401, "unauthenticated");
    app.get("/tasks/not-a-task").await.problem(400, "invalid_id");
    app.get(&format!("/tasks/{}", uuid::Uuid::new_v4())).await.problem(404, "task_not_found");
    app.get("/tasks?pageSize=0").await.problem(400, "invalid_query");
}

#[tokio::test]
async fn a_task_is_read_only_by_its_caller_and_admins() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    register(&app, "echo", &[&agent.url]).await;
    let kim = app.with_key(Some(&app.issue_key("kim", "Agent").await));
    let task = kim.post("/tasks", json!({"capability": "echo", "input": "mine"})).await.ok(200).clone();
    let path = format!("/tasks/{}", task["id"].as_str().unwrap());
    assert_eq!(kim.get(&path).await.ok(200)["ownerId"], "kim");
    assert_eq!(app.get(&path).await.ok(200)["ownerId"], "kim");
    let lee = app.with_key(Some(&app.issue_key("lee", "Agent").await));
    lee.get(&path).await.problem(404, "task_not_found");
    lee.post_empty(&format!("{path}/cancel")).await.problem(404, "task_not_found");
    assert_eq!(lee.get("/tasks").await.ok(200)["items"], json!([]));
}

#[tokio::test]
async fn a_streaming_agent_is_followed_over_sse_and_every_update_is_logged() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent_with(&["streaming"]).await);
    register_card(&app, &agent).await;
    let task = app.post("/tasks", json!({"capability": "echo", "input": "parts:2"})).await.ok(200).clone();
    assert_eq!(task["state"], "completed", "{task}");
    // The two chunks of one artifact (the second with `append`) make one answer.
    assert_eq!(task["output"], "part 0\npart 1");
    let log = events(&app, task["id"].as_str().unwrap(), app_key(&app).as_deref()).await;
    let kinds = kinds(&log);
    assert_eq!(kinds[..3], ["created", "dispatched", "accepted"]);
    assert_eq!(kinds.iter().filter(|k| **k == "artifact").count(), 2, "{kinds:?}");
    let states: Vec<&str> =
        log.iter().filter(|e| e["type"] == "status").map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["submitted", "working", "completed"]);
    assert_eq!(kinds.last(), Some(&"completed"));
    // What needs input or fails ends the stream the same way.
    let asking = app.post("/tasks", json!({"capability": "echo", "input": "ask"})).await;
    assert_eq!(asking.ok(200)["state"], "input_required");
    let failed = app.post("/tasks", json!({"capability": "echo", "input": "fail"})).await;
    assert_eq!(failed.ok(200)["error"]["detail"], "it went wrong");
}

#[tokio::test]
async fn the_http_json_binding_is_spoken_streaming_and_not() {
    for flags in [&["rest"][..], &["rest", "streaming"][..]] {
        let (app, agent) = (TestApp::spawn().await, a2a_agent_with(flags).await);
        register_card(&app, &agent).await;
        let task = app.post("/tasks", json!({"capability": "echo", "input": "over rest"})).await.ok(200).clone();
        assert_eq!(task["state"], "completed", "{flags:?}: {task}");
        assert_eq!(task["output"], "echo: over rest", "{flags:?}");
    }
}

#[tokio::test]
async fn canceling_a_running_task_cancels_it_at_the_agent_too() {
    for flags in [&[][..], &["streaming"][..]] {
        let (app, agent) = (TestApp::spawn().await, a2a_agent_with(flags).await);
        register_card(&app, &agent).await;
        let body = json!({"capability": "echo", "input": "slow:60", "waitSeconds": 0, "timeoutSeconds": 120});
        let task = app.post("/tasks", body).await.ok(202).clone();
        let id = task["id"].as_str().unwrap();
        until_working(&app, id).await;
        let canceled = app.post_empty(&format!("/tasks/{id}/cancel")).await;
        assert_eq!(canceled.ok(200)["state"], "canceled", "{flags:?}");
        let log = events(&app, id, app_key(&app).as_deref()).await;
        assert_eq!(kinds(&log).last(), Some(&"canceled"));
        // The agent itself says its task is canceled (asked with a2a's own GetTask).
        let remote = log.iter().find(|e| e["type"] == "accepted").unwrap()["remoteId"].as_str().unwrap().to_owned();
        let ask = json!({"jsonrpc": "2.0", "id": "1", "method": "GetTask", "params": {"id": remote}});
        let request = reqwest::Client::new().post(&agent.url).header("a2a-version", "1.0").json(&ask);
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert_eq!(answer["result"]["status"]["state"], "TASK_STATE_CANCELED", "{flags:?}: {answer}");
    }
}

#[tokio::test]
async fn an_agent_that_names_its_callers_takes_tasks_only_from_them_and_admins() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    let endpoint = json!({"name": "e", "transport": "Http", "protocol": "A2A", "address": agent.url,
                          "livenessModel": "Ephemeral", "ttlSeconds": 300});
    let body = json!({"name": "private", "capabilities": [{"name": "private"}], "endpoints": [endpoint],
                      "labels": {"callers": "kim, team-b"}});
    let id = app.register(body).await["id"].as_str().unwrap().to_owned();
    let task = json!({"capability": "private", "input": "hi"});
    let kim = app.with_key(Some(&app.issue_key("kim", "Agent").await));
    assert_eq!(kim.post("/tasks", task.clone()).await.ok(200)["state"], "completed");
    assert_eq!(app.post("/tasks", task.clone()).await.ok(200)["state"], "completed", "an Admin may call anything");
    // Anyone else finds no agent by capability, and is forbidden the agent by id.
    let lee = app.with_key(Some(&app.issue_key("lee", "Agent").await));
    lee.post("/tasks", task.clone()).await.problem(404, "no_live_agent");
    lee.post("/tasks", json!({"agentId": id, "input": "hi"})).await.problem(403, "forbidden");
    // A scope entry lets every key of that scope call.
    let path = format!("/agents/{id}");
    let update = json!({"name": "private", "capabilities": [{"name": "private"}],
                        "labels": {"callers": "kim scope:Agent"}});
    app.put(&path, update).await.ok(200);
    assert_eq!(lee.post("/tasks", task).await.ok(200)["state"], "completed");
}

#[tokio::test]
async fn status_counts_tasks_in_flight_and_those_completed_and_failed_in_the_last_hour_by_protocol() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    register(&app, "echo", &[&agent.url]).await;
    app.post("/tasks", json!({"capability": "echo", "input": "hi"})).await.ok(200);
    app.post("/tasks", json!({"capability": "echo", "input": "fail"})).await.ok(200);
    let slow = app.post("/tasks", json!({"capability": "echo", "input": "slow:60", "waitSeconds": 0})).await;
    let id = slow.ok(202)["id"].as_str().unwrap().to_owned();
    until_working(&app, &id).await;
    let status = app.get("/status").await.ok(200)["tasks"].clone();
    assert_eq!(status["inFlight"], json!({"A2A": 1}), "{status}");
    assert_eq!(status["lastHour"], json!({"completed": {"A2A": 1}, "failed": {"A2A": 1}}), "{status}");
    assert_eq!(status["runningHere"], 1);
    app.post_empty(&format!("/tasks/{id}/cancel")).await.ok(200);
    let kim = app.with_key(Some(&app.issue_key("kim", "Agent").await));
    kim.get("/status").await.problem(403, "forbidden");
}

#[tokio::test]
async fn an_a2a_v03_agent_registered_by_its_v03_card_gets_tasks_through_message_send_and_stream() {
    for flags in [&[][..], &["streaming"][..]] {
        let (app, agent) = (TestApp::spawn().await, a2a03_agent_with(flags).await);
        register_card(&app, &agent).await;
        let task = app.post("/tasks", json!({"capability": "echo", "input": "old times"})).await.ok(200).clone();
        assert_eq!(
            (task["state"].as_str(), task["output"].as_str()),
            (Some("completed"), Some("echo: old times")),
            "{flags:?}: {task}"
        );
        let log = events(&app, task["id"].as_str().unwrap(), app_key(&app).as_deref()).await;
        let states: Vec<&str> =
            log.iter().filter(|e| e["type"] == "status").map(|e| e["state"].as_str().unwrap()).collect();
        assert_eq!(states.last(), Some(&"completed"), "{flags:?}");
        let asking = app.post("/tasks", json!({"capability": "echo", "input": "ask"})).await;
        assert_eq!(asking.ok(200)["state"], "input_required", "{flags:?}");
        // A running v0.3 task is canceled with tasks/cancel.
        let body = json!({"capability": "echo", "input": "slow:60", "waitSeconds": 0});
        let id = app.post("/tasks", body).await.ok(202)["id"].as_str().unwrap().to_owned();
        until_working(&app, &id).await;
        assert_eq!(app.post_empty(&format!("/tasks/{id}/cancel")).await.ok(200)["state"], "canceled");
        let log = events(&app, &id, app_key(&app).as_deref()).await;
        let remote = log.iter().find(|e| e["type"] == "accepted").unwrap()["remoteId"].as_str().unwrap().to_owned();
        let ask = json!({"jsonrpc": "2.0", "id": "1", "method": "tasks/get", "params": {"id": remote}});
        let answer: Value =
            reqwest::Client::new().post(&agent.url).json(&ask).send().await.unwrap().json().await.unwrap();
        assert_eq!(answer["result"]["status"]["state"], "canceled", "{flags:?}: {answer}");
    }
}

/// The task events a watcher receives until the one that ends the task `id`.
async fn task_events_until_done(watcher: &mut Watcher, id: &str) -> Vec<SseEvent> {
    let mut seen = Vec::new();
    while let Some(event) = watcher.next(Duration::from_secs(20)).await {
        let done = event.data["taskId"] == id && event.event == "task_completed";
        seen.push(event);
        if done {
            return seen;
        }
    }
    panic!("the task's end never reached the watcher; it saw {:?}", seen.iter().map(|e| &e.event).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_watcher_that_includes_tasks_hears_each_step_of_the_tasks_its_caller_may_read() {
    let (app, agent) = (TestApp::spawn().await, a2a_agent().await);
    register(&app, "echo", &[&agent.url]).await;
    let anonymous = reqwest::get(format!("{}/watch?include=tasks", app.base)).await.unwrap();
    assert_eq!(anonymous.status(), 401, "task events need credentials");
    app.get("/watch?include=logs").await.problem(400, "invalid_query");
    let (kim_key, lee_key) = (app.issue_key("kim", "Agent").await, app.issue_key("lee", "Agent").await);
    let mut kims = Watcher::open_as(&app.base, "?include=tasks", None, Some(&kim_key)).await;
    let mut admins = Watcher::open_as(&app.base, "?include=tasks", None, app.key()).await;
    let lee = app.with_key(Some(&lee_key));
    let lees = lee.post("/tasks", json!({"capability": "echo", "input": "lee's"})).await.ok(200)["id"].clone();
    let kim = app.with_key(Some(&kim_key));
    let kims_task = kim.post("/tasks", json!({"capability": "echo", "input": "kim's"})).await.ok(200)["id"].clone();
    let kims_task = kims_task.as_str().unwrap();

    let seen = task_events_until_done(&mut kims, kims_task).await;
    assert!(
        seen.iter().all(|e| e.data["taskId"] == kims_task),
        "only kim's own task: {:?}",
        seen.iter().map(|e| &e.data).collect::<Vec<_>>()
    );
    let kinds: Vec<&str> = seen.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"task_created"));
    assert!(kinds.contains(&"task_dispatched") && kinds.contains(&"task_accepted"), "{kinds:?}");
    assert_eq!(seen.last().unwrap().data["output"], "echo: kim's");
    assert!(seen.iter().all(|e| e.id.is_none()), "task events carry no revision id");
    let seqs: Vec<u64> = seen.iter().map(|e| e.data["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in the log's order: {seqs:?}");

    // An Admin hears every task.
    let all = task_events_until_done(&mut admins, kims_task).await;
    assert!(all.iter().any(|e| e.data["taskId"] == lees), "the Admin hears lee's task too");
}
