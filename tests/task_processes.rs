//! Tasks across real `agent-registry` processes: created through one replica and followed
//! through another (PostgreSQL), and failed `registry_restarted` when the process running them
//! stops (SQLite, killed with SIGTERM and with SIGKILL).

use serde_json::json;

use crate::cluster::{Replica, shared_backends};
use crate::embedded::tasks::{a2a_agent_with, app_key, events, register, until_working};
use crate::support::{postgres_schema, redis_prefix, redis_url};

#[tokio::test(flavor = "multi_thread")]
async fn a_task_created_through_one_replica_is_read_and_followed_through_another() {
    let (url, schema) = postgres_schema().await;
    let args = shared_backends(&url, &redis_url(), &redis_prefix());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (first, second) = (Replica::start(&args).await, Replica::start(&args).await);
    let agent = a2a_agent_with(&[]).await;
    register(&first, "echo", &[&agent.url]).await;
    let body = json!({"capability": "echo", "input": "slow:2", "waitSeconds": 0});
    let task = first.post("/tasks", body).await.ok(202).clone();
    let id = task["id"].as_str().unwrap();
    // The other replica answers for it while it runs, and follows its log to the end.
    let read = second.get(&format!("/tasks/{id}")).await;
    assert!(["submitted", "working"].contains(&read.ok(200)["state"].as_str().unwrap()), "{}", read.body);
    let log = events(&second, id, app_key(&second).as_deref()).await;
    let last = log.last().unwrap();
    assert_eq!((last["type"].as_str(), last["output"].as_str()), (Some("completed"), Some("echo: slow:2")));
    assert_eq!(second.get(&format!("/tasks/{id}")).await.ok(200)["state"], "completed");
    drop((first, second));
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_in_flight_when_its_process_stops_is_failed_registry_restarted_by_the_next_start() {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("registry.db").display());
    let args = ["--database-url", url.as_str()];
    let agent = a2a_agent_with(&[]).await;
    let mut replica = Replica::start(&args).await;
    register(&replica, "echo", &[&agent.url]).await;
    for stop in ["SIGTERM", "SIGKILL"] {
        let body = json!({"capability": "echo", "input": "slow:120", "waitSeconds": 0, "timeoutSeconds": 600});
        let task = replica.post("/tasks", body).await.ok(202).clone();
        let id = task["id"].as_str().unwrap().to_owned();
        until_working(&replica, &id).await;
        match stop {
            "SIGTERM" => assert!(replica.terminate().success()),
            _ => drop(replica),
        }
        replica = Replica::start(&args).await;
        let read = replica.get(&format!("/tasks/{id}")).await;
        let read = read.ok(200);
        assert_eq!(
            (read["state"].as_str(), read["error"]["code"].as_str()),
            (Some("failed"), Some("registry_restarted")),
            "{stop}: {read}"
        );
        let log = events(&replica, &id, app_key(&replica).as_deref()).await;
        assert_eq!(log.last().unwrap()["code"], "registry_restarted", "{stop}");
    }
}
