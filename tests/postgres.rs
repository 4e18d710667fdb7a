//! The registry on PostgreSQL (a single replica; Redis liveness comes with several replicas).

use std::process::Command;

use crate::support::{TestApp, agent, ephemeral, persistent, postgres_schema};

#[tokio::test]
async fn the_registry_runs_on_postgres_and_keeps_agents_and_liveness_across_restarts() {
    let (url, schema) = postgres_schema().await;
    let app = TestApp::spawn_postgres(&url).await;
    let lease = app.register(agent("On Postgres", "pg-skill", ephemeral(100))).await;
    let beat = app.register(agent("Beating", "pg-skill", persistent(10))).await;
    let (id, eid) = (beat["id"].as_str().unwrap().to_owned(), beat["endpoints"][0]["id"].as_str().unwrap().to_owned());
    assert_eq!(app.discovered("/discover/agents?capability=pg-skill").await, ["Beating", "On Postgres"]);
    app.clock.advance_secs(20);
    app.post_empty(&format!("/agents/{id}/endpoints/{eid}/heartbeat")).await.ok(200);
    assert!(lease["revision"].as_u64() < beat["revision"].as_u64());

    let app = app.restart().await;
    assert_eq!(app.get(&format!("/agents/{}", lease["id"].as_str().unwrap())).await.ok(200)["name"], "On Postgres");
    app.clock.advance_secs(10);
    // Live only thanks to the heartbeat recorded before the restart (25 s lease from then).
    assert_eq!(app.discovered("/discover/agents?capability=pg-skill").await, ["Beating", "On Postgres"]);
    let later = app.register(agent("Later", "pg-skill", ephemeral(100))).await;
    assert!(later["revision"].as_u64() > beat["revision"].as_u64(), "revisions keep increasing");
    drop(app);
    schema.drop_now().await;
}

#[tokio::test]
async fn an_unmigrated_postgres_schema_is_refused_until_migrate_runs() {
    let (url, schema) = postgres_schema().await;
    let binary = env!("CARGO_BIN_EXE_agent-registry");
    let refused = Command::new(binary)
        .args(["serve", "--database-url", &url, "--listen", "127.0.0.1:0", "--log", "off"])
        .status()
        .expect("binary runs");
    assert!(!refused.success(), "serving an unmigrated schema is refused");
    let migrated =
        Command::new(binary).args(["migrate", "--database-url", &url, "--log", "off"]).status().expect("binary runs");
    assert!(migrated.success());
    let store = agent_registry_store_postgres::PostgresStore::connect(
        &url,
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    schema.drop_now().await;
}

/// The plan of each statement the store looks rows up with, generic over its parameters.
pub async fn lookup_plans(url: &str) -> Vec<(&'static str, String)> {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(url).await.expect("PostgreSQL is reachable");
    // Without sequential scans, a plan still using one means no index can answer the query.
    sqlx::raw_sql("SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan").execute(&mut db).await.unwrap();
    let mut plans = Vec::new();
    for (i, (name, statement)) in agent_registry_store_postgres::sql::LOOKUPS.iter().enumerate() {
        let params = (1..=9).filter(|n| statement.contains(&format!("${n}"))).count();
        let prepare = format!("PREPARE lookup_{i} AS {statement}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut db).await.unwrap();
        let arguments = if params == 0 { String::new() } else { format!("({})", vec!["NULL"; params].join(", ")) };
        let explain = format!("EXPLAIN EXECUTE lookup_{i}{arguments}");
        let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain)).fetch_all(&mut db).await.unwrap();
        plans.push((*name, lines.join("\n")));
    }
    plans
}

#[tokio::test]
async fn every_lookup_the_store_makes_is_answered_through_an_index() {
    let (url, schema) = postgres_schema().await;
    let store = agent_registry_store_postgres::PostgresStore::connect(
        &url,
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    for (name, plan) in lookup_plans(&url).await {
        assert!(!plan.contains("Seq Scan"), "{name} scans a whole table:\n{plan}");
        assert!(plan.contains("Index"), "{name} uses no index:\n{plan}");
        assert!(!plan.contains("Sort"), "{name} sorts rows instead of reading them in index order:\n{plan}");
    }
    schema.drop_now().await;
}
