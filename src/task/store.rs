//! The `TaskStore` port: tasks and their execution logs, durable so that any replica answers for
//! any task. Implementations: `crate::memory::MemoryTaskStore`, SQLite and PostgreSQL; every
//! call bounded by [`BoundedTaskStore`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::bounded::StoreBounds;
use crate::error::{RegistryError, Result};
use crate::liveness::Millis;
use crate::model::AgentId;
use crate::task::{LoggedTaskEvent, Task, TaskEffects, TaskEvent, TaskId, TaskState};

/// A task to create, with the request hash a retry under the same idempotency key must match.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub task: Task,
    /// The caller's `Idempotency-Key` and the hash of the request it came with.
    pub idempotency: Option<(String, String)>,
}

/// Whether `create_task` stored the task, or found one created earlier under the same owner and
/// idempotency key (with that request's hash).
#[derive(Clone, Debug)]
pub enum TaskCreated {
    Created,
    Existing { task: Box<Task>, request_hash: String },
}

/// One write of a batch the [`crate::task::TaskJournal`] commits together.
#[derive(Clone, Debug)]
pub enum TaskWrite {
    Create { new: Box<NewTask>, created: TaskEvent },
    Append { id: TaskId, at: Millis, event: TaskEvent },
}

/// What a [`TaskWrite`] did: as `create_task` and `append_task_event` answer.
#[derive(Clone, Debug)]
pub enum TaskWritten {
    Created(TaskCreated),
    Appended(Option<u64>),
}

/// Filters of `GET /tasks`; newest first.
#[derive(Clone, Debug, Default)]
pub struct TaskQuery {
    /// Only this owner's tasks (`None`: an Admin reads everyone's).
    pub owner_id: Option<String>,
    pub state: Option<TaskState>,
    pub agent_id: Option<AgentId>,
    pub capability: Option<String>,
    /// Created at or after.
    pub since: Option<Millis>,
    /// Paging: only tasks before this `(created_at, id)` position.
    pub before: Option<(Millis, TaskId)>,
    pub limit: usize,
}

/// A page of tasks, and where the next one starts.
#[derive(Clone, Debug)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub next: Option<(Millis, TaskId)>,
}

/// How many tasks of one protocol (`None`: not sent anywhere yet) are in one state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskCount {
    pub protocol: Option<crate::model::Protocol>,
    pub state: TaskState,
    pub count: u64,
}

impl TaskCount {
    /// Reads a `(protocol, state, count)` row of [`sql::COUNTS`].
    pub fn from_row((protocol, state, count): (Option<String>, String, i64)) -> Result<Self> {
        let unreadable = |what: String| RegistryError::internal(format!("a task count is unreadable: {what}"));
        Ok(Self {
            protocol: protocol.as_deref().map(str::parse).transpose().map_err(unreadable)?,
            state: state.parse().map_err(unreadable)?,
            count: u64::try_from(count).unwrap_or_default(),
        })
    }
}

/// Durable storage of tasks and their events.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Stores a new task with its `created` event (sequence 1), unless the owner used its
    /// idempotency key already: then the task created then is returned instead.
    async fn create_task(&self, new: &NewTask, created: &TaskEvent) -> Result<TaskCreated>;

    /// Appends an event to a task and applies its [`TaskEvent::effects`] in one transaction;
    /// returns its sequence number. A task in a final state takes no more events: `None`.
    async fn append_task_event(&self, id: TaskId, at: Millis, event: &TaskEvent) -> Result<Option<u64>>;

    /// Applies the writes in order, each answered on its own. A store that can commits them
    /// together (one transaction, one durable commit); the default writes one after another.
    /// A batch that fails is written again one by one, so a bad write fails only itself.
    async fn write_tasks(&self, writes: &[TaskWrite]) -> Vec<Result<TaskWritten>> {
        write_each(self, writes).await
    }

    async fn task(&self, id: TaskId) -> Result<Option<Task>>;

    /// Up to `limit` events of a task with a sequence number above `after`, in order.
    async fn task_events(&self, id: TaskId, after: u64, limit: usize) -> Result<Vec<LoggedTaskEvent>>;

    async fn tasks(&self, query: &TaskQuery) -> Result<Vec<Task>>;

    /// Fails every task in flight (submitted or working) whose deadline (created at + its
    /// timeout) is before `overdue_at` with [`abandoned_event`]: a live runner always ends its
    /// task by the deadline, so no process runs these any more. Returns how many.
    async fn fail_abandoned_tasks(&self, overdue_at: Millis, at: Millis) -> Result<u64>;

    /// Counts of the tasks in flight, and of those that finished at or after `since`, by
    /// protocol and state (for `GET /status`). The default counts nothing: a store that keeps
    /// no such index.
    async fn task_counts(&self, since: Millis) -> Result<Vec<TaskCount>> {
        let _ = since;
        Ok(Vec::new())
    }

    /// Forgets tasks (and their events) that finished before `before`, and tasks left waiting
    /// for input (`input_required`, which nothing resumes yet) since before `before`.
    async fn prune_tasks(&self, before: Millis) -> Result<u64>;
}

/// Writes one after another, each in its own transaction.
pub async fn write_each<S: TaskStore + ?Sized>(store: &S, writes: &[TaskWrite]) -> Vec<Result<TaskWritten>> {
    let mut answers = Vec::with_capacity(writes.len());
    for write in writes {
        answers.push(match write {
            TaskWrite::Create { new, created } => store.create_task(new, created).await.map(TaskWritten::Created),
            TaskWrite::Append { id, at, event } => {
                store.append_task_event(*id, *at, event).await.map(TaskWritten::Appended)
            }
        });
    }
    answers
}

/// A batch's appends to one task, folded into one update of the task's row: what appending
/// them one after another would do. As the store refuses events once a task is final, events
/// after a final one in the same batch are refused.
#[derive(Debug)]
pub struct TaskAppends<'a> {
    pub id: TaskId,
    /// The events to store, in order, each with its position in the batch.
    pub events: Vec<(usize, Millis, &'a TaskEvent)>,
    /// Positions in the batch of the events an earlier final event of the batch refuses.
    pub refused: Vec<usize>,
    /// The columns the events change, the later event winning.
    pub effects: TaskEffects,
    /// When the last event to store happened.
    pub at: Millis,
    /// Whether the events end the task.
    pub finished: bool,
}

/// The batch's appends folded per task, tasks in the order of their first append.
pub fn fold_appends(writes: &[TaskWrite]) -> Vec<TaskAppends<'_>> {
    let mut folded: Vec<TaskAppends<'_>> = Vec::new();
    let mut slots: HashMap<TaskId, usize> = HashMap::new();
    for (position, write) in writes.iter().enumerate() {
        let TaskWrite::Append { id, at, event } = write else { continue };
        let slot = *slots.entry(*id).or_insert_with(|| {
            folded.push(TaskAppends {
                id: *id,
                events: Vec::new(),
                refused: Vec::new(),
                effects: TaskEffects::default(),
                at: *at,
                finished: false,
            });
            folded.len() - 1
        });
        let task = &mut folded[slot];
        if task.finished {
            task.refused.push(position);
            continue;
        }
        let effects = event.effects();
        task.finished = effects.state.is_some_and(TaskState::is_final);
        let before = std::mem::take(&mut task.effects);
        task.effects = TaskEffects {
            state: effects.state.or(before.state),
            agent_id: effects.agent_id.or(before.agent_id),
            endpoint_id: effects.endpoint_id.or(before.endpoint_id),
            protocol: effects.protocol.or(before.protocol),
            output: effects.output.or(before.output),
            failure: effects.failure.or(before.failure),
        };
        task.at = *at;
        task.events.push((position, *at, event));
    }
    folded
}

/// The event that fails an abandoned task (the same in every store).
pub fn abandoned_event() -> TaskEvent {
    TaskEvent::failed(
        crate::error::catalogue::REGISTRY_RESTARTED,
        "the registry process running this task stopped before it finished",
    )
}

/// A task store whose every call is bounded by [`StoreBounds`].
pub struct BoundedTaskStore {
    inner: Arc<dyn TaskStore>,
    bounds: StoreBounds,
}

impl BoundedTaskStore {
    pub fn new(inner: Arc<dyn TaskStore>, bounds: StoreBounds) -> Self {
        Self { inner, bounds }
    }
}

async fn within<T>(bound: Duration, what: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(bound, call).await.unwrap_or_else(|_| {
        Err(RegistryError::storage_unavailable(format!("the database did not answer {what} within {bound:?}")))
    })
}

#[async_trait]
impl TaskStore for BoundedTaskStore {
    async fn create_task(&self, new: &NewTask, created: &TaskEvent) -> Result<TaskCreated> {
        within(self.bounds.request, "a new task", self.inner.create_task(new, created)).await
    }

    async fn append_task_event(&self, id: TaskId, at: Millis, event: &TaskEvent) -> Result<Option<u64>> {
        within(self.bounds.request, "a task event", self.inner.append_task_event(id, at, event)).await
    }

    async fn write_tasks(&self, writes: &[TaskWrite]) -> Vec<Result<TaskWritten>> {
        let bound = self.bounds.request;
        match tokio::time::timeout(bound, self.inner.write_tasks(writes)).await {
            Ok(answers) => answers,
            Err(_) => writes
                .iter()
                .map(|_| {
                    let detail = format!("the database did not commit task writes within {bound:?}");
                    Err(RegistryError::storage_unavailable(detail))
                })
                .collect(),
        }
    }

    async fn task(&self, id: TaskId) -> Result<Option<Task>> {
        within(self.bounds.request, "a task", self.inner.task(id)).await
    }

    async fn task_events(&self, id: TaskId, after: u64, limit: usize) -> Result<Vec<LoggedTaskEvent>> {
        within(self.bounds.request, "task events", self.inner.task_events(id, after, limit)).await
    }

    async fn tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        within(self.bounds.request, "a list of tasks", self.inner.tasks(query)).await
    }

    async fn fail_abandoned_tasks(&self, overdue_at: Millis, at: Millis) -> Result<u64> {
        within(self.bounds.upkeep, "failing abandoned tasks", self.inner.fail_abandoned_tasks(overdue_at, at)).await
    }

    async fn task_counts(&self, since: Millis) -> Result<Vec<TaskCount>> {
        within(self.bounds.request, "task counts", self.inner.task_counts(since)).await
    }

    async fn prune_tasks(&self, before: Millis) -> Result<u64> {
        within(self.bounds.upkeep, "pruning tasks", self.inner.prune_tasks(before)).await
    }
}

/// The statements both SQL stores run, in SQL both dialects read (SQLite reads `$N` as `?N`).
pub mod sql {
    pub const INSERT_TASK: &str = "INSERT INTO tasks (id, owner_id, actor, capability, request, state, agent_id,
        idempotency_key, request_hash, created_at, updated_at, deadline_at, last_seq)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, 1) ON CONFLICT DO NOTHING";
    pub const EXISTING_TASK: &str = "SELECT id, request_hash FROM tasks WHERE owner_id = $1 AND idempotency_key = $2";
    pub const INSERT_EVENT: &str = "INSERT INTO task_events (task_id, seq, at, kind, data) VALUES ($1, $2, $3, $4, $5)";
    /// Applies an event's effects unless the task is final; returns the event's number.
    pub const APPLY_EVENT: &str = "UPDATE tasks SET last_seq = last_seq + 1, updated_at = $2,
        state = COALESCE($3, state), agent_id = COALESCE($4, agent_id), endpoint_id = COALESCE($5, endpoint_id),
        protocol = COALESCE($6, protocol), output = COALESCE($7, output), error_code = COALESCE($8, error_code),
        error_detail = COALESCE($9, error_detail), finished_at = CASE WHEN $10 THEN $2 ELSE finished_at END
        WHERE id = $1 AND state NOT IN ('completed', 'failed', 'canceled', 'rejected') RETURNING last_seq";
    pub const EVENTS: &str =
        "SELECT seq, at, data FROM task_events WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
    pub const ABANDONED: &str =
        "SELECT id FROM tasks WHERE state IN ('submitted', 'working') AND deadline_at < $1 LIMIT 1000";
    /// Tasks in flight and tasks finished since `$1`, by protocol and state (both indexed).
    pub const COUNTS: &str = "SELECT protocol, state, COUNT(*) FROM tasks
        WHERE state IN ('submitted', 'working') OR finished_at >= $1 GROUP BY protocol, state";
    // Past retention: finished, or waiting for input, before `$1` (both conditions indexed).
    pub const PRUNE_EVENTS: &str = "DELETE FROM task_events WHERE task_id IN (SELECT id FROM tasks
        WHERE finished_at < $1 OR (state = 'input_required' AND updated_at < $1))";
    pub const PRUNE_TASKS: &str =
        "DELETE FROM tasks WHERE finished_at < $1 OR (state = 'input_required' AND updated_at < $1)";

    /// `SELECT` of one task by id.
    pub fn task() -> String {
        format!("SELECT {} FROM tasks WHERE id = $1", crate::task::TASK_COLUMNS)
    }

    /// `SELECT` of a page of tasks: owner, state, agent, capability, since, before (created at,
    /// id), limit.
    pub fn tasks() -> String {
        format!(
            "SELECT {} FROM tasks WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR state = $2)
             AND ($3 IS NULL OR agent_id = $3) AND ($4 IS NULL OR LOWER(capability) = LOWER($4))
             AND ($5 IS NULL OR created_at >= $5)
             AND ($6 IS NULL OR created_at < $6 OR (created_at = $6 AND id < $7))
             ORDER BY created_at DESC, id DESC LIMIT $8",
            crate::task::TASK_COLUMNS
        )
    }
}
