//! One contract for every `AgentStore` (memory, SQLite, PostgreSQL) and every `LivenessStore`
//! (in the process, Redis).

use std::sync::Arc;

use agent_registry_core::audit::{AuditEvent, AuditNote, EventQuery, NewEvent};
use agent_registry_core::memory::{InProcessLiveness, MemoryStore};
use agent_registry_core::model::{Agent, AgentId, Endpoint, EndpointId, LivenessModel, Protocol, Transport};
use agent_registry_core::ports::{AgentStore, Change, ChangeKind, IdempotencyRecord, LivenessStore};
use agent_registry_store_sqlite::SqliteStore;
use chrono::Utc;

fn sample(name: &str) -> Agent {
    // The registry's clock has millisecond precision, and so do stored timestamps.
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    Agent {
        id: AgentId::generate(),
        name: name.into(),
        description: Some("d".into()),
        version: None,
        owner_id: "owner".into(),
        tags: vec!["t".into()],
        labels: [("k".to_owned(), "v".to_owned())].into(),
        capabilities: Vec::new(),
        endpoints: vec![Endpoint {
            id: EndpointId::generate(),
            name: "e".into(),
            transport: Transport::Http,
            protocol: Protocol::A2A,
            address: "https://x.example".into(),
            liveness_model: LivenessModel::Ephemeral,
            ttl_seconds: Some(30),
            heartbeat_interval_seconds: None,
            protocol_metadata: serde_json::json!({"keep": {"me": [1, null]}}).as_object().unwrap().clone(),
            created_at: now,
        }],
        metadata: Default::default(),
        permanent: false,
        claims: Vec::new(),
        origin: None,
        created_at: now,
        updated_at: now,
        revision: 0,
    }
}

fn put(agent: &Agent, seen: Vec<(EndpointId, i64)>, idempotency: Option<IdempotencyRecord>) -> Change {
    Change::Put { agent: Box::new(agent.clone()), kind: ChangeKind::Registered, seen, idempotency, expected: None }
}

fn replace(agent: &Agent, expected: u64) -> Change {
    Change::Put {
        agent: Box::new(agent.clone()),
        kind: ChangeKind::Updated,
        seen: Vec::new(),
        idempotency: None,
        expected: Some(expected),
    }
}

/// Applies a change noted as made by a test actor.
async fn apply(store: &dyn AgentStore, change: Change) -> agent_registry_core::Result<u64> {
    store
        .apply(change, &AuditNote { actor: "key:test".into(), source: Some("10.0.0.1".into()), summary: "s".into() })
        .await
}

fn is_stale(result: agent_registry_core::Result<u64>) -> bool {
    matches!(result, Err(agent_registry_core::RegistryError::StaleWrite(_)))
}

async fn contract(store: Arc<dyn AgentStore>) {
    store.ping().await.unwrap();
    assert_eq!(store.current_revision().await.unwrap(), 0);
    let a = sample("a");
    let b = sample("b");
    let ea = a.endpoints[0].id;
    let r1 = apply(&*store, put(&a, vec![(ea, 1_000)], None)).await.unwrap();
    let record = IdempotencyRecord {
        owner_id: "owner".into(),
        key: "k".into(),
        request_hash: "h".into(),
        agent_id: b.id,
        created_at: 5,
    };
    let r2 = apply(&*store, put(&b, vec![], Some(record.clone()))).await.unwrap();
    assert!(r1 < r2, "revisions increase");
    let c = sample("c");
    let taken = IdempotencyRecord { agent_id: c.id, ..record.clone() };
    assert!(is_stale(apply(&*store, put(&c, vec![], Some(taken))).await), "an idempotency key already taken");
    assert_eq!(store.current_revision().await.unwrap(), r2);

    let loaded = store.load_all().await.unwrap();
    assert_eq!(loaded.len(), 2);
    let la = loaded.iter().find(|s| s.agent.id == a.id).unwrap();
    assert_eq!(la.agent.revision, r1, "the stored agent carries its revision");
    assert_eq!(la.agent.endpoints, a.endpoints, "endpoints, protocol metadata included, round-trip");
    assert_eq!(la.last_seen, vec![(ea, 1_000)]);

    // Pages come in id order and resume after the given id.
    let first = store.load_page(None, 1).await.unwrap();
    let second = store.load_page(Some(first[0].agent.id), 5).await.unwrap();
    assert_eq!((first.len(), second.len()), (1, 1));
    assert!(first[0].agent.id < second[0].agent.id);
    assert!(store.load_page(Some(second[0].agent.id), 5).await.unwrap().is_empty());

    // Last-seen times only move forward.
    store.record_last_seen(&[(ea, 3_000)]).await.unwrap();
    store.record_last_seen(&[(ea, 2_000), (EndpointId::generate(), 9)]).await.unwrap();
    let loaded = store.load_all().await.unwrap();
    assert_eq!(loaded.iter().find(|s| s.agent.id == a.id).unwrap().last_seen, vec![(ea, 3_000)]);

    assert_eq!(store.find_idempotency("owner", "k").await.unwrap(), Some(record));
    assert_eq!(store.find_idempotency("someone-else", "k").await.unwrap(), None);
    assert_eq!(store.expire_idempotency(6).await.unwrap(), 1);
    assert_eq!(store.find_idempotency("owner", "k").await.unwrap(), None);

    // A change made from an outdated view is refused, and leaves nothing behind.
    assert!(is_stale(apply(&*store, put(&a, vec![], None)).await), "a second registration of the same id");
    assert!(is_stale(apply(&*store, replace(&a, r1 + 100)).await), "a replacement from the wrong revision");
    assert!(is_stale(apply(&*store, replace(&sample("never stored"), 1)).await), "a replacement of a missing agent");
    assert_eq!(store.current_revision().await.unwrap(), r2, "refused changes take no revision");
    assert_eq!(store.load_all().await.unwrap().len(), 2);

    // Replacing an agent without its endpoint forgets that endpoint's liveness.
    let mut a2 = a.clone();
    a2.endpoints.clear();
    let r3 = apply(&*store, replace(&a2, r1)).await.unwrap();
    let loaded = store.load_all().await.unwrap();
    let la = loaded.iter().find(|s| s.agent.id == a.id).unwrap();
    assert!(la.last_seen.is_empty() && la.agent.endpoints.is_empty());

    assert!(is_stale(
        apply(&*store, Change::Delete { agent_id: b.id, kind: ChangeKind::Deregistered, expected: r1 }).await
    ));
    let r4 =
        apply(&*store, Change::Delete { agent_id: b.id, kind: ChangeKind::Deregistered, expected: r2 }).await.unwrap();
    assert!(r2 < r3 && r3 < r4);
    assert_eq!(store.load_all().await.unwrap().len(), 1);
    assert!(
        is_stale(apply(&*store, Change::Delete { agent_id: b.id, kind: ChangeKind::Evicted, expected: r2 }).await),
        "deleting twice is refused, not an error of the store"
    );

    // The change log replays every change in order, with the agent as it stood after it.
    let log = store.changes_since(0, 100).await.unwrap();
    let summary: Vec<(u64, AgentId, ChangeKind, bool)> =
        log.iter().map(|c| (c.revision, c.agent_id, c.kind, c.agent.is_some())).collect();
    assert_eq!(
        summary,
        [
            (r1, a.id, ChangeKind::Registered, true),
            (r2, b.id, ChangeKind::Registered, true),
            (r3, a.id, ChangeKind::Updated, true),
            (r4, b.id, ChangeKind::Deregistered, false),
        ]
    );
    let after_r3 = log[2].agent.as_ref().unwrap();
    assert_eq!((after_r3.revision, after_r3.endpoints.len()), (r3, 0));
    assert_eq!(store.changes_since(r2, 1).await.unwrap().iter().map(|c| c.revision).collect::<Vec<_>>(), [r3]);
    assert!(store.changes_since(r4, 10).await.unwrap().is_empty());
    assert_eq!(store.prune_changes(0).await.unwrap(), 0, "nothing is older than 1970");
    assert_eq!(store.prune_changes(i64::MAX).await.unwrap(), 3, "the newest change stays");
    assert_eq!(store.changes_since(0, 10).await.unwrap().iter().map(|c| c.revision).collect::<Vec<_>>(), [r4]);
    assert_eq!(store.current_revision().await.unwrap(), r4, "pruning the log does not reuse revisions");

    // Every stored change is in the audit trail (refused ones are not), newest first.
    let key = uuid::Uuid::new_v4();
    let note = AuditNote { actor: "bootstrap".into(), source: None, summary: "issued".into() };
    store.record_event(&NewEvent::about_key(5_000, "api_key_issued", key, note)).await.unwrap();
    // The same expiry noticed twice (by two replicas) is recorded once.
    let note = AuditNote::registry("expired");
    let expiry = NewEvent {
        at: 4_000,
        action: "endpoint_expired",
        agent_id: Some(a.id),
        key_id: None,
        note,
        dedupe: Some("x".into()),
    };
    store.record_event(&expiry).await.unwrap();
    store.record_event(&expiry).await.unwrap();
    let all = EventQuery { limit: 100, ..EventQuery::default() };
    let events = store.events(&all).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["endpoint_expired", "api_key_issued", "deregistered", "updated", "registered", "registered"]);
    assert!(events.windows(2).all(|w| w[0].id > w[1].id));
    let events = &events[1..];
    assert_eq!((events[1].agent_id, events[1].revision), (Some(b.id), Some(r4)));
    assert_eq!((events[1].actor.as_str(), events[1].source.as_deref()), ("key:test", Some("10.0.0.1")));
    assert_eq!(events[0].key_id, Some(key));
    let of_a = EventQuery { agent: Some(a.id), ..all.clone() };
    assert_eq!(
        store.events(&of_a).await.unwrap().iter().map(|e| e.revision).collect::<Vec<_>>(),
        [None, Some(r3), Some(r1)]
    );
    let page = EventQuery { before: Some(events[1].id), limit: 2, ..all.clone() };
    assert_eq!(
        store.events(&page).await.unwrap().iter().map(|e| e.id).collect::<Vec<_>>(),
        [events[2].id, events[3].id]
    );
    let by_actor = EventQuery { actor: Some("bootstrap".into()), action: Some("api_key_issued".into()), ..all.clone() };
    assert_eq!(store.events(&by_actor).await.unwrap().len(), 1);
    assert_eq!(store.prune_events(5_001).await.unwrap(), 2, "only the events dated 1970 are that old");
    assert_eq!(store.events(&all).await.unwrap().len(), 4);

    // A liveness event takes the next revision once, however many replicas report it.
    let event = agent_registry_core::ports::LivenessChange {
        agent: a.clone(),
        endpoint_id: ea,
        kind: agent_registry_core::ports::ChangeKind::Expired,
        at: 2_000,
        dedupe: format!("expired:{ea}:2000"),
    };
    let before = store.current_revision().await.unwrap();
    let r3 = store.append_event(&event).await.unwrap().expect("logged");
    assert!(r3 > before);
    assert_eq!(store.append_event(&event).await.unwrap(), None, "a duplicate is not logged");
    let logged = store.changes_since(before, 10).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!((logged[0].revision, logged[0].kind, logged[0].endpoint_id), (r3, event.kind, Some(ea)));
    assert_eq!(logged[0].agent.as_ref().map(|x| x.id), Some(a.id));
    assert!(store.oldest_change().await.unwrap().is_some_and(|oldest| oldest <= r3));

    // A name has one holder: a second registration claiming it is refused like a stale write,
    // and leaves nothing behind; removing the holder frees the name.
    let claim = agent_registry_core::claim::NameClaim::new("acp.name", "citer");
    let holder = Agent { claims: vec![claim.clone()], ..sample("holder") };
    let held_at = apply(&*store, put(&holder, vec![], None)).await.unwrap();
    let rival = Agent { claims: vec![claim.clone()], ..sample("rival") };
    let before = store.current_revision().await.unwrap();
    assert!(is_stale(apply(&*store, put(&rival, vec![], None)).await), "a name already held");
    assert_eq!(store.current_revision().await.unwrap(), before, "the refused write left no change");
    let loaded = store.load_all().await.unwrap();
    assert!(loaded.iter().all(|s| s.agent.id != rival.id));
    let stored = loaded.iter().find(|s| s.agent.id == holder.id).unwrap();
    assert_eq!(stored.agent.claims, vec![claim.clone()], "claims are stored with the agent");
    let kind = agent_registry_core::ports::ChangeKind::Deregistered;
    apply(&*store, Change::Delete { agent_id: holder.id, kind, expected: held_at }).await.unwrap();
    apply(&*store, put(&rival, vec![], None)).await.unwrap();

    // A batch is applied in order, revisions in that order; a stale change fails alone and
    // leaves nothing behind, and the rest of the batch is stored.
    let note = AuditNote { actor: "key:test".into(), source: None, summary: "batched".into() };
    let (d, e, f) = (sample("d"), sample("e"), sample("f"));
    let before = store.current_revision().await.unwrap();
    let batch = [
        (put(&d, vec![], None), note.clone()),
        (put(&rival, vec![], None), note.clone()),
        (put(&e, vec![], None), note.clone()),
        (replace(&d, 0), note.clone()),
        (put(&f, vec![], None), note.clone()),
    ];
    let answers = store.apply_batch(&batch).await;
    let revisions: Vec<Option<u64>> = answers.iter().map(|a| a.as_ref().ok().copied()).collect();
    assert!(is_stale(answers.into_iter().nth(1).unwrap()), "the rival exists already");
    let stored: Vec<u64> = revisions.iter().flatten().copied().collect();
    assert_eq!(stored.len(), 3, "d, e and f are stored; {revisions:?}");
    assert!(stored.windows(2).all(|w| w[0] < w[1]) && stored[0] > before, "{revisions:?}");
    assert_eq!((revisions[1], revisions[3]), (None, None), "a replacement from revision 0 is stale too");
    assert_eq!(store.current_revision().await.unwrap(), stored[2]);
    let loaded = store.load_all().await.unwrap();
    for (agent, revision) in [(&d, stored[0]), (&e, stored[1]), (&f, stored[2])] {
        let found = loaded.iter().find(|s| s.agent.id == agent.id).expect("stored with its batch");
        assert_eq!(found.agent.revision, revision);
    }
    let logged: Vec<u64> = store.changes_since(before, 10).await.unwrap().iter().map(|c| c.revision).collect();
    assert_eq!(logged, stored, "the change log holds the stored changes alone, in order");
}

#[tokio::test]
async fn the_memory_store_keeps_the_store_contract() {
    contract(Arc::new(MemoryStore::default())).await;
    task_contract(&agent_registry_core::memory::MemoryTaskStore::default()).await;
}

#[tokio::test]
async fn the_postgres_store_keeps_the_store_contract() {
    let (url, schema) = crate::support::postgres_schema().await;
    let store = agent_registry_store_postgres::PostgresStore::connect(
        &url,
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(30),
    )
    .await
    .expect("PostgreSQL is reachable");
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/postgres")).unwrap().count();
    let migrated = store.migrate().await.unwrap();
    assert_eq!(migrated.applied.len(), shipped, "every migration the binary ships is applied: {migrated:?}");
    assert!(store.migrate().await.unwrap().applied.is_empty(), "and only once");
    task_contract(&store).await;
    contract(Arc::new(store)).await;
    schema.drop_now().await;
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let store = Arc::new(SqliteStore::open(&url).await.unwrap());
    task_contract(&*store).await;
    contract(store).await;
}

/// What every `TaskStore` does: create (once per idempotency key), append events with their
/// effects, refuse events after a final one, read, list, fail abandoned tasks, prune.
async fn task_contract(store: &dyn agent_registry_core::task::TaskStore) {
    use agent_registry_core::task::{
        NewTask, Task, TaskCreated, TaskEvent, TaskId, TaskInput, TaskQuery, TaskState, TaskWrite, TaskWritten,
        store::abandoned_event,
    };
    let input: TaskInput = serde_json::from_value(serde_json::json!({"capability": "Echo", "input": "hi"})).unwrap();
    let new = |at: i64| Task {
        id: TaskId::generate(),
        owner_id: "kim".into(),
        actor: "key:1".into(),
        request: input.validate().unwrap(),
        state: TaskState::Submitted,
        agent_id: None,
        endpoint_id: None,
        protocol: None,
        output: None,
        failure: None,
        created_at: at,
        updated_at: at,
        finished_at: None,
        last_seq: 1,
    };
    let first = new(1_000);
    let keyed = NewTask { task: first.clone(), idempotency: Some(("k".into(), "h1".into())) };
    assert!(matches!(store.create_task(&keyed, &TaskEvent::Created).await.unwrap(), TaskCreated::Created));
    let again = NewTask { task: new(1_500), idempotency: Some(("k".into(), "h2".into())) };
    match store.create_task(&again, &TaskEvent::Created).await.unwrap() {
        TaskCreated::Existing { task, request_hash } => assert_eq!((task.id, request_hash.as_str()), (first.id, "h1")),
        TaskCreated::Created => panic!("an idempotency key creates one task"),
    }
    let (agent, endpoint) = (AgentId::generate(), EndpointId::generate());
    let dispatched = TaskEvent::Dispatched {
        agent_id: agent,
        endpoint_id: endpoint,
        protocol: Protocol::A2A,
        address: "http://x".into(),
        attempt: 1,
    };
    assert_eq!(store.append_task_event(first.id, 1_100, &dispatched).await.unwrap(), Some(2));
    let done = TaskEvent::Completed { output: serde_json::json!({"text": "ok"}) };
    assert_eq!(store.append_task_event(first.id, 1_200, &done).await.unwrap(), Some(3));
    assert_eq!(store.append_task_event(first.id, 1_300, &TaskEvent::Canceled).await.unwrap(), None, "final");
    let read = store.task(first.id).await.unwrap().unwrap();
    assert_eq!((read.state, read.agent_id, read.endpoint_id), (TaskState::Completed, Some(agent), Some(endpoint)));
    assert_eq!(
        (read.output, read.finished_at, read.last_seq),
        (Some(serde_json::json!({"text": "ok"})), Some(1_200), 3)
    );
    let events = store.task_events(first.id, 1, 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(events[1].event, done);

    let running = new(2_000);
    store.create_task(&NewTask { task: running.clone(), idempotency: None }, &TaskEvent::Created).await.unwrap();
    let all = TaskQuery { limit: 10, ..TaskQuery::default() };
    let listed: Vec<TaskId> = store.tasks(&all).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(listed, [running.id, first.id], "newest first");
    let paged = TaskQuery { before: Some((2_000, running.id)), ..all.clone() };
    assert_eq!(store.tasks(&paged).await.unwrap().len(), 1);
    let completed = TaskQuery { state: Some(TaskState::Completed), capability: Some("echo".into()), ..all.clone() };
    assert_eq!(store.tasks(&completed).await.unwrap().len(), 1);
    let others = TaskQuery { owner_id: Some("lee".into()), ..all.clone() };
    assert!(store.tasks(&others).await.unwrap().is_empty());

    // Its deadline (created + 60 s) has not passed at 30 s, has at 90 s.
    assert_eq!(store.fail_abandoned_tasks(32_000, 32_000).await.unwrap(), 0);
    assert_eq!(store.fail_abandoned_tasks(92_000, 92_000).await.unwrap(), 1);
    let abandoned = store.task(running.id).await.unwrap().unwrap();
    assert_eq!(abandoned.state, TaskState::Failed);
    let last = store.task_events(running.id, 0, 10).await.unwrap().pop().unwrap();
    assert_eq!(last.event, abandoned_event());

    // Counts of what finished since then, by protocol (the abandoned task was never sent).
    let counts = |since: i64| async move {
        let mut counts: Vec<(Option<Protocol>, TaskState, u64)> =
            store.task_counts(since).await.unwrap().into_iter().map(|c| (c.protocol, c.state, c.count)).collect();
        counts.sort_by_key(|c| (c.0.map(|p| p.to_string()), c.1.as_str()));
        counts
    };
    assert_eq!(counts(0).await, [(None, TaskState::Failed, 1), (Some(Protocol::A2A), TaskState::Completed, 1)]);
    assert_eq!(counts(2_000).await, [(None, TaskState::Failed, 1)]);

    // A task waiting for input since before the retention is pruned too; a newer one stays.
    let (waiting, recent) = (new(3_000), new(60_000));
    for (task, at) in [(&waiting, 3_100), (&recent, 60_100)] {
        store.create_task(&NewTask { task: task.clone(), idempotency: None }, &TaskEvent::Created).await.unwrap();
        store.append_task_event(task.id, at, &TaskEvent::InputRequired { message: None }).await.unwrap();
    }
    assert_eq!(store.prune_tasks(50_000).await.unwrap(), 2, "the task finished before, and the one left waiting");
    assert!(store.task(first.id).await.unwrap().is_none());
    assert!(store.task(waiting.id).await.unwrap().is_none());
    assert!(store.task(recent.id).await.unwrap().is_some());
    assert!(store.task_events(first.id, 0, 10).await.unwrap().is_empty());
    assert!(store.task(running.id).await.unwrap().is_some());

    // A batch commits in order, each write answered; a bad write (a task id taken) fails alone.
    let batched = new(70_000);
    let create = |task: &Task| TaskWrite::Create {
        new: Box::new(NewTask { task: task.clone(), idempotency: None }),
        created: TaskEvent::Created,
    };
    let append = |at, event| TaskWrite::Append { id: batched.id, at, event };
    let writes = [
        create(&batched),
        append(70_100, TaskEvent::Accepted { remote_id: None }),
        create(&batched),
        append(70_200, TaskEvent::Completed { output: serde_json::json!("done") }),
        append(70_300, TaskEvent::Canceled),
        TaskWrite::Append { id: TaskId::generate(), at: 70_400, event: TaskEvent::Canceled },
    ];
    let answers: Vec<String> = store
        .write_tasks(&writes)
        .await
        .into_iter()
        .map(|answer| match answer {
            Ok(TaskWritten::Created(TaskCreated::Created)) => "created".to_owned(),
            Ok(TaskWritten::Created(TaskCreated::Existing { .. })) => "existing".to_owned(),
            Ok(TaskWritten::Appended(seq)) => format!("{seq:?}"),
            Err(e) => e.code().to_owned(),
        })
        .collect();
    assert_eq!(answers, ["created", "Some(2)", "internal_error", "Some(3)", "None", "None"]);
    let stored = store.task(batched.id).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.last_seq, stored.finished_at), (TaskState::Completed, 3, Some(70_200)));
    let kinds: Vec<&str> = store.task_events(batched.id, 0, 10).await.unwrap().iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds, ["created", "accepted", "completed"]);
}

/// A store whose writes take a while, to cut a request off in the middle of one.
struct SlowStore(MemoryStore);

#[async_trait::async_trait]
impl AgentStore for SlowStore {
    async fn load_page(
        &self,
        after: Option<AgentId>,
        limit: usize,
    ) -> agent_registry_core::Result<Vec<agent_registry_core::ports::StoredAgent>> {
        self.0.load_page(after, limit).await
    }
    async fn apply(&self, change: Change, note: &AuditNote) -> agent_registry_core::Result<u64> {
        // The write lands, then the answer is slow to come back (as when SQLite's worker has
        // committed but the request is cut off before the registry hears of it).
        let revision = self.0.apply(change, note).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        revision
    }
    async fn find_idempotency(&self, owner: &str, key: &str) -> agent_registry_core::Result<Option<IdempotencyRecord>> {
        self.0.find_idempotency(owner, key).await
    }
    async fn expire_idempotency(&self, before: i64) -> agent_registry_core::Result<u64> {
        self.0.expire_idempotency(before).await
    }
    async fn record_last_seen(&self, seen: &[(EndpointId, i64)]) -> agent_registry_core::Result<()> {
        self.0.record_last_seen(seen).await
    }
    async fn current_revision(&self) -> agent_registry_core::Result<u64> {
        self.0.current_revision().await
    }
    async fn changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> agent_registry_core::Result<Vec<agent_registry_core::ports::LoggedChange>> {
        self.0.changes_since(after, limit).await
    }
    async fn prune_changes(&self, before: i64) -> agent_registry_core::Result<u64> {
        self.0.prune_changes(before).await
    }
    async fn oldest_change(&self) -> agent_registry_core::Result<Option<u64>> {
        self.0.oldest_change().await
    }
    async fn append_event(
        &self,
        event: &agent_registry_core::ports::LivenessChange,
    ) -> agent_registry_core::Result<Option<u64>> {
        self.0.append_event(event).await
    }
    async fn record_event(&self, event: &NewEvent) -> agent_registry_core::Result<()> {
        self.0.record_event(event).await
    }
    async fn events(&self, query: &EventQuery) -> agent_registry_core::Result<Vec<AuditEvent>> {
        self.0.events(query).await
    }
    async fn prune_events(&self, before: i64) -> agent_registry_core::Result<u64> {
        self.0.prune_events(before).await
    }
    async fn save_api_key(&self, key: &agent_registry_core::auth::ApiKey) -> agent_registry_core::Result<u64> {
        self.0.save_api_key(key).await
    }
    async fn api_keys_since(
        &self,
        after: u64,
        limit: usize,
    ) -> agent_registry_core::Result<Vec<agent_registry_core::auth::ApiKey>> {
        self.0.api_keys_since(after, limit).await
    }
    async fn ping(&self) -> agent_registry_core::Result<()> {
        self.0.ping().await
    }

    async fn sizes(&self) -> agent_registry_core::Result<agent_registry_core::ports::StoreSizes> {
        self.0.sizes().await
    }
}

#[tokio::test]
async fn a_write_whose_caller_goes_away_still_reaches_both_the_store_and_the_index() {
    use agent_registry_core::clock::SystemClock;
    use agent_registry_core::{AgentRegistry, RegisterOptions};

    let store: Arc<dyn AgentStore> = Arc::new(SlowStore(MemoryStore::default()));
    let liveness = Arc::new(InProcessLiveness::new(store.clone()));
    let registry =
        AgentRegistry::open(store.clone(), liveness, Arc::new(SystemClock), Default::default()).await.unwrap();
    let id = AgentId::generate();
    let admin = agent_registry_core::auth::Caller {
        actor: "test".into(),
        source: None,
        owner: "admin".into(),
        scope: agent_registry_core::auth::Scope::Admin,
        quota: None,
    };
    let input: agent_registry_core::input::AgentInput =
        serde_json::from_value(serde_json::json!({"id": id, "name": "cut off"})).unwrap();
    let cut = tokio::time::timeout(
        std::time::Duration::from_millis(50),
        registry.register(&admin, &input, &RegisterOptions::default()),
    )
    .await;
    assert!(cut.is_err(), "the caller gave up mid-write");
    // The write goes on without its caller: wait for it (generously: a busy machine is slow).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(store.load_all().await.unwrap().len() == 1 && registry.get(id).is_ok()) {
        assert!(std::time::Instant::now() < deadline, "the write reached neither the store nor the index");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// What every liveness store must do; a shared one also lists recent touches for the other
/// replicas.
async fn liveness_contract(store: &dyn LivenessStore) {
    store.ping().await.unwrap();
    let (a, b) = (EndpointId::generate(), EndpointId::generate());
    store.touch(a, 2_000, 10).await.unwrap();
    let before = store.touch(a, 1_000, 10).await.unwrap();
    store.touch(b, 1_795_000_000_123, 10).await.unwrap();
    assert_eq!(
        store.last_seen(&[a, b, EndpointId::generate()]).await.unwrap(),
        [Some(2_000), Some(1_795_000_000_123), None],
        "the latest time is kept, a late touch never moves it back"
    );
    if store.is_shared() {
        assert_eq!(before, Some(2_000), "a shared store says when the endpoint was seen before the touch");
        assert_eq!(store.seen_since(1_500).await.unwrap(), [(a, 2_000), (b, 1_795_000_000_123)]);
        let (c, d) = (EndpointId::generate(), EndpointId::generate());
        store.touch_all(&[a, c, d], 3_000).await.unwrap();
        assert_eq!(store.last_seen(&[a, c, d]).await.unwrap(), [Some(3_000), Some(3_000), Some(3_000)]);
        store.forget(&[c, d]).await.unwrap();
        assert_eq!(store.seen_since(1_795_000_000_124).await.unwrap(), []);
    } else {
        assert_eq!(store.seen_since(0).await.unwrap(), [], "a store of one process has no one to tell");
    }
    store.forget(&[a]).await.unwrap();
    assert_eq!(store.last_seen(&[a, b]).await.unwrap(), [None, Some(1_795_000_000_123)]);
    store.forget(&[b]).await.unwrap();
    assert_eq!(store.last_seen(&[b]).await.unwrap(), [None]);
    store.flush().await.unwrap();
}

#[tokio::test]
async fn in_process_liveness_keeps_the_liveness_contract() {
    liveness_contract(&InProcessLiveness::new(Arc::new(MemoryStore::default()))).await;
}

#[tokio::test]
async fn redis_liveness_keeps_the_liveness_contract() {
    let prefix = crate::support::redis_prefix();
    let store = agent_registry_liveness_redis::RedisLiveness::connect(&crate::support::redis_url(), &prefix)
        .await
        .expect("Redis is reachable; .ci/run starts it");
    assert!(store.is_shared());
    liveness_contract(&store).await;
}

#[tokio::test]
async fn agents_stored_before_names_were_claimed_hold_the_names_their_documents_give() {
    use agent_registry_core::claim::{ClaimRequest, NameClaim, OnTaken};
    use agent_registry_core::clock::SystemClock;
    use agent_registry_core::{AgentRegistry, RegisterOptions, RegistryConfig};

    let store: Arc<dyn AgentStore> = Arc::new(MemoryStore::default());
    // Stored by an earlier version: no claims in the document.
    let legacy = sample("weather");
    apply(&*store, put(&legacy, vec![], None)).await.unwrap();
    let config = RegistryConfig {
        legacy_claims: |agent| vec![NameClaim::new("server", agent.name.clone())],
        ..Default::default()
    };
    let liveness = Arc::new(InProcessLiveness::new(store.clone()));
    let registry = AgentRegistry::open(store.clone(), liveness, Arc::new(SystemClock), config).await.unwrap();
    let admin = agent_registry_core::auth::Caller {
        actor: "test".into(),
        source: None,
        owner: "admin".into(),
        scope: agent_registry_core::auth::Scope::Admin,
        quota: None,
    };
    let mut input: agent_registry_core::input::AgentInput =
        serde_json::from_value(serde_json::json!({"name": "weather again"})).unwrap();
    let claim = |name: &str| ClaimRequest {
        namespace: "server".into(),
        name: name.into(),
        on_taken: OnTaken::Refuse,
        label: None,
        scope: None,
    };
    input.claims = vec![claim("weather")];
    let refused = registry.register(&admin, &input, &RegisterOptions::default()).await;
    assert!(
        matches!(&refused, Err(agent_registry_core::RegistryError::AgentExists(holder)) if *holder == legacy.id.to_string()),
        "{refused:?}"
    );
    input.claims = vec![claim("weather-2")];
    registry.register(&admin, &input, &RegisterOptions::default()).await.unwrap();
}
