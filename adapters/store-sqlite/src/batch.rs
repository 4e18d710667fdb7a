//! Group commit on SQLite: a batch of changes in one transaction with one statement per table,
//! so its cost in round trips to SQLite's worker thread does not grow with its size. The rows
//! the changes would find are read first; which changes are stale is decided from them in the
//! batch's order, exactly as applying them one after another would decide.

use std::collections::{HashMap, HashSet};

use agent_registry_core::audit::AuditNote;
use agent_registry_core::ports::Change;
use agent_registry_core::{RegistryError, Result};
use serde_json::{Value, json};
use sqlx::SqliteConnection;

use super::classify;

const AGENT_REVISIONS: &str = "SELECT id, revision FROM agents WHERE id IN (SELECT value FROM json_each(?1))";
const KEYS_TAKEN: &str = "SELECT owner_id, key FROM idempotency_keys
    WHERE (owner_id, key) IN (SELECT value ->> '$[0]', value ->> '$[1]' FROM json_each(?1))";
const NAMES_HELD: &str = "SELECT namespace, name FROM unique_names
    WHERE (namespace, name) IN (SELECT value ->> '$[0]', value ->> '$[1]' FROM json_each(?1))";
/// The last revision drawn (`AUTOINCREMENT` never gives one twice, pruned or rolled back).
const LAST_REVISION: &str = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)";

const INSERT_CHANGES: &str = "INSERT INTO changes (revision, agent_id, kind, at, document)
    SELECT value ->> 'rev', value ->> 'agent', value ->> 'kind', CAST(unixepoch('subsec') * 1000 AS INTEGER),
        value ->> 'doc' FROM json_each(?1)";
const INSERT_KEYS: &str = "INSERT INTO idempotency_keys (owner_id, key, request_hash, agent_id, created_at)
    SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]', value ->> '$[3]', value ->> '$[4]' FROM json_each(?1)";
const DELETE_AGENTS: &str = "DELETE FROM agents WHERE id IN (SELECT value FROM json_each(?1))";
const INSERT_AGENTS: &str = "INSERT INTO agents (id, owner_id, name, revision, created_at, updated_at, document)
    SELECT value ->> 'id', value ->> 'owner', value ->> 'name', value ->> 'rev', value ->> 'created',
        value ->> 'updated', value ->> 'doc' FROM json_each(?1)";
const UPDATE_AGENTS: &str = "UPDATE agents SET owner_id = e.owner, name = e.new_name, revision = e.rev,
        updated_at = e.updated, document = e.doc
    FROM (SELECT value ->> 'id' AS agent, value ->> 'owner' AS owner, value ->> 'name' AS new_name,
            value ->> 'rev' AS rev, value ->> 'updated' AS updated, value ->> 'doc' AS doc FROM json_each(?1)) AS e
    WHERE agents.id = e.agent";
const INSERT_NAMES: &str = "INSERT INTO unique_names (namespace, name, agent_id)
    SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]' FROM json_each(?1)";
/// Last-seen rows of endpoints the stored agents no longer have (endpoint ids are unique).
const DROP_LIVENESS: &str = "DELETE FROM endpoint_liveness WHERE agent_id IN (SELECT value FROM json_each(?1))
    AND endpoint_id NOT IN (SELECT value FROM json_each(?2))";
/// `WHERE true` tells SQLite's parser that `ON CONFLICT` is not a join's.
const INSERT_SEEN: &str = "INSERT INTO endpoint_liveness (endpoint_id, agent_id, last_seen_at)
    SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]' FROM json_each(?1) WHERE true
    ON CONFLICT (endpoint_id) DO UPDATE SET last_seen_at = max(last_seen_at, excluded.last_seen_at)";
const INSERT_AUDIT: &str = "INSERT INTO audit_events (at, actor, source, action, agent_id, revision, summary)
    SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER), value ->> 'actor', value ->> 'source', value ->> 'action',
        value ->> 'agent', value ->> 'rev', value ->> 'summary' FROM json_each(?1)";

/// What the batch's changes would find in the database.
pub(super) struct Facts {
    /// The revision of each agent the batch touches that exists.
    revisions: HashMap<String, i64>,
    keys: HashSet<(String, String)>,
    names: HashSet<(String, String)>,
    last_revision: i64,
}

impl Facts {
    pub(super) async fn read(conn: &mut SqliteConnection, changes: &[(Change, AuditNote)]) -> Result<Self> {
        let ids: Vec<String> = changes.iter().map(|(c, _)| c.agent_id().to_string()).collect();
        let keys: Vec<[&str; 2]> = changes
            .iter()
            .filter_map(|(c, _)| match c {
                Change::Put { idempotency: Some(r), .. } => Some([r.owner_id.as_str(), r.key.as_str()]),
                _ => None,
            })
            .collect();
        let names: Vec<[&str; 2]> = changes
            .iter()
            .filter_map(|(c, _)| match c {
                Change::Put { agent, expected: None, .. } => Some(agent),
                _ => None,
            })
            .flat_map(|a| a.claims.iter().map(|c| [c.namespace.as_str(), c.name.as_str()]))
            .collect();
        let revisions: Vec<(String, i64)> = sqlx::query_as(AGENT_REVISIONS)
            .bind(json!(ids).to_string())
            .fetch_all(&mut *conn)
            .await
            .map_err(classify)?;
        let keys: Vec<(String, String)> = if keys.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(KEYS_TAKEN).bind(json!(keys).to_string()).fetch_all(&mut *conn).await.map_err(classify)?
        };
        let names: Vec<(String, String)> = if names.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(NAMES_HELD).bind(json!(names).to_string()).fetch_all(&mut *conn).await.map_err(classify)?
        };
        let last_revision: i64 = sqlx::query_scalar(LAST_REVISION).fetch_one(&mut *conn).await.map_err(classify)?;
        Ok(Self {
            revisions: revisions.into_iter().collect(),
            keys: keys.into_iter().collect(),
            names: names.into_iter().collect(),
            last_revision,
        })
    }
}

/// The rows a batch writes, table by table, and each change's answer.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) answers: Vec<Result<u64>>,
    changes: Vec<Value>,
    keys: Vec<Value>,
    deleted: Vec<String>,
    inserted: Vec<Value>,
    updated: Vec<Value>,
    names: Vec<Value>,
    /// The agents stored, and every endpoint they keep.
    stored: Vec<String>,
    endpoints: Vec<String>,
    seen: Vec<Value>,
    audit: Vec<Value>,
}

impl Plan {
    /// Decides each change in order against the facts as the changes before it leave them.
    pub(super) fn decide(changes: &[(Change, AuditNote)], mut facts: Facts) -> Result<Self> {
        let mut plan = Self::default();
        for (change, note) in changes {
            let id = change.agent_id().to_string();
            let current = facts.revisions.get(&id).copied();
            let expected_is = |r: &u64| i64::try_from(*r).ok() == current;
            let fresh = match change {
                Change::Put { agent, idempotency, expected, .. } => {
                    let key_free =
                        idempotency.as_ref().is_none_or(|r| !facts.keys.contains(&(r.owner_id.clone(), r.key.clone())));
                    let names_free = expected.is_some()
                        || agent.claims.iter().all(|c| !facts.names.contains(&(c.namespace.clone(), c.name.clone())));
                    key_free && names_free && expected.as_ref().map_or(current.is_none(), expected_is)
                }
                Change::Delete { expected, .. } => expected_is(expected),
            };
            if !fresh {
                plan.answers.push(Err(RegistryError::StaleWrite(id)));
                continue;
            }
            facts.last_revision += 1;
            let revision = facts.last_revision;
            let kind = change.kind().as_str();
            match change {
                Change::Put { agent, seen, idempotency, expected, .. } => {
                    facts.revisions.insert(id.clone(), revision);
                    let mut agent = agent.clone();
                    agent.revision = u64::try_from(revision).unwrap_or_default();
                    let document = serde_json::to_string(&agent)
                        .map_err(|e| RegistryError::internal_from("encoding an agent", e))?;
                    if let Some(r) = idempotency {
                        facts.keys.insert((r.owner_id.clone(), r.key.clone()));
                        plan.keys.push(json!([r.owner_id, r.key, r.request_hash, id, r.created_at]));
                    }
                    let row = json!({"id": id, "owner": agent.owner_id, "name": agent.name, "rev": revision,
                        "created": agent.created_at.to_rfc3339(), "updated": agent.updated_at.to_rfc3339(),
                        "doc": document});
                    if expected.is_none() {
                        // Names are granted at registration and kept until the agent is removed.
                        for claim in &agent.claims {
                            facts.names.insert((claim.namespace.clone(), claim.name.clone()));
                            plan.names.push(json!([claim.namespace, claim.name, id]));
                        }
                        plan.inserted.push(row);
                    } else {
                        plan.updated.push(row);
                    }
                    plan.endpoints.extend(agent.endpoints.iter().map(|e| e.id.to_string()));
                    plan.seen.extend(seen.iter().map(|(endpoint, at)| json!([endpoint.to_string(), id, at])));
                    plan.stored.push(id.clone());
                    plan.changes.push(json!({"rev": revision, "agent": id, "kind": kind, "doc": document}));
                }
                Change::Delete { .. } => {
                    facts.revisions.remove(&id);
                    plan.deleted.push(id.clone());
                    plan.changes.push(json!({"rev": revision, "agent": id, "kind": kind, "doc": null}));
                }
            }
            plan.audit.push(json!({"actor": note.actor, "source": note.source, "action": kind, "agent": id,
                "rev": revision, "summary": note.summary}));
            plan.answers.push(Ok(u64::try_from(revision).unwrap_or_default()));
        }
        Ok(plan)
    }

    /// Writes the rows: at most one statement per table (none for a table with nothing to write).
    pub(super) async fn write(&self, conn: &mut SqliteConnection) -> Result<()> {
        if !self.deleted.is_empty() {
            // Their last-seen rows and names go with them (foreign keys).
            run(conn, DELETE_AGENTS, &self.deleted, None).await?;
        }
        let tables: [(&'static str, &Vec<Value>); 5] = [
            (INSERT_CHANGES, &self.changes),
            (INSERT_KEYS, &self.keys),
            (INSERT_AGENTS, &self.inserted),
            (UPDATE_AGENTS, &self.updated),
            (INSERT_NAMES, &self.names),
        ];
        for (statement, rows) in tables {
            if !rows.is_empty() {
                run(conn, statement, rows, None).await?;
            }
        }
        if !self.stored.is_empty() {
            run(conn, DROP_LIVENESS, &self.stored, Some(&self.endpoints)).await?;
        }
        if !self.seen.is_empty() {
            run(conn, INSERT_SEEN, &self.seen, None).await?;
        }
        run(conn, INSERT_AUDIT, &self.audit, None).await
    }
}

/// Runs a statement over a JSON array of rows (`?1`), and a second array (`?2`) when given.
async fn run<T: serde::Serialize>(
    conn: &mut SqliteConnection,
    statement: &'static str,
    rows: &[T],
    more: Option<&[String]>,
) -> Result<()> {
    let mut query = sqlx::query(statement).bind(encode(rows)?);
    if let Some(more) = more {
        query = query.bind(encode(more)?);
    }
    query.execute(&mut *conn).await.map_err(classify)?;
    Ok(())
}

fn encode(rows: &(impl serde::Serialize + ?Sized)) -> Result<String> {
    serde_json::to_string(rows).map_err(|e| RegistryError::internal_from("encoding a batch", e))
}
